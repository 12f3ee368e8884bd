"""Retraining from the registry: versioned models, checks before activation, rollback, gallery-only.

:func:`retrain` reads the enrolled embeddings of the current embedder from the registry, trains the
three classifiers and calibrates the open-set threshold (:func:`core.recognition.engine.train_model`), measures
the new model, and records it as a new model version.  It becomes the active model only if its checks
(:class:`TrainingChecks`) pass; otherwise it is recorded as ``rejected`` with the reasons in its
notes, and the active model stays as it was.

Where models live
-----------------
Each version is a folder ``models_dir/<version>/`` (``model.joblib`` + ``model.json``), where
``<version>`` is ``YYYYMMDD-HHMMSS-xxxxxx`` (UTC time and a random suffix); the same string is the
model's :attr:`~core.recognition.engine.RecognitionModel.version`, stored with every recognition event.
:meth:`RecognitionModel.save` writes a temporary folder and renames it into place, and only then is
the version recorded in the registry, in the same transaction that activates it.  So:

* a cancel (``cancel()`` true) or any error leaves no new file and no new registry row;
* a crash or ``SIGKILL`` before the rename leaves at most a ``.model-*`` temporary folder; one
  between the rename and the commit leaves a version folder no registry row names.  Neither is ever
  loaded (only the registry's active version is), and :func:`sweep_models_dir` — run at the start of
  every retrain — deletes them once they are an hour old;
* the active model is only ever switched by that one commit.

Rejected versions keep their registry row (metrics and reasons) but no files: they can never be
activated, and every model file holds enrolled people's embeddings.  Older versions keep their files
for :func:`rollback`.

Metrics stored with each version
--------------------------------
``version``, ``people``, ``embeddings``, ``left_out`` (people with too few photos, by employee id),
``threshold`` and ``calibration`` (open-set figures: genuine and impostor accept rates of the
calibration pairs, median distances), ``train_accuracy`` (in-sample, per model), ``cv_accuracy``
(per-fold accuracy for the boxplot: ``svc`` and ``stacker`` — the stacking ensemble — and the
stacker's base models ``lr``, ``knn``, ``cart``, ``svm``, ``bayes``; one repeat of stratified
``cv_folds``-fold), ``cv_method`` (how those figures were measured: ``"refit"``, the SVC and the
whole stacker trained again on each fold, for small galleries; ``"out_of_fold"``, read from the
folds the classifiers trained on, for large ones — see :func:`_from_training_folds`),
``super_learner`` (its out-of-fold log loss and base-learner weights; it is not cross-validated
here, which would cost ``cv_folds`` more fits of the most expensive model), timings
(``fit_seconds`` per classifier, ``calibrate_seconds``, ``train_seconds``, ``cv_seconds``,
``total_seconds``), and ``checks`` (each check's value, limit, verdict and sentence).

Gallery-only recognition
------------------------
People enrolled after the last retrain are unknown to the classifiers but can already be recognised
by their distance to the gallery: :func:`current_gallery_model` returns the trained model with its
gallery replaced by the registry's current embeddings (new people in, erased and suspended people
out).  :meth:`RecognitionModel.decide` then accepts a new person on the distance alone and says so
("classifiers not retrained yet (gallery only)").

Who may retrain
---------------
Retraining activates a model, an HR action: the caller checks the HR passphrase
(:func:`core.registry.security.authorize_hr`) first and passes the actor's name for the audit trail.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.errors import FaceGateError, ModelError
from core.recognition.classifiers import STACKER_MODEL_NAMES, TrainingCancelled, TrainingDataError
from core.recognition.engine import RecognitionModel, train_model
from core.recognition.openset import Gallery
from core.registry import ModelVersion, Registry

log = logging.getLogger(__name__)

__all__ = [
    "EmbedderInfo",
    "TrainingCancelled",
    "TrainingChecks",
    "current_gallery_model",
    "load_active_model",
    "retrain",
    "rollback",
    "sweep_models_dir",
]

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]

_VERSION_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
_TEMP_PREFIX = ".model-"  # RecognitionModel.save's temporary folders
STALE_AFTER_S = 3600.0
"""Age after which :func:`sweep_models_dir` deletes leftovers of an interrupted retrain."""


class _EmbedderLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


class _PipelineLike(Protocol):
    @property
    def embedder(self) -> _EmbedderLike: ...

    @property
    def signature(self) -> str: ...


@dataclass(frozen=True)
class EmbedderInfo:
    """Which embeddings a model is trained on: the embedder's name and version, the pipeline signature.

    Pass one to :func:`retrain` instead of a whole :class:`~core.recognition.engine.FacePipeline` (e.g. from a
    worker process); :meth:`of` reads it from a pipeline without loading any network.
    """

    name: str
    version: str
    signature: str
    backend: str = "unknown"
    """The runtime that computes this process's embeddings (``onnx`` or ``tf``; issue 13): recorded in
    the model version.  It does not change the embeddings (equal to 1e-5), so it is not part of the
    signature, and a gallery made with one backend stays valid with the other."""

    @classmethod
    def of(cls, pipeline: _PipelineLike) -> EmbedderInfo:
        """The embedder info of a :class:`~core.recognition.engine.FacePipeline`."""
        return cls(str(pipeline.embedder.name), str(pipeline.embedder.version), str(pipeline.signature),
                   str(getattr(pipeline, "backend", "unknown")))


@dataclass(frozen=True)
class TrainingChecks:
    """What a new model must pass to become active.

    Attributes
    ----------
    min_people
        People the classifiers must know (fewer: training is refused with :class:`TrainingDataError`).
    min_photos_per_person
        Photos a person needs to be trained on: 1 (issue 12: the folds adapt per person, and people
        with fewer than :data:`core.recognition.augment.AUGMENT_BELOW` photos are topped up with
        augmented copies).  People with fewer are left out of the classifiers, reported in the
        metrics, and still recognised through the gallery (:func:`current_gallery_model`).
    min_train_accuracy
        In-sample accuracy each classifier must reach: lower means the embeddings of two people
        cannot be told apart (mislabelled photos, one person under two ids).
    min_cv_accuracy
        Mean cross-validated accuracy the SVC and the stacker must reach.
    min_genuine_accept_rate
        Share of the enrolled photos the calibrated threshold accepts as their own person
        (leave-one-out); lower means the threshold shuts out the enrolled people.
    target_far
        Impostor accept rate the threshold is calibrated for, and the most the calibration pairs
        may show.
    """

    min_people: int = 2
    min_photos_per_person: int = 1
    min_train_accuracy: float = 0.9
    min_cv_accuracy: float = 0.8
    min_genuine_accept_rate: float = 0.8
    target_far: float = 0.01

    def __post_init__(self) -> None:
        if self.min_people < 2:
            raise ValueError("A classifier needs at least 2 people.")
        if self.min_photos_per_person < 1:
            raise ValueError("A person needs at least 1 photo to be trained on.")
        for name in ("min_train_accuracy", "min_cv_accuracy", "min_genuine_accept_rate", "target_far"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie between 0 and 1.")


def _stage(progress: Progress | None, lo: float, hi: float) -> Progress:
    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(lo + (hi - lo) * min(max(float(fraction), 0.0), 1.0), message)

    return report


def _check_cancel(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise TrainingCancelled("Training was cancelled; no new model was recorded and the active model "
                                "is unchanged.")


def _backfill_augmented(registry: Registry, pipeline: Any, info: EmbedderInfo, y: np.ndarray, groups: np.ndarray,
                        x: np.ndarray) -> int:
    """Augmented embeddings for photos enrolled before issue 12 (or stored without them), once.

    Enrollment stores them (:meth:`core.registry.enrollment.Enroller._augmented`); a registry from
    before has none, and its people with few photos would be trained on their photos alone.  With a
    face pipeline at hand (``facegate train``; not the console's training thread, which has only
    the embedder's name), each such photo is read from the registry, its face found again (the one
    whose embedding is the stored one, within 0.2: photos may have been re-encoded), and its variations embedded and stored.
    Returns how many photos got them.  Photos whose face cannot be found again are skipped.
    """
    from core.recognition.augment import AUGMENT_BELOW, augmented_embeddings
    from core.vision.imageio import decode_image

    if isinstance(pipeline, EmbedderInfo) or not hasattr(pipeline, "detector"):
        return 0
    counts = Counter(y.tolist())
    few = [i for i, label in enumerate(y.tolist()) if counts[label] < AUGMENT_BELOW]
    if not few:
        return 0
    have = registry.augmented(info.version, embedder=info.name, photo_ids=[int(groups[i]) for i in few])
    done = 0
    for i in few:
        pid = int(groups[i])
        if pid in have:
            continue
        try:
            image = decode_image(registry.photo_bytes(pid), f"photo {pid}")
            detections = list(pipeline.detector.detect(image))
            if not detections:
                continue
            vectors = pipeline.embed(image, detections)
            best = int(np.argmin(np.linalg.norm(vectors - x[i], axis=1)))
            if float(np.linalg.norm(vectors[best] - x[i])) > 0.2:
                continue
            face = pipeline.align(image, [detections[best]])
            registry.add_augmented(pid, augmented_embeddings(pipeline.embedder, face)[0], info.name, info.version)
            done += 1
        except FaceGateError as exc:
            log.warning("retrain: no augmented copies for photo %d: %s", pid, exc)
    if done:
        log.info("retrain: augmented copies computed for %d photos enrolled without them", done)
    return done


def _top_up(registry: Registry, info: EmbedderInfo, y: np.ndarray, groups: np.ndarray,
            dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The augmented copies that top up people with few photos (:func:`core.recognition.augment.top_up`):
    embeddings, labels and the photo each comes from (empty arrays when nobody needs them)."""
    from core.recognition.augment import AUGMENT_BELOW, top_up

    counts = Counter(y.tolist())
    few = [int(g) for label, g in zip(y.tolist(), groups.tolist()) if counts[label] < AUGMENT_BELOW]
    stored = registry.augmented(info.version, embedder=info.name, photo_ids=few) if few else {}
    rows_photo, rows_variant = top_up(y.tolist(), groups.tolist(), stored)
    if not rows_photo:
        return np.zeros((0, dim), np.float32), np.zeros(0, dtype=y.dtype), np.zeros(0, dtype=np.int64)
    owner = dict(zip(groups.tolist(), y.tolist()))
    x_aug = np.stack([stored[p][v] for p, v in zip(rows_photo, rows_variant)]).astype(np.float32)
    return x_aug, np.asarray([owner[p] for p in rows_photo], dtype=y.dtype), np.asarray(rows_photo, np.int64)


