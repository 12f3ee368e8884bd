"""Tests of core.recognition.classifiers on synthetic FaceNet-like embeddings.

Embeddings are noisy copies of random unit "person centres" in 128 dimensions, L2-normalised
again, with string labels.  The noise (0.2 per dimension) is large enough that the models make
some mistakes and the Super Learner's weights are not degenerate.  Every warning is an error here,
so a deprecated scikit-learn call (``SVC(probability=True)``) or a convergence warning fails.
"""

from __future__ import annotations

import itertools
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import LinearSVC

from core.errors import ModelError
from core.recognition import classifiers
from core.recognition.classifiers import (
    BASE_LEARNER_NAMES,
    CLASSIFIERS,
    SCALABLE_BASE_LEARNERS,
    CalibratedSVC,
    Stacker,
    SuperLearner,
    TrainingCancelled,
    TrainingDataError,
    make_classifier,
    shared_fits,
    stacker_cv_scores,
)

pytestmark = pytest.mark.filterwarnings("error")

ROOT = Path(__file__).resolve().parents[2]

# Fewer trees and folds keep the Super Learner quick; the estimator logic is the same.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "svc": {},
    "stacker": {},
    "super_learner": {"n_estimators": 5, "n_splits": 3},
}


def gallery(
    n_people: int = 5, photos: int | list[int] = 14, noise: float = 0.2, seed: int = 0, dim: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of ``n_people`` (fixed centres) with ``photos`` each; ``seed`` varies the noise."""
    centres = np.random.default_rng(12345).normal(size=(n_people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    counts = [photos] * n_people if isinstance(photos, int) else photos
    rng = np.random.default_rng(seed)
    X = np.repeat(centres, counts, axis=0) + rng.normal(scale=noise, size=(sum(counts), dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    # Listed in reverse alphabetical order, so that classes_ (sorted) differs from first-seen order.
    names = np.array(
        [
            f"person_{chr(ord('z') - i)}" if n_people <= 26 else f"person_{n_people - i:03d}"
            for i in range(n_people)
        ]
    )
    return X.astype(np.float32), np.repeat(names, counts)


@pytest.fixture(scope="module")
def train() -> tuple[np.ndarray, np.ndarray]:
    return gallery(seed=0)


@pytest.fixture(scope="module")
def val() -> tuple[np.ndarray, np.ndarray]:
    return gallery(photos=10, seed=1)


@pytest.fixture(scope="module")
def fitted(train: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    return {name: make_classifier(name, **FAST_PARAMS[name]).fit(*train) for name in CLASSIFIERS}


def cancel_on_call(n: int) -> tuple[Callable[[], bool], list[int]]:
    """A ``cancel`` that returns True from its ``n``-th call on, and the list counting its calls."""
    calls = [0]

    def cancel() -> bool:
        calls[0] += 1
        return calls[0] >= n

    return cancel, calls


# --------------------------------------------------------------------------------------------
# Behaviour common to the three classifiers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classifier_is_accurate_and_probabilities_follow_classes(
    name: str,
    fitted: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
) -> None:
    model = fitted[name]
    X_val, y_val = val
    assert list(model.classes_) == sorted(set(train[1]))
    proba = model.predict_proba(X_val)
    assert proba.shape == (len(X_val), 5)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    # Column j is the probability of classes_[j]: the true person's column wins almost always.
    true_column = np.searchsorted(model.classes_, y_val)
    assert np.mean(np.argmax(proba, axis=1) == true_column) >= 0.9
    assert np.mean(proba[np.arange(len(y_val)), true_column]) > 0.5
    np.testing.assert_array_equal(model.predict(X_val), model.classes_[np.argmax(proba, axis=1)])
    assert model.score(X_val, y_val) >= 0.9


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_clone_refits_to_exactly_the_same_model(
    name: str, fitted: dict[str, Any], train: tuple[np.ndarray, np.ndarray]
) -> None:
    model = fitted[name]
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "classes_")
    # Seeded: a second fit gives bit-identical probabilities.
    np.testing.assert_array_equal(copy.fit(*train).predict_proba(train[0]), model.predict_proba(train[0]))


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_fitted_model_survives_pickling(
    name: str, fitted: dict[str, Any], val: tuple[np.ndarray, np.ndarray]
) -> None:
    restored = pickle.loads(pickle.dumps(fitted[name]))
    np.testing.assert_array_equal(restored.predict_proba(val[0]), fitted[name].predict_proba(val[0]))


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_five_photos_per_person_and_four_people_work_with_progress(name: str) -> None:
    # An operator enrolled with 5 photos; open-set evaluation leaves one person out (4 classes).
    X, y = gallery(n_people=4, photos=5, noise=0.15)
    X_val, y_val = gallery(n_people=4, photos=5, noise=0.15, seed=1)
    reports: list[tuple[float, str]] = []
    params = {"n_estimators": 5} if name == "super_learner" else {}  # default folds: 5, calibration 4
    model = make_classifier(name, **params).fit(X, y, progress=lambda f, m: reports.append((f, m)))
    assert len(model.classes_) == 4
    assert model.score(X_val, y_val) >= 0.9
    fractions = [f for f, _ in reports]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert all(isinstance(message, str) and message for _, message in reports)


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_unequal_class_sizes_integer_labels_and_float64_input_work(name: str) -> None:
    # The seed dataset's class sizes (14-22) plus an operator with 5 photos.
    X, y = gallery(photos=[14, 17, 21, 5, 22], noise=0.15)
    codes = np.unique(y, return_inverse=True)[1] + 10
    model = make_classifier(name, **FAST_PARAMS[name]).fit(X.astype(np.float64), codes)
    assert list(model.classes_) == [10, 11, 12, 13, 14]
    X_val, y_val = gallery(photos=5, noise=0.15, seed=1)
    assert model.score(X_val, np.unique(y_val, return_inverse=True)[1] + 10) >= 0.9


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_people_with_one_two_and_three_photos_take_part_in_every_model(name: str) -> None:
    # Issue 12: nobody is left out for having few photos, and the folds adapt per person.
    X, y = gallery(photos=[5, 5, 1, 2, 3], noise=0.1)
    model = make_classifier(name, **FAST_PARAMS[name]).fit(X, y)
    assert sorted(model.classes_) == sorted(set(y))
    X_val, y_val = gallery(photos=4, noise=0.1, seed=1)
    # Without augmented copies (these are not faces) the one-photo person is the weak one;
    # tests/core/test_few_photos.py measures them with real augmented faces.
    others = y_val != "person_x"
    assert model.score(X_val[others], y_val[others]) >= 0.9


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_everyone_with_a_single_photo_still_trains(name: str) -> None:
    X, y = gallery(photos=1, noise=0.05)
    model = make_classifier(name, **FAST_PARAMS[name]).fit(X, y)
    assert sorted(model.classes_) == sorted(set(y))
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_photos_of_one_source_are_held_out_together(name: str) -> None:
    from core.recognition.classifiers.folds import _stratified_folds

    X, y = gallery(photos=[3, 3, 1, 2, 3], noise=0.1)
    groups = np.repeat(np.arange(len(y)), 4)  # every photo with three augmented copies
    X4, y4 = np.repeat(X, 4, axis=0), np.repeat(y, 4)
    for train, test in _stratified_folds(3, 0, np.unique(y4, return_inverse=True)[1], groups):
        one_photo = set(groups[np.flatnonzero(np.unique(y4, return_inverse=True)[1] == 2)])
        split = set(groups[train]) & set(groups[test]) - one_photo
        assert not split  # a photo and its copies are on one side, except the single-photo person's
    model = make_classifier(name, **FAST_PARAMS[name]).fit(X4, y4, groups=groups)
    assert sorted(model.classes_) == sorted(set(y))


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_a_single_person_is_refused(name: str) -> None:
    X, y = gallery(n_people=1, photos=6)
    with pytest.raises(ModelError, match="at least 2 people"):
        make_classifier(name, **FAST_PARAMS[name]).fit(X, y)


def test_errors_about_training_data_are_also_value_errors() -> None:
    # scikit-learn's conventions (and its estimator checks) expect ValueError for unusable data.
    assert issubclass(TrainingDataError, ModelError) and issubclass(TrainingDataError, ValueError)
    assert issubclass(TrainingCancelled, ModelError)


@pytest.mark.parametrize("name", ["svc", "stacker"])
def test_two_photos_per_person_are_enough_for_svc_and_stacker(name: str) -> None:
    X, y = gallery(photos=2, noise=0.05)
    model = make_classifier(name).fit(X, y)
    assert model.n_splits_ == 2
    assert model.score(*gallery(photos=3, noise=0.05, seed=1)) >= 0.9


def test_super_learner_with_its_svc_trains_a_person_with_two_photos() -> None:
    # The SVC base learner calibrates inside each Super Learner fold, where such a person keeps one
    # photo or none: its folds adapt too (issue 12; this used to ask for a third photo).
    X, y = gallery(photos=[5, 2, 5, 5, 5], noise=0.1)
    model = SuperLearner().fit(X, y)
    assert "SVC" in model.base_learner_names_ and sorted(model.classes_) == sorted(set(y))
    without_svc = ["LogisticRegression", "GaussianNB", "KNeighborsClassifier", "DecisionTreeClassifier"]
    model = SuperLearner(base_learners=without_svc).fit(X, y)
    assert list(model.weights_[0]) == without_svc


@pytest.mark.parametrize("name", list(CLASSIFIERS))
@pytest.mark.parametrize("cancel_at", [1, 4])
def test_cancel_raises_training_cancelled(
    name: str, cancel_at: int, train: tuple[np.ndarray, np.ndarray]
) -> None:
    cancel, calls = cancel_on_call(cancel_at)
    with pytest.raises(TrainingCancelled, match="cancelled"):
        make_classifier(name, **FAST_PARAMS[name]).fit(*train, cancel=cancel)
    assert calls[0] == cancel_at  # polled repeatedly during the fit, and stopped at once


def test_cancel_is_honoured_inside_the_one_vs_rest_svm(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = gallery(n_people=12, photos=4, noise=0.1)
    batches = [0]
    solve = classifiers._OvRLinearSVC._fit_many

    def counting(self: Any, tasks: Any) -> Any:
        batches[0] += 1
        return solve(self, tasks)

    monkeypatch.setattr(classifiers._OvRLinearSVC, "_fit_many", counting)
    with pytest.raises(TrainingCancelled):
        CalibratedSVC(multi_class="ovr").fit(X, y, cancel=lambda: batches[0] > 0)
    # The first chunk of people (two batches) finished; the SVM's next checkpoint stopped the fit,
    # long before the 5 calibration folds and the final SVM were done.
    assert batches[0] == 2


def test_no_sklearn_warnings_on_any_path(train: tuple[np.ndarray, np.ndarray]) -> None:
    # pytestmark already turns warnings into errors; this states the requirement explicitly and
    # also covers the large-gallery components forced on a small gallery.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models = [
            CalibratedSVC(multi_class="ovo"),
            CalibratedSVC(multi_class="ovr", method="temperature", ensemble=True),
            Stacker(mode="thesis"),
            Stacker(mode="scalable"),
            SuperLearner(base_learners=(*SCALABLE_BASE_LEARNERS, "SVC"), n_splits=3),
        ]
        for model in models:
            assert model.fit(*train).score(*train) >= 0.9
            restored = pickle.loads(pickle.dumps(model))  # the model file is a joblib pickle
            np.testing.assert_array_equal(restored.predict_proba(train[0]), model.predict_proba(train[0]))


# --------------------------------------------------------------------------------------------
# Calibrated SVC
# --------------------------------------------------------------------------------------------


def test_svc_calibration_folds_adapt_per_person() -> None:
    # Five folds; the person with three photos is held out in three of them (issue 12).
    model = CalibratedSVC(cv=5).fit(*gallery(photos=[3, 9, 9, 9, 9]))
    assert model.n_splits_ == 5 and model.svm_ is not None  # ensemble=False: one SVM on all photos
    thesis = CalibratedSVC(cv=5, multi_class="ovo", method="sigmoid").fit(*gallery(photos=[3, 9, 9, 9, 9]))
    assert len(thesis.calibrated_.calibrated_classifiers_) == 1


def test_svc_never_uses_the_deprecated_probability_option(train: tuple[np.ndarray, np.ndarray]) -> None:
    svm = CalibratedSVC(multi_class="ovo", method="sigmoid").fit(*train).svm_
    assert svm.kernel == "linear"
    assert svm.get_params()["probability"] in ("deprecated", False)


def test_auto_strategies_switch_above_the_class_limit(
    monkeypatch: pytest.MonkeyPatch, train: tuple[np.ndarray, np.ndarray]
) -> None:
    svc = CalibratedSVC().fit(*train)
    assert (svc.multi_class_, svc.method_) == ("ovr", "temperature")  # at every size (issue 12)
    assert Stacker().fit(*train).mode_ == "thesis"
    assert SuperLearner(n_estimators=2, n_splits=2).fit(*train).base_learner_names_ == BASE_LEARNER_NAMES
    monkeypatch.setattr(classifiers.base, "MAX_THESIS_CLASSES", 4)
    svc = CalibratedSVC().fit(*train)
    assert (svc.multi_class_, svc.method_) == ("ovr", "temperature")
    stacker = Stacker().fit(*train)
    assert stacker.mode_ == "scalable"
    assert isinstance(stacker.meta_model_, classifiers._SharedLogisticRegression)
    assert SuperLearner(n_splits=2).fit(*train).base_learner_names_ == SCALABLE_BASE_LEARNERS


@pytest.mark.parametrize(("n_people", "photos"), [(2, 40), (30, 10)])
def test_one_vs_rest_svm_matches_linear_svc(n_people: int, photos: int) -> None:
    X, y = gallery(n_people=n_people, photos=photos, noise=0.2)
    # A small working set forces several rounds of adding margin violators.
    ours = classifiers._OvRLinearSVC(working_set=10).fit(X, y)
    reference = LinearSVC(dual=True, tol=1e-4, max_iter=1000, random_state=0).fit(X.astype(np.float64), y)
    assert ours.n_rounds_ >= 2
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=2e-3)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=2e-3)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


@pytest.mark.parametrize("seed", [0, 1])
def test_one_vs_rest_subproblems_are_solved_exactly_as_linear_svc_solves_them(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 128))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    positive = np.zeros(300, dtype=bool)
    positive[rng.choice(300, size=12, replace=False)] = True
    X[positive] += 0.5 * X[positive][0]
    coef, intercept = classifiers._binary_linear_svm(X, positive, 0.7, 1e-4, 10_000, 0)
    reference = LinearSVC(C=0.7, dual=True, tol=1e-4, max_iter=10_000, random_state=0).fit(X, np.where(positive, 1, -1))
    np.testing.assert_array_equal(coef, reference.coef_[0])
    assert intercept == reference.intercept_[0]
    with pytest.warns(ConvergenceWarning, match="failed to converge"):
        classifiers._binary_linear_svm(X, positive, 100.0, 1e-12, 2, 0)


@pytest.mark.parametrize(("n_classes", "separation"), [(40, 0.5), (2, 0.5), (12, 20.0)])
def test_temperature_scaling_finds_scikit_learns_temperature(n_classes: int, separation: float) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), 20)
    scores = rng.normal(size=(len(y), n_classes)) + separation * np.eye(n_classes)[y]
    if n_classes == 2:
        scores = scores[:, 1:] - scores[:, :1]  # one decision value per photo
    decision_values = FrozenEstimator(classifiers._DecisionValues(n_classes=n_classes).fit())
    folds = list(classifiers._stratified_folds(3, 0, y))
    reference = CalibratedClassifierCV(decision_values, method="temperature", cv=folds).fit(scores, y)
    beta = classifiers._fit_temperature(scores, y, bounded=False)
    if separation > 10:
        assert beta is None  # every photo separated: unbounded, the loss falls forever
        # Bounded (issue 12): the median out-of-fold face gets 0.99, not 1.00.
        bounded = classifiers._fit_temperature(scores, y)
        top = classifiers._TemperatureScaling(bounded).predict_proba(scores).max(axis=1)
        assert np.median(top) == pytest.approx(0.99, abs=1e-6)
        return
    assert beta == pytest.approx(reference.calibrated_classifiers_[0].calibrators[0].beta_, rel=1e-6)
    probes = rng.normal(size=(6, scores.shape[1]))
    np.testing.assert_allclose(
        classifiers._TemperatureScaling(beta).predict_proba(probes), reference.predict_proba(probes), atol=1e-7
    )


def test_the_bound_on_the_temperature_applies_only_when_the_fit_is_sharper() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(8), 10)
    noisy = rng.normal(size=(len(y), 8)) + 0.5 * np.eye(8)[y]  # a hard problem: a mild temperature
    assert classifiers._fit_temperature(noisy, y) == classifiers._fit_temperature(noisy, y, bounded=False)
    clean = rng.normal(scale=0.01, size=(len(y), 8)) + 2.0 * np.eye(8)[y]
    assert classifiers._fit_temperature(clean, y) < (classifiers._fit_temperature(clean, y, bounded=False) or np.inf)


def test_fast_gaussian_nb_matches_scikit_learn(train: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = train[0].astype(np.float64), train[1]  # the classifiers hand their base learners float64
    ours = classifiers._GaussianNB().fit(X, y)
    reference = GaussianNB().fit(X, y)
    np.testing.assert_allclose(
        ours.predict_joint_log_proba(X), reference.predict_joint_log_proba(X), rtol=1e-9
    )
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), atol=1e-9)


# --------------------------------------------------------------------------------------------
# Stacker
# --------------------------------------------------------------------------------------------


def test_stacker_holds_the_five_thesis_models(fitted: dict[str, Any]) -> None:
    stacker = fitted["stacker"]
    assert list(stacker.base_models_) == ["lr", "knn", "cart", "svm", "bayes"]
    assert type(stacker.meta_model_).__name__ == "LogisticRegression"


def _thesis_references(X: np.ndarray, y: np.ndarray, n_splits: int) -> tuple[Any, Any]:
    """What Stacker and CalibratedSVC were before they did their folds by hand (scikit-learn's own)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0)
    n_neighbors = classifiers._knn_neighbors(list(folds.split(X, y)))
    stack = StackingClassifier(
        estimators=classifiers._stacker_base_models("thesis", n_neighbors, None, 0),
        final_estimator=LogisticRegression(max_iter=1000),
        cv=folds,
    ).fit(X.astype(np.float64), y)
    calibrated = CalibratedClassifierCV(SVC(kernel="linear"), method="sigmoid", cv=folds, ensemble=False)
    return stack, calibrated.fit(X.astype(np.float64), y)


@pytest.mark.parametrize("n_people", [5, 2])
def test_thesis_models_predict_exactly_as_scikit_learns_stacking_and_calibration(n_people: int) -> None:
    # The thesis path must not change: same folds, same models, bit-identical probabilities.
    X, y = gallery(n_people=n_people, photos=9, noise=0.35)
    X_val = gallery(n_people=n_people, photos=4, noise=0.35, seed=1)[0]
    # The thesis's SVC (one-vs-one, Platt) is an option now; "auto" is temperature (issue 12).
    stacker = Stacker(calibrate=False).fit(X, y)
    svc = CalibratedSVC(multi_class="ovo", method="sigmoid").fit(X, y)
    stack, calibrated = _thesis_references(X, y, stacker.n_splits_)
    np.testing.assert_array_equal(stacker.predict_proba(X_val), stack.predict_proba(X_val.astype(np.float64)))
    np.testing.assert_array_equal(svc.predict_proba(X_val), calibrated.predict_proba(X_val.astype(np.float64)))

    # Models saved before (holding those scikit-learn objects) still predict after loading.
    legacy_stacker, legacy_svc = Stacker(), CalibratedSVC()
    legacy_stacker.__dict__.update(stack_=stack, classes_=stack.classes_, n_features_in_=X.shape[1])
    legacy_svc.__dict__.update(calibrated_=calibrated, classes_=calibrated.classes_, n_features_in_=X.shape[1])
    np.testing.assert_array_equal(legacy_stacker.predict_proba(X_val), stack.predict_proba(X_val.astype(np.float64)))
    np.testing.assert_array_equal(legacy_svc.predict_proba(X_val), calibrated.predict_proba(X_val.astype(np.float64)))


def test_shared_fits_train_each_common_base_model_once_with_identical_results(
    monkeypatch: pytest.MonkeyPatch, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]
) -> None:
    monkeypatch.setattr(classifiers.base, "MAX_THESIS_CLASSES", 4)  # the large-gallery parts
    fits = [0]
    solve = classifiers._OvRLinearSVC.fit

    def counting(self: Any, X: Any, y: Any) -> Any:
        fits[0] += 1
        return solve(self, X, y)

    monkeypatch.setattr(classifiers._OvRLinearSVC, "fit", counting)
    separate = [CalibratedSVC().fit(*train), Stacker().fit(*train), SuperLearner().fit(*train)]
    assert fits[0] == 2 * (5 + 1)  # the SVC's calibration and the stacker's "svm": 5 folds + refit each
    fits[0] = 0
    with shared_fits():
        svc, stacker, super_learner = CalibratedSVC().fit(*train), Stacker().fit(*train), SuperLearner().fit(*train)
    assert fits[0] == 5 + 1
    for alone, together in zip(separate, (svc, stacker, super_learner)):
        np.testing.assert_array_equal(alone.predict_proba(val[0]), together.predict_proba(val[0]))
    assert svc.svm_ is stacker.base_models_["svm"]
    assert svc.fold_accuracy_ == stacker.fold_accuracy_["svm"]
    assert stacker.base_models_["lr"] is super_learner.base_learners_["LogisticRegression"]
    assert stacker.base_models_["knn"] is super_learner.base_learners_["KNeighborsClassifier"]
    assert stacker.base_models_["bayes"] is super_learner.base_learners_["GaussianNB"]
    # Outside the block every fit is its own again.
    assert CalibratedSVC().fit(*train).svm_ is not svc.svm_


@pytest.mark.parametrize("mode", ["thesis", "scalable"])
def test_folds_fitted_on_threads_give_the_same_models(
    mode: str, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]
) -> None:
    alone, threaded = Stacker(mode=mode).fit(*train), Stacker(mode=mode, n_jobs=2).fit(*train)
    np.testing.assert_array_equal(alone.predict_proba(val[0]), threaded.predict_proba(val[0]))
    assert alone.fold_accuracy_ == threaded.fold_accuracy_
    learners = None if mode == "thesis" else SCALABLE_BASE_LEARNERS
    alone_sl = SuperLearner(base_learners=learners, n_estimators=5, n_splits=3).fit(*train)
    threaded_sl = SuperLearner(base_learners=learners, n_estimators=5, n_splits=3, n_jobs=2).fit(*train)
    np.testing.assert_array_equal(alone_sl.predict_proba(val[0]), threaded_sl.predict_proba(val[0]))


