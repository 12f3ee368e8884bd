"""Benchmark of the live pipeline (issue 4): stage costs, throughput, time to a decision, memory.

Run from the repository root::

    .venv/bin/python benchmarks/bench_monitor.py                 # stages + live runs, ~4 min
    .venv/bin/python benchmarks/bench_monitor.py --soak 600      # plus the 10-minute memory soak
    .venv/bin/python benchmarks/bench_monitor.py --quick         # shorter runs

Writes ``benchmarks/results/monitor.json`` and prints a table.  Every figure is a median on this
machine (noted in the output).  Frames come from the demo scene (:mod:`core.demo.scene`): real
5-celebrity val photos and a stranger composed into a moving gate scene, at 640×480 and 1280×720,
with one face or three at once.

What is measured
----------------
stages
    Per stage, milliseconds per frame, on frames where the faces stand at the gate: ``read``
    (decoding the frame from an MJPG video file, as a camera source does), ``detect`` (the live
    detector, ``min_face_size`` 80 at 640×480, scaled with the frame), ``align``, ``embed`` (all
    faces in one batch), ``classify`` (three models + open-set gate), ``track`` (optical flow and
    the tracker's update).
naive
    The naive loop: ``mtcnn.MTCNN().detect_faces`` with the package's defaults, then align, embed
    and classify, on every frame.
live
    :class:`core.live.monitor.Monitor` on a :class:`core.live.sources.RenderedSource` playing the scene in
    real time (25 fps): frames delivered by the source, frames processed by the overlay thread
    (each with up-to-date boxes and identities), recognition passes per second, and the time from
    the first frame in which a face is fully in view to its decision being published.
soak
    ``facegate monitor``'s pipeline with two 640×480 demo sources for ``--soak`` seconds; resident
    memory sampled every 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from benchmarks.bench_engine import machine


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_faces(count: int) -> list[tuple[str, np.ndarray, tuple[int, int, int, int]]]:
    from core.assets import ensure_seed_assets, ensure_strangers
    from core.vision.detector import MtcnnDetector
    from core.vision.imageio import read_image

    seed = ensure_seed_assets()
    detector = MtcnnDetector()
    people = ["madonna", "elton_john", "jerry_seinfeld", "ben_afflek", "mindy_kaling"]
    faces = []
    for person in people[:count]:
        path = sorted((seed.dataset / "val" / person).iterdir())[0]
        photo = read_image(path)
        faces.append((person, photo, detector.detect(photo)[0].box))
    if count > len(people):
        photo = read_image(ensure_strangers() / "barack_obama" / "obama.jpg")
        faces.append(("unknown", photo, detector.detect(photo)[0].box))
    return faces


def make_scene(size: tuple[int, int], faces_at_once: int, faces: list) -> object:
    from core.demo.scene import DemoScene

    # One face: the five people and the stranger one after another.  Three: three at a time.
    return DemoScene.with_faces(faces, size=size, together=faces_at_once)


def standing_frames(scene, faces_at_once: int, limit: int = 40) -> list[int]:
    """Frame indexes where all the segment's faces are fully in view (standing at the gate)."""
    width, height = scene.size
    out = []
    for i in range(scene.period):
        truth = scene.truth(i)
        if len(truth) == faces_at_once and all(
                t.box[0] >= 0 and t.box[1] >= 0 and t.box[0] + t.box[2] <= width and t.box[1] + t.box[3] <= height
                for t in truth):
            out.append(i)
    step = max(1, len(out) // limit)
    return out[::step][:limit]


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


def bench_stages(scene, frames: list[int], model, pipeline, min_face: int) -> dict:
    import cv2

    from core.live.tracking import FlowShifter, Observation, Tracker, observation_weight
    from core.types import FaceResult

    detector = pipeline.detector_like(min_face)
    flow = FlowShifter()
    images = [scene.render(i) for i in frames]
    # read: decode from an MJPG AVI, as a file or camera source would
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "scene.avi")
        width, height = scene.size
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
        for image in images:
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        writer.release()
        cap = cv2.VideoCapture(path)
        read = []
        while True:
            t0 = time.perf_counter()
            ok, bgr = cap.read()
            if not ok:
                break
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            read.append(1000 * (time.perf_counter() - t0))
        cap.release()
    times: dict[str, list[float]] = {k: [] for k in ("detect", "align", "embed", "classify", "track")}
    found = []
    detector.detect(images[0])  # warm-up
    pipeline.embedder.embed(pipeline.align(images[0], detector.detect(images[0])))
    tracker = Tracker("bench")
    previous = flow.prepare(images[0])
    for n, image in enumerate(images):
        t0 = time.perf_counter()
        dets = detector.detect(image)
        t1 = time.perf_counter()
        crops = pipeline.align(image, dets)
        t2 = time.perf_counter()
        emb = pipeline.embedder.embed(crops)
        t3 = time.perf_counter()
        decided = model.decide(emb)
        t4 = time.perf_counter()
        gray = flow.prepare(image)
        tracker.move(flow.shift(previous, gray, tracker.boxes()))
        results = [FaceResult(d, v, t, dec, near, model.version) for d, (v, t, dec, near) in zip(dets, decided)]
        tracker.observe([(Observation(n, float(n), r, observation_weight(r)), r.detection.box, r.detection.landmarks)
                         for r in results])
        previous = gray
        t5 = time.perf_counter()
        for key, a, b in (("detect", t0, t1), ("align", t1, t2), ("embed", t2, t3), ("classify", t3, t4),
                          ("track", t4, t5)):
            times[key].append(1000 * (b - a))
        found.append(len(dets))
    out = {"read": median(read), **{k: median(v) for k, v in times.items()},
           "faces_found_median": statistics.median(found) if found else 0}
    out["recognition_pass"] = round(sum(out[k] for k in ("detect", "align", "embed", "classify")), 2)
    return out


