"""Registry benchmark: enroll N synthetic operators × M embeddings, then retrain all three models.

Run from the repository root::

    .venv/bin/python benchmarks/bench_registry.py                 # 1,000 × 10, writes benchmarks/results/registry.json
    .venv/bin/python benchmarks/bench_registry.py --people 200    # smaller (writes nothing unless --out)
    .venv/bin/python benchmarks/bench_registry.py --accuracy      # also held-out accuracy of each model

Embeddings are sampled around random centres on the unit sphere (fine for timing; accuracy is measured
on the real photos by ``facegate evaluate``). Photos are tiny placeholder JPEGs: what is timed is the
registry's writes and the retrain, not the camera. Reported:

* ``retrain_s`` and ``stages``: wall time of ``core.registry.training.retrain`` and of each of its stages, read
  from its progress messages (reading the embeddings, each classifier, open-set calibration, the
  per-fold accuracy figures, the activation checks, saving); ``retrain_cpu_s``: the CPU seconds it
  used (all threads), which other processes on the machine inflate much less than the wall time;
* ``peak_rss_mb``: the process's maximum resident set (enrollment and retrain);
* ``decide_ms``: ``RecognitionModel.decide`` of one embedding with the active model (the live monitor's
  per-face cost), median of 200 after a warm-up, with its gallery and classifier parts;
* ``accuracy`` (``--accuracy``): each classifier trained on 80 % of every person's embeddings and
  scored on the other 20 %, at the benchmark's noise and at a harder one (``--hard-noise``);
* the machine and its load average before and after (other processes share the 2 cores, so
  timings are noisy: compare them with the load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

# Progress messages of retrain that open each stage, in order.
STAGES = (
    ("read", "reading the enrolled embeddings"),
    ("svc", "training svc"),
    ("stacker", "training stacker"),
    ("super_learner", "training super_learner"),
    ("calibrate", "calibrating the open-set threshold"),
    ("cv_accuracy", "done"),
    ("checks", "checking the new model"),
    ("save", "saving the new model"),
)


def sphere(n_people: int, per: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings around random centres; ``noise`` is the norm of the added noise (before renormalising)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n_people, 128))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = np.repeat(c, per, axis=0) + noise * rng.normal(size=(n_people * per, 128)) / np.sqrt(128)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat([f"op{i:05d}" for i in range(n_people)], per)


def stage_seconds(marks: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds of each stage, from the first progress message of each (see ``STAGES``)."""
    starts: list[tuple[str, float]] = []
    for name, opening in STAGES:
        hit = next((t for t, message in marks if message == opening), None)
        if hit is not None:
            starts.append((name, hit))
    out = {}
    for (name, start), (_, end) in zip(starts, [*starts[1:], ("end", total)]):
        out[name] = round(end - start, 2)
    return out


def median_ms(fn: Any, repeats: int = 200, warmup: int = 5) -> float:
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def decide_timings(model: Any, x: np.ndarray) -> dict[str, float]:
    """decide() of one embedding (a probe near an enrolled one), and its parts."""
    rng = np.random.default_rng(1)
    probes = x[rng.integers(len(x), size=256)] + 0.01 * rng.normal(size=(256, x.shape[1])).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    one = [probes[i : i + 1] for i in range(len(probes))]
    out = {"decide": median_ms(lambda i: model.decide(one[i % 256])),
           "gallery_nearest": median_ms(lambda i: model.gallery.nearest(one[i % 256]))}
    for name, clf in model.classifiers.items():
        out[f"predict_proba_{name}"] = median_ms(lambda i, clf=clf: clf.predict_proba(one[i % 256]))
    return out


