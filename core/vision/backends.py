"""Which runtime runs the networks: ONNX Runtime (the default) or TensorFlow (the reference).

Issue 13.  :func:`make_detector` and :func:`make_embedder` return the MTCNN detector and the FaceNet
embedder for a backend:

``onnx`` (:data:`DEFAULT_BACKEND`)
    The networks converted to ONNX on first use (TensorFlow is imported for that conversion only),
    cached beside the converted weights and checked against TensorFlow when converted
    (:mod:`core.vision.onnx_files`).  If a conversion is refused or ONNX Runtime cannot run it, the
    part falls back to TensorFlow and says so once in the log, with the reason; ``fallback_reason``
    holds that sentence for the status line.
``tf``
    TensorFlow, as before issue 13.

Both give the same detections and embeddings (to 1e-5, in practice 1e-7), and the embedder's
``name`` and ``version`` do not depend on the backend: galleries, trained models and caches made
with one stay valid with the other.  The ``backend`` attribute of a part says which runtime is
actually in use (after a fallback, ``tf``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from core.errors import ConversionError, FaceGateError, ModelError
from core.types import Detection

log = logging.getLogger(__name__)

BACKENDS = ("onnx", "tf")
DEFAULT_BACKEND = "onnx"
ENV_VAR = "FACEGATE_BACKEND"
"""Environment variable read by :func:`default_backend` (the ``--backend`` flags override it)."""


class BackendError(FaceGateError):
    """An unknown backend name."""


def default_backend() -> str:
    """``$FACEGATE_BACKEND`` if set (``onnx`` or ``tf``), else :data:`DEFAULT_BACKEND`.

    Raises
    ------
    BackendError
        If the variable names another backend.
    """
    return check_backend(os.environ.get(ENV_VAR) or DEFAULT_BACKEND)


def check_backend(name: str) -> str:
    """``name`` if it is a backend, else :class:`BackendError` naming the choices."""
    if name not in BACKENDS:
        raise BackendError(f"There is no inference backend {name!r}: choose one of {', '.join(BACKENDS)} "
                           f"(--backend, or ${ENV_VAR}).")
    return name


# Why a part's ONNX version failed in this process: later parts of the same kind go straight to
# TensorFlow instead of converting (and failing) again for every camera.
_FAILED: dict[str, str] = {}


class _WithFallback:
    """An ONNX part that turns into its TensorFlow twin if ONNX cannot be made or loaded.

    Attributes it does not have itself (``min_face_size``, ``name``, ``version`` …) are those of the
    part in use; neither part loads anything until :meth:`load` or the first call.
    """

    def __init__(self, what: str, onnx: Any, tf: Callable[[], Any]) -> None:
        self._what = what
        self._part = onnx
        self._make_tf = tf
        self._loaded = False
        self._lock = threading.Lock()
        self.fallback_reason: str | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._part, name)

    @property
    def backend(self) -> str:
        """The runtime in use: ``onnx``, or ``tf`` after a fallback."""
        return str(self._part.backend)

    @property
    def part(self) -> Any:
        """The detector or embedder in use."""
        return self._part

    def load(self) -> None:
        """Load the ONNX part, or the TensorFlow one if that fails (idempotent, thread-safe).

        Raises
        ------
        ModelError
            If the TensorFlow part cannot be loaded either (missing weights, a broken install).
        """
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            try:
                if self._what in _FAILED:
                    raise ConversionError(_FAILED[self._what])
                self._part.load()
            except (ConversionError, ModelError) as exc:
                first = self._what not in _FAILED
                _FAILED.setdefault(self._what, str(exc))
                self.fallback_reason = (f"The ONNX Runtime {self._what} is not available, so TensorFlow runs it "
                                        f"(slower to start and per face): {exc}")
                if first:
                    log.warning("%s", self.fallback_reason)
                self._part = self._make_tf()
                self._part.load()
            self._loaded = True


class FallbackDetector(_WithFallback):
    """The ONNX MTCNN detector, or TensorFlow's if ONNX cannot be used (see the module notes)."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces in ``image``, as :meth:`core.vision.detector.MtcnnDetector.detect` finds them."""
        self.load()
        return list(self._part.detect(image))


class FallbackEmbedder(_WithFallback):
    """The ONNX FaceNet, or TensorFlow's if ONNX cannot be used (see the module notes)."""

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """Embeddings of aligned faces, as :meth:`core.vision.facenet.FaceNetEmbedder.embed` computes them."""
        batch = np.asarray(faces)
        if batch.ndim == 4 and batch.shape[0] == 0:
            return np.asarray(self._part.embed(batch))  # no network needed, none loaded
        self.load()
        return np.asarray(self._part.embed(faces))


def make_detector(backend: str | None = None, *, min_face_size: int = 20, max_side: int = 1280,
                  min_confidence: float = 0.8) -> Any:
    """The MTCNN detector of ``backend`` (``None``: :func:`default_backend`); nothing is loaded yet.

    Raises
    ------
    BackendError
        If ``backend`` is not one of :data:`BACKENDS`.
    """
    from core.vision.detector import MtcnnDetector

    name = check_backend(backend or default_backend())

    def tf() -> MtcnnDetector:
        return MtcnnDetector(min_face_size=min_face_size, max_side=max_side, min_confidence=min_confidence)

    if name == "tf":
        return tf()
    from core.vision.onnx_detector import OnnxMtcnnDetector

    onnx = OnnxMtcnnDetector(min_face_size=min_face_size, max_side=max_side, min_confidence=min_confidence)
    return FallbackDetector("MTCNN detector", onnx, tf)


def make_embedder(backend: str | None = None) -> Any:
    """The FaceNet embedder of ``backend`` (``None``: :func:`default_backend`); nothing is loaded yet.

    Raises
    ------
    BackendError
        If ``backend`` is not one of :data:`BACKENDS`.
    """
    from core.vision.facenet import FaceNetEmbedder

    name = check_backend(backend or default_backend())
    if name == "tf":
        return FaceNetEmbedder()
    from core.vision.onnx_embedder import OnnxEmbedder

    onnx = OnnxEmbedder()
    return FallbackEmbedder("FaceNet embedder", onnx, lambda: FaceNetEmbedder())


def backend_of(part: Any) -> str:
    """The runtime a detector or embedder uses (``tf`` for parts that do not say)."""
    return str(getattr(part, "backend", "tf"))


__all__ = (
    "BACKENDS",
    "DEFAULT_BACKEND",
    "ENV_VAR",
    "BackendError",
    "FallbackDetector",
    "FallbackEmbedder",
    "backend_of",
    "check_backend",
    "default_backend",
    "make_detector",
    "make_embedder",
)
