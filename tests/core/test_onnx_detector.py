"""The ONNX Runtime MTCNN detector against the TensorFlow one: real weights, real photos.

The three networks are converted once per module into a temporary cache folder (about 6 s).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConversionError, ImageError
from core.vision import onnx_detector, onnx_files
from core.vision.detector import MtcnnDetector
from core.vision.imageio import read_image
from core.vision.onnx_detector import MAX_ABS_DIFF, NETWORKS, OnnxMtcnnDetector
from tests.conftest import compose, face_crop

ROOT = Path(__file__).resolve().parents[2]
CONFIDENCE_TOLERANCE = 1e-4  # measured: at most 1.5e-5 on all 118 photos at min_face_size 20, 40 and 80


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    """A cache folder holding fresh, verified conversions of the three networks."""
    folder = tmp_path_factory.mktemp("onnx-mtcnn")
    det = OnnxMtcnnDetector(folder=folder)
    det.load()
    assert not det.loaded_from_cache_
    assert sorted(p.name.split("-")[1] for p in folder.glob("*.onnx")) == sorted(NETWORKS)
    return folder


@pytest.fixture(scope="module")
def photos(seed) -> list[tuple[str, np.ndarray]]:
    """All val photos and every 4th train photo of the 5-celebrity set."""
    val = sorted(p for p in (seed.dataset / "val").rglob("*") if p.is_file())
    train = sorted(p for p in (seed.dataset / "train").rglob("*") if p.is_file())[::4]
    return [(str(p.relative_to(seed.dataset)), read_image(p)) for p in val + train]


def _copy_cache(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _forget_sessions(monkeypatch) -> None:
    """Sessions are shared per process and folder: give this test a fresh table."""
    monkeypatch.setattr(onnx_detector, "_SHARED", {})


@pytest.mark.parametrize("min_face", [20, 80])
def test_onnx_detector_finds_the_same_faces_as_tensorflow(photos, onnx_cache, min_face):
    tf_det = MtcnnDetector(min_face_size=min_face)
    onnx_det = OnnxMtcnnDetector(min_face_size=min_face, folder=onnx_cache)
    faces = 0
    for name, image in photos:
        want, got = tf_det.detect(image), onnx_det.detect(image)
        assert len(got) == len(want), name
        for a, b in zip(want, got):
            # Boxes and landmarks are rounded to whole pixels of the detector's image: exactly equal.
            assert b.box == a.box and b.landmarks == a.landmarks, name
            assert b.confidence == pytest.approx(a.confidence, abs=CONFIDENCE_TOLERANCE), name
        faces += len(got)
    assert onnx_det.backend == "onnx" and tf_det.backend == "tf"
    assert faces >= (len(photos) if min_face == 20 else len(photos) // 3)


def test_a_live_frame_with_three_faces(seed, onnx_cache):
    frame = compose([face_crop(seed, p) for p in ("ben_afflek", "madonna", "jerry_seinfeld")])
    want = MtcnnDetector(min_face_size=80).detect(frame)
    got = OnnxMtcnnDetector(min_face_size=80, folder=onnx_cache).detect(frame)
    assert len(got) == len(want) == 3
    assert [d.box for d in got] == [d.box for d in want]
    assert [d.landmarks for d in got] == [d.landmarks for d in want]


def test_blank_tiny_and_bad_images(onnx_cache):
    det = OnnxMtcnnDetector(folder=onnx_cache)
    assert det.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert det.detect(np.zeros((10, 10, 3), np.uint8)) == []
    with pytest.raises(ImageError):
        det.detect(np.zeros((100, 100), np.uint8))


def test_numpy_preprocessing_is_bit_identical_to_tensorflow():
    """The area resize and the bilinear crops reproduce TensorFlow's kernels to the last bit."""
    import tensorflow as tf

    from core.vision.detector import _level_size, pyramid_scales

    rng = np.random.default_rng(3)
    for h, w in [(480, 640), (120, 160), (37, 53), (24, 24), (300, 217)]:
        norm = onnx_detector.normalise(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for s in pyramid_scales(h, w, 20):
            lh, lw = _level_size(h, w, s)
            want = tf.image.resize(norm[None], (lh, lw), method=tf.image.ResizeMethod.AREA).numpy()[0]
            assert np.array_equal(onnx_detector.resize_area(norm, lh, lw), want), (h, w, lh, lw)
        boxes = rng.uniform(-0.3, 1.3, (50, 4)).astype(np.float32)
        for side in (24, 48):
            want = tf.image.crop_and_resize(norm[None], boxes, np.zeros(50, np.int32), (side, side)).numpy()
            assert np.array_equal(onnx_detector.crop_and_resize(norm, boxes, side), want), (h, w, side)


def test_the_sidecars_record_the_checks(onnx_cache):
    for net in NETWORKS:
        (path,) = onnx_cache.glob(f"mtcnn-{net}-*.onnx")
        meta = json.loads(onnx_files.sidecar_path(path).read_text())
        assert meta["source_sha256"] == onnx_detector.source_sha256(net)
        assert 0 <= meta["max_abs_diff"] <= MAX_ABS_DIFF
        assert meta["preprocessing_max_abs_diff"] == 0.0
        assert path == onnx_detector.onnx_path(net, onnx_cache)
    assert not list(onnx_cache.glob(".*.tmp"))


def test_a_corrupt_onnx_file_is_detected_deleted_and_rebuilt(photos, onnx_cache, tmp_path, monkeypatch, caplog):
    _forget_sessions(monkeypatch)
    folder = _copy_cache(onnx_cache, tmp_path / "cache")
    (path,) = folder.glob("mtcnn-onet-*.onnx")
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64])
    path.write_bytes(bytes(data))
    det = OnnxMtcnnDetector(folder=folder)
    with caplog.at_level(logging.WARNING, logger="core.vision.onnx_files"):
        det.load()
    assert "SHA-256 differs" in caplog.text and "MTCNN onet" in caplog.text
    assert not det.loaded_from_cache_ and det.onnx_paths_["onet"] == path
    assert path.read_bytes() != bytes(data)
    _, image = photos[0]
    assert det.detect(image) == OnnxMtcnnDetector(folder=onnx_cache).detect(image)


