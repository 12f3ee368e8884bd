"""FaceNet rebuilt from the Keras 2 ``.h5``: real weights, real photos, faces cropped with MTCNN."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.assets import SeedAssets, ensure_seed_assets, sha256_of
from core.errors import ModelError
from core.vision.facenet import EMBEDDING_SIZE, INPUT_SIZE, FaceNetEmbedder, prewhiten

PEOPLE = ("ben_afflek", "madonna", "jerry_seinfeld")
PHOTOS_PER_PERSON = 3


@pytest.fixture(scope="module")
def assets() -> SeedAssets:
    return ensure_seed_assets()


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache root, so the first load in this module is a fresh conversion."""
    return tmp_path_factory.mktemp("facenet-cache")


@pytest.fixture
def use_cache(monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> Path:
    monkeypatch.setenv("FACEGATE_CACHE_DIR", str(model_cache))
    return model_cache


@pytest.fixture(scope="module")
def embedder(assets: SeedAssets, model_cache: Path) -> FaceNetEmbedder:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGATE_CACHE_DIR", str(model_cache))
        emb = FaceNetEmbedder(assets.facenet_h5)
        emb.load()
    return emb


def _largest_face_crop(detector: object, path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    found = detector.detect_faces(rgb)  # type: ignore[attr-defined]
    assert found, f"MTCNN found no face in {path.name}"
    x, y, w, h = max(found, key=lambda f: f["box"][2] * f["box"][3])["box"]
    x, y = max(0, x), max(0, y)
    return cv2.resize(rgb[y:y + h, x:x + w], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def faces(assets: SeedAssets) -> tuple[np.ndarray, np.ndarray]:
    """(9, 160, 160, 3) uint8 RGB crops of three people from the training photos, and their labels."""
    from mtcnn import MTCNN

    detector = MTCNN()
    crops, labels = [], []
    for person in PEOPLE:
        photos = sorted((assets.dataset / "train" / person).iterdir())[:PHOTOS_PER_PERSON]
        for photo in photos:
            crops.append(_largest_face_crop(detector, photo))
            labels.append(person)
    return np.stack(crops), np.array(labels)


# ---------------------------------------------------------------------------------------------


def test_module_import_does_not_load_tensorflow() -> None:
    code = "import sys, core.vision.facenet; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_prewhiten_standardises_each_image() -> None:
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    batch[1] //= 4  # a dark image: its own mean and spread, not the batch's
    out = prewhiten(batch)
    assert out.dtype == np.float32 and out.shape == batch.shape
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, atol=1e-5)
    np.testing.assert_array_equal(prewhiten(batch[1]), out[1])

    flat = np.full((INPUT_SIZE, INPUT_SIZE, 3), 77, np.uint8)
    assert np.all(prewhiten(flat) == 0.0)  # the std floor keeps a flat image finite


def test_embeddings_are_unit_float32_rows(
    embedder: FaceNetEmbedder, faces: tuple[np.ndarray, np.ndarray]
) -> None:
    crops, _ = faces
    emb = embedder.embed(crops)
    assert emb.shape == (len(crops), EMBEDDING_SIZE) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(emb))


def test_identity_attributes(embedder: FaceNetEmbedder, assets: SeedAssets) -> None:
    assert embedder.name == "facenet-keras-taniai-msceleb1m"
    assert embedder.embedding_size == EMBEDDING_SIZE == 128
    assert embedder.input_size == INPUT_SIZE == 160
    assert embedder.version == sha256_of(assets.facenet_h5)[:12]
    assert embedder.weighted_layers_ == 245  # every weighted layer of the file was set


def test_single_face_and_empty_batch(embedder: FaceNetEmbedder, faces: tuple[np.ndarray, np.ndarray]) -> None:
    crops, _ = faces
    one = embedder.embed(crops[0])
    assert one.shape == (1, EMBEDDING_SIZE) and one.dtype == np.float32
    empty = embedder.embed(np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))
    assert empty.shape == (0, EMBEDDING_SIZE) and empty.dtype == np.float32


