"""Detection (with the mtcnn 1.0 pyramid workaround) and five-point alignment, on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from core.align import canonical_landmarks, similarity_transform
from core.detector import MtcnnDetector
from core.errors import ImageError
from core.imageio import read_image
from core.types import Detection
from tests.conftest import compose, face_crop


@pytest.fixture(scope="module")
def three_faces(seed) -> np.ndarray:
    """A 640×480 frame holding three real ~200-px-wide faces."""
    return compose([face_crop(seed, p) for p in ("ben_afflek", "madonna", "jerry_seinfeld")])


def test_upstream_pyramid_bug_is_still_there(three_faces):
    """Documents why MtcnnDetector never passes min_face_size: the package loses every face."""
    from mtcnn import MTCNN

    raw = MTCNN()
    assert len(raw.detect_faces(three_faces)) == 3
    assert raw.detect_faces(three_faces, min_face_size=80) == []


@pytest.mark.parametrize("min_face", [20, 40, 80, 100])
def test_min_face_size_is_honoured_by_downscaling(three_faces, min_face):
    faces = MtcnnDetector(min_face_size=min_face).detect(three_faces)
    assert len(faces) == 3
    for face in faces:
        x, y, w, h = face.box
        assert 100 <= w <= 260 and 0 <= x < 640 and 0 <= y < 480
        # Landmarks fall inside the box, eyes above the mouth.
        (lx, ly), (rx, ry), _, (mlx, mly), (mrx, mry) = face.landmarks
        assert x <= lx < rx <= x + w and ly < mly and ry < mry


def test_faces_smaller_than_min_face_size_are_ignored(three_faces):
    assert MtcnnDetector(min_face_size=300).detect(three_faces) == []


def test_very_large_photo_is_downscaled_before_detection(seed):
    import cv2

    image = read_image(sorted((seed.dataset / "val" / "jerry_seinfeld").iterdir())[0])
    big = cv2.resize(image, None, fx=8, fy=8, interpolation=cv2.INTER_LINEAR)
    faces = MtcnnDetector(max_side=1024).detect(big)
    ref = MtcnnDetector().detect(image)
    assert len(faces) == 1 and len(ref) == 1
    # Boxes come back in the big photo's pixels.
    assert faces[0].box[2] == pytest.approx(8 * ref[0].box[2], rel=0.15)


def test_blank_and_tiny_images_have_no_faces():
    det = MtcnnDetector()
    assert det.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert det.detect(np.zeros((10, 10, 3), np.uint8)) == []
    with pytest.raises(ImageError):
        det.detect(np.zeros((100, 100), np.uint8))


def test_similarity_transform_recovers_a_known_similarity():
    src = canonical_landmarks()
    angle, scale, shift = np.deg2rad(17), 1.7, np.array([33.0, -12.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (scale * src @ rot.T) + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot, atol=1e-9)
    assert np.allclose(m[:, 2], shift, atol=1e-9)
    with pytest.raises(ImageError):
        similarity_transform(np.ones((5, 2)), dst)


def test_alignment_puts_landmarks_on_the_template(seed, pipeline):
    """Re-detecting on the aligned crop finds the landmarks where the template wants them."""
    image = read_image(sorted((seed.dataset / "train" / "madonna").iterdir())[2])
    det = pipeline.detector.detect(image)[0]
    # Rotate the photo by 25°: alignment must undo it.
    import cv2

    h, w = image.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)
    turned = cv2.warpAffine(image, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
    det_t = pipeline.detector.detect(turned)[0]
    assert abs(det_t.landmarks[0][1] - det_t.landmarks[1][1]) > 10  # eyes no longer level
    crop = pipeline.align(turned, [det_t])[0]
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    again = MtcnnDetector().detect(cv2.resize(crop, (320, 320)))
    assert again, "the aligned face must still be a face"
    pts = again[0].landmarks_array() / 2.0
    target = canonical_landmarks(160, pipeline.align_margin)
    assert np.abs(pts - target).max() < 12  # pixels of a 160-px crop
    assert abs(pts[0, 1] - pts[1, 1]) < 5  # eyes level again
    del det


def test_detection_dataclass_is_frozen():
    d = Detection((1, 2, 3, 4), 0.9, ((0, 0), (1, 0), (0.5, 0.5), (0, 1), (1, 1)))
    with pytest.raises(AttributeError):
        d.box = (0, 0, 0, 0)  # type: ignore[misc]
    assert d.size == 3
