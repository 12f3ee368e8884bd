"""Face detection with MTCNN: the ``mtcnn`` package's networks and weights, our own fast stages.

Why not ``mtcnn.MTCNN.detect_faces``
------------------------------------
``mtcnn`` 1.0.0 calls its Keras models eagerly: P-Net once per pyramid level, then R-Net and O-Net,
each paying Keras 3's per-layer dispatch, plus Python loops and ``(N, N)`` float64 masks in its NMS.
On a 640×480 frame that overhead, not the arithmetic, is most of the 100–400 ms a call takes.
:class:`MtcnnDetector` keeps the package's networks (``mtcnn.network``) and weights and re-implements
the stage logic here with the package's thresholds, box arithmetic, crops and NMS (including its quirk
that a box it suppressed still suppresses the boxes after it), so it finds the same faces:

- three ``tf.function``s, each traced once when the networks load: the whole P-Net pyramid in one
  call (normalisation, every level's area resize and P-Net, in a graph loop), and R-Net and O-Net
  each with their ``crop_and_resize``.  Image, level and batch sizes are unknown dimensions of their
  input signatures, so no frame size, photo size or candidate count ever re-traces them;
- R-Net and O-Net batches above 8 crops are padded to a multiple of 16, so oneDNN sees few shapes;
- NMS and box regression are vectorised numpy.

The stage logic (:func:`run_stages`: thresholds, NMS, box arithmetic, rounding in
:class:`BaseMtcnnDetector`) takes any object providing the three networks (:class:`StageNetworks`),
so the ONNX Runtime detector (:mod:`core.vision.onnx_detector`) shares it rather than copying it.

Boxes and landmarks are rounded as the package rounds them.  On all 118 photos of the 5-celebrity
dataset the two find the same 121 faces with the same boxes and landmarks, so the embeddings do not
change (``benchmarks/bench_detector.py --equivalence``; ``tests/core/test_detector_align.py`` checks a
sample).  :class:`PackageMtcnnDetector` is the previous, package-based wrapper, kept as that reference.

The ``mtcnn`` 1.0.0 pyramid bug
-------------------------------
``mtcnn.utils.images.build_scale_pyramid`` counts its levels as if the pyramid started at scale 1
(``log(min_dim / 12) / log(scale_factor)``) but starts it at ``12 / min_face_size``.  With the default
``min_face_size=20`` the last level still leaves the image at least 12 px high, P-Net's window; with
``min_face_size=40`` or ``80`` the last levels shrink a 640×480 frame to 6 px or less, TensorFlow raises
``InvalidArgumentError`` on them, and ``MTCNN.detect_faces`` catches that error as "no faces found" — so
*every* face is silently lost (``test_upstream_pyramid_bug_is_still_there`` pins it).  Neither detector
passes ``min_face_size`` to the package's pyramid: to ignore faces smaller than ``min_face_size`` both
downscale the image by ``20 / min_face_size`` themselves, run the 20-px pyramid, and scale the boxes
back (:func:`pyramid_scales` also drops any level under 12 px, should a caller ask for another size).

Speed
-----
With the overhead gone, pixels are the cost: P-Net's work grows with the image, and faces at a gate
are large.  The live monitor uses ``min_face_size=80`` (:data:`LIVE_MIN_FACE_SIZE`), which finds
the 140–170-px faces of a 640×480 frame in 25–30 ms (median, 2 shared cores; the package takes
~400 ms, the previous wrapper at ``min_face_size=80`` ~175 ms).  Measure with::

    .venv/bin/python benchmarks/bench_detector.py          # writes benchmarks/results/detector.json
"""

from __future__ import annotations

import abc
import importlib.resources
import logging
import os
import threading
import time
from typing import Any, Protocol

import numpy as np

from core.errors import ImageError, ModelError
from core.types import LANDMARK_NAMES, Detection
from core.vision.imageio import downscale_to

log = logging.getLogger(__name__)

