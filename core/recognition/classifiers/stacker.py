"""Classifier 2, ``"stacker"``: the stacking ensemble of the thesis (:class:`Stacker`), and its
repeated cross-validation (:func:`stacker_cv_scores`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

from core.recognition.classifiers.base import (
    CancelCallback,
    ProgressCallback,
    _aligned_proba,
    _blas_threads_for,
    _check_cancelled,
    _check_choice,
    _check_int,
    _label_counts,
    _log_trained,
    _monitoring,
    _ProbabilisticClassifier,
    _require_trainable,
    _resolve_auto,
    _softmax,
    _validated_training_set,
)
from core.recognition.classifiers.calibration import _fit_temperature
from core.recognition.classifiers.folds import (
    _cross_validate,
    _fold_data,
    _FoldData,
    _groups,
    _knn_neighbors,
    _outputs,
    _prefixed,
    _stratified_folds,
    adapted_splits,
)
from core.recognition.classifiers.linear_svm import _OvRLinearSVC
from core.recognition.classifiers.naive_bayes import _GaussianNB
from core.recognition.classifiers.shared_logistic import _shared_logistic_fold_coef, _SharedLogisticRegression

log = logging.getLogger(__name__)


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
        Requested folds for the meta-model's training data (shuffled, stratified per person:
        see :func:`core.recognition.classifiers.folds._stratified_folds`).
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
    calibrate : bool, default=True
        Temperature-scale the meta-model's probabilities (issue 12): one inverse temperature fitted
        on the meta-models' out-of-fold probabilities (each fold's meta-model trained on the other
        folds' rows), bounded as the SVC's (:func:`core.recognition.classifiers.calibration.temperature_cap`).
        The logistic meta-model alone is under-confident on small galleries: on the 5-celebrity val
        faces, all named right, its expected calibration error was 0.08-0.10 with 1-5 training photos
        per person (0.03 with all), against 0.01-0.03 with the temperature.
        ``False`` gives exactly scikit-learn's ``StackingClassifier`` (the thesis).

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
    temperature_ : float or None
        The inverse temperature applied to the meta-model's log-probabilities (``None``: none).
    """

    classes_: np.ndarray

    def __init__(
        self,
        *,
        cv: int = 5,
        mode: Literal["auto", "thesis", "scalable"] = "auto",
        n_jobs: int | None = None,
        random_state: int | None = 0,
        calibrate: bool = True,
    ) -> None:
        self.calibrate = calibrate
        self.cv = cv
        self.mode = mode
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Self:
        """Train the five base models and the meta-model.

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
            See the module documentation.  Cancellation is checked before every fold of every
            base model.

        Returns
        -------
        self
        """
        with _monitoring(progress, cancel) as monitor:
            started = time.perf_counter()
            X_arr, y_arr, classes, y_index, _counts = _validated_training_set(self, X, y)
            requested = _check_int("cv", self.cv, 2)
            mode = _resolve_auto(
                _check_choice("mode", self.mode, ("auto", "thesis", "scalable")),
                len(classes),
                "thesis",
                "scalable",
            )
            n_classes = len(classes)
            group_of = _groups(groups, len(y_arr))
            n_splits = adapted_splits(requested, y_index, group_of)
            folds = _stratified_folds(n_splits, self.random_state, y_index, group_of)
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
                meta, fold_accuracy["stacking"], oof_logits = self._fit_meta(mode, outputs, data)
                self.temperature_ = (_fit_temperature(oof_logits, y_index)
                                     if self.calibrate and n_classes >= 2 else None)
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
    ) -> tuple[BaseEstimator, list[float], NDArray[np.float64]]:
        """The meta-model on all out-of-fold rows, its accuracy per fold (see ``fold_accuracy_``), and
        each row's logits (log-probabilities) from the meta-model of the folds that held it out."""
        y_index, n_classes = data.y_index, data.n_classes
        accuracy = []
        oof = np.zeros((len(y_index), n_classes))
        if mode == "scalable" and n_classes >= 3:
            stacked = np.stack(outputs)  # decision values and probabilities are all (n, K) here
            shared = _SharedLogisticRegression()._fit_stacked(stacked, np.arange(n_classes), y_index)
            _check_cancelled()
            refitted = _shared_logistic_fold_coef(stacked, y_index, shared.coef_, float(shared.C), data.folds)
            for coef, (_, test) in zip(refitted, data.folds):
                logits = np.tensordot(coef, stacked[:, test], axes=1)
                accuracy.append(float(np.mean(np.argmax(logits, axis=1) == y_index[test])))
                oof[test] = logits
            return shared, accuracy, oof
        features = _stacked(outputs, list(STACKER_MODEL_NAMES), n_classes)
        final = LogisticRegression(max_iter=1000)
        for train, test in data.folds:
            _check_cancelled()
            kept = np.unique(y_index[train])
            if len(kept) < 2:  # a small fold that kept one person
                proba = np.zeros((len(test), n_classes))
                proba[:, kept[0]] = 1.0
            else:
                fold_model = clone(final).fit(features[train], y_index[train])
                proba = _aligned_proba(fold_model, features[test], n_classes)
            accuracy.append(float(np.mean(np.argmax(proba, axis=1) == y_index[test])))
            oof[test] = np.log(np.clip(proba, 1e-300, 1.0))
        return final.fit(features, y_index), accuracy, oof

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
            proba = self.meta_model_._proba_from_blocks(outputs)  # no (n, 5 K) copy: 400 MB at 10,000 x 1,000
        else:
            proba = self.meta_model_.predict_proba(_stacked(outputs, list(self.base_models_), n_classes))
        proba = np.asarray(proba, dtype=np.float64)
        beta = getattr(self, "temperature_", None)  # absent in models saved before issue 12
        if beta is None:
            return proba
        return _softmax(beta * np.log(np.clip(proba, 1e-300, 1.0)))


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