def _cv_accuracy(model: RecognitionModel, x: np.ndarray, y: np.ndarray, folds: int, progress: Progress,
                 cancel: Cancel | None, *, groups: np.ndarray | None = None,
                 real: np.ndarray | None = None) -> tuple[dict[str, list[float]], int, str]:
    """Per-fold accuracy of the SVC, the stacker and its base models; the folds; how it was measured.

    ``"out_of_fold"``: read from the fitted classifiers, which cross-validated their base models
    on ``k`` folds while training (see :func:`_from_training_folds`).  ``"refit"``: the SVC and the
    whole stacker trained again on each of ``k`` folds (what a small gallery gets: seconds).
    """
    from core.recognition.classifiers import cv_splits, make_classifier, stacker_cv_scores
    from core.recognition.classifiers.folds import adapted_splits

    y_index = np.unique(y, return_inverse=True)[1]
    smallest = int(min(Counter(y.tolist()).values()))
    plain = groups is None or len(np.unique(groups)) == len(groups)
    k = folds if plain and smallest >= folds else adapted_splits(folds, y_index, groups)
    svc: Any = model.classifiers.get("svc")
    stacker: Any = model.classifiers.get("stacker")
    if _from_training_folds(svc, stacker, k):
        progress(1.0, "accuracy per fold from the training folds")
        fold = stacker.fold_accuracy_
        out = {"svc": list(svc.fold_accuracy_), **{name: fold[name] for name in STACKER_MODEL_NAMES},
               "stacker": fold["stacking"]}
        return {name: [round(float(s), 4) for s in scores] for name, scores in out.items()}, k, "out_of_fold"

    scored = np.ones(len(y), bool) if real is None else np.asarray(real, bool)
    scores = stacker_cv_scores(x, y, n_splits=k, n_repeats=1, random_state=0, progress=_stage(progress, 0.0, 0.8),
                               cancel=cancel, groups=groups, score_rows=scored)
    refit = {("stacker" if key == "stacking" else key): [round(float(s), 4) for s in values]
             for key, values in scores.items()}
    # The same splits stacker_cv_scores used (same splitter, same seed, same labels); real photos scored.
    splits = cv_splits(y_index, k, 1, 0, groups)
    svc_scores = []
    for i, (train, test) in enumerate(splits):
        progress(0.8 + 0.2 * i / len(splits), f"cross-validating svc, fold {i + 1} of {len(splits)}")
        fold_model = make_classifier("svc").fit(x[train], y[train], groups=None if groups is None else groups[train],
                                                cancel=cancel)
        test = test[scored[test]] if scored[test].any() else test
        svc_scores.append(round(float(np.mean(fold_model.predict(x[test]) == y[test])), 4))
    return {"svc": svc_scores, **refit}, k, "refit"