# The smallest face the detector looks for; smaller ``min_face_size`` values act as this.  (It is
# also the largest value the mtcnn package handles without the pyramid bug.)
MTCNN_SAFE_MIN_FACE = 20
# Recommended ``min_face_size`` for live gate video on a 640×480 camera, whose faces are 100 px and
# more (scale it with the frame height: 120 on 1280×720).
LIVE_MIN_FACE_SIZE = 80

# The mtcnn 1.0.0 defaults (mtcnn/stages/stage_*.py), kept so results match the package.
_SCALE_FACTOR = 0.709
_PNET_WINDOW = 12
_PNET_STRIDE = 2
_PNET_THRESHOLD = 0.6
_PNET_NMS_LEVEL = 0.5  # per pyramid level, IoU over union
_PNET_NMS_ALL = 0.7  # across levels, IoU over union
_RNET_THRESHOLD = 0.7
_RNET_NMS = 0.7
_ONET_THRESHOLD = 0.8
_ONET_NMS = 0.7  # IoU over the smaller box
# R-Net / O-Net batches up to _EXACT_BATCH run as they are; larger ones are padded to a multiple
# of _BATCH_STEP, so TensorFlow and oneDNN see few distinct shapes (each new one costs a few ms
# once) while little work is wasted on padding (O-Net costs ~1 ms per crop).
_EXACT_BATCH = 8
_BATCH_STEP = 16
# Columns of the pairwise IoU matrix computed at once in NMS: bounds the memory on busy frames.
_NMS_CHUNK = 512


class Detector(Protocol):
    """Finds faces and their five landmarks in an RGB image."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Return the faces in ``image`` (``uint8`` RGB), most confident first."""
        ...


class StageNetworks(Protocol):
    """MTCNN's three networks, in any runtime, as :func:`run_stages` calls them."""

    def pyramid(self, image: np.ndarray, sizes: list[tuple[int, int]]) -> tuple[Any, list[np.ndarray]]:
        """P-Net over the pyramid of ``image`` (``uint8`` RGB).

        Returns the normalised image, ``(pixels - 127.5) / 128`` (in whatever form :meth:`rnet` and
        :meth:`onet` take it), and per level ``(height, width)`` of ``sizes`` (the area-resized
        level's size) P-Net's ``(mh, mw, 5)`` maps: the four box regressions and the face
        probability.
        """
        ...

    def rnet(self, source: Any, boxes: np.ndarray) -> list[np.ndarray]:
        """R-Net on the 24×24 bilinear crops of ``boxes`` (``(n, 4)`` float32 ``y1, x1, y2, x2``
        over ``source``'s size, extrapolated with 0): ``[regression (n, 4), probability (n,)]``."""
        ...

    def onet(self, source: Any, boxes: np.ndarray) -> list[np.ndarray]:
        """O-Net on the 48×48 crops of ``boxes``: ``[regression (n, 4), landmarks (n, 10),
        probability (n,)]``."""
        ...


# --------------------------------------------------------------------------------------------
# Stage arithmetic (numpy), following mtcnn/utils/bboxes.py


def pyramid_scales(height: int, width: int, min_face_size: float) -> np.ndarray:
    """Scales of the P-Net image pyramid.

    The ``mtcnn`` package's levels (``build_scale_pyramid``), minus the ones that shrink the image
    below P-Net's 12-px window, which the package does not drop (see the module docstring).  For
    ``min_face_size=20`` that removes nothing.

    Parameters
    ----------
    height, width
        Size of the image the pyramid is built on.
    min_face_size
        Smallest face to find, in pixels of that image; the first level is ``12 / min_face_size``.

    Returns
    -------
    np.ndarray
        float64 scales, largest first; empty if the image is too small for any level.
    """
    min_dim = min(width, height)
    if min_dim < _PNET_WINDOW:
        return np.zeros(0)
    count = round(-((np.log(min_dim / _PNET_WINDOW) / np.log(_SCALE_FACTOR)) + 1))
    scales = (_PNET_WINDOW / min_face_size) * _SCALE_FACTOR ** np.arange(max(count, 0))
    # TensorFlow truncates the level size to int, as we do in _level_size.
    return scales[(min_dim * scales).astype(int) >= _PNET_WINDOW]