@pytest.mark.parametrize("cancel_at", [2, 5])
def test_cancel_stops_training_on_threads_too(cancel_at: int, train: tuple[np.ndarray, np.ndarray]) -> None:
    cancel, calls = cancel_on_call(cancel_at)
    with pytest.raises(TrainingCancelled):
        Stacker(n_jobs=2).fit(*train, cancel=cancel)
    assert calls[0] == cancel_at


def test_fold_accuracy_is_that_of_models_trained_on_the_other_folds() -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = gallery(n_people=6, photos=10, noise=0.25)
    svc = CalibratedSVC(multi_class="ovr", method="temperature").fit(X, y)
    stacker = Stacker(mode="scalable").fit(X, y)
    assert svc.n_splits_ == stacker.n_splits_ == 5
    assert set(stacker.fold_accuracy_) == {*classifiers.STACKER_MODEL_NAMES, "stacking"}
    assert all(len(scores) == 5 for scores in stacker.fold_accuracy_.values())
    expected_svc, expected_lr = [], []
    for rows, held_out in classifiers._stratified_folds(5, 0, np.unique(y, return_inverse=True)[1]):
        # Temperature scaling never changes the most probable person: the fold SVM's accuracy
        # is the calibrated SVC's.
        fold_svc = CalibratedSVC(multi_class="ovr", method="temperature").fit(X[rows], y[rows])
        expected_svc.append(fold_svc.score(X[held_out], y[held_out]))
        fold_lr = LogisticRegression(max_iter=1000).fit(X[rows].astype(np.float64), y[rows])
        expected_lr.append(fold_lr.score(X[held_out].astype(np.float64), y[held_out]))
    assert svc.fold_accuracy_ == pytest.approx(expected_svc)
    assert stacker.fold_accuracy_["lr"] == pytest.approx(expected_lr)
    assert 0.5 < np.mean(expected_svc) < 1.0  # hard enough for the comparison to mean something
    assert np.mean(stacker.fold_accuracy_["stacking"]) >= np.mean(stacker.fold_accuracy_["cart"])


