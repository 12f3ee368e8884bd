"""Calibration of a classifier's probabilities: expected calibration error, Brier score, reliability curve.

Everything here is pure numpy on a probability matrix ``proba`` of shape ``(n, K)`` (rows are faces,
columns the model's ``classes_``) and ``y_index`` of shape ``(n,)``: the column of each face's true
person, or ``-1`` when the true person is **not among the model's classes** (a stranger, or someone
enrolled after the model was trained).  Such a face has no right answer the model could give, so it is
counted explicitly as *wrong*: its confidence is its largest probability, its accuracy 0, every name the
model gives it is a wrong name, and its Brier target is all zeros.  :func:`label_indices` builds
``y_index`` from names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

UNKNOWN_INDEX = -1
"""``y_index`` of a face whose true person is not among the model's classes."""

CONFIDENT = 0.9
"""A wrong name given with at least this probability is a *confident* wrong name."""


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin figures of a reliability diagram over equal-width confidence bins on [0, 1].

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
        Bin ``b`` holds confidences in ``(edges[b], edges[b + 1]]`` (the first bin also holds 0).
    confidence : ndarray of shape (n_bins,)
        Mean top-label probability of the faces in each bin (NaN for an empty bin).
    accuracy : ndarray of shape (n_bins,)
        Share of those faces whose top label is their true person (NaN for an empty bin).
    count : ndarray of shape (n_bins,)
        Number of faces in each bin.
    """

    edges: NDArray[np.float64]
    confidence: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    count: NDArray[np.int64]


def label_indices(y: Sequence[Any] | ArrayLike, classes: Sequence[Any] | ArrayLike) -> NDArray[np.intp]:
    """Column of each true name in ``classes``, or :data:`UNKNOWN_INDEX` (-1) if it is not among them."""
    lookup = {str(c): i for i, c in enumerate(np.asarray(classes).tolist())}
    return np.array([lookup.get(str(t), UNKNOWN_INDEX) for t in np.asarray(y).tolist()], dtype=np.intp)


def _checked(proba: ArrayLike, y_index: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    p = np.atleast_2d(np.asarray(proba, dtype=np.float64))
    y = np.asarray(y_index, dtype=np.intp).ravel()
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"{p.shape[0]} probability rows but {y.shape[0]} true labels")
    if np.any(y >= p.shape[1]) or np.any(y < UNKNOWN_INDEX):
        raise ValueError(f"true labels must be column indices in [0, {p.shape[1]}) "
                         f"or {UNKNOWN_INDEX} (unknown)")
    return p, y


def _top_label(p: NDArray[np.float64], y: NDArray[np.intp]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Confidence (largest probability) and correctness of the top label; unknown truths are wrong."""
    confidence = p.max(axis=1)
    correct = (np.argmax(p, axis=1) == y) & (y != UNKNOWN_INDEX)
    return confidence, correct


def reliability_curve(proba: ArrayLike, y_index: ArrayLike, n_bins: int = 15) -> ReliabilityCurve:
    """Mean confidence, accuracy and face count per equal-width confidence bin (top label).

    Parameters
    ----------
    proba : array-like of shape (n, K)
    y_index : array-like of shape (n,)
        True column per face, ``-1`` if the true person is not among the model's classes (counted wrong).
    n_bins : int, default=15
    """
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    p, y = _checked(proba, y_index)
    confidence, correct = _top_label(p, y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins (lo, hi]: a confidence of exactly 1.0 lands in the last bin, 0 in the first.
    which = np.clip(np.ceil(confidence * n_bins).astype(np.intp) - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.int64)
    sum_conf = np.bincount(which, weights=confidence, minlength=n_bins)
    sum_acc = np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, sum_conf / count, np.nan)
        mean_acc = np.where(count > 0, sum_acc / count, np.nan)
    return ReliabilityCurve(edges, mean_conf, mean_acc, count)


