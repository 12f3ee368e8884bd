"""The enrollment quality gate: is this photo good enough to enroll an operator with?

A photo is enrolled only if it shows exactly one face that is large enough, sharp, neither too dark nor
too bright, and roughly frontal.  Each check has a figure, a limit and a sentence an HR clerk can act on
("face size: face too small, 32 px, needs ≥ 40 px — move closer to the camera").  The gate never
changes the photo; it only measures it.

How each figure is measured
---------------------------
faces
    Number of faces the pipeline's detector finds; exactly one is required, so it is clear whose face
    is enrolled.  With none or several the other checks are not run — unless the caller asks for the
    *largest face* (``largest_face=True``, ``facegate import --largest-face``): then, in a photo with
    bystanders, the face with the largest box area is the one checked, provided it is clearly the
    subject (its area at least :attr:`QualityThresholds.min_largest_face_ratio` times the next
    largest); faces of similar size are refused, since nothing tells which one is being enrolled.
face_size
    Shorter side of the detector's box, in pixels of the photo.
sharpness
    Variance of the Laplacian of the aligned 160×160 grey face (the crop FaceNet sees), so it does
    not depend on the photo's size or on the background.
brightness
    Mean grey level (0–255) of the aligned face.
yaw, pitch
    From the five landmarks, in the face's own frame (x along the line between the eyes, y
    perpendicular to it), so that a head tilted sideways (roll) — which alignment undoes — is not
    mistaken for a turned head.  ``yaw = (nose_x − eye_mid_x) / eye_distance`` is 0 for a frontal
    face and grows towards ±0.5 and beyond as the head turns.  ``pitch = (nose_y − eye_mid_y) /
    (mouth_mid_y − eye_mid_y)`` is the nose's height between eyes and mouth: about 0.55 for a level
    head, smaller when the head is tilted up, larger when tilted down.

The default limits (:class:`QualityThresholds`) were set on the 5-celebrity faces (93 train and 25 val
web photos) with this pipeline.  Their percentiles 0/5/50/95/100: face size 23/33/77/126/163 px;
sharpness 10/23/150/505/879 (the same faces Gaussian-blurred with σ = 2.5: 2.6/3.0/4.9/8.4/10.5);
brightness 68/80/127/178/199; yaw −0.78/−0.34/0.02/0.35/0.75; pitch 0.28/0.37/0.57/0.72/0.79.

* ``min_face_px = 40``: FaceNet sees a 160 px crop; a face under 40 px is upscaled four times and
  its embedding is mostly guesswork.  A gate or HR-desk camera gives 100 px and more; the celebrity
  photos are small web images, and 9 of their 88 single-face train photos are under 40 px.
* ``min_sharpness = 15``: below the 1st percentile of the real faces and above nearly every blurred
  one.  A blur of a given radius in photo pixels is milder on a larger face: the largest face
  (163 px) blurred with σ = 2.5 still scores 20, with σ = 3 it scores 14.
* ``brightness 40–220``: well outside the real range (68–199); only a really dark or burnt-out face
  fails.
* ``max_yaw = 0.45``: the 5 %–95 % range is −0.34…0.35; beyond ±0.45 the head is in half profile
  and the far eye is partly hidden (six train photos, each visibly turned away from the camera).
* ``pitch 0.2–0.85``: every real face passes (0.28–0.79); the limits catch a head thrown back or
  bowed far enough to hide the eyes or the mouth.
* ``min_largest_face_ratio = 2`` (box area of the largest face over the next largest, used only with
  ``largest_face``): 4 of the 93 train photos show two faces.  The two where the subject stands alone in
  front (a bystander's face far behind; a false detection beside the face) have ratios 6.7 and 6.8; the
  two where a second person stands beside the subject have 1.1 and 1.7 and are refused.  An area twice
  as large is a face about 1.4 times as wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from core.errors import ImageError
from core.types import Detection

__all__ = [
    "CHECK_NAMES",
    "QualityCheck",
    "QualityReport",
    "QualityThresholds",
    "check_face",
    "check_quality",
    "pose",
]

CHECK_NAMES = ("faces", "face_size", "sharpness", "brightness", "yaw", "pitch")
"""Keys of :attr:`QualityReport.checks`, in the order they are run."""


class _Pipeline(Protocol):
    """What the gate needs of :class:`core.recognition.engine.FacePipeline`."""

    @property
    def detector(self) -> Any: ...

    def align(self, image: np.ndarray, detections: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the quality gate.  See the module docstring for how the defaults were chosen.

    Attributes
    ----------
    min_face_px
        Shorter side of the face box, in pixels of the photo.
    min_sharpness
        Variance of the Laplacian of the aligned grey face.
    min_brightness, max_brightness
        Mean grey level (0–255) of the aligned face.
    max_yaw
        Largest ``|yaw|`` (nose offset from the eye midpoint, in eye distances).
    min_pitch, max_pitch
        Range of the nose's height between the eyes (0) and the mouth (1).
    min_largest_face_ratio
        With ``largest_face``, how many times the next largest face's box area the largest face's
        must be for it to count as the subject of the photo.
    """

    min_face_px: int = 40
    min_sharpness: float = 15.0
    min_brightness: float = 40.0
    max_brightness: float = 220.0
    max_yaw: float = 0.45
    min_pitch: float = 0.2
    max_pitch: float = 0.85
    min_largest_face_ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.min_face_px < 1:
            raise ValueError("min_face_px must be at least 1 pixel.")
        if self.min_sharpness < 0:
            raise ValueError("min_sharpness cannot be negative.")
        if not 0 <= self.min_brightness < self.max_brightness <= 255:
            raise ValueError("The brightness range must satisfy 0 ≤ min_brightness < max_brightness ≤ 255.")
        if self.max_yaw <= 0:
            raise ValueError("max_yaw must be positive.")
        if not self.min_pitch < self.max_pitch:
            raise ValueError("min_pitch must be smaller than max_pitch.")
        if not self.min_largest_face_ratio > 1:
            raise ValueError("min_largest_face_ratio must be greater than 1 (the largest face must be "
                             "clearly larger than the next).")


