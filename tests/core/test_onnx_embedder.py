"""The ONNX Runtime FaceNet against the TensorFlow reference: real weights, real aligned val faces."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConversionError
from core.vision import onnx_embedder
from core.vision.imageio import read_image
from core.vision.onnx_embedder import MAX_ABS_DIFF, OnnxEmbedder, sidecar_path
from core.vision.onnx_files import LOCK_NAME

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def val_faces(seed, tf_pipeline, val_set) -> np.ndarray:
    """The 25 val faces, detected and aligned by the pipeline exactly as ``embed_folder`` does."""
    crops = []
    for path in val_set.paths:
        image = read_image(path)
        detections = tf_pipeline.detector.detect(image)
        assert len(detections) == 1, path  # embed_folder keeps photos of one face only
        crops.append(tf_pipeline.align(image, detections)[0])
    faces = np.stack(crops)
    assert faces.shape == (25, 160, 160, 3) and faces.dtype == np.uint8
    return faces


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory, seed, val_faces) -> Path:
    """A cache folder holding a fresh, verified conversion of the seed weights."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    emb = OnnxEmbedder(seed.facenet_h5, folder=folder, reference_faces=val_faces[::5])
    emb.load()
    assert not emb.loaded_from_cache_
    return folder


def _only_onnx(folder: Path) -> Path:
    (path,) = folder.glob("*.onnx")
    return path


def _copy_cache(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return _only_onnx(dest)


def test_onnx_embeddings_match_tensorflow_on_the_val_faces(seed, tf_pipeline, val_faces, onnx_cache):
    emb = OnnxEmbedder(seed.facenet_h5, folder=onnx_cache)
    got = emb.embed(val_faces)
    assert emb.loaded_from_cache_
    want = tf_pipeline.embedder.embed(val_faces)
    assert got.shape == (25, 128) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert np.abs(got - want).max() <= MAX_ABS_DIFF
    # Batches of any size, one face, and none, as the TensorFlow embedder takes them.
    assert np.abs(emb.embed(val_faces[3]) - want[3]).max() <= MAX_ABS_DIFF
    assert emb.embed(val_faces[:0]).shape == (0, 128)
    # Same identity as the TensorFlow embedder: galleries and trained models stay valid.
    assert (emb.name, emb.version) == (tf_pipeline.embedder.name, tf_pipeline.embedder.version)
    assert emb.backend == "onnx"


def test_the_sidecar_records_the_check_and_the_files_hash(onnx_cache, seed):
    from core.assets import sha256_of

    path = _only_onnx(onnx_cache)
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["source_sha256"] == sha256_of(seed.facenet_h5)
    assert meta["onnx_sha256"] == sha256_of(path)
    assert 0 <= meta["max_abs_diff"] <= MAX_ABS_DIFF
    assert meta["reference_faces"]["real"] >= 3 and meta["opset"] == "17"
    assert meta["source_sha256"][:16] in path.name and f"tf2onnx{meta['tf2onnx']}" in path.name
    assert [p.name for p in onnx_cache.glob(".*")] == [LOCK_NAME]  # no temp files left behind


def test_a_corrupt_onnx_file_is_detected_deleted_and_rebuilt(seed, tf_pipeline, val_faces, onnx_cache, tmp_path,
                                                             caplog):
    path = _copy_cache(onnx_cache, tmp_path / "cache")
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64])
    path.write_bytes(bytes(data))
    emb = OnnxEmbedder(seed.facenet_h5, folder=path.parent, reference_faces=val_faces[::5])
    with caplog.at_level(logging.WARNING, logger="core.vision.onnx_embedder"):
        got = emb.embed(val_faces)
    assert "SHA-256 differs" in caplog.text
    assert not emb.loaded_from_cache_ and emb.onnx_path_ == path
    assert path.read_bytes() != bytes(data)
    assert np.abs(got - tf_pipeline.embedder.embed(val_faces)).max() <= MAX_ABS_DIFF


def test_a_sidecar_naming_other_weights_is_detected_and_rebuilt(seed, val_faces, onnx_cache, tmp_path, caplog):
    path = _copy_cache(onnx_cache, tmp_path / "cache")
    side = sidecar_path(path)
    meta = json.loads(side.read_text())
    meta["source_sha256"] = "0" * 64
    side.write_text(json.dumps(meta))
    emb = OnnxEmbedder(seed.facenet_h5, folder=path.parent, reference_faces=val_faces[::5])
    with caplog.at_level(logging.WARNING, logger="core.vision.onnx_embedder"):
        emb.load()
    assert "converted from other weights" in caplog.text
    assert not emb.loaded_from_cache_
    assert json.loads(side.read_text())["source_sha256"] == json.loads(
        sidecar_path(_only_onnx(onnx_cache)).read_text())["source_sha256"]


