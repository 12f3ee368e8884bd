"""MTCNN face detection run by ONNX Runtime: the TensorFlow detector's networks, converted and checked.

Issue 13: :class:`OnnxMtcnnDetector` is a drop-in for :class:`core.vision.detector.MtcnnDetector`
that never imports TensorFlow once its three networks are converted.  It shares the TensorFlow
detector's stage logic (:func:`core.vision.detector.run_stages`: pyramid scales, thresholds, NMS,
box arithmetic, and the rounding and filters of :class:`~core.vision.detector.BaseMtcnnDetector`);
only the arithmetic that TensorFlow did is done here.

What runs where
    The three Keras networks of the ``mtcnn`` package (with the pinned weights) are converted with
    ``tf2onnx.convert.from_function`` (opset 17): P-Net with a dynamic batch, height and width, R-Net
    on ``(N, 24, 24, 3)`` and O-Net on ``(N, 48, 48, 3)``, each with its outputs concatenated into one
    tensor (P-Net: four regressions and the face probability; R-Net: four and the probability;
    O-Net: four, ten landmarks and the probability).  The image preprocessing TensorFlow did inside
    its graphs is done in NumPy by :func:`resize_area` (``tf.image.resize(..., AREA)``) and
    :func:`crop_and_resize` (``tf.image.crop_and_resize``, bilinear, extrapolation 0), which follow
    TensorFlow's kernels operation by operation in float32 and give *bit-identical* results (checked
    at every conversion against the installed TensorFlow; the tests check it too).  So the two
    detectors differ only in the networks' arithmetic (largest output difference on the reference
    images: P-Net 1.6e-6, R-Net 3.4e-7, O-Net 2.5e-7).  On all 118 photos of the 5-celebrity set,
    at ``min_face_size`` 20, 40 and 80, they find the same faces (121, 111, 54) with *equal* boxes
    and landmarks, and confidences within 1.5e-5.

The cached files
    ``<cache>/models/mtcnn-{pnet,rnet,onet}-<weights sha256[:16]>-onnx-op17-tf2onnx<v>-tf<v>-v1.onnx``
    with a JSON sidecar each (:mod:`core.vision.onnx_files`): keyed by the pinned SHA-256 of the
    network's weight file in the ``mtcnn`` wheel (``detector._WEIGHT_SHA256``), checked (sidecar,
    file hash, recorded difference) before every load; a damaged or mismatched file is logged, deleted
    and converted again.  Only a conversion imports TensorFlow.

Conversion check
    :func:`convert` runs the TensorFlow detector's own graph functions (the whole P-Net pyramid with
    its area resizes; R-Net and O-Net with their ``crop_and_resize``) and this module's NumPy +
    ONNX Runtime path on deterministic synthetic images (two sizes, every pyramid level) and on
    deterministic boxes (inside, across and outside the image edges), and refuses the file
    (:class:`~core.errors.ConversionError`) if any output differs by more than :data:`MAX_ABS_DIFF`.

Speed and threads (``benchmarks/bench_onnx_detector.py`` → ``benchmarks/results/onnx_detector.json``)
    Median ms per 640×480 gate frame, medians of 3 interleaved rounds, one process per runtime, this
    2-core AMD EPYC VM (load average 2–3 from other work; "busy" adds a process spinning on one core)::

        frame, min_face_size      TF (own threads)   ONNX 1 thread   ONNX 2 threads   TF / ONNX-1
        1 face, 80 (live)         12.6 / 15.1        7.4 / 7.8       8.3 / 8.4        1.7× / 1.9×
        3 faces, 80               13.6 / 15.3        10.0 / 9.9      10.1 / 11.0      1.4× / 1.5×
        no face, 80               5.0 / 6.2          3.6 / 3.8       4.2 / 4.1        1.4× / 1.6×
        1 face, 20                27.9 / 36.6        50.8 / 49.8     47.3 / 55.0      0.55× / 0.74×
        3 faces, 20               38.6 / 49.0        67.9 / 71.2     62.8 / 73.5      0.57× / 0.69×

    At the live setting (the frame shrunk to 160×120) the networks are small and TensorFlow's
    per-call overhead dominated: ONNX Runtime is 1.4–1.9× faster and takes ~40 % less CPU per frame
    (7.4 against 12.9 ms).  At ``min_face_size=20`` on a full 640×480 frame it is *slower*: P-Net on
    the large pyramid levels (one profile of the whole pyramid: convolutions 15 ms, the PReLU that
    tf2onnx decomposes into five element-wise ops ~9 ms, layout reorders ~4 ms) and the exact NumPy
    area resizes (10–16 ms) cost more than TensorFlow's single oneDNN graph on two cores.  (A fused
    ONNX ``PRelu`` is bit-identical but was slower in ONNX Runtime 1.32; an OpenCV ``INTER_AREA``
    resize differs from TensorFlow's by 3.7e-5 and was only 2× faster.)  That setting serves photos
    (enrolment, ``recognize``), where the ~4–5 s TensorFlow import saved matters more.

    One intra-op thread (:data:`INTRA_OP_THREADS`): with one, ONNX Runtime runs each network in the
    calling thread, so cameras detect in parallel on the two cores; a second thread only splits
    networks that take 1–3 ms into even smaller pieces.  Measured: one camera 7.4 (idle) / 7.8 ms
    (busy) against 8.3 / 8.4 ms with two threads; two cameras sharing the sessions 154 against 118
    frames/s idle (latency 12.8 against 15.8 ms); four cameras 146 against 112 frames/s idle and
    96 against 109 frames/s busy, at 8.7 against 10.4 CPU ms per frame.  Two threads win for a
    full-size photo at ``min_face_size=20`` on an idle machine (47 against 51 ms) and in throughput
    with four cameras on a busy one (109 against 96 frames/s, for 20 % more CPU).  Spinning stays
    off (:data:`core.vision.onnx_files.ALLOW_SPINNING`).  With four cameras TensorFlow's throughput
    is similar (156 / 106 frames/s) at 11.4 / 12.5 CPU ms per frame: the Python stage logic shared
    by both (~2 ms a frame, under the GIL) limits how far either scales.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.assets import cache_dir
from core.errors import ConversionError, ModelError
from core.vision import onnx_files
from core.vision.detector import (
    _WEIGHT_SHA256,
    MTCNN_SAFE_MIN_FACE,
    BaseMtcnnDetector,
    StageNetworks,
    _level_size,
    pyramid_scales,
)
from core.vision.facenet import CACHE_SUBDIR

log = logging.getLogger(__name__)

MAX_ABS_DIFF = 1e-5
"""Largest difference of any network output (ONNX vs TensorFlow) a conversion may show."""
INTRA_OP_THREADS = 1
"""ONNX Runtime intra-op threads per session: one, so cameras run in parallel (see the module notes)."""

NETWORKS = ("pnet", "rnet", "onet")
CROP_SIDE = {"rnet": 24, "onet": 48}
OUTPUT_WIDTH = {"pnet": 5, "rnet": 5, "onet": 15}
INPUT_NAME = "pixels"


def _folder(folder: Path | None) -> Path:
    return folder if folder is not None else cache_dir() / CACHE_SUBDIR


def source_sha256(net: str) -> str:
    """The pinned SHA-256 of network ``net``'s weight file in the ``mtcnn`` wheel."""
    return _WEIGHT_SHA256[f"{net}.lz4"]


