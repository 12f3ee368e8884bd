"""What the classifiers share: the ``fit`` contract, progress and cancellation, validation.

- the callbacks ``fit`` takes (:data:`ProgressCallback`, :data:`CancelCallback`) and the gallery
  size above which ``"auto"`` settings switch to the scalable parts (:data:`MAX_THESIS_CLASSES`);
- the errors training raises (:class:`TrainingCancelled`, :class:`TrainingDataError`);
- the per-thread monitor that reports progress and polls ``cancel`` (:func:`_monitoring`,
  :func:`_check_cancelled`) and the BLAS thread limit for small problems;
- the checks of training sets and constructor parameters;
- the plug-in point (:class:`Classifier`) and the base class of the three classifiers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from core.errors import ModelError

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------------------------
# Shared validation
# --------------------------------------------------------------------------------------------


def _label_counts(y: np.ndarray) -> tuple[np.ndarray, NDArray[np.intp], NDArray[np.intp]]:
    """Return ``classes, y_index, counts`` after checking the classification target."""
    check_classification_targets(y)
    classes, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
    return classes, y_index.astype(np.intp), counts.astype(np.intp)


def _require_trainable(classes: np.ndarray, counts: NDArray[np.intp], min_photos: int = 1) -> None:
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
    estimator: BaseEstimator, X: ArrayLike, y: ArrayLike, min_photos: int = 1
) -> tuple[NDArray[np.float64], np.ndarray, np.ndarray, NDArray[np.intp], NDArray[np.intp]]:
    """Validate ``X, y`` for ``estimator``; return ``X, y, classes, y_index, counts``."""
    X_arr, y_arr = validate_data(estimator, X, y, dtype=np.float64)
    classes, y_index, counts = _label_counts(y_arr)
    _require_trainable(classes, counts, min_photos)
    return X_arr, y_arr, classes, y_index, counts


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


# --------------------------------------------------------------------------------------------
# Shared helpers of the estimators
# --------------------------------------------------------------------------------------------


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


def _softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    return _softmax_in_place(np.array(logits, dtype=np.float64))


def _softmax_in_place(logits: np.ndarray) -> NDArray[np.float64]:
    """Row-wise softmax of a float array, overwriting it."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return np.asarray(logits)


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
        groups: ArrayLike | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Any:
        """Learn from embeddings ``X`` (n, d) and person ids ``y`` (n,); ``groups``: the photo of each row."""
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
