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

Modules
-------
:mod:`.base`
    What every classifier shares: the ``fit`` callbacks, :data:`MAX_THESIS_CLASSES`, the errors,
    progress and cancellation, validation of training sets and parameters, :class:`Classifier`.
:mod:`.folds`
    Stratified folds, cross-validation of base models and :func:`shared_fits`.
:mod:`.svc`
    Classifier 1, :class:`CalibratedSVC`.
:mod:`.stacker`
    Classifier 2, :class:`Stacker`, and :func:`stacker_cv_scores`.
:mod:`.super_learner`
    Classifier 3, :class:`SuperLearner` (and its Deep option).
:mod:`.linear_svm`
    The one-vs-rest linear SVM of large galleries, with liblinear called directly.
:mod:`.calibration`
    Temperature scaling by Newton's method, and calibration of out-of-fold decision values.
:mod:`.shared_logistic`
    The stacker's class-shared logistic meta-model for large galleries.
:mod:`.naive_bayes`
    Gaussian naive Bayes scored by matrix products.

This module holds the registry (:data:`CLASSIFIERS`, :func:`make_classifier`) and re-exports the
names that code elsewhere, saved models and the tests import from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import ModelError

# Besides the public API (``__all__``), the ``X as X`` imports below keep two kinds of private
# names attributes of this package.  "pickled": saved models are pickles that name the classes
# they hold by module; models saved before this package was split name them here
# (``core.recognition.classifiers._GaussianNB``), older ones under ``core.classifiers``, which
# core.recognition.legacy resolves as attributes of this package.  So every class a fitted
# classifier may hold must stay reachable here.  "tests": internals tests/core/test_classifiers.py
# reaches through ``classifiers.<name>``.
from core.recognition.classifiers import base as base  # tests patch base.MAX_THESIS_CLASSES, where it is read
from core.recognition.classifiers.base import (
    MAX_THESIS_CLASSES,
    CancelCallback,
    Classifier,
    ProgressCallback,
    TrainingCancelled,
    TrainingDataError,
)
from core.recognition.classifiers.calibration import _DecisionValues as _DecisionValues  # pickled
from core.recognition.classifiers.calibration import _fit_temperature as _fit_temperature  # tests
from core.recognition.classifiers.calibration import _TemperatureScaling as _TemperatureScaling  # pickled
from core.recognition.classifiers.folds import (  # pickled: CalibratedSVC(ensemble=True) holds it
    _CancellableStratifiedKFold as _CancellableStratifiedKFold,
)
from core.recognition.classifiers.folds import _knn_neighbors as _knn_neighbors  # tests
from core.recognition.classifiers.folds import _stratified_folds as _stratified_folds  # tests
from core.recognition.classifiers.folds import shared_fits
from core.recognition.classifiers.linear_svm import _binary_linear_svm as _binary_linear_svm  # tests
from core.recognition.classifiers.linear_svm import _OvRLinearSVC as _OvRLinearSVC  # pickled
from core.recognition.classifiers.naive_bayes import _GaussianNB as _GaussianNB  # pickled
from core.recognition.classifiers.shared_logistic import (  # tests
    _shared_logistic_coef as _shared_logistic_coef,
)
from core.recognition.classifiers.shared_logistic import (  # tests
    _shared_logistic_fold_coef as _shared_logistic_fold_coef,
)
from core.recognition.classifiers.shared_logistic import (  # pickled
    _SharedLogisticRegression as _SharedLogisticRegression,
)
from core.recognition.classifiers.stacker import STACKER_MODEL_NAMES, Stacker, cv_splits, stacker_cv_scores
from core.recognition.classifiers.stacker import _stacker_base_models as _stacker_base_models  # tests
from core.recognition.classifiers.super_learner import (
    BASE_LEARNER_NAMES,
    SCALABLE_BASE_LEARNERS,
    SuperLearner,
)
from core.recognition.classifiers.super_learner import _simplex_weights as _simplex_weights  # tests
from core.recognition.classifiers.svc import CalibratedSVC  # pickled, as are Stacker and SuperLearner

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
    "cv_splits",
    "make_classifier",
    "shared_fits",
    "stacker_cv_scores",
]


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