def test_a_network_swapped_with_a_fitting_sidecar_is_caught_by_the_pinned_reference(photos, onnx_cache, tmp_path,
                                                                                   monkeypatch, caplog):
    """The account that runs the console can write the cache folder: it swaps O-Net and its sidecar."""
    import onnx
    from onnx import numpy_helper

    _forget_sessions(monkeypatch)
    folder = _copy_cache(onnx_cache, tmp_path / "cache")
    (path,) = folder.glob("mtcnn-onet-*.onnx")
    model = onnx.load_from_string(path.read_bytes())
    weights = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * np.float32(1.1), weights.name))
    meta = json.loads(onnx_files.sidecar_path(path).read_text())
    onnx_files.write(path, model.SerializeToString(), {k: meta[k] for k in ("source_sha256", "max_abs_diff")})
    forged = path.read_bytes()
    det = OnnxMtcnnDetector(folder=folder)
    with caplog.at_level(logging.WARNING, logger="core.vision.onnx_detector"):
        det.load()
    assert "onet does not compute what the pinned weights compute" in caplog.text
    assert not det.loaded_from_cache_ and path.read_bytes() != forged
    _, image = photos[0]
    assert det.detect(image) == OnnxMtcnnDetector(folder=onnx_cache).detect(image)


def test_a_sidecar_naming_other_weights_is_rebuilt(onnx_cache, tmp_path, monkeypatch, caplog):
    _forget_sessions(monkeypatch)
    folder = _copy_cache(onnx_cache, tmp_path / "cache")
    (path,) = folder.glob("mtcnn-pnet-*.onnx")
    side = onnx_files.sidecar_path(path)
    meta = json.loads(side.read_text())
    meta["source_sha256"] = "0" * 64
    side.write_text(json.dumps(meta))
    det = OnnxMtcnnDetector(folder=folder)
    with caplog.at_level(logging.WARNING, logger="core.vision.onnx_files"):
        det.load()
    assert "converted from other weights" in caplog.text
    assert not det.loaded_from_cache_
    assert json.loads(side.read_text())["source_sha256"] == onnx_detector.source_sha256("pnet")


def test_a_missing_sidecar_is_never_trusted(onnx_cache, tmp_path, monkeypatch):
    _forget_sessions(monkeypatch)
    folder = _copy_cache(onnx_cache, tmp_path / "cache")
    (path,) = folder.glob("mtcnn-rnet-*.onnx")
    onnx_files.sidecar_path(path).unlink()
    calls = []

    def refuse(net, folder=None):
        calls.append(net)
        raise ConversionError("refused")

    monkeypatch.setattr(onnx_detector, "convert", refuse)
    with pytest.raises(ConversionError):
        OnnxMtcnnDetector(folder=folder).load()
    assert calls == ["rnet"] and not path.exists()


def test_a_conversion_that_differs_from_tensorflow_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    _forget_sessions(monkeypatch)
    monkeypatch.setattr(onnx_detector, "MAX_ABS_DIFF", 1e-9)  # below what any conversion achieves
    with pytest.raises(ConversionError, match=r"differs from TensorFlow by [0-9.e-]+ on the reference images \(at most 1e-09 allowed\)"):
        OnnxMtcnnDetector(folder=tmp_path).load()
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("*.json"))


def test_a_valid_cache_detects_without_importing_tensorflow(seed, onnx_cache, tmp_path):
    image = read_image(min((seed.dataset / "val" / "madonna").iterdir()))
    np.save(tmp_path / "image.npy", image)
    code = (
        "import sys, json, numpy as np\n"
        "from pathlib import Path\n"
        "from core.vision.onnx_detector import OnnxMtcnnDetector\n"
        f"det = OnnxMtcnnDetector(folder=Path({str(onnx_cache)!r}))\n"
        f"faces = det.detect(np.load({str(tmp_path / 'image.npy')!r}))\n"
        "print(json.dumps({'cache': det.loaded_from_cache_, 'faces': [list(f.box) for f in faces],\n"
        "                  'loaded': sorted(m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx', 'mtcnn')\n"
        "                                   if m in sys.modules)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    want = [list(d.box) for d in MtcnnDetector().detect(image)]
    assert report == {"cache": True, "faces": want, "loaded": []}
