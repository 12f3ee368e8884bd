"""The live-session API that the CLI and the console share: real pipeline, real video file, real SQLite.

The only fault injected is a registry that refuses the event writer's connection.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from core.errors import CameraError
from core.live.session import (
    LiveSession,
    SessionCallbacks,
    SessionSettings,
    SettingsError,
    parse_sources,
)
from core.live.sources import SourceState
from core.types import UNKNOWN
from tests.conftest import madonna_then_stranger, write_clip


@pytest.fixture(scope="module")
def gate_clip(tmp_path_factory, seed, strangers_dir) -> Path:
    """A real video file: Madonna (a val photo, never trained on) walks up, then a stranger."""
    return write_clip(madonna_then_stranger(seed, strangers_dir), tmp_path_factory.mktemp("clips") / "gate.avi")


def copy_registry(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def refuse_the_event_writer(monkeypatch, message: str) -> None:
    """Fault injection: the registry refuses the event writer's connection (and only that one)."""
    from core.errors import FaceGateError
    from core.registry import Registry

    real_open = Registry.open.__func__  # type: ignore[attr-defined]

    def refuse(cls, path, *args, **kwargs):
        if threading.current_thread().name == "event-writer":
            raise FaceGateError(message)
        return real_open(cls, path, *args, **kwargs)

    monkeypatch.setattr(Registry, "open", classmethod(refuse))


