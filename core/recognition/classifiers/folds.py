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
    n_splits: int,
    random_state: int | None,
    y_index: NDArray[np.intp],
    groups: NDArray[Any] | None = None,
) -> tuple[tuple[NDArray[np.intp], NDArray[np.intp]], ...]:
    """The shuffled folds every classifier uses (the same ones for the same seed and data).

    When every person has at least ``n_splits`` photos and no photo brings augmented copies
    (``groups`` is ``None`` or one row each), these are scikit-learn's shuffled
    ``StratifiedKFold``, as before.  Otherwise (issue 12: people enrolled with one, two or three
    photos) the folds adapt per person, see :func:`_per_class_folds`.
    """
    counts = np.bincount(y_index)
    plain = groups is None or len(np.unique(groups)) == len(groups)
    if plain and counts[counts > 0].min() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        return tuple(
            (train.astype(np.intp), test.astype(np.intp))
            for train, test in splitter.split(np.zeros((len(y_index), 1)), y_index)
        )
    return _per_class_folds(n_splits, random_state, y_index, groups)


def _groups(groups: Any, n: int) -> NDArray[Any] | None:
    """``groups`` as an array of ``n`` values (``None`` stays ``None``)."""
    if groups is None:
        return None
    array = np.asarray(groups)
    if array.shape != (n,):
        from core.recognition.classifiers.base import TrainingDataError

        raise TrainingDataError(f"groups must give one photo per row: {array.shape} for {n} rows.")
    return array


def fold_units(y_index: NDArray[np.intp], groups: NDArray[Any] | None = None) -> list[list[NDArray[np.intp]]]:
    """Per person (class index), the units a fold holds out together.

    A unit is a photo with its augmented copies (the rows sharing a ``groups`` value), so a held-out
    photo never has its own flipped or shifted copy in the training fold.  A person with a single
    photo is the exception: their rows (the photo and its augmented copies) are held out one at a
    time, so that every fold still trains on them (otherwise each of their rows would be scored by
    a model that never saw them, and the meta-models and calibrations would learn that a person
    with one photo is never right).  Without ``groups`` every row is a unit.
    """
    units: list[list[NDArray[np.intp]]] = []
    for c in range(int(y_index.max()) + 1 if len(y_index) else 0):
        rows = np.flatnonzero(y_index == c).astype(np.intp)
        if groups is None:
            units.append([rows[i : i + 1] for i in range(len(rows))])
            continue
        g = np.asarray(groups)[rows]
        distinct = list(dict.fromkeys(g.tolist()))
        if len(distinct) >= 2:
            units.append([rows[g == value] for value in distinct])
        else:
            units.append([rows[i : i + 1] for i in range(len(rows))])
    return units


def adapted_splits(requested: int, y_index: NDArray[np.intp], groups: NDArray[Any] | None = None) -> int:
    """Folds to use: ``requested``, at most the largest number of units a person has, and at least 2."""
    largest = max((len(u) for u in fold_units(y_index, groups)), default=2)
    return max(2, min(int(requested), largest))


def _per_class_folds(
    n_splits: int,
    random_state: int | None,
    y_index: NDArray[np.intp],
    groups: NDArray[Any] | None,
) -> tuple[tuple[NDArray[np.intp], NDArray[np.intp]], ...]:
    """Folds that adapt to each person: their units (see :func:`fold_units`), shuffled, are dealt
    round-robin over the folds, each person starting where the previous one stopped.

    A person with fewer units than folds is held out in only as many folds as they have units, and
    is trained on in all the others; a person with one unit (one photo, no copies) is missing from
    the training fold that holds it out, and their out-of-fold outputs say so (see
    :func:`_outputs`).  Every fold holds something out as long as there are ``n_splits`` units
    in all.
    """
    rng = np.random.RandomState(random_state if random_state is not None else None)
    fold_of = np.zeros(len(y_index), dtype=np.intp)
    per_class = fold_units(y_index, groups)
    start = 0
    for c in rng.permutation(len(per_class)):
        units = per_class[c]
        for j, u in enumerate(rng.permutation(len(units))):
            fold_of[units[u]] = (start + j) % n_splits
        start = (start + len(units)) % n_splits
    folds = []
    for f in range(n_splits):
        test = np.flatnonzero(fold_of == f).astype(np.intp)
        train = np.flatnonzero(fold_of != f).astype(np.intp)
        if len(test) and len(train):
            folds.append((train, test))
    return tuple(folds)


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
    if scores.ndim == 1 and n_classes > 2:  # a training fold that kept only two of the people
        scores = np.stack([-scores, scores], axis=1)
    if scores.ndim == 2 and not np.array_equal(codes, np.arange(n_classes)):
        # A class missing from a training fold scores lowest (as in cross_val_predict).
        # A finite floor (one below the fold's lowest), not float64's minimum: the calibrations
        # fit on these values (issue 12: people with one photo are missing from some folds).
        floor = float(scores.min()) - 1.0 if scores.size else -1.0
        full = np.full((scores.shape[0], n_classes), floor)
        full[:, codes] = scores
        return full
    return scores


def _single_class_outputs(code: int, n: int, n_classes: int, method: str) -> NDArray[np.float64]:
    """What a model trained on one person's photos says: that person, for every face."""
    if method == "predict_proba":
        out = np.zeros((n, n_classes))
        out[:, code] = 1.0
        return out
    if n_classes == 2:
        return np.full(n, 1.0 if code == 1 else -1.0)
    out = np.full((n, n_classes), -2.0)
    out[:, code] = 1.0
    return out


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
        kept = np.unique(data.y_index[train])
        if len(kept) < 2:  # folds inside a small fold may keep one person only: they are all it knows
            out = _single_class_outputs(int(kept[0]), len(test), data.n_classes, method)
            return out, float(np.mean(_output_labels(out) == data.y_index[test]))
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
