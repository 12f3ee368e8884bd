"""FaceNet embeddings from Hiroki Taniai's Keras port (Inception-ResNet-v1, MS-Celeb-1M).

``facenet_keras.h5`` was written by Keras 2.1.2; its residual "scale-sum" layers are ``Lambda``
layers holding Python 3.6 bytecode, which ``keras.models.load_model`` cannot run on Python 3.11.
So the network is rebuilt here from the file's own ``model_config`` with plain Keras 3 layers, each
scale ``Lambda`` is replaced by a small ``ScaleSum`` layer with the same ``scale`` argument, and
the weights are copied in by layer name.  (The ``Lambda``'s bytecode decodes to
``inputs[0] + inputs[1] * scale``; the file has no L2-normalisation layer, its output is the
``Bottleneck_BatchNorm`` layer, so :meth:`FaceNetEmbedder.embed` normalises the rows itself.)

For inference every BatchNormalization is folded into the convolution before it (and the ReLU
after it into the same layer), which leaves 203 of the 426 layers, halves build and trace time and
makes each call faster; the folded graph agrees with the layer-by-layer one to ~1e-6.  The folded
network (config and weights) is cached as an ``.npz`` named after the source file's SHA-256, written
by this module only (temp file, then rename) and read back without pickle.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from core.assets import cache_dir, sha256_of
from core.errors import AssetError, ModelError

log = logging.getLogger(__name__)

EMBEDDING_SIZE = 128
INPUT_SIZE = 160

# Bump when the cache layout or the conversion changes, so old cache files are not read.
_CACHE_FORMAT = 1
_CACHE_WRITERS = (__name__, "core.facenet")  # this module, and its name before core/ had subpackages
CACHE_SUBDIR = "models"
# Faces per forward pass; bounds the activation memory for long lists of faces.
MAX_BATCH = 32


def prewhiten(faces: np.ndarray) -> np.ndarray:
    """Standardise each image to zero mean and unit variance, as FaceNet was trained.

    Parameters
    ----------
    faces : np.ndarray
        One image ``(H, W, C)`` or a batch ``(N, H, W, C)``, any numeric dtype.

    Returns
    -------
    np.ndarray
        Same shape, float32: ``(x - mean) / max(std, 1 / sqrt(x.size))`` computed per image (the
        floor keeps a flat image from dividing by zero).
    """
    x = np.asarray(faces)
    if x.ndim not in (3, 4):
        raise ValueError(f"expected an image (H, W, C) or a batch (N, H, W, C), got shape {x.shape}")
    axes = (-3, -2, -1)
    per_image = int(np.prod(x.shape[-3:]))
    xf = x.astype(np.float64)
    mean = xf.mean(axis=axes, keepdims=True)
    std = xf.std(axis=axes, keepdims=True)
    std_adj = np.maximum(std, 1.0 / np.sqrt(max(per_image, 1)))
    return ((xf - mean) / std_adj).astype(np.float32)


# What the pinned seed weights compute for the first four :func:`synthetic_faces` (the first 16 of the
# 128 components, TensorFlow 2.21, rounded to 1e-6; ONNX Runtime agrees to 3e-7).  Every load of the
# network — TensorFlow from the cached converted weights, or ONNX Runtime from the cached ONNX file —
# must reproduce them within REFERENCE_TOLERANCE: the cache folder is writable by the account that
# runs the console, and a network swapped there would decide who is let in.  A mismatch deletes the
# cached file and converts again from the pinned ``.h5``.
REFERENCE_EMBEDDINGS: dict[str, tuple[tuple[float, ...], ...]] = {
    "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af": (
        (-0.008434, -0.138217, 0.093143, -0.142098, -0.099033, 0.066241, 0.00446, -0.005173,
         -0.001206, 0.016278, 0.062321, 0.077345, 0.176371, 0.060253, -0.017899, 0.020909),
        (-0.024799, -0.173718, 0.026965, -0.161723, 0.057439, 0.050759, -0.05816, 0.047807,
         0.022717, 0.063484, 0.022859, 0.011526, 0.120401, -0.090674, 0.01246, 0.006106),
        (-0.064112, -0.158213, -0.034382, -0.128232, -0.087192, 0.231147, -0.057142, -0.010967,
         -0.016911, 0.042691, -0.055405, 0.067225, 0.231565, -0.106172, 0.02062, -0.057538),
        (-0.013506, -0.177818, 0.04055, -0.152176, -0.010632, 0.117376, -0.061619, 0.063554,
         0.051847, 0.07388, 0.019036, 0.058295, 0.274026, -0.071945, 0.002417, -0.063289),
    ),
}
REFERENCE_TOLERANCE = 1e-4


def synthetic_faces(n: int = 8, seed: int = 13) -> np.ndarray:
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



def reference_mismatch(source_sha256: str, embed: Callable[[np.ndarray], np.ndarray]) -> str | None:
    """Why a loaded network does not compute what the pinned weights do, or ``None`` if it does.

    ``embed`` maps uint8 faces to L2-normalised embeddings.  Weights without a pinned reference (a
    site's own ``.h5``) are not checked (``None``).
    """
    expected = REFERENCE_EMBEDDINGS.get(source_sha256)
    if expected is None:
        return None
    want = np.asarray(expected, np.float64)
    got = np.asarray(embed(synthetic_faces(len(want))), np.float64)[:, :want.shape[1]]
    diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    if not diff <= REFERENCE_TOLERANCE:
        return (f"it does not compute what the pinned FaceNet weights compute (reference faces differ by "
                f"{diff:.2g}, at most {REFERENCE_TOLERANCE:g} allowed): damaged or replaced")
    return None


def face_batch(faces: np.ndarray) -> np.ndarray:
    """``faces`` as a ``(N, 160, 160, 3)`` batch (a single face gets a batch axis).

    Raises
    ------
    ValueError
        If ``faces`` does not have that shape (or ``(160, 160, 3)``) or is not numeric.
    """
    batch = np.asarray(faces)
    if batch.ndim == 3:
        batch = batch[np.newaxis]
    if batch.ndim != 4 or batch.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"expected faces of shape (N, 160, 160, 3) or (160, 160, 3), got {np.shape(faces)}")
    if not (np.issubdtype(batch.dtype, np.integer) or np.issubdtype(batch.dtype, np.floating)):
        raise ValueError(f"expected uint8 RGB faces, got dtype {batch.dtype}")
    return batch


def embed_batches(faces: np.ndarray, forward: Callable[[np.ndarray], Any]) -> np.ndarray:
    """L2-normalised embeddings of uint8 faces, the one recipe of both backends.

    Prewhitens the faces (:func:`prewhiten`), runs ``forward`` (the network: prewhitened float32 batch
    in, raw 128-d rows out) on batches of at most :data:`MAX_BATCH`, and normalises the rows
    (:func:`l2_normalise`).  No face: ``(0, 128)`` without calling ``forward``.

    Raises
    ------
    ValueError
        As :func:`face_batch`.
    """
    batch = face_batch(faces)
    if batch.shape[0] == 0:
        return np.zeros((0, EMBEDDING_SIZE), np.float32)
    x = prewhiten(batch)
    parts = [np.asarray(forward(x[i:i + MAX_BATCH]), np.float32) for i in range(0, len(x), MAX_BATCH)]
    return l2_normalise(np.concatenate(parts, axis=0))


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (computed in float64, returned as float32)."""
    norms = np.linalg.norm(rows.astype(np.float64), axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def import_tf() -> tuple[Any, Any]:
    """Import TensorFlow and Keras quietly, mapping an import failure to :class:`ModelError`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except Exception as exc:  # ImportError, or a broken native library
        raise ModelError(
            f"TensorFlow could not be loaded ({exc}). Reinstall FaceGate's dependencies "
            "(tensorflow-cpu and keras) and start again."
        ) from exc
    return tf, keras


@cache
def _scale_sum_class() -> type:
    """Return the Keras layer that replaces the file's residual ``Lambda`` (built lazily)."""
    _, keras = import_tf()

    class ScaleSum(keras.layers.Layer):  # type: ignore[name-defined]
        """``inputs[0] + inputs[1] * scale``: the shortcut plus the scaled residual branch."""

        def __init__(self, scale: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.scale = float(scale)

        def call(self, inputs: Any) -> Any:
            shortcut, residual = inputs
            return shortcut + residual * self.scale

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape[0]

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "scale": self.scale}

    return ScaleSum


# --------------------------------------------------------------------------------------------
# Rebuilding the Keras 2 functional config with Keras 3 layers


def _expect(cfg: dict[str, Any], key: str, allowed: Iterable[Any], layer: str) -> None:
    value = cfg.get(key)
    if value not in list(allowed):
        raise ModelError(
            f"Layer {layer!r} of the FaceNet file has {key}={value!r}, which this converter does not "
            "support. Use the facenet_keras.h5 that FaceGate downloads."
        )


def _make_layer(keras: Any, class_name: str, cfg: dict[str, Any]) -> Any:
    """Build one Keras 3 layer from a Keras 2.1 layer config, checking every option we ignore."""
    name = cfg["name"]
    L = keras.layers
    if class_name in ("Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                      "GlobalMaxPooling2D"):
        _expect(cfg, "data_format", ["channels_last", None], name)
    if class_name == "Conv2D":
        _expect(cfg, "activation", ["linear", "relu"], name)
        _expect(cfg, "dilation_rate", [[1, 1], None], name)
        return L.Conv2D(
            filters=cfg["filters"], kernel_size=tuple(cfg["kernel_size"]), strides=tuple(cfg["strides"]),
            padding=cfg["padding"], activation=None if cfg["activation"] == "linear" else cfg["activation"],
            use_bias=cfg["use_bias"], name=name,
        )
    if class_name == "BatchNormalization":
        return L.BatchNormalization(
            axis=cfg["axis"], momentum=cfg["momentum"], epsilon=cfg["epsilon"],
            center=cfg["center"], scale=cfg["scale"], name=name,
        )
    if class_name == "Activation":
        _expect(cfg, "activation", ["relu", "linear", "tanh", "sigmoid", "softmax"], name)
        return L.Activation(cfg["activation"], name=name)
    if class_name in ("MaxPooling2D", "AveragePooling2D"):
        cls = L.MaxPooling2D if class_name == "MaxPooling2D" else L.AveragePooling2D
        return cls(pool_size=tuple(cfg["pool_size"]), strides=tuple(cfg["strides"]),
                   padding=cfg["padding"], name=name)
    if class_name == "GlobalAveragePooling2D":
        return L.GlobalAveragePooling2D(name=name)
    if class_name == "Concatenate":
        return L.Concatenate(axis=cfg["axis"], name=name)
    if class_name == "Dropout":
        _expect(cfg, "noise_shape", [None], name)
        return L.Dropout(rate=cfg["rate"], name=name)
    if class_name == "Dense":
        _expect(cfg, "activation", ["linear"], name)
        return L.Dense(units=cfg["units"], use_bias=cfg["use_bias"], name=name)
    if class_name == "Lambda":
        args = cfg.get("arguments") or {}
        if set(args) != {"scale"}:
            raise ModelError(
                f"Layer {name!r} of the FaceNet file is a Lambda with arguments {sorted(args)}; only the "
                "residual scale-sum Lambda (argument 'scale') can be rebuilt. Use the facenet_keras.h5 "
                "that FaceGate downloads."
            )
        return _scale_sum_class()(scale=float(args["scale"]), name=name)
    raise ModelError(
        f"Layer {name!r} of the FaceNet file is a {class_name}, which this converter does not support. "
        "Use the facenet_keras.h5 that FaceGate downloads."
    )


def _build_model(config_json: str) -> Any:
    """Rebuild the functional model described by a Keras 2 ``model_config`` JSON string."""
    try:
        return _build_model_unchecked(config_json)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelError(
            f"The FaceNet file's model description could not be rebuilt ({exc!r}). Use the "
            "facenet_keras.h5 that FaceGate downloads."
        ) from exc


def _build_model_unchecked(config_json: str) -> Any:
    _, keras = import_tf()
    try:
        config = json.loads(config_json)
        model_cfg = config["config"]
        layer_cfgs = model_cfg["layers"]
        (input_name, _, _), = model_cfg["input_layers"]
        (output_name, _, _), = model_cfg["output_layers"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"The FaceNet file's model description is not a single-input, single-output Keras model "
            f"({exc!r}). Use the facenet_keras.h5 that FaceGate downloads."
        ) from exc

    tensors: dict[str, Any] = {}
    pending = list(layer_cfgs)
    while pending:
        deferred = []
        for spec in pending:
            name, class_name, cfg = spec["name"], spec["class_name"], spec["config"]
            if class_name == "InputLayer":
                shape = tuple(cfg["batch_input_shape"][1:])
                tensors[name] = keras.Input(shape=shape, dtype=cfg.get("dtype", "float32"), name=name)
                continue
            nodes = spec["inbound_nodes"]
            if len(nodes) != 1:
                raise ModelError(
                    f"Layer {name!r} of the FaceNet file is shared between {len(nodes)} places; this "
                    "converter supports plain graphs only. Use the facenet_keras.h5 that FaceGate downloads."
                )
            inbound = nodes[0]
            if any(node_index != 0 or tensor_index != 0 or kwargs
                   for _, node_index, tensor_index, kwargs in inbound):
                raise ModelError(
                    f"Layer {name!r} of the FaceNet file has inbound connections this converter does not "
                    "support. Use the facenet_keras.h5 that FaceGate downloads."
                )
            sources = [src for src, *_ in inbound]
            if not all(src in tensors for src in sources):
                deferred.append(spec)
                continue
            layer = _make_layer(keras, class_name, cfg)
            args = [tensors[src] for src in sources]
            tensors[name] = layer(args if len(args) > 1 else args[0])
        if len(deferred) == len(pending):
            missing = sorted({s["name"] for s in deferred})[:5]
            raise ModelError(
                f"The FaceNet file's layer graph cannot be resolved (stuck at {missing}). The file is "
                "damaged; use the facenet_keras.h5 that FaceGate downloads."
            )
        pending = deferred
    if input_name not in tensors or output_name not in tensors:
        raise ModelError(
            "The FaceNet file's model description names an input or output layer it does not define. "
            "Use the facenet_keras.h5 that FaceGate downloads."
        )
    name = model_cfg.get("name") or "facenet"
    return keras.Model(tensors[input_name], tensors[output_name], name=name)


def _weight_key(layer: str, weight: str) -> str:
    """Normalise ``'Conv/kernel:0'`` (Keras 2) and ``kernel`` (Keras 3) to ``'Conv/kernel'``."""
    short = weight.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{layer}/{short}"


def _assign_weights(model: Any, weights: dict[str, np.ndarray], source: Path) -> int:
    """Set every weight of ``model`` from ``weights`` (``'layer/short'`` keys); return layers set.

    Every array must be used exactly once and every model variable set, shapes matching.
    """
    used: set[str] = set()
    layers_set = 0
    for layer in model.layers:
        variables = list(layer.weights)
        if not variables:
            continue
        values = []
        for var in variables:
            key = _weight_key(layer.name, var.name)
            if key not in weights:
                raise ModelError(
                    f"The FaceNet file {source} has no weight {key!r}. It is not the expected model; "
                    "use the facenet_keras.h5 that FaceGate downloads."
                )
            value = weights[key]
            if tuple(value.shape) != tuple(var.shape):
                raise ModelError(
                    f"The FaceNet file {source} stores {key!r} with shape {tuple(value.shape)}, the model "
                    f"needs {tuple(var.shape)}. Use the facenet_keras.h5 that FaceGate downloads."
                )
            values.append(value)
            used.add(key)
        layer.set_weights(values)
        layers_set += 1
    unused = sorted(set(weights) - used)
    if unused:
        raise ModelError(
            f"The FaceNet file {source} holds {len(unused)} weights the rebuilt network has no place for "
            f"(e.g. {unused[:3]}). It is not the expected model; use the facenet_keras.h5 that FaceGate "
            "downloads."
        )
    return layers_set


def _read_keras2_h5(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Read ``model_config`` and all weights (``'layer/short'`` keys) from a Keras 2 ``.h5``."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            config = fh.attrs["model_config"]
            config_json = config.decode("utf-8") if isinstance(config, bytes) else str(config)
            group = fh.get("model_weights", fh)
            weights: dict[str, np.ndarray] = {}
            for raw_layer in group.attrs["layer_names"]:
                layer = raw_layer.decode("utf-8") if isinstance(raw_layer, bytes) else str(raw_layer)
                layer_group = group[layer]
                for raw_weight in layer_group.attrs["weight_names"]:
                    weight = raw_weight.decode("utf-8") if isinstance(raw_weight, bytes) else str(raw_weight)
                    weights[_weight_key(layer, weight)] = np.asarray(layer_group[weight][()])
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"The FaceNet weights file {path} could not be read as a Keras model ({exc}). It is damaged "
            "or not a facenet_keras.h5; delete it so FaceGate downloads it again, or choose another file."
        ) from exc
    return config_json, weights


def _fold_batchnorm(
    config_json: str, weights: dict[str, np.ndarray], source: Path
) -> tuple[str, dict[str, np.ndarray]]:
    """Fold every inference-time BatchNormalization into the Conv2D/Dense before it.

    ``conv -> BN -> relu`` becomes one ``Conv2D(use_bias=True, activation="relu")`` with
    ``kernel * g`` and ``(bias - mean) * g + beta``, ``g = gamma / sqrt(var + eps)``.  The maths is
    exact; the graph loses 223 of its 426 layers, which halves build and trace time and saves a
    couple of passes over every activation map per call.  Every BatchNormalization weight is
    consumed here (shapes checked); the convolutions' weights are checked when assigned.
    """
    config = json.loads(config_json)
    model_cfg = config["config"]
    layer_cfgs: list[dict[str, Any]] = model_cfg["layers"]
    by_name = {spec["name"]: spec for spec in layer_cfgs}
    consumers: dict[str, list[str]] = {spec["name"]: [] for spec in layer_cfgs}
    for spec in layer_cfgs:
        for node in spec["inbound_nodes"]:
            for src, *_ in node:
                consumers.setdefault(src, []).append(spec["name"])

    folded = dict(weights)
    alias: dict[str, str] = {}
    for spec in layer_cfgs:
        if spec["class_name"] != "BatchNormalization" or len(spec["inbound_nodes"]) != 1:
            continue
        inbound = spec["inbound_nodes"][0]
        if len(inbound) != 1:
            continue
        name, cfg = spec["name"], spec["config"]
        src = inbound[0][0]
        src_spec = by_name.get(src)
        if (src_spec is None or src_spec["class_name"] not in ("Conv2D", "Dense")
                or consumers[src] != [name] or src_spec["config"].get("activation") != "linear"
                or cfg.get("axis") not in (-1, 3 if src_spec["class_name"] == "Conv2D" else 1)):
            continue
        try:
            kernel = folded[f"{src}/kernel"].astype(np.float64)
            units = kernel.shape[-1]
            bias = folded.get(f"{src}/bias", np.zeros(units)).astype(np.float64)
            mean = folded.pop(f"{name}/moving_mean").astype(np.float64)
            var = folded.pop(f"{name}/moving_variance").astype(np.float64)
            ones, zeros = np.ones(units), np.zeros(units)
            gamma = folded.pop(f"{name}/gamma").astype(np.float64) if cfg.get("scale", True) else ones
            beta = folded.pop(f"{name}/beta").astype(np.float64) if cfg.get("center", True) else zeros
        except KeyError as exc:
            raise ModelError(
                f"The FaceNet file {source} lacks the weight {exc.args[0]!r}. It is damaged or not the "
                "expected model; use the facenet_keras.h5 that FaceGate downloads."
            ) from exc
        if any(v.shape != (units,) for v in (bias, mean, var, gamma, beta)):
            raise ModelError(
                f"The FaceNet file {source} stores weights of {name!r} whose shapes do not match {src!r}. "
                "It is damaged or not the expected model; use the facenet_keras.h5 that FaceGate downloads."
            )
        gain = gamma / np.sqrt(var + float(cfg["epsilon"]))
        if not np.all(np.isfinite(gain)):
            raise ModelError(
                f"The FaceNet file {source} holds invalid statistics in {name!r}. It is damaged; delete it "
                "so FaceGate downloads it again."
            )
        folded[f"{src}/kernel"] = (kernel * gain).astype(np.float32)
        folded[f"{src}/bias"] = ((bias - mean) * gain + beta).astype(np.float32)
        src_spec["config"]["use_bias"] = True
        alias[name] = src
        after = consumers[name]
        if (src_spec["class_name"] == "Conv2D" and len(after) == 1
                and by_name[after[0]]["class_name"] == "Activation"):
            src_spec["config"]["activation"] = by_name[after[0]]["config"]["activation"]
            alias[after[0]] = src

    def resolve(layer: str) -> str:
        while layer in alias:
            layer = alias[layer]
        return layer

    kept = []
    for spec in layer_cfgs:
        if spec["name"] in alias:
            continue
        spec["inbound_nodes"] = [
            [[resolve(src), *rest] for src, *rest in node] for node in spec["inbound_nodes"]
        ]
        kept.append(spec)
    model_cfg["layers"] = kept
    model_cfg["output_layers"] = [[resolve(out), *rest] for out, *rest in model_cfg["output_layers"]]
    return json.dumps(config), folded


def _convert(path: Path) -> tuple[str, dict[str, np.ndarray], int]:
    """Read a Keras 2 FaceNet ``.h5`` and fold it; return config, weights and weighted-layer count."""
    config_json, weights = _read_keras2_h5(path)
    weighted_layers = len({key.rsplit("/", 1)[0] for key in weights})
    try:
        folded_json, folded = _fold_batchnorm(config_json, weights, path)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelError(
            f"The FaceNet file {path} has a model description this converter cannot read ({exc!r}). Use "
            "the facenet_keras.h5 that FaceGate downloads."
        ) from exc
    return folded_json, folded, weighted_layers


# --------------------------------------------------------------------------------------------
# Cache of converted weights


def _cache_path(sha256: str) -> Path:
    return cache_dir() / CACHE_SUBDIR / f"facenet-{sha256[:16]}-v{_CACHE_FORMAT}.npz"


def _write_cache(
    path: Path, sha256: str, config_json: str, weights: dict[str, np.ndarray], weighted_layers: int
) -> None:
    """Write the converted model atomically (temp file, then rename); failures only log."""
    meta = {
        "format": _CACHE_FORMAT, "source_sha256": sha256, "writer": __name__,
        "weighted_layers": weighted_layers,
    }
    arrays: dict[str, np.ndarray] = {f"w:{key}": value for key, value in weights.items()}
    arrays["meta"] = np.array(json.dumps(meta))
    arrays["model_config"] = np.array(config_json)
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".facenet-", suffix=".npz.tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        log.info("cached converted FaceNet weights in %s", path)
    except OSError as exc:
        log.warning("could not cache the converted FaceNet weights in %s: %s", path, exc)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _read_cache(path: Path, sha256: str) -> tuple[str, dict[str, np.ndarray], int] | None:
    """Return ``(config_json, weights, weighted_layers)`` from a cache file this module wrote.

    ``None`` if there is none, or it is unreadable or was written for another source file or format.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"][()]))
            if (meta.get("format") != _CACHE_FORMAT or meta.get("source_sha256") != sha256
                    or meta.get("writer") not in _CACHE_WRITERS):
                log.warning("ignoring %s: written for another FaceNet file or format", path)
                return None
            config_json = str(data["model_config"][()])
            weights = {key[2:]: data[key] for key in data.files if key.startswith("w:")}
            weighted_layers = int(meta["weighted_layers"])
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        # A damaged cache is rebuilt from the .h5, never fatal.
        log.warning("ignoring unreadable FaceNet cache %s: %s", path, exc)
        return None
    return config_json, weights, weighted_layers


# --------------------------------------------------------------------------------------------


class FaceNetEmbedder:
    """128-d face embeddings from the Keras FaceNet (Inception-ResNet-v1, MS-Celeb-1M).

    Parameters
    ----------
    h5_path : Path or None
        The Keras 2 ``facenet_keras.h5``.  ``None`` uses the verified seed file from
        :func:`core.assets.ensure_seed_assets` (downloaded on first :meth:`load`).

    Attributes
    ----------
    name : str
        Model family, stored beside every embedding.
    version : str
        First 12 hex digits of the weights file's SHA-256; embeddings of different versions must
        not be compared.
    embedding_size : int
        Length of an embedding (128).
    input_size : int
        Side of the square RGB face crop the model takes (160).
    model_ : keras.Model or None
        The rebuilt network once :meth:`load` has run, batch normalisation folded into the
        convolutions (its outputs are not L2-normalised).
    weighted_layers_ : int
        How many layers of the source file carried weights, all of which were set (245 for the
        seed file).
    loaded_from_cache_ : bool
        Whether :meth:`load` read the converted weights from the cache rather than the ``.h5``.

    Notes
    -----
    Create and use the embedder in the same thread (the worker thread in the GUI).
    """

    name: str = "facenet-keras-taniai-msceleb1m"
    backend: str = "tf"
    embedding_size: int = EMBEDDING_SIZE
    input_size: int = INPUT_SIZE

    def __init__(self, h5_path: Path | None = None) -> None:
        self.h5_path = h5_path
        self.model_: Any = None
        self.loaded_from_cache_ = False
        self.weighted_layers_ = 0
        self._sha256: str | None = None
        self._resolved: Path | None = None
        self._infer: Callable[[np.ndarray], np.ndarray] | None = None
        self._lock = threading.Lock()

    # -- identity ----------------------------------------------------------------------------

    def _source(self) -> Path:
        if self._resolved is None:
            if self.h5_path is not None:
                self._resolved = Path(self.h5_path)
            else:
                from core.assets import ensure_seed_assets

                try:
                    self._resolved = ensure_seed_assets().facenet_h5
                except AssetError as exc:
                    raise ModelError(f"The FaceNet weights are not available: {exc}") from exc
        return self._resolved

    def source_sha256(self) -> str:
        """SHA-256 of the weights file (hashed once; no model is built).

        Raises
        ------
        ModelError
            If the weights file is missing or unreadable.
        """
        if self._sha256 is None:
            path = self._source()
            if not path.is_file():
                raise ModelError(
                    f"The FaceNet weights file {path} does not exist. Choose an existing facenet_keras.h5, "
                    "or leave the path empty so FaceGate downloads it."
                )
            try:
                self._sha256 = sha256_of(path)
            except OSError as exc:
                raise ModelError(
                    f"The FaceNet weights file {path} could not be read ({exc}). Check that the file is "
                    "readable, or leave the path empty so FaceGate downloads it."
                ) from exc
        return self._sha256

    @property
    def version(self) -> str:
        """Short id of the weights: the first 12 hex digits of the ``.h5`` file's SHA-256.

        Hashes the file on first access (no model is built).

        Raises
        ------
        ModelError
            If the weights file is missing or unreadable.
        """
        return self.source_sha256()[:12]

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> None:
        """Build the network (from the cache when possible) and trace the inference function.

        Idempotent and thread-safe; the first call takes a few seconds, later calls return at once.

        Raises
        ------
        ModelError
            If the weights file is missing, damaged or not the expected FaceNet, or TensorFlow
            cannot be loaded.
        """
        with self._lock:
            if self._infer is not None:
                return
            started = time.perf_counter()
            tf, _ = import_tf()
            sha = self.source_sha256()
            source = self._source()
            try:
                cache_file: Path | None = _cache_path(sha)
            except OSError as exc:  # no usable cache directory: convert every time
                log.warning("no cache for the converted FaceNet weights: %s", exc)
                cache_file = None
            cached = _read_cache(cache_file, sha) if cache_file is not None else None
            if cached is not None:
                config_json, weights, weighted_layers = cached
                origin = cache_file or source
            else:
                log.info("converting FaceNet weights from %s", source)
                config_json, weights, weighted_layers = _convert(source)
                origin = source
            model = _build_model(config_json)
            out_dim = model.outputs[0].shape[-1]
            in_shape = tuple(model.inputs[0].shape[1:])
            if out_dim != EMBEDDING_SIZE or in_shape != (INPUT_SIZE, INPUT_SIZE, 3):
                raise ModelError(
                    f"The FaceNet file {source} maps {in_shape} images to {out_dim}-d vectors, not "
                    f"({INPUT_SIZE}, {INPUT_SIZE}, 3) to {EMBEDDING_SIZE}-d. Use the facenet_keras.h5 "
                    "that FaceGate downloads."
                )
            _assign_weights(model, weights, origin)
            if cached is None and cache_file is not None:
                _write_cache(cache_file, sha, config_json, weights, weighted_layers)

            # One graph for every batch size, called directly: ``model.predict`` builds a dataset
            # and a step function per call, tens of milliseconds before any maths is done.
            @tf.function(input_signature=[tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)])
            def forward(x: Any) -> Any:
                return model(x, training=False)

            def infer(batch: np.ndarray) -> np.ndarray:
                return np.asarray(forward(tf.constant(batch)).numpy(), dtype=np.float32)

            infer(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32))  # trace now, not on a real face
            why = reference_mismatch(sha, lambda faces: embed_batches(faces, infer))
            if why is not None and cached is not None and cache_file is not None:
                log.warning("rebuilding the converted FaceNet weights %s: %s", cache_file.name, why)
                cache_file.unlink(missing_ok=True)
                config_json, weights, weighted_layers = _convert(source)
                _assign_weights(model, weights, source)
                _write_cache(cache_file, sha, config_json, weights, weighted_layers)
                cached = None
                why = reference_mismatch(sha, lambda faces: embed_batches(faces, infer))
            if why is not None:
                raise ModelError(f"The FaceNet network built from {source} is not the expected one: {why}. "
                                 "Delete FaceGate's cache folder and start again.")
            self.model_ = model
            self.weighted_layers_ = weighted_layers
            self.loaded_from_cache_ = cached is not None
            self._infer = infer
            log.info(
                "FaceNet %s ready in %.1f s (%d weighted layers of %s, from %s)", self.version,
                time.perf_counter() - started, weighted_layers, source.name,
                "cache" if cached is not None else "h5",
            )

    # -- inference ---------------------------------------------------------------------------

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """Embed aligned face crops.

        Parameters
        ----------
        faces : np.ndarray
            ``(N, 160, 160, 3)`` or a single ``(160, 160, 3)`` uint8 RGB face crop, already
            aligned.  ``N`` may be 0.

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
        batch = face_batch(faces)
        if batch.shape[0]:
            self.load()
        return embed_batches(batch, self._forward)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        infer = self._infer
        assert infer is not None  # load() ran (embed_batches calls this only for a face)
        return infer(x)
