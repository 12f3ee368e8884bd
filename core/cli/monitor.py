"""``facegate monitor``: the live pipeline, headless — a thin client of :mod:`core.live.session`.

Prints each decision as it happens and a status line per camera every few seconds; stops after
``--duration`` seconds, when every source has ended (video files, folders), or cleanly on Ctrl-C /
SIGTERM (every pending event is written first).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from core.cli.common import (
    DATA_DIR_HELP,
    POSITIVE_SECONDS,
    IntArg,
    ProgressBar,
    add_backend_arg,
    add_policy_args,
    data_dir,
    open_registry,
    policy_from_args,
    policy_overridden,
)

if TYPE_CHECKING:  # the session pulls in numpy and OpenCV: imported when the command runs, not for --help
    from core.live.session import CameraStats, ModelInfo, SessionError, StopReport
    from core.live.tracking import TrackDecision


def _format_decision(decision: TrackDecision, names: dict[str, str]) -> str:
    from core.live.monitor import decision_code
    from core.recognition.openset import enrolled_label

    track = decision.track
    code = decision_code(decision)
    who = ""
    if code in ("recognised", "gallery-only"):
        name = names.get(track.identity, "")
        who = f"{track.identity}" + (f" ({name})" if name and name != track.identity else "")
    models = "  ".join(f"{m} {ident if ident != track.identity else ''}{' ' if ident != track.identity else ''}"
                       f"{p:.2f}" for m, (ident, p) in track.models.items())
    latency = f"  after {1000 * decision.latency:.0f} ms" if decision.latency is not None else ""
    change = f"  (was {decision.previous})" if decision.kind == "changed" else ""
    stamp = datetime.now().strftime("%H:%M:%S")
    gate = enrolled_label(track.enrolled)  # "" before any recognised observation
    return (f"{stamp} {track.camera:<8} track {track.id:<4} {code.upper():<12} {who:<28} "
            f"{gate + '  ' if gate else ''}{models}  "
            f"distance {track.distance:.2f} (threshold {track.threshold:.2f}){latency}{change}")


def _decision_json(decision: TrackDecision) -> dict[str, Any]:
    from core.live.monitor import decision_code

    t = decision.track
    return {"type": "decision", "time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
            "camera": t.camera, "track": t.id, "decision": decision_code(decision), "kind": decision.kind,
            "identity": t.identity if t.state.value == "named" else None, "previous": decision.previous,
            "models": {m: {"identity": i, "probability": round(p, 4)} for m, (i, p) in t.models.items()},
            "enrolled": round(t.enrolled, 4) if math.isfinite(t.enrolled) else None,
            "distance": round(t.distance, 4), "threshold": round(t.threshold, 4), "reason": t.reason,
            "latency_ms": None if decision.latency is None else round(1000 * decision.latency, 1),
            "observations": t.observations}


def _status_line(cam: CameraStats, events_written: int | None) -> str:
    extra = f"; {cam.last_error}" if cam.last_error else ""
    events = f", events written {events_written}" if events_written is not None else ""
    return (f"status: {cam.status.line()} | processed {cam.processed_fps:.1f} fps, recognition "
            f"{cam.recognition_fps:.1f}/s, {cam.tracks} track(s){events}{extra}")


def _status_json(cam: CameraStats) -> dict[str, Any]:
    st = cam.status
    return {"type": "status", "camera": st.camera, "state": st.state.value, "fps": round(st.fps, 2),
            "last_error": st.last_error, "processed_fps": round(cam.processed_fps, 2),
            "recognition_fps": round(cam.recognition_fps, 2)}


def _summary(report: StopReport, interrupted: bool, db_path: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps({
            "type": "summary", "seconds": round(report.seconds, 1), "end": report.end.reason,
            "decisions": report.decisions, "events_written": report.events_written,
            "events_failed": report.events_failed, "events_pending": report.events_pending,
            "cameras": {c.name: {"frames_processed": c.frames_processed, "recognition_passes": c.recognition_passes,
                                 "stale_dropped": c.stale_dropped, "state": c.status.state.value}
                        for c in report.cameras}})
    elapsed = report.seconds
    per_camera = "; ".join(f"{c.name}: {c.frames_processed} frames processed "
                           f"({c.frames_processed / max(elapsed, 1e-9):.1f} fps), {c.recognition_passes} recognition "
                           f"passes" for c in report.cameras)
    decided = ", ".join(f"{n} {k}" for k, n in sorted(report.decisions.items())) or "no decisions"
    how = "Interrupted" if interrupted else ("Every source ended" if report.end.reason == "sources-ended"
                                             else "Stopped")
    return (f"{how} after {elapsed:.1f} s. {per_camera}. {decided}; {report.events_written} events written to "
            f"{db_path}.")


def _authorize_overrides(args: argparse.Namespace) -> str:
    """Log HR in and audit a run-time override of the decision settings; ``""`` when none was given.

    Who is let in must not change without HR: ``--threshold`` and friends used to change it silently.
    """
    given = policy_overridden(args)
    if args.min_face is not None:
        given["min_face"] = args.min_face
    if not given:
        return ""
    # Validate the sources first: a typo in a camera must not cost an HR login.
    from core.live.session import parse_sources
    from core.registry.security import authorize_hr, credentials_from_env_or_prompt

    parse_sources(tuple(args.source or ["demo"]))
    wanted = ", ".join(f"{k} {v}" for k, v in given.items())
    with open_registry(args) as reg:
        session = authorize_hr(reg, credentials_from_env_or_prompt,
                               action=f"override the decision settings for one monitor run ({wanted})")
        reg.audit(session.actor, "policy_override", "monitor", None, given)
    print(f"Decision settings overridden for this run by {session.actor}: {wanted} (audited).", file=sys.stderr)
    return session.actor


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run ``facegate monitor``."""
    from core.live.session import DEFAULT_SOURCE, LiveSession, SessionCallbacks, SessionSettings
    from core.live.sources import redact_url

    lock = threading.Lock()

    def say(line: str, stream: Any = None) -> None:
        with lock:
            print(line, file=stream or sys.stdout, flush=True)

    ready_at: list[float] = []

    def on_ready(info: ModelInfo) -> None:
        ready_at.append(time.monotonic())  # --duration counts from here: loading is not monitoring
        if session.demo_enrolled:
            say("Demo: enrolled the 5-celebrity train photos into the empty registry and trained a model.")
        if not args.json:
            cameras = ", ".join(f"{name} ({redact_url(spec)})" for name, spec in session.cameras)
            say(f"Monitoring {cameras} with model version {info.version} ({info.people} people). Ctrl-C stops.")
            if info.trust:
                say(f"Security: {info.trust}")
            if info.networks:
                say(f"Networks: {info.networks}")

    def on_decision(decision: TrackDecision) -> None:
        say(json.dumps(_decision_json(decision)) if args.json else _format_decision(decision, session.names))

    def on_model(info: ModelInfo) -> None:
        if not args.json:
            say(f"Model reloaded: version {info.version} ({info.people} people).")

    def on_error(error: SessionError) -> None:
        if not error.fatal:
            say(f"facegate: warning: {error.where}: {error.message}", sys.stderr)

    authorized_by = _authorize_overrides(args)
    settings = SessionSettings(
        sources=tuple(args.source or [DEFAULT_SOURCE]), data_dir=data_dir(args),
        policy=policy_from_args(args) if authorized_by else None, policy_authorized_by=authorized_by,
        min_face=args.min_face or 80, max_frame_age_s=args.max_frame_age, open_timeout_s=args.open_timeout,
        read_timeout_s=args.read_timeout)
    callbacks = SessionCallbacks(on_progress=None if args.quiet else ProgressBar(), on_ready=on_ready,
                                 on_decision=on_decision, on_model=on_model, on_error=on_error)
    # Bad settings and camera specs (a missing file, an unknown scheme) fail here, before any model loads.
    session = LiveSession(settings, callbacks)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    interrupted = False
    try:
        session.start()
        next_status: float | None = None
        while not stop.is_set() and not session.wait(0):
            now = time.monotonic()
            if not ready_at:  # still loading (demo enrollment, model, networks)
                session.wait(0.1)
                continue
            if next_status is None:
                next_status = ready_at[0] + args.status_every
            if args.duration is not None and now - ready_at[0] >= args.duration:
                break
            wake = next_status if args.duration is None else min(next_status, ready_at[0] + args.duration)
            session.wait(max(0.05, min(0.5, wake - now)))
            if time.monotonic() >= next_status:
                next_status += args.status_every
                for cam in session.camera_stats():
                    say(json.dumps(_status_json(cam)) if args.json
                        else _status_line(cam, session.events_written if settings.record_events else None))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # A second Ctrl-C must not cut the writing of the pending events short.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            report = session.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)
    error = report.end.error
    if error is not None and error.where == "loading":
        say(f"facegate: error: {error.message}", sys.stderr)
        return 2
    say(_summary(report, interrupted, session.registry_path, args.json))
    if error is not None:
        say(f"facegate: error: {error.where}: {error.message}", sys.stderr)
        return 2
    if report.events_failed or report.events_pending:
        say(f"facegate: error: {report.events_failed + report.events_pending} event(s) could not be recorded; "
            f"see the log.", sys.stderr)
        return 2
    return 130 if interrupted else 0


