"""Classifier 3, ``"super_learner"``: the (Deep) Super Learner (:class:`SuperLearner`) and the nine
base learners it may weigh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    AdaBoostClassifier,
    BaggingClassifier,
    ExtraTreesClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted, validate_data

from core.recognition.classifiers import base
from core.recognition.classifiers.base import (
    CancelCallback,
    ProgressCallback,
    _aligned_proba,
    _blas_threads_for,
    _check_choice,
    _check_int,
    _check_positive,
    _label_counts,
    _log_trained,
    _Monitor,
    _monitoring,
    _ParameterError,
    _ProbabilisticClassifier,
    _require_trainable,
    _softmax,
)
from core.recognition.classifiers.calibration import _fit_temperature
from core.recognition.classifiers.folds import (
    _cross_validate,
    _fold_data,
    _groups,
    _knn_neighbors,
    _prefixed,
    _refit,
    _stratified_folds,
    adapted_splits,
)
from core.recognition.classifiers.naive_bayes import _GaussianNB
from core.recognition.classifiers.svc import CalibratedSVC

log = logging.getLogger(__name__)


BASE_LEARNER_NAMES: tuple[str, ...] = (
    "LogisticRegression",
    "DecisionTreeClassifier",
    "SVC",
    "GaussianNB",
    "KNeighborsClassifier",
    "AdaBoostClassifier",
    "BaggingClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
)
"""The nine Super Learner base learners of the thesis, keyed by class name."""

SCALABLE_BASE_LEARNERS: tuple[str, ...] = (
    "LogisticRegression",
    "GaussianNB",
    "KNeighborsClassifier",
)
"""Super Learner base learners for galleries above :data:`MAX_THESIS_CLASSES` people.

