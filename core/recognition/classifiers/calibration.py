"""The SVC's calibration of decision values: temperature scaling by Newton's method, and a stand-in
classifier that lets ``CalibratedClassifierCV`` calibrate decision values computed out of fold.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from core.recognition.classifiers.base import _softmax
from core.recognition.classifiers.folds import _output_labels


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


CONFIDENCE_CAP = 0.99
"""The sharpness bound of every temperature FaceGate fits (issue 12): the inverse temperature is at
most the one at which the median out-of-fold face gets this probability for its most probable
person.  Without it a training set whose out-of-fold scores separate everyone (a small, clean
gallery) makes the temperature go to zero and every probability 1.00, wrong names included."""


def temperature_cap(logits: ArrayLike, cap: float = CONFIDENCE_CAP) -> float:
    """The largest inverse temperature allowed for these out-of-fold logits (see :data:`CONFIDENCE_CAP`).

    The top probability of every row grows with ``beta``, so their median does: bisection on
    ``log(beta)`` over scikit-learn's bounds ``exp(-10) .. exp(10)``.
    """
    values = np.asarray(logits, dtype=np.float64)
    low, high = -10.0, 10.0

    def median_top(log_beta: float) -> float:
        return float(np.median(_softmax(np.exp(log_beta) * values).max(axis=1)))

    if median_top(high) <= cap:
        return float(np.exp(high))
    if median_top(low) >= cap:
        return float(np.exp(low))
    for _ in range(60):
        middle = (low + high) / 2
        if median_top(middle) > cap:
            high = middle
        else:
            low = middle
    return float(np.exp(low))


def _fit_temperature(scores: ArrayLike, y_index: NDArray[np.intp], *, bounded: bool = True) -> float:
    """The inverse temperature fitted on out-of-fold ``scores``, at most :func:`temperature_cap`'s.

    With ``bounded=False``, :func:`_fit_unbounded` (scikit-learn's answer, or ``None``).
    """
    beta = _fit_unbounded(scores, y_index)
    if not bounded:
        return beta  # type: ignore[return-value]
    cap = temperature_cap(_temperature_logits(scores))
    return cap if beta is None else min(beta, cap)


def _fit_unbounded(scores: ArrayLike, y_index: NDArray[np.intp]) -> float | None:
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
