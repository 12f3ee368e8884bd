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

import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.assets import cache_dir
from core.errors import AssetError, ConversionError, ModelError
from core.vision.facenet import (
    _CACHE_SUBDIR,
    _MAX_BATCH,
    EMBEDDING_SIZE,
    INPUT_SIZE,
    FaceNetEmbedder,
    _l2_normalise,
    prewhiten,
)

log = logging.getLogger(__name__)

OPSET = 17
MAX_ABS_DIFF = 1e-5
"""Largest difference of the L2-normalised embeddings (ONNX vs TensorFlow) a conversion may show."""
INTRA_OP_THREADS = 2
ALLOW_SPINNING = False
INPUT_NAME = "faces"
MIN_REAL_FACES = 3
SYNTHETIC_FACES = 8

# Bump when the file layout, the graph's boundaries or the sidecar change, so old files are not read.
_FORMAT = 1
_PREFIX = "facenet-"
# The margin FacePipeline aligns with (core.recognition is above core.vision: not imported here).
_ALIGN_MARGIN = 0.05


# --------------------------------------------------------------------------------------------
# Names and sidecars


def _installed(*names: str) -> str | None:
    """Version of the first installed distribution among ``names``, without importing it."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def converter_versions() -> dict[str, str | None]:
    """Versions that shape the converted graph (read from package metadata: nothing is imported)."""
    return {
        "tf2onnx": _installed("tf2onnx"),
        "tensorflow": _installed("tensorflow", "tensorflow-cpu", "tensorflow_cpu"),
        "opset": str(OPSET),
    }


def onnx_path(source_sha256: str, folder: Path | None = None,
              versions: dict[str, str | None] | None = None) -> Path:
    """Where the ONNX file converted from the weights with SHA-256 ``source_sha256`` is cached.

    Parameters
    ----------
    source_sha256 : str
        Hex SHA-256 of the Keras ``.h5``.
    folder : Path or None
        Cache folder; ``None`` is the folder of the converted FaceNet weights.
    versions : dict or None
        Converter versions (default :func:`converter_versions`).
    """
    v = versions or converter_versions()
    base = folder if folder is not None else cache_dir() / _CACHE_SUBDIR
    return base / (f"{_PREFIX}{source_sha256[:16]}-onnx-op{v['opset']}-tf2onnx{v['tf2onnx'] or 'none'}"
                   f"-tf{v['tensorflow'] or 'none'}-v{_FORMAT}.onnx")


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of an ``.onnx`` file."""
    return path.with_suffix(".json")


def _check(path: Path, source_sha256: str) -> tuple[bytes, dict[str, Any]] | str:
    """The file's bytes and sidecar if they belong together and to ``source_sha256``, else why not."""
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        data = path.read_bytes()
    except FileNotFoundError as exc:
        return f"{Path(exc.filename or path).name} is missing"
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        return "the sidecar is not one this version of FaceGate writes"
    if meta.get("source_sha256") != source_sha256:
        return f"it was converted from other weights ({str(meta.get('source_sha256'))[:12]})"
    if hashlib.sha256(data).hexdigest() != meta.get("onnx_sha256"):
        return "its SHA-256 differs from the one recorded at conversion (damaged or replaced)"
    diff = meta.get("max_abs_diff")
    if not isinstance(diff, (int, float)) or not diff <= MAX_ABS_DIFF:
        return f"its recorded difference from TensorFlow ({diff}) is above {MAX_ABS_DIFF:g}"
    return data, meta


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not delete %s: %s", p, exc)


# --------------------------------------------------------------------------------------------
# ONNX Runtime


