"""Face classifiers over FaceNet embeddings: calibrated SVC, stacking ensemble and (Deep) Super Learner.

Inputs are L2-normalised float32 embeddings of shape ``(n, 128)`` and string labels (person ids).
Every classifier follows the scikit-learn estimator contract (``__init__`` only stores parameters,
``fit`` returns ``self``, learned attributes end in ``_``, :func:`sklearn.base.clone` works) and
is seeded (``random_state=0``), so two fits on the same data give the same model.

``fit`` takes two optional keyword arguments, never constructor parameters, so that ``clone`` is
unaffected:

``progress(fraction, message)``
    called with ``0 <= fraction <= 1`` as training advances;
``cancel()``
    polled between folds and base learners (and between classes inside the one-vs-rest SVM);
    when it returns true, :class:`TrainingCancelled` is raised and no model is produced.

Galleries of different size
---------------------------
The thesis models were built for a handful of people (its dataset has 5).  Three of their parts
cost time or memory that grows with the *square* of the number of people ``K``: the one-vs-one
SVC trains and evaluates ``K (K - 1) / 2`` pairwise machines (half a million at ``K = 1000``), the
stacking meta-model is a logistic regression on ``5 K`` features with ``K`` outputs (``5 K**2``
coefficients, learned from a few photos per person), and best-split decision trees scan every
threshold of every feature once per class.  Above :data:`MAX_THESIS_CLASSES` people, ``"auto"``
settings therefore switch to parts that grow linearly with ``K`` (a one-vs-rest linear SVM with
temperature scaling, a randomised tree, a class-shared logistic meta-model and the cheap Super
Learner base learners).  Each classifier records the choice it made in a fitted attribute, and
every choice can be forced with a parameter.

Folds, shared fits and cross-validated accuracy
-----------------------------------------------
The three classifiers cross-validate their base models on explicit stratified folds (shuffled,
seeded with ``random_state``), and with the default parameters on the *same* folds.  Inside a
:func:`shared_fits` block (:func:`core.recognition.engine.train_model` opens one) a base model that another
classifier already cross-validated on the same photos and folds is not trained again: the
SVC's calibration folds and the stacker's ``"svm"`` are one and the same linear SVM, and the
stacker and the Super Learner share logistic regression, k-NN and naive Bayes.  Results are
exactly those of separate fits.

Each cross-validation also yields, for free, the accuracy of every base model on each held-out
fold (``fold_accuracy_``), which :func:`core.registry.training.retrain` reports instead of training every
classifier again on every fold for large galleries.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol, Self

import numpy as np
from joblib import effective_n_jobs
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    AdaBoostClassifier,
    BaggingClassifier,
    ExtraTreesClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, check_random_state, check_X_y, validate_data
from threadpoolctl import threadpool_limits

from core.errors import ModelError

log = logging.getLogger(__name__)

__all__ = [
    "BASE_LEARNER_NAMES",
    "CLASSIFIERS",
    "MAX_THESIS_CLASSES",
    "SCALABLE_BASE_LEARNERS",
    "STACKER_MODEL_NAMES",
    "CalibratedSVC",
    "CancelCallback",
    "Classifier",
    "ProgressCallback",
    "Stacker",
    "SuperLearner",
    "TrainingCancelled",
    "TrainingDataError",
    "make_classifier",
    "shared_fits",
    "stacker_cv_scores",
]

ProgressCallback = Callable[[float, str], None]
"""``progress(fraction, message)``: ``fraction`` runs from 0 to 1."""

CancelCallback = Callable[[], bool]
"""``cancel()``: return true to stop training at the next checkpoint."""

MAX_THESIS_CLASSES = 10
"""Above this many people, ``"auto"`` settings switch to parts whose cost grows linearly with it.

The thesis evaluated 5 people.  On synthetic galleries of 20-60 people (10 photos each) the
thesis stacker fell well below its own base models (meta-model with ``5 K`` inputs per class
learned from ~10 photos per class) and the one-vs-one SVC's per-class Platt sigmoids mis-ranked
people, while the scalable parts matched or beat them; so the switch comes early, for accuracy as
much as for time."""

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

STACKER_MODEL_NAMES: tuple[str, ...] = ("lr", "knn", "cart", "svm", "bayes")
"""Names of the stacking ensemble's base models, as in the thesis."""

_STACK_METHODS: dict[str, str] = {
    "lr": "predict_proba",
    "knn": "predict_proba",
    "cart": "predict_proba",
    "svm": "decision_function",
    "bayes": "predict_proba",
}
"""What each stacked model contributes to the meta-model's input (as ``StackingClassifier``'s "auto")."""

_STACKER_CV_KEYS: tuple[str, ...] = (*STACKER_MODEL_NAMES, "stacking")
_EPS = 1e-15  # probability floor of the log loss, as in sklearn.metrics.log_loss
_KNN_NEIGHBORS = 5


# --------------------------------------------------------------------------------------------
# Errors, progress and cancellation
# --------------------------------------------------------------------------------------------


class TrainingCancelled(ModelError):
    """Training was stopped because ``cancel()`` returned true; no model was produced."""


class TrainingDataError(ModelError, ValueError):
    """The training set cannot train a classifier (too few people, or too few photos of one).

    It is also a :class:`ValueError`, as scikit-learn expects of estimators given unusable data.
    """


class _ParameterError(ModelError, ValueError):
    """A classifier was constructed with an invalid parameter (raised by ``fit``)."""


_LOCAL = threading.local()


class _Monitor:
    """Progress reporting and cancellation for one ``fit`` call."""

    def __init__(self, progress: ProgressCallback | None, cancel: CancelCallback | None) -> None:
        self.progress = progress
        self.cancel = cancel

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise TrainingCancelled("Training was cancelled; no new model was produced.")

    def report(self, fraction: float, message: str) -> None:
        self.check()
        if self.progress is not None:
            self.progress(min(max(float(fraction), 0.0), 1.0), message)


@contextmanager
def _monitoring(progress: ProgressCallback | None, cancel: CancelCallback | None) -> Iterator[_Monitor]:
    """Make ``cancel`` visible to estimators fitted inside, in this thread.

    A nested ``fit`` (the SVC inside a Super Learner) that was given no ``cancel`` inherits the
    outer one, so a long inner fit still stops when the operator asks.  Work sent to other
    processes does not see it; that is why our own parallel loops use threads.
    """
    outer: _Monitor | None = getattr(_LOCAL, "monitor", None)
    if cancel is None and outer is not None:
        cancel = outer.cancel
    monitor = _Monitor(progress, cancel)
    _LOCAL.monitor = monitor
    try:
        monitor.check()
        yield monitor
    finally:
        _LOCAL.monitor = outer


def _check_cancelled() -> None:
    """Raise :class:`TrainingCancelled` if the ``fit`` running in this thread was cancelled."""
    monitor: _Monitor | None = getattr(_LOCAL, "monitor", None)
    if monitor is not None:
        monitor.check()


_SMALL_PROBLEM = 2_000_000  # photos x people below which BLAS runs on one thread


@contextmanager
def _blas_threads_for(n_samples: int, n_classes: int) -> Iterator[None]:
    """Run BLAS single-threaded for small problems.

    On a small gallery every BLAS call is tiny, and waking OpenBLAS's threads costs more than the
    call: L-BFGS (logistic regression, calibration, the meta-learners) runs ~10x slower with two
    threads than with one.  Large galleries keep the threads for their big matrix products.  The
    limit is process-wide while it lasts; only one training runs at a time.
    """
    if n_samples * n_classes > _SMALL_PROBLEM:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class _CancellableStratifiedKFold(StratifiedKFold):
    """Shuffled stratified k-fold that polls the current ``cancel`` before handing out a fold.

    scikit-learn's ``CalibratedClassifierCV`` (the SVC with ``ensemble=True``) asks its splitter
    for folds before fitting each fold model, which makes this the checkpoint between them.  It
    holds no callback itself, so it copies and pickles normally.
    """

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for train, test in super().split(X, y, groups):
            _check_cancelled()
            yield train, test


def _stratified_folds(
    n_splits: int, random_state: int | None, y_index: NDArray[np.intp]
) -> tuple[tuple[NDArray[np.intp], NDArray[np.intp]], ...]:
    """The shuffled stratified folds every classifier uses (the same ones for the same seed)."""
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return tuple(
        (train.astype(np.intp), test.astype(np.intp))
        for train, test in splitter.split(np.zeros((len(y_index), 1)), y_index)
    )


# --------------------------------------------------------------------------------------------
# Cross-validated base models, shared between the classifiers of one training run
# --------------------------------------------------------------------------------------------


