"""``facegate evaluate``: the thesis's section-7 tables on a folder dataset, plus open-set figures.

Closed set (as the thesis): train the three models on ``train/``, score ``train/`` and ``val/``; the nine
Super Learner base learners' train/val accuracy; the stacking ensemble's repeated-stratified-k-fold
accuracy mean (std) per model (CSV + boxplot PNG); each model's probability for each val face.

Calibration (beyond the thesis): each model's expected calibration error, Brier score and wrong names
given with high probability on the val faces, and a reliability diagram PNG (three curves on one plot);
the same figures pooled over the leave-one-identity-out pass below (cheap: its probabilities are
computed anyway), where the left-out person's photos count as wrong whatever the model names.  The
stacking cross-validation yields only accuracies, so there is no k-fold out-of-fold ECE.

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
from core.recognition.augment import AUGMENT_BELOW
from core.recognition.dataset import EmbeddedSet, augment_for_training, check_layout, embed_folder, write_json
from core.recognition.engine import MODEL_NAMES, FacePipeline, Policy, RecognitionModel, train_model
from core.recognition.reliability import calibration_summary, label_indices
from core.types import UNKNOWN

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]
STACKER_KEYS = ("lr", "knn", "cart", "svm", "bayes", "stacking")
CALIBRATION_BINS = 15
# The console's colours for the three models (gui/theme.py; core cannot import it).
MODEL_COLOURS = {"svc": "#4285f4", "stacker": "#ff9800", "super_learner": "#00acc1"}
MODEL_LABELS = {"svc": "SVC", "stacker": "Stacker", "super_learner": "Super Learner"}


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

    model, topped_up = train_topped_up(train, pipeline, policy=policy, deep=deep, cancel=cancel,
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

    # The thesis's table: real photos only (no augmented copies), folds that adapt per person.
    cv = stacker_cv_scores(train.x, train.y, n_splits=cv_splits, n_repeats=cv_repeats, cancel=cancel,
                           progress=_stage(progress, 0.55, 0.7, "stacking cross-validation"))
    counts = {str(p): int(n) for p, n in zip(*np.unique(train.y, return_counts=True))}
    folds_used = len(next(iter(cv.values()))) // max(int(cv_repeats), 1)
    adapted = {
        "cv_folds_requested": int(cv_splits), "cv_folds_used": folds_used,
        "cv_folds_per_person": min(counts.values()) < folds_used or folds_used < int(cv_splits),
        "photos_per_person": counts,
        "augmented_copies": topped_up,
        "note": ("Folds adapt per person: someone with fewer photos than folds is held out in only as many "
                 "folds as they have photos. People with fewer than "
                 f"{AUGMENT_BELOW} photos are trained on with augmented copies (mirrored, shifted, zoomed, "
                 "lighter, darker) of their photos; the gallery and its threshold use real photos only."),
    }
    models["stacker"]["cv_accuracy"] = {"mean": float(np.mean(cv["stacking"])), "std": float(np.std(cv["stacking"]))}
    cv_table = {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "scores": [float(s) for s in v]}
                for k, v in cv.items()}

    # Calibration on every val face, including anyone the models were not trained on (counted wrong).
    val_proba = model.probabilities(val.x) if len(val) else {}
    for name in MODEL_NAMES:
        classes = model.classifiers[name].classes_
        proba = val_proba[name] if len(val) else np.zeros((0, len(classes)))
        models[name]["calibration"] = calibration_summary(proba, label_indices(val.y, classes), CALIBRATION_BINS)

    val_faces = []
    for (votes, table, decision, nearest), path, truth in zip(model.decide(val.x), val.paths, val.y):
        val_faces.append({
            "file": f"{truth}/{path.name}", "truth": str(truth),
            "models": {v.model: {"identity": v.identity, "probability": round(v.probability, 4),
                                 "p_truth": round(table[v.model].get(str(truth), 0.0), 4)} for v in votes},
            "decision": decision.identity, "distance": round(decision.distance, 4), "reason": decision.reason,
        })

    open_set = _leave_one_identity_out(train, val, policy, deep, _stage(progress, 0.7, 0.97, "open set"), cancel,
                                       pipeline)
    for name, summary in open_set.pop("model_calibration").items():
        models[name]["calibration_leave_one_identity_out"] = summary
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
        "adapted": adapted,
        "val_faces": val_faces,
        "open_set": open_set,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if out_dir is not None:
        write_outputs(report, Path(out_dir))
    if progress is not None:
        progress(1.0, "done")
    return report


def train_topped_up(data: EmbeddedSet, pipeline: Any, **kwargs: Any) -> tuple[RecognitionModel, dict[str, int]]:
    """``train_model`` on ``data`` topped up with augmented copies (as enrollment does); the copies per person."""
    x_aug, y_aug, g_aug = augment_for_training(data, pipeline)
    x = np.concatenate([data.x, x_aug])
    y = np.concatenate([data.y, y_aug])
    groups = np.concatenate([np.arange(len(data)), g_aug])
    model = train_model(x, y, groups=groups, augmented=np.arange(len(y)) >= len(data), **kwargs)
    copies: dict[str, int] = {}
    for label in y_aug.tolist():
        copies[str(label)] = copies.get(str(label), 0) + 1
    return model, copies


def _restrict(data: EmbeddedSet, classes: set[str]) -> EmbeddedSet:
    keep = np.array([c in classes for c in data.y], dtype=bool)
    return EmbeddedSet(data.x[keep], data.y[keep], [p for p, k in zip(data.paths, keep) if k])


def _leave_one_identity_out(
    train: EmbeddedSet, val: EmbeddedSet, policy: Policy, deep: bool, progress: Progress, cancel: Cancel | None,
    pipeline: Any = None,
) -> dict[str, Any]:
    people = sorted(set(train.y))
    column = {p: i for i, p in enumerate(people)}
    # Per model, each presented face's probabilities over all people (0 for the left-out one) and its
    # true column, -1 for the left-out person: no name the fold's model can give them is right.
    pooled: dict[str, tuple[list[list[float]], list[int]]] = {n: ([], []) for n in MODEL_NAMES}
    genuine_ok: list[bool] = []
    impostor_rejected: list[bool] = []
    folds = []
    for i, person in enumerate(people):
        keep = train.y != person
        if len(set(train.y[keep])) < 2:
            continue
        def fold_progress(frac: float, msg: str, i: int = i, who: str = person) -> None:
            progress((i + frac) / len(people), f"without {who}: {msg}")

        kept = np.flatnonzero(keep)
        fold = EmbeddedSet(train.x[kept], train.y[kept], [train.paths[r] for r in kept],
                           [train.boxes[r] for r in kept] if train.boxes else [])
        model = (train_topped_up(fold, pipeline, policy=policy, deep=deep, cancel=cancel, progress=fold_progress)[0]
                 if pipeline is not None else
                 train_model(fold.x, fold.y, policy=policy, deep=deep, cancel=cancel, progress=fold_progress))
        gen_mask = (val.y != person) & np.isin(val.y, train.y[keep])
        imp_x = np.concatenate([train.x[~keep], val.x[val.y == person]])
        gen_decided = model.decide(val.x[gen_mask])
        imp_decided = model.decide(imp_x)
        g = [d[2].identity == t for d, t in zip(gen_decided, val.y[gen_mask])]
        r = [d[2].identity == UNKNOWN for d in imp_decided]
        truths = [column[str(t)] for t in val.y[gen_mask]] + [-1] * len(imp_decided)
        for d, t in zip(gen_decided + imp_decided, truths):
            for name, (rows, ys) in pooled.items():
                row = [0.0] * len(people)
                for who, prob in d[1][name].items():
                    row[column[who]] = prob
                rows.append(row)
                ys.append(t)
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
        "model_calibration": {
            name: calibration_summary(np.asarray(rows, dtype=np.float64).reshape(len(ys), len(people)),
                                      np.asarray(ys, dtype=np.intp), CALIBRATION_BINS)
            for name, (rows, ys) in pooled.items()
        },
    }


def _pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend (core runs without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(plt: Any, fig: Any, path: Path) -> None:
    """Save ``fig`` to a temp file, close it, then rename: a reader never sees half a PNG."""
    tmp_png = path.with_suffix(".tmp.png")
    fig.savefig(tmp_png)
    plt.close(fig)
    tmp_png.replace(path)


def write_outputs(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write the CV CSV, its boxplot PNG and the reliability diagram PNG; return their paths.

    Keys of the result: ``"csv"``, ``"png"`` (the boxplot) and ``"reliability"``.
    """
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
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    names = [n for n in STACKER_KEYS if n in cv]
    ax.boxplot([cv[n]["scores"] for n in names], showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("accuracy")
    ax.set_title("Stacked ensemble: repeated stratified k-fold accuracy")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save_png(plt, fig, png_path)
    reliability_path = out_dir / "reliability.png"
    write_reliability_diagram(report, reliability_path)
    return {"csv": csv_path, "png": png_path, "reliability": reliability_path}


def write_reliability_diagram(report: dict[str, Any], path: Path) -> None:
    """Draw each model's reliability curve (one plot, three curves and the diagonal) into ``path``.

    Left: the val faces.  Right, when the report has it: the leave-one-identity-out pass, where the
    left-out person's photos count as wrong whatever the models name.  Top: per confidence bin, the
    share of faces named right against the mean probability given to the top name, a marker's area
    growing with the bin's face count; on the dashed diagonal a model's probabilities mean what they
    say.  Bottom: the face count per bin and model.
    """
    plt = _pyplot()

    panels = [("calibration", "Held-out val faces ({n})")]
    if all("calibration_leave_one_identity_out" in report["models"][n] for n in MODEL_NAMES):
        panels.append(("calibration_leave_one_identity_out",
                       "Leave-one-identity-out ({n} faces;\nthe left-out person's {u} count as wrong)"))
    fig, axes = plt.subplots(2, len(panels), figsize=(6.4 * len(panels), 6.4), dpi=110, sharex=True,
                             gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for col, (key, title) in enumerate(panels):
        ax, hist = axes[0][col], axes[1][col]
        ax.plot([0, 1], [0, 1], ls="--", color="0.55", lw=1, label="perfectly calibrated")
        cal: dict[str, Any] = {}
        for k, name in enumerate(MODEL_NAMES):
            cal = report["models"][name][key]
            bins = cal["bins"]
            conf = [b["confidence"] for b in bins]
            acc = [b["accuracy"] for b in bins]
            counts = [b["count"] for b in bins]
            scale = 600 / max(cal["faces"], 1)  # a bin holding every face gets a 600 pt² marker
            colour = MODEL_COLOURS[name]
            ax.plot(conf, acc, color=colour, lw=1.6, alpha=0.85,
                    label=f"{MODEL_LABELS[name]}: ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f}")
            ax.scatter(conf, acc, s=[12 + scale * c for c in counts], color=colour, alpha=0.5,
                       edgecolors="white", linewidths=0.8, zorder=3)
            width = 1.0 / cal["n_bins"] / 3.6
            hist.bar([(b["low"] + b["high"]) / 2 + (k - 1) * width for b in bins], counts, width=width,
                     color=colour, alpha=0.5)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(-0.03, 1.05)
        heading = title.format(n=cal.get("faces", 0), u=cal.get("faces_not_in_classes", 0))
        ax.set_title(f"Reliability: {heading}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8.5, framealpha=0.9)
        hist.set_xlabel("probability the model gave its top name (confidence)")
        hist.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("share of these faces named right\n(below the diagonal = overconfident)")
    axes[1][0].set_ylabel("faces per bin")
    fig.tight_layout()
    _save_png(plt, fig, path)


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
    adapted = report.get("adapted")
    if adapted:
        per_person = " (adapted per person: some have fewer photos than folds)" if adapted["cv_folds_per_person"] else ""
        lines.append(f"  folds: {adapted['cv_folds_requested']} asked, {adapted['cv_folds_used']} used{per_person}")
        if adapted["augmented_copies"]:
            few = ", ".join(f"{p} {adapted['photos_per_person'][p]} photo(s) + {n} copies"
                            for p, n in adapted["augmented_copies"].items())
            lines.append(f"  topped up with augmented copies for training: {few}")
    lines.append("")
    lines.append("Probability of the predicted identity per val face (svc / stacker / super_learner)")
    for face in report["val_faces"]:
        m = face["models"]
        cells = "  ".join(f"{m[n]['identity'][:14]:<14} {100 * m[n]['probability']:5.1f}%" for n in MODEL_NAMES)
        mark = "ok" if face["decision"] == face["truth"] else "--"
        lines.append(f"  {mark} {face['truth'][:14]:<14} | {cells} | -> {face['decision']}")
    lines.extend(_calibration_lines(report))
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


def _calibration_lines(report: dict[str, Any]) -> list[str]:
    models = report["models"]
    if not all("calibration" in models[n] for n in MODEL_NAMES):
        return []

    def row(name: str, c: dict[str, Any]) -> str:
        return (f"  {name:<16}{c['ece']:>7.3f}{c['brier']:>8.3f}{c['max_wrong_probability']:>13.3f}"
                f"{c['confident_wrong']:>9} / {c['faces']}")

    threshold = models[MODEL_NAMES[0]]["calibration"]["confident_threshold"]
    lines = ["", ("Calibration on the val faces (ECE: 0 = probabilities mean what they say; Brier: 0 to 2, "
                  "lower is better)"),
             f"  {'model':<16}{'ECE':>7}{'Brier':>8}{'max p wrong':>13}{f'wrong >= {threshold:g}':>14}"]
    lines += [row(name, models[name]["calibration"]) for name in MODEL_NAMES]
    if all("calibration_leave_one_identity_out" in models[n] for n in MODEL_NAMES):
        first = models[MODEL_NAMES[0]]["calibration_leave_one_identity_out"]
        lines.append(f"  leave-one-identity-out ({first['faces']} faces, "
                     f"{first['faces_not_in_classes']} of them the left-out person, always wrong):")
        lines += [row(name, models[name]["calibration_leave_one_identity_out"]) for name in MODEL_NAMES]
    return lines


def save_report(report: dict[str, Any], path: Path) -> None:
    """Write the JSON report atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, report)