def cv_splits(
    y_index: NDArray[np.intp],
    n_splits: int,
    n_repeats: int,
    random_state: int | None,
    groups: NDArray[Any] | None = None,
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """The splits of :func:`stacker_cv_scores` (and of the training checks' SVC accuracy).

    The thesis's ``RepeatedStratifiedKFold`` when everyone has ``n_splits`` photos or more and no
    photo has augmented copies; else, per repeat, folds that adapt per person
    (:func:`core.recognition.classifiers.folds._stratified_folds`).
    """
    counts = np.bincount(y_index)
    plain = groups is None or len(np.unique(groups)) == len(groups)
    if plain and counts[counts > 0].min() >= n_splits:
        splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
        return list(splitter.split(np.zeros((len(y_index), 1)), y_index))
    k = adapted_splits(n_splits, y_index, groups)
    seeds = np.random.RandomState(random_state).randint(0, 2**31 - 1, size=n_repeats)
    return [split for seed in seeds for split in _stratified_folds(k, int(seed), y_index, groups)]


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
    groups: ArrayLike | None = None,
    score_rows: ArrayLike | None = None,
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
        Requested folds.  When someone has fewer photos, the folds adapt per person instead
        (at most the largest photo count, at least 2; see ``folds._per_class_folds``).
    n_repeats : int, default=3
    random_state : int or None, default=0
    progress, cancel : callable, optional
        Reported and checked once per fold (and inside each fold's stacker).
    cv, mode, n_jobs
        Passed to :class:`Stacker`.
    groups
        The photo of each row (augmented copies share their photo's): see :func:`cv_splits`.
    score_rows
        Rows that count in the accuracy (e.g. the real photos, not their augmented copies); all by
        default.  A fold holding out none of them is scored on all its rows.

    Returns
    -------
    dict of str to ndarray of shape (n_splits_used * n_repeats,)
        Keys ``"lr"``, ``"knn"``, ``"cart"``, ``"svm"``, ``"bayes"``, ``"stacking"``.

    Raises
    ------
    TrainingDataError
        Fewer than 2 people.
    """
    splits_requested = _check_int("n_splits", n_splits, 2)
    repeats = _check_int("n_repeats", n_repeats, 1)
    with _monitoring(progress, cancel) as monitor:
        X_arr, y_arr = check_X_y(X, y, dtype=np.float64)
        classes, y_index, counts = _label_counts(y_arr)
        _require_trainable(classes, counts)
        group_of = _groups(groups, len(y_arr))
        splits = cv_splits(y_index, splits_requested, repeats, random_state, group_of)
        scored = np.ones(len(y_arr), bool) if score_rows is None else np.asarray(score_rows, bool)
        scores = {key: np.zeros(len(splits)) for key in _STACKER_CV_KEYS}
        for i, (train, test) in enumerate(splits):
            monitor.report(i / len(splits), f"Fold {i + 1} of {len(splits)}")
            model = Stacker(cv=cv, mode=mode, n_jobs=n_jobs, random_state=random_state)
            model.fit(X_arr[train], y_arr[train], groups=None if group_of is None else group_of[train])
            test = test[scored[test]] if scored[test].any() else test
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
