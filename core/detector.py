"""Face detection with MTCNN (the ``mtcnn`` package, whose weights ship in its wheel).

The ``mtcnn`` 1.0.0 pyramid bug
-------------------------------
``mtcnn.utils.images.build_scale_pyramid`` counts its levels as if the pyramid started at scale 1
(``log(min_dim / 12) / log(scale_factor)``) but starts it at ``12 / min_face_size``.  With the default
``min_face_size=20`` the last level still leaves the image at least 12 px high, P-Net's window; with
``min_face_size=40`` or ``80`` the last levels shrink a 640×480 frame to 6 px or less, TensorFlow raises
``InvalidArgumentError`` on them, and ``MTCNN.detect_faces`` catches that error as "no faces found" — so
*every* face is silently lost.  We never pass ``min_face_size`` to the package: to ignore faces smaller
than ``min_face_size`` we downscale the image by ``20 / min_face_size`` ourselves, detect with the
package's default, and scale the boxes back.  That is also the cheapest speed lever: faces at a gate are
large, and P-Net's cost grows with the pixel count.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Protocol

import numpy as np

from core.errors import ImageError, ModelError
from core.imageio import downscale_to
from core.types import LANDMARK_NAMES, Detection

log = logging.getLogger(__name__)

# The smallest face the mtcnn package can safely look for (see the module docstring).
MTCNN_SAFE_MIN_FACE = 20


class Detector(Protocol):
    """Finds faces and their five landmarks in an RGB image."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Return the faces in ``image`` (``uint8`` RGB), most confident first."""
        ...


class MtcnnDetector:
    """MTCNN detector with a safe minimum face size and a cap on the image size.

    Parameters
    ----------
    min_face_size
        Faces whose shorter box side is below this (in source pixels) are ignored.  Values above 20
        are honoured by downscaling (see the module docstring).
    max_side
        Images whose longer side exceeds this are downscaled before detection (very large photos).
    min_confidence
        Detections below this O-Net confidence are dropped.
    """

    def __init__(self, min_face_size: int = 20, max_side: int = 1280, min_confidence: float = 0.8) -> None:
        self.min_face_size = min_face_size
        self.max_side = max_side
        self.min_confidence = min_confidence
        self._mtcnn: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build the three networks (idempotent)."""
        if self._mtcnn is not None:
            return
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            from mtcnn import MTCNN

            self._mtcnn = MTCNN()
        except Exception as exc:  # the package raises bare exceptions on missing weights
            raise ModelError(f"The MTCNN face detector could not be loaded ({exc}); reinstall FaceGate.") from exc

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Return the faces in ``image`` (``uint8`` RGB ``(H, W, 3)``), most confident first."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ImageError(f"Expected an 8-bit RGB image, got shape {image.shape} and type {image.dtype}.")
        h, w = image.shape[:2]
        if min(h, w) < 24:
            return []
        self.load()
        scale = min(1.0, MTCNN_SAFE_MIN_FACE / max(self.min_face_size, MTCNN_SAFE_MIN_FACE))
        small, s2 = downscale_to(image, round(max(h, w) * scale))
        small, s3 = downscale_to(small, self.max_side)
        total = s2 * s3
        if min(small.shape[:2]) < 24:
            return []
        with self._lock:  # the package's stages are not re-entrant
            raw = self._mtcnn.detect_faces(small)
        out = []
        for face in raw:
            conf = float(face["confidence"])
            if conf < self.min_confidence:
                continue
            x, y, bw, bh = (float(v) / total for v in face["box"])
            if min(bw, bh) < self.min_face_size:
                continue
            pts = tuple(
                (float(face["keypoints"][n][0]) / total, float(face["keypoints"][n][1]) / total)
                for n in LANDMARK_NAMES
            )
            out.append(Detection((round(x), round(y), round(bw), round(bh)), conf, pts))  # type: ignore[arg-type]
        out.sort(key=lambda d: d.confidence, reverse=True)
        return out


def largest(detections: list[Detection]) -> Detection | None:
    """Return the detection with the largest box, or None."""
    return max(detections, key=lambda d: d.box[2] * d.box[3], default=None)
