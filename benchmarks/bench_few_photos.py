"""Issue 12's targets: few photos per person, calibrated probabilities, open-set figures.

Run from the repository root::

    .venv/bin/python benchmarks/bench_few_photos.py            # writes benchmarks/results/few_photos.json
    .venv/bin/python benchmarks/bench_few_photos.py --quick    # no 1,000-person gallery, writes nothing

What it measures, on the real MTCNN and FaceNet weights and the real 5-celebrity photos:

* ``table``: for 1, 2, 3, 5 and all training photos per person (the first that pass the quality gate),
  each model trained with the augmented copies that top such people up (:mod:`core.recognition.augment`,
  as enrollment and ``facegate evaluate`` do) and scored on the 25 *val* photos: right names out of
  25, expected calibration error (ECE, 15 bins), Brier score, the highest probability given to a
  wrong name; the 4 strangers (Obama ×3, Biden) rejected by the gate; leave-one-identity-out (each
  person removed from training in turn, then presented: impostor reject rate; the others' val
  faces: genuine accept rate).
* ``out_of_fold``: all 113 5-celebrity photos pooled, stratified 5-fold; each model's out-of-fold
  probabilities: ECE, Brier, the highest wrong-name probability, wrong names at 0.9 or more.
* ``synthetic``: the 1,000-person synthetic gallery of ``bench_registry.py`` (12 embeddings each:
  10 to train, 2 held out), at its noise (0.35: every held-out embedding separable) and at its hard
  noise (1.5: some are not): each model's accuracy, ECE, Brier and wrong names at 0.9 or more on the
  held-out ones.

No assertions; the README's "Few photos and calibration" table is made from this file.  The retrain
time of 1,000 × 10 is ``bench_registry.py``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COUNTS: tuple[int | None, ...] = (1, 2, 3, 5, None)


def subset(data: Any, n: int | None) -> Any:
    from core.recognition.dataset import EmbeddedSet

    seen: dict[str, int] = {}
    keep = []
    for i, label in enumerate(data.y.tolist()):
        seen[label] = seen.get(label, 0) + 1
        if n is None or seen[label] <= n:
            keep.append(i)
    rows = np.asarray(keep)
    return EmbeddedSet(data.x[rows], data.y[rows], [data.paths[i] for i in rows], [data.boxes[i] for i in rows], [])


def fit(data: Any, pipeline: Any) -> Any:
    """The three models on ``data`` topped up with augmented copies, as ``facegate evaluate`` trains them."""
    from core.recognition.evaluate import train_topped_up

    model, copies = train_topped_up(data, pipeline)
    return model, sum(copies.values())


def scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from core.recognition.reliability import calibration_summary, label_indices

    out = {}
    for name, clf in model.classifiers.items():
        proba = clf.predict_proba(x)
        s = calibration_summary(proba, label_indices(y, clf.classes_))
        out[name] = {"right": int(np.sum(np.asarray(clf.classes_)[proba.argmax(axis=1)] == y)), "of": len(y),
                     "ece": round(s["ece"], 4), "brier": round(s["brier"], 4),
                     "max_wrong_probability": round(s["max_wrong_probability"], 4) if s["max_wrong_probability"] == s["max_wrong_probability"] else 0.0,
                     "confident_wrong": s["confident_wrong"]}
    return out


def rejected(model: Any, x: np.ndarray) -> int:
    from core.types import UNKNOWN

    return sum(d[2].identity == UNKNOWN for d in model.decide(x))


def leave_one_identity_out(train: Any, val: Any, pipeline: Any) -> dict[str, float]:
    from core.types import UNKNOWN

    genuine, impostor = [], []
    for person in sorted(set(train.y.tolist())):
        keep = train.y != person
        model, _ = fit(subset_rows(train, keep), pipeline)
        others = val.y != person
        genuine += [d[2].identity == t for d, t in zip(model.decide(val.x[others]), val.y[others])]
        probes = np.concatenate([train.x[~keep], val.x[~others]])
        impostor += [d[2].identity == UNKNOWN for d in model.decide(probes)]
    return {"genuine_accept": round(float(np.mean(genuine)), 4), "impostor_reject": round(float(np.mean(impostor)), 4),
            "genuine_faces": len(genuine), "impostor_faces": len(impostor)}


def subset_rows(data: Any, keep: np.ndarray) -> Any:
    from core.recognition.dataset import EmbeddedSet

    rows = np.flatnonzero(keep)
    return EmbeddedSet(data.x[rows], data.y[rows], [data.paths[i] for i in rows], [data.boxes[i] for i in rows], [])


def out_of_fold(train: Any, val: Any) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedKFold

    from core.recognition.engine import train_model
    from core.recognition.reliability import calibration_summary

    x = np.concatenate([train.x, val.x])
    y = np.concatenate([train.y, val.y])
    classes = np.unique(y)
    proba: dict[str, np.ndarray] = {}
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        model = train_model(x[tr], y[tr])
        for name, clf in model.classifiers.items():
            p = proba.setdefault(name, np.zeros((len(y), len(classes))))
            p[np.ix_(te, np.searchsorted(classes, clf.classes_))] = clf.predict_proba(x[te])
    out = {}
    for name, p in proba.items():
        s = calibration_summary(p, np.searchsorted(classes, y))
        out[name] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items() if k != "bins"}
    return out


def synthetic_gallery(people: int, noise: float) -> dict[str, Any]:
    from benchmarks.bench_registry import sphere
    from core.recognition.engine import train_model
    from core.recognition.reliability import calibration_summary, label_indices

    x, y = sphere(people, 12, noise, seed=3)
    held = (np.arange(len(y)) % 12) >= 10
    t0 = time.perf_counter()
    model = train_model(x[~held], y[~held])
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"people": people, "noise": noise, "train_per_person": 10, "held_out_per_person": 2,
                           "train_model_s": round(seconds, 1)}
    for name, clf in model.classifiers.items():
        s = calibration_summary(clf.predict_proba(x[held]), label_indices(y[held], clf.classes_))
        out[name] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items() if k != "bins"}
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 1,000-person gallery; write nothing")
    parser.add_argument("--people", type=int, default=1000, help="people of the synthetic gallery")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from benchmarks.bench_engine import machine
    from core.assets import ensure_seed_assets, ensure_strangers
    from core.recognition.dataset import embed_folder
    from core.recognition.engine import FacePipeline

    seed = ensure_seed_assets()
    pipeline = FacePipeline()
    train = embed_folder(seed.dataset / "train", pipeline)
    val = embed_folder(seed.dataset / "val", pipeline)
    strangers = embed_folder(ensure_strangers(), pipeline)
    result: dict[str, Any] = {"machine": machine(), "load_before": [round(v, 2) for v in os.getloadavg()],
                              "command": "benchmarks/bench_few_photos.py" + (" --quick" if args.quick else ""),
                              "table": []}
    for n in COUNTS:
        sub = subset(train, n)
        model, augmented = fit(sub, pipeline)
        row = {"photos_per_person": n or "all", "train_photos": len(sub), "augmented_rows": augmented,
               "models": scores(model, val.x, val.y),
               "strangers_rejected": rejected(model, strangers.x), "strangers": len(strangers),
               "leave_one_identity_out": leave_one_identity_out(sub, val, pipeline)}
        result["table"].append(row)
        right = ", ".join(f"{k} {v['right']}/{v['of']} (ECE {v['ece']:.3f})" for k, v in row["models"].items())
        loio = row["leave_one_identity_out"]
        print(f"{n or 'all'} photos: {right}; strangers {row['strangers_rejected']}/{len(strangers)}; "
              f"LOIO genuine {loio['genuine_accept']:.3f}, impostor {loio['impostor_reject']:.3f}", flush=True)
    result["out_of_fold"] = out_of_fold(train, val)
    print("out of fold:", {k: (v["ece"], v["max_wrong_probability"]) for k, v in result["out_of_fold"].items()})
    if not args.quick:
        result["synthetic"] = [synthetic_gallery(args.people, noise) for noise in (0.35, 1.5)]
        for entry in result["synthetic"]:
            print(f"synthetic, noise {entry['noise']}:", {k: (v["ece"], v["top_label_accuracy"], v["confident_wrong"])
                                                         for k, v in entry.items() if isinstance(v, dict)})
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results" / "few_photos.json")
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