@dataclass(frozen=True)
class QualityCheck:
    """One check of the gate: the measured ``value``, its ``limit``, whether it is ``ok``, and why.

    ``limit`` is a minimum, a maximum or a ``(low, high)`` range, as ``message`` says.
    """

    value: float
    limit: float | tuple[float, float]
    ok: bool
    message: str


@dataclass(frozen=True, eq=False)
class QualityReport:
    """The gate's verdict on one photo.

    Attributes
    ----------
    passed
        True if every check passed.
    checks
        Check name (see :data:`CHECK_NAMES`) → :class:`QualityCheck`.  With no face or several
        faces only ``"faces"`` is present (several faces: unless the largest one was chosen).
    detection
        The one face, or the chosen largest face; ``None`` when there is none to check.
    aligned
        Its aligned 160×160 RGB crop (what FaceNet embeds), or ``None``.
    others
        The faces that were not chosen when the largest face was (largest first), else empty.
    """

    passed: bool
    checks: dict[str, QualityCheck]
    detection: Detection | None = None
    aligned: np.ndarray | None = field(default=None, repr=False)
    others: tuple[Detection, ...] = ()

    @property
    def largest_face_chosen(self) -> bool:
        """True if the photo showed several faces and the largest one was checked (``largest_face``)."""
        return self.detection is not None and bool(self.others)

    @property
    def largest_face_ratio(self) -> float | None:
        """Box area of the chosen face over the next largest one's, when the largest face was chosen."""
        if self.detection is None or not self.others:
            return None
        return _area(self.detection) / max(_area(self.others[0]), 1)

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the checks that failed, in check order."""
        return tuple(name for name, check in self.checks.items() if not check.ok)

    @property
    def reason(self) -> str:
        """The failed checks' messages joined into one sentence ('' if the photo passed)."""
        return "; ".join(check.message for check in self.checks.values() if not check.ok)

    def figures(self) -> dict[str, Any]:
        """Plain JSON-able numbers to store with an accepted photo (face size, sharpness …, box)."""
        out: dict[str, Any] = {name: round(float(check.value), 4) for name, check in self.checks.items()}
        if self.detection is not None:
            out["box"] = list(self.detection.box)
            out["confidence"] = round(float(self.detection.confidence), 4)
        ratio = self.largest_face_ratio
        if ratio is not None:
            out["largest_face_ratio"] = round(ratio, 4)
            out["other_boxes"] = [list(d.box) for d in self.others]
        return out


