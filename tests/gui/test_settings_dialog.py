"""The Settings dialog (``gui.settings``), offscreen: a camera from a real video file tested live
before saving, a failing camera's health, rename/remove, the HR login on decision changes (right:
signed, saved and audited; wrong: nothing saved; the wait and the lockout after wrong passphrases; no
accounts: refused), and settings that persist across a restart.

Real files, a real registry with real HR accounts (:func:`tests.conftest.make_hr`) and the real source
classes in tmp folders; waits on signals and conditions, never on sleeps.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from core.errors import AccountLocked, PermissionDenied
from core.live import settings as cs
from core.live.settings import CameraConfig, ConsoleSettings, WindowState
from core.live.sources import SourceState
from core.recognition.engine import Policy
from core.registry import Registry
from core.registry.accounts import has_accounts, login, reset_lockout
from core.registry.decision import DECISION_SETTING, decision_settings
from core.registry.keys import HRSession
from core.registry.signing import verify_state
from gui.settings import SettingsDialog
from gui.settings.dialog import NO_ACCOUNTS
from gui.settings.preview import health_text
from gui.threads import running_threads
from tests.conftest import HR_PASSPHRASE, make_hr

GOOD = HR_PASSPHRASE
WRONG = "wrong horse battery staple"
BLUE_BGR = (200, 80, 20)  # RGB (20, 80, 200)
RTSP = "rtsp://admin:hunter2@127.0.0.1:9/Streaming/Channels/101?pwd=hunter2&channel=1"  # nothing listens


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv(cs.CONFIG_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def hr_registry(tmp_path: Path) -> tuple[Path, HRSession]:
    """A registry with one HR account, ``hr.lead`` (an admin), and that account's session."""
    path = tmp_path / "data" / "facegate.db"
    with Registry.open(path) as reg:
        session = make_hr(reg)
    return path, session