def _from_training_folds(svc: Any, stacker: Any, k: int) -> bool:
    """Whether the classifiers' own training folds give the ``k``-fold accuracy figures.

    They do when both used ``k`` folds, the SVC is temperature-calibrated and the stacker is the
    scalable one (the defaults above :data:`~core.recognition.classifiers.MAX_THESIS_CLASSES` people):

    * the SVC's calibration folds train the SVM on the other folds and score the held-out one;
      temperature scaling cannot change the most probable class, so that is exactly the accuracy
      of the calibrated SVC trained on those folds;
    * the stacker's folds do the same for each base model;
    * the stacker's own figure comes from its meta-model trained on the other folds' rows of the
      out-of-fold outputs.  That is slightly optimistic compared with training the whole stacker
      per fold (the training rows' outputs come from base models that saw the held-out photos),
      a bias that is negligible for a meta-model of 5 coefficients fitted on thousands of rows.

    This saves training the SVC and the stacker ``k`` more times: at 1,000 people × 10 photos, 7
    of the 10 minutes a retrain used to take.
    """
    return (getattr(svc, "method_", None) == "temperature" and getattr(svc, "fold_accuracy_", None) is not None
            and getattr(svc, "n_splits_", None) == k and getattr(stacker, "mode_", None) == "scalable"
            and getattr(stacker, "fold_accuracy_", None) is not None and getattr(stacker, "n_splits_", None) == k)