@pytest.mark.parametrize(
    "shape", [(INPUT_SIZE, INPUT_SIZE), (2, 100, 100, 3), (1, INPUT_SIZE, INPUT_SIZE, 4)]
)
def test_wrong_shapes_are_refused(embedder: FaceNetEmbedder, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        embedder.embed(np.zeros(shape, np.uint8))


def test_deterministic(embedder: FaceNetEmbedder, faces: tuple[np.ndarray, np.ndarray]) -> None:
    crops, _ = faces
    np.testing.assert_array_equal(embedder.embed(crops), embedder.embed(crops))


def test_batch_equals_one_by_one(embedder: FaceNetEmbedder, faces: tuple[np.ndarray, np.ndarray]) -> None:
    crops, _ = faces
    batched = embedder.embed(crops)
    single = np.concatenate([embedder.embed(face) for face in crops])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_same_person_is_closer_than_other_people(
    embedder: FaceNetEmbedder, faces: tuple[np.ndarray, np.ndarray]
) -> None:
    crops, labels = faces
    emb = embedder.embed(crops)
    dist = np.linalg.norm(emb[:, None, :] - emb[None, :, :], axis=-1)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    intra = dist[same & off_diagonal].mean()
    inter = dist[~same].mean()
    assert intra < inter - 0.2, (intra, inter)
    # And every photo's nearest other photo shows the same person.
    nearest = np.where(off_diagonal, dist, np.inf).argmin(axis=1)
    assert np.all(labels[nearest] == labels), labels[nearest]


def test_folding_batchnorm_matches_the_layer_by_layer_network(
    embedder: FaceNetEmbedder, assets: SeedAssets, faces: tuple[np.ndarray, np.ndarray]
) -> None:
    """The embedder folds BatchNormalization into the convolutions; the unfolded graph must agree."""
    from core.vision import facenet

    config_json, weights = facenet._read_keras2_h5(assets.facenet_h5)
    faithful = facenet._build_model(config_json)
    assert len(faithful.layers) == 426
    assert facenet._assign_weights(faithful, weights, assets.facenet_h5) == 245
    crops, _ = faces
    x = prewhiten(crops[:4])
    reference = facenet.l2_normalise(np.asarray(faithful(x, training=False)))
    np.testing.assert_allclose(embedder.embed(crops[:4]), reference, atol=1e-5)


def test_cached_model_gives_identical_embeddings(
    embedder: FaceNetEmbedder, assets: SeedAssets, faces: tuple[np.ndarray, np.ndarray], use_cache: Path
) -> None:
    assert not embedder.loaded_from_cache_  # the module's embedder converted from the .h5
    from core.vision.facenet import _cache_path

    expected = _cache_path(sha256_of(assets.facenet_h5))
    assert expected.name.startswith(f"facenet-{sha256_of(assets.facenet_h5)[:16]}")
    assert list((use_cache / "models").glob("facenet-*.npz")) == [expected]

    again = FaceNetEmbedder(assets.facenet_h5)
    again.load()
    assert again.loaded_from_cache_ and again.weighted_layers_ == 245
    crops, _ = faces
    np.testing.assert_array_equal(again.embed(crops), embedder.embed(crops))


def test_damaged_cache_is_rebuilt(
    assets: SeedAssets, faces: tuple[np.ndarray, np.ndarray], embedder: FaceNetEmbedder,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.vision.facenet import _cache_path

    monkeypatch.setenv("FACEGATE_CACHE_DIR", str(tmp_path))
    target = _cache_path(sha256_of(assets.facenet_h5))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"PK\x03\x04 not really a zip")
    emb = FaceNetEmbedder(assets.facenet_h5)
    emb.load()
    assert not emb.loaded_from_cache_
    assert target.stat().st_size > 50_000_000  # replaced by a good cache
    crops, _ = faces
    np.testing.assert_array_equal(emb.embed(crops[:2]), embedder.embed(crops[:2]))


def test_missing_h5_raises_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEGATE_CACHE_DIR", str(tmp_path))
    emb = FaceNetEmbedder(tmp_path / "nowhere" / "facenet_keras.h5")
    with pytest.raises(ModelError, match="does not exist"):
        emb.load()
    with pytest.raises(ModelError):
        emb.embed(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))


def _truncated(src: Path, dest: Path) -> Path:
    with open(src, "rb") as fh:
        dest.write_bytes(fh.read(1 << 20))
    return dest


def _h5_without_model(dest: Path) -> Path:
    import h5py

    with h5py.File(dest, "w") as fh:
        fh.create_dataset("x", data=np.arange(3))
    return dest


@pytest.mark.parametrize("make", ["garbage", "truncated", "not_a_model"])
def test_corrupt_h5_raises_model_error(
    make: str, assets: SeedAssets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEGATE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "facenet_keras.h5"
    if make == "garbage":
        path.write_bytes(os.urandom(4096))
    elif make == "truncated":
        _truncated(assets.facenet_h5, path)
    else:
        _h5_without_model(path)
    with pytest.raises(ModelError, match="could not be read"):
        FaceNetEmbedder(path).load()


def test_cache_of_another_file_is_never_used(
    assets: SeedAssets, model_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    embedder: FaceNetEmbedder, caplog: pytest.LogCaptureFixture,
) -> None:
    """A good cache file placed under a damaged .h5's hash is refused: its recorded source differs."""
    from core.vision.facenet import _cache_path

    monkeypatch.setenv("FACEGATE_CACHE_DIR", str(tmp_path))
    bad = _truncated(assets.facenet_h5, tmp_path / "facenet_keras.h5")
    good_cache = next((model_cache / "models").glob("facenet-*.npz"))
    planted = _cache_path(sha256_of(bad))
    planted.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(good_cache, planted)
    with pytest.raises(ModelError, match="could not be read"):
        FaceNetEmbedder(bad).load()
    assert "written for another FaceNet file" in caplog.text
