"""The guard console on the real pipeline: real MTCNN, FaceNet and classifiers, real video file and
MJPEG camera, real SQLite, a real PySide6 window on the offscreen platform.

Waits are on signals and widget state (``qtbot.waitUntil``), never sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.live.session import SessionSettings
from core.live.sources import SourceState
from core.live.tracking import TrackState, TrackView
from tests.conftest import madonna_then_stranger, write_clip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gate_scene(seed, strangers_dir):
    return madonna_then_stranger(seed, strangers_dir)


@pytest.fixture(scope="module")
def gate_clip(tmp_path_factory, gate_scene) -> Path:
    """A real video file of the scene: Madonna walks up, then a stranger."""
    return write_clip(gate_scene, tmp_path_factory.mktemp("clips") / "gate.avi")


@pytest.fixture()
def data_dir(demo_registry, tmp_path) -> Path:
    return Path(shutil.copytree(demo_registry, tmp_path / "data"))


def colour_pixels(image, colour, tolerance: int = 30) -> int:
    """How many pixels of a QImage are within ``tolerance`` of ``colour`` (a QColor)."""
    from PySide6.QtGui import QImage

    img = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
    arr = arr.reshape(img.height(), img.width(), 3).astype(int)
    target = np.array([colour.red(), colour.green(), colour.blue()])
    return int((np.abs(arr - target).max(axis=2) <= tolerance).sum())


def open_window(qtbot, settings: SessionSettings):
    from gui.main_window import MainWindow

    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.resize(1366, 768)
    window.show()
    return window


def close_window(qtbot, window) -> object:
    with qtbot.waitSignal(window.closed, timeout=120_000) as blocker:
        window.close()
    return blocker.args[0]


def test_window_names_the_enrolled_person_flags_the_stranger_and_records_the_guards_confirm(
        qtbot, data_dir, gate_clip):
    from core.registry import Registry
    from gui import theme

    window = open_window(qtbot, SessionSettings(sources=(f"gate={gate_clip}",), data_dir=data_dir))
    tile = window.grid.tiles["gate"]
    card = window.panel.cards["gate"]
    # The window is up before anything has loaded.
    assert window.isVisible() and window.loading.isVisible()

    seen: dict[str, object] = {}

    def named_on_screen() -> bool:
        frame = tile.frame
        if frame is not None and any(t.state is TrackState.NAMED and t.identity == "madonna"
                                     for t in frame.result.tracks):
            seen["image"] = tile.grab().toImage()
            return True
        return False

    qtbot.waitUntil(named_on_screen, timeout=120_000)
    # The recognised colour is on the tile (box and name band), not just in a data structure.
    assert colour_pixels(seen["image"], theme.DECISION_COLOURS["recognised"]) > 300
    qtbot.waitUntil(lambda: card.decision is not None and card.decision.track.identity == "madonna", timeout=60_000)
    qtbot.waitUntil(lambda: card.event_id is not None, timeout=30_000)
    assert card.word.text() == "RECOGNISED" and "madonna" in card.name.text().lower()
    madonna_event = card.event_id

    # The guard confirms with Enter: recorded in the tamper-evident log.
    window.focus_camera("gate")
    with qtbot.waitSignal(window.worker.guardRecorded, timeout=30_000) as recorded:
        window.confirm("gate")
    assert recorded.args[0].event_id == madonna_event and recorded.args[0].action == "confirm"

    # Then the stranger: UNKNOWN, with an alarm that stays until acknowledged.
    qtbot.waitUntil(lambda: any(a.state == "unknown" for a in window.alarms), timeout=120_000)
    assert window.banner.isVisible() and "UNKNOWN" in window.banner.text()
    assert tile.alarm is not None
    while window.alarms:
        window.acknowledge_alarm()
    assert not window.banner.isVisible() and tile.alarm is None
    assert tile.painted > 10

    report = close_window(qtbot, window)
    assert report is not None and report.events_pending == 0 and report.events_failed == 0
    with Registry.open(data_dir / "facegate.db") as reg:
        assert reg.verify() == []
        actions = reg.guard_actions([madonna_event])
        assert actions[madonna_event].action == "confirm"


def test_a_camera_that_stalls_shows_stalled_then_live_while_the_window_stays_responsive(qtbot, data_dir,
                                                                                      gate_scene):
    from PySide6.QtCore import QTimer

    from tests.core.mjpeg_server import MjpegServer

    with MjpegServer(fps=25, size=gate_scene.size, render=gate_scene.render) as server:
        window = open_window(qtbot, SessionSettings(sources=(f"north={server.url}",), data_dir=data_dir,
                                                    read_timeout_s=30.0))
        tile = window.grid.tiles["north"]
        ticks = []
        heartbeat = QTimer()
        heartbeat.timeout.connect(lambda: ticks.append(1))
        heartbeat.start(20)
        states: list[SourceState] = []
        window.worker.status.connect(lambda st: states.append(st.state))
        qtbot.waitUntil(lambda: tile.status is not None and tile.status.state is SourceState.LIVE
                        and tile.frame is not None, timeout=120_000)
        server.freeze()  # the camera keeps the connection and stops sending
        qtbot.waitUntil(lambda: SourceState.STALLED in states, timeout=30_000)
        before = len(ticks)
        assert "stalled" in window.camera_labels["north"].text()
        server.thaw()
        qtbot.waitUntil(lambda: states and states[-1] is SourceState.LIVE, timeout=60_000)
        heartbeat.stop()
        assert len(ticks) > before  # the GUI thread kept running its timers during the stall
        assert tile.status is not None and tile.status.state is SourceState.LIVE
        close_window(qtbot, window)


def _view(models: dict[str, tuple[str, float]], state: TrackState = TrackState.NAMED) -> TrackView:
    return TrackView(7, "gate", (200, 120, 160, 190), ((250.0, 190.0), (310.0, 190.0), (280.0, 230.0),
                                                        (255.0, 270.0), (305.0, 270.0)),
                     state, "madonna", "", models, 0.7, 0.97, 6, 0.0, 1.0, 1.0, 0, margin=0.4)


def test_a_face_the_models_disagree_on_is_flagged_on_the_tile_and_in_the_panel(qtbot, gate_scene):
    """Models that disagree (the stacker prefers someone else): magenta box, ⚑ and FLAGGED."""
    from core.live.monitor import FrameResult
    from core.live.sources import SourceStatus
    from core.live.tracking import TrackDecision
    from gui import theme
    from gui.feed import FeedTile, track_state
    from gui.gate_panel import GateCard
    from gui.session_worker import DisplayFrame

    disagree = _view({"svc": ("madonna", 0.9), "stacker": ("mindy_kaling", 0.6), "super_learner": ("madonna", 1.0)})
    agree = _view({m: ("madonna", 0.95) for m in theme.MODEL_ORDER})
    assert track_state(disagree) == "flagged" and track_state(agree) == "recognised"
    image = np.ascontiguousarray(gate_scene.render(0))
    status = SourceStatus("gate", "demo", SourceState.LIVE, 25.0, 100, 0, 0, None, 0.0, 0.04, None)
    result = FrameResult("gate", 1, image, 0.0, (disagree,), status, 25.0, 5.0, {}, "v1")
    tile = FeedTile("gate")
    qtbot.addWidget(tile)
    tile.resize(680, 520)
    tile.set_frame(DisplayFrame(result, image, 1.0))
    grabbed = tile.grab().toImage()
    assert colour_pixels(grabbed, theme.DECISION_COLOURS["flagged"]) > 300
    green = theme.DECISION_COLOURS["recognised"]
    tile.set_frame(DisplayFrame(FrameResult("gate", 2, image, 0.0, (agree,), status, 25.0, 5.0, {}, "v1"), image, 1.0))
    calm = tile.grab().toImage()
    # The same face drawn agreed: green where the flagged one was magenta.
    assert colour_pixels(calm, green) - colour_pixels(grabbed, green) > 300
    assert colour_pixels(calm, theme.DECISION_COLOURS["flagged"]) < 50
    card = GateCard("gate")
    qtbot.addWidget(card)
    state = card.show_decision(TrackDecision("decided", disagree, None, 0.3, None, "v1"), {"madonna": "Madonna"})
    card.grab()
    assert state == "flagged" and "FLAGGED" in card.word.text() and "stacker prefers" in card.flags.text()


def test_console_without_a_display_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "gui.launcher", "console", "--data-dir", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "xvfb-run" in lines[0] and "facegate monitor" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_console_smoke_run_with_quit_after_and_screenshot(tmp_path, demo_registry):
    """`facegate console --quit-after S --screenshot FILE`, as the screenshot script runs it."""
    data = shutil.copytree(demo_registry, tmp_path / "data")
    shot = tmp_path / "shots" / "console.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FACEGATE_LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.run([sys.executable, "-m", "gui.launcher", "-q", "console", "--data-dir", str(data),
                           "--quit-after", "20", "--screenshot", str(shot)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert shot.exists() and shot.stat().st_size > 10_000


def test_the_console_never_imports_tensorflow_once_the_networks_are_converted(tmp_path, demo_registry, pipeline):
    """Issue 13: the console runs on ONNX Runtime alone (the conversion, done here first, is the only import)."""
    pipeline.embedder.load()
    pipeline.detector.load()
    assert (pipeline.embedder.backend, pipeline.detector.backend) == ("onnx", "onnx")
    data = shutil.copytree(demo_registry, tmp_path / "data")
    code = (
        "import json, sys\n"
        "from gui.launcher import main\n"
        f"rc = main(['-q', 'console', '--data-dir', {str(data)!r}, '--quit-after', '15', '--backend', 'onnx'])\n"
        "print(json.dumps({'rc': rc, 'loaded': [m for m in ('tensorflow', 'keras', 'tf2onnx', 'mtcnn')\n"
        "                                       if m in sys.modules]}))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FACEGATE_LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"rc": 0, "loaded": []}