@dataclass(frozen=True)
class _Check:
    value: float
    limit: float
    ok: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"value": round(float(self.value), 4), "limit": self.limit, "ok": self.ok, "message": self.message}


def _evaluate(model: RecognitionModel, train_accuracy: dict[str, float], cv: dict[str, list[float]],
              people: int, checks: TrainingChecks) -> dict[str, _Check]:
    out: dict[str, _Check] = {}
    out["people"] = _Check(people, checks.min_people, people >= checks.min_people,
                           f"{people} people trained (needs ≥ {checks.min_people})")
    for name, acc in train_accuracy.items():
        ok = acc >= checks.min_train_accuracy
        out[f"train_accuracy.{name}"] = _Check(
            acc, checks.min_train_accuracy, ok,
            f"{name} in-sample accuracy {acc:.3f} (needs ≥ {checks.min_train_accuracy:g})" + (
                "" if ok else ": it cannot tell the enrolled people apart — look for mislabelled photos "
                              "or one person enrolled under two ids"))
    for name in ("svc", "stacker"):
        mean = float(np.mean(cv[name]))
        ok = mean >= checks.min_cv_accuracy
        out[f"cv_accuracy.{name}"] = _Check(
            mean, checks.min_cv_accuracy, ok,
            f"{name} cross-validated accuracy {mean:.3f} (needs ≥ {checks.min_cv_accuracy:g})" + (
                "" if ok else ": it does not generalise — enroll more, better photos per person"))
    cal = model.calibration
    ok = cal.impostor_accept_rate <= checks.target_far
    out["impostor_accept_rate"] = _Check(
        cal.impostor_accept_rate, checks.target_far, ok,
        f"calibration impostor accept rate {cal.impostor_accept_rate:.3f} (needs ≤ {checks.target_far:g})")
    ok = cal.genuine_accept_rate >= checks.min_genuine_accept_rate
    out["genuine_accept_rate"] = _Check(
        cal.genuine_accept_rate, checks.min_genuine_accept_rate, ok,
        f"calibration genuine accept rate {cal.genuine_accept_rate:.3f} at threshold {cal.threshold:.3f} "
        f"(needs ≥ {checks.min_genuine_accept_rate:g})" + (
            "" if ok else ": the enrolled people would often be turned away — enroll more photos of each"))
    return out