def expected_calibration_error(proba: ArrayLike, y_index: ArrayLike, n_bins: int = 15) -> float:
    """Top-label expected calibration error (ECE).

    ``sum_b (n_b / n) * |accuracy_b - confidence_b|`` over equal-width confidence bins, where confidence
    is each face's largest probability and accuracy whether that label is its true person.  0 is
    perfectly calibrated; a model always 100 % sure and right half the time scores 0.5.  Faces whose true
    person is not among the model's classes (``y_index == -1``) count as wrong.  NaN for no faces.
    """
    curve = reliability_curve(proba, y_index, n_bins)
    n = int(curve.count.sum())
    if n == 0:
        return float("nan")
    filled = curve.count > 0
    gap = np.abs(curve.accuracy[filled] - curve.confidence[filled])
    return float(np.sum(curve.count[filled] * gap) / n)


def brier_score(proba: ArrayLike, y_index: ArrayLike) -> float:
    """Multi-class Brier score: mean over faces of ``sum_k (p_k - onehot_k)^2``, summed over classes.

    The standard multi-class definition (Brier 1950), **not** divided by the number of classes: it runs
    from 0 (one-hot on the true person) to 2 (one-hot on a wrong person); a uniform prediction over K
    classes scores ``(K - 1) / K``.  A face whose true person is not among the classes has an all-zero
    target, so it scores ``sum_k p_k^2`` (1 when the model is sure of anyone).  NaN for no faces.
    """
    p, y = _checked(proba, y_index)
    if p.shape[0] == 0:
        return float("nan")
    target = np.zeros_like(p)
    known = y != UNKNOWN_INDEX
    target[np.flatnonzero(known), y[known]] = 1.0
    return float(np.mean(np.sum((p - target) ** 2, axis=1)))


def wrong_name_probability(proba: ArrayLike, y_index: ArrayLike) -> NDArray[np.float64]:
    """Per face, the largest probability given to a name that is not its true person.

    For a face whose true person is not among the classes, every name is wrong: its largest probability.
    """
    p, y = _checked(proba, y_index)
    wrong = p.copy()
    known = np.flatnonzero(y != UNKNOWN_INDEX)
    wrong[known, y[known]] = -np.inf
    # initial=0: with a single class that is the truth, no wrong name got any probability.
    return np.asarray(np.max(wrong, axis=1, initial=0.0), dtype=np.float64)


def confident_wrong_names(proba: ArrayLike, y_index: ArrayLike, threshold: float = CONFIDENT) -> int:
    """Number of faces whose top probability is at least ``threshold`` and names the wrong person.

    Faces whose true person is not among the classes count when the model is that sure of anyone.
    """
    p, y = _checked(proba, y_index)
    confidence, correct = _top_label(p, y)
    return int(np.sum((confidence >= threshold) & ~correct))


def calibration_summary(proba: ArrayLike, y_index: ArrayLike, n_bins: int = 15,
                        threshold: float = CONFIDENT) -> dict[str, Any]:
    """ECE, Brier score, wrong-name figures and the reliability curve's non-empty bins, ready for JSON."""
    p, y = _checked(proba, y_index)
    curve = reliability_curve(p, y, n_bins)
    wrong = wrong_name_probability(p, y)
    confidence, correct = _top_label(p, y)
    return {
        "faces": int(p.shape[0]),
        "faces_not_in_classes": int(np.sum(y == UNKNOWN_INDEX)),
        "top_label_accuracy": float(np.mean(correct)) if len(y) else float("nan"),
        "mean_confidence": float(np.mean(confidence)) if len(y) else float("nan"),
        "ece": expected_calibration_error(p, y, n_bins),
        "brier": brier_score(p, y),
        "max_wrong_probability": float(wrong.max()) if len(wrong) else float("nan"),
        "confident_wrong": confident_wrong_names(p, y, threshold),
        "confident_threshold": threshold,
        "n_bins": n_bins,
        "bins": [
            {"low": float(curve.edges[b]), "high": float(curve.edges[b + 1]),
             "confidence": float(curve.confidence[b]), "accuracy": float(curve.accuracy[b]),
             "count": int(curve.count[b])}
            for b in range(n_bins) if curve.count[b] > 0
        ],
    }
