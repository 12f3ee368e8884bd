"""FaceNet embeddings run by ONNX Runtime, converted from (and checked against) the TensorFlow network.

Issue 13: TensorFlow stays the reference; ONNX Runtime runs the same network faster per face (issue
13 measured 2.1× at batch 1 on an idle machine; ``benchmarks/results/onnx.json`` has this module's
figures) and imports in well under a second, where TensorFlow takes 3–5 s.

What the ONNX graph computes
    Exactly what :class:`~core.vision.facenet.FaceNetEmbedder`'s ``tf.function`` computes today: the
    rebuilt network with BatchNorm folded, from *prewhitened* float32 faces ``(N, 160, 160, 3)`` (``N``
    dynamic) to the raw 128-d bottleneck.  Prewhitening before it and L2 normalisation after it stay
    in NumPy (float64 internally), done by the very same functions as on the TensorFlow path, so the
    two backends differ only in the network's arithmetic (at most 4.5e-7 on real faces; 132
    Conv, 131 Relu, one Transpose after ``tf2onnx.convert.from_function``, opset 17).

The cached file
    ``<cache>/models/facenet-<sha256[:16]>-onnx-op17-tf2onnx<v>-tf<v>-v1.onnx``: named after the
    source weights' SHA-256 and the converter's versions (tf2onnx, TensorFlow, opset), beside the
    converted ``.npz`` weights, written by :func:`convert` only (temp file, then rename).  A JSON
    sidecar (same name, ``.json``) records the source SHA-256, the ``.onnx`` file's own SHA-256, the
    versions and the largest difference from TensorFlow measured at conversion.  :class:`OnnxEmbedder`
    hashes the bytes it is about to run and compares them with the sidecar, and the sidecar's source
    hash with the weights it was asked for; a damaged or mismatched pair is logged, deleted and
    converted again, never used.  Only a conversion imports TensorFlow.

Conversion check
    :func:`convert` embeds reference faces with both runtimes (8 deterministic pseudo-random faces and
    the five people's aligned val photos, detected and aligned as the pipeline does) and refuses the
    file (:class:`~core.errors.ConversionError`) if any L2-normalised embedding differs by more than
    :data:`MAX_ABS_DIFF` = 1e-5.

Threads (two cores shared by several cameras; one session serves every camera worker)
    ``intra_op_num_threads=2``, ``inter_op_num_threads=1``, sequential execution and
    ``session.intra_op.allow_spinning = "0"``.  Measured on this 2-core machine (onnxruntime 1.32,
    median ms per face of 30 calls, one process per setting, 5 runs each; "busy" = another job
    holding one core, load average 2–3, as when other cameras are detecting)::

        threads  spinning  batch 1 idle  batch 1 busy  batch 4 busy  CPU ms/face b1, b4
        1        0         28.6          27.4–28.9     25.5–26.0     27.3–28.9, 25.4–26.0
        1        1         —             27.6–28.1     25.4–25.7     27.6–28.0, 25.4–25.7
        2        0         17.0          28.3–32.7     26.1–28.1     28.5–32.3, 26.4–28.7
        2        1         45.5          45.5–55.8     42.1–43.4     50.0–55.3, 42.1–53.1

    With three threads at batch 1 (three cameras) the median was 28.3 (one thread) against 30.2 ms
    (two) with a session each on an idle machine, and 60.0–72.5 against 60.4–69.7 ms sharing one
    session on a busy one; two spinning threads took 86–161 ms.  Two threads nearly halve a lone
    face's latency when the other core is free (17.0 against 28.6 ms: one person at one gate) and
    cost 2–10 % more CPU per face when it is not.  Spinning gains nothing with one thread and is
    ruinous with two as soon as anything else wants the cores (the spinning worker takes the time
    the waiting work needs: 1.6–2× slower, up to 2× the CPU), so it is off.  ``OnnxEmbedder(threads=1)`` is the better choice where several
    cameras keep both cores busy all the time (``benchmarks/bench_onnx.py`` reports both).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.assets import cache_dir
from core.errors import AssetError, ConversionError
from core.vision import onnx_files
from core.vision.facenet import (
    CACHE_SUBDIR,
    EMBEDDING_SIZE,
    INPUT_SIZE,
    FaceNetEmbedder,
    embed_batches,
    face_batch,
    reference_mismatch,
    synthetic_faces,
)
from core.vision.onnx_files import OPSET, session_options, sidecar_path

log = logging.getLogger(__name__)

MAX_ABS_DIFF = 1e-5
"""Largest difference of the L2-normalised embeddings (ONNX vs TensorFlow) a conversion may show."""
INTRA_OP_THREADS = onnx_files.INTRA_OP_THREADS
INPUT_NAME = "faces"
MIN_REAL_FACES = 3
SYNTHETIC_FACES = 8
STEM = "facenet"

# The margin FacePipeline aligns with (core.recognition is above core.vision: not imported here).
_ALIGN_MARGIN = 0.05


def _folder(folder: Path | None) -> Path:
    return folder if folder is not None else cache_dir() / CACHE_SUBDIR


def onnx_path(source_sha256: str, folder: Path | None = None,
              versions: dict[str, str | None] | None = None) -> Path:
    """Where the ONNX FaceNet converted from the weights with SHA-256 ``source_sha256`` is cached.

    ``folder`` ``None`` is the folder of the converted FaceNet weights; ``versions`` defaults to
    :func:`core.vision.onnx_files.converter_versions`.
    """
    return onnx_files.cached_path(STEM, source_sha256, _folder(folder), versions)


def _run(session: Any, faces: np.ndarray) -> np.ndarray:
    """L2-normalised embeddings of uint8 faces, by the recipe of :meth:`FaceNetEmbedder.embed`."""
    return embed_batches(faces, lambda x: session.run(None, {session.get_inputs()[0].name: x})[0])


# --------------------------------------------------------------------------------------------
# Conversion (the only place TensorFlow is imported)


def real_faces(dataset: Path | None = None, per_person: int = 1) -> np.ndarray:
    """Aligned val faces of the 5-celebrity set: MTCNN and the similarity alignment of the pipeline.

    The largest face of the first ``per_person`` photos of every person in ``dataset/val``.
    """
    from core.vision.align import ALIGNED_SIZE, align_face
    from core.vision.detector import MtcnnDetector
    from core.vision.imageio import read_image

    if dataset is None:
        from core.assets import ensure_seed_assets

        try:
            dataset = ensure_seed_assets().dataset
        except AssetError as exc:
            raise ConversionError(f"The reference faces for checking the ONNX conversion are not "
                                  f"available: {exc}") from exc
    detector = MtcnnDetector()
    crops = []
    for person in sorted(p for p in (dataset / "val").iterdir() if p.is_dir()):
        for path in sorted(person.iterdir())[:per_person]:
            image = read_image(path)
            found = detector.detect(image)
            if found:
                det = max(found, key=lambda d: d.box[2] * d.box[3])
                crops.append(align_face(image, det, ALIGNED_SIZE, _ALIGN_MARGIN))
    return np.stack(crops) if crops else np.zeros((0, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)


def compare(embedder: FaceNetEmbedder, model: bytes | str, faces: np.ndarray,
            threads: int = INTRA_OP_THREADS) -> float:
    """Largest absolute difference of the L2-normalised embeddings of ``faces``, TensorFlow vs ONNX."""
    reference = embedder.embed(faces)
    converted = _run(onnx_files.open_session(model, "FaceNet", threads), faces)
    diff = np.abs(reference.astype(np.float64) - converted.astype(np.float64))
    return float(diff.max()) if np.all(np.isfinite(converted)) else float("inf")


def convert(embedder: FaceNetEmbedder, folder: Path | None = None,
            reference_faces: np.ndarray | None = None) -> Path:
    """Convert the embedder's network to ONNX, check it against TensorFlow and cache it.

    Parameters
    ----------
    embedder : FaceNetEmbedder
        The TensorFlow reference (loaded here if it is not yet).
    folder : Path or None
        Cache folder; ``None`` is the folder of the converted FaceNet weights.
    reference_faces : np.ndarray or None
        Real aligned uint8 faces ``(N, 160, 160, 3)``, ``N >= 3``, to check the conversion on, besides
        :func:`synthetic_faces`; ``None`` aligns the five people's val photos (:func:`real_faces`).

    Returns
    -------
    Path
        The ``.onnx`` file (its sidecar is beside it).

    Raises
    ------
    ConversionError
        If the converted network differs from TensorFlow by more than :data:`MAX_ABS_DIFF`, or
        fewer than three real faces are available to check it on.
    ModelError
        If TensorFlow, tf2onnx or ONNX Runtime cannot be loaded, or the weights cannot be read.
    """
    started = time.perf_counter()
    embedder.load()
    sha = embedder.source_sha256()
    path = onnx_path(sha, folder)
    real = real_faces() if reference_faces is None else np.asarray(reference_faces, np.uint8)
    if real.ndim != 4 or real.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3) or len(real) < MIN_REAL_FACES:
        raise ConversionError(
            f"The ONNX conversion of FaceNet needs at least {MIN_REAL_FACES} real aligned faces to be "
            f"checked against TensorFlow, got {real.shape}; the TensorFlow backend stays in use.")
    faces = np.concatenate([synthetic_faces(), real])

    from core.vision.facenet import import_tf

    tf, _ = import_tf()
    model = embedder.model_
    spec = [tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=spec)
    def forward(x: Any) -> Any:  # the same function FaceNetEmbedder.load traces
        return model(x, training=False)

    data = onnx_files.convert_function(forward, spec, "FaceNet network")
    diff = compare(embedder, data, faces)
    if not diff <= MAX_ABS_DIFF:
        raise ConversionError(
            f"The ONNX conversion of FaceNet {embedder.version} differs from TensorFlow by {diff:.2g} "
            f"on the reference faces (at most {MAX_ABS_DIFF:g} allowed), so it was refused; the "
            "TensorFlow backend stays in use.")
    onnx_files.write(path, data, {
        "writer": __name__, "source_sha256": sha, "max_abs_diff": diff, "max_abs_diff_allowed": MAX_ABS_DIFF,
        "reference_faces": {"synthetic": SYNTHETIC_FACES, "real": len(real)}, "input": INPUT_NAME,
        "inside_graph": "folded FaceNet, prewhitened float32 in, raw 128-d out",
    })
    log.info("converted FaceNet %s to ONNX in %.1f s (largest difference from TensorFlow %.2g): %s",
             embedder.version, time.perf_counter() - started, diff, path)
    return path


# --------------------------------------------------------------------------------------------


class OnnxEmbedder:
    """128-d FaceNet embeddings computed by ONNX Runtime; a drop-in for :class:`FaceNetEmbedder`.

    Parameters
    ----------
    h5_path : Path or None
        The Keras 2 ``facenet_keras.h5`` the ONNX file is made from; ``None`` uses the verified seed
        file, as :class:`FaceNetEmbedder` does.
    threads : int
        ONNX Runtime intra-op threads (see the module notes).
    folder : Path or None
        Cache folder of the ONNX files; ``None`` is the folder of the converted FaceNet weights.
    reference_faces : np.ndarray or None
        Real aligned faces to check a conversion on (default: the seed's val photos).

    Attributes
    ----------
    name, version : str
        Those of :class:`FaceNetEmbedder` for the same weights: the embeddings agree to 1e-5, so
        galleries, trained models and caches stay valid across backends.
    backend : str
        ``"onnx"``.
    onnx_path_ : Path or None
        The ONNX file in use once :meth:`load` has run.
    loaded_from_cache_ : bool
        Whether :meth:`load` used a verified cached file (no TensorFlow imported).
    max_abs_diff_ : float
        Largest difference from TensorFlow recorded when the file was converted.

    Notes
    -----
    Thread-safe once loaded: one session serves every camera worker.
    """

    name: str = FaceNetEmbedder.name
    backend: str = "onnx"
    embedding_size: int = EMBEDDING_SIZE
    input_size: int = INPUT_SIZE

    def __init__(self, h5_path: Path | None = None, *, threads: int = INTRA_OP_THREADS,
                 folder: Path | None = None, reference_faces: np.ndarray | None = None) -> None:
        self.h5_path = h5_path
        self.threads = threads
        self.folder = folder
        self.reference_faces = reference_faces
        self.onnx_path_: Path | None = None
        self.loaded_from_cache_ = False
        self.max_abs_diff_ = float("nan")
        # Hashes the weights and, only if a conversion is needed, loads TensorFlow.
        self._reference = FaceNetEmbedder(h5_path)
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        """First 12 hex digits of the weights file's SHA-256 (the same as the TensorFlow embedder's)."""
        return self._reference.version

    def load(self) -> None:
        """Open the cached ONNX file, converting (and checking) it first if needed.

        Raises
        ------
        ConversionError
            If a fresh conversion does not match TensorFlow (the caller falls back to TensorFlow).
        ModelError
            If the weights are missing or damaged, or a runtime cannot be loaded.
        """
        with self._lock:
            if self._session is not None:
                return
            started = time.perf_counter()
            sha = self._reference.source_sha256()
            path, data, meta, from_cache = onnx_files.load_or_convert(
                onnx_files.candidates(STEM, sha, _folder(self.folder)), sha, MAX_ABS_DIFF,
                lambda: convert(self._reference, self.folder, self.reference_faces), "FaceNet")
            session, why = self._open(path, data)
            if why is not None and from_cache:
                # A file that passes its sidecar but not the pinned reference was replaced together with
                # its sidecar (both are in a folder the console's account can write): convert again.
                log.warning("rebuilding the ONNX FaceNet: %s: %s", path.name, why)
                onnx_files.remove(path, sidecar_path(path))
                path, data, meta, from_cache = onnx_files.load_or_convert(
                    [onnx_path(sha, self.folder)], sha, MAX_ABS_DIFF,
                    lambda: convert(self._reference, self.folder, self.reference_faces), "FaceNet")
                session, why = self._open(path, data)
            if why is not None:
                raise ConversionError(f"The ONNX FaceNet {path.name} {why}; the TensorFlow backend stays in use.")
            self._session = session
            self.onnx_path_ = path
            self.loaded_from_cache_ = from_cache
            self.max_abs_diff_ = float(meta["max_abs_diff"])
            log.info("ONNX FaceNet %s ready in %.2f s (%s, %d threads)", self.version,
                     time.perf_counter() - started, "cache" if from_cache else "converted", self.threads)

    def _open(self, path: Path, data: bytes) -> tuple[Any, str | None]:
        """A session on ``data`` (the bytes that were hashed, not the file again), and why not to use it."""
        session = onnx_files.open_session(data, "FaceNet", self.threads)
        if (session.get_inputs()[0].shape[1:] != [INPUT_SIZE, INPUT_SIZE, 3]
                or session.get_outputs()[0].shape[-1] != EMBEDDING_SIZE):
            return session, "does not map 160×160 faces to 128-d embeddings"
        return session, reference_mismatch(self._reference.source_sha256(), lambda f: _run(session, f))

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """Embed aligned face crops exactly as :meth:`FaceNetEmbedder.embed` does (same input, output and errors)."""
        batch = face_batch(faces)
        if batch.shape[0]:
            self.load()
        return _run(self._session, batch)


__all__ = (
    "MAX_ABS_DIFF",
    "OPSET",
    "OnnxEmbedder",
    "compare",
    "convert",
    "onnx_path",
    "real_faces",
    "session_options",
    "sidecar_path",
    "synthetic_faces",
)
