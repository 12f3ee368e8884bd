"""``facegate monitor``: the live pipeline, headless.

Prints each decision as it happens and a status line per camera every few seconds; stops after
``--duration`` seconds, or cleanly on Ctrl-C / SIGTERM (every pending event is written first).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from core.errors import FaceGateError, ModelError

DEFAULT_SOURCE = "demo"
_NAMED = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,31})=(.+)$")


def parse_sources(specs: list[str]) -> list[tuple[str | None, str]]:
    """``NAME=SPEC`` or ``SPEC`` per camera → ``(name or None, spec)``.

    A prefix counts as a name only if it is a short identifier and the whole argument is not an
    existing file or folder (so ``a=b.mp4`` on disk stays a file).
    """
    out: list[tuple[str | None, str]] = []
    for spec in specs:
        match = _NAMED.match(spec)
        if match and not Path(spec).exists() and "://" not in match.group(1):
            out.append((match.group(1), match.group(2)))
        else:
            out.append((None, spec))
    return out


def unique_names(names: list[str]) -> list[str]:
    """``demo, demo`` → ``demo, demo-2``: every camera needs its own name in events."""
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def _format_decision(decision: Any, names: dict[str, str]) -> str:
    from core.live.monitor import decision_code

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
    return (f"{stamp} {track.camera:<8} track {track.id:<4} {code.upper():<12} {who:<28} {models}  "
            f"distance {track.distance:.2f} (threshold {track.threshold:.2f}){latency}{change}")


def _decision_json(decision: Any) -> dict[str, Any]:
    from core.live.monitor import decision_code

    t = decision.track
    return {"type": "decision", "time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
            "camera": t.camera, "track": t.id, "decision": decision_code(decision), "kind": decision.kind,
            "identity": t.identity if t.state.value == "named" else None, "previous": decision.previous,
            "models": {m: {"identity": i, "probability": round(p, 4)} for m, (i, p) in t.models.items()},
            "distance": round(t.distance, 4), "threshold": round(t.threshold, 4), "reason": t.reason,
            "latency_ms": None if decision.latency is None else round(1000 * decision.latency, 1),
            "observations": t.observations}


def _status_line(worker: Any, writer: Any) -> str:
    status = worker.source.status()
    latest = worker.latest
    processed = latest.processed_fps if latest is not None else 0.0
    recognition = latest.recognition_fps if latest is not None else 0.0
    tracks = len(latest.tracks) if latest is not None else 0
    extra = f"; {worker.last_error}" if worker.last_error else ""
    events = f", events written {writer.written}" if writer is not None else ""
    return (f"status: {status.line()} | processed {processed:.1f} fps, recognition {recognition:.1f}/s, "
            f"{tracks} track(s){events}{extra}")


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run ``facegate monitor``."""
    from core.cli.main import ProgressBar
    from core.cli.registry import _data_dir
    from core.demo.setup import ensure_demo_registry
    from core.recognition.engine import FacePipeline, Policy
    from core.live.monitor import Monitor, MonitorOptions, check_embedder
    from core.registry import Registry
    from core.live.sources import SourceOptions, open_source
    from core.registry.training import load_active_model

    parsed = parse_sources(args.source or [DEFAULT_SOURCE])
    specs = [spec for _, spec in parsed]
    options = MonitorOptions(max_frame_age_s=args.max_frame_age, min_face_size=args.min_face)
    source_options = SourceOptions(open_timeout_s=args.open_timeout, read_timeout_s=args.open_timeout)
    from core.live.sources import default_name

    names = unique_names([name or default_name(spec) for name, spec in parsed])
    if len(set(names)) != len(names):
        raise FaceGateError(f"Two cameras have the same name ({', '.join(names)}); name them with NAME=SPEC.")
    # Bad specs (a missing file, an unknown scheme) fail here, before any model is loaded.
    sources = [open_source(spec, name=name, options=source_options) for name, spec in zip(names, specs)]
    data_dir = _data_dir(args)
    db_path, models_dir = data_dir / "facegate.db", data_dir / "models"
    pipeline = FacePipeline()
    progress = None if args.quiet else ProgressBar()
    with Registry.open(db_path) as registry:
        if "demo" in specs and ensure_demo_registry(registry, pipeline, models_dir, progress):
            print("Demo: enrolled the 5-celebrity train photos into the empty registry and trained a model.",
                  flush=True)
        model = load_active_model(registry, models_dir, live_gallery=True)
        if model is None:
            if not registry.list_operators():
                raise ModelError("Nobody is enrolled yet. Enroll operators ('facegate enroll' or 'facegate "
                                 "import') and train ('facegate train'), or run 'facegate monitor --source demo'.")
            raise ModelError("No model has been trained yet: run 'facegate train' (HR) first.")
        names_by_id = {op.employee_id: op.name for op in registry.list_operators()}
    check_embedder(model, pipeline)
    policy = Policy(decider=args.decider, min_probability=args.min_probability, min_margin=args.min_margin,
                    threshold=args.threshold)
    lock = threading.Lock()
    counts: Counter[str] = Counter()

    def on_decision(decision: Any) -> None:
        from core.live.monitor import decision_code

        with lock:
            counts[decision_code(decision)] += 1
            line = json.dumps(_decision_json(decision)) if args.json else _format_decision(decision, names_by_id)
            print(line, flush=True)

    monitor = Monitor(sources, model, pipeline, options, registry_path=db_path, models_dir=models_dir,
                      on_decision=on_decision, policy=policy)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    if not args.json:
        print(f"Monitoring {', '.join(f'{s.name} ({spec})' for s, spec in zip(sources, specs))} with model "
              f"version {model.version} ({len(model.gallery.identities)} people). Ctrl-C stops.", flush=True)
    interrupted = False
    try:
        monitor.start()  # inside the try: Ctrl-C while the networks load still stops cleanly
        next_status = started + args.status_every
        while not stop.is_set():
            now = time.monotonic()
            if args.duration is not None and now - started >= args.duration:
                break
            wake = next_status if args.duration is None else min(next_status, started + args.duration)
            stop.wait(max(0.05, min(0.5, wake - now)))
            if time.monotonic() >= next_status:
                next_status += args.status_every
                with lock:
                    for worker in monitor.workers:
                        if args.json:
                            st = worker.source.status()
                            latest = worker.latest
                            print(json.dumps({"type": "status", "camera": st.camera, "state": st.state.value,
                                              "fps": round(st.fps, 2), "last_error": st.last_error,
                                              "processed_fps": round(latest.processed_fps, 2) if latest else 0.0,
                                              "recognition_fps": round(latest.recognition_fps, 2) if latest else 0.0}),
                                  flush=True)
                        else:
                            print(_status_line(worker, monitor.writer), flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # A second Ctrl-C must not cut the writing of the pending events short.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            monitor.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)
    elapsed = time.monotonic() - started
    summary = {
        "type": "summary", "seconds": round(elapsed, 1), "decisions": dict(counts),
        "events_written": monitor.writer.written if monitor.writer else 0,
        "events_failed": monitor.writer.failed if monitor.writer else 0,
        "cameras": {w.name: {"frames_processed": w.frames_processed, "recognition_passes": w.passes,
                             "stale_dropped": w.stale_dropped, "state": w.source.status().state.value}
                    for w in monitor.workers},
    }
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        per_camera = "; ".join(f"{w.name}: {w.frames_processed} frames processed "
                               f"({w.frames_processed / max(elapsed, 1e-9):.1f} fps), {w.passes} recognition passes"
                               for w in monitor.workers)
        decided = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no decisions"
        print(f"{'Interrupted' if interrupted else 'Stopped'} after {elapsed:.1f} s. {per_camera}. {decided}; "
              f"{summary['events_written']} events written to {db_path}.", flush=True)
    if summary["events_failed"]:
        print(f"facegate: error: {summary['events_failed']} event(s) could not be recorded; see the log.",
              file=sys.stderr)
        return 2
    return 130 if interrupted else 0


def register(sub: Any) -> None:
    """Add ``monitor`` to the ``facegate`` sub-parser."""
    from core.cli.main import _add_policy_args

    p = sub.add_parser("monitor", help="live recognition on cameras, headless (default: the built-in demo)")
    p.add_argument("--source", action="append",
                   help="camera: 'demo', a webcam index (0), an rtsp:// or http(s):// URL, a video file or a "
                        "folder of images, optionally named NAME=SPEC (e.g. north=rtsp://…); repeat for several "
                        "cameras (default: demo)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--data-dir", help="registry folder (default: $FACEGATE_DATA_DIR or the user data dir)")
    p.add_argument("--min-face", type=int, default=80,
                   help="smallest face to look for, in pixels (default: 80; gate faces are large)")
    p.add_argument("--max-frame-age", type=float, default=1.0,
                   help="never decide on a frame older than this many seconds (default: 1)")
    p.add_argument("--open-timeout", type=float, default=5.0,
                   help="seconds to wait for a network camera to open or deliver a frame (default: 5)")
    p.add_argument("--status-every", type=float, default=5.0,
                   help="seconds between status lines (default: 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object per decision / status line")
    _add_policy_args(p, deep=False)
    p.set_defaults(func=cmd_monitor)