def _level_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Pixel size of a pyramid level, as ``tf.image.resize`` gets it in the package."""
    h, w = (np.asarray([height, width]) * scale).astype(int)
    return int(h), int(w)


def _sort_desc(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The package's ``sort_by_scores(..., ascending=False)`` (same argsort, same tie order)."""
    return rows[np.argsort(scores)[::-1]]


def nms_keep(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices of the boxes kept by the ``mtcnn`` package's non-maximum suppression.

    Box ``j`` is dropped if any *earlier* box ``i < j`` overlaps it by more than ``threshold`` —
    whether or not ``i`` was itself dropped (the package's ``nms`` in ``utils/bboxes.py``; classic
    greedy NMS would let a dropped box suppress nothing).  Callers sort the boxes first.

    Parameters
    ----------
    boxes
        ``(N, 4)`` ``x1, y1, x2, y2``.
    threshold
        Overlap above which the later box is dropped.
    method
        ``"union"`` (IoU) or ``"min"`` (intersection over the smaller area).

    Returns
    -------
    np.ndarray
        Sorted integer indices of the kept boxes.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    dropped = np.zeros(n, bool)
    for start in range(0, n, _NMS_CHUNK):
        stop = min(n, start + _NMS_CHUNK)
        # Rows: every box before the chunk's last one; columns: the chunk.
        r, c = slice(0, stop), slice(start, stop)
        iw = np.minimum(x2[r, None], x2[None, c]) - np.maximum(x1[r, None], x1[None, c])
        ih = np.minimum(y2[r, None], y2[None, c]) - np.maximum(y1[r, None], y1[None, c])
        inter = np.maximum(iw, 0) * np.maximum(ih, 0)
        if method == "union":
            denom = area[r, None] + area[None, c] - inter
        elif method == "min":
            denom = np.minimum(area[r, None], area[None, c])
        else:
            raise ValueError(f"method must be 'union' or 'min', not {method!r}")
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 is NaN, never "over"
            over = inter / denom > threshold
        rows = np.arange(stop)[:, None]
        cols = np.arange(start, stop)[None, :]
        dropped[c] = (over & (rows < cols)).any(axis=0)
    return np.flatnonzero(~dropped)


def _square(boxes: np.ndarray) -> np.ndarray:
    """The package's ``resize_to_square``: grow the shorter side about the centre."""
    out = boxes.copy()
    h = out[:, 4] - out[:, 2]
    w = out[:, 3] - out[:, 1]
    side = np.maximum(w, h)
    out[:, 1] = out[:, 1] + w * 0.5 - side * 0.5
    out[:, 2] = out[:, 2] + h * 0.5 - side * 0.5
    out[:, 3] = out[:, 1] + side
    out[:, 4] = out[:, 2] + side
    return out


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The package's ``adjust_bboxes``: shift the corners by offsets times (w + 1, h + 1)."""
    out = boxes.copy()
    w = out[:, 3] - out[:, 1] + 1
    h = out[:, 4] - out[:, 2] + 1
    out[:, 1:5] += offsets.astype(np.float64) * np.stack([w, h, w, h], axis=-1)
    return out


def _pnet_boxes(reg: np.ndarray, prob: np.ndarray, scale: float) -> np.ndarray:
    """The package's ``generate_bounding_box`` + ``upscale_bboxes`` for one pyramid level.

    Returns ``(n, 6)`` rows ``[0, x1, y1, x2, y2, score]`` in the level's source pixels, best first.
    """
    ys, xs = np.nonzero(prob > _PNET_THRESHOLD)
    if len(ys) == 0:
        return np.zeros((0, 6))
    r = reg[ys, xs].astype(np.float64)
    cell = _PNET_WINDOW - 1  # the package's window width: (2x + 12) - (2x + 1)
    x0 = xs * _PNET_STRIDE + 1
    y0 = ys * _PNET_STRIDE + 1
    rows = np.stack([
        np.zeros(len(ys)),
        x0 + r[:, 0] * cell,
        y0 + r[:, 1] * cell,
        x0 + cell + r[:, 2] * cell,
        y0 + cell + r[:, 3] * cell,
        prob[ys, xs].astype(np.float64),
    ], axis=1)
    rows = _sort_desc(rows, rows[:, 5])
    rows[:, 1:5] /= scale
    return rows


def _bucket(n: int) -> int:
    """Batch size that ``n`` crops are padded to (see ``_EXACT_BATCH``)."""
    return n if n <= _EXACT_BATCH else -(-n // _BATCH_STEP) * _BATCH_STEP


def crop_boxes(rows: np.ndarray, h: int, w: int) -> np.ndarray:
    """The package's ``extract_patches`` boxes: ``(n, 4)`` float32 ``[y1, x1, y2, x2]`` over ``(h, w)``."""
    return (rows[:, [2, 1, 4, 3]] / np.asarray([h, w, h, w], np.float64)).astype(np.float32)


def run_stages(nets: StageNetworks, image: np.ndarray) -> np.ndarray:
    """The three stages on one image, with the package's ``min_face_size=20`` pyramid.

    Parameters
    ----------
    nets : StageNetworks
        The networks (TensorFlow's :class:`_Networks`, or ONNX Runtime's).
    image : np.ndarray
        ``uint8`` RGB ``(H, W, 3)``, contiguous.

    Returns
    -------
    np.ndarray
        Rows ``[0, x1, y1, x2, y2, score, 5 × landmark x, 5 × landmark y]`` in ``image``'s pixels,
        best first.
    """
    h, w = image.shape[:2]
    empty = np.zeros((0, 16))
    scales = pyramid_scales(h, w, MTCNN_SAFE_MIN_FACE)
    if len(scales) == 0:
        return empty
    # P-Net over the pyramid: per-level NMS, then across levels.
    norm, maps_per_level = nets.pyramid(image, [_level_size(h, w, s) for s in scales])
    levels = []
    for s, maps in zip(scales, maps_per_level):
        rows = _pnet_boxes(maps[:, :, :4], maps[:, :, 4], float(s))
        levels.append(rows[nms_keep(rows[:, 1:5], _PNET_NMS_LEVEL)])
    rows = np.concatenate(levels)
    rows = _sort_desc(rows, rows[:, 5])
    rows = _square(rows[nms_keep(rows[:, 1:5], _PNET_NMS_ALL)])
    if len(rows) == 0:
        return empty

    # R-Net on square crops.
    reg, score = nets.rnet(norm, crop_boxes(rows, h, w))
    rows[:, 5] = score
    rows = _regress(rows, reg)
    rows = rows[rows[:, 5] > _RNET_THRESHOLD]
    rows = _sort_desc(rows, rows[:, 5])
    rows = _square(rows[nms_keep(rows[:, 1:5], _RNET_NMS)])
    if len(rows) == 0:
        return empty

    # O-Net: landmarks relative to the crop, then the box regression.
    reg, marks, score = nets.onet(norm, crop_boxes(rows, h, w))
    bw = rows[:, 3:4] - rows[:, 1:2] + 1
    bh = rows[:, 4:5] - rows[:, 2:3] + 1
    marks = marks.astype(np.float64)
    lx = bw * marks[:, 0:5] + rows[:, 1:2] - 1
    ly = bh * marks[:, 5:10] + rows[:, 2:3] - 1
    rows[:, 5] = score
    rows = np.concatenate([_regress(rows, reg), lx, ly], axis=1)
    rows = rows[rows[:, 5] > _ONET_THRESHOLD]
    rows = _sort_desc(rows, rows[:, 5])
    rows = rows[nms_keep(rows[:, 1:5], _ONET_NMS, method="min")]
    # The package's limit_bboxes: boxes (not landmarks) clipped to the image.
    rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, w - 1)
    rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, h - 1)
    return rows


