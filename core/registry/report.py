"""A model version's thesis-style figures, read back from what its training run recorded.

:func:`core.registry.training.retrain` stores each version's metrics in the registry (see its module
docstring); :func:`version_report` turns them into a :class:`VersionReport` — the tables the seed
thesis prints in its section 7, as far as a training run measures them:

* the three models' in-sample (train) accuracy and the SVC's and the stacker's per-fold
  cross-validated accuracy (a training run has no held-out photos: cross-validation stands in for
  the thesis's validation column);
* the stacking ensemble's cross-validation, mean (std) per base model and for the stack: the
  thesis's ``>lr 0.943 (0.079)`` lines and its boxplot;
* the Super Learner's base-learner weights (and out-of-fold log loss);
* the open-set calibration figures: threshold, genuine accept and impostor reject rates of the
  calibration pairs, the median distances.

The Super Learner's base learners' accuracy is not recorded by a training run.  With
``base_learners=True`` their in-sample accuracy is measured here, from the saved model on the
photos it was trained on (its gallery holds exactly those embeddings): the thesis's "Training"
column.  :attr:`VersionReport.not_recorded` lists, in sentences, what the thesis shows and the
version does not have.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FaceGateError, ModelError
from core.recognition.engine import MODEL_NAMES
from core.recognition.evaluate import STACKER_KEYS
from core.registry import ModelVersion, Registry

log = logging.getLogger(__name__)

__all__ = ["Accuracy", "Check", "OpenSetFigures", "VersionReport", "version_report"]


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


@dataclass(frozen=True)
class Accuracy:
    """One row of an accuracy table.

    Attributes
    ----------
    name
        ``svc``, ``stacker``, ``super_learner``, a stacker base model (``lr`` …) or a Super Learner
        base learner (``LogisticRegression`` …).
    train
        In-sample accuracy (0–1), ``None`` when not recorded.
    cv_scores
        Accuracy on each cross-validation fold; empty when the model was not cross-validated.
    weight
        The Super Learner's weight of this base learner (first layer), ``None`` for the others.
    """

    name: str
    train: float | None = None
    cv_scores: tuple[float, ...] = ()
    weight: float | None = None

    @property
    def cv_mean(self) -> float | None:
        """Mean of :attr:`cv_scores`, ``None`` without any."""
        return float(np.mean(self.cv_scores)) if self.cv_scores else None

    @property
    def cv_std(self) -> float | None:
        """Standard deviation of :attr:`cv_scores` (population, as the thesis's ``np.std``)."""
        return float(np.std(self.cv_scores)) if self.cv_scores else None


@dataclass(frozen=True)
class OpenSetFigures:
    """The open-set gate's calibration on the enrolled photos (see ``core.recognition.openset``).

    ``genuine_accept_rate``: share of the enrolled photos the threshold accepts as their own person
    (each left out of its person in turn); ``impostor_accept_rate``: share of the calibration's
    impostor pairs (each photo against the nearest *other* person) it would accept.
    """

    threshold: float | None
    target_far: float | None
    genuine_accept_rate: float | None
    impostor_accept_rate: float | None
    genuine_distance_median: float | None
    impostor_distance_median: float | None
    genuine_pairs: int
    impostor_pairs: int

    @property
    def impostor_reject_rate(self) -> float | None:
        """``1 - impostor_accept_rate``: how often a stranger is turned away in calibration."""
        return None if self.impostor_accept_rate is None else 1.0 - self.impostor_accept_rate

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> OpenSetFigures:
        cal = metrics.get("calibration") or {}
        threshold = _float(metrics.get("threshold", cal.get("threshold")))
        return cls(threshold, _float(cal.get("target_far")),
                   _float(cal.get("calibration_genuine_accept_rate")),
                   _float(cal.get("calibration_impostor_accept_rate")),
                   _float(cal.get("genuine_distance_median")),
                   _float(cal.get("impostor_distance_median")), int(cal.get("genuine_pairs") or 0),
                   int(cal.get("impostor_pairs") or 0))


@dataclass(frozen=True)
class Check:
    """One activation check of the training run (value, limit, verdict and its sentence)."""

    name: str
    value: float | None
    limit: float | None
    ok: bool
    message: str


@dataclass(frozen=True)
class VersionReport:
    """What one model version's training run measured, as the thesis's tables.

    Attributes
    ----------
    id, version, status, active, created, activated_at, notes
        The registry's record of the version (``version`` is the model's name, ``YYYYMMDD-HHMMSS-xxxxxx``).
    people, embeddings
        People and photos the classifiers were trained on; ``left_out``: people with too few photos.
    models
        ``svc``, ``stacker``, ``super_learner``: train accuracy and, for the first two, per-fold CV.
    stacker_cv
        The stacking ensemble's cross-validation: ``lr``, ``knn``, ``cart``, ``svm``, ``bayes`` and
        ``stacking`` (the thesis's names and order), per fold — the boxplot's data.
    cv_folds, cv_repeats, cv_method
        How the cross-validation ran (``"refit"`` or ``"out_of_fold"``, see ``core.registry.training``).
    base_learners
        The Super Learner's first-layer base learners with their weights, and their in-sample
        accuracy if it was measured (``base_learners=True``).
    super_learner_layers
        Each layer's weights (more than one for the Deep Super Learner); ``oof_log_loss`` per layer.
    open_set
        The calibration figures.
    checks
        The activation checks.
    not_recorded
        Sentences naming what the thesis's tables show and this version does not have.
    """

    id: int
    version: str
    status: str
    active: bool
    created: datetime
    activated_at: datetime | None
    notes: str
    embedder: str
    people: int
    embeddings: int
    left_out: dict[str, int] = field(hash=False)
    deep: bool
    models: tuple[Accuracy, ...]
    stacker_cv: tuple[Accuracy, ...]
    cv_folds: int
    cv_repeats: int
    cv_method: str
    base_learners: tuple[Accuracy, ...]
    super_learner_layers: tuple[dict[str, float], ...] = field(hash=False)
    oof_log_loss: tuple[float, ...]
    open_set: OpenSetFigures
    checks: tuple[Check, ...]
    not_recorded: tuple[str, ...]

    def model(self, name: str) -> Accuracy:
        """The row of ``svc``, ``stacker`` or ``super_learner``."""
        for row in self.models:
            if row.name == name:
                return row
        raise KeyError(name)


def _scores(values: Any) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)):
        return ()
    out = tuple(v for v in (_float(s) for s in values) if v is not None)
    return out