def _area(detection: Detection) -> int:
    """Box area in pixels of the photo."""
    return int(detection.box[2]) * int(detection.box[3])


def pose(detection: Detection) -> tuple[float, float]:
    """``(yaw, pitch)`` of a face from its five landmarks, measured in the face's own frame.

    Returns NaN for both when the eyes coincide or the mouth is level with the eyes (degenerate
    landmarks), which the gate treats as failing.
    """
    pts = detection.landmarks_array().astype(np.float64)
    left_eye, right_eye, nose, mouth_left, mouth_right = pts
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_left + mouth_right) / 2
    across = right_eye - left_eye
    eye_distance = float(np.hypot(*across))
    if eye_distance < 1e-6:
        return math.nan, math.nan
    ux = across / eye_distance
    uy = np.array([-ux[1], ux[0]])  # ux turned by +90°; image y points down, so uy points to the mouth
    yaw = float((nose - eye_mid) @ ux) / eye_distance
    drop = float((mouth_mid - eye_mid) @ uy)
    if drop < 1e-6:
        return yaw, math.nan
    pitch = float((nose - eye_mid) @ uy) / drop
    return yaw, pitch


def _sharpness_brightness(aligned: np.ndarray) -> tuple[float, float]:
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(aligned), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var()), float(grey.mean())


def _check(label: str, value: float, limit: float | tuple[float, float], ok: bool, shown: str, needs: str,
           problem: str, advice: str) -> QualityCheck:
    """A check whose message reads "label: shown (needs …)", or "label: problem, shown, needs … — advice"."""
    message = (f"{label}: {shown} (needs {needs})" if ok else
               f"{label}: {problem}, {shown}, needs {needs} — {advice}")
    return QualityCheck(value, limit, ok, message)


def check_face(detection: Detection, aligned: np.ndarray,
               thresholds: QualityThresholds | None = None) -> QualityReport:
    """Run the size, sharpness, brightness and pose checks on one detected face.

    Parameters
    ----------
    detection
        The face, in the photo's pixel coordinates.
    aligned
        Its aligned ``(160, 160, 3)`` uint8 RGB crop.
    thresholds
        Limits; the defaults when ``None``.
    """
    t = thresholds or QualityThresholds()
    checks: dict[str, QualityCheck] = {"faces": QualityCheck(1, 1, True, "faces: exactly one face")}

    size = int(detection.size)
    checks["face_size"] = _check(
        "face size", size, t.min_face_px, size >= t.min_face_px, f"{size} px", f"≥ {t.min_face_px} px",
        "face too small", "move closer to the camera or use a larger photo")

    sharpness, brightness = _sharpness_brightness(aligned)
    checks["sharpness"] = _check(
        "sharpness", sharpness, t.min_sharpness, sharpness >= t.min_sharpness, f"{sharpness:.1f}",
        f"≥ {t.min_sharpness:g}", "photo too blurred", "hold still, focus the camera and clean its lens")

    dark = brightness < t.min_brightness
    checks["brightness"] = _check(
        "brightness", brightness, (t.min_brightness, t.max_brightness),
        t.min_brightness <= brightness <= t.max_brightness, f"{brightness:.0f}",
        f"{t.min_brightness:g}–{t.max_brightness:g}", "face too dark" if dark else "face too bright",
        "add light in front of the face, not behind it" if dark else
        "avoid direct sunlight or flash on the face")

    yaw, pitch = pose(detection)
    checks["yaw"] = _check(  # NaN compares false: degenerate landmarks fail
        "pose", yaw, t.max_yaw, bool(abs(yaw) <= t.max_yaw), f"yaw {yaw:+.2f}", f"within ±{t.max_yaw:g}",
        "face turned to the side", "look straight into the camera")
    way = "up" if pitch < t.min_pitch else "down" if pitch > t.max_pitch else "up or down"
    checks["pitch"] = _check(
        "pose", pitch, (t.min_pitch, t.max_pitch), bool(t.min_pitch <= pitch <= t.max_pitch),
        f"pitch {pitch:.2f}", f"{t.min_pitch:g}–{t.max_pitch:g}", f"head tilted {way}",
        "hold the head level and look straight into the camera")

    return QualityReport(all(c.ok for c in checks.values()), checks, detection, aligned)


