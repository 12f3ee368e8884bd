"""Capturing an operator's enrollment shots from a live camera: feedback, pose guide, a varied set.

What the enrollment wizard (and any other front end) needs besides the quality gate itself
(:mod:`core.vision.quality`):

* :func:`feedback` turns a :class:`~core.vision.quality.QualityReport` into **one** plain sentence for
  the person in front of the camera ("Move closer to the camera.", "Only one person in the picture,
  please."), the most useful one first;
* :func:`pose_bucket` sorts a face into one of :data:`POSES` from its five landmarks (the same yaw and
  pitch the gate measures), so a guide can ask for what is still missing;
* :class:`CapturePlan` decides which frames become enrollment shots: a shot must pass the gate, fill a
  pose that still needs shots (automatic capture) and not be a near-duplicate of a shot already kept
  (two frames of a still face embed within a few hundredths of each other: the same photo flipped is
  0.16–0.34 apart, two real photos of one person 0.44 and more — measured on the seed photos).

The smile
---------
A smile widens the mouth: the distance between the mouth corners grows from 0.7–0.95 eye distances
(neutral faces of the seed photos) to 1.1 on the one clearly smiling seed photo.  :func:`pose_bucket`
calls a level, frontal face with the mouth at least :data:`SMILE_MOUTH_RATIO` eye distances wide a
smile.  It is a rough cue measured on few photos — a person with a wide mouth may count as smiling, a
closed-lip smile may not — so the wizard also lets HR take the smile by hand.

Nothing here touches the registry or Qt; the caller embeds the face (``FacePipeline.embed``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from core.types import Detection
from core.vision.quality import QualityReport, QualityThresholds, pose

__all__ = [
    "DEFAULT_QUOTA",
    "NEAR_DUPLICATE",
    "POSES",
    "POSE_HINTS",
    "SMILE_MOUTH_RATIO",
    "CapturePlan",
    "Offer",
    "Shot",
    "feedback",
    "mouth_ratio",
    "pose_bucket",
]

POSES = ("frontal", "left", "right", "up", "down", "smile")
"""The pose buckets, in the order the guide asks for them.  ``left``/``right`` are as seen on the screen."""

POSE_HINTS: Mapping[str, str] = {
    "frontal": "look straight at the camera",
    "left": "turn the head a little, nose towards the left of the picture",
    "right": "turn the head a little, nose towards the right of the picture",
    "up": "lift the chin a little",
    "down": "lower the chin a little",
    "smile": "look at the camera and smile",
}
"""What to ask the person for each pose, in plain words."""

DEFAULT_QUOTA: Mapping[str, int] = {"frontal": 4, "left": 2, "right": 2, "up": 1, "down": 1, "smile": 2}
"""Shots per pose of the default plan: 12 in all."""

NEAR_DUPLICATE = 0.2
"""A shot closer than this (embedding distance) to a kept shot adds nothing and is skipped."""

YAW_TURNED = 0.15
"""``|yaw|`` beyond which a face counts as turned left or right (the gate allows up to 0.45)."""
PITCH_UP, PITCH_DOWN = 0.45, 0.68
"""Pitch below ``PITCH_UP`` counts as looking up, above ``PITCH_DOWN`` as looking down (level ≈ 0.57)."""
SMILE_MOUTH_RATIO = 1.0
"""Mouth width, in eye distances, from which a level frontal face counts as smiling (see module doc)."""

_SHOT_IDS = itertools.count(1)


def feedback(report: QualityReport | None, n_faces: int | None = None) -> str:
    """One plain-language sentence for the person being enrolled about this frame.

    Parameters
    ----------
    report
        The gate's verdict on the frame; ``None`` when the frame could not be checked (no frame yet).
    n_faces
        Faces the detector found; taken from the report's ``faces`` check when ``None``.

    Returns
    -------
    str
        "Good — hold still." when the frame passes, else the sentence of the first failed check in
        order of what to fix first: the number of faces, the face size, the light, the blur, the pose.
    """
    if report is None:
        return "Waiting for the camera…"
    if n_faces is None:
        faces = report.checks.get("faces")
        n_faces = int(faces.value) if faces is not None else (1 if report.detection is not None else 0)
    if n_faces == 0:
        return "No face found — look at the camera, in good light, with nothing covering the face."
    if n_faces > 1:
        return f"Only one person in the picture, please ({n_faces} faces found)."
    if report.passed:
        return "Good — hold still."
    checks = report.checks
    if "face_size" in checks and not checks["face_size"].ok:
        return f"Move closer to the camera (the face is {checks['face_size'].value:.0f} px, needs " \
               f"{_limit(checks['face_size'].limit):.0f})."
    if "brightness" in checks and not checks["brightness"].ok:
        low = _limit(checks["brightness"].limit, 0)
        if checks["brightness"].value < low:
            return "Too dark — add light in front of the face, not behind it."
        return "Too bright — avoid direct sunlight or a flash on the face."
    if "sharpness" in checks and not checks["sharpness"].ok:
        return "The picture is blurred — hold still, and check the camera's focus and lens."
    if "yaw" in checks and not checks["yaw"].ok:
        return "Look straight at the camera — the head is turned too far to the side."
    if "pitch" in checks and not checks["pitch"].ok:
        high = _limit(checks["pitch"].limit, 1)
        value = checks["pitch"].value
        if math.isfinite(value) and value > high:
            return "Look straight at the camera — raise the chin a little."
        return "Look straight at the camera — lower the chin a little."
    return report.reason or "This picture cannot be used."


def _limit(limit: float | tuple[float, float], index: int = 0) -> float:
    return float(limit[index]) if isinstance(limit, tuple) else float(limit)


def mouth_ratio(detection: Detection) -> float:
    """Distance between the mouth corners in eye distances (NaN for degenerate landmarks)."""
    pts = detection.landmarks_array().astype(np.float64)
    eyes = float(np.hypot(*(pts[1] - pts[0])))
    if eyes < 1e-6:
        return math.nan
    return float(np.hypot(*(pts[4] - pts[3]))) / eyes


def pose_bucket(detection: Detection) -> str:
    """The pose of a face: ``frontal``, ``left``, ``right``, ``up``, ``down`` or ``smile``.

    Turned left/right (``|yaw| > YAW_TURNED``, as seen on the screen: ``left`` when the nose is towards
    the picture's left) wins over up/down; a level frontal face with a wide mouth is a ``smile``.
    Degenerate landmarks count as ``frontal`` (the gate refuses such faces anyway).
    """
    yaw, pitch = pose(detection)
    if math.isfinite(yaw) and abs(yaw) > YAW_TURNED:
        return "left" if yaw < 0 else "right"
    if math.isfinite(pitch):
        if pitch < PITCH_UP:
            return "up"
        if pitch > PITCH_DOWN:
            return "down"
    ratio = mouth_ratio(detection)
    if math.isfinite(ratio) and ratio >= SMILE_MOUTH_RATIO:
        return "smile"
    return "frontal"


@dataclass(frozen=True, eq=False)
class Shot:
    """One accepted enrollment shot.

    Attributes
    ----------
    id
        A number unique in this process (to remove the shot again).
    image
        The whole RGB frame (what is enrolled: the gate runs again on it when it is stored).
    report
        The gate's verdict (passed) with its figures.
    embedding
        The face's L2-normalised embedding.
    pose
        Its :data:`POSES` bucket (as measured, or as HR said for a shot taken by hand).
    manual
        Taken by hand or imported from a file, rather than captured automatically.
    origin
        Where it came from: ``"camera"`` or the imported file's name.
    """

    id: int
    image: np.ndarray = field(repr=False)
    report: QualityReport = field(repr=False)
    embedding: np.ndarray = field(repr=False)
    pose: str
    manual: bool = False
    origin: str = "camera"

    def figures(self) -> dict[str, float]:
        """Face size, sharpness, brightness, yaw and pitch (what the review grid shows)."""
        return {name: float(check.value) for name, check in self.report.checks.items() if name != "faces"}


@dataclass(frozen=True)
class Offer:
    """What :meth:`CapturePlan.offer` did with a frame: ``shot`` when kept, and why in ``reason``."""

    accepted: bool
    reason: str
    pose: str | None = None
    shot: Shot | None = None


class CapturePlan:
    """Which frames become enrollment shots; see the module docstring.

    Parameters
    ----------
    quota
        Shots wanted per pose (default :data:`DEFAULT_QUOTA`, 12 in all).
    near_duplicate
        Embedding distance under which a frame is a near-duplicate of a kept shot.
    thresholds
        Only used to say so in the reason of a refused frame; the caller runs the gate.
    """

    def __init__(self, quota: Mapping[str, int] | None = None, near_duplicate: float = NEAR_DUPLICATE,
                 thresholds: QualityThresholds | None = None) -> None:
        quota = dict(DEFAULT_QUOTA if quota is None else quota)
        unknown = set(quota) - set(POSES)
        if unknown:
            raise ValueError(f"Unknown poses {sorted(unknown)}; use {', '.join(POSES)}.")
        if any(n < 0 for n in quota.values()) or sum(quota.values()) < 1:
            raise ValueError("The quota must ask for at least one shot and no negative counts.")
        self.quota = {p: int(quota.get(p, 0)) for p in POSES}
        self.near_duplicate = float(near_duplicate)
        self.thresholds = thresholds or QualityThresholds()
        self.shots: list[Shot] = []

    @property
    def target(self) -> int:
        """Shots the plan asks for in all."""
        return sum(self.quota.values())

    def counts(self) -> dict[str, int]:
        """Shots kept per pose."""
        out = dict.fromkeys(POSES, 0)
        for shot in self.shots:
            out[shot.pose] = out.get(shot.pose, 0) + 1
        return out

    def missing(self) -> dict[str, int]:
        """Shots still wanted per pose (only poses that still want some)."""
        counts = self.counts()
        return {p: self.quota[p] - counts[p] for p in POSES if counts[p] < self.quota[p]}

    @property
    def complete(self) -> bool:
        """Every pose has its shots."""
        return not self.missing()

    def nearest(self, embedding: np.ndarray) -> tuple[Shot | None, float]:
        """The kept shot nearest to ``embedding`` and its distance (``None, inf`` without shots)."""
        if not self.shots:
            return None, math.inf
        kept = np.stack([s.embedding for s in self.shots])
        d = np.linalg.norm(kept - np.asarray(embedding, dtype=np.float32)[None, :], axis=1)
        i = int(np.argmin(d))
        return self.shots[i], float(d[i])

    def offer(self, image: np.ndarray, report: QualityReport, embedding: np.ndarray | None, *,
              manual: bool = False, pose_name: str | None = None, origin: str = "camera") -> Offer:
        """Keep the frame as a shot if it passes the gate, fills a pose and is no near-duplicate.

        Parameters
        ----------
        image
            The RGB frame.
        report
            The gate's verdict on it.
        embedding
            Its face's embedding (``None`` when the gate refused it: not needed then).
        manual
            Taken by hand (or imported): kept even if its pose already has its shots.
        pose_name
            The pose HR says the shot shows (a smile taken by hand); else measured.
        origin
            ``"camera"`` or the file's name.
        """
        if not report.passed or report.detection is None or embedding is None:
            return Offer(False, feedback(report))
        measured = pose_bucket(report.detection)
        bucket = pose_name if pose_name in POSES else measured
        counts = self.counts()
        if not manual and counts[bucket] >= self.quota[bucket]:
            return Offer(False, f"enough '{bucket}' shots already", bucket)
        twin, distance = self.nearest(embedding)
        if twin is not None and distance < self.near_duplicate:
            return Offer(False, f"almost the same as shot {self.shots.index(twin) + 1} (distance {distance:.2f})",
                         bucket)
        shot = Shot(next(_SHOT_IDS), image, report, np.asarray(embedding, dtype=np.float32), bucket, manual, origin)
        self.shots.append(shot)
        return Offer(True, f"kept: {bucket} ({len(self.shots)} of {self.target})", bucket, shot)

    def remove(self, shot_id: int) -> bool:
        """Forget a kept shot; whether it was there."""
        for i, shot in enumerate(self.shots):
            if shot.id == shot_id:
                del self.shots[i]
                return True
        return False