def _new_version_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _no_longer_enrolled(registry: Registry, people: list[str]) -> list[str]:
    current = {op.employee_id for op in registry.list_operators(active_only=True)}
    return [p for p in people if p not in current]


def _model_row(registry: Registry, model_id: int) -> ModelVersion:
    for mv in registry.list_models():
        if mv.id == model_id:
            return mv
    raise ModelError(f"Model version {model_id} vanished from the registry.")


def retrain(
    registry: Registry,
    pipeline: _PipelineLike | EmbedderInfo,
    models_dir: Path | str,
    *,
    actor: str,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    deep: bool = False,
    checks: TrainingChecks | None = None,
    cv_folds: int = 5,
    activate: bool = True,
) -> ModelVersion:
    """Train a new model version from the registry and activate it if its checks pass.

    Parameters
    ----------
    registry
        The open registry.
    pipeline
        A :class:`~core.recognition.engine.FacePipeline` or an :class:`EmbedderInfo`: which embedder's
        embeddings to train on (no network is loaded).
    models_dir
        Folder of the model versions (``<data dir>/models``).
    actor
        Who retrained (the HR user), for the audit trail; the caller checks the HR passphrase.
    progress
        ``progress(fraction, message)`` as training advances.
    cancel
        Polled throughout; when it returns true :class:`~core.recognition.classifiers.TrainingCancelled` is
        raised, and nothing is recorded or written.
    deep
        Train the Deep Super Learner.
    checks
        Activation checks; the defaults of :class:`TrainingChecks` when ``None``.
    cv_folds
        Folds of the cross-validation behind the per-model accuracy (fewer if someone has fewer
        photos).  When it matches the classifiers' own folds (5, the default) on a large
        gallery, the figures come from those folds instead of training every model again.
    activate
        ``False``: a version that passes its checks stays a ``candidate`` for HR to look at first
        (the enrollment wizard's results page), then :meth:`~core.registry.Registry.activate_model`
        or :meth:`~core.registry.Registry.discard_model`.

    Returns
    -------
    ModelVersion
        The new version: ``active`` if it passed its checks, else ``status == "rejected"`` with the
        reasons in ``notes`` (the active model is then unchanged).

    Raises
    ------
    TrainingDataError
        Fewer than ``checks.min_people`` people have ``checks.min_photos_per_person`` photos.
    TrainingCancelled
        ``cancel()`` returned true.
    """
    started = time.perf_counter()
    checks = checks or TrainingChecks()
    info = pipeline if isinstance(pipeline, EmbedderInfo) else EmbedderInfo.of(pipeline)
    models_dir = Path(models_dir)
    report = progress or (lambda fraction, message: None)
    _check_cancel(cancel)
    sweep_models_dir(registry, models_dir)

    report(0.0, "reading the enrolled embeddings")
    x, labels, photo_ids = registry.embeddings(info.version, embedder=info.name)
    y_all = np.asarray(labels, dtype=str)
    counts = Counter(y_all.tolist())
    left_out = {p: n for p, n in sorted(counts.items()) if n < checks.min_photos_per_person}
    trained = sorted(p for p in counts if p not in left_out)
    if len(trained) < checks.min_people:
        short = (f"; {len(left_out)} more have fewer than {checks.min_photos_per_person} photos "
                 f"({', '.join(list(left_out)[:5])})" if left_out else "")
        raise TrainingDataError(
            f"Training needs at least {checks.min_people} enrolled people with at least "
            f"{checks.min_photos_per_person} accepted photos each; {len(trained)} have that{short}. "
            "Enroll more people or photos first. The active model is unchanged.")
    keep = np.isin(y_all, trained)
    x, y = np.asarray(x, dtype=np.float32)[keep], y_all[keep]
    groups = np.asarray(photo_ids, dtype=np.int64)[keep]
    backfilled = _backfill_augmented(registry, pipeline, info, y, groups, x)
    x_aug, y_aug, g_aug = _top_up(registry, info, y, groups, x.shape[1])
    if left_out:
        log.warning("retrain: left out of the classifiers (fewer than %d photos): %s",
                    checks.min_photos_per_person, left_out)

    version = _new_version_id()
    metadata = {"version": version, "embedder": info.name, "embedder_version": info.version,
                "signature": info.signature, "backend": info.backend, "left_out": left_out, "augmented": len(y_aug),
                "augmented_backfilled": backfilled,
                "augmented_people": len(set(y_aug.tolist()))}
    x_fit, y_fit = np.concatenate([x, x_aug]), np.concatenate([y, y_aug])
    g_fit = np.concatenate([groups, g_aug])
    real = np.arange(len(y_fit)) < len(y)
    model = train_model(x_fit, y_fit, groups=g_fit, augmented=~real, target_far=checks.target_far, deep=deep,
                        progress=_stage(progress, 0.02, 0.75), cancel=cancel, metadata=metadata)
    t_cv = time.perf_counter()
    cv, k, cv_method = _cv_accuracy(model, x_fit, y_fit, cv_folds, _stage(progress, 0.75, 0.97), cancel,
                                    groups=g_fit, real=real)
    cv_seconds = round(time.perf_counter() - t_cv, 3)
    _check_cancel(cancel)
    report(0.97, "checking the new model")
    train_accuracy = {name: round(float(np.mean(np.asarray(clf.predict(x)) == y)), 4)  # real photos only
                      for name, clf in model.classifiers.items()}
    results = _evaluate(model, train_accuracy, cv, len(trained), checks)
    failed = [c.message for c in results.values() if not c.ok]
    sl = model.classifiers.get("super_learner")
    metrics: dict[str, Any] = {
        "version": version, "people": len(trained), "embeddings": len(y), "backend": info.backend,
        "left_out": left_out,
        "augmented": len(y_aug), "augmented_people": len(set(y_aug.tolist())), "augmented_backfilled": backfilled,
        "threshold": round(float(model.calibration.threshold), 4), "calibration": model.calibration.summary(),
        "train_accuracy": train_accuracy, "cv_accuracy": cv, "cv_folds": k, "cv_repeats": 1,
        "cv_method": cv_method, "deep": bool(deep), "fit_seconds": model.metadata.get("fit_seconds", {}),
        "calibrate_seconds": model.metadata.get("calibrate_seconds"),
        "train_seconds": model.metadata.get("train_seconds"), "cv_seconds": cv_seconds,
        "checks": {name: c.as_dict() for name, c in results.items()},
    }
    if sl is not None and hasattr(sl, "oof_log_loss_"):
        metrics["super_learner"] = {"oof_log_loss": [round(float(v), 5) for v in sl.oof_log_loss_],
                                    "weights": [{n: round(float(w), 4) for n, w in layer.items()}
                                                for layer in sl.weights_]}
    spare = f"; left out (fewer than {checks.min_photos_per_person} photos): {', '.join(left_out)}" if left_out else ""
    if len(y_aug):  # what was adapted for people with few photos (issue 12)
        spare += (f"; {len(set(y_aug.tolist()))} people with fewer than 6 photos topped up with {len(y_aug)} "
                  f"augmented copies; {k} folds, dealt per person")
    summary = (f"{len(trained)} people, {len(y)} photos; CV accuracy svc {np.mean(cv['svc']):.3f}, "
               f"stacker {np.mean(cv['stacker']):.3f}; threshold {model.calibration.threshold:.3f}{spare}")

    _check_cancel(cancel)  # the last point at which a cancel leaves no trace
    if failed:
        metrics["total_seconds"] = round(time.perf_counter() - started, 3)
        notes = "rejected: " + "; ".join(failed)
        model_id = registry.add_model_version("", info.name, info.version, metrics, status="rejected",
                                              notes=notes, actor=actor)
        log.warning("model version %s (%d) rejected: %s", version, model_id, notes)
        report(1.0, f"model version {model_id} rejected")
        return _model_row(registry, model_id)

    report(0.98, "saving the new model")
    path = model.save(models_dir / version)
    gone: list[str] = []
    try:
        with registry.transaction():
            # Someone erased or suspended while we trained must not come back with this model.
            gone = _no_longer_enrolled(registry, trained)
            metrics["total_seconds"] = round(time.perf_counter() - started, 3)
            if gone:
                notes = (f"rejected: {', '.join(gone)} were erased or suspended while this model was "
                         "training; train again")
                model_id = registry.add_model_version("", info.name, info.version, metrics, status="rejected",
                                                      notes=notes, actor=actor)
            else:
                model_id = registry.add_model_version(str(path), info.name, info.version, metrics,
                                                      status="candidate", notes=summary, actor=actor)
                if activate:
                    registry.activate_model(model_id, actor=actor)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    if gone:
        shutil.rmtree(path, ignore_errors=True)
        log.warning("model version %s (%d) rejected: %s left while it trained", version, model_id, gone)
    else:
        log.info("model version %s (%d) %s: %s", version, model_id, "active" if activate else "candidate", summary)
    report(1.0, f"model version {model_id} {'rejected' if gone else ('active' if activate else 'ready to compare')}")
    return _model_row(registry, model_id)