def check_quality(image: np.ndarray, pipeline: _Pipeline,
                  thresholds: QualityThresholds | None = None, *, largest_face: bool = False) -> QualityReport:
    """Run the whole quality gate on one photo.

    Parameters
    ----------
    image
        ``uint8`` RGB ``(H, W, 3)`` photo or camera frame.
    pipeline
        A :class:`core.recognition.engine.FacePipeline` (its detector and alignment are used).
    thresholds
        Limits; the defaults when ``None``.
    largest_face
        In a photo with several faces, check the one with the largest box area instead of refusing
        the photo — if its area is at least ``thresholds.min_largest_face_ratio`` times the next
        largest; faces of similar size are still refused.  The report's ``"faces"`` check then says
        how many faces were found and :attr:`QualityReport.others` holds the faces left out.

    Returns
    -------
    QualityReport
        ``passed`` and every check's figure and message.  A photo with no face or several faces gets
        only the ``"faces"`` check (unless the largest face was chosen).

    Raises
    ------
    ImageError
        If ``image`` is not an 8-bit RGB array.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise ImageError(f"The quality gate needs an 8-bit RGB picture, not {type(image).__name__} {shape}.")
    detections = list(pipeline.detector.detect(image))
    n = len(detections)
    if n == 0:
        check = QualityCheck(0, 1, False, "faces: no face found — face the camera in good light, with "
                                          "nothing covering the face")
        return QualityReport(False, {"faces": check})
    if n > 1 and not largest_face:
        check = QualityCheck(n, 1, False, f"faces: {n} faces found, needs exactly one — only the person "
                                          "being enrolled may be in the picture")
        return QualityReport(False, {"faces": check})
    if n > 1:
        return _check_largest(image, detections, pipeline, thresholds or QualityThresholds())
    aligned = pipeline.align(image, detections)[0]
    return check_face(detections[0], aligned, thresholds)


def _check_largest(image: np.ndarray, detections: list[Detection], pipeline: _Pipeline,
                   t: QualityThresholds) -> QualityReport:
    """The gate on the largest of several faces, if it is clearly the subject; else a refusal."""
    n = len(detections)
    ordered = sorted(detections, key=_area, reverse=True)  # stable: equal areas keep the detector's order
    ratio = _area(ordered[0]) / max(_area(ordered[1]), 1)
    if ratio < t.min_largest_face_ratio:
        check = QualityCheck(n, 1, False, (
            f"faces: {n} faces found and the largest is only {ratio:.1f}× the area of the next (needs "
            f"≥ {t.min_largest_face_ratio:g}×) — the faces are of similar size, so it cannot tell who is being "
            "enrolled; crop the photo to that person"))
        return QualityReport(False, {"faces": check})
    aligned = pipeline.align(image, ordered[:1])[0]
    report = check_face(ordered[0], aligned, t)
    chosen = QualityCheck(n, 1, True, f"faces: {n} faces found, the largest ({ratio:.1f}× the area of the "
                                      "next) is the one checked")
    checks = {"faces": chosen, **{name: c for name, c in report.checks.items() if name != "faces"}}
    return replace(report, checks=checks, others=tuple(ordered[1:]))
