"""The live pipeline on real frames: real MTCNN, FaceNet and classifiers, real sources, real SQLite.

Only the stale-frame source is a fake (it injects old frames); everything else is the real thing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.live.monitor import EventWriter, Monitor, MonitorOptions, decision_code
from core.live.sources import Frame, RenderedSource, SourceOptions, SourceState, SourceStatus, open_source
from core.live.tracking import TrackState
from core.types import UNKNOWN
from tests.conftest import madonna_then_stranger


@pytest.fixture(scope="module")
def short_scene(seed, strangers_dir):
    """Madonna (val photo, never trained on), then a stranger: two segments of about 5 s."""
    return madonna_then_stranger(seed, strangers_dir)


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
        assert set(recognised[0].probabilities or {}) == {"svc", "stacker", "super_learner", "enrolled"}
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


def test_events_continue_after_the_camera_drops_mid_stream(short_scene, trained_model, pipeline, registry_path):
    """A real HTTP MJPEG camera that stops mid-stream and comes back: stalled, then live, events go on."""
    from tests.core.mjpeg_server import MjpegServer

    options = SourceOptions(open_timeout_s=2.0, read_timeout_s=1.0, stall_after_s=0.5, backoff_initial_s=0.2,
                            backoff_max_s=1.0)
    server = MjpegServer(fps=25.0, size=short_scene.size, render=short_scene.render).start()
    source = open_source(server.url, name="north", options=options)
    states = []
    monitor = Monitor([source], trained_model, pipeline, registry_path=registry_path,
                      on_frame=lambda r: states.append(r.status.state))
    monitor.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not monitor.decisions:
            time.sleep(0.1)
        assert monitor.decisions and monitor.decisions[0].track.identity == "madonna"
        server.stop()  # the camera drops mid-stream
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and source.status().state is SourceState.LIVE:
            time.sleep(0.1)
        down = source.status().state
        time.sleep(1.0)
        server.start()  # and comes back on the same address
        before = len([d for d in monitor.decisions if d.kind != "undecided"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                d.track.identity == UNKNOWN and d.kind == "decided" for d in monitor.decisions):
            time.sleep(0.1)
    finally:
        monitor.stop()
        server.stop()
    assert down in (SourceState.STALLED, SourceState.CONNECTING, SourceState.FAILED)
    assert source.status().reconnects >= 1
    after = [d for d in monitor.decisions if d.kind != "undecided"][before:]
    assert any(d.track.identity == UNKNOWN for d in after), [d.track.identity for d in monitor.decisions]
    assert SourceState.LIVE in states and monitor.workers[0].last_error is None
    from core.registry import Registry

    with Registry.open(registry_path) as reg:
        codes = [e.decision for e in reg.events()]
    assert "recognised" in codes and "unknown" in codes


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
    assert not monitor.decisions


def test_event_writer_keeps_an_event_whose_operator_was_erased(registry_path, trained_model):
    from core.live.tracking import Observation, Tracker, TrackerOptions
    from core.registry import Registry
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


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, seed):
    """``facegate monitor --source demo`` for one loop of the scene on an empty registry (run once)."""
    import contextlib
    import io

    from core.cli.main import main
    from core.demo.scene import DemoScene

    data_dir = tmp_path_factory.mktemp("demo-data")
    scene = DemoScene.from_assets()
    seconds = scene.period / scene.fps + 4
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["-q", "monitor", "--source", "demo", "--duration", f"{seconds:.0f}", "--data-dir",
                     str(data_dir), "--status-every", "10"])
    return code, out.getvalue(), data_dir, scene


def test_cli_demo_enrolls_an_empty_registry_and_names_everyone(demo_run):
    """The README's first command: the demo names the five enrolled people and reports strangers."""
    code, out, data_dir, scene = demo_run
    assert code == 0, out
    assert "Demo: enrolled the 5-celebrity train photos" in out
    lines = out.splitlines()
    for person in scene.identities:
        assert any("RECOGNISED" in line and person in line for line in lines), (person, out)
    assert any("UNKNOWN" in line for line in lines), out
    assert "status: demo live" in out

    from core.registry import Registry

    with Registry.open(data_dir / "facegate.db") as reg:
        people = {op.employee_id for op in reg.list_operators()}
        decisions = {e.decision for e in reg.events()}
        audit = [a for a in reg.audit_log() if a.actor == "demo-setup"]
    assert people == set(scene.identities)
    assert {"recognised", "unknown"} <= decisions
    assert audit