@contextmanager
def shared_fits() -> Iterator[None]:
    """Let the classifiers fitted inside this block reuse each other's identical base-model fits.

    A base model (same class, same parameters apart from ``n_jobs``) cross-validated on the same
    photos, labels and folds as an earlier one in the block is not trained again: its
    out-of-fold outputs and its model refitted on all photos are reused, so the classifiers may
    then share a fitted base model (nothing modifies a fitted base model).  Results are exactly
    those of separate fits.  The reused outputs are kept until the block ends, about 80 MB per
    base model at 1,000 people x 10 photos.  Blocks do not nest (an inner block joins the outer
    one); they apply to fits in the calling thread.
    """
    if getattr(_LOCAL, "shared", None) is not None:
        yield
        return
    _LOCAL.shared = {}
    try:
        yield
    finally:
        _LOCAL.shared = None


@dataclass(frozen=True, eq=False)
class _FoldData:
    """Training photos (``X``, class indices) and folds, with a fingerprint inside :func:`shared_fits`."""

    X: NDArray[np.float64]
    y_index: NDArray[np.intp]
    n_classes: int
    folds: tuple[tuple[NDArray[np.intp], NDArray[np.intp]], ...]
    fingerprint: str | None


def _fold_data(
    X: NDArray[np.float64],
    y_index: NDArray[np.intp],
    n_classes: int,
    folds: Sequence[tuple[NDArray[np.intp], NDArray[np.intp]]],
) -> _FoldData:
    fingerprint = None
    if getattr(_LOCAL, "shared", None) is not None:
        # The test folds, in order, determine the training folds too.
        digest = hashlib.blake2b(digest_size=20)
        for part in (X, y_index, *(test for _, test in folds)):
            array = np.ascontiguousarray(part)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
        fingerprint = digest.hexdigest()
    return _FoldData(X, y_index, n_classes, tuple(folds), fingerprint)


def _learner_key(learner: BaseEstimator) -> str:
    """Class and parameters of a base model; ``n_jobs`` is left out (results do not depend on it)."""
    params = sorted((k, v) for k, v in learner.get_params(deep=False).items() if k != "n_jobs")
    return f"{type(learner).__module__}.{type(learner).__qualname__}{params!r}"


def _outputs(model: Any, X: np.ndarray, n_classes: int, method: str) -> NDArray[np.float64]:
    """What ``model`` contributes for ``X``: ``(n, K)`` probabilities or decision values.

    Decision values of a two-class model are ``(n,)``, positive for class 1.
    """
    if method == "predict_proba":
        return _aligned_proba(model, X, n_classes)
    scores = np.asarray(model.decision_function(X), dtype=np.float64)
    codes = np.asarray(model.classes_, dtype=np.intp)
    if scores.ndim == 2 and not np.array_equal(codes, np.arange(n_classes)):
        # A class missing from a training fold scores lowest (as in cross_val_predict).
        full = np.full((scores.shape[0], n_classes), np.finfo(np.float64).min)
        full[:, codes] = scores
        return full
    return scores


def _output_labels(outputs: np.ndarray) -> NDArray[np.intp]:
    """Class index each row of :func:`_outputs` points to."""
    if outputs.ndim == 1:
        return (outputs > 0).astype(np.intp)
    return np.argmax(outputs, axis=1).astype(np.intp)


@dataclass(frozen=True, eq=False)
class _CrossValidated:
    """A base model's out-of-fold outputs (as :func:`_outputs`) and its accuracy on each fold."""

    outputs: NDArray[np.float64]
    fold_accuracy: tuple[float, ...]


def _cross_validate(
    learner: BaseEstimator,
    data: _FoldData,
    method: str,
    tick: Callable[[str], None],
    *,
    refit: bool = False,
    n_jobs: int | None = None,
) -> tuple[_CrossValidated, Any, float]:
    """Fit a clone of ``learner`` on each training fold and predict its held-out fold.

    Returns the out-of-fold outputs with the per-fold accuracy; with ``refit``, also a clone
    fitted on all photos (else ``None``); and the seconds spent here (next to nothing when
    another classifier already did the work in the same :func:`shared_fits`).  ``tick(message)``
    is called before each fold and before the refit.  ``n_jobs`` threads fit folds (and the
    refit) side by side, for learners that leave a core idle; the results are the same.
    """
    started = time.perf_counter()
    shared: dict[tuple[Any, ...], Any] | None = getattr(_LOCAL, "shared", None)
    cache = {} if shared is None or data.fingerprint is None else shared
    cv_key = ("folds", _learner_key(learner), method, data.fingerprint)
    fit_key = ("all", _learner_key(learner), data.fingerprint)
    cv: _CrossValidated | None = cache.get(cv_key)
    model = cache.get(fit_key) if refit else None

    def fold(train: NDArray[np.intp], test: NDArray[np.intp]) -> tuple[np.ndarray, float]:
        fitted = clone(learner).fit(data.X[train], data.y_index[train])
        out = _outputs(fitted, data.X[test], data.n_classes, method)
        return out, float(np.mean(_output_labels(out) == data.y_index[test]))

    k = len(data.folds)
    tasks: list[tuple[str, Callable[[], Any]]] = []
    if cv is None:
        tasks += [(f"fold {i + 1} of {k}", partial(fold, *split)) for i, split in enumerate(data.folds)]
    else:
        for i in range(k):
            tick(f"fold {i + 1} of {k} (already cross-validated)")
    if refit and model is None:
        tasks.append(("refitting on all photos", lambda: clone(learner).fit(data.X, data.y_index)))
    elif refit:
        tick("refitted on all photos already")
    results = _run_in_order(tasks, tick, n_jobs)
    if cv is None:
        outputs = np.zeros((len(data.y_index), *results[0][0].shape[1:]))
        for (_, test), (out, _) in zip(data.folds, results):
            outputs[test] = out
        cv = cache[cv_key] = _CrossValidated(outputs, tuple(accuracy for _, accuracy in results[:k]))
    if refit and model is None:
        model = cache[fit_key] = results[-1]
    return cv, model, time.perf_counter() - started


def _run_in_order(
    tasks: Sequence[tuple[str, Callable[[], Any]]], tick: Callable[[str], None], n_jobs: int | None
) -> list[Any]:
    """Results of ``(message, task)`` pairs in order, ``tick(message)`` before waiting for each.

    On ``n_jobs`` threads the tasks run side by side, but ticks (and so cancellation) stay in the
    calling thread: a cancel stops the tasks not started yet, the running ones finish first.
    """
    workers = min(effective_n_jobs(n_jobs), len(tasks))
    if workers <= 1:
        results = []
        for message, task in tasks:
            tick(message)
            results.append(task())
        return results
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(task) for _, task in tasks]
        try:
            results = []
            for (message, _), future in zip(tasks, futures):
                tick(message)
                results.append(future.result())
            return results
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _refit(learner: BaseEstimator, data: _FoldData, tick: Callable[[str], None]) -> tuple[Any, float]:
    """A clone of ``learner`` fitted on all photos (shared like :func:`_cross_validate`), and seconds."""
    started = time.perf_counter()
    tick("refitting on all photos")
    shared: dict[tuple[Any, ...], Any] | None = getattr(_LOCAL, "shared", None)
    key = ("all", _learner_key(learner), data.fingerprint)
    model = None if shared is None or data.fingerprint is None else shared.get(key)
    if model is None:
        model = clone(learner).fit(data.X, data.y_index)
        if shared is not None and data.fingerprint is not None:
            shared[key] = model
    return model, time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# Shared validation
# --------------------------------------------------------------------------------------------


def _label_counts(y: np.ndarray) -> tuple[np.ndarray, NDArray[np.intp], NDArray[np.intp]]:
    """Return ``classes, y_index, counts`` after checking the classification target."""
    check_classification_targets(y)
    classes, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
    return classes, y_index.astype(np.intp), counts.astype(np.intp)


def _require_trainable(classes: np.ndarray, counts: NDArray[np.intp], min_photos: int = 2) -> None:
    """Raise :class:`TrainingDataError` unless there are 2+ people with ``min_photos``+ photos each."""
    if len(classes) < 2:
        who = f" ({str(classes[0])!r})" if len(classes) == 1 else ""
        raise TrainingDataError(
            f"Training needs at least 2 people, but the photos cover {len(classes)} class{who}; "
            "enroll another person first."
        )
    short = [(str(c), int(n)) for c, n in zip(classes, counts) if n < min_photos]
    if short:
        name, count = short[0]
        photos = "photo" if count == 1 else "photos"
        others = f" (and {len(short) - 1} other people)" if len(short) > 1 else ""
        raise TrainingDataError(
            f"Person {name!r}{others} has only {count} {photos}; at least {min_photos} per person "
            "are needed to train. Add photos of them or remove them from the gallery."
        )


