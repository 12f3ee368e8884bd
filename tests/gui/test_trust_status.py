"""The console says whether what decides who is let in is signed by HR, offscreen.

A real main window (its live session on an empty registry, which ends at once: nobody is enrolled)
is handed :class:`~core.live.session.ModelInfo` reports the way the session worker hands them over:
the status bar shows the trust line compactly (signed and anchored, unanchored, unsigned) with the
whole sentence as its tooltip; a registry changed without HR's signature is a red alarm (the model
watcher) or the problem panel (loading); and the Settings dialog opens with the decision in force,
not ``console.toml``'s copy.  Waits on signals, never on sleeps.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from core.live.session import ModelInfo, SessionError, SessionSettings
from core.live.settings import ConsoleSettings
from core.recognition.engine import Policy
from gui import theme
from gui.main_window import UNTRUSTED_ALARM

SIGNED = ("signed by admin:alice at 2025-03-04T09:12:00+00:00, anchored at "
          "/etc/facegate/trust-anchor.json")
UNANCHORED = "signed by admin:alice at 2025-03-04T09:12:00+00:00, UNANCHORED (no trust anchor installed)"
UNSIGNED = ("UNSIGNED: no HR accounts yet; anyone who can write the data folder can change who is let in "
            "(HR: run 'facegate accounts init')")
MISMATCH = ("The registry's security state does not match what HR signed: the operators changed since HR last "
            "signed (admin:alice, 2025-03-04T09:12:00+00:00). Ask HR to check it with 'facegate verify'.")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "gate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (320, 240))
    for _ in range(5):
        writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()
    return path


@pytest.fixture
def window(qtbot, tmp_path: Path, clip: Path):
    """The console on an empty registry: its session ends at once (nobody is enrolled)."""
    from gui.main_window import MainWindow

    console = ConsoleSettings(policy=Policy("all", 0.5, 0.0, None), min_face=80)  # console.toml's stale copy
    win = MainWindow(SessionSettings(sources=(f"gate={clip}",), data_dir=tmp_path / "data"), console=console,
                     settings_path=tmp_path / "config" / "console.toml")
    # Not qtbot.addWidget: pytest-qt would close it before this fixture's teardown, unwaited.
    win.resize(1366, 768)
    with qtbot.waitSignal(win.sessionEnded, timeout=120_000):
        win.show()
    assert "Nobody is enrolled" in win.problem.text()
    win.problem.setVisible(False)
    yield win
    with qtbot.waitSignal(win.closed, timeout=120_000):
        win.close()


def info(trust: str, **kw) -> ModelInfo:
    return ModelInfo("v3", 5, {"E1": "Madonna"}, trust=trust, **kw)


def label_colour(win) -> str:
    return win.trust_label.styleSheet()


def test_signed_and_anchored_reads_calm_with_the_whole_line_as_tooltip(window):
    window.on_ready(info(SIGNED))
    label = window.trust_label
    assert label.isVisible()
    assert label.text() == "\u2714 Signed by admin:alice \u00b7 anchored"
    assert label.toolTip() == SIGNED
    assert theme.DECISION_COLOURS["checking"].name() not in label_colour(window)
    assert theme.DECISION_COLOURS["unknown"].name() not in label_colour(window)


def test_unanchored_is_amber(window):
    window.on_ready(info(UNANCHORED))
    assert window.trust_label.text() == "\u26a0 Unanchored: signed, but no trust anchor installed"
    assert window.trust_label.toolTip() == UNANCHORED
    assert theme.DECISION_COLOURS["checking"].name() in label_colour(window)


def test_unsigned_is_amber(window):
    window.on_ready(info(UNSIGNED))
    assert window.trust_label.text() == "\u26a0 Unsigned: no HR accounts"
    assert window.trust_label.toolTip() == UNSIGNED
    assert theme.DECISION_COLOURS["checking"].name() in label_colour(window)


def test_a_reload_updates_the_trust_label(window):
    window.on_ready(info(UNSIGNED))
    window.on_model(info(SIGNED, reloaded=True))
    assert window.trust_label.text().startswith("\u2714 Signed by admin:alice")
    assert window.trust_label.toolTip() == SIGNED


def test_a_refused_reload_is_a_red_alarm_and_the_console_keeps_its_model(window):
    window.on_ready(info(SIGNED))
    window.on_error(SessionError("model-watcher", f"keeping the current model: {MISMATCH}", fatal=False))
    assert window.banner.isVisible()
    assert UNTRUSTED_ALARM in window.banner.text()
    assert theme.DECISION_COLOURS["unknown"].name() in window.banner.styleSheet()
    assert all(tile.alarm is None for tile in window.grid.tiles.values())  # about the console, not a camera
    assert not window.problem.isVisible()  # not fatal: recognition goes on with the verified model
    assert window.model_info is not None and window.model_info.version == "v3"
    assert window.trust_label.text() == "\u2716 Not what HR signed"
    assert MISMATCH in window.trust_label.toolTip()
    assert theme.DECISION_COLOURS["unknown"].name() in label_colour(window)
    window.acknowledge_alarm()
    assert not window.banner.isVisible()
    assert window.trust_label.text() == "\u2716 Not what HR signed"  # stays until a verified reload


def test_other_watcher_errors_are_no_alarm(window):
    window.on_ready(info(SIGNED))
    window.on_error(SessionError("model-watcher", "keeping the current model: disk full", fatal=False))
    assert not window.banner.isVisible() and not window.alarms
    assert window.trust_label.text().startswith("\u2714")


def test_a_refused_load_shows_the_message_in_the_problem_panel(window):
    window.on_error(SessionError("loading", MISMATCH, fatal=True))
    assert window.problem.isVisible() and MISMATCH in window.problem.text()
    assert not window.alarms
    assert window.trust_label.isVisible() and window.trust_label.text() == "\u2716 Not what HR signed"


def test_the_settings_dialog_opens_with_the_decision_in_force(qtbot, window):
    signed = Policy("svc", 0.7, 0.1, 0.85)
    window.on_ready(info(SIGNED, policy=signed, min_face=120))
    assert (window.console.policy, window.console.min_face) == (signed, 120)  # not console.toml's copy
    reloaded = Policy("stacker", 0.6, 0.05, None)
    window.on_model(info(SIGNED, reloaded=True, policy=reloaded, min_face=100))
    assert (window.console.policy, window.console.min_face) == (reloaded, 100)
    window.on_model(info(SIGNED, reloaded=True))  # no policy reported: keep the one in force
    assert window.console.policy == reloaded

    shown: dict[str, object] = {}

    def look_and_cancel() -> None:
        from gui.settings import SettingsDialog

        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, SettingsDialog)
        page = dialog.decision
        shown.update(decider=page.decider.currentData(), probability=page.probability.value(),
                     min_face=page.min_face.value(), changes=page.changes())
        dialog.reject()

    QTimer.singleShot(0, look_and_cancel)
    window.open_settings()  # modal: returns once the dialog was cancelled
    assert shown == {"decider": "stacker", "probability": 0.6, "min_face": 100, "changes": []}