def register(sub: Any) -> None:
    """Add ``monitor`` to the ``facegate`` sub-parser."""
    p = sub.add_parser("monitor", help="live recognition on cameras, headless (default: the built-in demo)")
    p.add_argument("--source", action="append",
                   help="camera: 'demo', a webcam index (0), an rtsp:// or http(s):// URL, a video file or a "
                        "folder of images, optionally named NAME=SPEC (e.g. north=rtsp://…); repeat for several "
                        "cameras (default: demo)")
    p.add_argument("--duration", type=POSITIVE_SECONDS,
                   help="stop after this many seconds, more than 0 (default: until Ctrl-C)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    # 20 px is MTCNN's own minimum; 4096 px is more than any camera frame holds.
    p.add_argument("--min-face", type=IntArg(minimum=20, maximum=4096), default=None,
                   help="smallest face to look for, in pixels, 20 to 4096 (default: HR's signed setting, else 80; "
                        "gate faces are large); an override needs an HR login, audited")
    p.add_argument("--max-frame-age", type=POSITIVE_SECONDS, default=1.0,
                   help="never decide on a frame older than this many seconds, more than 0 (default: 1)")
    p.add_argument("--open-timeout", type=POSITIVE_SECONDS, default=5.0,
                   help="seconds a network camera may take to open, more than 0 (default: 5)")
    p.add_argument("--read-timeout", type=POSITIVE_SECONDS, default=5.0,
                   help="seconds a network camera may take to deliver its next frame before FaceGate "
                        "drops the connection and reconnects, more than 0 (default: 5)")
    p.add_argument("--status-every", type=POSITIVE_SECONDS, default=5.0,
                   help="seconds between status lines, more than 0 (default: 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object per decision / status line")
    add_policy_args(p, deep=False, overrides=True)
    add_backend_arg(p)
    p.set_defaults(func=cmd_monitor)
