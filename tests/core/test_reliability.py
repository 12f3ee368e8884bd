"""Calibration figures: the metric functions on hand-made arrays, then ``evaluate`` on the real set."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from core.recognition.reliability import (
    UNKNOWN_INDEX,
    brier_score,
    calibration_summary,
    confident_wrong_names,
    expected_calibration_error,
    label_indices,
    reliability_curve,
    wrong_name_probability,
)


def _two_class(confidence: float, n: int, n_correct: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` faces all given ``confidence`` for class 0; the first ``n_correct`` really are class 0."""
    proba = np.tile([confidence, 1.0 - confidence], (n, 1))
    y = np.array([0] * n_correct + [1] * (n - n_correct))
    return proba, y


def test_perfectly_calibrated_has_zero_ece():
    # 80 % sure and right 8 times in 10; 60 % sure and right 3 times in 5.
    p1, y1 = _two_class(0.8, 10, 8)
    p2, y2 = _two_class(0.6, 5, 3)
    proba, y = np.vstack([p1, p2]), np.concatenate([y1, y2])
    assert expected_calibration_error(proba, y) == pytest.approx(0.0, abs=1e-12)
    one_hot_right = np.eye(4)[[0, 1, 2, 3, 1]]
    assert expected_calibration_error(one_hot_right, [0, 1, 2, 3, 1]) == pytest.approx(0.0, abs=1e-12)


def test_always_sure_and_right_half_the_time_has_ece_one_half():
    proba, y = _two_class(1.0, 10, 5)
    assert expected_calibration_error(proba, y) == pytest.approx(0.5)
    assert confident_wrong_names(proba, y) == 5


def test_ece_weights_bins_by_their_face_count():
    # Bin at 0.95 (3 faces, all right: gap 0.05) and bin at 0.55 (1 face, wrong: gap 0.55).
    proba = np.array([[0.95, 0.05]] * 3 + [[0.55, 0.45]])
    y = np.array([0, 0, 0, 1])
    assert expected_calibration_error(proba, y, n_bins=10) == pytest.approx((3 * 0.05 + 1 * 0.55) / 4)


def test_brier_score_uses_the_multiclass_sum_over_classes():
    assert brier_score(np.eye(3), [0, 1, 2]) == pytest.approx(0.0)
    for k in (2, 5, 10):
        uniform = np.full((4, k), 1.0 / k)
        assert brier_score(uniform, [0, 1, 0, 1]) == pytest.approx((k - 1) / k)
    assert brier_score([[0.0, 1.0]], [0]) == pytest.approx(2.0)  # sure of the wrong person


def test_reliability_curve_bins_mean_confidence_accuracy_and_count():
    proba = np.array([[1.0, 0.0], [0.95, 0.05], [0.7, 0.3], [0.72, 0.28], [0.5, 0.5]])
    y = np.array([0, 1, 0, 0, 0])
    curve = reliability_curve(proba, y, n_bins=10)
    assert curve.count.sum() == 5 and len(curve.edges) == 11
    assert curve.count[9] == 2 and curve.confidence[9] == pytest.approx(0.975) and curve.accuracy[9] == 0.5
    assert curve.count[6] == 1 and curve.count[7] == 1  # 0.7 in (0.6, 0.7], 0.72 in (0.7, 0.8]
    assert curve.count[4] == 1  # 0.5 lands in (0.4, 0.5]
    assert np.isnan(curve.confidence[0]) and curve.count[0] == 0


def test_a_face_whose_person_is_not_among_the_classes_counts_as_wrong():
    classes = np.array(["ann", "bob", "cy"])
    y = label_indices(["bob", "stranger", "ann"], classes)
    assert y.tolist() == [1, UNKNOWN_INDEX, 0]
    proba = np.array([[0.0, 1.0, 0.0], [0.92, 0.05, 0.03], [1.0, 0.0, 0.0]])
    # The stranger: wrong with confidence 0.92; the others are one-hot right.
    assert expected_calibration_error(proba, y) == pytest.approx(0.92 / 3)
    assert brier_score(proba, y) == pytest.approx((0.92**2 + 0.05**2 + 0.03**2) / 3)
    assert wrong_name_probability(proba, y).tolist() == pytest.approx([0.0, 0.92, 0.0])
    assert confident_wrong_names(proba, y) == 1
    summary = calibration_summary(proba, y)
    assert summary["faces_not_in_classes"] == 1 and summary["confident_wrong"] == 1
    assert summary["max_wrong_probability"] == pytest.approx(0.92)
    assert summary["top_label_accuracy"] == pytest.approx(2 / 3)
    json.dumps(summary)


def test_wrong_name_probability_looks_past_a_correct_top_label():
    proba = np.array([[0.6, 0.4, 0.0], [0.2, 0.1, 0.7]])
    assert wrong_name_probability(proba, [0, 2]).tolist() == pytest.approx([0.4, 0.2])
    assert confident_wrong_names(proba, [0, 2]) == 0


def test_bad_input_is_refused_and_no_faces_is_nan():
    with pytest.raises(ValueError, match="rows"):
        expected_calibration_error(np.eye(2), [0])
    with pytest.raises(ValueError, match="column indices"):
        brier_score(np.eye(2), [0, 2])
    empty = np.zeros((0, 3))
    assert np.isnan(expected_calibration_error(empty, np.zeros(0, dtype=int)))
    assert np.isnan(brier_score(empty, np.zeros(0, dtype=int)))
    assert confident_wrong_names(empty, np.zeros(0, dtype=int)) == 0


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_evaluate_reports_calibration_and_writes_the_reliability_diagram(seed, pipeline, tmp_path):
    from core.recognition.evaluate import evaluate, format_report

    # The full 5-celebrity set (real MTCNN + FaceNet); a small stacking CV keeps the run short.
    report = evaluate(seed.dataset, out_dir=tmp_path, pipeline=pipeline, cv_splits=2, cv_repeats=1)
    for name in ("svc", "stacker", "super_learner"):
        for key in ("calibration", "calibration_leave_one_identity_out"):
            cal = report["models"][name][key]
            assert 0.0 <= cal["ece"] <= 1.0, (name, key)
            assert 0.0 <= cal["brier"] <= 1.0, (name, key)
            assert 0.0 <= cal["max_wrong_probability"] <= 1.0
            assert sum(b["count"] for b in cal["bins"]) == cal["faces"]
        val = report["models"][name]["calibration"]
        assert val["faces"] == report["faces"]["val"] == 25
        assert val["confident_wrong"] == 0  # every val face is named right today
        assert report["models"][name]["calibration_leave_one_identity_out"]["faces_not_in_classes"] > 0
    png = (tmp_path / "reliability.png").read_bytes()
    width, height = _png_size(png)
    assert width >= 600 and height >= 400 and 20_000 < len(png) < 2_000_000
    text = format_report(report)
    assert "Calibration on the val faces" in text and "ECE" in text and "Brier" in text
    json.dumps(report)
