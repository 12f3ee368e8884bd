"""The one-vs-rest linear SVM of large galleries, with liblinear called directly for its small solves.

:class:`_OvRLinearSVC` finds ``LinearSVC``'s solution class by class on working sets;
:func:`_binary_linear_svm` solves each two-class problem as ``LinearSVC.fit`` would, to the bit,
without its per-call overhead.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from core.recognition.classifiers.base import (
    TrainingDataError,
    _argmax_labels,
    _check_cancelled,
    _label_counts,
)

log = logging.getLogger(__name__)


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