# --------------------------------------------------------------------------------------------
# Networks


# SHA-256 of the weight files in the pinned mtcnn 1.0.0 wheel: they are joblib pickles, so each is
# checked against this before it is unpickled (a file replaced in the install must not run code).
_WEIGHT_SHA256 = {
    "pnet.lz4": "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5",
    "rnet.lz4": "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee",
    "onet.lz4": "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3",
}


def _load_weights(name: str) -> Any:
    """The weights list of one network, read from the mtcnn wheel only, after checking its SHA-256.

    (``mtcnn.utils.tensorflow.load_weights`` first tries ``name`` relative to the working directory,
    and the files are joblib pickles: we never read one we did not install, nor one that changed.)

    Raises
    ------
    ModelError
        If the file's SHA-256 is not the pinned one.
    """
    import hashlib

    import joblib

    path = importlib.resources.files("mtcnn.assets.weights") / name
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != _WEIGHT_SHA256.get(name):
        raise ModelError(f"The MTCNN weights {name} in the installed mtcnn package are not the pinned ones (their "
                         "SHA-256 differs); they were not loaded. Reinstall from packaging/requirements.lock.")
    with importlib.resources.as_file(path) as file:
        return joblib.load(file)


class _Networks:
    """P-Net, R-Net and O-Net as ``tf.function``s, each traced once (see the module docstring)."""

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        from mtcnn.network.onet import ONet
        from mtcnn.network.pnet import PNet
        from mtcnn.network.rnet import RNet

        pnet, rnet, onet = PNet(), RNet(), ONet()
        for net, weights in ((pnet, "pnet.lz4"), (rnet, "rnet.lz4"), (onet, "onet.lz4")):
            net.build()
            net.set_weights(_load_weights(weights))
        self._tf = tf
        self._keras = (pnet, rnet, onet)  # the functions below read their weights

        def pnet_level(image: Any, size: Any) -> Any:
            level = tf.image.resize(image[tf.newaxis], size, method=tf.image.ResizeMethod.AREA)
            reg, cls = pnet(level, training=False)
            return reg[0], cls[0, :, :, 1]

        # autograph=False: no function here has Python control flow to convert, and autograph
        # reads the source, which a frozen (PyInstaller) build does not ship.
        @tf.function(input_signature=[tf.TensorSpec((None, None, 3), tf.uint8),
                                      tf.TensorSpec((None, 2), tf.int32)], autograph=False)
        def pnet_pyramid(pixels: Any, sizes: Any) -> Any:
            # The normalised image (for the R-Net and O-Net crops) and every pyramid level in one
            # call: each level's maps flattened to rows [reg x1, y1, x2, y2, face probability] and
            # concatenated, with the maps' sizes to split them again.
            image = (tf.cast(pixels, tf.float32) - 127.5) / 128.0
            n = tf.shape(sizes)[0]

            def level(i: Any, maps: Any, shapes: Any) -> Any:
                reg, prob = pnet_level(image, sizes[i])
                maps = maps.write(i, tf.reshape(tf.concat([reg, prob[:, :, tf.newaxis]], axis=-1), (-1, 5)))
                return i + 1, maps, shapes.write(i, tf.shape(prob))

            _, maps, shapes = tf.while_loop(
                lambda i, maps, shapes: i < n, level,
                (tf.constant(0), tf.TensorArray(tf.float32, size=n, infer_shape=False,
                                                element_shape=tf.TensorShape([None, 5])),
                 tf.TensorArray(tf.int32, size=n, element_shape=tf.TensorShape([2]))))
            return image, maps.concat(), shapes.stack()

        def crop_net(net: Any, side: int) -> Any:
            # The package's extract_patches + the network, on boxes normalised to [0, 1].
            @tf.function(input_signature=[tf.TensorSpec((None, None, 3), tf.float32),
                                          tf.TensorSpec((None, 4), tf.float32)], autograph=False)
            def run(image: Any, boxes: Any) -> Any:
                ind = tf.zeros(tf.shape(boxes)[:1], tf.int32)
                patches = tf.image.crop_and_resize(image[tf.newaxis], boxes, ind, (side, side))
                *regressions, cls = net(patches, training=False)
                return (*regressions, cls[:, 1])

            return run

        self.pnet_pyramid = pnet_pyramid
        self.rnet_crops = crop_net(rnet, 24)
        self.onet_crops = crop_net(onet, 48)

    def warm_up(self) -> None:
        """Trace every function now rather than on the first frame."""
        tf = self._tf
        image, _, _ = self.pnet_pyramid(tf.zeros((48, 48, 3), tf.uint8), tf.constant([[24, 24], [17, 17]]))
        boxes = tf.constant([[0.0, 0.0, 1.0, 1.0]], tf.float32)
        self.rnet_crops(image, boxes)
        self.onet_crops(image, boxes)

    def stages(self, image: np.ndarray) -> np.ndarray:
        """:func:`run_stages` on these networks."""
        return run_stages(self, image)

    def pyramid(self, image: np.ndarray, sizes: list[tuple[int, int]]) -> tuple[Any, list[np.ndarray]]:
        """P-Net over the pyramid in one graph call (see :class:`StageNetworks`)."""
        tf = self._tf
        norm, flat, shapes = self.pnet_pyramid(tf.constant(image), tf.constant(sizes, tf.int32))
        flat = flat.numpy()
        levels, start = [], 0
        for mh, mw in shapes.numpy():
            levels.append(flat[start:start + mh * mw].reshape(mh, mw, 5))
            start += mh * mw
        return norm, levels

    def rnet(self, source: Any, boxes: np.ndarray) -> list[np.ndarray]:
        """R-Net on the crops of ``boxes`` (see :class:`StageNetworks`)."""
        return self._crops(self.rnet_crops, source, boxes)

    def onet(self, source: Any, boxes: np.ndarray) -> list[np.ndarray]:
        """O-Net on the crops of ``boxes`` (see :class:`StageNetworks`)."""
        return self._crops(self.onet_crops, source, boxes)

    def _crops(self, net: Any, source: Any, boxes: np.ndarray) -> list[np.ndarray]:
        """Run R-Net or O-Net on ``boxes`` padded to a bucket size; outputs per box."""
        n = len(boxes)
        coords = np.zeros((_bucket(n), 4), np.float32)
        coords[:n] = boxes
        outs = net(source, self._tf.constant(coords))
        return [o.numpy()[:n] for o in outs]