def _validated_training_set(
    estimator: BaseEstimator, X: ArrayLike, y: ArrayLike, min_photos: int = 2
) -> tuple[NDArray[np.float64], np.ndarray, np.ndarray, NDArray[np.intp], NDArray[np.intp]]:
    """Validate ``X, y`` for ``estimator``; return ``X, y, classes, y_index, counts``."""
    X_arr, y_arr = validate_data(estimator, X, y, dtype=np.float64)
    classes, y_index, counts = _label_counts(y_arr)
    _require_trainable(classes, counts, min_photos)
    return X_arr, y_arr, classes, y_index, counts


def _adapted_n_splits(requested: int, counts: NDArray[np.intp]) -> int:
    """Number of stratified folds: ``requested``, but no more than the smallest class, and 2+."""
    return max(2, min(int(requested), int(counts.min())))


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _ParameterError(f"Parameter {name} must be an integer of at least {minimum}, got {value!r}.")
    return int(value)


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise _ParameterError(
            f"Parameter {name} must be one of {', '.join(map(repr, choices))}; got {value!r}."
        )
    return value


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    number = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
    if not number or not (value >= 0 if allow_zero else value > 0):
        kind = "non-negative" if allow_zero else "positive"
        raise _ParameterError(f"Parameter {name} must be a {kind} number, got {value!r}.")
    return float(value)


def _knn_neighbors(folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> int:
    """k of k-NN: 5, but never more than the smallest training fold holds."""
    return max(1, min([_KNN_NEIGHBORS, *(len(train) for train, _ in folds)]))


def _aligned_proba(estimator: Any, X: np.ndarray, n_classes: int) -> NDArray[np.float64]:
    """``predict_proba`` with one column per class code ``0..n_classes-1`` (absent classes get 0)."""
    proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    codes = np.asarray(estimator.classes_, dtype=np.intp)
    if proba.shape[1] == n_classes and np.array_equal(codes, np.arange(n_classes)):
        return proba
    out = np.zeros((proba.shape[0], n_classes))
    out[:, codes] = proba
    return out


def _argmax_labels(classes: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return classes[np.argmax(proba, axis=1)]


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


_LIBLINEAR_L2R_L2LOSS_SVC_DUAL = 1
"""liblinear's solver for ``LinearSVC(loss="squared_hinge", penalty="l2", dual=True)``."""

_direct_liblinear = True  # set to False if scikit-learn's liblinear wrapper ever rejects our call


def _liblinear_seed(random_state: Any) -> int:
    """The seed ``LinearSVC.fit`` hands liblinear (the same for every fit when ``random_state`` is an int)."""
    return int(check_random_state(random_state).randint(np.iinfo("i").max))


def _binary_linear_svm(
    X: NDArray[np.float64],
    positive: NDArray[np.bool_],
    C: float,
    tol: float,
    max_iter: int,
    random_state: Any,
    seed: int | None = None,
) -> tuple[NDArray[np.float64], float]:
    """Coefficients and intercept of ``LinearSVC(C=C, tol=tol, max_iter=max_iter, dual=True).fit(X, ±1)``.

    The one-vs-rest SVM solves about a thousand small problems per fit at 1,000 people, and on
    problems this small ``LinearSVC.fit``'s own work (validation, label encoding, class and sample
    weights) costs as much as liblinear's solve.  This calls the liblinear wrapper that
    ``LinearSVC.fit`` calls, with the arguments it would pass for ``X`` (float64, C-ordered, already
    validated) and these two classes, so the result is the same to the bit (a test checks it).
    Should a future scikit-learn change that private wrapper, it falls back to ``LinearSVC``.
    ``seed``: what ``_liblinear_seed(random_state)`` returns, when the caller drew it already.
    """
    global _direct_liblinear
    if _direct_liblinear:
        try:
            from sklearn.svm import _liblinear

            _liblinear.set_verbosity_wrap(0)
            raw, n_iter = _liblinear.train_wrap(
                X,
                positive.astype(np.float64),  # LinearSVC's label encoding of -1, 1
                False,
                _LIBLINEAR_L2R_L2LOSS_SVC_DUAL,
                tol,
                1.0,  # bias = intercept_scaling
                C,
                np.ones(2),  # class weights
                max_iter,
                _liblinear_seed(random_state) if seed is None else seed,
                0.1,  # epsilon (unused by this solver)
                np.ones(X.shape[0]),  # sample weights
            )
        except (ImportError, AttributeError, TypeError) as err:
            log.warning("scikit-learn's liblinear wrapper changed (%s); solving through LinearSVC", err)
            _direct_liblinear = False
        else:
            if int(np.max(n_iter)) >= max_iter:
                warnings.warn(
                    "Liblinear failed to converge, increase the number of iterations.", ConvergenceWarning
                )
            return np.asarray(raw[0, :-1]), float(raw[0, -1])
    svm = LinearSVC(C=C, dual=True, tol=tol, max_iter=max_iter, random_state=random_state)
    svm.fit(X, np.where(positive, 1, -1))
    return svm.coef_[0], float(svm.intercept_[0])


class _OvRLinearSVC(ClassifierMixin, BaseEstimator):
    """One-vs-rest linear SVM solved on working sets; same solution as :class:`~sklearn.svm.LinearSVC`.

    ``LinearSVC`` solves each class-versus-rest problem on all ``n`` samples, ``O(K n)`` work that
    takes 20-80 s at 1,000 people x 10 photos on two cores.  With ten photos per person almost every sample lies far outside
    the margin of almost every class and does not shape its hyperplane.  For each class we solve
    the problem on its own photos plus the ``working_set`` most similar other photos, then check
    every sample's margin in one matrix product and re-solve, with the violators added, until none
    is left.  Samples with margin >= 1 carry no loss and no dual weight, so the result is the
    optimum of the full problem (to solver tolerance and ``slack``), usually after two rounds.

    It exposes ``decision_function``, which ``CalibratedClassifierCV`` and ``StackingClassifier``
    use.  Parameters are those of ``LinearSVC`` (squared hinge loss, dual coordinate descent), with
    a higher ``max_iter``: the problems are small, and overlapping classes need more passes.
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        tol: float = 1e-4,
        max_iter: int = 10_000,
        working_set: int = 800,
        slack: float = 1e-3,
        n_jobs: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.C = C
        self.tol = tol
        self.max_iter = max_iter
        self.working_set = working_set
        self.slack = slack
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Fit one linear SVM per class (a single one for two classes)."""
        X_arr, y_arr = validate_data(self, X, y, dtype=np.float64, order="C")
        classes, y_index, _ = _label_counts(y_arr)
        if len(classes) < 2:
            raise TrainingDataError("A linear SVM needs at least 2 classes; got 1 class.")
        self.classes_ = classes
        d = X_arr.shape[1]
        problems = [1] if len(classes) == 2 else list(range(len(classes)))
        coef = np.zeros((len(problems), d))
        intercept = np.zeros(len(problems))

        # Row indices of each class's photos.
        order = np.argsort(y_index, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(y_index, minlength=len(classes)))])
        positives = [order[bounds[k] : bounds[k + 1]] for k in problems]
        working = self._initial_working_sets(X_arr, y_index, problems, positives)

        todo = list(range(len(problems)))
        self.n_rounds_ = 0
        while todo:
            self.n_rounds_ += 1
            for start in range(0, len(todo), 128):
                _check_cancelled()
                chunk = todo[start : start + 128]
                tasks = [(X_arr[working[j]], y_index[working[j]] == problems[j]) for j in chunk]
                # Two interleaved halves per chunk keep both threads busy with little dispatch cost.
                parts = Parallel(n_jobs=self.n_jobs, prefer="threads")(
                    delayed(self._fit_many)(tasks[offset::2]) for offset in range(min(2, len(tasks)))
                )
                for offset, part in enumerate(parts):
                    for j, (w, b) in zip(chunk[offset::2], part):
                        coef[j], intercept[j] = w, b
            todo = self._grow_working_sets(X_arr, positives, working, todo, coef, intercept)
        self.coef_ = coef
        self.intercept_ = intercept
        return self

    def _initial_working_sets(
        self, X: np.ndarray, y_index: np.ndarray, problems: list[int], positives: list[np.ndarray]
    ) -> list[NDArray[np.intp]]:
        """Each class's photos plus the ``working_set`` other photos most similar to its centroid."""
        n = X.shape[0]
        centroids = np.zeros((int(y_index.max()) + 1, X.shape[1]))
        np.add.at(centroids, y_index, X)
        working: list[NDArray[np.intp]] = []
        for start in range(0, len(problems), 256):
            block = problems[start : start + 256]
            similarity = centroids[block] @ X.T  # (classes in block, n)
            for row, j in zip(similarity, range(start, start + len(block))):
                size = len(positives[j]) + int(self.working_set)
                if size >= n:
                    working.append(np.arange(n, dtype=np.intp))
                    continue
                row[positives[j]] = np.inf
                working.append(np.sort(np.argpartition(-row, size - 1)[:size]).astype(np.intp))
        return working

    def _fit_many(self, tasks: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, float]]:
        # An int random_state gives every solve the same seed: draw it once, not 0.3 ms per solve.
        fixed = isinstance(self.random_state, (int, np.integer))
        seed = _liblinear_seed(self.random_state) if fixed else None
        C, tol, max_iter = float(self.C), float(self.tol), int(self.max_iter)
        return [
            _binary_linear_svm(X, positive, C, tol, max_iter, self.random_state, seed) for X, positive in tasks
        ]

    def _grow_working_sets(
        self,
        X: np.ndarray,
        positives: list[np.ndarray],
        working: list[NDArray[np.intp]],
        todo: list[int],
        coef: np.ndarray,
        intercept: np.ndarray,
    ) -> list[int]:
        """Add margin violators to each working set; return the problems that must be re-solved."""
        again = []
        member = np.zeros(X.shape[0], dtype=bool)
        for start in range(0, len(todo), 256):
            chunk = todo[start : start + 256]
            # margin = y * score, with y = -1 except on the class's own photos
            margins = -(coef[chunk] @ X.T + intercept[chunk][:, None])
            for row, j in zip(margins, chunk):
                row[positives[j]] *= -1.0
                violators = np.flatnonzero(row < 1.0 - self.slack)
                member[working[j]] = True
                new = violators[~member[violators]]
                member[working[j]] = False
                if new.size:
                    working[j] = np.union1d(working[j], new).astype(np.intp)
                    again.append(j)
        return again

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """Signed distance to each class's hyperplane, ``(n,)`` for two classes else ``(n, K)``."""
        check_is_fitted(self)
        X_arr = validate_data(self, X, dtype=np.float64, reset=False)
        scores = X_arr @ self.coef_.T + self.intercept_
        return np.asarray(scores.ravel() if len(self.classes_) == 2 else scores)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Class with the largest decision value."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(np.intp)]
        return _argmax_labels(self.classes_, scores)


