"""The enrollment quality gate on real photos with the real MTCNN: each check fails for its own reason."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from core.types import Detection
from core.vision.imageio import read_image
from core.vision.quality import CHECK_NAMES, QualityThresholds, check_face, check_quality, pose
from tests.conftest import compose, face_crop


def photo(seed, split: str, person: str, prefix: str) -> np.ndarray:
    matches = sorted(p for p in (seed.dataset / split / person).iterdir() if p.name.startswith(prefix))
    assert len(matches) == 1, f"{split}/{person}/{prefix}* should name exactly one photo"
    return read_image(matches[0])


@pytest.fixture(scope="module")
def good(seed) -> np.ndarray:
    # A large, sharp, frontal face: 163 px, sharpness ~450, brightness ~143.
    return photo(seed, "val", "ben_afflek", "httpafilesbiographycom")


def test_a_good_photo_passes_with_every_figure(good, pipeline):
    report = check_quality(good, pipeline)
    assert report.passed, report.reason
    assert tuple(report.checks) == CHECK_NAMES
    assert report.failed == () and report.reason == ""
    assert report.checks["face_size"].value >= 150
    assert report.checks["sharpness"].value > 200
    assert 100 < report.checks["brightness"].value < 180
    assert abs(report.checks["yaw"].value) < 0.2
    assert 0.4 < report.checks["pitch"].value < 0.7
    assert report.aligned is not None and report.aligned.shape == (160, 160, 3)
    figures = report.figures()
    assert set(figures) >= set(CHECK_NAMES) | {"box", "confidence"}
    assert all(isinstance(v, (int, float, list)) for v in figures.values())


def test_a_blurred_photo_fails_sharpness_only(good, pipeline):
    blurred = cv2.GaussianBlur(good, (0, 0), 4.0)  # ~2.5 % of this 163 px face
    report = check_quality(blurred, pipeline)
    assert report.failed == ("sharpness",)
    assert report.checks["sharpness"].value < 15
    assert report.reason.startswith("sharpness: photo too blurred")
    assert "hold still" in report.reason


def test_a_darkened_photo_fails_brightness(good, pipeline):
    dark = (good.astype(np.float32) * 0.25).astype(np.uint8)
    report = check_quality(dark, pipeline)
    assert report.failed == ("brightness",), report.reason
    assert report.checks["brightness"].value < 40
    assert "brightness: face too dark" in report.reason and "add light" in report.reason


def test_an_overexposed_photo_fails_brightness(good, pipeline):
    burnt = (good.astype(np.float32) * 0.25 + 190).astype(np.uint8)
    report = check_quality(burnt, pipeline)
    assert report.failed == ("brightness",), report.reason
    assert "face too bright" in report.reason


def test_a_tiny_face_fails_face_size(good, pipeline):
    small = cv2.resize(good, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    canvas = np.full((200, 200, 3), 120, np.uint8)  # a small face in a normal-sized frame
    canvas[70:70 + small.shape[0], 70:70 + small.shape[1]] = small
    report = check_quality(canvas, pipeline)
    assert "face_size" in report.failed
    assert report.checks["face_size"].value < 40
    assert "face size: face too small" in report.reason and "move closer" in report.reason


def test_the_most_turned_real_face_fails_pose(seed, pipeline):
    turned = photo(seed, "train", "ben_afflek", "httpssmediacacheakpinimgcomxedaedabcbefbcbabb")
    report = check_quality(turned, pipeline)
    assert report.failed == ("yaw",)
    assert abs(report.checks["yaw"].value) > 0.6
    assert "pose: face turned to the side" in report.reason and "look straight" in report.reason


def test_a_blank_picture_has_no_face(pipeline):
    report = check_quality(np.full((240, 320, 3), 128, np.uint8), pipeline)
    assert not report.passed and report.failed == ("faces",)
    assert tuple(report.checks) == ("faces",)
    assert report.detection is None and report.aligned is None
    assert report.reason.startswith("faces: no face found")


def test_two_people_fail_the_face_count(seed, pipeline):
    frame = compose([face_crop(seed, "jerry_seinfeld", 0), face_crop(seed, "madonna", 1)])
    report = check_quality(frame, pipeline)
    assert report.failed == ("faces",)
    assert report.checks["faces"].value == 2
    assert "2 faces found" in report.reason and "only the person being enrolled" in report.reason


def test_a_head_tilted_far_back_fails_pitch(good, pipeline):
    report = check_quality(good, pipeline)
    det = report.detection
    assert det is not None and report.aligned is not None
    lm = [list(p) for p in det.landmarks]
    eye_y = (lm[0][1] + lm[1][1]) / 2
    lm[2][1] = eye_y + 0.05 * (lm[3][1] - eye_y)  # nose almost level with the eyes: head thrown back
    tilted = dataclasses.replace(det, landmarks=tuple((x, y) for x, y in lm))  # type: ignore[arg-type]
    result = check_face(tilted, report.aligned)
    assert result.failed == ("pitch",)
    assert "head tilted up" in result.reason


def test_pose_ignores_roll_and_measures_yaw():
    frontal = [(40.0, 50.0), (80.0, 50.0), (60.0, 72.0), (45.0, 90.0), (75.0, 90.0)]
    yaw, pitch = pose(Detection((0, 0, 120, 120), 0.99, tuple(frontal)))  # type: ignore[arg-type]
    assert yaw == pytest.approx(0.0) and pitch == pytest.approx(0.55)
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rolled = [tuple(rot @ np.array(p)) for p in frontal]
    yaw_r, pitch_r = pose(Detection((0, 0, 120, 120), 0.99, tuple(rolled)))  # type: ignore[arg-type]
    assert yaw_r == pytest.approx(0.0, abs=1e-6) and pitch_r == pytest.approx(0.55)
    turned = [*frontal[:2], (74.0, 72.0), *frontal[3:]]
    assert pose(Detection((0, 0, 120, 120), 0.99, tuple(turned)))[0] == pytest.approx(0.35)  # type: ignore[arg-type]
    degenerate = [(50.0, 50.0)] * 5
    assert all(np.isnan(pose(Detection((0, 0, 120, 120), 0.99, tuple(degenerate)))))  # type: ignore[arg-type]


def test_thresholds_are_validated_and_change_the_verdict(good, pipeline):
    with pytest.raises(ValueError):
        QualityThresholds(min_brightness=200, max_brightness=100)
    with pytest.raises(ValueError):
        QualityThresholds(max_yaw=0)
    strict = QualityThresholds(min_face_px=400)
    report = check_quality(good, pipeline, strict)
    assert report.failed == ("face_size",)
    assert "needs ≥ 400 px" in report.reason


def test_the_gate_refuses_what_is_not_an_rgb_picture(pipeline):
    from core.errors import ImageError

    with pytest.raises(ImageError, match="8-bit RGB"):
        check_quality(np.zeros((10, 10), np.float32), pipeline)
