"""HR's model-versions view (gui/hr/models_view.py) on a real trained registry: the list, each version's
thesis tables, activate / roll back / discard through the HR login — audited and signed by the same core
code as the CLI — and a running console switching to the activated version without a restart.

Waits are on signals and widget state, never sleeps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from core.registry import Registry
from gui import theme
from gui.hr.access import HRAccess
from gui.hr.models_view import ModelVersionsView
from tests.conftest import HR_PASSPHRASE, clone_registry, make_hr


def embedder_of(reg: Registry, models: Path):
    from core.registry.training import EmbedderInfo

    meta = json.loads((models / Path(reg.active_model().path).name / "model.json").read_text(encoding="utf-8"))
    return EmbedderInfo(meta["embedder"], meta["embedder_version"], meta["signature"])


@pytest.fixture(scope="module")
def versions_base(demo_registry, tmp_path_factory) -> Path:
    """The demo registry with an HR account and two more versions kept as candidates (#2, #3), signed."""
    from core.registry.signing import sign_state
    from core.registry.training import retrain

    db, models = clone_registry(demo_registry / "facegate.db", demo_registry / "models",
                                tmp_path_factory.mktemp("versions") / "data")
    with Registry.open(db) as reg:
        session = make_hr(reg)
        info = embedder_of(reg, models)
        for _ in range(2):
            assert retrain(reg, info, models, actor=session.actor, activate=False).status == "candidate"
        sign_state(reg, session, reason="two candidates", models_dir=models)
    return db.parent


@pytest.fixture()
def data(versions_base, tmp_path) -> Path:
    db, _ = clone_registry(versions_base / "facegate.db", versions_base / "models", tmp_path / "data")
    return db.parent


@pytest.fixture()
def access(data):
    a = HRAccess(data / "facegate.db")
    yield a
    a.stop()


def open_view(qtbot, data: Path, access: HRAccess) -> ModelVersionsView:
    view = ModelVersionsView(data / "facegate.db", data / "models", access)
    qtbot.addWidget(view)
    view.resize(1500, 900)
    view.show()
    # Built, it reads the list and then the active version's figures in the background.
    qtbot.waitUntil(lambda: view.panel.report is not None, timeout=60_000)
    return view


@pytest.fixture()
def view(qtbot, data, access):
    v = open_view(qtbot, data, access)
    yield v
    v.stop()


def cell(table, row: int, col: int) -> str:
    return table.item(row, col).text()


def rows(table) -> dict[str, list[str]]:
    return {cell(table, r, 0).strip(): [cell(table, r, c) for c in range(1, table.columnCount())]
            for r in range(table.rowCount())}


def log_in(qtbot, access: HRAccess, passphrase: str) -> None:
    qtbot.waitUntil(lambda: access.dialog is not None and access.dialog.isVisible(), timeout=10_000)
    assert "make model version" in access.dialog.changes.text()  # it names the change
    access.dialog.account.setText("hr.lead")
    access.dialog.passphrase.setText(passphrase)
    access.dialog.ok_button.click()


def confirm(qtbot, view: ModelVersionsView) -> None:
    """Logged in already: the view asks once more before it changes what the gate uses."""
    qtbot.waitUntil(lambda: view.confirm_box is not None and view.confirm_box.isVisible(), timeout=10_000)
    view.confirm_box.button(QMessageBox.StandardButton.Yes).click()


def audit(data: Path, action: str) -> list[tuple[str, str]]:
    """``(actor, object)`` of the audit rows of ``action`` written by HR accounts (not the demo's setup)."""
    with Registry.open(data / "facegate.db") as reg:
        return [(a.actor, a.object) for a in reg.audit_log(action=action) if a.actor != "demo-setup"]


def registry_state(data: Path) -> tuple[dict[int, str], int | None, bool]:
    from core.registry.signing import verify_state

    with Registry.open(data / "facegate.db") as reg:
        active = reg.active_model()
        return ({m.id: m.status for m in reg.list_models()}, active.id if active else None,
                verify_state(reg).ok)


# -- the list and the figures ---------------------------------------------------------------------------


def test_the_list_shows_every_version_newest_first_and_a_selected_versions_tables(qtbot, view, data):
    with Registry.open(data / "facegate.db") as reg:
        models = {m.id: m for m in reg.list_models()}
    table = view.table
    assert [cell(table, r, 0) for r in range(table.rowCount())] == ["#3", "#2", "#1"]
    n = len(models[1].metrics["checks"])
    assert [cell(table, r, 5) for r in range(3)] == [f"✓ all {n} passed"] * 3
    statuses = [cell(table, r, 6) for r in range(3)]
    assert statuses == ["candidate (never used)", "candidate (never used)", "ACTIVE at the gate"]
    assert cell(table, 2, 4).startswith("20") and cell(table, 0, 4) == "never"
    assert table.item(2, 6).font().bold() and not table.item(0, 6).font().bold()  # the active one stands out
    assert cell(table, 2, 2) == str(models[1].metrics["people"]) and cell(table, 2, 3) == str(
        models[1].metrics["embeddings"])
    # Opened on the active version, whose figures are shown.
    assert view.selected().id == 1 and view.panel.report.id == 1 and "#1" in view.panel.title.text()
    assert not view.activate_button.isEnabled() and not view.discard_button.isEnabled()
    assert not view.rollback_button.isEnabled()  # #1 is the first version that was ever active
    assert "no earlier version" in view.hint.text()

    with qtbot.waitSignal(view.reportShown, timeout=60_000) as shown:
        view.select_version(2)
    report, m = shown.args[0], models[2].metrics
    panel = view.panel
    assert report.id == 2 and panel.title.text() == "Version #2 · candidate (never used)"
    assert view.activate_button.isEnabled() and view.activate_button.text() == "Activate #2"
    assert view.discard_button.isEnabled()
    acc = rows(panel.accuracy)
    for name in ("svc", "stacker"):
        scores = m["cv_accuracy"][name]
        assert acc[theme.MODEL_NAMES[name]][1] == f"{100 * np.mean(scores):.1f} ({100 * np.std(scores):.1f})"
    cv = rows(panel.cv_table)
    assert cv["stacking"][0] == f"{np.mean(m['cv_accuracy']['stacker']):.3f} ({np.std(m['cv_accuracy']['stacker']):.3f})"
    (box,) = panel.box_items
    assert len(box.stats) == 6
    assert rows(panel.open_table)["distance threshold"] == [f"{m['threshold']:.3f}"]
    n = len(m["checks"])
    assert panel.checks_label.text().startswith(f"Activation checks: {n} of {n} passed")


# -- HR changes ------------------------------------------------------------------------------------------


def test_activate_roll_back_and_discard_are_hr_changes_audited_and_signed(qtbot, view, data, access):
    view.select_version(3)
    qtbot.waitUntil(lambda: view.activate_button.isEnabled(), timeout=10_000)
    with qtbot.waitSignal(view.changed, timeout=60_000) as changed:
        view.activate_button.click()
        log_in(qtbot, access, HR_PASSPHRASE)  # the login dialog names the change
    assert "#3 is now active" in changed.args[0] and "#3 is now active" in view.message.text()
    statuses, active, signed = registry_state(data)
    assert active == 3 and statuses[1] == "retired" and signed
    assert audit(data, "activate_model") == [("admin:hr.lead", "3")]
    qtbot.waitUntil(lambda: view.rows and view.rows[0].active and view.rollback_button.isEnabled(), timeout=30_000)
    assert view.rollback_button.text() == "Roll back to #1"
    assert view.hr_label.text().startswith("HR: admin:hr.lead logged in")

    # Logged in now: no second login, but a question before the gate's model changes.
    with qtbot.waitSignal(view.changed, timeout=60_000) as changed:
        view.rollback_button.click()
        confirm(qtbot, view)
    assert "version #1 is active again" in changed.args[0]
    statuses, active, signed = registry_state(data)
    assert active == 1 and statuses[3] == "rolled_back" and signed
    assert audit(data, "rollback_model") == [("admin:hr.lead", "1")]

    qtbot.waitUntil(lambda: view.rows and view.rows[-1].active, timeout=30_000)
    view.select_version(2)
    qtbot.waitUntil(lambda: view.discard_button.isEnabled(), timeout=10_000)
    # Cancelling the question changes nothing.
    view.discard_button.click()
    qtbot.waitUntil(lambda: view.confirm_box is not None and view.confirm_box.isVisible(), timeout=10_000)
    view.confirm_box.button(QMessageBox.StandardButton.Cancel).click()
    assert not view.busy and registry_state(data)[0][2] == "candidate"
    with qtbot.waitSignal(view.changed, timeout=60_000):
        view.discard_button.click()
        confirm(qtbot, view)
    statuses, active, signed = registry_state(data)
    assert statuses[2] == "rejected" and active == 1 and signed
    assert audit(data, "discard_model") == [("admin:hr.lead", "2")]
    qtbot.waitUntil(lambda: view.selected() is not None and view.selected().status == "rejected", timeout=30_000)
    assert view.table.item(1, 6).text() == "discarded by HR"
    assert not view.activate_button.isEnabled() and "discarded by HR" in view.hint.text()


def test_a_refused_login_changes_nothing(qtbot, view, data, access):
    before = registry_state(data)
    view.select_version(2)
    qtbot.waitUntil(lambda: view.activate_button.isEnabled(), timeout=10_000)
    with qtbot.waitSignal(view.failed, timeout=60_000) as failed:
        view.activate_button.click()
        log_in(qtbot, access, "not the passphrase")
    assert "Wrong passphrase" in failed.args[0]
    assert view.message.text().startswith("HR login refused, nothing was changed")
    assert access.session is None and not view.busy
    assert registry_state(data) == before
    assert audit(data, "activate_model") == []
    with Registry.open(data / "facegate.db") as reg:
        denied = [a.object for a in reg.audit_log(action="hr_denied")]
    assert denied == ["make model version #2 active at the gate"]


def test_a_version_whose_files_were_deleted_cannot_be_activated(qtbot, data, access):
    """An erasure deletes the files of every version that knew the person: they stay listed, never active."""
    from core.registry.pruning import prune_erased
    from core.registry.security import authorize_hr, signed

    with Registry.open(data / "facegate.db") as reg:
        session = authorize_hr(reg, lambda: ("hr.lead", HR_PASSPHRASE), action="erase")
        with signed(reg, session, reason="erase", models_dir=data / "models"):
            person = reg.list_operators()[0].employee_id
            reg.remove_operator(person, actor=session.actor)
            report = prune_erased(reg, data / "models", actor=session.actor)
    assert report.retrained is not None and set(report.deleted) == {1, 2, 3}
    new = report.retrained.id

    view = open_view(qtbot, data, access)
    try:
        assert [r.id for r in view.rows][:1] == [new] and view.selected().id == new
        old = next(r for r in view.rows if r.id == 2)
        assert old.files_deleted and old.status_text.endswith("files deleted")
        row = [r.id for r in view.rows].index(2)
        assert "erased" in cell(view.table, row, 6) and cell(view.table, row, 4) == "never"
        with qtbot.waitSignal(view.reportShown, timeout=60_000):
            view.select_version(2)  # its figures are still there: they are only numbers
        assert not view.activate_button.isEnabled()
        assert "files were deleted" in view.hint.text() and "erased" in view.hint.text()
        view.activate_selected()  # a shortcut or a stale button: refused in words, no login asked
        assert "cannot be activated" in view.message.text() and access.dialog is None
        # Roll back would go to #1, whose files are gone too: the button says so instead of failing.
        assert not view.rollback_button.isEnabled() and "has no model files" in view.hint.text()

        # Even past the buttons, the change worker checks again and changes nothing.
        with qtbot.waitSignal(view.failed, timeout=60_000) as failed:
            view._change("activate", 2, session)
        assert "files were deleted" in failed.args[0]
        _, active, ok = registry_state(data)
        assert active == new and ok and audit(data, "activate_model") == [("admin:hr.lead", str(new))]  # the prune's
    finally:
        view.stop()


# -- the running console switches live -------------------------------------------------------------------


def test_a_running_console_switches_to_the_activated_version_without_a_restart(qtbot, data, access):
    from core.live.session import SessionSettings
    from core.registry.decision import set_approved_cameras
    from core.registry.security import authorize_hr
    from gui.main_window import MainWindow

    with Registry.open(data / "facegate.db") as reg:
        session = authorize_hr(reg, lambda: ("hr.lead", HR_PASSPHRASE), action="approve cameras")
        set_approved_cameras(reg, session, ["demo=demo"], ["demo=demo"])
        versions = {m.id: m.metrics["version"] for m in reg.list_models()}

    window = MainWindow(SessionSettings(sources=("demo=demo",), data_dir=data))
    qtbot.addWidget(window)
    window.resize(1366, 768)
    window.show()
    view = open_view(qtbot, data, access)
    try:
        qtbot.waitUntil(lambda: window.model_info is not None, timeout=120_000)
        assert window.model_info.version == versions[1]
        worker, thread = window.worker, window.thread
        ended: list = []
        window.sessionEnded.connect(ended.append)

        view.select_version(3)
        qtbot.waitUntil(lambda: view.activate_button.isEnabled(), timeout=10_000)
        with qtbot.waitSignal(window.worker.model, timeout=120_000) as reloaded, \
                qtbot.waitSignal(view.changed, timeout=60_000):
            view.activate_button.click()
            log_in(qtbot, access, HR_PASSPHRASE)
        assert reloaded.args[0].version == versions[3] and reloaded.args[0].reloaded
        qtbot.waitUntil(lambda: window.model_info.version == versions[3], timeout=10_000)
        assert versions[3] in window.model_label.text()
        assert window.worker is worker and window.thread is thread and ended == []  # no restart
    finally:
        view.stop()
        with qtbot.waitSignal(window.closed, timeout=120_000):
            window.close()