The tree learners are left out: a fully grown tree stores a probability vector of length ``K`` in
every node and best-split trees scan each threshold once per class, so each costs ``O(n K)`` or
more per fit (a single Gini tree on 1,000 people x 10 photos takes minutes).  The SVC is left out
because it calibrates inside every Super Learner fold: ``(n_splits + 1) * (calibration_cv + 1)``
SVM fits, ~6x the cost of the whole ``"svc"`` classifier.  Add it back explicitly with
``base_learners=(*SCALABLE_BASE_LEARNERS, "SVC")`` if the time is acceptable."""

_EPS = 1e-15  # probability floor of the log loss, as in sklearn.metrics.log_loss


def _simplex_weights(true_proba: NDArray[np.float64]) -> tuple[NDArray[np.float64], float]:
    """Non-negative weights summing to 1 that minimise the log loss of the weighted average.

    ``true_proba[i, m]`` is base learner ``m``'s out-of-fold probability of sample ``i``'s true
    class; the weighted average's probability of the true class is ``true_proba @ w``, so the
    (convex) objective is ``-mean(log(true_proba @ w))``.  SLSQP from uniform weights.
    """
    n_learners = true_proba.shape[1]
    uniform = np.full(n_learners, 1.0 / n_learners)

    def loss(w: np.ndarray) -> float:
        return float(-np.mean(np.log(np.clip(true_proba @ w, _EPS, None))))

    def grad(w: np.ndarray) -> np.ndarray:
        return np.asarray(-np.mean(true_proba / np.clip(true_proba @ w, _EPS, None)[:, None], axis=0))

    if n_learners == 1:
        return uniform, loss(uniform)
    result = minimize(
        loss,
        uniform,
        jac=grad,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n_learners,
        constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    weights = np.clip(np.asarray(result.x, dtype=np.float64), 0.0, None)
    # SLSQP leaves ~1e-17 crumbs on learners it dropped; zero them so prediction can skip them.
    weights[weights < 1e-9] = 0.0
    if not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        weights = uniform.copy()
    weights /= weights.sum()
    if loss(weights) > loss(uniform):
        log.warning("Super Learner weights did not beat uniform weights (%s); using uniform", result.message)
        weights = uniform.copy()
    return weights, loss(weights)


@dataclass
class _Layers:
    """What :meth:`SuperLearner._fit_layers` learned, one entry per layer."""

    learners: list[dict[str, BaseEstimator]] = field(default_factory=list)
    weights: list[dict[str, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    candidates: list[float] = field(default_factory=list)  # also the discarded last layer
    times: list[dict[str, float]] = field(default_factory=list)
    oof_blend: NDArray[np.float64] | None = None  # the last kept layer's out-of-fold weighted average


def _step_reporter(monitor: _Monitor, layer: int, n_layers: int, steps: int) -> Callable[[str], None]:
    """Progress callback for the ``steps`` steps of one Super Learner layer."""
    done = [0]

    def tick(message: str) -> None:
        monitor.report((layer + done[0] / steps) / n_layers, f"Layer {layer + 1}: {message}")
        done[0] += 1

    return tick


class SuperLearner(_ProbabilisticClassifier):
    """Super Learner of van der Laan et al., optionally deep (name ``"super_learner"``).

    Every base learner is cross-validated (stratified k-fold) to get out-of-fold (OOF) class
    probabilities; the meta-learner finds non-negative weights summing to one that minimise the
    log loss of the weighted average of those probabilities (:func:`scipy.optimize.minimize`,
    SLSQP, from uniform weights); then every base learner is refitted on all photos and
    ``predict_proba`` is the weighted average of their probabilities.

    With ``deep=True`` this is the Deep Super Learner of Young, Abdou & Bener (arXiv:1803.02323)
    used in the thesis: after a layer, its OOF weighted-average probabilities (``K`` columns) are
    appended to the original embeddings and another layer is fitted on them, for as long as the
    layer's OOF log loss falls by more than ``tol`` (at most ``max_layers`` layers).  A layer that
    does not improve is discarded.  Prediction runs through the kept layers, each feeding its
    weighted average to the next.

    Parameters
    ----------
    base_learners : sequence of str or None, default=None
        Names from :data:`BASE_LEARNER_NAMES`.  ``None``: all nine up to
        :data:`MAX_THESIS_CLASSES` people, :data:`SCALABLE_BASE_LEARNERS` above (see there why).
    n_splits : int, default=5
        Requested folds, reduced to the smallest class's photo count, at least 2.
    deep : bool, default=False
        Fit the Deep Super Learner.
    max_layers : int, default=5
        Layer limit when ``deep``.
    tol : float, default=1e-4
        Minimum fall in OOF log loss for another layer to be kept.
    n_estimators : int, default=50
        Trees of the random forest, extra trees and bagging, and rounds of AdaBoost.
    calibration_cv : int, default=5
        Calibration folds of the SVC base learner (inside each Super Learner fold).
    n_jobs : int or None, default=None
        Threads for the tree ensembles and the one-vs-rest SVM, and for fitting the folds of the
        base learners side by side (but k-NN's, which searches on every core anyway, and the
        SVC's, which calibrate inside).  ``-1`` uses every core; on a small gallery starting
        threads costs more than it saves.  Results do not depend on it.
    random_state : int or None, default=0
        Seed of the folds and of every randomised base learner.
    calibrate : bool, default=True
        Temperature-scale the weighted average (see ``temperature_``); ``False``: the thesis's
        plain weighted average.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
    base_learner_names_ : tuple of str
        The base learners used, in order.
    weights_ : list of dict of str to float
        Per kept layer, each base learner's weight (non-negative, summing to 1; weights below
        1e-9 are set to 0 and the rest renormalised, so prediction can skip those learners).
    oof_log_loss_ : list of float
        Per kept layer, the OOF log loss of its weighted average.
    candidate_log_loss_ : list of float
        OOF log loss of every layer that was fitted, including a last one that was discarded
        because it did not improve on its predecessor by more than ``tol``.
    n_layers_ : int
        Number of kept layers (1 unless ``deep``).
    temperature_ : float or None
        Issue 12: the inverse temperature applied to the weighted average's log-probabilities,
        fitted on its out-of-fold values and bounded as the SVC's
        (:func:`core.recognition.classifiers.calibration.temperature_cap`): k-NN and the tree say
        1.00 for whatever they name, and a weighted average of them can too.  ``None`` with
        ``calibrate=False`` (and in models saved before).
    layers_ : list of dict of str to estimator
        Per kept layer, the base learners refitted on all photos of that layer's features.
    base_learners_ : dict of str to estimator
        The *first* layer's refitted base learners (``layers_[0]``): the ones that see the raw
        embeddings, and the ones :meth:`base_learner_scores` scores.  They predict class indices
        into ``classes_``.
    fit_times_ : list of dict of str to float
        Per kept layer, seconds spent fitting and predicting each base learner (all folds and
        the refit); next to nothing for a learner shared with an earlier fit (:func:`shared_fits`).
    n_splits_ : int
    """

    classes_: np.ndarray

    def __init__(
        self,
        *,
        base_learners: Sequence[str] | None = None,
        n_splits: int = 5,
        deep: bool = False,
        max_layers: int = 5,
        tol: float = 1e-4,
        n_estimators: int = 50,
        calibration_cv: int = 5,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        calibrate: bool = True,
    ) -> None:
        self.base_learners = base_learners
        self.n_splits = n_splits
        self.deep = deep
        self.max_layers = max_layers
        self.tol = tol
        self.n_estimators = n_estimators
        self.calibration_cv = calibration_cv
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.calibrate = calibrate

    def _base_learner_names(self, n_classes: int) -> tuple[str, ...]:
        if self.base_learners is None:
            # Read from base at call time, where the package's MAX_THESIS_CLASSES is set (see __init__).
            return BASE_LEARNER_NAMES if n_classes <= base.MAX_THESIS_CLASSES else SCALABLE_BASE_LEARNERS
        if isinstance(self.base_learners, str):
            raise _ParameterError("Parameter base_learners must be a sequence of names, not a single string.")
        names = tuple(self.base_learners)
        unknown = [name for name in names if name not in BASE_LEARNER_NAMES]
        if not names or unknown or len(set(names)) != len(names):
            raise _ParameterError(
                f"Parameter base_learners must list distinct names from {', '.join(BASE_LEARNER_NAMES)}; "
                f"got {names!r}."
            )
        return names

    def _make_base_learner(self, name: str, n_neighbors: int) -> BaseEstimator:
        rs, jobs, n_est = self.random_state, self.n_jobs, int(self.n_estimators)
        factories: dict[str, Callable[[], BaseEstimator]] = {
            "LogisticRegression": lambda: LogisticRegression(max_iter=1000),
            "DecisionTreeClassifier": lambda: DecisionTreeClassifier(random_state=rs),
            # One thread: concurrent one-vs-rest solves share liblinear's random generator, and models
            # must be reproducible to the bit (see CalibratedSVC's n_jobs).
            "SVC": lambda: CalibratedSVC(cv=self.calibration_cv, random_state=rs),
            "GaussianNB": lambda: _GaussianNB(),
            "KNeighborsClassifier": lambda: KNeighborsClassifier(n_neighbors=n_neighbors),
            "AdaBoostClassifier": lambda: AdaBoostClassifier(n_estimators=n_est, random_state=rs),
            "BaggingClassifier": lambda: BaggingClassifier(n_estimators=n_est, n_jobs=jobs, random_state=rs),
            "RandomForestClassifier": lambda: RandomForestClassifier(
                n_estimators=n_est, n_jobs=jobs, random_state=rs
            ),
            "ExtraTreesClassifier": lambda: ExtraTreesClassifier(
                n_estimators=n_est, n_jobs=jobs, random_state=rs
            ),
        }
        return factories[name]()

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Self:
        """Cross-validate the base learners, fit the weights and refit (layer by layer if deep).

        Parameters
        ----------
        X : array-like of shape (n, d)
        y : array-like of shape (n,)
            Person ids; a person may have a single photo.
        groups : array-like of shape (n,), optional
            The photo each row comes from: rows of one photo (the photo and its augmented copies)
            are held out together by every cross-validation (see
            :func:`core.recognition.classifiers.folds.fold_units`).  Without it each row is a photo.
        progress, cancel : callable, optional
            Reported and checked before every fold of every base learner.

        Returns
        -------
        self
        """
        with _monitoring(progress, cancel) as monitor:
            started = time.perf_counter()
            X_arr, y_arr = validate_data(self, X, y, dtype=np.float64)
            classes, y_index, counts = _label_counts(y_arr)
            names = self._base_learner_names(len(classes))
            _require_trainable(classes, counts)
            requested = _check_int("n_splits", self.n_splits, 2)
            _check_choice("deep", self.deep, (False, True))
            max_layers = _check_int("max_layers", self.max_layers, 1) if self.deep else 1
            tol = _check_positive("tol", self.tol, allow_zero=True)
            _check_int("n_estimators", self.n_estimators, 1)
            _check_int("calibration_cv", self.calibration_cv, 2)
            group_of = _groups(groups, len(y_arr))
            n_splits = adapted_splits(requested, y_index, group_of)
            folds = _stratified_folds(n_splits, self.random_state, y_index, group_of)
            n_neighbors = _knn_neighbors(folds)
            n_classes = len(classes)

            # Every base learner is trained (n_splits + 1) times per layer; see _blas_threads_for.
            with _blas_threads_for(len(y_index), n_classes):
                fitted = self._fit_layers(
                    X_arr, y_index, n_classes, names, folds, n_neighbors, max_layers, tol, monitor
                )

            self.classes_ = classes
            self.base_learner_names_ = names
            self.layers_ = fitted.learners
            self.base_learners_ = fitted.learners[0]
            self.weights_ = fitted.weights
            self.oof_log_loss_ = fitted.losses
            self.candidate_log_loss_ = fitted.candidates
            self.n_layers_ = len(fitted.learners)
            self.temperature_ = None
            if self.calibrate and fitted.oof_blend is not None:
                self.temperature_ = _fit_temperature(np.log(np.clip(fitted.oof_blend, 1e-300, 1.0)), y_index)
            self.fit_times_ = fitted.times
            self.n_splits_ = n_splits
            monitor.report(1.0, "Super Learner trained")
            what = f"SuperLearner ({len(names)} learners, {len(fitted.learners)} layers, {n_splits} folds)"
            _log_trained(what, len(y_arr), n_classes, started)
        return self

    def _fit_layers(
        self,
        X: NDArray[np.float64],
        y_index: NDArray[np.intp],
        n_classes: int,
        names: tuple[str, ...],
        folds: Sequence[tuple[NDArray[np.intp], NDArray[np.intp]]],
        n_neighbors: int,
        max_layers: int,
        tol: float,
        monitor: _Monitor,
    ) -> _Layers:
        """Fit layer after layer while the OOF log loss falls by more than ``tol``."""
        fitted = _Layers()
        features = X
        steps = len(names) * (len(folds) + 1)
        for layer in range(max_layers):
            tick = _step_reporter(monitor, layer, max_layers, steps)
            data = _fold_data(features, y_index, n_classes, folds)
            prototypes = {name: self._make_base_learner(name, n_neighbors) for name in names}
            oof: dict[str, NDArray[np.float64]] = {}
            elapsed: dict[str, float] = {}
            for name in names:
                # The SVC calibrates (and is cancelled) inside; k-NN uses every core anyway.
                jobs = None if name in ("SVC", "KNeighborsClassifier") else self.n_jobs
                cv, _, elapsed[name] = _cross_validate(
                    prototypes[name], data, "predict_proba", _prefixed(tick, name), n_jobs=jobs
                )
                oof[name] = cv.outputs
            rows = np.arange(len(y_index))
            layer_weights, loss = _simplex_weights(
                np.stack([oof[name][rows, y_index] for name in names], axis=1)
            )
            fitted.candidates.append(loss)
            if fitted.losses and loss > fitted.losses[-1] - tol:
                log.info(
                    "Deep Super Learner: layer %d OOF log loss %.5f does not improve on %.5f by %g; keeping %d",
                    layer + 1,
                    loss,
                    fitted.losses[-1],
                    tol,
                    len(fitted.learners),
                )
                break
            learners: dict[str, BaseEstimator] = {}
            for name in names:
                learners[name], seconds = _refit(prototypes[name], data, _prefixed(tick, name))
                elapsed[name] += seconds
            fitted.learners.append(learners)
            fitted.weights.append({name: float(w) for name, w in zip(names, layer_weights)})
            fitted.losses.append(loss)
            fitted.times.append(elapsed)
            fitted.oof_blend = sum(w * oof[name] for name, w in zip(names, layer_weights))
            log.info(
                "Super Learner layer %d: OOF log loss %.5f, weights %s",
                layer + 1,
                loss,
                ", ".join(f"{name} {w:.3f}" for name, w in fitted.weights[-1].items()),
            )
            if layer + 1 < max_layers:
                # The next layer sees the embeddings plus this layer's OOF weighted average.
                blended = np.zeros((len(y_index), n_classes))
                for name, w in zip(names, layer_weights):
                    blended += w * oof[name]
                features = np.hstack([X, blended])
        return fitted

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Weighted average of the base learners' probabilities through the kept layers."""
        check_is_fitted(self)
        X_arr = validate_data(self, X, dtype=np.float64, reset=False)
        features = X_arr
        blended = np.zeros((X_arr.shape[0], len(self.classes_)))
        for layer, (learners, weights) in enumerate(zip(self.layers_, self.weights_)):
            blended = np.zeros((X_arr.shape[0], len(self.classes_)))
            for name, weight in weights.items():
                if weight > 0:
                    blended += weight * _aligned_proba(learners[name], features, len(self.classes_))
            if layer + 1 < len(self.layers_):
                features = np.hstack([X_arr, blended])
        beta = getattr(self, "temperature_", None)
        if beta is None:
            return blended
        return _softmax(beta * np.log(np.clip(blended, 1e-300, 1.0)))

    def base_learner_scores(self, X: ArrayLike, y: ArrayLike) -> dict[str, float]:
        """Accuracy of each first-layer base learner (refitted on all training photos) on ``X, y``.

        Call it with the training set and with the validation set for the thesis's table of
        train / validation accuracy per base learner.

        Parameters
        ----------
        X : array-like of shape (n, d)
        y : array-like of shape (n,)
            Person ids; ids unknown to the model simply count as errors.

        Returns
        -------
        dict of str to float
            Base learner name to accuracy, in the order of ``base_learner_names_``.
        """
        check_is_fitted(self)
        X_arr = validate_data(self, X, dtype=np.float64, reset=False)
        y_arr = np.asarray(y)
        if y_arr.shape != (X_arr.shape[0],):
            raise _ParameterError(
                f"y must have one label per row of X ({X_arr.shape[0]}), got shape {y_arr.shape}."
            )
        return {
            name: float(np.mean(self.classes_[np.asarray(model.predict(X_arr), dtype=np.intp)] == y_arr))
            for name, model in self.base_learners_.items()
        }