def _artifact(mv: ModelVersion, models_dir: Path | str | None) -> Path:
    """The folder of a recorded model version: ``models_dir/<the recorded folder's name>``, nowhere else.

    Only the name of the recorded path is used, so a data folder restored or moved elsewhere still
    finds its models.  The folder and its files must resolve inside ``models_dir``, symbolic links
    followed: the registry is writable by the guard's OS account, so a version recorded (or linked)
    elsewhere could point the console at any file, and a model file is a pickle.
    """
    if not mv.path:
        raise ModelError(f"Model version {mv.id} has no model files (status {mv.status!r}).")
    if models_dir is None:
        raise ModelError(f"Model version {mv.id} can only be loaded from the data folder's models folder, and "
                         "none was given.")
    recorded = Path(mv.path)
    try:
        root = Path(models_dir).resolve()
        candidate = root / recorded.name
        where = candidate.resolve()
        # A relative recorded path is read from the models folder (for the error message only).
        elsewhere = (root / recorded).resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic link loop
        raise ModelError(f"The folder of model version {mv.id} ({mv.path}) cannot be resolved ({exc}); roll back "
                         "with 'facegate models rollback' or train again with 'facegate train'.") from exc

    def outside(folder: Path) -> ModelError:
        return ModelError(
            f"Model version {mv.id} is at {folder}, outside the data folder's models folder ({root}); it was not "
            "loaded, because FaceGate only loads models from there. If the data folder was moved, move its models "
            "folder with it; otherwise roll back with 'facegate models rollback' or train again with "
            "'facegate train'.")

    if recorded.name in ("", ".", ".."):
        raise outside(elsewhere)
    if (candidate / "model.json").is_file():
        if where == root or not where.is_relative_to(root):
            raise outside(where)
        for name in ("model.json", "model.joblib"):
            linked = (where / name).resolve()
            if not linked.is_relative_to(root):
                raise outside(linked)
        return where
    if not elsewhere.is_relative_to(root) and (elsewhere / "model.json").is_file():
        raise outside(elsewhere)
    raise ModelError(f"The files of model version {mv.id} are missing ({candidate}): they were deleted, or "
                     "the data folder was moved without its models folder. Roll back with "
                     "'facegate models rollback' or train again with 'facegate train'.")