def test_shared_meta_model_weights_the_informative_base_model() -> None:
    rng = np.random.default_rng(0)
    n, n_classes = 400, 6
    y = rng.integers(n_classes, size=n)
    informative = 0.5 * np.eye(n_classes)[y] + 0.5 * rng.dirichlet(np.ones(n_classes), n)
    noise = rng.dirichlet(np.ones(n_classes), n)
    meta = classifiers._SharedLogisticRegression().fit(np.hstack([informative, noise]), y)
    assert meta.coef_.shape == (2,)
    assert meta.coef_[0] > 5 * abs(meta.coef_[1])
    proba = meta.predict_proba(np.hstack([informative, noise]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(meta.predict(np.hstack([informative, noise])) == y) > 0.9


def test_meta_model_fold_refits_by_one_newton_step_match_exact_refits() -> None:
    rng = np.random.default_rng(1)
    n, n_classes = 600, 8
    y = rng.integers(n_classes, size=n)
    informative = 0.4 * np.eye(n_classes)[y] + 0.6 * rng.dirichlet(np.ones(n_classes), n)
    scores = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y]
    stacked = np.ascontiguousarray(np.stack([informative, scores, rng.dirichlet(np.ones(n_classes), n)]))
    coef, _ = classifiers._shared_logistic_coef(stacked, y, 1.0, 500)
    folds = classifiers._stratified_folds(5, 0, y)
    for (train, _), step in zip(folds, classifiers._shared_logistic_fold_coef(stacked, y, coef, 1.0, folds)):
        rows = np.zeros(n, dtype=bool)
        rows[train] = True
        exact, _ = classifiers._shared_logistic_coef(stacked, y, 1.0, 500, rows=rows, coef0=coef)
        assert np.abs(step - exact).max() < 0.1 * np.abs(exact - coef).max() + 1e-6


def test_stacker_cv_scores_returns_fold_accuracies_per_model(train: tuple[np.ndarray, np.ndarray]) -> None:
    reports: list[float] = []
    scores = stacker_cv_scores(*train, n_splits=4, n_repeats=2, progress=lambda f, m: reports.append(f))
    assert list(scores) == ["lr", "knn", "cart", "svm", "bayes", "stacking"]
    for values in scores.values():
        assert values.shape == (8,)
        assert np.all((values >= 0) & (values <= 1))
    assert scores["stacking"].mean() >= 0.85 and scores["lr"].mean() >= 0.85
    assert reports[-1] == 1.0


def test_stacker_cv_scores_adapts_folds_per_person() -> None:
    # Ten folds asked, six photos at most: six folds, the four-photo person held out in four.
    scores = stacker_cv_scores(*gallery(photos=[4, 6, 6, 6, 6], noise=0.1), n_splits=10, n_repeats=1)
    assert all(values.shape == (6,) for values in scores.values())


@pytest.mark.parametrize("photos", [[2, 6, 6, 6, 6], [1, 2, 3, 3, 3]])
def test_stacker_cv_scores_works_with_one_or_two_photos(photos: list[int]) -> None:
    # The case of issue 12 that crashed `facegate evaluate`: a fold kept one photo of someone.
    scores = stacker_cv_scores(*gallery(photos=photos, noise=0.1), n_splits=10, n_repeats=2)
    assert all(len(values) == 2 * max(photos) and np.all(np.isfinite(values)) for values in scores.values())


def test_stacker_cv_scores_can_be_cancelled(train: tuple[np.ndarray, np.ndarray]) -> None:
    cancel, _ = cancel_on_call(3)
    with pytest.raises(TrainingCancelled):
        stacker_cv_scores(*train, n_splits=3, n_repeats=1, cancel=cancel)


# --------------------------------------------------------------------------------------------
# Super Learner
# --------------------------------------------------------------------------------------------


def test_super_learner_weights_are_a_convex_combination(
    fitted: dict[str, Any], val: tuple[np.ndarray, np.ndarray]
) -> None:
    model = fitted["super_learner"]
    assert model.n_layers_ == 1 and len(model.weights_) == 1
    weights = model.weights_[0]
    assert tuple(weights) == BASE_LEARNER_NAMES
    assert all(w >= 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0)
    assert tuple(model.base_learners_) == BASE_LEARNER_NAMES
    assert model.base_learners_ is model.layers_[0]
    assert set(model.fit_times_[0]) == set(BASE_LEARNER_NAMES)
    # The weighted average is no worse (in OOF log loss) than the best single base learner.
    assert model.oof_log_loss_[0] < 0.5

    scores = model.base_learner_scores(*val)
    assert tuple(scores) == BASE_LEARNER_NAMES
    assert all(0 <= s <= 1 for s in scores.values())
    assert scores["LogisticRegression"] >= 0.9


def test_super_learner_prediction_is_the_weighted_average(
    fitted: dict[str, Any], val: tuple[np.ndarray, np.ndarray]
) -> None:
    model = fitted["super_learner"]
    X = val[0].astype(np.float64)
    expected = sum(w * model.base_learners_[name].predict_proba(X) for name, w in model.weights_[0].items())
    # ... temperature-scaled since issue 12 (its inverse temperature fitted out of fold, bounded).
    beta = model.temperature_
    assert beta is not None and beta > 0
    scaled = np.exp(beta * np.log(np.clip(expected, 1e-300, 1.0)))
    np.testing.assert_allclose(model.predict_proba(val[0]), scaled / scaled.sum(axis=1, keepdims=True), atol=1e-9)
    assert np.array_equal(model.predict(val[0]), model.classes_[expected.argmax(axis=1)])  # same names


def test_simplex_weights_prefer_the_better_learner() -> None:
    rng = np.random.default_rng(0)
    good = np.clip(rng.normal(0.9, 0.05, 200), 0.01, 1)
    poor = np.clip(rng.normal(0.3, 0.1, 200), 0.01, 1)
    weights, loss = classifiers._simplex_weights(np.stack([poor, good], axis=1))
    assert weights[1] > 0.9 and weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    assert loss == pytest.approx(-np.mean(np.log(np.stack([poor, good], axis=1) @ weights)))


def test_deep_super_learner_keeps_layers_only_while_the_loss_falls() -> None:
    X, y = gallery(noise=0.25)
    learners = ["LogisticRegression", "GaussianNB", "KNeighborsClassifier", "ExtraTreesClassifier", "SVC"]
    model = SuperLearner(deep=True, max_layers=4, base_learners=learners, n_estimators=20).fit(X, y)
    assert 1 <= model.n_layers_ <= 4
    assert len(model.layers_) == len(model.weights_) == len(model.oof_log_loss_) == model.n_layers_
    losses = model.oof_log_loss_
    assert all(later < earlier - model.tol for earlier, later in itertools.pairwise(losses))
    if model.n_layers_ < 4:
        # One more layer was fitted, did not improve enough, and was discarded.
        assert len(model.candidate_log_loss_) == model.n_layers_ + 1
        assert model.candidate_log_loss_[-1] > losses[-1] - model.tol
    for weights in model.weights_:
        assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) >= 0
    proba = model.predict_proba(*gallery(noise=0.25, seed=1)[:1])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.score(*gallery(noise=0.25, seed=1)) >= 0.85
    # Layers after the first see the embeddings plus one probability column per person.
    if model.n_layers_ > 1:
        assert model.layers_[1]["LogisticRegression"].n_features_in_ == 128 + 5


