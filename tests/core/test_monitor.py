"""The live pipeline on real frames: real MTCNN, FaceNet and classifiers, real sources, real SQLite.

Only the stale-frame source is a fake (it injects old frames); everything else is the real thing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.monitor import EventWriter, Monitor, MonitorOptions, decision_code
from core.sources import Frame, RenderedSource, SourceOptions, SourceState, SourceStatus, open_source
from core.tracking import TrackState
from core.types import UNKNOWN


@pytest.fixture(scope="module")
def short_scene(seed, strangers_dir):
    """Madonna (val photo, never trained on), then a stranger: two segments of about 5 s."""
    from core.demo_scene import DemoScene
    from core.detector import MtcnnDetector
    from core.imageio import read_image

    detector = MtcnnDetector()
    faces = []
    for identity, path in (("madonna", sorted((seed.dataset / "val" / "madonna").iterdir())[0]),
                           ("unknown", strangers_dir / "barack_obama" / "obama.jpg")):
        photo = read_image(path)
        faces.append((identity, photo, detector.detect(photo)[0].box))
    return DemoScene.with_faces(faces, script=[[0], [1]])


@pytest.fixture()
def registry_path(tmp_path):
    from core.registry import Registry

    path = tmp_path / "facegate.db"
    with Registry.open(path) as reg:
        reg.add_operator("madonna", "Madonna", actor="test")
    return path


def run_until(monitor: Monitor, predicate, timeout: float) -> None:
    monitor.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.1)
    finally:
        monitor.stop()


def test_monitor_names_the_enrolled_person_and_reports_the_stranger(short_scene, trained_model, pipeline,
                                                                    registry_path):
    source = RenderedSource("gate1", short_scene.render, fps=short_scene.fps)
    frames = []
    monitor = Monitor([source], trained_model, pipeline, registry_path=registry_path,
                      on_frame=lambda r: frames.append((r.frame_index, len(r.tracks))))
    seconds = short_scene.period / short_scene.fps - 0.5  # one loop: each person crosses once
    run_until(monitor, lambda: False, seconds)

    codes = [(decision_code(d), d.track.identity) for d in monitor.decisions if d.kind != "undecided"]
    assert ("recognised", "madonna") in codes
    assert ("unknown", UNKNOWN) in codes
    # One person crossing is one track and one decision (no flapping).
    assert sum(1 for c in codes if c == ("recognised", "madonna")) == 1
    named = next(d for d in monitor.decisions if d.track.identity == "madonna")
    assert named.track.state is TrackState.NAMED
    assert set(named.track.models) == {"svc", "stacker", "super_learner"}
    assert all(ident == "madonna" for ident, _ in named.track.models.values())
    assert named.latency is not None and named.thumbnail is not None
    worker = monitor.workers[0]
    assert worker.passes > 0 and worker.last_error is None
    assert any(n > 0 for _, n in frames)  # frames were published with their tracks

    from core.registry import Registry

    with Registry.open(registry_path) as reg:
        events = reg.events()
        assert reg.verify() == []
        recognised = [e for e in events if e.decision == "recognised"]
        assert len(recognised) == 1 and recognised[0].employee_id == "madonna"
        assert recognised[0].camera == "gate1" and recognised[0].model_version == trained_model.version
        assert set(recognised[0].probabilities or {}) == {"svc", "stacker", "super_learner"}
        assert reg.event_thumbnail(recognised[0].id)[:2] == b"\xff\xd8"  # a JPEG
        unknown = [e for e in events if e.decision == "unknown"]
        assert unknown and all(e.operator_id is None for e in unknown)
    assert monitor.writer is not None and monitor.writer.failed == 0


def test_a_dead_camera_does_not_hold_up_a_live_one(short_scene, trained_model, pipeline):
    from tests.core.mjpeg_server import SilentServer

    with SilentServer() as silent:
        dead = open_source(silent.url, name="dead", options=SourceOptions(open_timeout_s=1.0, read_timeout_s=1.0))
        live = RenderedSource("live", short_scene.render, fps=short_scene.fps)
        monitor = Monitor([dead, live], trained_model, pipeline)
        run_until(monitor, lambda: any(d.track.identity == "madonna" for d in monitor.decisions), 20.0)
        dead_state = dead.status().state
    assert any(d.track.camera == "live" and d.track.identity == "madonna" for d in monitor.decisions)
    assert dead_state in (SourceState.CONNECTING, SourceState.FAILED, SourceState.STOPPED)
    assert monitor.workers[0].passes == 0


class _StaleSource:
    """Fault injection: every frame it hands out was captured 5 s ago."""

    name = "stale"

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.index = 0
        self._stop = threading.Event()

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()

    def latest(self, after: int = -1, max_age: float | None = None):
        return None

    def wait(self, after: int = -1, timeout: float = 1.0):
        if self._stop.wait(0.04):
            return None
        self.index += 1
        return Frame("stale", self.index, self.image, time.monotonic() - 5.0, time.time() - 5.0)

    def status(self) -> SourceStatus:
        return SourceStatus("stale", "fake", SourceState.LIVE, 25.0, self.index, 0, 0, None, 0.0, 5.0, None)


def test_no_decision_on_old_frames(short_scene, trained_model, pipeline):
    frame = short_scene.render(short_scene.actors()[0].gate_start + 5)
    source = _StaleSource(frame)
    monitor = Monitor([source], trained_model, pipeline, MonitorOptions(max_frame_age_s=1.0))  # type: ignore[list-item]
    run_until(monitor, lambda: False, 2.0)
    worker = monitor.workers[0]
    assert worker.passes == 0 and worker.stale_dropped > 0
    assert monitor.decisions == []


def test_event_writer_keeps_an_event_whose_operator_was_erased(registry_path, trained_model):
    from core.registry import Registry
    from core.tracking import Observation, Tracker, TrackerOptions
    from tests.core.test_tracking import result

    tracker = Tracker("gate1", TrackerOptions(votes_needed=1))
    r = result("madonna")
    decision = tracker.observe([(Observation(0, 0.0, r, 1.0, np.zeros((96, 96, 3), np.uint8)),
                                 r.detection.box, r.detection.landmarks)])[0]
    with Registry.open(registry_path) as reg:
        reg.remove_operator("madonna", actor="test")
    writer = EventWriter(registry_path)
    writer.start()
    writer.submit(decision)
    writer.stop()
    assert writer.written == 1 and writer.failed == 0
    with Registry.open(registry_path) as reg:
        (event,) = reg.events()
    assert event.decision == "recognised" and event.operator_id is None
    assert "no longer enrolled" in (event.reason or "")


def test_monitor_rejects_duplicate_camera_names(trained_model, pipeline, short_scene):
    a = RenderedSource("same", short_scene.render)
    b = RenderedSource("same", short_scene.render)
    with pytest.raises(ValueError, match="same name"):
        Monitor([a, b], trained_model, pipeline)


def test_cli_demo_enrolls_an_empty_registry_and_names_everyone(tmp_path: Path, capsys, seed):
    """The README's first command: the demo names the five enrolled people and reports strangers."""
    from core.cli import main
    from core.demo_scene import DemoScene

    scene = DemoScene.from_assets()
    seconds = scene.period / scene.fps + 4
    code = main(["-q", "monitor", "--source", "demo", "--duration", f"{seconds:.0f}", "--data-dir", str(tmp_path),
                 "--status-every", "10"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Demo: enrolled the 5-celebrity train photos" in out
    lines = out.splitlines()
    for person in scene.identities:
        assert any("RECOGNISED" in line and person in line for line in lines), (person, out)
    assert any("UNKNOWN" in line for line in lines), out
    assert "status: demo live" in out

    from core.registry import Registry

    with Registry.open(tmp_path / "facegate.db") as reg:
        people = {op.employee_id for op in reg.list_operators()}
        decisions = {e.decision for e in reg.events()}
        audit = [a for a in reg.audit_log() if a.actor == "demo-setup"]
    assert people == set(scene.identities)
    assert {"recognised", "unknown"} <= decisions
    assert audit

    # A registry that already has people is never touched by the demo.
    code = main(["-q", "monitor", "--source", "demo", "--duration", "3", "--data-dir", str(tmp_path)])
    assert code == 0
    assert "Demo: enrolled" not in capsys.readouterr().out
