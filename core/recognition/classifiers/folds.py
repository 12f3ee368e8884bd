"""Folds and cross-validation of base models, shared between the classifiers of one training run.

The three classifiers cross-validate their base models on the same shuffled stratified folds
(:func:`_stratified_folds`).  :func:`_cross_validate` fits a base model on each training fold,
keeps its out-of-fold outputs and per-fold accuracy, and, inside a :func:`shared_fits` block,
hands the same results to any later classifier that asks for the same model on the same photos
and folds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from joblib import effective_n_jobs
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import StratifiedKFold

from core.recognition.classifiers.base import _LOCAL, _aligned_proba, _check_cancelled

_KNN_NEIGHBORS = 5


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


def _knn_neighbors(folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> int:
    """k of k-NN: 5, but never more than the smallest training fold holds."""
    return max(1, min([_KNN_NEIGHBORS, *(len(train) for train, _ in folds)]))


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


def _prefixed(tick: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: tick(f"{prefix}, {message}")
