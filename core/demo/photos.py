"""The demo photos and the faces in them: finding the photos, keeping those that show one clear face,
and the detector whose answers are cached on disk (:class:`_FaceBoxes`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import AssetError
from core.types import Detection
from core.vision.imageio import is_image_path

if TYPE_CHECKING:
    from core.vision.detector import Detector

log = logging.getLogger(__name__)

# Photos must show one clear face of a usable size to become sprites.
MIN_CONFIDENCE = 0.9
MIN_FACE_PX = 40
_CACHE_VERSION = 3


def _interleave(lists: Sequence[Sequence[Path]]) -> list[Path]:
    out: list[Path] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise AssetError(f"The demo photo folder {folder} is missing; delete the seed cache and run again.")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))


def _single_face(faces: Sequence[Detection]) -> Detection | None:
    """The photo's face if it shows exactly one, clear and large enough; else None.

    A second face would end up partly inside the crop and be detected without a truth box.
    """
    if len(faces) != 1:
        return None
    face = faces[0]
    if face.confidence < MIN_CONFIDENCE or min(face.box[2], face.box[3]) < MIN_FACE_PX:
        return None
    return face


class _FaceBoxes:
    """A detector whose answers are cached by the image's content, so later starts need no detector.

    The cache (``cache_dir()/demo/faces.json``) maps the SHA-256 of an image's pixels to the faces
    found in it; it holds the demo photos and the sprite probes (see :func:`core.demo.script._assemble`).
    """

    def __init__(self, detector: Detector | None, use_cache: bool) -> None:
        from core.assets import cache_dir

        if detector is None:
            from core.vision.backends import make_detector

            detector = make_detector()  # loads its networks on first use only
        self.path = cache_dir() / "demo" / "faces.json"
        self._detector = detector
        # Answers depend on the detector and its settings: a detector that ignores small faces must
        # not reuse another's answers.  MTCNN finds the same faces on either backend (issue 13).
        kind = type(detector).__name__
        self._tag = ",".join(
            ["MtcnnDetector" if kind in ("OnnxMtcnnDetector", "FallbackDetector") else kind]
            + [f"{name}={getattr(detector, name, None)}" for name in ("min_face_size", "min_confidence", "max_side")]
        )
        self._use_cache = use_cache
        self._entries: dict[str, list[list[float]]] = {}
        self._dirty = False
        if use_cache and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == _CACHE_VERSION and isinstance(data.get("faces"), dict):
                    self._entries = data["faces"]
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("demo scene: ignoring unreadable face cache %s (%s)", self.path, exc)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces in ``image`` (``uint8`` RGB), from the cache or the detector."""
        digest = hashlib.sha256(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).data)
        key = f"{self._tag}:{digest.hexdigest()}"
        cached = self._entries.get(key) if self._use_cache else None
        if cached is not None:
            try:
                return [
                    Detection(
                        (int(r[0]), int(r[1]), int(r[2]), int(r[3])),
                        float(r[4]),
                        tuple((float(r[5 + 2 * k]), float(r[6 + 2 * k])) for k in range(5)),  # type: ignore[arg-type]
                    )
                    for r in cached
                ]
            except (IndexError, TypeError, ValueError):
                log.warning("demo scene: ignoring a malformed face cache entry")
        faces = self._detector.detect(image)
        self._entries[key] = [
            [*d.box, d.confidence, *(c for point in d.landmarks for c in point)] for d in faces
        ]
        self._dirty = True
        return faces

    def save(self) -> None:
        if not (self._use_cache and self._dirty):
            return
        tmp = None
        try:
            # Other processes (a test run, the console) may have added entries since we read the file.
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == _CACHE_VERSION and isinstance(data.get("faces"), dict):
                    self._entries = {**data["faces"], **self._entries}
            except (OSError, ValueError, AttributeError):
                pass
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".faces-", suffix=".json", dir=self.path.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": _CACHE_VERSION, "faces": self._entries}, fh)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError as exc:  # a read-only cache only costs detection time on the next start
            log.warning("demo scene: could not write the face cache %s (%s)", self.path, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