def test_deep_super_learner_stops_at_once_when_a_second_layer_cannot_help() -> None:
    # Perfectly separated people: the first layer's OOF log loss is ~0 and cannot fall further.
    X, y = gallery(noise=0.02)
    model = SuperLearner(deep=True, base_learners=["LogisticRegression", "GaussianNB"]).fit(X, y)
    assert model.n_layers_ == 1
    assert len(model.candidate_log_loss_) == 2


def test_super_learner_rejects_unknown_base_learners(train: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ModelError, match="base_learners"):
        SuperLearner(base_learners=["LogisticRegression", "XGBClassifier"]).fit(*train)


# --------------------------------------------------------------------------------------------
# Registry, parameters, contract
# --------------------------------------------------------------------------------------------


def test_make_classifier_knows_the_three_names() -> None:
    assert set(CLASSIFIERS) == {"svc", "stacker", "super_learner"}
    assert isinstance(make_classifier("svc", C=2.0), CalibratedSVC)
    assert isinstance(make_classifier("stacker"), Stacker)
    assert isinstance(make_classifier("super_learner", deep=True), SuperLearner)
    with pytest.raises(ModelError, match="Unknown classifier 'mlp'; choose one of"):
        make_classifier("mlp")
    with pytest.raises(ModelError, match="does not accept"):
        make_classifier("svc", kernel="rbf")