def bench_naive(images: list[np.ndarray], model, pipeline) -> dict:
    from mtcnn import MTCNN

    from core.types import Detection

    mtcnn = MTCNN()
    keys = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

    def once(image: np.ndarray) -> None:
        raw = mtcnn.detect_faces(image)
        dets = [Detection(tuple(int(v) for v in f["box"]), float(f["confidence"]),  # type: ignore[arg-type]
                          tuple((float(f["keypoints"][k][0]), float(f["keypoints"][k][1])) for k in keys))
                for f in raw if f["confidence"] >= 0.8]
        model.decide(pipeline.embedder.embed(pipeline.align(image, dets)))

    once(images[0])
    times = []
    for image in images:
        t0 = time.perf_counter()
        once(image)
        times.append(1000 * (time.perf_counter() - t0))
    ms = median(times)
    return {"frame_ms": ms, "fps": round(1000 / ms, 2)}


def bench_live(scene, model, pipeline, seconds: float, min_face: int) -> dict:
    from core.live.monitor import Monitor, MonitorOptions
    from core.live.sources import RenderedSource

    source = RenderedSource("bench", scene.render, fps=25.0)
    processed: list[float] = []
    recognition: list[float] = []
    delivered: list[float] = []
    captured: dict[int, float] = {}
    decided: list[tuple[float, object]] = []
    lock = threading.Lock()

    def on_frame(result) -> None:
        with lock:
            captured[result.frame_index] = result.captured
            if result.frame_index > 50:  # after warm-up
                processed.append(result.processed_fps)
                recognition.append(result.recognition_fps)
                delivered.append(result.status.fps)

    def on_decision(decision) -> None:
        with lock:
            decided.append((time.monotonic(), decision))

    monitor = Monitor([source], model, pipeline, MonitorOptions(min_face_size=min_face), on_frame=on_frame,
                      on_decision=on_decision)
    monitor.start()
    time.sleep(seconds)
    monitor.stop()
    worker = monitor.workers[0]
    # Time to decision: from the first frame where the track's face is fully in view (truth) to the
    # moment the decision was published.
    width, height = scene.size
    latencies = []
    for when, decision in decided:
        if decision.kind != "decided":  # type: ignore[attr-defined]
            continue
        track = decision.track  # type: ignore[attr-defined]
        # the frame where this track was first seen, then back to the first full view of that face
        first = min((i for i, t in captured.items() if abs(t - track.first_seen) < 1e-6), default=None)
        if first is None:
            first = min(captured, key=lambda i: abs(captured[i] - track.first_seen))
        start = first
        for i in range(first, max(first - 100, -1), -1):
            full = [t for t in scene.truth(i) if t.box[0] >= 0 and t.box[1] >= 0 and t.box[0] + t.box[2] <= width
                    and t.box[1] + t.box[3] <= height]
            if not full:
                break
            start = i
        if start in captured:
            latencies.append(1000 * (when - captured[start]))
    stale = worker.stale_dropped
    return {
        "seconds": seconds,
        "delivered_fps": median(delivered), "processed_fps": median(processed),
        "recognition_passes_per_s": median(recognition),
        "decisions": sum(1 for _, d in decided if d.kind == "decided"),  # type: ignore[attr-defined]
        "undecided": sum(1 for _, d in decided if d.kind == "undecided"),  # type: ignore[attr-defined]
        "time_to_decision_ms_median": median(latencies),
        "time_to_decision_ms_max": round(max(latencies), 1) if latencies else float("nan"),
        "stale_passes_dropped": stale,
        "stages_last": {k: round(v, 1) for k, v in (worker.latest.stages.items() if worker.latest else [])},
    }


