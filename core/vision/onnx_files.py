"""Converted ONNX networks on disk: names, sidecars, checks, atomic writes, a lock, and sessions.

Shared by the FaceNet embedder (:mod:`core.vision.onnx_embedder`) and the MTCNN detector
(:mod:`core.vision.onnx_detector`).  Nothing here imports TensorFlow.

A converted network is two files in the cache folder of the converted weights:

- ``<stem>-<source sha256[:16]>-onnx-op<opset>-tf2onnx<v>-tf<v>-v<format>.onnx``, named after the
  SHA-256 of the weights it was converted from and the versions that shaped the graph;
- a JSON sidecar beside it (same name, ``.json``) with the source SHA-256, the ``.onnx`` file's own
  SHA-256, the versions, and the largest difference from TensorFlow measured at conversion.

:func:`load_or_convert` only ever runs bytes whose SHA-256 matches the sidecar, written by this
version of FaceGate, for the weights asked for, with a recorded difference within the allowed one;
anything else is logged, deleted and converted again.  Conversions are serialised by a lock file
(``fcntl.flock``), so two processes starting together convert once and the second uses the first's
file: tf2onnx's output is not byte-identical from run to run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.errors import ModelError

log = logging.getLogger(__name__)

OPSET = 17
FORMAT = 1
"""Bump when the file layout, a graph's boundaries or the sidecar change, so old files are not read."""
INTRA_OP_THREADS = 2
ALLOW_SPINNING = False

LOCK_NAME = ".onnx-conversion.lock"
"""The lock file in the cache folder (empty; it stays there)."""

_THREAD_LOCK = threading.Lock()


def installed(*names: str) -> str | None:
    """Version of the first installed distribution among ``names``, without importing it."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def converter_versions() -> dict[str, str | None]:
    """Versions that shape a converted graph (read from package metadata: nothing is imported)."""
    return {
        "tf2onnx": installed("tf2onnx"),
        "tensorflow": installed("tensorflow", "tensorflow-cpu", "tensorflow_cpu"),
        "opset": str(OPSET),
    }


def cached_path(stem: str, source_sha256: str, folder: Path,
                versions: dict[str, str | None] | None = None) -> Path:
    """Where the network ``stem`` converted from weights with SHA-256 ``source_sha256`` is cached."""
    v = versions or converter_versions()
    return folder / (f"{stem}-{source_sha256[:16]}-onnx-op{v['opset']}-tf2onnx{v['tf2onnx'] or 'none'}"
                     f"-tf{v['tensorflow'] or 'none'}-v{FORMAT}.onnx")


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of an ``.onnx`` file."""
    return path.with_suffix(".json")