_NETWORKS: _Networks | None = None
_NETWORKS_LOCK = threading.Lock()


def _networks() -> _Networks:
    """The process's networks, built and traced by the first caller (in its thread)."""
    global _NETWORKS
    with _NETWORKS_LOCK:
        if _NETWORKS is None:
            started = time.perf_counter()
            try:
                nets = _Networks()
                nets.warm_up()
            except Exception as exc:  # ImportError, missing/damaged weights, a broken TF build
                raise ModelError(
                    f"The MTCNN face detector could not be loaded ({exc}); reinstall FaceGate."
                ) from exc
            _NETWORKS = nets
            log.info("MTCNN networks ready in %.1f s", time.perf_counter() - started)
        return _NETWORKS


# --------------------------------------------------------------------------------------------
# Detectors


class BaseMtcnnDetector(abc.ABC):
    """What every fast MTCNN detector shares: the downscaling, :func:`run_stages`, the rounding and
    the filters.  Subclasses provide the networks (:meth:`_stage_networks`) and :meth:`load`.

    Parameters
    ----------
    min_face_size
        Faces whose shorter box side is below this (in source pixels) are ignored.  Values above 20
        are honoured by downscaling the image by ``20 / min_face_size`` (see the module docstring),
        so larger values are much faster: use :data:`LIVE_MIN_FACE_SIZE` for live gate video.
        Values below 20 act as 20.
    max_side
        Images whose longer side exceeds this are downscaled before detection (very large photos).
    min_confidence
        Detections below this O-Net confidence are dropped (O-Net's own threshold, 0.8, applies
        first).
    """

    backend: str = ""

    def __init__(self, min_face_size: int = 20, max_side: int = 1280, min_confidence: float = 0.8) -> None:
        self.min_face_size = min_face_size
        self.max_side = max_side
        self.min_confidence = min_confidence

    @abc.abstractmethod
    def load(self) -> None:
        """Make the networks ready (idempotent)."""

    @abc.abstractmethod
    def _stage_networks(self) -> StageNetworks:
        """The loaded networks (loading them first if needed)."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Return the faces in ``image`` (``uint8`` RGB ``(H, W, 3)``), most confident first.

        Raises
        ------
        ImageError
            If ``image`` is not an 8-bit RGB array.
        ModelError
            If the networks cannot be loaded (see :meth:`load`).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ImageError(f"Expected an 8-bit RGB image, got shape {image.shape} and type {image.dtype}.")
        h, w = image.shape[:2]
        if min(h, w) < 24:
            return []
        # Faces of min_face_size px, found by the package's 20-px pyramid on the image shrunk by
        # 20 / min_face_size (see the module docstring), in the previous wrapper's two steps.
        shrink = MTCNN_SAFE_MIN_FACE / max(self.min_face_size, MTCNN_SAFE_MIN_FACE)
        small, s2 = downscale_to(image, round(max(h, w) * shrink))
        small, s3 = downscale_to(small, self.max_side)
        if min(small.shape[:2]) < 24:
            return []
        rows = run_stages(self._stage_networks(), np.ascontiguousarray(small))
        return self._detections(rows, s2 * s3)

    def _detections(self, rows: np.ndarray, scale: float) -> list[Detection]:
        """Stage rows (in pixels of the image shrunk by ``scale``) as detections in source pixels.

        Rounds like the package's ``to_json`` (box corner and size, landmarks, to whole pixels of the
        shrunk image) and filters like the previous wrapper, so the detections — and the embeddings
        computed from their landmarks — are the same as before.
        """
        out = []
        for row in rows:
            conf = float(row[5])
            if conf < self.min_confidence:
                continue
            x, y, bw, bh = np.round([row[1], row[2], row[3] - row[1], row[4] - row[2]]) / scale
            if min(bw, bh) < self.min_face_size:
                continue
            marks = np.round(row[6:16]) / scale
            pts = tuple((float(marks[k]), float(marks[5 + k])) for k in range(len(LANDMARK_NAMES)))
            box = (round(x), round(y), round(bw), round(bh))
            out.append(Detection(box, conf, pts))  # type: ignore[arg-type]
        out.sort(key=lambda d: d.confidence, reverse=True)
        return out


class MtcnnDetector(BaseMtcnnDetector):
    """MTCNN detector (fast stages over the ``mtcnn`` package's networks, in TensorFlow).

    Parameters
    ----------
    min_face_size, max_side, min_confidence
        See :class:`BaseMtcnnDetector`.

    Notes
    -----
    The networks are built once per process, on the first :meth:`detect` (or :meth:`load`) of any
    detector, in the calling thread, never at import; every detector shares them.  Detectors may be
    used from several threads at once: the networks hold no state between calls.
    """

    backend: str = "tf"

    def load(self) -> None:
        """Build and trace the three networks (idempotent, thread-safe; a few seconds the first time).

        Raises
        ------
        ModelError
            If TensorFlow or the ``mtcnn`` package's weights cannot be loaded.
        """
        _networks()

    def _stage_networks(self) -> StageNetworks:
        return _networks()


class PackageMtcnnDetector:
    """The previous detector: ``mtcnn.MTCNN.detect_faces`` behind the pyramid-bug workaround.

    Several times slower than :class:`MtcnnDetector`; kept as the reference that the equivalence
    test and ``benchmarks/bench_detector.py`` compare against.  Same parameters as
    :class:`MtcnnDetector`; ``min_face_size`` above 20 is honoured by downscaling the image by
    ``20 / min_face_size`` (see the module docstring).
    """

    def __init__(self, min_face_size: int = 20, max_side: int = 1280, min_confidence: float = 0.8) -> None:
        self.min_face_size = min_face_size
        self.max_side = max_side
        self.min_confidence = min_confidence
        self._mtcnn: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build the three networks (idempotent)."""
        with self._lock:
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
