"""Face alignment: a similarity transform from the five MTCNN landmarks to a canonical 160×160 face.

The thesis crops the detector's box and stretches it to 160×160.  That keeps in the crop whatever the box
happens to hold and lets in-plane rotation through.  We instead solve for the rotation, uniform scale and
translation (Umeyama's least-squares similarity) that brings the five landmarks closest to a canonical
layout, and warp once.

The canonical layout is where the landmarks fall, on average, in the crops this FaceNet was trained on
(MTCNN box, stretched to 160×160): measured on the 5-celebrity train set with ``mtcnn`` 1.0 (median over
92 faces), then shrunk towards the centre by ``margin`` so the whole face stays in the picture.
"""

from __future__ import annotations

import numpy as np

from core.errors import ImageError
from core.types import Detection

ALIGNED_SIZE = 160
# Median landmark positions relative to the MTCNN box (x / width, y / height): left eye, right eye,
# nose, mouth left, mouth right.  See the module docstring for how they were measured.
BOX_RELATIVE_LANDMARKS = np.array(
    [[0.2635, 0.3892], [0.7314, 0.3814], [0.5214, 0.5943], [0.3053, 0.7519], [0.7298, 0.7391]],
    dtype=np.float64,
)


def canonical_landmarks(size: int = ALIGNED_SIZE, margin: float = 0.0) -> np.ndarray:
    """The five target points in a ``size``×``size`` aligned face, as a ``(5, 2)`` array."""
    rel = BOX_RELATIVE_LANDMARKS.copy()
    # Eyes level and mouth corners level: the template is symmetric, only the averages are kept.
    rel[[0, 1], 1] = rel[[0, 1], 1].mean()
    rel[[3, 4], 1] = rel[[3, 4], 1].mean()
    eye_half = (rel[1, 0] - rel[0, 0]) / 2
    mouth_half = (rel[4, 0] - rel[3, 0]) / 2
    rel[[0, 1], 0] = 0.5 - eye_half, 0.5 + eye_half
    rel[[3, 4], 0] = 0.5 - mouth_half, 0.5 + mouth_half
    rel[2, 0] = 0.5
    rel = 0.5 + (rel - 0.5) * (1.0 - 2.0 * margin)
    return rel * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping ``src`` points onto ``dst``; a 2×3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / n
    if var_s < 1e-9:
        raise ImageError("The face landmarks are degenerate (all in one point); the face cannot be aligned.")
    cov = d0.T @ s0 / n
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def align_face(
    image: np.ndarray, detection: Detection, size: int = ALIGNED_SIZE, margin: float = 0.0
) -> np.ndarray:
    """Warp the face of ``detection`` in ``image`` (RGB) to a canonical ``size``×``size`` RGB crop."""
    import cv2

    matrix = similarity_transform(detection.landmarks_array(), canonical_landmarks(size, margin))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_face(image: np.ndarray, detection: Detection, size: int = ALIGNED_SIZE) -> np.ndarray:
    """The thesis's alignment: the detector's box stretched to ``size``×``size`` (kept for comparison)."""
    import cv2

    x, y, w, h = detection.box
    x0, y0 = max(0, x), max(0, y)
    crop = image[y0 : y + h, x0 : x + w]
    if crop.size == 0:
        raise ImageError("The face box lies outside the picture.")
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