def onnx_path(net: str, folder: Path | None = None, versions: dict[str, str | None] | None = None) -> Path:
    """Where network ``net`` (``"pnet"``, ``"rnet"`` or ``"onet"``) is cached once converted."""
    return onnx_files.cached_path(f"mtcnn-{net}", source_sha256(net), _folder(folder), versions)


# --------------------------------------------------------------------------------------------
# TensorFlow's image operations, in NumPy (bit-identical in float32)


def normalise(image: np.ndarray) -> np.ndarray:
    """``(pixels - 127.5) / 128`` in float32, exact (as the TensorFlow detector's graph computes it)."""
    return (image.astype(np.float32) - np.float32(127.5)) / np.float32(128.0)


def _area_axis(in_size: int, out_size: int) -> tuple[np.float32, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output index along one axis: the source window ``[start, end)`` and its edge weights.

    TensorFlow's ``ResizeAreaOp`` (``resize_area_op.cc``), in float32: ``scale = in / out``, the
    output pixel ``i`` covers ``[i * scale, (i + 1) * scale)``, the first and last source pixels
    weighted by the part of them inside it, the others by 1.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    idx = np.arange(out_size)
    in0 = idx.astype(np.float32) * scale
    in1 = (idx + 1).astype(np.float32) * scale
    start = np.floor(in0).astype(np.int64)
    end = np.ceil(in1).astype(np.int64)

    def weight(v: np.ndarray) -> np.ndarray:
        vf, v1 = v.astype(np.float32), (v + 1).astype(np.float32)
        return np.where(vf < in0, np.where(v1 > in1, scale, v1 - in0),
                        np.where(v1 > in1, in1 - vf, np.float32(1))).astype(np.float32)

    return scale, start, end, weight(start), weight(end - 1)


def _area_rows(a: np.ndarray, start: np.ndarray, end: np.ndarray, w_first: np.ndarray,
               w_last: np.ndarray) -> np.ndarray:
    """Weighted window sums along ``a``'s first axis, accumulated in TensorFlow's order (first ×
    weight, the middle ones, last × weight), one window position at a time for all windows at once.

    Along the first axis, so every gather copies whole contiguous rows (three times faster than
    gathering along an inner axis).
    """
    n_in = a.shape[0]
    shape = (-1,) + (1,) * (a.ndim - 1)
    acc = a[np.minimum(start, n_in - 1)]  # TensorFlow clamps an index a rounding pushed past the edge
    acc *= w_first.reshape(shape)
    length = end - start
    for k in range(1, int(length.max()) - 1):
        rows = np.flatnonzero(start + k < end - 1)
        if len(rows) == len(start):
            acc += a[np.minimum(start + k, n_in - 1)]
        else:
            acc[rows] += a[np.minimum(start[rows] + k, n_in - 1)]
    tail = a[np.minimum(end - 1, n_in - 1)]
    tail *= np.where(length > 1, w_last, np.float32(0)).reshape(shape)  # + 0 leaves a sum unchanged
    acc += tail
    return acc


def resize_area_transposed(image_t: np.ndarray, height: int, width: int) -> np.ndarray:
    """:func:`resize_area` of the image whose contiguous transpose ``(W, H, C)`` is ``image_t``.

    The pyramid transposes the image once and resizes it to every level from that.
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize to {height}×{width}")
    in_w, in_h = image_t.shape[:2]
    sy, *y_axis = _area_axis(in_h, height)
    sx, *x_axis = _area_axis(in_w, width)
    # Each source row's window sums along x (rows of image_t are columns of the image) …
    sums = np.ascontiguousarray(_area_rows(image_t, *x_axis).transpose(1, 0, 2))
    # … then the rows' weighted sums along y, times the kernel's
    # `const float scale = 1.0 / (height_scale * width_scale)` (a double division).
    out = _area_rows(sums, *y_axis)
    out *= np.float32(1.0 / float(np.float32(sy * sx)))
    return out


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``tf.image.resize(image, (height, width), method=AREA)`` of one float32 ``(H, W, C)`` image.

    Separable, as TensorFlow's kernel is: each source row's window sums along x, then the rows'
    weighted sums along y, times ``1 / (scale_y * scale_x)``.  Every float32 operation is the one the
    kernel performs, in its order, so the result is bit-identical.
    """
    image_t = np.ascontiguousarray(np.asarray(image, np.float32).transpose(1, 0, 2))
    return resize_area_transposed(image_t, height, width)


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """``tf.image.crop_and_resize(image[None], boxes, zeros, (side, side))`` (bilinear, extrapolation 0).

    Parameters
    ----------
    image : np.ndarray
        float32 ``(H, W, C)``.
    boxes : np.ndarray
        ``(n, 4)`` float32 ``y1, x1, y2, x2``, normalised to ``[0, 1]`` over ``(H - 1, W - 1)``.
    side : int
        Crop size (> 1).

    Returns
    -------
    np.ndarray
        float32 ``(n, side, side, C)``, bit-identical to TensorFlow's (``crop_and_resize_op.cc``).
    """
    h, w = image.shape[:2]
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    y1, x1, y2, x2 = (b[:, k:k + 1] for k in range(4))
    fh, fw, fs = np.float32(h - 1), np.float32(w - 1), np.float32(side - 1)
    grid = np.arange(side, dtype=np.float32)[None, :]
    in_y = y1 * fh + grid * ((y2 - y1) * fh / fs)  # (n, side), float32 as the kernel computes it
    in_x = x1 * fw + grid * ((x2 - x1) * fw / fs)
    valid_y = (in_y >= 0) & (in_y <= fh)
    valid_x = (in_x >= 0) & (in_x <= fw)
    cy = np.where(valid_y, in_y, np.float32(0))
    cx = np.where(valid_x, in_x, np.float32(0))
    top, bottom = np.floor(cy).astype(np.int64), np.ceil(cy).astype(np.int64)
    left, right = np.floor(cx).astype(np.int64), np.ceil(cx).astype(np.int64)
    y_lerp = (cy - top.astype(np.float32))[:, :, None, None]
    x_lerp = (cx - left.astype(np.float32))[:, None, :, None]
    t, btm = top[:, :, None], bottom[:, :, None]
    lft, rgt = left[:, None, :], right[:, None, :]
    tl, tr, bl, br = image[t, lft], image[t, rgt], image[btm, lft], image[btm, rgt]
    upper = tl + (tr - tl) * x_lerp
    lower = bl + (br - bl) * x_lerp
    out = upper + (lower - upper) * y_lerp
    valid = (valid_y[:, :, None] & valid_x[:, None, :])[..., None]
    return np.where(valid, out, np.float32(0)).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# The networks in ONNX Runtime


class _OnnxNetworks:
    """P-Net, R-Net and O-Net sessions as :class:`~core.vision.detector.StageNetworks`."""

    def __init__(self, sessions: dict[str, Any]) -> None:
        self._sessions = sessions
        self._inputs = {net: s.get_inputs()[0].name for net, s in sessions.items()}

    def _run(self, net: str, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._sessions[net].run(None, {self._inputs[net]: x})[0])

    def pyramid(self, image: np.ndarray, sizes: list[tuple[int, int]]) -> tuple[Any, list[np.ndarray]]:
        """Area-resized levels (NumPy) through P-Net (ONNX Runtime), one call per level."""
        norm = normalise(image)
        norm_t = normalise(np.ascontiguousarray(image.transpose(1, 0, 2)))
        return norm, [self._run("pnet", resize_area_transposed(norm_t, h, w)[np.newaxis])[0] for h, w in sizes]

    def _crops(self, net: str, source: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self._run(net, crop_and_resize(source, boxes, CROP_SIDE[net]))

    def rnet(self, source: Any, boxes: np.ndarray) -> list[np.ndarray]:
        """R-Net on the 24×24 crops: ``[regression (n, 4), probability (n,)]``."""
        out = self._crops("rnet", source, boxes)
        return [out[:, :4], out[:, 4]]

    def onet(self, source: Any, boxes: np.ndarray) -> list[np.ndarray]:
        """O-Net on the 48×48 crops: ``[regression (n, 4), landmarks (n, 10), probability (n,)]``."""
        out = self._crops("onet", source, boxes)
        return [out[:, :4], out[:, 4:14], out[:, 14]]


def open_sessions(models: Mapping[str, bytes | str], threads: int = INTRA_OP_THREADS) -> _OnnxNetworks:
    """The three networks as ONNX Runtime sessions (P-Net without a memory pattern: its input size
    changes on every call).

    Raises
    ------
    ModelError
        If ONNX Runtime cannot load one, or one does not have the expected input and output shapes.
    """
    sessions = {}
    for net in NETWORKS:
        what = f"MTCNN {net}"
        session = onnx_files.open_session(models[net], what, threads, mem_pattern=net != "pnet")
        shape_in = session.get_inputs()[0].shape
        shape_out = session.get_outputs()[0].shape
        side = CROP_SIDE.get(net)
        if (len(shape_in) != 4 or shape_in[3] != 3 or shape_out[-1] != OUTPUT_WIDTH[net]
                or (side is not None and shape_in[1:3] != [side, side])):
            raise ModelError(f"The ONNX {what} has inputs {shape_in} and outputs {shape_out}, not MTCNN's.")
        sessions[net] = session
    return _OnnxNetworks(sessions)


# --------------------------------------------------------------------------------------------
# Conversion (the only place TensorFlow is imported)


def synthetic_images(seed: int = 13) -> list[np.ndarray]:
    """Deterministic uint8 RGB test images: smooth blobs, edges and noise, 120×160 and 241×317."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in ((120, 160), (241, 317)):
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        base = np.zeros((h, w, 3))
        for _ in range(10):
            cy, cx, r = rng.uniform(0, 0.8), rng.uniform(0, 1), rng.uniform(0.02, 0.2)
            base += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None] * rng.uniform(-150, 150, 3)
        base[h // 3: h // 2, w // 4: w // 2] += 60  # a hard edge
        out.append(np.clip(128 + base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8))
    return out


def synthetic_boxes(n: int = 37, seed: int = 17) -> np.ndarray:
    """Deterministic ``(n, 4)`` float32 crop boxes ``y1, x1, y2, x2``: square-ish, inside, across and
    outside the image's edges, as MTCNN's square boxes are."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(-0.1, 1.1, n), rng.uniform(-0.1, 1.1, n)
    half = rng.uniform(0.03, 0.45, n)
    return np.stack([cy - half, cx - half, cy + half, cx + half], axis=1).astype(np.float32)


def _reference_networks() -> Any:
    """The TensorFlow detector's networks (imports TensorFlow)."""
    from core.vision.detector import _networks

    return _networks()


def compare(net: str, model: bytes | str, tf_nets: Any | None = None,
            threads: int = INTRA_OP_THREADS) -> float:
    """Largest absolute difference of network ``net``'s outputs, TensorFlow's stage function vs this
    module's NumPy preprocessing and ONNX Runtime, on :func:`synthetic_images` (every pyramid level
    for P-Net; :func:`synthetic_boxes` crops for R-Net and O-Net)."""
    tf_nets = tf_nets or _reference_networks()
    session = onnx_files.open_session(model, f"MTCNN {net}", threads, mem_pattern=net != "pnet")
    name = session.get_inputs()[0].name
    worst = 0.0
    for image in synthetic_images():
        h, w = image.shape[:2]
        norm = normalise(image)
        if net == "pnet":
            sizes = [_level_size(h, w, s) for s in pyramid_scales(h, w, MTCNN_SAFE_MIN_FACE)]
            _, want = tf_nets.pyramid(image, sizes)
            got = [session.run(None, {name: resize_area(norm, lh, lw)[np.newaxis]})[0][0] for lh, lw in sizes]
        else:
            boxes = synthetic_boxes()
            want = [np.concatenate([np.reshape(o, (len(boxes), -1)) for o in getattr(tf_nets, net)(norm, boxes)],
                                   axis=1)]
            got = [session.run(None, {name: crop_and_resize(norm, boxes, CROP_SIDE[net])})[0]]
        for a, b in zip(want, got):
            if a.shape != b.shape or not np.all(np.isfinite(b)):
                return float("inf")
            worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
    return worst


def preprocessing_difference() -> float:
    """Largest difference of :func:`resize_area` and :func:`crop_and_resize` from TensorFlow's own
    ops on :func:`synthetic_images` (0.0 when they are bit-identical, as they are on TF 2.21)."""
    import tensorflow as tf

    worst = 0.0
    for image in synthetic_images():
        h, w = image.shape[:2]
        norm = normalise(image)
        for s in pyramid_scales(h, w, MTCNN_SAFE_MIN_FACE):
            lh, lw = _level_size(h, w, s)
            ref = tf.image.resize(norm[np.newaxis], (lh, lw), method=tf.image.ResizeMethod.AREA).numpy()[0]
            worst = max(worst, float(np.abs(ref - resize_area(norm, lh, lw)).max()))
        boxes = synthetic_boxes()
        for side in CROP_SIDE.values():
            ref = tf.image.crop_and_resize(norm[np.newaxis], boxes, np.zeros(len(boxes), np.int32), (side, side))
            worst = max(worst, float(np.abs(ref.numpy() - crop_and_resize(norm, boxes, side)).max()))
    return worst


def convert(net: str, folder: Path | None = None) -> Path:
    """Convert one MTCNN network to ONNX, check it against TensorFlow and cache it.

    Parameters
    ----------
    net : str
        ``"pnet"``, ``"rnet"`` or ``"onet"``.
    folder : Path or None
        Cache folder; ``None`` is the folder of the converted weights.

    Returns
    -------
    Path
        The ``.onnx`` file (its sidecar is beside it).

    Raises
    ------
    ConversionError
        If tf2onnx fails, or the converted network (with this module's NumPy preprocessing) differs
        from the TensorFlow detector by more than :data:`MAX_ABS_DIFF`.
    ModelError
        If TensorFlow, tf2onnx, ONNX Runtime or the pinned weights cannot be loaded.
    """
    if net not in NETWORKS:
        raise ValueError(f"net must be one of {NETWORKS}, not {net!r}")
    started = time.perf_counter()
    tf_nets = _reference_networks()  # imports TensorFlow, checks the weights' SHA-256
    import tensorflow as tf

    keras_net = dict(zip(NETWORKS, tf_nets._keras))[net]
    side = CROP_SIDE.get(net)
    spec = [tf.TensorSpec((None, side, side, 3), tf.float32, name=INPUT_NAME)]

    # autograph=False: as in the detector (no Python control flow here).
    @tf.function(input_signature=spec, autograph=False)
    def forward(x: Any) -> Any:
        *regressions, cls = keras_net(x, training=False)
        return tf.concat([*regressions, cls[..., 1:2]], axis=-1)

    data = onnx_files.convert_function(forward, spec, f"MTCNN {net}")
    diff = compare(net, data, tf_nets)
    prep = preprocessing_difference()
    if not (diff <= MAX_ABS_DIFF and prep <= MAX_ABS_DIFF):
        raise ConversionError(
            f"The ONNX conversion of MTCNN's {net} differs from TensorFlow by {max(diff, prep):.2g} on the "
            f"reference images (at most {MAX_ABS_DIFF:g} allowed), so it was refused; the TensorFlow "
            "detector stays in use.")
    path = onnx_path(net, folder)
    onnx_files.write(path, data, {
        "writer": __name__, "source_sha256": source_sha256(net), "max_abs_diff": diff,
        "max_abs_diff_allowed": MAX_ABS_DIFF, "preprocessing_max_abs_diff": prep, "input": INPUT_NAME,
        "reference": {"images": [list(im.shape) for im in synthetic_images()],
                      "boxes": len(synthetic_boxes()) if side else 0},
        "inside_graph": (f"MTCNN {net}, normalised float32 (N, {side or 'H'}, {side or 'W'}, 3) in, "
                         f"regressions and face probability concatenated ({OUTPUT_WIDTH[net]} wide) out"),
    })
    log.info("converted MTCNN %s to ONNX in %.1f s (largest difference from TensorFlow %.2g): %s",
             net, time.perf_counter() - started, diff, path)
    return path


# --------------------------------------------------------------------------------------------

_SHARED: dict[tuple[Path, int], tuple[_OnnxNetworks, dict[str, Path], bool, float]] = {}
_SHARED_LOCK = threading.Lock()


def _load(folder: Path | None, threads: int) -> tuple[_OnnxNetworks, dict[str, Path], bool, float]:
    """The process's sessions for ``(folder, threads)``, loaded (converted if needed) by the first caller."""
    key = (_folder(folder).resolve(), int(threads))
    with _SHARED_LOCK:
        if key in _SHARED:
            return _SHARED[key]
        started = time.perf_counter()
        for attempt in range(2):
            models: dict[str, bytes] = {}
            paths: dict[str, Path] = {}
            from_cache, worst = True, 0.0
            for net in NETWORKS:
                sha = source_sha256(net)
                path, data, meta, cached = onnx_files.load_or_convert(
                    onnx_files.candidates(f"mtcnn-{net}", sha, _folder(folder)), sha, MAX_ABS_DIFF,
                    partial(convert, net, folder), f"MTCNN {net}")
                models[net], paths[net] = data, path  # the bytes that were hashed, not the file again
                from_cache = from_cache and cached
                worst = max(worst, float(meta["max_abs_diff"]))
            nets = open_sessions(models, threads)
            why = reference_mismatch(nets)
            if why is None:
                break
            if attempt == 1 or not from_cache:
                raise ConversionError(f"The ONNX MTCNN {why}; the TensorFlow detector stays in use.")
            # Files that pass their sidecars but not the pinned reference were replaced together with
            # them (the cache folder is writable by the console's account): convert them again.
            log.warning("rebuilding the ONNX MTCNN: %s", why)
            for path in paths.values():
                onnx_files.remove(path, onnx_files.sidecar_path(path))
        loaded = (nets, paths, from_cache, worst)
        _SHARED[key] = loaded
        log.info("ONNX MTCNN ready in %.2f s (%s, %d threads)", time.perf_counter() - started,
                 "cache" if from_cache else "converted", threads)
        return loaded


# What the pinned weights compute (TensorFlow 2.21, rounded to 1e-6; ONNX Runtime agrees to 2e-7) on
# fixed inputs: P-Net on ``synthetic_images()[0]`` at full size (the 5 output channels' means, then
# the outputs at rows/columns (10, 10), (30, 40) and (50, 70)); R-Net and O-Net on its first four
# ``synthetic_boxes()`` (regressions, O-Net's landmarks, the face probability).  Every load checks
# the sessions against them within REFERENCE_TOLERANCE: a network swapped in the cache folder
# together with a sidecar that fits it is caught there.
REFERENCE_OUTPUTS: dict[str, tuple[tuple[float, ...], ...]] = {
    "pnet": ((0.046455, -0.092199, -0.02882, 0.042468, 0.010884, -0.008444, 0.041833, -0.07774, 0.191145,
              0.043594, 0.042943, -0.048471, -0.01559, 0.082053, 0.001328, 0.137792, -0.113987, 0.107943,
              0.068665, 0.003589),),
    "rnet": ((-0.01373, -0.191522, -0.059302, 0.062666, 0.023025),
             (0.033665, -0.048029, 0.14118, 0.264435, 0.006524),
             (-0.035198, 0.03331, -0.161985, 0.098464, 0.001338),
             (0.10937, -0.032597, 0.11187, 0.230316, 0.013868)),
    "onet": ((0.064711, -0.073004, -0.089748, -0.030953, 0.355352, 0.635628, 0.450472, 0.330146, 0.533706,
              0.234117, 0.24105, 0.466444, 0.683867, 0.695805, 0.008244),
             (0.099944, -0.063386, 0.035943, 0.106699, 0.336389, 0.684214, 0.497732, 0.462874, 0.73087,
              0.396083, 0.289274, 0.604485, 0.866819, 0.783969, 0.001921),
             (0.05616, -0.083184, -0.093804, 0.022652, 0.313329, 0.609244, 0.460883, 0.366447, 0.630588,
              0.318396, 0.237389, 0.572942, 0.764373, 0.710869, 0.000929),
             (0.141122, -0.104061, -0.016413, 0.025005, 0.387391, 0.709536, 0.519195, 0.486598, 0.725485,
              0.319564, 0.232454, 0.543635, 0.795282, 0.732537, 0.00447)),
}
REFERENCE_TOLERANCE = 1e-4


def reference_outputs(nets: Any) -> dict[str, np.ndarray]:
    """The outputs :data:`REFERENCE_OUTPUTS` pins, computed by ``nets`` (ONNX or TensorFlow stages)."""
    image = synthetic_images()[0]
    norm = normalise(image)
    _, maps = nets.pyramid(image, [image.shape[:2]])
    m = np.asarray(maps[0], np.float64)
    pnet = np.concatenate([m.reshape(-1, m.shape[-1]).mean(axis=0), m[10, 10], m[30, 40], m[50, 70]])
    boxes = synthetic_boxes()[:4]
    crops = {net: np.concatenate([np.reshape(np.asarray(o, np.float64), (len(boxes), -1))
                                  for o in getattr(nets, net)(norm, boxes)], axis=1) for net in ("rnet", "onet")}
    return {"pnet": pnet[np.newaxis], **crops}


def reference_mismatch(nets: Any) -> str | None:
    """Why ``nets`` do not compute what the pinned MTCNN weights do, or ``None`` if they do."""
    got = reference_outputs(nets)
    for net, expected in REFERENCE_OUTPUTS.items():
        want = np.asarray(expected, np.float64)
        diff = float(np.abs(got[net] - want).max()) if got[net].shape == want.shape else float("inf")
        if not diff <= REFERENCE_TOLERANCE:
            return (f"{net} does not compute what the pinned weights compute (reference outputs differ by "
                    f"{diff:.2g}, at most {REFERENCE_TOLERANCE:g} allowed): damaged or replaced")
    return None


class OnnxMtcnnDetector(BaseMtcnnDetector):
    """MTCNN detector whose networks run in ONNX Runtime; a drop-in for :class:`MtcnnDetector`.

    Parameters
    ----------
    min_face_size, max_side, min_confidence
        As for :class:`~core.vision.detector.MtcnnDetector` (the same stage logic and filters).
    threads : int
        ONNX Runtime intra-op threads per network (see :data:`INTRA_OP_THREADS`).
    folder : Path or None
        Cache folder of the ONNX files; ``None`` is the folder of the converted weights.

    Attributes
    ----------
    backend : str
        ``"onnx"``.
    onnx_paths_ : dict[str, Path]
        The ONNX file of each network once :meth:`load` has run.
    loaded_from_cache_ : bool
        Whether the process's sessions (shared, see Notes) were opened from verified cached files,
        with no conversion (so no TensorFlow imported by this detector).
    max_abs_diff_ : float
        Largest difference from TensorFlow recorded when the files were converted.

    Notes
    -----
    Sessions are opened once per process (per cache folder and thread count), on the first
    :meth:`load` or :meth:`detect`, and shared by every detector; they are safe to use from several
    threads at once.
    """

    backend: str = "onnx"

    def __init__(self, min_face_size: int = 20, max_side: int = 1280, min_confidence: float = 0.8, *,
                 threads: int = INTRA_OP_THREADS, folder: Path | None = None) -> None:
        super().__init__(min_face_size, max_side, min_confidence)
        self.threads = threads
        self.folder = folder
        self.onnx_paths_: dict[str, Path] = {}
        self.loaded_from_cache_ = False
        self.max_abs_diff_ = float("nan")
        self._nets: _OnnxNetworks | None = None

    def load(self) -> None:
        """Open the three cached ONNX networks, converting (and checking) them first if needed.

        Raises
        ------
        ConversionError
            If a fresh conversion does not match TensorFlow (the caller falls back to TensorFlow).
        ModelError
            If a runtime or the pinned weights cannot be loaded, or a file cannot be written back.
        """
        if self._nets is None:
            nets, paths, from_cache, diff = _load(self.folder, self.threads)
            self.onnx_paths_, self.loaded_from_cache_, self.max_abs_diff_ = dict(paths), from_cache, diff
            self._nets = nets

    def _stage_networks(self) -> StageNetworks:
        self.load()
        assert self._nets is not None
        return self._nets


__all__ = (
    "INTRA_OP_THREADS",
    "MAX_ABS_DIFF",
    "NETWORKS",
    "OnnxMtcnnDetector",
    "compare",
    "convert",
    "crop_and_resize",
    "normalise",
    "onnx_path",
    "open_sessions",
    "preprocessing_difference",
    "resize_area",
    "resize_area_transposed",
    "source_sha256",
    "synthetic_boxes",
    "synthetic_images",
)