def session_options(threads: int = INTRA_OP_THREADS, spinning: bool = ALLOW_SPINNING) -> Any:
    """ONNX Runtime session options for the embedder (see the module notes for the measurements)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.log_severity_level = 3
    return opts


def _session(model: bytes | str, threads: int = INTRA_OP_THREADS, spinning: bool = ALLOW_SPINNING) -> Any:
    try:
        import onnxruntime as ort
    except Exception as exc:  # ImportError, or a broken native library
        raise ModelError(f"ONNX Runtime could not be loaded ({exc}). Reinstall FaceGate's dependencies "
                         "(onnxruntime), or use the TensorFlow backend.") from exc
    try:
        return ort.InferenceSession(model, session_options(threads, spinning),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"ONNX Runtime could not load the converted FaceNet ({exc}).") from exc


def _run(session: Any, faces: np.ndarray) -> np.ndarray:
    """L2-normalised embeddings of uint8 faces, computed as :meth:`FaceNetEmbedder.embed` does."""
    x = prewhiten(faces)
    name = session.get_inputs()[0].name
    parts = [np.asarray(session.run(None, {name: x[i:i + _MAX_BATCH]})[0], np.float32)
             for i in range(0, len(x), _MAX_BATCH)]
    return _l2_normalise(np.concatenate(parts, axis=0))


# --------------------------------------------------------------------------------------------
# Conversion (the only place TensorFlow is imported)


def synthetic_faces(n: int = SYNTHETIC_FACES, seed: int = 13) -> np.ndarray:
    """``n`` deterministic pseudo-random ``(160, 160, 3)`` uint8 images: smooth blobs plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:INPUT_SIZE, 0:INPUT_SIZE] / INPUT_SIZE
    out = np.empty((n, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    for i in range(n):
        base = np.zeros((INPUT_SIZE, INPUT_SIZE, 3))
        for _ in range(6):
            cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            base += blob[..., None] * rng.uniform(-120, 120, 3)
        noise = rng.normal(0, 4 + 6 * i, base.shape)
        out[i] = np.clip(128 + base + noise, 0, 255).astype(np.uint8)
    return out


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
    converted = _run(_session(model, threads), faces)
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
    sha = embedder._source_sha256()  # the full hash; ``version`` is its first 12 digits
    versions = converter_versions()
    path = onnx_path(sha, folder, versions)
    real = real_faces() if reference_faces is None else np.asarray(reference_faces, np.uint8)
    if real.ndim != 4 or real.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3) or len(real) < MIN_REAL_FACES:
        raise ConversionError(
            f"The ONNX conversion of FaceNet needs at least {MIN_REAL_FACES} real aligned faces to be "
            f"checked against TensorFlow, got {real.shape}; the TensorFlow backend stays in use.")
    faces = np.concatenate([synthetic_faces(), real])

    from core.vision.facenet import _import_tf

    tf, _ = _import_tf()
    try:
        import tf2onnx
    except Exception as exc:
        raise ModelError(f"tf2onnx could not be loaded ({exc}); the FaceNet network cannot be converted to "
                         "ONNX. Install tf2onnx, or use the TensorFlow backend.") from exc
    model = embedder.model_
    spec = [tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=spec)
    def forward(x: Any) -> Any:  # the same function FaceNetEmbedder.load traces
        return model(x, training=False)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".facenet-", suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    tmp_path, tmp_side = Path(tmp), Path(tmp + ".json")
    try:
        try:
            tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET, output_path=tmp)
        except Exception as exc:  # tf2onnx raises bare ValueErrors, KeyErrors … from its handlers
            raise ConversionError(f"tf2onnx {versions['tf2onnx']} could not convert the FaceNet network "
                                  f"({exc!r}); the TensorFlow backend stays in use.") from exc
        data = tmp_path.read_bytes()
        diff = compare(embedder, data, faces)
        if not diff <= MAX_ABS_DIFF:
            raise ConversionError(
                f"The ONNX conversion of FaceNet {embedder.version} differs from TensorFlow by {diff:.2g} "
                f"on the reference faces (at most {MAX_ABS_DIFF:g} allowed), so it was refused; the "
                "TensorFlow backend stays in use.")
        meta = {
            "format": _FORMAT, "writer": __name__, "source_sha256": sha,
            "onnx_sha256": hashlib.sha256(data).hexdigest(), "onnx_bytes": len(data),
            "max_abs_diff": diff, "max_abs_diff_allowed": MAX_ABS_DIFF,
            "reference_faces": {"synthetic": SYNTHETIC_FACES, "real": len(real)},
            "input": INPUT_NAME, "inside_graph": "folded FaceNet, prewhitened float32 in, raw 128-d out",
            **{k: v for k, v in versions.items()}, "onnxruntime": _installed("onnxruntime"),
            "onnx": _installed("onnx"), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with open(tmp_side, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        with open(tmp_path, "rb+") as onnx_fh:
            os.fsync(onnx_fh.fileno())
        # The .onnx first: a crash between the two leaves a file without a valid sidecar, rebuilt later.
        _remove(sidecar_path(path))
        os.replace(tmp_path, path)
        os.replace(tmp_side, sidecar_path(path))
    finally:
        _remove(tmp_path, tmp_side)
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

    def _candidates(self, sha: str) -> list[Path]:
        """The file for today's converter versions, or, without a converter, any for these weights."""
        versions = converter_versions()
        expected = onnx_path(sha, self.folder, versions)
        if versions["tf2onnx"] and versions["tensorflow"]:
            return [expected]
        others = sorted(expected.parent.glob(f"{_PREFIX}{sha[:16]}-onnx-*-v{_FORMAT}.onnx"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        return others or [expected]

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
            sha = self._reference._source_sha256()
            found: tuple[Path, bytes, dict[str, Any]] | None = None
            for path in self._candidates(sha):
                checked = _check(path, sha)
                if isinstance(checked, tuple):
                    found = (path, *checked)
                    break
                if path.exists() or sidecar_path(path).exists():
                    log.warning("rebuilding the ONNX FaceNet: %s: %s", path.name, checked)
                    _remove(path, sidecar_path(path))
            from_cache = found is not None
            if found is None:
                path = convert(self._reference, self.folder, self.reference_faces)
                checked = _check(path, sha)
                if not isinstance(checked, tuple):
                    raise ModelError(f"The ONNX FaceNet just written to {path} cannot be read back ({checked}). "
                                     "Check the disk, or use the TensorFlow backend.")
                found = (path, *checked)
            path, data, meta = found
            session = _session(data, self.threads)  # the bytes that were hashed, not the file again
            if (session.get_inputs()[0].shape[1:] != [INPUT_SIZE, INPUT_SIZE, 3]
                    or session.get_outputs()[0].shape[-1] != EMBEDDING_SIZE):
                raise ModelError(f"The ONNX FaceNet {path} does not map 160×160 faces to 128-d embeddings.")
            self._session = session
            self.onnx_path_ = path
            self.loaded_from_cache_ = from_cache
            self.max_abs_diff_ = float(meta["max_abs_diff"])
            log.info("ONNX FaceNet %s ready in %.2f s (%s, %d threads)", self.version,
                     time.perf_counter() - started, "cache" if from_cache else "converted", self.threads)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """Embed aligned face crops, exactly as :meth:`FaceNetEmbedder.embed` does.

        Parameters
        ----------
        faces : np.ndarray
            ``(N, 160, 160, 3)`` or a single ``(160, 160, 3)`` uint8 RGB face crop, already aligned.
            ``N`` may be 0.

        Returns
        -------
        np.ndarray
            ``(N, 128)`` float32, each row L2-normalised.

        Raises
        ------
        ValueError
            If ``faces`` does not have the shape above or is not numeric.
        ModelError
            If the model cannot be loaded (see :meth:`load`).
        """
        batch = np.asarray(faces)
        if batch.ndim == 3:
            batch = batch[np.newaxis]
        if batch.ndim != 4 or batch.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(
                f"expected faces of shape (N, 160, 160, 3) or (160, 160, 3), got {np.shape(faces)}")
        if not (np.issubdtype(batch.dtype, np.integer) or np.issubdtype(batch.dtype, np.floating)):
            raise ValueError(f"expected uint8 RGB faces, got dtype {batch.dtype}")
        if batch.shape[0] == 0:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        self.load()
        return _run(self._session, batch)


__all__ = (
    "MAX_ABS_DIFF",
    "OPSET",
    "OnnxEmbedder",
    "compare",
    "convert",
    "converter_versions",
    "onnx_path",
    "real_faces",
    "session_options",
    "sidecar_path",
    "synthetic_faces",
)
