"""The console's HR login (gui/hr/access.py): asked once, checked in a worker, locked when idle."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.registry import Registry
from gui.hr.access import HRAccess
from gui.threads import running_threads
from tests.conftest import HR_PASSPHRASE, make_hr


@pytest.fixture()
def registry_path(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "facegate.db"
    with Registry.open(path) as reg:
        make_hr(reg)
    return path


def login(qtbot, access: HRAccess, passphrase: str, done: list) -> None:
    access.require(None, "enroll E1", done.append)
    qtbot.waitUntil(lambda: access.dialog is not None and access.dialog.isVisible(), timeout=10_000)
    access.dialog.account.setText("hr.lead")
    access.dialog.passphrase.setText(passphrase)
    access.dialog.ok_button.click()


def test_a_login_runs_the_action_then_locks_when_idle(qtbot, registry_path):
    access = HRAccess(registry_path, idle_ms=300)
    done: list = []
    with qtbot.waitSignal(access.changed, timeout=20_000) as logged_in:
        login(qtbot, access, HR_PASSPHRASE, done)
    assert logged_in.args[0].actor == "admin:hr.lead" and [s.actor for s in done] == ["admin:hr.lead"]
    access.require(None, "enroll E2", done.append)  # logged in: no second login
    assert len(done) == 2 and access.dialog.isHidden()
    with qtbot.waitSignal(access.changed, timeout=5_000) as locked:
        pass  # nothing happens: the idle time runs out
    assert locked.args == [None] and access.session is None
    assert running_threads() == []


def test_a_wrong_passphrase_runs_nothing_and_is_audited(qtbot, registry_path):
    access = HRAccess(registry_path)
    done: list = []
    with qtbot.waitSignal(access.refused, timeout=20_000) as refused:
        login(qtbot, access, "not the passphrase", done)
    assert "Wrong passphrase" in refused.args[0] and done == [] and access.session is None
    with Registry.open(registry_path) as reg:
        assert [a.object for a in reg.audit_log(action="hr_denied")] == ["enroll E1"]
    access.stop()
    assert running_threads() == []
