"""The console's HR tab (F4): built once the registry is known, its views in place, one login for all of
them that locks again, and the enrollment wizard behind that login.  Real console, real registry."""

from __future__ import annotations

import shutil

from core.live.session import SessionSettings
from core.registry import Registry
from core.registry.decision import set_approved_cameras
from gui.threads import running_threads
from tests.conftest import HR_PASSPHRASE, make_hr


def test_the_hr_tab_logs_in_once_for_its_views_opens_the_wizard_and_locks(qtbot, demo_registry, tmp_path):
    from gui.hr.models_view import ModelVersionsView
    from gui.hr.operators import OperatorsView
    from gui.main_window import MainWindow

    data = tmp_path / "data"
    shutil.copytree(demo_registry, data)
    with Registry.open(data / "facegate.db") as reg:
        session = make_hr(reg)
        set_approved_cameras(reg, session, ["demo=demo"], ["demo=demo"])
    window = MainWindow(SessionSettings(sources=("demo=demo",), data_dir=data))
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.hr_panel is not None, timeout=120_000)
        panel = window.hr_panel
        assert window.tabs.tabText(3) == "HR  [F4]" and window.tabs.widget(3) is panel
        assert isinstance(panel.operators, OperatorsView) and isinstance(panel.versions, ModelVersionsView)
        assert "Locked" in panel.who.text() and not panel.lock_button.isEnabled()
        window.tabs.setCurrentIndex(3)

        panel.enroll_button.click()  # the wizard needs a login first
        dialog = window.hr_access.dialog
        qtbot.waitUntil(lambda: dialog.isVisible(), timeout=10_000)
        dialog.account.setText("hr.lead")
        dialog.passphrase.setText(HR_PASSPHRASE)
        with qtbot.waitSignal(window.hr_access.changed, timeout=30_000):
            dialog.ok_button.click()
        assert "Logged in as admin:hr.lead" in panel.who.text() and panel.lock_button.isEnabled()
        qtbot.waitUntil(lambda: panel.wizard is not None and panel.wizard.isVisible(), timeout=30_000)
        panel.wizard.reject()
        with qtbot.waitSignal(window.hr_access.changed, timeout=10_000) as locked:
            panel.lock_button.click()
        assert locked.args == [None] and "Locked" in panel.who.text()
    finally:
        with qtbot.waitSignal(window.closed, timeout=120_000):
            window.close()
    assert running_threads() == []