def load_active_model(registry: Registry, models_dir: Path | str, *, expect_signature: str | None = None,
                      live_gallery: bool = False) -> RecognitionModel | None:
    """Load the registry's active model version, or ``None`` if no model was ever activated — only
    after checking HR's signature over the registry's state and over the version's files.

    Parameters
    ----------
    registry
        The open registry.
    models_dir
        Folder of the model versions; the version folder is looked up there by name only (a recorded
        path elsewhere is refused), so a data folder restored elsewhere still works.
    expect_signature
        Refuse a model trained on another pipeline's embeddings (``FacePipeline.signature``).
    live_gallery
        Return :func:`current_gallery_model` of it: new enrollments recognised, erasures forgotten,
        without retraining.

    ``metadata["trust"]`` of the returned model is the one-line outcome of the check
    (:meth:`core.registry.signing.TrustState.status`).

    Raises
    ------
    UntrustedState
        If the registry's state or the version's files do not match what HR signed (nothing is
        unpickled then).
    ModelError
        If the active version's files are missing or unreadable, or were trained on another pipeline.
    """
    from core.registry.signing import check_model_files, require_trusted

    state = require_trusted(registry)
    mv = registry.active_model()
    if mv is None:
        return None
    folder = _artifact(mv, models_dir)
    check_model_files(state, mv.id, folder)
    model = RecognitionModel.load(folder, expect_signature=expect_signature)
    model.metadata["model_id"] = mv.id
    model.metadata["trust"] = state.status()
    return current_gallery_model(registry, model) if live_gallery else model