def _shared_logistic_coef(
    stacked: NDArray[np.float64],
    y_index: NDArray[np.intp],
    C: float,
    max_iter: int,
    rows: NDArray[np.bool_] | None = None,
    coef0: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], int]:
    """Coefficients of :class:`_SharedLogisticRegression` on C-contiguous scores ``(M, n, K)``.

    One ``(n, K)`` score matrix per base model, so that the logits are one matrix-vector product
    and the gradient another.  ``rows`` (a mask) restricts the loss to some samples without
    copying the scores; ``coef0`` is the starting point of L-BFGS.  Returns the coefficients and
    the iterations used.
    """
    n_models, n, n_classes = stacked.shape
    flat = stacked.reshape(n_models, -1)
    true_scores = stacked[:, np.arange(n), y_index].T  # (n, M)
    weight = None if rows is None else rows.astype(np.float64)
    n_used = float(n if weight is None else weight.sum())
    inv_cn = 1.0 / (C * n_used)

    def loss_and_grad(coef: np.ndarray) -> tuple[float, np.ndarray]:
        proba = (coef @ flat).reshape(n, n_classes)
        top = proba.max(axis=1, keepdims=True)
        proba -= top
        np.exp(proba, out=proba)
        norm = proba.sum(axis=1, keepdims=True)
        proba /= norm
        log_norm = np.log(norm[:, 0]) + top[:, 0]
        penalty = 0.5 * inv_cn * float(coef @ coef)
        # Mean loss (not sum) so that L-BFGS's tolerances do not depend on n.
        if weight is None:
            loss = float(np.mean(log_norm) - np.mean(true_scores @ coef)) + penalty
            grad = flat @ proba.ravel() / n - true_scores.mean(axis=0) + inv_cn * coef
        else:
            loss = float(weight @ (log_norm - true_scores @ coef)) / n_used + penalty
            proba *= weight[:, None]
            grad = (flat @ proba.ravel() - weight @ true_scores) / n_used + inv_cn * coef
        return loss, grad

    result = minimize(
        loss_and_grad,
        np.zeros(n_models) if coef0 is None else np.asarray(coef0, dtype=np.float64),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": int(max_iter)},
    )
    if not result.success:
        log.info("shared meta-model stopped before converging: %s", result.message)
    return np.asarray(result.x, dtype=np.float64), int(result.nit)


def _shared_logistic_fold_coef(
    stacked: NDArray[np.float64],
    y_index: NDArray[np.intp],
    coef: NDArray[np.float64],
    C: float,
    folds: Sequence[tuple[NDArray[np.intp], NDArray[np.intp]]],
) -> list[NDArray[np.float64]]:
    """The coefficients refitted without each fold, by one Newton step from ``coef`` (fitted on all rows).

    With ``M`` = 5 coefficients, the per-sample gradients and ``M x M`` Hessians at ``coef`` are
    computed in one pass over the scores; each fold's step then costs a 5 x 5 solve.  At 1,000
    people the steps land within 0.1 of the exact refits (which move by 0.3-0.5) and give the same
    held-out accuracy, for one pass over the scores instead of some 30.
    """
    n_models, n, n_classes = stacked.shape
    proba = (coef @ stacked.reshape(n_models, -1)).reshape(n, n_classes)
    proba -= proba.max(axis=1, keepdims=True)
    np.exp(proba, out=proba)
    proba /= proba.sum(axis=1, keepdims=True)
    weighted = np.empty((n, n_classes))
    expected = np.empty((n, n_models))  # E_p[score of model a]
    second = np.empty((n, n_models, n_models))  # E_p[score a * score b]
    for a in range(n_models):
        np.multiply(proba, stacked[a], out=weighted)
        expected[:, a] = weighted.sum(axis=1)
        for b in range(a, n_models):
            second[:, a, b] = second[:, b, a] = np.einsum("ik,ik->i", weighted, stacked[b])
    gradients = expected - stacked[:, np.arange(n), y_index].T
    hessians = second - expected[:, :, None] * expected[:, None, :]
    coefs = []
    for train, _ in folds:
        ridge = 1.0 / (C * len(train))
        grad = gradients[train].mean(axis=0) + ridge * coef
        hess = hessians[train].mean(axis=0) + ridge * np.eye(n_models)
        coefs.append(coef - np.linalg.solve(hess, grad))
    return coefs


_SUBSAMPLE_START = 500
"""Photos every 8th of which must number at least this for the meta-model to start on them."""


