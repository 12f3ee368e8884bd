"""Classifier 1, ``"svc"``: a linear SVM with calibrated probabilities (:class:`CalibratedSVC`)."""

from __future__ import annotations

import time
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted, validate_data

from core.recognition.classifiers.base import (
    CancelCallback,
    ProgressCallback,
    _blas_threads_for,
    _check_choice,
    _check_int,
    _check_positive,
    _log_trained,
    _Monitor,
    _monitoring,
    _ProbabilisticClassifier,
    _validated_training_set,
)
from core.recognition.classifiers.calibration import _DecisionValues, _fit_temperature, _TemperatureScaling
from core.recognition.classifiers.folds import (
    _CancellableStratifiedKFold,
    _cross_validate,
    _fold_data,
    _groups,
    _stratified_folds,
    adapted_splits,
)
from core.recognition.classifiers.linear_svm import _OvRLinearSVC


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
        Requested calibration folds (shuffled, stratified per person: see
        :func:`core.recognition.classifiers.folds._stratified_folds`).
    method : {"auto", "sigmoid", "isotonic", "temperature"}, default="auto"
        Calibration method of :class:`~sklearn.calibration.CalibratedClassifierCV`.  ``"auto"``
        is ``"temperature"`` (issue 12): one parameter for all classes, fitted on the out-of-fold
        decision values, with the sharpness bounded (:func:`_fit_temperature`).  ``"sigmoid"``
        (Platt scaling, as libsvm's ``probability=True`` and the thesis) fits one-vs-rest
        sigmoids to a handful of photos per person: on the 5-celebrity set with 2 photos each
        they said 0.79 on average for faces that were all right (expected calibration error 0.21).
    ensemble : bool, default=False
        ``False``: one SVM on all data (the behaviour of ``probability=True``).  ``True``: average
        the ``cv`` calibrated fold models.
    multi_class : {"auto", "ovo", "ovr"}, default="auto"
        ``"ovo"``: :class:`~sklearn.svm.SVC` with a linear kernel (libsvm, one-vs-one), as in the
        thesis.  Its ``K (K - 1) / 2`` pairwise machines make prediction quadratic in the number of
        people ``K``.  ``"ovr"``: a one-vs-rest linear SVM with ``LinearSVC``'s objective, solved
        on working sets (linear in ``K``).  ``"auto"`` is ``"ovr"`` (issue 12): its decision values
        are margins that temperature scaling can calibrate, where one-vs-one's are vote counts.
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
        groups: ArrayLike | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Self:
        """Train the SVM and its calibration.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Embeddings.
        y : array-like of shape (n,)
            Person ids; a person may have a single photo.
        groups : array-like of shape (n,), optional
            The photo each row comes from: rows of one photo (the photo and its augmented copies)
            are held out together by every cross-validation (see
            :func:`core.recognition.classifiers.folds.fold_units`).  Without it each row is a photo.
        progress, cancel : callable, optional
            See the module documentation.  ``cancel`` is polled before training, before each
            calibration fold and, for the one-vs-rest SVM, every 128 people.

        Returns
        -------
        self

        Raises
        ------
        TrainingDataError
            Fewer than 2 people.
        TrainingCancelled
            ``cancel()`` returned true.
        """
        with _monitoring(progress, cancel) as monitor:
            started = time.perf_counter()
            X_arr, y_arr, classes, y_index, _counts = _validated_training_set(self, X, y)
            C = _check_positive("C", self.C)
            requested = _check_int("cv", self.cv, 2)
            method = _check_choice("method", self.method, ("auto", "sigmoid", "isotonic", "temperature"))
            method = "temperature" if method == "auto" else method
            _check_choice("ensemble", self.ensemble, (False, True))
            multi_class = _check_choice("multi_class", self.multi_class, ("auto", "ovo", "ovr"))
            multi_class = "ovr" if multi_class == "auto" else multi_class
            group_of = _groups(groups, len(y_arr))
            n_splits = adapted_splits(requested, y_index, group_of)
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
                        svm, method, X_arr, y_index, len(classes), n_splits, monitor, times, group_of
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
        groups: NDArray[Any] | None = None,
    ) -> tuple[BaseEstimator, list[float], CalibratedClassifierCV | _TemperatureScaling]:
        """``CalibratedClassifierCV(svm, cv=folds, ensemble=False)``, with the folds done by hand.

        The out-of-fold decision values are then also the stacker's (the same SVM on the same
        folds, shared in :func:`shared_fits`), and give the per-fold accuracy.  Records seconds
        in ``times``.
        """
        data = _fold_data(X, y_index, n_classes, _stratified_folds(n_splits, self.random_state, y_index, groups))
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
