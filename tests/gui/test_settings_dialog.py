"""The Settings dialog (``gui.settings``), offscreen: a camera from a real video file tested live
before saving, a failing camera's health, rename/remove, the HR passphrase on decision changes
(right: saved and audited; wrong: nothing saved), and settings that persist across a restart.

Real files, a real registry and the real source classes in tmp folders; waits on signals and
conditions, never on sleeps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from core.live import settings as cs
from core.live.settings import CameraConfig, ConsoleSettings, WindowState
from core.live.sources import SourceState
from core.recognition.engine import Policy
from core.registry import Registry, security
from gui.settings import SettingsDialog
from gui.settings.preview import health_text
from gui.threads import running_threads

GOOD = "correct horse battery"
BLUE_BGR = (200, 80, 20)  # RGB (20, 80, 200)
RTSP = "rtsp://admin:hunter2@127.0.0.1:9/Streaming/Channels/101?pwd=hunter2&channel=1"  # nothing listens


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv(cs.CONFIG_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "facegate.db"
    with Registry.open(path) as reg:
        security.set_passphrase(reg, GOOD, actor="hr:test")
    return path


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


def test_rename_and_remove_then_save_without_a_passphrase(qtbot, registry_path: Path, clip: Path):
    cameras = tuple(CameraConfig(n, str(clip)) for n in ("gate", "yard", "dock"))
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

    assert dialog.save_button.text() == "Save"  # no decision change: no passphrase
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


# -- the decision: HR passphrase -------------------------------------------------------------------------


def change_decision(dialog: SettingsDialog) -> None:
    dialog.tabs.setCurrentWidget(dialog.decision)
    dialog.decision.probability.setValue(0.8)
    dialog.decision.override.setChecked(True)
    dialog.decision.threshold.setValue(0.9)
    dialog.decision.min_face.setValue(100)


def test_a_decision_change_with_the_right_passphrase_is_saved_and_audited(qtbot, registry_path: Path):
    old = ConsoleSettings()
    cs.save_settings(old)
    dialog = open_dialog(qtbot, old, registry_path)
    change_decision(dialog)
    assert "probability floor 0.50 \u2192 0.80" in dialog.decision.summary.text()
    assert dialog.save_button.text().startswith("Save (HR passphrase)")

    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    asking = dialog.passphrase_dialog
    assert asking is not None and asking.isVisible() and "minimum face 80 px \u2192 100 px" in asking.labelText()
    asking.setTextValue(GOOD)
    with qtbot.waitSignal(dialog.saved, timeout=20_000):
        asking.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted and running_threads() == []
    saved = cs.load_settings()
    assert saved == dialog.result_settings()
    assert (saved.policy, saved.min_face) == (Policy("all", 0.8, 0.0, 0.9), 100)
    [row] = audit(registry_path, cs.POLICY_AUDIT_ACTION)
    assert row.actor.startswith("hr:") and row.object == "console"
    assert (row.old["min_probability"], row.new["min_probability"], row.new["threshold"]) == (0.5, 0.8, 0.9)


def test_a_wrong_passphrase_saves_nothing_and_says_so(qtbot, registry_path: Path, clip: Path):
    old = ConsoleSettings(cameras=(CameraConfig("door", str(clip)),))
    path = cs.save_settings(old)
    before = path.read_bytes()
    dialog = open_dialog(qtbot, old, registry_path)
    change_decision(dialog)
    dialog.cameras.rename(0, "gate")  # saved only together with the decision: not at all

    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    dialog.passphrase_dialog.setTextValue("wrong horse battery")
    dialog.passphrase_dialog.accept()
    qtbot.waitUntil(lambda: "not the HR passphrase" in dialog.message.text(), timeout=20_000)
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.message.text().startswith("Nothing was saved.")
    assert dialog.tabs.currentWidget() is dialog.decision and dialog.tabs.isEnabled()
    assert path.read_bytes() == before
    assert audit(registry_path, cs.POLICY_AUDIT_ACTION) == []
    assert len(audit(registry_path, "hr_denied")) == 1
    assert dialog.result_settings() == old

    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)  # and cancelling the passphrase
    dialog.passphrase_dialog.reject()
    assert "needs the HR passphrase" in dialog.message.text() and path.read_bytes() == before
    dialog.reject()
    assert running_threads() == []


def test_a_registry_without_an_hr_passphrase_refuses_decision_changes(qtbot, tmp_path: Path):
    registry_path = tmp_path / "fresh" / "facegate.db"
    with Registry.open(registry_path):
        pass
    dialog = open_dialog(qtbot, ConsoleSettings(), registry_path)
    change_decision(dialog)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    dialog.passphrase_dialog.setTextValue("anything at all")
    dialog.passphrase_dialog.accept()
    qtbot.waitUntil(lambda: "No HR passphrase has been set" in dialog.message.text(), timeout=20_000)
    assert not cs.settings_path().exists()
    with Registry.open(registry_path) as reg:
        assert not security.has_passphrase(reg)  # the console never sets the first one
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
    qtbot.mouseClick(first.save_button, Qt.MouseButton.LeftButton)
    first.passphrase_dialog.setTextValue(GOOD)
    with qtbot.waitSignal(first.saved, timeout=20_000):
        first.passphrase_dialog.accept()

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