def candidates(stem: str, source_sha256: str, folder: Path) -> list[Path]:
    """The file for today's converter versions; without a converter installed, any for these weights.

    A site that installs FaceGate without TensorFlow or tf2onnx (the files converted elsewhere and
    copied in) still finds them; the newest comes first.
    """
    versions = converter_versions()
    expected = cached_path(stem, source_sha256, folder, versions)
    if versions["tf2onnx"] and versions["tensorflow"]:
        return [expected]
    others = sorted(folder.glob(f"{stem}-{source_sha256[:16]}-onnx-*-v{FORMAT}.onnx"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    return others or [expected]


def check(path: Path, source_sha256: str, max_abs_diff: float) -> tuple[bytes, dict[str, Any]] | str:
    """The file's bytes and sidecar if they belong together and to ``source_sha256``, else why not."""
    try:
        meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        data = path.read_bytes()
    except FileNotFoundError as exc:
        return f"{Path(exc.filename or path).name} is missing"
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return "the sidecar is not one this version of FaceGate writes"
    if meta.get("source_sha256") != source_sha256:
        return f"it was converted from other weights ({str(meta.get('source_sha256'))[:12]})"
    if hashlib.sha256(data).hexdigest() != meta.get("onnx_sha256"):
        return "its SHA-256 differs from the one recorded at conversion (damaged or replaced)"
    diff = meta.get("max_abs_diff")
    if not isinstance(diff, (int, float)) or not diff <= max_abs_diff:
        return f"its recorded difference from TensorFlow ({diff}) is above {max_abs_diff:g}"
    return data, meta


def remove(*paths: Path) -> None:
    """Delete files that may not exist; a file that cannot be deleted is logged, not raised."""
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not delete %s: %s", p, exc)


def write(path: Path, data: bytes, meta: dict[str, Any]) -> None:
    """Write ``data`` and its sidecar atomically (temporary files, fsync, rename).

    ``meta`` gets ``format``, ``onnx_sha256``, ``onnx_bytes``, the converter versions and ``created``.
    The ``.onnx`` is renamed first: a crash between the two renames leaves a file whose sidecar does
    not match, which the next load deletes and converts again.
    """
    meta = {"format": FORMAT, **meta, "onnx_sha256": hashlib.sha256(data).hexdigest(),
            "onnx_bytes": len(data), **converter_versions(),
            "onnxruntime": installed("onnxruntime"), "onnx": installed("onnx"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_paths: list[Path] = []
    try:
        for payload in (data, json.dumps(meta, indent=1).encode("utf-8")):
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:24]}-", suffix=".tmp", dir=path.parent)
            tmp_paths.append(Path(tmp))
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        remove(sidecar_path(path))
        os.replace(tmp_paths[0], path)
        os.replace(tmp_paths[1], sidecar_path(path))
    finally:
        remove(*tmp_paths)


@contextlib.contextmanager
def conversion_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's conversion lock: one conversion at a time, across threads and processes."""
    folder.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCK, open(folder / LOCK_NAME, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: threads of this process are still serialised
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load_or_convert(paths: list[Path], source_sha256: str, max_abs_diff: float,
                    convert: Callable[[], Path], what: str) -> tuple[Path, bytes, dict[str, Any], bool]:
    """A verified cached file among ``paths``, else ``convert()``'s (under the conversion lock).

    Returns
    -------
    tuple
        ``(path, bytes, sidecar, from_cache)``.

    Raises
    ------
    ConversionError
        From ``convert`` (the caller falls back to TensorFlow).
    ModelError
        If a file just converted cannot be read back.
    """
    def cached() -> tuple[Path, bytes, dict[str, Any]] | None:
        for path in paths:
            checked = check(path, source_sha256, max_abs_diff)
            if isinstance(checked, tuple):
                return (path, *checked)
            if path.exists() or sidecar_path(path).exists():
                log.warning("rebuilding the ONNX %s: %s: %s", what, path.name, checked)
                remove(path, sidecar_path(path))
        return None

    found = cached()  # the common case, without waiting on the lock
    if found is not None:
        return (*found, True)
    with conversion_lock(paths[0].parent):
        found = cached()  # another process may have converted it while we waited
        if found is not None:
            return (*found, True)
        path = convert()
        checked = check(path, source_sha256, max_abs_diff)
        if not isinstance(checked, tuple):
            raise ModelError(f"The ONNX {what} just written to {path} cannot be read back ({checked}). "
                             "Check the disk, or use the TensorFlow backend (--backend tf).")
        return (path, *checked, False)


def session_options(threads: int = INTRA_OP_THREADS, spinning: bool = ALLOW_SPINNING,
                    mem_pattern: bool = True) -> Any:
    """ONNX Runtime session options (the measurements are in :mod:`core.vision.onnx_embedder`).

    ``mem_pattern=False`` for a network whose input size changes from call to call (MTCNN's P-Net):
    ONNX Runtime's memory pattern is planned for one shape.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_mem_pattern = bool(mem_pattern)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.log_severity_level = 3
    return opts


def open_session(model: bytes | str, what: str, threads: int = INTRA_OP_THREADS,
                 spinning: bool = ALLOW_SPINNING, mem_pattern: bool = True) -> Any:
    """An ONNX Runtime CPU session on ``model`` (bytes or a path).

    Raises
    ------
    ModelError
        If ONNX Runtime cannot be imported or cannot load the model.
    """
    try:
        import onnxruntime as ort
    except Exception as exc:  # ImportError, or a broken native library
        raise ModelError(f"ONNX Runtime could not be loaded ({exc}). Reinstall FaceGate's dependencies "
                         "(onnxruntime), or use the TensorFlow backend (--backend tf).") from exc
    try:
        return ort.InferenceSession(model, session_options(threads, spinning, mem_pattern),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelError(f"ONNX Runtime could not load the converted {what} ({exc}).") from exc


def tf2onnx_module() -> Any:
    """tf2onnx, imported (with TensorFlow) for a conversion only.

    Raises
    ------
    ModelError
        If it cannot be imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tf2onnx
    except Exception as exc:
        raise ModelError(f"tf2onnx could not be loaded ({exc}), so the networks cannot be converted to ONNX. "
                         "Reinstall FaceGate's dependencies, or use the TensorFlow backend (--backend tf).") from exc
    return tf2onnx


def convert_function(function: Any, input_signature: list[Any], what: str) -> bytes:
    """The ONNX bytes of a ``tf.function`` (tf2onnx, :data:`OPSET`).

    Raises
    ------
    ConversionError
        If tf2onnx fails on it.
    """
    from core.errors import ConversionError

    tf2onnx = tf2onnx_module()
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=input_signature, opset=OPSET)
    except Exception as exc:  # tf2onnx raises bare ValueErrors, KeyErrors … from its handlers
        raise ConversionError(f"tf2onnx {installed('tf2onnx')} could not convert the {what} ({exc!r}); "
                              "the TensorFlow backend stays in use.") from exc
    return bytes(proto.SerializeToString())


__all__ = (
    "ALLOW_SPINNING",
    "FORMAT",
    "INTRA_OP_THREADS",
    "LOCK_NAME",
    "OPSET",
    "cached_path",
    "candidates",
    "check",
    "conversion_lock",
    "convert_function",
    "converter_versions",
    "installed",
    "load_or_convert",
    "open_session",
    "remove",
    "session_options",
    "sidecar_path",
    "write",
)