def bench_soak(seconds: float, model, pipeline) -> dict:
    from core.demo.scene import DemoScene
    from core.live.monitor import Monitor
    from core.live.sources import RenderedSource

    scene = DemoScene.from_assets()
    sources = [RenderedSource(f"demo{i}", scene.render, fps=scene.fps) for i in (1, 2)]
    decisions = [0]
    monitor = Monitor(sources, model, pipeline, on_decision=lambda d: decisions.__setitem__(0, decisions[0] + 1))
    samples = [(0.0, rss_mb())]
    started = time.monotonic()
    monitor.start()
    while time.monotonic() - started < seconds:
        time.sleep(10.0)
        samples.append((round(time.monotonic() - started, 1), round(rss_mb(), 1)))
        print(f"  soak {samples[-1][0]:6.0f} s  RSS {samples[-1][1]:7.1f} MB", flush=True)
    frames = [w.frames_processed for w in monitor.workers]
    monitor.stop()
    after_warmup = [m for t, m in samples if t >= 60] or [m for _, m in samples]
    return {"seconds": seconds, "rss_mb_samples": samples, "rss_mb_start": samples[1][1] if len(samples) > 1 else None,
            "rss_mb_max": max(m for _, m in samples), "rss_mb_after_1min_min": min(after_warmup),
            "rss_mb_after_1min_max": max(after_warmup), "frames_processed": frames, "decisions": decisions[0]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter live runs")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of the two-camera memory soak (0: skip)")
    parser.add_argument("--cases", nargs="*", help="only these cases, e.g. 640x480_1face")
    parser.add_argument("--backend", choices=("onnx", "tf"), default="onnx",
                        help="inference backend (issue 13; default onnx)")
    parser.add_argument("--out", help="default: benchmarks/results/monitor.json (onnx) or monitor-tf.json")
    args = parser.parse_args()
    os.environ["FACEGATE_BACKEND"] = args.backend  # the soak's session builds its own pipeline
    args.out = args.out or str(ROOT / "benchmarks" / "results" /
                               ("monitor.json" if args.backend == "onnx" else f"monitor-{args.backend}.json"))

    from core.assets import ensure_seed_assets
    from core.recognition.dataset import embed_folder
    from core.recognition.engine import FacePipeline, train_model

    pipeline = FacePipeline(backend=args.backend)
    train = embed_folder(ensure_seed_assets().dataset / "train", pipeline)
    model = train_model(train.x, train.y)
    faces = load_faces(6)
    report: dict = {"machine": machine(), "backend": args.backend, "load_before": os.getloadavg()[0],
                    "command": "benchmarks/bench_monitor.py " + " ".join(sys.argv[1:]), "cases": {}}
    live_seconds = 20.0 if args.quick else 40.0
    for size in ((640, 480), (1280, 720)):
        min_face = round(80 * size[1] / 480)
        for at_once in (1, 3):
            name = f"{size[0]}x{size[1]}_{at_once}face"
            if args.cases and name not in args.cases:
                continue
            print(f"{name}: building the scene", flush=True)
            scene = make_scene(size, at_once, faces)
            frames = standing_frames(scene, at_once)
            case = {"min_face_size": min_face, "frames": len(frames)}
            case["stages_ms"] = bench_stages(scene, frames, model, pipeline, min_face)
            case["naive"] = bench_naive([scene.render(i) for i in frames[:15]], model, pipeline)
            case["live"] = bench_live(scene, model, pipeline, live_seconds, min_face)
            case["processed_vs_naive"] = round(case["live"]["processed_fps"] / case["naive"]["fps"], 1)
            report["cases"][name] = case
            print(json.dumps(case, indent=1), flush=True)
    if args.soak > 0:
        print(f"soak: two 640x480 demo cameras for {args.soak:.0f} s", flush=True)
        report["soak"] = bench_soak(args.soak, model, pipeline)
    report["load_after"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if Path(args.out).exists() and args.soak <= 0:
        try:  # keep an earlier soak result when only the quick part is re-run
            previous = json.loads(Path(args.out).read_text())
            if "soak" in previous:
                report["soak"] = previous["soak"]
        except ValueError:
            pass
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\n{'case':<18}{'detect':>8}{'embed':>8}{'pass':>8}{'track':>8}{'naive fps':>11}{'processed':>11}"
          f"{'decide ms':>11}")
    for name, case in report["cases"].items():
        st, live = case["stages_ms"], case["live"]
        print(f"{name:<18}{st['detect']:>8}{st['embed']:>8}{st['recognition_pass']:>8}{st['track']:>8}"
              f"{case['naive']['fps']:>11}{live['processed_fps']:>11}{live['time_to_decision_ms_median']:>11}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
