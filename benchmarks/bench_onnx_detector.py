"""MTCNN detection: TensorFlow (:class:`MtcnnDetector`) against ONNX Runtime (:class:`OnnxMtcnnDetector`).

Run from the repository root::

    .venv/bin/python benchmarks/bench_onnx_detector.py           # writes benchmarks/results/onnx_detector.json
    .venv/bin/python benchmarks/bench_onnx_detector.py --quick   # 1 round, 15 repeats, idle only

The parent builds the gate frames of ``benchmarks/bench_detector.py`` (real 5-celebrity val faces,
~140–160 px, pasted on a grey 640×480 frame: one face and three faces) and makes sure the ONNX
networks are converted and cached; then it starts one worker process per configuration — ``tf``
(TensorFlow's default threads), ``onnx_t1`` and ``onnx_t2`` (ONNX Runtime with 1 or 2 intra-op
threads per session) — alternating them over ``--rounds`` rounds, so a change in the machine's load
hits every runtime alike.  Each worker imports only its runtime, loads the detector, warms it up
and reports, per frame and ``min_face_size`` (80, the live setting, and 20), the median ms per
frame over ``--repeats`` calls (the calls cycle through the frame × size cases), its CPU ms per
frame, and the medians of a per-stage split timed around the networks' calls: ``pyramid``
(normalisation, area resizes and P-Net), ``rnet`` and ``onet`` (crops and network), ``numpy`` (the
rest: downscaling, candidate boxes, NMS, regression, rounding), and for ONNX ``sessions`` (time in
ONNX Runtime itself).  Every round runs twice: on an idle machine and ``busy``, with a second process
spinning on one core (another camera's worker), which is when the thread count matters.

Machine notes (CPU, cores, load averages before and after) are written with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

MIN_FACES = (80, 20)
CAMERAS = (2, 4)
CONFIGS = {"tf": ("tf", 0), "onnx_t1": ("onnx", 1), "onnx_t2": ("onnx", 2)}


class _Timed:
    """A :class:`~core.vision.detector.StageNetworks` proxy that times every call."""

    def __init__(self, nets: Any, clock: dict[str, float]) -> None:
        self._nets, self._clock = nets, clock

    def _timed(self, key: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._clock[key] = self._clock.get(key, 0.0) + time.perf_counter() - t0

    def pyramid(self, image: np.ndarray, sizes: list[tuple[int, int]]) -> Any:
        return self._timed("pyramid", self._nets.pyramid, image, sizes)

    def rnet(self, source: Any, boxes: np.ndarray) -> Any:
        return self._timed("rnet", self._nets.rnet, source, boxes)

    def onet(self, source: Any, boxes: np.ndarray) -> Any:
        return self._timed("onet", self._nets.onet, source, boxes)


def worker(runtime: str, threads: int, frames_file: Path, repeats: int) -> dict[str, Any]:
    """Time one runtime in this process."""
    frames = dict(np.load(frames_file))
    t0 = time.perf_counter()
    if runtime == "tf":
        import tensorflow  # noqa: F401

        t1 = time.perf_counter()
        from core.vision.detector import MtcnnDetector

        detectors = {mf: MtcnnDetector(min_face_size=mf) for mf in MIN_FACES}
    else:
        import onnxruntime  # noqa: F401

        t1 = time.perf_counter()
        from core.vision.onnx_detector import OnnxMtcnnDetector

        detectors = {mf: OnnxMtcnnDetector(min_face_size=mf, threads=threads) for mf in MIN_FACES}
    for det in detectors.values():
        det.load()
    t2 = time.perf_counter()
    clock: dict[str, float] = {}
    for det in detectors.values():
        nets = det._stage_networks()
        if runtime == "onnx":  # time ONNX Runtime itself, inside the stages
            run = nets._run

            def session_run(net: str, x: np.ndarray, run: Any = run) -> np.ndarray:
                s0 = time.perf_counter()
                try:
                    return run(net, x)
                finally:
                    clock["sessions"] = clock.get("sessions", 0.0) + time.perf_counter() - s0

            nets._run = session_run
        proxy = _Timed(nets, clock)
        det._stage_networks = lambda proxy=proxy: proxy  # type: ignore[method-assign]
    cases = [(name, mf) for name in frames for mf in MIN_FACES]
    for name, mf in cases * 3:  # warm-up: every shape once or more
        detectors[mf].detect(frames[name])
    samples: dict[str, dict[str, list[float]]] = {f"{n}_min{mf}": {} for n, mf in cases}
    faces: dict[str, int] = {}
    for _ in range(repeats):
        for name, mf in cases:
            clock.clear()
            c0, w0 = time.process_time(), time.perf_counter()
            found = detectors[mf].detect(frames[name])
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            split = {"total": wall, "cpu": cpu, **clock}
            split["numpy"] = wall - sum(clock.get(k, 0.0) for k in ("pyramid", "rnet", "onet"))
            for key, value in split.items():
                samples[f"{name}_min{mf}"].setdefault(key, []).append(value * 1000)
            faces[f"{name}_min{mf}"] = len(found)
    cameras = {f"{n}cameras_1face_min80": _cameras(detectors[80], frames["640x480_1face"], n, repeats)
               for n in CAMERAS}
    row: dict[str, Any] = {"runtime": runtime, "threads": threads or "tf default",
                           "import_s": round(t1 - t0, 2), "load_s": round(t2 - t1, 2),
                           "tensorflow_imported": "tensorflow" in sys.modules, "cases": {}}
    for key, parts in samples.items():
        row["cases"][key] = {f"{k}_ms": round(statistics.median(v), 2) for k, v in parts.items()}
        row["cases"][key]["faces"] = faces[key]
    row["cameras"] = cameras
    return row


def _cameras(detector: Any, frame: np.ndarray, n: int, repeats: int) -> dict[str, float]:
    """``n`` camera threads sharing one detector (as the console's workers do), each detecting
    ``repeats`` frames as fast as it can: median latency per frame, frames per second, CPU ms per frame."""
    import threading

    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(n + 1)

    def camera() -> None:
        start.wait()
        for _ in range(repeats):
            t0 = time.perf_counter()
            detector.detect(frame)
            with lock:
                latencies.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=camera) for _ in range(n)]
    for w in workers:
        w.start()
    c0, w0 = time.process_time(), time.perf_counter()
    start.wait()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"latency_median_ms": round(statistics.median(latencies) * 1000, 2),
            "frames_per_s": round(n * repeats / wall, 1), "cpu_ms_per_frame": round(cpu * 1000 / (n * repeats), 2)}


def _burner() -> subprocess.Popen[bytes]:
    """A process spinning on one core: another camera's worker."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def machine_notes() -> dict[str, Any]:
    from benchmarks.bench_engine import machine

    notes = dict(machine())
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                notes["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    notes["cores"] = os.cpu_count()
    from core.vision import onnx_files

    notes["versions"] = {k: onnx_files.installed(k) for k in ("onnxruntime", "tensorflow-cpu", "numpy")}
    return notes


def prepare(frames_file: Path) -> dict[str, Any]:
    """Gate frames, written to ``frames_file``; the ONNX networks converted and cached; equality checked."""
    from benchmarks.bench_detector import frames as gate_frames
    from core.assets import ensure_seed_assets
    from core.vision.detector import MtcnnDetector
    from core.vision.onnx_detector import OnnxMtcnnDetector

    seed = ensure_seed_assets()
    frames = {k: v for k, v in gate_frames(seed).items() if k.startswith("640x480")}
    grey = np.full((480, 640, 3), 96, np.uint8)
    frames["640x480_0faces"] = grey
    np.savez(frames_file, **frames)
    same = {}
    for mf in MIN_FACES:
        tf_det, onnx_det = MtcnnDetector(min_face_size=mf), OnnxMtcnnDetector(min_face_size=mf)
        for name, frame in frames.items():
            a, b = tf_det.detect(frame), onnx_det.detect(frame)
            same[f"{name}_min{mf}"] = {
                "faces": len(a), "same_boxes_and_landmarks": [(d.box, d.landmarks) for d in a]
                == [(d.box, d.landmarks) for d in b],
                "confidence_abs_diff_max": float(f"{max((abs(x.confidence - y.confidence) for x, y in zip(a, b)), default=0.0):.2g}"),
            }
    return same


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="1 round, 15 repeats, idle only")
    parser.add_argument("--worker", nargs=4, metavar=("RUNTIME", "THREADS", "FRAMES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        runtime, threads, frames_file, out = args.worker
        Path(out).write_text(json.dumps(worker(runtime, int(threads), Path(frames_file), args.repeats)))
        return 0
    rounds, repeats = (1, 15) if args.quick else (args.rounds, args.repeats)
    conditions = ("idle",) if args.quick else ("idle", "busy")

    results: dict[str, Any] = {"machine": machine_notes(), "rounds": rounds, "repeats": repeats,
                               "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        frames_file = Path(tmp) / "frames.npz"
        print("preparing frames and the ONNX networks …", flush=True)
        results["equivalence_on_frames"] = prepare(frames_file)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {c: {k: [] for k in CONFIGS} for c in conditions}
        for r in range(rounds):
            for condition in conditions:
                burner = _burner() if condition == "busy" else None
                try:
                    for key, (runtime, threads) in CONFIGS.items():
                        out = Path(tmp) / f"{key}.json"
                        load = os.getloadavg()[0]
                        subprocess.run([sys.executable, __file__, "--repeats", str(repeats), "--worker", runtime,
                                        str(threads), str(frames_file), str(out)], check=True, cwd=ROOT)
                        row = json.loads(out.read_text())
                        row["load_1min_before"] = round(load, 2)
                        runs[condition][key].append(row)
                        t = row["cases"]
                        print(f"round {r + 1} {condition:<4} {key:<8} import {row['import_s']:.2f} s  load "
                              f"{row['load_s']:.2f} s  " + "  ".join(
                                  f"{c.replace('640x480_', '')} {v['total_ms']:.1f}" for c, v in t.items())
                              + "  " + "  ".join(f"{c.split('_')[0]} {v['latency_median_ms']:.1f} ms "
                                                 f"{v['frames_per_s']:.0f}/s" for c, v in row["cameras"].items()),
                              flush=True)
                finally:
                    if burner is not None:
                        burner.kill()
                        burner.wait()
    results["runs"] = runs
    summary: dict[str, Any] = {}
    for condition, by_config in runs.items():
        table = summary[condition] = {}
        for key, rows in by_config.items():
            cases = rows[0]["cases"]
            table[key] = {case: {part: round(statistics.median(r["cases"][case][part] for r in rows), 2)
                                 for part in cases[case] if part.endswith("_ms")} for case in cases}
            for cam in rows[0]["cameras"]:
                table[key][cam] = {part: round(statistics.median(r["cameras"][cam][part] for r in rows), 2)
                                   for part in rows[0]["cameras"][cam]}
            table[key]["import_s"] = round(statistics.median(r["import_s"] for r in rows), 2)
            table[key]["load_s"] = round(statistics.median(r["load_s"] for r in rows), 2)
            table[key]["tensorflow_imported"] = any(r["tensorflow_imported"] for r in rows)
        for key in ("onnx_t1", "onnx_t2"):
            table[f"speedup_{key}_vs_tf"] = {case: round(table["tf"][case]["total_ms"] / table[key][case]["total_ms"], 2)
                                            for case in by_config["tf"][0]["cases"]}
    results["summary_medians_of_round_medians"] = summary
    results["load_after"] = os.getloadavg()
    print(json.dumps(summary, indent=1))
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "onnx_detector.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nWrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