def test_a_missing_sidecar_is_never_trusted(seed, val_faces, onnx_cache, tmp_path, monkeypatch):
    path = _copy_cache(onnx_cache, tmp_path / "cache")
    sidecar_path(path).unlink()
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise ConversionError("refused")

    monkeypatch.setattr(onnx_embedder, "convert", refuse)
    with pytest.raises(ConversionError):
        OnnxEmbedder(seed.facenet_h5, folder=path.parent).load()
    assert calls and not path.exists()


def test_a_conversion_that_differs_from_tensorflow_is_refused_and_nothing_is_cached(seed, val_faces, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setattr(onnx_embedder, "compare", lambda *a, **k: 3e-4)
    emb = OnnxEmbedder(seed.facenet_h5, folder=tmp_path, reference_faces=val_faces[::5])
    with pytest.raises(ConversionError, match="differs from TensorFlow by 0.0003"):
        emb.load()
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]


def test_conversion_needs_three_real_faces(seed, val_faces, tmp_path):
    emb = OnnxEmbedder(seed.facenet_h5, folder=tmp_path, reference_faces=val_faces[:2])
    with pytest.raises(ConversionError, match="at least 3 real aligned faces"):
        emb.load()


def test_a_valid_cache_loads_without_importing_tensorflow(seed, val_faces, onnx_cache, tmp_path):
    np.save(tmp_path / "faces.npy", val_faces[:4])
    code = (
        "import sys, json, numpy as np\n"
        "from pathlib import Path\n"
        "from core.vision.onnx_embedder import OnnxEmbedder\n"
        f"emb = OnnxEmbedder(Path({str(seed.facenet_h5)!r}), folder=Path({str(onnx_cache)!r}))\n"
        f"out = emb.embed(np.load({str(tmp_path / 'faces.npy')!r}))\n"
        "print(json.dumps({'cache': emb.loaded_from_cache_, 'shape': list(out.shape),\n"
        "                  'loaded': sorted(m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx')\n"
        "                                   if m in sys.modules)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"cache": True, "shape": [4, 128], "loaded": []}


def test_a_network_replaced_with_a_matching_sidecar_is_caught_by_the_pinned_reference(seed, val_faces, onnx_cache,
                                                                                       tmp_path, caplog,
                                                                                       monkeypatch):
    """An account that can write the cache folder swaps the network and writes a sidecar that fits it."""
    import onnx
    from onnx import numpy_helper

    from core.vision import onnx_files

    path = _copy_cache(onnx_cache, tmp_path / "cache")
    model = onnx.load_from_string(path.read_bytes())
    weights = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    changed = numpy_helper.to_array(weights) * np.float32(1.05)  # a "fine-tuned" layer
    weights.CopyFrom(numpy_helper.from_array(changed, weights.name))
    meta = json.loads(sidecar_path(path).read_text())
    onnx_files.write(path, model.SerializeToString(), {k: meta[k] for k in ("source_sha256", "max_abs_diff")})
    assert isinstance(onnx_files.check(path, meta["source_sha256"], MAX_ABS_DIFF), tuple)  # the sidecar fits
    forged = path.read_bytes()

    emb = OnnxEmbedder(seed.facenet_h5, folder=path.parent, reference_faces=val_faces[::5])
    with caplog.at_level(logging.WARNING, logger="core.vision.onnx_embedder"):
        emb.load()
    assert "does not compute what the pinned FaceNet weights compute" in caplog.text
    assert not emb.loaded_from_cache_ and path.read_bytes() != forged

    # A conversion that itself yields a network other than the pinned one: refused (the caller falls back
    # to TensorFlow).
    def bad_convert(*args, **kwargs):
        onnx_files.write(path, forged, {k: meta[k] for k in ("source_sha256", "max_abs_diff")})
        return path

    bad_convert()
    monkeypatch.setattr(onnx_embedder, "convert", bad_convert)
    with pytest.raises(ConversionError, match="damaged or replaced"):
        OnnxEmbedder(seed.facenet_h5, folder=path.parent).load()


def test_tensorflow_rebuilds_converted_weights_that_were_replaced(seed, tmp_path, monkeypatch, caplog):
    from core.vision import facenet

    ref = facenet.FaceNetEmbedder(seed.facenet_h5)
    ref.load()
    cache_file = tmp_path / "facenet.npz"
    monkeypatch.setattr(facenet, "_cache_path", lambda sha: cache_file)
    config_json, weights, layers = facenet._convert(seed.facenet_h5)
    name = max(weights, key=lambda k: weights[k].size)
    facenet._write_cache(cache_file, ref.source_sha256(), config_json,
                         {**weights, name: weights[name] * np.float32(1.05)}, layers)
    emb = facenet.FaceNetEmbedder(seed.facenet_h5)
    with caplog.at_level(logging.WARNING, logger="core.vision.facenet"):
        emb.load()
    assert "rebuilding the converted FaceNet weights" in caplog.text
    faces = facenet.synthetic_faces(3)
    assert np.abs(emb.embed(faces) - ref.embed(faces)).max() <= 1e-6