def current_gallery_model(registry: Registry, model: RecognitionModel) -> RecognitionModel:
    """The trained ``model`` with its gallery replaced by the registry's enrolled embeddings now.

    The classifiers and the calibrated threshold stay as trained.  People enrolled since are
    recognised on distance alone (their decisions say "classifiers not retrained yet (gallery
    only)"); people erased or suspended since are no longer in the gallery, so they can no longer be
    accepted.  ``metadata["gallery_only"]`` lists the new people.

    Raises
    ------
    ModelError
        If the model does not record its embedder, or nobody is enrolled with that embedder.
    """
    name, version = model.metadata.get("embedder"), model.metadata.get("embedder_version")
    if not version:
        raise ModelError("This model does not record which embedder it was trained on; train it again with "
                         "'facegate train'.")
    x, labels, _ = registry.embeddings(str(version), embedder=str(name) if name else None)
    if len(x) == 0:
        raise ModelError("Nobody is enrolled with photos for this model's face embedder; enroll operators first.")
    known = {str(c) for clf in model.classifiers.values() for c in clf.classes_}
    enrolled = set(labels)
    metadata = {**model.metadata, "gallery": "registry", "gallery_only": sorted(enrolled - known),
                "no_longer_enrolled": sorted(known - enrolled)}
    return replace(model, gallery=Gallery(x, np.asarray(labels), k=model.gallery.k), metadata=metadata)


def rollback(registry: Registry, actor: str, models_dir: Path | str | None = None) -> ModelVersion:
    """Re-activate the model version that was active before the current one.  Audited.

    With ``models_dir``, the rollback is refused (nothing changes) if that version's files are gone.
    The caller checks the HR passphrase.

    Raises
    ------
    RegistryError
        If no version is active, or there is none to roll back to.
    ModelError
        If ``models_dir`` is given and the previous version's files are missing.
    """
    with registry.transaction():
        mv = registry.rollback_model(actor=actor)
        if models_dir is not None:
            _artifact(mv, models_dir)  # raising here undoes the rollback
    return mv


def sweep_models_dir(registry: Registry, models_dir: Path | str, *, min_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete what an interrupted retrain left in ``models_dir``; return what was deleted.

    Only FaceGate's own leftovers older than ``min_age_s`` go: ``.model-*`` temporary folders, and
    version folders (``YYYYMMDD-HHMMSS-xxxxxx``) that no registry row names.  The age limit keeps
    this safe while another process is between writing its model and recording it.
    """
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    recorded = {Path(mv.path).name for mv in registry.list_models() if mv.path}
    now = time.time()
    removed = []
    for entry in models_dir.iterdir():
        ours = entry.name.startswith(_TEMP_PREFIX) or (_VERSION_RE.match(entry.name) and entry.name not in recorded)
        if not ours or not entry.is_dir():
            continue
        try:
            if now - entry.stat().st_mtime < min_age_s:
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
        log.info("removed %s, left over by an interrupted retrain", entry)
    return removed
