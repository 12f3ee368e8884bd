"""The stacker's meta-model for large galleries: a logistic regression with one coefficient per base
model, shared by all classes, fitted by L-BFGS and refitted per fold by one Newton step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from core.recognition.classifiers.base import (
    _argmax_labels,
    _label_counts,
    _ParameterError,
    _softmax_in_place,
)

log = logging.getLogger(__name__)


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
