"""First benchmark of the recognition engine: detection, alignment, embedding, and each classifier.

Run from the repository root::

    .venv/bin/python benchmarks/bench_engine.py            # full run, writes benchmarks/results/engine.json
    .venv/bin/python benchmarks/bench_engine.py --quick    # fewer repeats

Every figure is a median over repeats, after a warm-up call, on this machine (noted in the output).
Frames are real: 5-celebrity val faces composed onto 640×480 and 1280×720 grey frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def machine() -> dict:
    import sklearn
    import tensorflow as tf

    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "processor": platform.processor() or "", "tensorflow": tf.__version__, "sklearn": sklearn.__version__,
            "numpy": np.__version__}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["mem_gb"] = round(int(mem) / 1e6, 1)
    except OSError:
        pass
    return info


def synthetic(n_people: int, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings sampled around random centres on the unit sphere (timing only)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n_people, 128))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = np.repeat(c, per, axis=0) + 0.35 * rng.normal(size=(n_people * per, 128)) / np.sqrt(128)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat([f"op{i:05d}" for i in range(n_people)], per)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--synthetic-people", type=int, default=1000)
    parser.add_argument("--synthetic-per", type=int, default=10)
    parser.add_argument("--skip-synthetic", action="store_true", help="skip the 1,000-operator fit")
    args = parser.parse_args()
    reps = 5 if args.quick else 15

    from core.assets import ensure_seed_assets
    from core.recognition.classifiers import make_classifier
    from core.recognition.dataset import embed_folder
    from core.recognition.engine import FacePipeline
    from core.vision.detector import MtcnnDetector
    from tests.conftest import compose, face_crop

    seed = ensure_seed_assets()
    pipe = FacePipeline()
    results: dict = {"machine": machine(), "repeats": reps, "stages_ms": {}, "classifiers": {}}
    stages = results["stages_ms"]

    one = compose([face_crop(seed, "madonna", 0, 220)])
    three = compose([face_crop(seed, p, 0) for p in ("ben_afflek", "madonna", "jerry_seinfeld")])
    import cv2

    frames = {
        "640x480_1face": one, "640x480_3faces": three,
        "1280x720_1face": cv2.resize(one, (1280, 720)), "1280x720_3faces": cv2.resize(three, (1280, 720)),
    }
    for label, frame in frames.items():
        for min_face in (20, 80):
            det = MtcnnDetector(min_face_size=min_face)
            n = len(det.detect(frame))
            stages[f"detect_{label}_minface{min_face}"] = round(median_ms(lambda: det.detect(frame), reps), 1)
            stages[f"detect_{label}_minface{min_face}_faces"] = n
    dets = pipe.detector.detect(three)
    stages["align_1face"] = round(median_ms(lambda: pipe.align(three, dets[:1]), reps * 4), 3)
    crops = pipe.align(three, dets)
    for batch in (1, 3, 8):
        b = np.repeat(crops[:1], batch, axis=0)
        stages[f"embed_batch{batch}"] = round(median_ms(lambda: pipe.embedder.embed(b), reps * 2), 1)

    train = embed_folder(seed.dataset / "train", pipe)
    val = embed_folder(seed.dataset / "val", pipe)
    datasets = {"celebrities_93x5": (train.x, train.y, val.x)}
    if not args.skip_synthetic:
        xs, ys = synthetic(args.synthetic_people, args.synthetic_per)
        datasets[f"synthetic_{args.synthetic_people}x{args.synthetic_per}"] = (xs, ys, xs[:1])
    for dname, (x, y, probe) in datasets.items():
        row = results["classifiers"][dname] = {}
        fit_reps = 3 if dname.startswith("celeb") else 1
        for name in ("svc", "stacker", "super_learner"):
            times = []
            for _ in range(fit_reps):
                t0 = time.perf_counter()
                clf = make_classifier(name).fit(x, y)
                times.append(time.perf_counter() - t0)
            one_probe = probe[:1]
            row[name] = {"fit_s": round(statistics.median(times), 2),
                         "predict_1_ms": round(median_ms(lambda: clf.predict_proba(one_probe), reps), 2)}
            print(f"{dname:<22} {name:<14} fit {row[name]['fit_s']:8.2f} s   "
                  f"predict(1) {row[name]['predict_1_ms']:8.2f} ms", flush=True)

    print("\nMachine:", json.dumps(results["machine"]))
    print("\nStage medians (ms):")
    for k, v in stages.items():
        print(f"  {k:<40} {v}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "engine.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nWrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