@pytest.mark.parametrize(
    "model",
    [
        CalibratedSVC(cv=1),
        CalibratedSVC(C=0),
        CalibratedSVC(method="beta"),
        Stacker(mode="fast"),
        SuperLearner(n_splits=1),
    ],
    ids=repr,
)
def test_invalid_parameters_are_reported_by_fit(model: Any, train: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ModelError, match="Parameter"):
        model.fit(*train)


def test_classifiers_module_does_not_need_qt() -> None:
    code = "import sys; sys.modules['PySide6'] = None; import core.recognition.classifiers"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


@pytest.mark.parametrize(
    "model",
    [
        # Two folds and quick base learners keep this fast; the contract does not depend on them.
        CalibratedSVC(cv=2),
        CalibratedSVC(cv=2, multi_class="ovr"),
        Stacker(cv=2),
        Stacker(cv=2, mode="scalable"),
        SuperLearner(base_learners=["LogisticRegression", "GaussianNB", "KNeighborsClassifier"], n_splits=2),
    ],
    ids=lambda model: repr(model).replace("\n", "").replace(" ", ""),
)
def test_scikit_learn_estimator_checks(model: Any) -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        # check_fit_idempotent fits random labels on points around x = 100, where liblinear's
        # dual solver (the one-vs-rest SVM) runs out of iterations; embeddings never look like that.
        warnings.filterwarnings("ignore", category=ConvergenceWarning, message="Liblinear failed to converge")
        check_estimator(model, on_skip=None)