def _base_learner_accuracy(mv: ModelVersion, models_dir: Path | str | None) -> tuple[dict[str, float], str]:
    """In-sample accuracy of the Super Learner's base learners, from the saved model; and why not."""
    from core.recognition.engine import RecognitionModel
    from core.registry.training import _artifact

    try:
        model = RecognitionModel.load(_artifact(mv, models_dir))
    except FaceGateError as exc:
        return {}, f"its model files could not be read ({exc})"
    sl: Any = model.classifiers.get("super_learner")
    if sl is None or not hasattr(sl, "base_learner_scores"):
        return {}, "the model has no Super Learner"
    # The gallery saved with a trained model is its training set: the same embeddings and labels.
    scores = sl.base_learner_scores(model.gallery.embeddings, model.gallery.labels)
    return {str(k): float(v) for k, v in scores.items()}, ""


def _find(registry: Registry, version_id: int | None) -> ModelVersion:
    if version_id is None:
        mv = registry.active_model()
        if mv is None:
            raise ModelError("No model version is active yet: train one with 'facegate train' (HR).")
        return mv
    for mv in registry.list_models():
        if mv.id == version_id:
            return mv
    raise ModelError(f"There is no model version {version_id}; 'facegate models list' shows them.")


def version_report(registry: Registry, models_dir: Path | str | None = None, version_id: int | None = None, *,
                   base_learners: bool = True) -> VersionReport:
    """The thesis-style figures of a model version (the active one by default).

    Parameters
    ----------
    registry
        The open registry.
    models_dir
        Folder of the model versions (``<data dir>/models``); only read for ``base_learners``.
    version_id
        The registry id of the version; ``None``: the active version.
    base_learners
        Measure the Super Learner's base learners' in-sample accuracy from the saved model (loads
        the model file: about a second with scikit-learn's import, 40 ms for the demo's nine
        learners).  A version without files (rejected) gets the weights only, and says why.

    Raises
    ------
    ModelError
        If no version is active (or ``version_id`` does not exist).
    """
    mv = _find(registry, version_id)
    m = mv.metrics
    not_recorded: list[str] = [
        ("validation accuracy: a training run keeps no photos aside, so the cross-validated accuracy "
         "stands in for the thesis's validation column ('facegate evaluate' measures both on a dataset)"),
        ("the Super Learner's cross-validated accuracy (training cross-validates only the SVC and the "
         "stacker)"),
        ("the Super Learner's base learners' cross-validated or validation accuracy (only their in-sample "
         "accuracy can be measured afterwards, from the saved model)"),
        ("leave-one-identity-out and stranger rejection rates ('facegate evaluate --unknown' measures them); "
         "the open-set figures here are the threshold calibration's, on the enrolled photos"),
    ]

    train = m.get("train_accuracy") or {}
    cv = m.get("cv_accuracy") or {}
    models = tuple(Accuracy(name, _float(train.get(name)),
                            _scores(cv.get(name)) if name != "super_learner" else ())
                   for name in MODEL_NAMES)
    stacker_cv = tuple(Accuracy(key, cv_scores=_scores(cv.get("stacker" if key == "stacking" else key)))
                       for key in STACKER_KEYS)
    sl = m.get("super_learner") or {}
    layers = tuple({str(k): float(v) for k, v in layer.items()} for layer in sl.get("weights") or ()
                   if isinstance(layer, Mapping))
    weights = layers[0] if layers else {}
    measured: dict[str, float] = {}
    if base_learners:
        measured, why = _base_learner_accuracy(mv, models_dir) if mv.path else ({}, "it has no model files")
        if why:
            log.info("model version %s: base learners not measured: %s", mv.id, why)
            not_recorded.append(f"the Super Learner's base learners' accuracy ({why})")
    else:
        not_recorded.append("the Super Learner's base learners' accuracy (not recorded by training; "
                            "version_report(base_learners=True) measures their in-sample accuracy)")
    # The model's own order is the thesis's (LogisticRegression, DecisionTree, SVC …); weights alone
    # come back from the registry's canonical JSON sorted by name.
    names = list(measured) + [n for n in weights if n not in measured]
    base = tuple(Accuracy(n, measured.get(n), weight=weights.get(n)) for n in names)
    checks = tuple(Check(str(name), _float(c.get("value")), _float(c.get("limit")), bool(c.get("ok")),
                         str(c.get("message", ""))) for name, c in (m.get("checks") or {}).items()
                   if isinstance(c, Mapping))
    return VersionReport(
        id=mv.id, version=str(m.get("version") or Path(mv.path).name or mv.id), status=mv.status,
        active=mv.active,
        created=mv.created, activated_at=mv.activated_at, notes=mv.notes, embedder=mv.embedder,
        people=int(m.get("people") or 0), embeddings=int(m.get("embeddings") or 0),
        left_out={str(k): int(v) for k, v in (m.get("left_out") or {}).items()}, deep=bool(m.get("deep")),
        models=models, stacker_cv=stacker_cv, cv_folds=int(m.get("cv_folds") or 0),
        cv_repeats=int(m.get("cv_repeats") or 0), cv_method=str(m.get("cv_method") or ""),
        base_learners=base, super_learner_layers=layers,
        oof_log_loss=_scores(sl.get("oof_log_loss")), open_set=OpenSetFigures.from_metrics(m), checks=checks,
        not_recorded=tuple(not_recorded))