class Recorder:
    """Collects every callback with the name of the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str):
        def record(*args):
            with self.lock:
                self.calls.append((name, threading.current_thread().name, args[0] if len(args) == 1 else args))
        return record

    def callbacks(self) -> SessionCallbacks:
        return SessionCallbacks(**{f"on_{n}": self(n) for n in
                                   ("progress", "ready", "status", "frame", "decision", "event", "model", "error",
                                    "ended")})

    def of(self, name: str) -> list[tuple[str, object]]:
        with self.lock:
            return [(thread, value) for n, thread, value in self.calls if n == name]


def test_a_session_on_a_video_file_decides_records_and_ends_by_itself(demo_registry, gate_clip, tmp_path):
    from core.live.monitor import decision_code
    from core.registry import Registry

    data_dir = copy_registry(demo_registry, tmp_path / "data")
    rec = Recorder()
    session = LiveSession(SessionSettings(sources=(f"gate={gate_clip}",), data_dir=data_dir), rec.callbacks())
    session.start()  # returns at once
    assert session.wait(180), "the session did not end when its only source ended"
    report = session.stop()

    assert report.end.reason == "sources-ended" and report.clean, report
    decisions = [value for _, value in rec.of("decision")]
    codes = {(decision_code(d), d.track.identity) for d in decisions}  # type: ignore[attr-defined]
    assert ("recognised", "madonna") in codes and ("unknown", UNKNOWN) in codes, codes
    assert report.events_written == len(decisions) and report.events_pending == 0
    recorded = [value for _, value in rec.of("event")]
    assert sorted(r.decision.track.id for r in recorded) == sorted(d.track.id for d in decisions)  # type: ignore[attr-defined]
    assert {thread for thread, _ in rec.of("event")} == {"event-writer"}
    with Registry.open(data_dir / "facegate.db") as reg:
        assert len(reg.events()) == len(decisions)
        assert reg.verify() == []

    # Each callback on the thread the module docstring promises.
    assert {thread for thread, _ in rec.of("decision")} == {"gate-overlay"}
    assert {thread for thread, _ in rec.of("frame")} == {"gate-overlay"}
    assert {thread for thread, _ in rec.of("status")} == {"live-session"}
    assert {thread for thread, _ in rec.of("ready")} == {"live-session"}
    states = [status.state for _, status in rec.of("status")]  # type: ignore[attr-defined]
    assert states[-1] is SourceState.ENDED and SourceState.LIVE in states
    assert [end.reason for _, end in rec.of("ended")] == ["sources-ended"]  # type: ignore[attr-defined]
    assert rec.of("progress") and rec.of("progress")[-1][1][0] == 1.0  # type: ignore[index]
    assert not rec.of("error")
    (camera,) = report.cameras
    assert camera.name == "gate" and camera.frames_processed > 0 and camera.recognition_passes > 0


def test_memory_stays_bounded_in_a_long_session(demo_registry, gate_clip, tmp_path):
    data_dir = copy_registry(demo_registry, tmp_path / "data")
    session = LiveSession(SessionSettings(sources=(str(gate_clip),), data_dir=data_dir), SessionCallbacks())
    session.start()
    session.wait(180)
    session.stop()
    monitor = session.monitor
    assert monitor is not None and monitor.writer is not None
    assert monitor.decisions.maxlen == monitor.options.keep_decisions
    assert monitor.writer.event_ids.maxlen == monitor.writer.KEEP_IDS


def test_a_registry_the_event_writer_cannot_open_ends_the_session_with_an_error(demo_registry, gate_clip,
                                                                               tmp_path, monkeypatch):

    data_dir = copy_registry(demo_registry, tmp_path / "data")
    refuse_the_event_writer(monkeypatch, "the registry is locked by another program (injected)")
    rec = Recorder()
    session = LiveSession(SessionSettings(sources=(str(gate_clip),), data_dir=data_dir), rec.callbacks())
    session.start()
    assert session.wait(120)
    report = session.stop()
    assert report.end.reason == "failed" and not report.clean
    assert report.end.error is not None and report.end.error.where == "event-writer"
    assert "locked by another program" in report.end.error.message
    assert any(e.fatal for _, e in rec.of("error"))  # type: ignore[attr-defined]


def test_cli_monitor_exits_non_zero_when_events_cannot_be_recorded(demo_registry, gate_clip, tmp_path,
                                                                  monkeypatch, capsys):
    from core.cli.main import main

    data_dir = copy_registry(demo_registry, tmp_path / "data")
    refuse_the_event_writer(monkeypatch, "disk is read-only (injected)")
    code = main(["-q", "monitor", "--source", str(gate_clip), "--data-dir", str(data_dir), "--duration", "60"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "event-writer" in err and "disk is read-only" in err and "Traceback" not in err


def test_cli_monitor_ends_when_every_source_has_ended(demo_registry, gate_clip, tmp_path, capsys):
    from core.cli.main import main

    data_dir = copy_registry(demo_registry, tmp_path / "data")
    code = main(["-q", "monitor", "--source", f"gate={gate_clip}", "--data-dir", str(data_dir),
                 "--duration", "300", "--status-every", "60"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert "Every source ended after" in out and "RECOGNISED" in out and "madonna" in out


def test_bad_settings_and_cameras_fail_at_once_before_anything_loads(tmp_path):
    with pytest.raises(SettingsError, match="minimum face"):
        SessionSettings(min_face=10)
    with pytest.raises(SettingsError, match="frame age"):
        SessionSettings(max_frame_age_s=0)
    with pytest.raises(SettingsError, match="No camera"):
        SessionSettings(sources=())
    with pytest.raises(CameraError):
        LiveSession(SessionSettings(sources=(str(tmp_path / "missing.mp4"),), data_dir=tmp_path))


def test_a_registry_with_nobody_enrolled_fails_loading_with_a_clear_error(tmp_path, gate_clip):
    rec = Recorder()
    session = LiveSession(SessionSettings(sources=(str(gate_clip),), data_dir=tmp_path / "empty"), rec.callbacks())
    session.start()
    assert session.wait(60)
    report = session.stop()
    assert report.end.reason == "failed" and report.end.error is not None
    assert report.end.error.where == "loading" and "Nobody is enrolled" in report.end.error.message
    assert {thread for thread, _ in rec.of("error")} == {"live-session"}


def test_camera_names_come_from_specs_and_repeats_are_numbered(tmp_path):
    assert parse_sources(["demo", "demo", "north=rtsp://u:p@10.0.0.5/s"]) == [
        ("demo", "demo"), ("demo-2", "demo"), ("north", "rtsp://u:p@10.0.0.5/s")]
    with pytest.raises(SettingsError, match="same name"):
        parse_sources(["a=demo", "a=0"])


def test_a_session_that_fails_while_loading_lets_the_process_exit_cleanly(tmp_path, pipeline, demo_registry):
    """A start that fails while the networks load (here: the active model's files are gone) must not leave
    ONNX Runtime loading in a thread the interpreter tears down at exit (that aborted the process:
    "terminate called without an active exception")."""
    import subprocess
    import sys

    pipeline.embedder.load()  # converted here; the child only loads the cached networks
    pipeline.detector.load()
    data = Path(shutil.copytree(demo_registry, tmp_path / "data"))
    for model_file in (data / "models").rglob("model.joblib"):
        model_file.unlink()
    code = (
        "from core.live.session import LiveSession, SessionSettings\n"
        f"s = LiveSession(SessionSettings(sources=('demo',), data_dir={str(data)!r}, bootstrap_demo=False))\n"
        "s.start()\n"
        "assert s.wait(120)\n"
        "print(s.stop().end.reason)\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "failed"