def test_cli_monitor_stops_cleanly_on_ctrl_c_and_leaves_other_registries_alone(demo_run, tmp_path):
    import signal
    import subprocess
    import sys

    _, _, data_dir, _ = demo_run
    before = _registry_state(data_dir)
    lines: list[str] = []
    with open(tmp_path / "stderr.txt", "w") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "core.cli.main", "-q", "monitor", "--data-dir", str(data_dir)],
                                stdout=subprocess.PIPE, stderr=err_file, text=True)
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(line.startswith("Monitoring") for line in lines):
                assert proc.poll() is None, "".join(lines) + (tmp_path / "stderr.txt").read_text()
                time.sleep(0.2)
            assert any(line.startswith("Monitoring demo") for line in lines), "".join(lines)
            time.sleep(5)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(10)
    out, err = "".join(lines), (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, out + err
    assert "Interrupted after" in out and "Traceback" not in err
    assert "Demo: enrolled" not in out  # the registry already had people: untouched
    assert _registry_state(data_dir) == before


def _registry_state(data_dir: Path) -> tuple[list[str], list[int]]:
    from core.registry import Registry

    with Registry.open(data_dir / "facegate.db") as reg:
        return sorted(op.employee_id for op in reg.list_operators()), [m.id for m in reg.list_models()]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.slow
def test_soak_ten_minutes_of_demo_at_full_speed_keeps_memory_flat(trained_model, pipeline):
    """10 minutes of the demo scene played as fast as it renders: memory after warm-up stays flat.

    Run with ``pytest -m slow``; the same soak with two cameras is in benchmarks/bench_monitor.py.
    """
    from core.demo.scene import DemoScene

    scene = DemoScene.from_assets()
    source = RenderedSource("soak", scene.render, options=SourceOptions(realtime=False))
    monitor = Monitor([source], trained_model, pipeline)
    samples = []
    monitor.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 600:
            time.sleep(15)
            samples.append(_rss_mb())
    finally:
        monitor.stop()
    settled = samples[4:]  # after the first minute
    assert max(settled) - min(settled) < 100, samples
    assert monitor.workers[0].frames_processed > 0 and monitor.decisions


def test_cameras_share_the_recognition_budget_and_run_at_a_lower_priority(short_scene, trained_model, pipeline):
    """Issue 13: cheap ONNX passes must not take the cores from the console's window and overlays."""
    import os
    import sys

    sources = [RenderedSource(f"gate{i}", short_scene.render, fps=short_scene.fps) for i in range(2)]
    options = MonitorOptions(recognition_budget_per_s=4.0)  # two cameras: a pass every 0.5 s each
    monitor = Monitor(sources, trained_model, pipeline, options)
    nice: list[int] = []
    if sys.platform.startswith("linux"):
        def on_frame(result):
            if not nice:
                threads = {t.name: t.native_id for t in threading.enumerate()}
                tid = next(v for k, v in threads.items() if k.endswith("-recognition"))
                nice.append(os.getpriority(os.PRIO_PROCESS, tid) - os.getpriority(os.PRIO_PROCESS, 0))
        monitor.workers[0].on_frame = on_frame
    started = time.monotonic()
    run_until(monitor, lambda: all(w.passes >= 3 for w in monitor.workers), 20)
    elapsed = time.monotonic() - started
    for worker in monitor.workers:
        assert 3 <= worker.passes <= 1 + elapsed / 0.5 + 1  # never more often than every 0.5 s
    if sys.platform.startswith("linux"):
        assert nice == [options.recognition_nice]
    with pytest.raises(ValueError, match="recognition_budget_per_s"):
        MonitorOptions(recognition_budget_per_s=0)