@pytest.fixture
def registry_path(hr_registry: tuple[Path, HRSession]) -> Path:
    return hr_registry[0]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A short MJPG clip: blue, with a white square moving along the top (so frames differ)."""
    path = tmp_path / "door.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (320, 240))
    assert writer.isOpened()
    for i in range(50):
        frame = np.full((240, 320, 3), BLUE_BGR, np.uint8)
        frame[5:25, 5 + 5 * i:25 + 5 * i] = 255
        writer.write(frame)
    writer.release()
    return path


def open_dialog(qtbot, settings: ConsoleSettings, registry_path: Path) -> SettingsDialog:
    dialog = SettingsDialog(settings, registry_path)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def audit(registry_path: Path, action: str) -> list:
    with Registry.open(registry_path) as reg:
        return reg.audit_log(action=action)


def table_text(dialog: SettingsDialog) -> list[tuple[bool, str, str]]:
    t = dialog.cameras.table
    return [(t.item(r, 0).checkState() == Qt.CheckState.Checked, t.item(r, 1).text(), t.item(r, 2).text())
            for r in range(t.rowCount())]


# -- cameras: add and test live ------------------------------------------------------------------------


def test_a_video_file_added_as_a_camera_plays_live_in_the_preview_then_its_thread_stops(
        qtbot, registry_path: Path, clip: Path, config_dir: Path):
    dialog = open_dialog(qtbot, ConsoleSettings(), registry_path)
    page = dialog.cameras
    assert table_text(dialog) == [] and "built-in demo camera" in page.note.text()

    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    editor = page.editor
    assert editor is not None and editor.isVisible()
    editor.name.setText("door")
    editor.source.setText(str(clip))
    qtbot.mouseClick(editor.ok_button, Qt.MouseButton.LeftButton)

    assert table_text(dialog) == [(True, "door", str(clip))]
    assert page.tester.running  # a new camera is tested at once, before anything is saved
    assert not (config_dir / "console.toml").exists()
    preview = page.preview
    qtbot.waitUntil(lambda: preview.frame is not None and preview.status is not None
                    and preview.status.state is SourceState.LIVE, timeout=20_000)
    first = preview.frame.index
    qtbot.waitUntil(lambda: preview.frame.index >= first + 3, timeout=20_000)  # live frames, not one picture
    assert max(preview.frame.image.shape[:2]) > 240  # resized in the worker to fit the preview

    pixels = preview.grab().toImage()
    centre = pixels.pixelColor(pixels.width() // 2, pixels.height() // 2)
    assert abs(centre.red() - 20) < 40 and abs(centre.green() - 80) < 40 and abs(centre.blue() - 200) < 40
    corner = pixels.pixelColor(2, pixels.height() // 2)  # the green "live" border
    assert corner.green() > 150 and corner.red() < 100
    assert page.health.text().startswith("LIVE")

    qtbot.mouseClick(page.test_button, Qt.MouseButton.LeftButton)  # "Stop test"
    assert not page.tester.running and running_threads() == []
    assert page.test_button.text() == "Test"
    dialog.reject()
    assert not (config_dir / "console.toml").exists()  # cancelled: nothing saved


def test_a_camera_that_cannot_be_reached_shows_failed_with_the_reason_and_no_password(
        qtbot, registry_path: Path):
    settings = ConsoleSettings(cameras=(CameraConfig("north", RTSP),), open_timeout_s=2.0, read_timeout_s=2.0)
    dialog = open_dialog(qtbot, settings, registry_path)
    page = dialog.cameras
    masked = "rtsp://admin:***@127.0.0.1:9/Streaming/Channels/101?pwd=***&channel=1"
    assert table_text(dialog) == [(True, "north", masked)]
    page.select_row(0)
    qtbot.mouseClick(page.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.preview.status is not None and page.preview.status.state is SourceState.FAILED,
                    timeout=30_000)
    assert "could not be opened" in page.health.toolTip()
    painted = health_text(page.preview.status)  # what the preview paints over the picture
    shown = f"{painted} {page.health.text()} {page.health.toolTip()} {page.preview_title.text()} {page.note.text()}"
    assert "could not be opened" in painted and masked in painted and "hunter2" not in shown
    pixels = page.preview.grab().toImage()
    border = pixels.pixelColor(2, pixels.height() // 2)
    assert border.red() > 180 and border.green() < 100  # red: failed
    page.stop_test()
    dialog.reject()


def test_the_editor_refuses_a_missing_file_and_keeps_a_stored_password(qtbot, registry_path: Path, tmp_path: Path):
    dialog = open_dialog(qtbot, ConsoleSettings(cameras=(CameraConfig("north", RTSP),)), registry_path)
    page = dialog.cameras
    page.add()
    page.editor.source.setText(str(tmp_path / "no-such-clip.mp4"))
    qtbot.mouseClick(page.editor.ok_button, Qt.MouseButton.LeftButton)
    assert page.editor.isVisible() and "does not exist" in page.editor.error.text()
    page.editor.reject()

    page.select_row(0)
    page.edit_selected()
    editor = page.editor
    assert "hunter2" not in editor.source.text() and editor.password.text() == ""
    assert "leave empty to keep it" in editor.password.placeholderText()
    editor.source.setText(editor.source.text().replace("Channels/101", "Channels/102"))
    qtbot.mouseClick(editor.ok_button, Qt.MouseButton.LeftButton)
    [camera] = page.cameras()
    assert camera.spec == RTSP.replace("Channels/101", "Channels/102")  # both secrets kept
    page.stop_test()
    dialog.reject()


# -- cameras: rename, remove, the grid ------------------------------------------------------------------


def test_rename_and_remove_then_save_without_a_passphrase(qtbot, hr_registry, clip: Path):
    from core.registry import Registry
    from core.registry.decision import set_approved_cameras

    registry_path, session = hr_registry
    cameras = tuple(CameraConfig(n, str(clip)) for n in ("gate", "yard", "dock"))
    with Registry.open(registry_path) as reg:  # cameras HR approved: renaming or removing them needs no login
        set_approved_cameras(reg, session, [f"{c.name}={c.spec}" for c in cameras], ["clips"] * 3)
    original = ConsoleSettings(cameras=cameras, selected=("gate", "yard"),
                               window=WindowState.from_bytes(b"geometry", b"state"))
    dialog = open_dialog(qtbot, original, registry_path)
    page = dialog.cameras

    page.select_row(0)
    qtbot.mouseClick(page.rename_button, Qt.MouseButton.LeftButton)
    page.rename_dialog.setTextValue("north")
    page.rename_dialog.accept()
    assert [name for _, name, _ in table_text(dialog)] == ["north", "yard", "dock"]
    assert page.selected() == ("north", "yard")

    assert not page.rename(0, "yard")  # taken
    assert "already called 'yard'" in page.note.text()
    assert not page.rename(0, "9 lives")
    assert [c.name for c in page.cameras()] == ["north", "yard", "dock"]

    page.select_row(1)
    qtbot.mouseClick(page.remove_button, Qt.MouseButton.LeftButton)
    assert [(shown, name) for shown, name, _ in table_text(dialog)] == [(True, "north"), (False, "dock")]

    page.table.item(1, 0).setCheckState(Qt.CheckState.Checked)  # tick dock into the grid
    assert page.selected() == ("north", "dock")

    assert dialog.save_button.text() == "Save"  # no decision change: no login
    with qtbot.waitSignal(dialog.saved, timeout=5_000):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted
    expected = replace(original, cameras=(CameraConfig("north", str(clip)), CameraConfig("dock", str(clip))),
                       selected=("north", "dock"))
    assert dialog.result_settings() == expected == cs.load_settings()
    assert audit(registry_path, "hr_denied") == [] and audit(registry_path, cs.POLICY_AUDIT_ACTION) == []


def test_at_most_four_cameras_are_ticked_for_the_grid(qtbot, registry_path: Path, clip: Path):
    cameras = tuple(CameraConfig(f"cam{i}", str(clip)) for i in range(5))
    dialog = open_dialog(qtbot, ConsoleSettings(cameras=cameras), registry_path)
    page = dialog.cameras
    assert [shown for shown, _, _ in table_text(dialog)] == [True, True, True, True, False]  # the first four
    page.table.item(4, 0).setCheckState(Qt.CheckState.Checked)
    assert "at most 4" in page.note.text()
    assert [shown for shown, _, _ in table_text(dialog)] == [True, True, True, True, False]
    page.table.item(0, 0).setCheckState(Qt.CheckState.Unchecked)
    page.table.item(4, 0).setCheckState(Qt.CheckState.Checked)
    assert page.selected() == ("cam1", "cam2", "cam3", "cam4")
    dialog.reject()


# -- the decision: HR login -------------------------------------------------------------------------------


def change_decision(dialog: SettingsDialog) -> None:
    dialog.tabs.setCurrentWidget(dialog.decision)
    dialog.decision.probability.setValue(0.8)
    dialog.decision.override.setChecked(True)
    dialog.decision.threshold.setValue(0.9)
    dialog.decision.min_face.setValue(100)


def ask_login(qtbot, dialog: SettingsDialog):
    """Press Save (a decision change): the accounts are looked up in a worker, then the login opens."""
    dialog.login_dialog = None
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.login_dialog is not None and dialog.login_dialog.isVisible(), timeout=20_000)
    return dialog.login_dialog


def setting(registry_path: Path):
    with Registry.open(registry_path) as reg:
        return reg.get_setting(DECISION_SETTING)


def test_a_decision_change_with_a_wrong_then_the_right_passphrase_is_refused_then_signed(
        qtbot, hr_registry: tuple[Path, HRSession], clip: Path):
    registry_path, admin = hr_registry
    old = ConsoleSettings(cameras=(CameraConfig("door", str(clip)),))
    path = cs.save_settings(old)
    before = path.read_bytes()
    dialog = open_dialog(qtbot, old, registry_path)
    change_decision(dialog)
    dialog.cameras.rename(0, "gate")  # saved only together with the decision
    assert "probability floor 0.50 \u2192 0.80" in dialog.decision.summary.text()
    assert dialog.save_button.text() == "Save (HR login)\u2026"

    asking = ask_login(qtbot, dialog)
    assert "minimum face 80 px \u2192 100 px" in asking.changes.text()
    assert asking.ok_button.text() == "Sign and save"
    assert asking.passphrase.echoMode() == asking.passphrase.EchoMode.Password
    assert asking.account.text() == "" and "optional" in asking.account.placeholderText()  # one account
    assert not asking.ok_button.isEnabled()  # nothing typed yet
    asking.account.setText("hr.lead")
    asking.passphrase.setText(WRONG)
    qtbot.mouseClick(asking.ok_button, Qt.MouseButton.LeftButton)
    assert asking.passphrase.text() == ""  # not kept in a widget once handed over
    qtbot.waitUntil(lambda: "Wrong passphrase for 'hr.lead'" in dialog.message.text(), timeout=20_000)
    assert running_threads() == []
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.message.text().endswith("nothing was changed.")
    assert dialog.tabs.currentWidget() is dialog.decision and dialog.tabs.isEnabled()
    assert path.read_bytes() == before and dialog.result_settings() == old
    assert setting(registry_path) is None  # the registry's decision setting is untouched
    assert audit(registry_path, cs.POLICY_AUDIT_ACTION) == []
    [denied] = audit(registry_path, "hr_denied")
    assert denied.actor == "login:hr.lead" and denied.new["why"] == "wrong passphrase"

    # An admin lifts the wait after the wrong try (the next try would otherwise have to wait 1 s).
    with Registry.open(registry_path) as reg:
        reset_lockout(reg, admin, "hr.lead")
    asking = ask_login(qtbot, dialog)
    assert asking.account.text() == "hr.lead"  # the last account used in this dialog
    assert asking.passphrase.text() == ""
    asking.passphrase.setText(GOOD)
    with qtbot.waitSignal(dialog.saved, timeout=20_000):
        qtbot.mouseClick(asking.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted and running_threads() == []
    saved = cs.load_settings()
    assert saved == dialog.result_settings()
    assert [c.name for c in saved.cameras] == ["gate"]
    assert (saved.policy, saved.min_face) == (Policy("all", 0.8, 0.0, 0.9), 100)
    with Registry.open(registry_path) as reg:
        assert decision_settings(reg) == (Policy("all", 0.8, 0.0, 0.9), 100)  # what the console decides with
        state = verify_state(reg)
        assert state.ok, state.problems
        assert state.signed_by == "admin:hr.lead"
    [row] = audit(registry_path, cs.POLICY_AUDIT_ACTION)
    assert row.actor == "admin:hr.lead"
    assert (row.new["min_probability"], row.new["threshold"], row.new["min_face"]) == (0.8, 0.9, 100)


def test_cancelling_the_login_saves_nothing(qtbot, registry_path: Path):
    path = cs.save_settings(ConsoleSettings())
    before = path.read_bytes()
    dialog = open_dialog(qtbot, ConsoleSettings(), registry_path)
    change_decision(dialog)
    ask_login(qtbot, dialog).reject()
    assert "needs an HR login" in dialog.message.text() and path.read_bytes() == before
    assert setting(registry_path) is None and audit(registry_path, "hr_denied") == []
    dialog.reject()
    assert running_threads() == []


def test_with_several_accounts_the_login_needs_the_account_name(qtbot, hr_registry: tuple[Path, HRSession]):
    from core.registry.accounts import add_account

    registry_path, admin = hr_registry
    with Registry.open(registry_path) as reg:
        add_account(reg, admin, "alice", "hr", "alice's long passphrase")
    dialog = open_dialog(qtbot, ConsoleSettings(), registry_path)
    change_decision(dialog)
    asking = ask_login(qtbot, dialog)
    asking.passphrase.setText("alice's long passphrase")
    assert not asking.ok_button.isEnabled()  # which account?
    asking.account.setText("alice")
    with qtbot.waitSignal(dialog.saved, timeout=20_000):
        qtbot.mouseClick(asking.ok_button, Qt.MouseButton.LeftButton)
    [row] = audit(registry_path, cs.POLICY_AUDIT_ACTION)
    assert row.actor == "hr:alice"


def test_wrong_passphrases_make_the_account_wait_then_lock_it(qtbot, registry_path: Path):
    # Three wrong passphrases an hour ago, through the real login (its clock moved back, not slept).
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with Registry.open(registry_path) as reg:
        for i in range(3):
            with pytest.raises(PermissionDenied, match="Wrong passphrase"):
                login(reg, "hr.lead", WRONG, action="test", clock=lambda i=i: hour_ago + timedelta(minutes=i))
    dialog = open_dialog(qtbot, ConsoleSettings(), registry_path)
    change_decision(dialog)

    def attempt(passphrase: str, expected: str) -> str:
        asking = ask_login(qtbot, dialog)
        asking.account.setText("hr.lead")
        asking.passphrase.setText(passphrase)
        qtbot.mouseClick(asking.ok_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: expected in dialog.message.text(), timeout=20_000)
        assert running_threads() == [] and dialog.isVisible()
        return dialog.message.text()

    assert "Wrong passphrase for 'hr.lead'" in attempt(WRONG, "Wrong passphrase")  # the 4th: wait 8 s now
    # Tried again at once, even with the right passphrase: refused before it is checked.
    text = attempt(GOOD, "try again in")
    assert text.startswith("Nothing was saved. Wrong passphrase for 'hr.lead' a moment ago: try again in ")

    # The 5th wrong one, a minute later (the real login, its clock moved on): locked.
    with Registry.open(registry_path) as reg, pytest.raises(AccountLocked, match="locked for 15 minutes"):
        login(reg, "hr.lead", WRONG, action="test", clock=lambda: datetime.now(UTC) + timedelta(minutes=1))
    text = attempt(GOOD, "locked until")
    assert text.startswith("Nothing was saved. The account 'hr.lead' is locked until ")
    assert setting(registry_path) is None and audit(registry_path, cs.POLICY_AUDIT_ACTION) == []
    assert not cs.settings_path().exists()
    whys = [row.new["why"] for row in audit(registry_path, "hr_denied")]  # every refusal audited
    assert whys == ["wrong passphrase"] * 4 + ["too soon after a wrong passphrase", "wrong passphrase", "locked"]
    dialog.reject()


def test_a_registry_without_hr_accounts_refuses_decision_changes_without_asking(qtbot, tmp_path: Path):
    registry_path = tmp_path / "fresh" / "facegate.db"
    with Registry.open(registry_path):
        pass
    dialog = open_dialog(qtbot, ConsoleSettings(), registry_path)
    change_decision(dialog)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: NO_ACCOUNTS in dialog.message.text(), timeout=20_000)
    assert dialog.login_dialog is None  # no passphrase asked that nothing could check
    assert dialog.message.text() == f"Nothing was saved. {NO_ACCOUNTS}"
    assert not cs.settings_path().exists() and running_threads() == []
    with Registry.open(registry_path) as reg:
        assert not has_accounts(reg)  # the console never creates the first one
        assert reg.get_setting(DECISION_SETTING) is None
    dialog.reject()


# -- persistence -------------------------------------------------------------------------------------------


def test_settings_persist_across_a_restart(qtbot, registry_path: Path, clip: Path, config_dir: Path):
    window = WindowState.from_bytes(b"\x01\xd9\xd0\xcb", b"\x00\xff", fullscreen=True)
    first = open_dialog(qtbot, replace(cs.load_settings(), window=window), registry_path)
    first.cameras.add()
    first.cameras.editor.name.setText("north")
    first.cameras.editor.source.setText("rtsp://admin@127.0.0.1:9/live")
    first.cameras.editor.password.setText("hunter2")
    qtbot.mouseClick(first.cameras.editor.ok_button, Qt.MouseButton.LeftButton)
    first.cameras.add()
    first.cameras.editor.source.setText(str(clip))  # no name: from the file, "door"
    qtbot.mouseClick(first.cameras.editor.ok_button, Qt.MouseButton.LeftButton)
    first.cameras.stop_test()
    change_decision(first)
    asking = ask_login(qtbot, first)
    asking.passphrase.setText(GOOD)  # the one account: no name needed
    with qtbot.waitSignal(first.saved, timeout=20_000):
        qtbot.mouseClick(asking.ok_button, Qt.MouseButton.LeftButton)

    # "restart": read the file again, as the console does at start, and open the dialog on it
    reloaded = cs.load_settings()
    assert reloaded == first.result_settings()
    assert [(c.name, c.spec) for c in reloaded.cameras] == [("north", "rtsp://admin:hunter2@127.0.0.1:9/live"),
                                                           ("door", str(clip))]
    assert reloaded.window == window and reloaded.min_face == 100
    assert reloaded.session_settings().sources == ("north=rtsp://admin:hunter2@127.0.0.1:9/live",
                                                   f"door={clip}")
    second = open_dialog(qtbot, reloaded, registry_path)
    assert table_text(second) == [(True, "north", "rtsp://admin:***@127.0.0.1:9/live"), (True, "door", str(clip))]
    assert (second.decision.probability.value(), second.decision.threshold.value(),
            second.decision.min_face.value(), second.decision.override.isChecked()) == (0.8, 0.9, 100, True)
    assert second.decision.changes() == [] and second.save_button.text() == "Save"
    second.reject()


def test_a_camera_hr_has_not_approved_is_saved_only_with_an_hr_login(qtbot, hr_registry, clip: Path,
                                                                     config_dir: Path):
    """Once HR owns the registry, a new camera (a video of an enrolled person, say) needs HR's approval."""
    from core.registry.decision import approved_cameras

    registry_path, _ = hr_registry
    dialog = open_dialog(qtbot, ConsoleSettings(), registry_path)
    page = dialog.cameras
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    page.editor.name.setText("door")
    page.editor.source.setText(str(clip))
    qtbot.mouseClick(page.editor.ok_button, Qt.MouseButton.LeftButton)
    page.stop_test()
    asking = ask_login(qtbot, dialog)
    assert f"approve camera door={clip}" in asking.changes.text()
    asking.passphrase.setText(GOOD)
    with qtbot.waitSignal(dialog.saved, timeout=20_000):
        qtbot.mouseClick(asking.ok_button, Qt.MouseButton.LeftButton)
    assert running_threads() == []
    with Registry.open(registry_path) as reg:
        assert approved_cameras(reg) == [f"door={clip}"] and verify_state(reg).ok
    [row] = audit(registry_path, "approve_cameras")
    assert row.actor == "admin:hr.lead"
