"""The capture plan on real photos: plain feedback, pose buckets, near-duplicates skipped, quotas kept."""

from __future__ import annotations

import numpy as np
import pytest

from core.registry.capture import POSES, CapturePlan, feedback, pose_bucket
from core.types import Detection
from core.vision.imageio import read_image
from core.vision.quality import QualityThresholds, check_quality
from tests.conftest import compose, face_crop


def _check(pipeline, image):
    report = check_quality(image, pipeline)
    emb = pipeline.embed(image, [report.detection])[0] if report.passed else None
    return report, emb


def _madonna_turned(seed):
    return next(p for p in (seed.dataset / "train" / "madonna").iterdir() if "xfeebfdcca" in p.name)


@pytest.fixture(scope="module")
def obama(strangers_dir):
    return [read_image(p) for p in sorted((strangers_dir / "barack_obama").iterdir())]


def test_feedback_says_what_to_do_for_no_face_two_faces_small_and_dark_faces(pipeline, seed, obama):
    blank = np.full((480, 640, 3), 120, np.uint8)
    assert feedback(check_quality(blank, pipeline)).startswith("No face found")
    two = compose([face_crop(seed, "jerry_seinfeld", 0), face_crop(seed, "madonna", 1)])
    text = feedback(check_quality(two, pipeline))
    assert text == "Only one person in the picture, please (2 faces found)."
    good = check_quality(obama[0], pipeline)
    assert good.passed and feedback(good) == "Good — hold still."
    strict = check_quality(obama[0], pipeline, QualityThresholds(min_face_px=4000))
    assert feedback(strict).startswith("Move closer to the camera")
    dark = (obama[0].astype(np.float32) * 0.12).astype(np.uint8)
    dark_report = check_quality(dark, pipeline)
    if dark_report.checks.get("faces") and dark_report.checks["faces"].value == 1:
        assert feedback(dark_report).startswith("Too dark")
    assert feedback(None) == "Waiting for the camera…"


def test_pose_buckets_from_real_photos_and_synthetic_landmarks(pipeline, seed, obama):
    buckets = [pose_bucket(check_quality(img, pipeline).detection) for img in obama]
    # obama.jpg: frontal, broad smile (mouth 1.12 eye distances); obama2: turned (yaw −0.17); obama3: chin up.
    assert buckets == ["smile", "left", "up"]
    turned = read_image(_madonna_turned(seed))  # yaw +0.38: nose towards the picture's right
    assert pose_bucket(check_quality(turned, pipeline).detection) == "right"

    def face(nose_x: float, nose_y: float, mouth_half: float = 14) -> Detection:
        return Detection((0, 0, 100, 100), 0.99, ((30, 40), (70, 40), (nose_x, nose_y),
                                                   (50 - mouth_half, 75), (50 + mouth_half, 75)))

    assert pose_bucket(face(50, 60)) == "frontal"
    assert pose_bucket(face(50, 50)) == "up"
    assert pose_bucket(face(50, 68)) == "down"
    assert pose_bucket(face(50, 60, mouth_half=22)) == "smile"
    assert set(POSES) == {"frontal", "left", "right", "up", "down", "smile"}


def test_plan_keeps_varied_shots_skips_duplicates_and_refused_frames(pipeline, seed, obama):
    plan = CapturePlan()
    assert plan.target == 12 and not plan.complete
    report, emb = _check(pipeline, obama[1])
    first = plan.offer(obama[1], report, emb)
    assert first.accepted and first.shot is not None and first.shot.pose == "left"
    assert set(first.shot.figures()) == {"face_size", "sharpness", "brightness", "yaw", "pitch"}
    # The same frame again (a still face on a live camera): a near-duplicate.
    again = plan.offer(obama[1], report, emb)
    assert not again.accepted and again.reason.startswith("almost the same as shot 1")
    # A slightly shifted crop of the same photo is still a near-duplicate.
    h, w = obama[1].shape[:2]
    shifted = np.ascontiguousarray(obama[1][4:h - 2, 3:w - 5])
    r2, e2 = _check(pipeline, shifted)
    assert not plan.offer(shifted, r2, e2).accepted
    # A refused frame is never kept, and says why in plain words.
    two = compose([face_crop(seed, "jerry_seinfeld", 0), face_crop(seed, "madonna", 1)])
    r3 = check_quality(two, pipeline)
    refused = plan.offer(two, r3, None)
    assert not refused.accepted and refused.reason.startswith("Only one person")
    # Other photos fill other poses.
    for img in (obama[0], obama[2]):
        r, e = _check(pipeline, img)
        assert plan.offer(img, r, e).accepted
    assert plan.counts() == {"frontal": 0, "left": 1, "right": 0, "up": 1, "down": 0, "smile": 1}
    assert plan.missing() == {"frontal": 4, "left": 1, "right": 2, "down": 1, "smile": 1}
    assert plan.remove(first.shot.id) and not plan.remove(first.shot.id)
    assert len(plan.shots) == 2


def test_a_full_pose_is_skipped_automatically_but_taken_by_hand(pipeline, seed, obama):
    plan = CapturePlan({"left": 1, "frontal": 1})
    report, emb = _check(pipeline, obama[1])
    assert plan.offer(obama[1], report, emb).accepted
    turned = read_image(_madonna_turned(seed))  # "right": not wanted by this plan
    r, e = _check(pipeline, turned)
    auto = plan.offer(turned, r, e)
    assert not auto.accepted and auto.reason == "enough 'right' shots already"
    by_hand = plan.offer(turned, r, e, manual=True, pose_name="smile", origin="file.jpg")
    assert by_hand.accepted and by_hand.shot.pose == "smile" and by_hand.shot.manual
    with pytest.raises(ValueError):
        CapturePlan({"sideways": 2})