def held_out_accuracy(people: int, per: int, noise: float) -> dict[str, Any]:
    """Each classifier trained on 80 % of every person's embeddings, scored on the rest."""
    from sklearn.model_selection import train_test_split

    from core.recognition.classifiers import make_classifier, shared_fits

    x, y = sphere(people, per, noise)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    out: dict[str, Any] = {"noise": noise, "train": len(y_train), "test": len(y_test)}
    with shared_fits():
        for name in ("svc", "stacker", "super_learner"):
            t0 = time.perf_counter()
            # As train_model trains them: folds on threads, the SVM on one (reproducible) thread.
            model = make_classifier(name, **({} if name == "svc" else {"n_jobs": -1})).fit(x_train, y_train)
            out[name] = {"accuracy": round(float(np.mean(model.predict(x_test) == y_test)), 4),
                         "fit_s": round(time.perf_counter() - t0, 2)}
            print(f"  noise {noise}: {name} held-out accuracy {out[name]['accuracy']}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--per", type=int, default=10)
    parser.add_argument("--accuracy", action="store_true", help="also held-out accuracy of each classifier")
    parser.add_argument("--hard-noise", type=float, default=1.5,
                        help="noise of the harder accuracy set (1-NN gets ~0.9 at 1,000 people)")
    parser.add_argument("--out", type=Path, default=None,
                        help="result file (default: benchmarks/results/registry.json for 1,000 x 10)")
    args = parser.parse_args()

    from benchmarks.bench_engine import machine, synthetic
    from core.registry import Registry
    from core.registry.training import EmbedderInfo, load_active_model, retrain

    x, y = synthetic(args.people, args.per)
    info = EmbedderInfo("facenet-keras-taniai-msceleb1m", "synthetic", "synthetic-benchmark")
    jpeg = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
    result: dict[str, Any] = {"machine": machine(), "people": args.people, "per_person": args.per,
                              "command": " ".join(["benchmarks/bench_registry.py", *sys.argv[1:]]),
                              "load_before": [round(v, 2) for v in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry.open(Path(tmp) / "facegate.db")
        t0 = time.perf_counter()
        with reg.transaction():
            for p in range(args.people):
                emp = y[p * args.per]
                op = reg.add_operator(emp, f"Operator {p}", "bench", actor="bench")
                items = []
                for j in range(args.per):
                    photo = reg.add_photo(op, jpeg + f"{p}-{j}".encode(), "bench", None, {}, actor="bench")
                    items.append((photo, x[p * args.per + j]))
                reg.add_embeddings(items, info.name, info.version)
        result["enroll_s"] = round(time.perf_counter() - t0, 2)
        print(f"enrolled {args.people} × {args.per} in {result['enroll_s']} s", flush=True)

        marks: list[tuple[float, str]] = []
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        version = retrain(reg, info, Path(tmp) / "models", actor="bench",
                          progress=lambda f, m: marks.append((time.perf_counter() - t0, m)))
        result["retrain_s"] = round(time.perf_counter() - t0, 2)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        # CPU seconds of all the process's threads: what the retrain itself used, whatever else ran.
        result["retrain_cpu_s"] = round(cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime, 1)
        result["load_after_retrain"] = [round(v, 2) for v in os.getloadavg()]
        result["retrain_status"] = version.status
        result["stages"] = stage_seconds(marks, result["retrain_s"])
        metrics = version.metrics
        result["fit_seconds"] = metrics.get("fit_seconds")
        result["cv_method"] = metrics.get("cv_method")
        result["cv_accuracy_mean"] = {k: round(float(np.mean(v)), 4) for k, v in metrics["cv_accuracy"].items()}
        print(f"retrained in {result['retrain_s']} s, {result['retrain_cpu_s']} CPU-s ({result['retrain_status']}); "
              f"stages: {result['stages']}", flush=True)

        model = load_active_model(reg, Path(tmp) / "models")
        assert model is not None
        # Where each classifier's time went (base models, meta-model, calibration).
        result["classifier_seconds"] = {
            name: {part: round(float(sec), 2) for part, sec in (
                clf.fit_times_[0] if isinstance(clf.fit_times_, list) else clf.fit_times_).items()}
            for name, clf in model.classifiers.items() if hasattr(clf, "fit_times_")}
        print(f"classifier parts (s): {result['classifier_seconds']}", flush=True)
        result["decide_ms"] = decide_timings(model, x)
        print(f"decide() of one embedding: {result['decide_ms']} (ms, medians)", flush=True)
        reg.close()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.accuracy:
        result["accuracy"] = [held_out_accuracy(args.people, args.per, noise) for noise in (0.35, args.hard_noise)]
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(f"peak resident memory {result['peak_rss_mb']} MB (before the accuracy runs)")
    print("machine:", json.dumps(result["machine"]), "load:", result["load_before"], "->", result["load_after"])
    out = args.out
    if out is None and (args.people, args.per) == (1000, 10):
        out = ROOT / "benchmarks" / "results" / "registry.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
