"""Frozen dataclasses that cross module and thread boundaries.

Conventions written into the types, converted only at the edges:

- images are ``uint8`` **RGB** ``(H, W, 3)`` arrays (OpenCV's BGR is converted where frames enter);
- boxes are ``(x, y, w, h)`` in pixels of the image the caller passed in;
- landmarks are five ``(x, y)`` points in the order left eye, right eye, nose, mouth left, mouth right
  (left/right as seen in the image);
- embeddings are L2-normalised ``float32`` vectors tagged with the embedder's name and version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]
Point = tuple[float, float]
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
UNKNOWN = "unknown"


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (a :data:`Box`, or one in float pixels)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Detection:
    """One face found by the detector."""

    box: Box
    confidence: float
    landmarks: tuple[Point, Point, Point, Point, Point]

    @property
    def size(self) -> int:
        """The shorter side of the box in pixels."""
        return min(self.box[2], self.box[3])

    def landmarks_array(self) -> np.ndarray:
        """Landmarks as a ``(5, 2)`` float32 array."""
        return np.asarray(self.landmarks, dtype=np.float32)


@dataclass(frozen=True)
class ModelVote:
    """One classifier's opinion of one face."""

    model: str
    identity: str
    probability: float


@dataclass(frozen=True)
class Decision:
    """The open-set decision for one face: a name, or :data:`UNKNOWN`, and why."""

    identity: str
    accepted: bool
    distance: float
    threshold: float
    margin: float
    reason: str


@dataclass(frozen=True)
class FaceResult:
    """Everything FaceGate knows about one face in one image or frame.

    ``probabilities`` and ``votes`` are each model's probabilities *given that the face is an enrolled
    person*; ``enrolled`` is the gate's probability that it is one at all, from its distance to the
    nearest enrolled identity (:meth:`core.recognition.openset.Calibration.enrolled_probability`);
    ``None`` when the face was not recognised (cut by the frame's edge).
    """

    detection: Detection
    votes: tuple[ModelVote, ...]
    probabilities: dict[str, dict[str, float]] = field(hash=False)
    decision: Decision
    nearest: str
    model_version: str
    enrolled: float | None = None
