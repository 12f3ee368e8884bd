"""``facegate evaluate``: the thesis's section-7 tables on a folder dataset, plus open-set figures.

Closed set (as the thesis): train the three models on ``train/``, score ``train/`` and ``val/``; the nine
Super Learner base learners' train/val accuracy; the stacking ensemble's repeated-stratified-k-fold
accuracy mean (std) per model (CSV + boxplot PNG); each model's probability for each val face.

Open set (beyond the thesis): leave-one-identity-out.  Each person in turn is removed from training,
the three models and the gallery threshold are fitted on the others, and then the removed person's
photos (train and val) are presented as strangers (impostors) while the other people's val photos are
presented as themselves (genuine).  ``--unknown`` adds faces of people who are in no fold at all.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DatasetError
from core.recognition.dataset import EmbeddedSet, check_layout, embed_folder, write_json
from core.recognition.engine import MODEL_NAMES, FacePipeline, Policy, RecognitionModel, train_model
from core.types import UNKNOWN

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]
STACKER_KEYS = ("lr", "knn", "cart", "svm", "bayes", "stacking")


def _stage(progress: Progress | None, lo: float, hi: float, title: str) -> Progress:
    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(lo + (hi - lo) * min(max(frac, 0.0), 1.0), f"{title}: {msg}")

    return report


def _accuracy(model: RecognitionModel, name: str, data: EmbeddedSet) -> float:
    if len(data) == 0:
        return float("nan")
    pred = model.classifiers[name].predict(data.x)
    return float(np.mean(pred == data.y))


def evaluate(
    dataset: Path,
    *,
    unknown: Path | None = None,
    out_dir: Path | None = None,
    pipeline: FacePipeline | None = None,
    policy: Policy | None = None,
    deep: bool = False,
    cv_splits: int = 10,
    cv_repeats: int = 3,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> dict[str, Any]:
    """Run the evaluation and return the report (also written as CSV/PNG into ``out_dir``).

    Raises
    ------
    DatasetError
        If ``dataset`` lacks the ``train/<person>/`` and ``val/<person>/`` layout or has too few faces.
    """
    from core.recognition.classifiers import stacker_cv_scores

    dataset = Path(dataset)
    check_layout(dataset)
    pipeline = pipeline or FacePipeline()
    policy = policy or Policy()
    t0 = time.perf_counter()
    train = embed_folder(dataset / "train", pipeline, progress=_stage(progress, 0.0, 0.25, "reading train"),
                         cancel=cancel)
    val = embed_folder(dataset / "val", pipeline, progress=_stage(progress, 0.25, 0.35, "reading val"),
                       cancel=cancel)
    if len(set(train.y)) < 2:
        raise DatasetError(f"{dataset}/train holds usable faces of fewer than two people; nothing to compare.")
    strangers = None
    if unknown is not None:
        if not Path(unknown).is_dir():
            raise DatasetError(f"{unknown} is not a folder of photos of people outside the dataset.")
        strangers = embed_folder(Path(unknown), pipeline, progress=_stage(progress, 0.35, 0.4, "reading unknown"),
                                 cancel=cancel, label_loose_files=UNKNOWN)

    model = train_model(train.x, train.y, policy=policy, deep=deep, cancel=cancel,
                        progress=_stage(progress, 0.4, 0.55, "training"),
                        metadata={"signature": pipeline.signature, "dataset": str(dataset)})
    val_known = _restrict(val, set(model.classifiers["svc"].classes_))
    models = {
        name: {"train_accuracy": _accuracy(model, name, train), "val_accuracy": _accuracy(model, name, val_known),
               "fit_seconds": model.metadata["fit_seconds"][name]}
        for name in MODEL_NAMES
    }
    sl = model.classifiers["super_learner"]
    base_train = sl.base_learner_scores(train.x, train.y)
    base_val = sl.base_learner_scores(val_known.x, val_known.y) if len(val_known) else {}
    base = {n: {"train_accuracy": base_train[n], "val_accuracy": base_val.get(n, float("nan"))} for n in base_train}
    models["super_learner"]["weights"] = {k: round(float(v), 4) for k, v in sl.weights_[0].items()}
    models["super_learner"]["layers"] = int(sl.n_layers_)

    cv = stacker_cv_scores(train.x, train.y, n_splits=cv_splits, n_repeats=cv_repeats, cancel=cancel,
                           progress=_stage(progress, 0.55, 0.7, "stacking cross-validation"))
    models["stacker"]["cv_accuracy"] = {"mean": float(np.mean(cv["stacking"])), "std": float(np.std(cv["stacking"]))}
    cv_table = {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "scores": [float(s) for s in v]}
                for k, v in cv.items()}

    val_faces = []
    for (votes, table, decision, nearest), path, truth in zip(model.decide(val.x), val.paths, val.y):
        val_faces.append({
            "file": f"{truth}/{path.name}", "truth": str(truth),
            "models": {v.model: {"identity": v.identity, "probability": round(v.probability, 4),
                                 "p_truth": round(table[v.model].get(str(truth), 0.0), 4)} for v in votes},
            "decision": decision.identity, "distance": round(decision.distance, 4), "reason": decision.reason,
        })

    open_set = _leave_one_identity_out(train, val, policy, deep, _stage(progress, 0.7, 0.97, "open set"), cancel)
    open_set["threshold"] = round(model.threshold, 4)
    open_set["calibration"] = model.calibration.summary()
    val_decisions = [f["decision"] == f["truth"] for f in val_faces]
    open_set["enrolled_val_accept_rate"] = float(np.mean(val_decisions)) if val_decisions else float("nan")
    if strangers is not None:
        decided = model.decide(strangers.x) if len(strangers) else []
        rejected = [d[2].identity == UNKNOWN for d in decided]
        open_set["unknown_faces"] = len(rejected)
        open_set["unknown_reject_rate"] = float(np.mean(rejected)) if rejected else float("nan")
        open_set["unknown_accepted_as"] = [
            {"file": str(p.name), "as": d[2].identity, "distance": round(d[2].distance, 4)}
            for p, d in zip(strangers.paths, decided) if d[2].identity != UNKNOWN
        ]

    skipped = [s.reason for s in train.skipped + val.skipped + (strangers.skipped if strangers else [])]
    report: dict[str, Any] = {
        "dataset": str(dataset),
        "pipeline": pipeline.signature,
        "policy": {"decider": policy.decider, "min_probability": policy.min_probability,
                   "min_margin": policy.min_margin},
        "faces": {"train": len(train), "val": len(val), "skipped": len(skipped),
                  "unknown": len(strangers) if strangers is not None else None},
        "skipped": skipped,
        "models": models,
        "base_learners": base,
        "stacker_cv": cv_table,
        "val_faces": val_faces,
        "open_set": open_set,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if out_dir is not None:
        write_outputs(report, Path(out_dir))
    if progress is not None:
        progress(1.0, "done")
    return report


def _restrict(data: EmbeddedSet, classes: set[str]) -> EmbeddedSet:
    keep = np.array([c in classes for c in data.y], dtype=bool)
    return EmbeddedSet(data.x[keep], data.y[keep], [p for p, k in zip(data.paths, keep) if k])


def _leave_one_identity_out(
    train: EmbeddedSet, val: EmbeddedSet, policy: Policy, deep: bool, progress: Progress, cancel: Cancel | None
) -> dict[str, Any]:
    people = sorted(set(train.y))
    genuine_ok: list[bool] = []
    impostor_rejected: list[bool] = []
    folds = []
    for i, person in enumerate(people):
        keep = train.y != person
        if len(set(train.y[keep])) < 2:
            continue
        def fold_progress(frac: float, msg: str, i: int = i, who: str = person) -> None:
            progress((i + frac) / len(people), f"without {who}: {msg}")

        model = train_model(train.x[keep], train.y[keep], policy=policy, deep=deep, cancel=cancel,
                            progress=fold_progress)
        gen_mask = (val.y != person) & np.isin(val.y, train.y[keep])
        imp_x = np.concatenate([train.x[~keep], val.x[val.y == person]])
        g = [d[2].identity == t for d, t in zip(model.decide(val.x[gen_mask]), val.y[gen_mask])]
        r = [d[2].identity == UNKNOWN for d in model.decide(imp_x)]
        genuine_ok += g
        impostor_rejected += r
        folds.append({"left_out": person, "threshold": round(model.threshold, 4),
                      "genuine_accept_rate": float(np.mean(g)) if g else float("nan"),
                      "impostor_reject_rate": float(np.mean(r)) if r else float("nan"),
                      "genuine_faces": len(g), "impostor_faces": len(r)})
    return {
        "method": "leave-one-identity-out",
        "genuine_accept_rate": float(np.mean(genuine_ok)) if genuine_ok else float("nan"),
        "impostor_reject_rate": float(np.mean(impostor_rejected)) if impostor_rejected else float("nan"),
        "genuine_faces": len(genuine_ok),
        "impostor_faces": len(impostor_rejected),
        "folds": folds,
    }


def write_outputs(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``report.json``-style artefacts: the CV CSV and boxplot PNG; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "stacker_cv.csv"
    png_path = out_dir / "stacker_cv_boxplot.png"
    cv = report["stacker_cv"]
    tmp = csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model", "fold", "accuracy"])
        for name, row in cv.items():
            for fold, score in enumerate(row["scores"]):
                writer.writerow([name, fold, f"{score:.6f}"])
    tmp.replace(csv_path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    names = [n for n in STACKER_KEYS if n in cv]
    ax.boxplot([cv[n]["scores"] for n in names], showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("accuracy")
    ax.set_title("Stacked ensemble: repeated stratified k-fold accuracy")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    tmp_png = png_path.with_suffix(".tmp.png")
    fig.savefig(tmp_png)
    plt.close(fig)
    tmp_png.replace(png_path)
    return {"csv": csv_path, "png": png_path}


def format_report(report: dict[str, Any]) -> str:
    """The report as the thesis prints it, plus the open-set figures."""
    lines = []
    f = report["faces"]
    lines.append(f"Faces: {f['train']} train, {f['val']} val, {f['skipped']} skipped"
                 + (f", {f['unknown']} unknown" if f.get("unknown") is not None else ""))
    for reason in report["skipped"]:
        lines.append(f"  skipped: {reason}")
    lines.append("")
    lines.append("Accuracy of the Super Learner's base learners (%)")
    lines.append(f"  {'model':<26}{'train':>8}{'val':>8}")
    for name, row in report["base_learners"].items():
        lines.append(f"  {name:<26}{100 * row['train_accuracy']:>8.3f}{100 * row['val_accuracy']:>8.3f}")
    for name in MODEL_NAMES:
        row = report["models"][name]
        lines.append(f"  {name:<26}{100 * row['train_accuracy']:>8.3f}{100 * row['val_accuracy']:>8.3f}")
    lines.append("")
    lines.append("Stacked ensemble, repeated stratified k-fold accuracy: mean (std)")
    for name, row in report["stacker_cv"].items():
        lines.append(f"  >{name} {row['mean']:.3f} ({row['std']:.3f})")
    lines.append("")
    lines.append("Probability of the predicted identity per val face (svc / stacker / super_learner)")
    for face in report["val_faces"]:
        m = face["models"]
        cells = "  ".join(f"{m[n]['identity'][:14]:<14} {100 * m[n]['probability']:5.1f}%" for n in MODEL_NAMES)
        mark = "ok" if face["decision"] == face["truth"] else "--"
        lines.append(f"  {mark} {face['truth'][:14]:<14} | {cells} | -> {face['decision']}")
    o = report["open_set"]
    lines.append("")
    lines.append(f"Open set (decider: {report['policy']['decider']}, threshold {o['threshold']:.3f})")
    lines.append(f"  enrolled val faces accepted as themselves: {100 * o['enrolled_val_accept_rate']:.1f}%")
    lines.append(f"  leave-one-identity-out: genuine accepted {100 * o['genuine_accept_rate']:.1f}% "
                 f"({o['genuine_faces']}), impostors rejected {100 * o['impostor_reject_rate']:.1f}% "
                 f"({o['impostor_faces']})")
    if "unknown_reject_rate" in o:
        lines.append(f"  unknown people rejected: {100 * o['unknown_reject_rate']:.1f}% ({o['unknown_faces']})")
    lines.append(f"Took {report['seconds']} s.")
    return "\n".join(lines)


def save_report(report: dict[str, Any], path: Path) -> None:
    """Write the JSON report atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, report)
