"""Cold start of ``facegate monitor`` (issue 13): launch → cameras live → first recognition pass → first decision.

Run from the repository root::

    .venv/bin/python benchmarks/bench_cold_start.py                    # 5 runs, two demo cameras
    .venv/bin/python benchmarks/bench_cold_start.py --backend onnx     # once the monitor has --backend
    .venv/bin/python benchmarks/bench_cold_start.py --runs 9 --cameras 1 --data-dir /path/to/registry

Each run is a fresh ``facegate -v monitor`` process (the target of issue 13 is a cold start: nothing of
TensorFlow, ONNX Runtime or the model is loaded yet) on a trained registry with ``--cameras`` demo
cameras.  Without ``--data-dir`` the benchmark makes one in a temporary folder first, the way a first
``facegate monitor`` on an empty registry does (it enrolls the 5-celebrity *train* photos and trains;
not timed).  The demo scene's face cache (``~/.cache/facegate/demo``) and the converted FaceNet
weights are warm after that first run, as on any site after its first start; the operating system's
file cache is warm too after the first timed run, which is why the figure is the median.

Markers, in seconds since ``Popen`` (the monitor's own output, read line by line as it comes):

``ready``
    the model and the face networks are loaded: the ``Monitoring …`` line (``on_ready``).
``live``
    every camera is live: the ``-v`` log line ``NAME: live`` of the last camera (``live_first``: the
    first camera).
``first_pass``
    the first recognition pass has finished.  The monitor prints no line for it (the hook we want: an
    ``INFO`` log line ``NAME: first recognition pass done …`` from ``CameraWorker._recognition_loop``
    when ``passes`` becomes 1, which this benchmark already recognises).  Until then the closest
    marker is the first status line whose ``recognition`` rate is above 0: status lines come every
    ``--status-every`` seconds (0.25 here), so this marker is late by up to that much.
    ``mtcnn_ready`` (the log line ``MTCNN networks ready``, written during the first pass, just
    before its detection) bounds it from below.
``decision``
    the first decision line (a track named or called unknown).  In the demo scene the first person is
    at the gate from the first frames, so this is recognition, not waiting for somebody to walk in.

The log lines ``FaceNet … ready in X s`` and ``MTCNN networks ready in X s`` give those two loads'
own durations (``facenet_load_s``, ``mtcnn_load_s``).  After the first decision (and ``--linger``
seconds) the run is stopped with SIGTERM, which the monitor handles cleanly.

``--backend onnx|tf`` is passed to ``facegate monitor --backend`` if its ``--help`` lists that option;
if it does not, ``tf`` runs without the flag (TensorFlow is then the only backend) and ``onnx`` is
skipped with a note.  Results go to ``benchmarks/results/cold_start.json``, one entry per backend
(a run of the other backend keeps the entry already there), with the machine (CPU, cores, load
average before and after), the command and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cold_start.json"
STATUS_EVERY = 0.25

_DECISION = re.compile(r"^\d\d:\d\d:\d\d (\S+)\s+track \d+\s+(\S+)")
_STATUS = re.compile(r"^status: (\S+) (\S+) .*recognition ([0-9.]+)/s")
_LIVE = re.compile(r"core\.live\.sources\.threaded: (\S+): live$")
_FACENET = re.compile(r"FaceNet .* ready in ([0-9.]+) s")
_MTCNN = re.compile(r"MTCNN networks ready in ([0-9.]+) s")
_ONNX_READY = re.compile(r"(?i)onnx.* ready in ([0-9.]+) s")
# The hook this benchmark wants (not in the monitor yet): ``log.info("%s: first recognition pass done …")``.
_FIRST_PASS = re.compile(r": (\S+): first recognition pass")


def facegate_command() -> list[str]:
    """``python -m core.cli.main``, run in this checkout's root: what ``facegate monitor`` runs (the console
    script only adds its launcher), and a copy of the repository (``git archive``) measures its own code."""
    return [sys.executable, "-m", "core.cli.main"]


def monitor_help() -> str:
    out = subprocess.run([*facegate_command(), "monitor", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=False)
    return out.stdout


def machine() -> dict[str, Any]:
    """CPU, cores, memory and versions, without importing TensorFlow into this process."""
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count()}
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["mem_gb"] = round(int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1]) / 1e6, 1)
    except OSError:
        pass
    for package in ("tensorflow", "onnxruntime", "scikit-learn", "numpy", "opencv-python-headless", "opencv-python"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return info


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def make_registry(data_dir: Path, timeout: float) -> None:
    """A trained demo registry: the first ``facegate monitor`` on an empty one enrolls and trains."""
    print(f"making a trained demo registry in {data_dir} (enrolment + training, not timed) …", flush=True)
    cmd = [*facegate_command(), "-q", "monitor", "--data-dir", str(data_dir), "--duration", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False)
    if out.returncode != 0 or not (data_dir / "models").is_dir():
        sys.exit(f"could not make the demo registry (exit {out.returncode}):\n{out.stderr[-2000:]}")


def _pump(stream: Any, name: str, t0: float, lines: queue.Queue[tuple[float, str, str | None]]) -> None:
    for line in stream:
        lines.put((time.monotonic() - t0, name, line.rstrip("\n")))
    lines.put((time.monotonic() - t0, name, None))


def one_run(cmd: list[str], cameras: list[str], timeout: float, linger: float) -> dict[str, Any]:
    """Launch the monitor once and time its markers (seconds since launch)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"), PYTHONUNBUFFERED="1")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1)
    lines: queue.Queue[tuple[float, str, str | None]] = queue.Queue()
    pumps = [threading.Thread(target=_pump, args=(s, n, t0, lines), daemon=True)
             for s, n in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for p in pumps:
        p.start()
    marks: dict[str, Any] = {}
    live: dict[str, float] = {}
    first_decision: dict[str, Any] = {}
    log: list[str] = []
    open_streams, stop_at, signalled = 2, None, False
    while open_streams:
        now = time.monotonic() - t0
        if not signalled and (now > timeout or (stop_at is not None and now >= stop_at)):
            proc.send_signal(signal.SIGTERM)  # a clean stop: pending events are written
            signalled = True
            if now > timeout:
                marks["timed_out"] = True
        try:
            at, stream, line = lines.get(timeout=0.05)
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
            continue
        if len(log) < 400 and "I0000" not in line and "absl::" not in line:
            log.append(f"{at:7.2f} {stream} {line[:200]}")
        if stream == "out" and line.startswith("Monitoring "):
            marks.setdefault("ready", at)
        elif (m := _LIVE.search(line)) is not None:
            live.setdefault(m.group(1), at)
        elif (m := _FACENET.search(line)) is not None:
            marks.setdefault("facenet_load_s", float(m.group(1)))
            marks.setdefault("facenet_ready", at)
        elif (m := _MTCNN.search(line)) is not None:
            marks.setdefault("mtcnn_load_s", float(m.group(1)))
            marks.setdefault("mtcnn_ready", at)
        elif (m := _ONNX_READY.search(line)) is not None:
            marks.setdefault("onnx_ready_logged_s", float(m.group(1)))
        elif _FIRST_PASS.search(line) is not None:
            marks.setdefault("first_pass_logged", at)
        elif (m := _STATUS.match(line)) is not None and float(m.group(3)) > 0:
            marks.setdefault("first_pass", at)
        elif stream == "out" and (m := _DECISION.match(line)) is not None and "decision" not in marks:
            marks["decision"] = at
            first_decision.update(camera=m.group(1), code=m.group(2).lower())
            stop_at = at + linger
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    if live:
        marks["live_first"] = min(live.values())
        if len(live) >= len(cameras):
            marks["live"] = max(live.values())
    # A decision needs a finished pass: if no status line caught one before the decision, the decision
    # itself is the upper bound.
    if "first_pass_logged" in marks:
        marks["first_pass"] = marks["first_pass_logged"]  # exact, once the monitor logs it
    elif "decision" in marks and "first_pass" in marks:
        marks["first_pass"] = min(marks["first_pass"], marks["decision"])
    elif "decision" in marks:
        marks["first_pass"] = marks["decision"]
    marks["first_decision"] = first_decision
    marks["exit_code"] = rc
    marks["log"] = log
    return marks


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes to time (default 5)")
    ap.add_argument("--cameras", type=int, default=2, help="demo cameras per run (default 2, as in issue 13)")
    ap.add_argument("--backend", choices=("onnx", "tf"), default=None,
                    help="passed as 'facegate monitor --backend' if the monitor has that option")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="a trained registry to use (default: a demo registry made in a temporary folder)")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up on a run after this many seconds")
    ap.add_argument("--linger", type=float, default=0.5, help="seconds to keep running after the first decision")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep-logs", action="store_true", help="keep each run's output lines in the JSON")
    args = ap.parse_args(argv)

    help_text = monitor_help()
    has_backend = "--backend" in help_text
    # Without --backend: TensorFlow while the monitor has no such option, else whatever it defaults to.
    backend = args.backend or ("default" if has_backend else "tf")
    notes: list[str] = []
    backend_args: list[str] = []
    if args.backend is not None:
        if has_backend:
            backend_args = ["--backend", args.backend]
        elif args.backend == "tf":
            notes.append("facegate monitor has no --backend option yet: ran without it (TensorFlow only)")
        else:
            print("facegate monitor has no --backend option yet: nothing to measure for onnx; skipped.")
            return 0

    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="facegate-cold-")
        data_dir = Path(tmp.name) / "registry"
        make_registry(data_dir, args.timeout * 5)
    else:
        data_dir = args.data_dir

    cameras = ["demo"] * args.cameras  # named demo, demo-2, …
    cmd = [*facegate_command(), "-v", "-q", "monitor", "--data-dir", str(data_dir),
           *[a for c in cameras for a in ("--source", c)], "--status-every", str(STATUS_EVERY), *backend_args]
    shown = " ".join(cmd).replace(str(data_dir), "<registry>").replace(sys.executable, "python")
    print(f"{args.runs} runs of: {shown}", flush=True)

    load_before = load_average()
    started = time.time()
    runs = []
    for i in range(args.runs):
        marks = one_run(cmd, cameras, args.timeout, args.linger)
        row = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in marks.items()
               if k != "log" or args.keep_logs}
        runs.append(row)
        fields = ("ready", "live", "first_pass", "decision")
        print(f"run {i + 1}: " + "  ".join(f"{k} {row[k]:.2f}" if k in row else f"{k} –" for k in fields)
              + (f"  (exit {row['exit_code']})" if row["exit_code"] not in (0, 130) else ""), flush=True)
        if "decision" not in marks:
            print("  no decision; last lines:\n  " + "\n  ".join(marks["log"][-15:]), flush=True)
    load_after = load_average()

    keys = ("facenet_ready", "facenet_load_s", "ready", "live_first", "live", "mtcnn_ready", "mtcnn_load_s",
            "first_pass", "decision")
    medians = {k: median([r[k] for r in runs if isinstance(r.get(k), (int, float))]) for k in keys}
    stages = {}
    if medians["facenet_ready"] is not None and medians["facenet_load_s"] is not None:
        # interpreter, imports (numpy, sqlite-utils, scikit-learn + SciPy), registry, signature, model
        stages["launch_to_networks_load"] = round(medians["facenet_ready"] - medians["facenet_load_s"], 2)
        stages["facenet_load_incl_tf_import"] = medians["facenet_load_s"]
    if medians["ready"] is not None and medians["live"] is not None:
        stages["ready_to_live"] = round(medians["live"] - medians["ready"], 2)
    if medians["live"] is not None and medians["first_pass"] is not None:
        stages["live_to_first_pass"] = round(medians["first_pass"] - medians["live"], 2)
    if medians["first_pass"] is not None and medians["decision"] is not None:
        stages["first_pass_to_decision"] = round(medians["decision"] - medians["first_pass"], 2)

    entry = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "command": shown,
        "backend_flag_available": has_backend,
        "cameras": args.cameras,
        "runs": args.runs,
        "target_first_pass_s": 3.0,
        "median_s": medians,
        "stages_of_medians_s": stages,
        "notes": notes + [
            "seconds since Popen of a fresh process; medians over the runs",
            (f"first_pass is the first status line with a recognition rate above 0 (status every {STATUS_EVERY} s), "
             "capped by the first decision: the monitor prints no first-pass marker yet; mtcnn_ready is a lower "
             "bound"),
            "demo face cache and converted FaceNet weights warm (as after any site's first start)",
        ],
        "per_run": runs,
    }
    results: dict[str, Any] = {}
    if args.out.exists():
        try:
            results = json.loads(args.out.read_text())
        except (OSError, json.JSONDecodeError):
            results = {}
    results.setdefault("backends", {})[backend] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(results, indent=2) + "\n")
    tmp_out.replace(args.out)

    print(f"\nmedians over {args.runs} runs ({backend}, {args.cameras} demo camera(s); load {load_before} → "
          f"{load_after}):")
    for k in keys:
        if medians[k] is not None:
            print(f"  {k:<16} {medians[k]:6.2f} s")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