class _SharedLogisticRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression whose coefficients are shared by all classes.

    The stacking meta-model for large galleries.  Its input is what the stacker stacks: ``M``
    blocks of ``K`` columns, one score per (base model, class).  The logit of class ``k`` is
    ``sum_m coef_[m] * score[m, k]``: one weight per base model instead of ``M K`` per class, so the
    cost is ``O(n M K)`` rather than ``O(n M K**2)``, and every person is treated alike (no class
    prior, which a gate should not have anyway).  Objective, as in ``LogisticRegression``:
    ``C * sum(log loss) + 0.5 * |coef|**2``.
    """

    def __init__(self, *, C: float = 1.0, max_iter: int = 500) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Fit the per-model weights by L-BFGS on the multinomial log loss."""
        X_arr, y_arr = validate_data(self, X, y, dtype=np.float64)
        classes, y_index, _ = _label_counts(y_arr)
        n, n_features = X_arr.shape
        if len(classes) < 3 or n_features % len(classes):
            raise _ParameterError(
                "The class-shared meta-model needs 3+ classes and one column per class and base model; "
                f"got {len(classes)} classes and {n_features} columns. Use the thesis stacker instead."
            )
        n_models = n_features // len(classes)
        stacked = np.ascontiguousarray(X_arr.reshape(n, n_models, len(classes)).transpose(1, 0, 2))
        return self._fit_stacked(stacked, classes, y_index)

    def _fit_stacked(
        self, stacked: NDArray[np.float64], classes: np.ndarray, y_index: NDArray[np.intp]
    ) -> Self:
        """Fit on the scores as :func:`_shared_logistic_coef` takes them, ``(M, n, K)``.

        On many photos, L-BFGS starts from the fit on every 8th photo (same regularisation per
        photo): 5 passes over all the scores instead of ~16, for the same optimum to L-BFGS's
        tolerance.
        """
        C, max_iter = float(self.C), int(self.max_iter)
        n = stacked.shape[1]
        start = None
        if n >= 8 * _SUBSAMPLE_START:
            rows = np.arange(0, n, 8)
            sample = np.ascontiguousarray(stacked[:, rows])
            start, _ = _shared_logistic_coef(sample, y_index[rows], 8 * C, max_iter)
        self.coef_, self.n_iter_ = _shared_logistic_coef(stacked, y_index, C, max_iter, coef0=start)
        self.classes_ = classes
        self.n_features_in_ = stacked.shape[0] * stacked.shape[2]
        return self

    def _logits(self, X: ArrayLike) -> np.ndarray:
        check_is_fitted(self)
        X_arr = validate_data(self, X, dtype=np.float64, reset=False)
        blocks = X_arr.reshape(X_arr.shape[0], -1, len(self.classes_))
        return np.asarray(np.tensordot(blocks, self.coef_, axes=([1], [0])))

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Softmax of the shared-coefficient logits."""
        logits = self._logits(X)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return np.asarray(proba / proba.sum(axis=1, keepdims=True))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Class with the largest logit."""
        return _argmax_labels(self.classes_, self._logits(X))

    def _proba_from_blocks(self, blocks: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
        """:meth:`predict_proba` of the ``M`` score blocks ``(n, K)`` themselves, without stacking them."""
        check_is_fitted(self)
        logits = np.multiply(blocks[0], self.coef_[0])
        for coef, block in zip(self.coef_[1:], blocks[1:]):
            logits += coef * block
        return _softmax_in_place(logits)


class _GaussianNB(GaussianNB):
    """:class:`~sklearn.naive_bayes.GaussianNB` with its log-likelihood computed by matrix products.

    scikit-learn loops over the classes in Python, which takes ~4 s to score 10,000 photos of
    1,000 people.  Expanding ``(x - mu)**2 / var`` into ``x**2 / var - 2 x mu / var + mu**2 / var``
    gives two matrix products instead, and the probabilities are a softmax computed in place.
    Same parameters, fit and model; probabilities agree to rounding error.
    """

    def _joint_log_likelihood(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)  # the expansion cancels large terms: float32 is not enough
        inv_var = 1.0 / self.var_
        const = (
            np.log(self.class_prior_)
            - 0.5 * np.sum(np.log(2.0 * np.pi * self.var_), axis=1)
            - 0.5 * np.sum(self.theta_**2 * inv_var, axis=1)
        )
        return np.asarray(const + X @ (self.theta_ * inv_var).T - 0.5 * (X**2) @ inv_var.T)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities: the joint log-likelihood's softmax, in place (a third of the passes)."""
        check_is_fitted(self)
        return _softmax_in_place(self._joint_log_likelihood(self._check_X(X)))


# --------------------------------------------------------------------------------------------
# The plug-in point
# --------------------------------------------------------------------------------------------


class Classifier(Protocol):
    """What the recogniser needs of a classifier: fit, class probabilities and their order."""

    classes_: np.ndarray

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Any:
        """Learn from embeddings ``X`` (n, d) and person ids ``y`` (n,)."""
        ...

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return probabilities ``(n, len(classes_))``, columns in the order of ``classes_``."""
        ...


class _ProbabilisticClassifier(ClassifierMixin, BaseEstimator):
    """Shared by the three classifiers: ``predict`` is the most probable column of ``predict_proba``."""

    classes_: np.ndarray

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:  # pragma: no cover - overridden
        raise NotImplementedError

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable person id for each row."""
        proba = self.predict_proba(X)
        return _argmax_labels(self.classes_, proba)

    def _inner_proba(self, inner: str, X: ArrayLike) -> NDArray[np.float64]:
        """``predict_proba`` of the fitted attribute ``inner``, after checking fit and ``X``."""
        check_is_fitted(self)
        X_arr = validate_data(self, X, dtype=np.float64, reset=False)
        return np.asarray(getattr(self, inner).predict_proba(X_arr), dtype=np.float64)


def _log_trained(what: str, n_photos: int, n_people: int, started: float) -> None:
    log.info(
        "%s trained on %d photos of %d people in %.1f s",
        what,
        n_photos,
        n_people,
        time.perf_counter() - started,
    )


def _resolve_auto(value: str, n_classes: int, small: str, large: str) -> str:
    if value == "auto":
        return small if n_classes <= MAX_THESIS_CLASSES else large
    return value


# --------------------------------------------------------------------------------------------
# 1. Calibrated linear SVC
# --------------------------------------------------------------------------------------------


class CalibratedSVC(_ProbabilisticClassifier):
    """Linear-kernel support vector classifier with calibrated probabilities (name ``"svc"``).

    The thesis used ``SVC(kernel="linear", probability=True)``; scikit-learn 1.9 deprecates
    ``probability=True`` and recommends ``CalibratedClassifierCV(SVC(), ensemble=False)``, which is
    what this is: a calibration (Platt scaling, for galleries up to :data:`MAX_THESIS_CLASSES`
    people) fitted on cross-validated decision values, and one SVM trained on all photos.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength of the SVM.
    cv : int, default=5
        Requested calibration folds (stratified, shuffled).  Fewer are used when the smallest
        class has fewer photos, but at least 2.
    method : {"auto", "sigmoid", "isotonic", "temperature"}, default="auto"
        Calibration method of :class:`~sklearn.calibration.CalibratedClassifierCV`.  ``"auto"``:
        ``"sigmoid"`` (Platt scaling, as libsvm's ``probability=True``) up to
        :data:`MAX_THESIS_CLASSES` people, else ``"temperature"``: one parameter for all classes
        instead of one-vs-rest sigmoids fitted to ~10 positives each (and 1,000 of them).
    ensemble : bool, default=False
        ``False``: one SVM on all data (the behaviour of ``probability=True``).  ``True``: average
        the ``cv`` calibrated fold models.
    multi_class : {"auto", "ovo", "ovr"}, default="auto"
        ``"ovo"``: :class:`~sklearn.svm.SVC` with a linear kernel (libsvm, one-vs-one), as in the
        thesis.  Its ``K (K - 1) / 2`` pairwise machines make prediction quadratic in the number of
        people ``K``.  ``"ovr"``: a one-vs-rest linear SVM with ``LinearSVC``'s objective, solved
        on working sets (linear in ``K``).  ``"auto"``: ``"ovo"`` up to :data:`MAX_THESIS_CLASSES`
        people, else ``"ovr"``.
    n_jobs : int or None, default=None
        Threads for the one-vs-rest solver.
        ``-1`` uses every core; on a small gallery starting threads costs more than it saves.
        Concurrent solves draw from liblinear's one process-wide random generator, so with
        threads two fits agree only to about 1e-7, not to the bit; :func:`core.recognition.engine.train_model`
        keeps the default.
    random_state : int or None, default=0
        Seed of the fold shuffling and of the one-vs-rest solver.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        Person ids, in the column order of :meth:`predict_proba`.
    svm_ : SVC or one-vs-rest linear SVM, or None
        The SVM trained on all photos; it predicts class indices into ``classes_``.  ``None``
        with ``ensemble=True`` (the fold models live in ``calibrated_``).
    calibrated_ : CalibratedClassifierCV or temperature scaling
        The calibration.  With ``ensemble=False`` it maps the decision values of ``svm_`` to
        probabilities (it was fitted on the out-of-fold decision values): a
        ``CalibratedClassifierCV``, or for ``"temperature"`` usually the same calibration computed
        faster (its ``beta_`` is the inverse temperature; see :func:`_fit_temperature`).  With
        ``ensemble=True`` it is a ``CalibratedClassifierCV`` holding the calibrated fold models,
        and takes the embeddings.
    fold_accuracy_ : list of float or None
        Accuracy on each held-out calibration fold of the SVM trained on the other folds (its
        largest decision value).  With ``"temperature"`` calibration, which cannot change the
        most probable class, this is exactly the cross-validated accuracy of this classifier
        on those folds.  ``None`` with ``ensemble=True``.
    multi_class_ : {"ovo", "ovr"}
        The multi-class strategy that was used.
    method_ : {"sigmoid", "isotonic", "temperature"}
        The calibration method that was used.
    n_splits_ : int
        Calibration folds actually used.
    fit_times_ : dict of str to float
        Seconds spent on the SVM (``"svm"``: folds and refit; next to nothing when shared with an
        earlier fit, see :func:`shared_fits`) and on the calibration (``"calibration"``).
    """

    classes_: np.ndarray

    def __init__(
        self,
        *,
        C: float = 1.0,
        cv: int = 5,
        method: Literal["auto", "sigmoid", "isotonic", "temperature"] = "auto",
        ensemble: bool = False,
        multi_class: Literal["auto", "ovo", "ovr"] = "auto",
        n_jobs: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.C = C
        self.cv = cv
        self.method = method
        self.ensemble = ensemble
        self.multi_class = multi_class
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Self:
        """Train the SVM and its calibration.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Embeddings.
        y : array-like of shape (n,)
            Person ids; every person needs at least 2 photos.
        progress, cancel : callable, optional
            See the module documentation.  ``cancel`` is polled before training, before each
            calibration fold and, for the one-vs-rest SVM, every 128 people.

        Returns
        -------
        self

        Raises
        ------
        TrainingDataError
            Fewer than 2 people, or a person with a single photo.
        TrainingCancelled
            ``cancel()`` returned true.
        """
        with _monitoring(progress, cancel) as monitor:
            started = time.perf_counter()
            X_arr, y_arr, classes, y_index, counts = _validated_training_set(self, X, y)
            C = _check_positive("C", self.C)
            requested = _check_int("cv", self.cv, 2)
            method = _check_choice("method", self.method, ("auto", "sigmoid", "isotonic", "temperature"))
            method = _resolve_auto(method, len(classes), "sigmoid", "temperature")
            _check_choice("ensemble", self.ensemble, (False, True))
            multi_class = _check_choice("multi_class", self.multi_class, ("auto", "ovo", "ovr"))
            multi_class = _resolve_auto(multi_class, len(classes), "ovo", "ovr")
            n_splits = _adapted_n_splits(requested, counts)
            svm: BaseEstimator
            if multi_class == "ovo":
                svm = SVC(kernel="linear", C=C)
            else:
                svm = _OvRLinearSVC(C=C, n_jobs=self.n_jobs, random_state=self.random_state)
            monitor.report(
                0.0, f"Training a linear SVM ({multi_class}), {method}-calibrated on {n_splits} folds"
            )
            svm_fitted: BaseEstimator | None = None
            fold_accuracy: list[float] | None = None
            times: dict[str, float] = {}
            with _blas_threads_for(len(y_arr), len(classes)):
                if self.ensemble:
                    folds = _CancellableStratifiedKFold(
                        n_splits=n_splits, shuffle=True, random_state=self.random_state
                    )
                    t0 = time.perf_counter()
                    calibrated = CalibratedClassifierCV(svm, method=method, cv=folds, ensemble=True)
                    calibrated.fit(X_arr, y_index)
                    times["svm"] = time.perf_counter() - t0
                else:
                    svm_fitted, fold_accuracy, calibrated = self._fit_calibrated(
                        svm, method, X_arr, y_index, len(classes), n_splits, monitor, times
                    )
            self.svm_ = svm_fitted
            self.fit_times_ = times
            self.calibrated_ = calibrated
            self.fold_accuracy_ = fold_accuracy
            self.classes_ = classes
            self.multi_class_ = multi_class
            self.method_ = method
            self.n_splits_ = n_splits
            monitor.report(1.0, "SVC trained")
            _log_trained(
                f"CalibratedSVC ({multi_class}, {method}, {n_splits} folds)",
                len(y_arr),
                len(classes),
                started,
            )
        return self

    def _fit_calibrated(
        self,
        svm: BaseEstimator,
        method: str,
        X: NDArray[np.float64],
        y_index: NDArray[np.intp],
        n_classes: int,
        n_splits: int,
        monitor: _Monitor,
        times: dict[str, float],
    ) -> tuple[BaseEstimator, list[float], CalibratedClassifierCV | _TemperatureScaling]:
        """``CalibratedClassifierCV(svm, cv=folds, ensemble=False)``, with the folds done by hand.

        The out-of-fold decision values are then also the stacker's (the same SVM on the same
        folds, shared in :func:`shared_fits`), and give the per-fold accuracy.  Records seconds
        in ``times``.
        """
        data = _fold_data(X, y_index, n_classes, _stratified_folds(n_splits, self.random_state, y_index))
        done = [0]

        def tick(message: str) -> None:
            monitor.report(done[0] / (n_splits + 1), f"SVM: {message}")
            done[0] += 1

        cv, svm_fitted, times["svm"] = _cross_validate(svm, data, "decision_function", tick, refit=True)
        t0 = time.perf_counter()
        scores = cv.outputs.reshape(len(y_index), -1)
        beta = _fit_temperature(scores, y_index) if method == "temperature" else None
        calibrated: CalibratedClassifierCV | _TemperatureScaling
        if beta is not None:
            calibrated = _TemperatureScaling(beta)
        else:
            decision_values = FrozenEstimator(_DecisionValues(n_classes=n_classes).fit())
            # The folds only make CalibratedClassifierCV read back every out-of-fold value once.
            folds = list(data.folds)
            calibrated = CalibratedClassifierCV(decision_values, method=method, cv=folds, ensemble=False)
            calibrated.fit(scores, y_index)
        times["calibration"] = time.perf_counter() - t0
        return svm_fitted, list(cv.fold_accuracy), calibrated

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities ``(n, K)``, columns in the order of ``classes_``."""
        svm = getattr(self, "svm_", None)  # absent in models saved before svm_ existed
        if svm is None:
            return self._inner_proba("calibrated_", X)
        check_is_fitted(self)
        X_arr = validate_data(self, X, dtype=np.float64, reset=False)
        scores = np.asarray(svm.decision_function(X_arr), dtype=np.float64).reshape(X_arr.shape[0], -1)
        return np.asarray(self.calibrated_.predict_proba(scores), dtype=np.float64)


class _TemperatureScaling:
    """Probabilities ``softmax(beta_ * decision values)``: the calibration of :func:`_fit_temperature`."""

    def __init__(self, beta: float) -> None:
        self.beta_ = beta

    def predict_proba(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities ``(n, K)`` (``(n, 2)`` for two classes)."""
        return _softmax(self.beta_ * _temperature_logits(scores))


def _temperature_logits(scores: ArrayLike) -> NDArray[np.float64]:
    """Decision values as logits; two-class values ``x`` become ``(-x, x)``, as scikit-learn does."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim == 1 or values.shape[1] == 1:
        values = values.reshape(-1, 1)
        return np.hstack([-values, values])
    return values


def _fit_temperature(scores: ArrayLike, y_index: NDArray[np.intp]) -> float | None:
    """The inverse temperature of ``CalibratedClassifierCV(method="temperature")``, by Newton's method.

    Same objective (the mean log loss of ``softmax(beta * logits)``) and bounds
    (``exp(-10) <= beta <= exp(10)``) as scikit-learn, whose bounded scalar search takes about 40
    passes over the out-of-fold decision values (10,000 x 1,000 of them at 1,000 people).  The
    loss is convex in ``beta`` and its derivatives are at hand, so safeguarded Newton steps take
    5-8 passes and agree with it to ~1e-7.  Returns ``None`` when the loss still falls at the
    upper bound: the scores then separate every photo, the loss underflows to exactly zero over a
    range of ``beta``, and which point of that range scikit-learn's search stops at is arbitrary;
    the caller keeps its answer.
    """
    logits = _temperature_logits(scores)
    true = logits[np.arange(len(logits)), y_index]

    def derivatives(beta: float) -> tuple[float, float]:
        proba = _softmax(beta * logits)
        mean = np.einsum("ik,ik->i", proba, logits)
        variance = np.einsum("ik,ik->i", proba, logits * logits) - mean * mean
        return float(np.mean(mean - true)), float(np.mean(variance))

    low, high = float(np.exp(-10.0)), float(np.exp(10.0))
    if derivatives(high)[0] <= 0:
        return None
    beta = 1.0
    for _ in range(100):
        slope, curvature = derivatives(beta)
        if slope > 0:
            high = beta
        else:
            low = beta
        newton = beta - slope / curvature if curvature > 0 else np.inf
        # Newton inside the bracket, else its geometric middle (beta spans 9 decades).
        new = newton if low < newton < high else float(np.sqrt(low * high))
        done = abs(new - beta) <= 1e-12 * beta
        beta = new
        if done:
            break
    return float(beta)


def _softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    return _softmax_in_place(np.array(logits, dtype=np.float64))


def _softmax_in_place(logits: np.ndarray) -> NDArray[np.float64]:
    """Row-wise softmax of a float array, overwriting it."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return np.asarray(logits)


class _DecisionValues(ClassifierMixin, BaseEstimator):
    """A stand-in classifier whose decision values are its input ``(n, K)`` (``(n, 1)`` for 2 classes).

    Frozen, it lets :class:`~sklearn.calibration.CalibratedClassifierCV` calibrate decision values
    computed elsewhere (out of fold) with its own sigmoid, isotonic or temperature calibrators.
    """

    def __init__(self, *, n_classes: int = 2) -> None:
        self.n_classes = n_classes

    def fit(self, X: ArrayLike | None = None, y: ArrayLike | None = None) -> Self:
        """Nothing to learn: the classes are ``0 .. n_classes - 1``."""
        self.classes_ = np.arange(int(self.n_classes))
        return self

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """The input itself (one column for two classes becomes ``(n,)``, as an SVM returns it)."""
        scores = np.asarray(X, dtype=np.float64)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Class with the largest decision value."""
        return self.classes_[_output_labels(self.decision_function(X))]


# --------------------------------------------------------------------------------------------
# 2. Stacking ensemble
# --------------------------------------------------------------------------------------------


def _stacker_base_models(
    mode: str, n_neighbors: int, n_jobs: int | None, random_state: int | None
) -> list[tuple[str, BaseEstimator]]:
    cart: BaseEstimator
    svm: BaseEstimator
    if mode == "thesis":
        cart = DecisionTreeClassifier(random_state=random_state)
        svm = SVC(kernel="linear")
    else:
        # Random thresholds and sqrt(d) features per split: a best-split Gini tree on 1,000
        # people grows ~300 levels deep and takes minutes; this one takes a fraction of a second.
        cart = DecisionTreeClassifier(
            criterion="entropy", splitter="random", max_features="sqrt", random_state=random_state
        )
        # One thread: concurrent liblinear solves share its random generator (see CalibratedSVC).
        svm = _OvRLinearSVC(random_state=random_state)
    return [
        ("lr", LogisticRegression(max_iter=1000)),
        # No n_jobs: its neighbour search uses every core anyway, and threads would be started
        # again for every face it classifies.
        ("knn", KNeighborsClassifier(n_neighbors=n_neighbors)),
        ("cart", cart),
        ("svm", svm),
        ("bayes", _GaussianNB()),
    ]


class Stacker(_ProbabilisticClassifier):
    """Stacking ensemble of the thesis (name ``"stacker"``).

    Stacking as :class:`~sklearn.ensemble.StackingClassifier` does it (same folds, same models,
    same predictions) over logistic regression (``"lr"``), k-NN (``"knn"``), a decision tree
    (``"cart"``), a linear SVM (``"svm"``, stacked through its decision function) and Gaussian naive
    Bayes (``"bayes"``), with a logistic-regression meta-model trained on their out-of-fold
    outputs.  The folds are done here rather than inside ``StackingClassifier`` so that those
    outputs also give each base model's accuracy per fold, and so that they can be shared with
    the other classifiers (:func:`shared_fits`).

    Parameters
    ----------
    cv : int, default=5
        Requested folds for the meta-model's training data (stratified, shuffled), reduced to the
        smallest class's photo count, at least 2.
    mode : {"auto", "thesis", "scalable"}, default="auto"
        ``"thesis"``: Gini best-split CART, one-vs-one ``SVC(kernel="linear")`` and a
        ``LogisticRegression`` meta-model on all ``5 K`` stacked columns.  ``"scalable"``: a
        randomised entropy tree, the one-vs-rest linear SVM and a logistic meta-model with one
        coefficient per base model shared by all classes, all linear in the number of people
        ``K``.  ``"auto"``: ``"thesis"`` up to :data:`MAX_THESIS_CLASSES` people.
    n_jobs : int or None, default=None
        Threads for fitting the folds of logistic regression, the tree and naive Bayes side by
        side (k-NN searches neighbours on every core anyway; the SVM stays on one thread, see
        :class:`CalibratedSVC`).  ``-1`` uses every core; on a small gallery starting threads costs
        more than it saves.  Results do not depend on it.
    random_state : int or None, default=0
        Seed of the folds, the tree and the SVM.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
    base_models_ : dict of str to estimator
        The five base models fitted on all photos, keyed by :data:`STACKER_MODEL_NAMES`; they
        predict class indices into ``classes_``.
    meta_model_ : estimator
        The meta-model, fitted on the base models' out-of-fold outputs; it predicts class
        indices into ``classes_``.
    fold_accuracy_ : dict of str to list of float
        Per fold, the accuracy on the held-out photos of each base model trained on the other
        folds (its most probable class or largest decision value), and under ``"stacking"`` that
        of a meta-model trained on the other folds' rows of the out-of-fold outputs (the scalable
        meta-model: by one Newton step from the fit on all rows).  The latter is slightly
        optimistic compared with cross-validating the whole stacker (the outputs of the training
        rows come from base models that saw the held-out photos), a bias that is negligible for
        the scalable meta-model's 5 coefficients.
    fit_times_ : dict of str to float
        Seconds spent on each base model (folds and refit) and on the meta-model (``"meta"``);
        next to nothing for a base model shared with an earlier fit (:func:`shared_fits`).
    mode_ : {"thesis", "scalable"}
    n_splits_ : int
    """

    classes_: np.ndarray

    def __init__(
        self,
        *,
        cv: int = 5,
        mode: Literal["auto", "thesis", "scalable"] = "auto",
        n_jobs: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.cv = cv
        self.mode = mode
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Self:
        """Train the five base models and the meta-model.

        Parameters
        ----------
        X : array-like of shape (n, d)
        y : array-like of shape (n,)
            Person ids; every person needs at least 2 photos.
        progress, cancel : callable, optional
            See the module documentation.  Cancellation is checked before every fold of every
            base model.

        Returns
        -------
        self
        """
        with _monitoring(progress, cancel) as monitor:
            started = time.perf_counter()
            X_arr, y_arr, classes, y_index, counts = _validated_training_set(self, X, y)
            requested = _check_int("cv", self.cv, 2)
            mode = _resolve_auto(
                _check_choice("mode", self.mode, ("auto", "thesis", "scalable")),
                len(classes),
                "thesis",
                "scalable",
            )
            n_classes = len(classes)
            n_splits = _adapted_n_splits(requested, counts)
            folds = _stratified_folds(n_splits, self.random_state, y_index)
            data = _fold_data(X_arr, y_index, n_classes, folds)
            base = _stacker_base_models(mode, _knn_neighbors(data.folds), self.n_jobs, self.random_state)
            steps = len(base) * (n_splits + 1) + 1
            done = [0]

            def tick(message: str) -> None:
                monitor.report(done[0] / steps, message)
                done[0] += 1

            tick(f"Training the stacking ensemble ({mode}, {n_splits} folds)")
            models: dict[str, BaseEstimator] = {}
            outputs: list[NDArray[np.float64]] = []
            fold_accuracy: dict[str, list[float]] = {}
            times: dict[str, float] = {}
            with _blas_threads_for(len(y_arr), n_classes):
                for name, learner in base:
                    named = _prefixed(tick, f"Cross-validating {name}")
                    # The SVM has its own threads; k-NN searches neighbours on every core anyway.
                    jobs = None if name in ("svm", "knn") else self.n_jobs
                    cv, models[name], times[name] = _cross_validate(
                        learner, data, _STACK_METHODS[name], named, refit=True, n_jobs=jobs
                    )
                    outputs.append(cv.outputs)
                    fold_accuracy[name] = list(cv.fold_accuracy)
                t0 = time.perf_counter()
                tick("Training the meta-model")
                meta, fold_accuracy["stacking"] = self._fit_meta(mode, outputs, data)
                times["meta"] = time.perf_counter() - t0
            self.base_models_ = models
            self.meta_model_ = meta
            self.fold_accuracy_ = fold_accuracy
            self.fit_times_ = times
            self.classes_ = classes
            self.mode_ = mode
            self.n_splits_ = n_splits
            monitor.report(1.0, "Stacking ensemble trained")
            _log_trained(f"Stacker ({mode}, {n_splits} folds)", len(y_arr), n_classes, started)
        return self

    @staticmethod
    def _fit_meta(
        mode: str, outputs: list[NDArray[np.float64]], data: _FoldData
    ) -> tuple[BaseEstimator, list[float]]:
        """The meta-model on all out-of-fold rows, and its accuracy per fold (see ``fold_accuracy_``)."""
        y_index, n_classes = data.y_index, data.n_classes
        accuracy = []
        if mode == "scalable" and n_classes >= 3:
            stacked = np.stack(outputs)  # decision values and probabilities are all (n, K) here
            shared = _SharedLogisticRegression()._fit_stacked(stacked, np.arange(n_classes), y_index)
            _check_cancelled()
            refitted = _shared_logistic_fold_coef(stacked, y_index, shared.coef_, float(shared.C), data.folds)
            for coef, (_, test) in zip(refitted, data.folds):
                logits = np.tensordot(coef, stacked[:, test], axes=1)
                accuracy.append(float(np.mean(np.argmax(logits, axis=1) == y_index[test])))
            return shared, accuracy
        features = _stacked(outputs, list(STACKER_MODEL_NAMES), n_classes)
        final = LogisticRegression(max_iter=1000)
        for train, test in data.folds:
            _check_cancelled()
            fold_model = clone(final).fit(features[train], y_index[train])
            accuracy.append(float(np.mean(fold_model.predict(features[test]) == y_index[test])))
        return final.fit(features, y_index), accuracy

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Meta-model probabilities ``(n, K)``, columns in the order of ``classes_``."""
        if "stack_" in self.__dict__:  # a model saved when this wrapped a StackingClassifier
            return self._inner_proba("stack_", X)
        check_is_fitted(self)
        X_arr = validate_data(self, X, dtype=np.float64, reset=False)
        n_classes = len(self.classes_)
        outputs = [
            _outputs(model, X_arr, n_classes, _STACK_METHODS[name])
            for name, model in self.base_models_.items()
        ]
        if isinstance(self.meta_model_, _SharedLogisticRegression):
            return self.meta_model_._proba_from_blocks(outputs)  # no (n, 5 K) copy: 400 MB at 10,000 x 1,000
        proba = self.meta_model_.predict_proba(_stacked(outputs, list(self.base_models_), n_classes))
        return np.asarray(proba, dtype=np.float64)


def _prefixed(tick: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: tick(f"{prefix}, {message}")


def _stacked(outputs: Sequence[np.ndarray], names: Sequence[str], n_classes: int) -> NDArray[np.float64]:
    """The meta-model's input, as ``StackingClassifier`` builds it from the base models' outputs.

    Two-class decision values become one column, and two-class probabilities keep only the
    second (the first is one minus it).
    """
    columns = []
    for name, out in zip(names, outputs):
        if out.ndim == 1:
            columns.append(out.reshape(-1, 1))
        elif _STACK_METHODS[name] == "predict_proba" and n_classes == 2:
            columns.append(out[:, 1:])
        else:
            columns.append(out)
    return np.hstack(columns)


def stacker_cv_scores(
    X: ArrayLike,
    y: ArrayLike,
    n_splits: int = 10,
    n_repeats: int = 3,
    random_state: int | None = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    *,
    cv: int = 5,
    mode: Literal["auto", "thesis", "scalable"] = "auto",
    n_jobs: int | None = None,
) -> dict[str, NDArray[np.float64]]:
    """Accuracy of each stacked model and of the stack over repeated stratified k-fold.

    The thesis's evaluation: for every fold, a :class:`Stacker` is trained on the training part
    and each of its five base models (fitted on the whole training part, exactly as standalone
    models with the same settings would be) and the stack itself are scored on the held-out part.
    Print ``f"{name} {s.mean():.3f} ({s.std():.3f})"`` per key for the thesis's table.

    Parameters
    ----------
    X : array-like of shape (n, d)
    y : array-like of shape (n,)
    n_splits : int, default=10
        Requested folds, reduced to the smallest class's photo count (at least 2).
    n_repeats : int, default=3
    random_state : int or None, default=0
    progress, cancel : callable, optional
        Reported and checked once per fold (and inside each fold's stacker).
    cv, mode, n_jobs
        Passed to :class:`Stacker`.

    Returns
    -------
    dict of str to ndarray of shape (n_splits_used * n_repeats,)
        Keys ``"lr"``, ``"knn"``, ``"cart"``, ``"svm"``, ``"bayes"``, ``"stacking"``.

    Raises
    ------
    TrainingDataError
        Fewer than 2 people, or a training fold would keep fewer than 2 photos of someone
        (with 10-fold that needs 3+ photos per person).
    """
    splits_requested = _check_int("n_splits", n_splits, 2)
    repeats = _check_int("n_repeats", n_repeats, 1)
    with _monitoring(progress, cancel) as monitor:
        X_arr, y_arr = check_X_y(X, y, dtype=np.float64)
        classes, y_index, counts = _label_counts(y_arr)
        _require_trainable(classes, counts)
        k = _adapted_n_splits(splits_requested, counts)
        splitter = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=random_state)
        splits = list(splitter.split(X_arr, y_index))
        _require_fold_photos(classes, y_index, splits, "Cross-validating the stacker")
        scores = {key: np.zeros(len(splits)) for key in _STACKER_CV_KEYS}
        for i, (train, test) in enumerate(splits):
            monitor.report(i / len(splits), f"Fold {i + 1} of {len(splits)}")
            model = Stacker(cv=cv, mode=mode, n_jobs=n_jobs, random_state=random_state)
            model.fit(X_arr[train], y_arr[train])
            for name in STACKER_MODEL_NAMES:
                predicted = model.classes_[model.base_models_[name].predict(X_arr[test])]
                scores[name][i] = np.mean(predicted == y_arr[test])
            scores["stacking"][i] = np.mean(model.predict(X_arr[test]) == y_arr[test])
        monitor.report(1.0, "Cross-validation finished")
    log.info(
        "stacker_cv_scores: %s",
        ", ".join(f"{key} {value.mean():.3f} ({value.std():.3f})" for key, value in scores.items()),
    )
    return scores


def _require_fold_photos(
    classes: np.ndarray,
    y_index: NDArray[np.intp],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    what: str,
) -> None:
    """Raise unless every training fold keeps at least 2 photos of every person."""
    for train, _ in splits:
        kept = np.bincount(y_index[train], minlength=len(classes))
        if kept.min() < 2:
            person = int(np.argmin(kept))
            total = int(np.sum(y_index == person))
            advice = (
                "add photos so that everyone has at least 3"
                if total < 3
                else "use more folds, or add photos of them"
            )
            raise TrainingDataError(
                f"{what} needs at least 2 photos of every person in each training fold, but one fold "
                f"keeps only {int(kept.min())} of the {total} photos of person {str(classes[person])!r}; "
                f"{advice}."
            )


# --------------------------------------------------------------------------------------------
# 3. (Deep) Super Learner
# --------------------------------------------------------------------------------------------


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

    def _base_learner_names(self, n_classes: int) -> tuple[str, ...]:
        if self.base_learners is None:
            return BASE_LEARNER_NAMES if n_classes <= MAX_THESIS_CLASSES else SCALABLE_BASE_LEARNERS
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
            "SVC": lambda: CalibratedSVC(cv=self.calibration_cv, n_jobs=jobs, random_state=rs),
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
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Self:
        """Cross-validate the base learners, fit the weights and refit (layer by layer if deep).

        Parameters
        ----------
        X : array-like of shape (n, d)
        y : array-like of shape (n,)
            Person ids.  Every person needs at least 2 photos, and 3 when the SVC base learner
            is used (it calibrates inside each fold, so each training fold must keep 2).
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
            n_splits = _adapted_n_splits(requested, counts)
            folds = _stratified_folds(n_splits, self.random_state, y_index)
            if "SVC" in names:
                _require_fold_photos(classes, y_index, folds, "The Super Learner's SVC base learner")
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
        return blended

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


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


CLASSIFIERS: dict[str, Callable[..., Classifier]] = {
    "svc": CalibratedSVC,
    "stacker": Stacker,
    "super_learner": SuperLearner,
}
"""Classifier name (as in the configuration) to factory."""


def make_classifier(name: str, **params: Any) -> Classifier:
    """Build the classifier called ``name`` with constructor ``params``.

    Parameters
    ----------
    name : str
        A key of :data:`CLASSIFIERS`.
    **params
        Constructor parameters, e.g. ``n_jobs=2``.

    Raises
    ------
    ModelError
        Unknown name or parameter.
    """
    try:
        factory = CLASSIFIERS[name]
    except (KeyError, TypeError):
        raise ModelError(
            f"Unknown classifier {name!r}; choose one of {', '.join(sorted(CLASSIFIERS))}."
        ) from None
    try:
        return factory(**params)
    except TypeError as err:
        raise ModelError(f"Classifier {name!r} does not accept these parameters: {err}.") from err
