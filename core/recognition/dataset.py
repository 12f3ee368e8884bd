"""Folder-per-person datasets: ``<root>/<person>/<photo>``, embedded once and cached.

Each photo must show exactly one face.  A photo that cannot be used (unreadable, corrupt, truncated, not
a picture, no face, several faces) is skipped with a one-line reason; it never stops the run.

Embeddings are cached per photo under ``<cache>/embeddings/``, keyed by the photo's SHA-256 and the
pipeline's signature (embedder version, alignment, detector settings), so a second run over the same
photos costs only the file hashes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.assets import cache_dir
from core.errors import DatasetError, FaceGateError, ImageError
from core.vision.imageio import decode_image

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


@dataclass(frozen=True)
class Skipped:
    """A photo that was not used, and why."""

    path: Path
    reason: str


@dataclass
class EmbeddedSet:
    """Embeddings of a folder-per-person set, with what was skipped."""

    x: np.ndarray
    y: np.ndarray
    paths: list[Path]
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)


def iter_photos(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(person, path)`` for every file under ``root/<person>/``, sorted, hidden files left out.

    Files that are not named like pictures are yielded too: reading them gives the reason they are
    skipped.  Loose files directly under ``root`` belong to no person and are yielded as ``("", path)``.
    """
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for photo in sorted(entry.rglob("*")):
                if photo.is_file() and not photo.name.startswith("."):
                    yield entry.name, photo
        elif entry.is_file():
            yield "", entry


def check_layout(root: Path, splits: tuple[str, ...] = ("train", "val")) -> None:
    """Raise :class:`DatasetError` unless ``root`` has ``<split>/<person>/`` folders."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder. Give a folder that holds train/<person>/ and val/<person>/.")
    for split in splits:
        folder = root / split
        if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
            raise DatasetError(
                f"{root} has no {split}/<person>/ folders. A dataset holds train/<person>/photos and "
                "val/<person>/photos, one folder per person."
            )


class EmbeddingCache:
    """Per-photo embedding cache on disk (``.npz`` per photo, written via temp file + rename)."""

    def __init__(self, signature: str, root: Path | None = None) -> None:
        self.signature = signature
        tag = hashlib.sha256(signature.encode()).hexdigest()[:16]
        self.root = (root or cache_dir() / "embeddings") / tag
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "signature.txt").write_text(signature)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.npz"

    def get(self, digest: str) -> tuple[np.ndarray, tuple[int, int, int, int]] | str | None:
        """The cached embedding and box, the cached skip reason, or None."""
        path = self._path(digest)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if "reason" in data:
                    return str(data["reason"])
                return data["embedding"].astype(np.float32), tuple(int(v) for v in data["box"])  # type: ignore[return-value]
        except (OSError, ValueError, KeyError):
            return None

    def put(self, digest: str, value: tuple[np.ndarray, tuple[int, int, int, int]] | str) -> None:
        """Store an embedding and box, or a skip reason."""
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        if isinstance(value, str):
            np.savez(tmp, reason=np.array(value))
        else:
            np.savez(tmp, embedding=value[0].astype(np.float32), box=np.array(value[1]))
        os.replace(tmp, path)


def embed_folder(
    root: Path,
    pipeline: object,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    use_cache: bool = True,
    label_loose_files: str | None = None,
) -> EmbeddedSet:
    """Embed every photo of a folder-per-person tree.

    Parameters
    ----------
    root
        ``root/<person>/<photo>``.
    pipeline
        A :class:`core.recognition.engine.FacePipeline`.
    label_loose_files
        Label for photos directly under ``root`` (e.g. ``"unknown"``); None skips them with a reason.
    """
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    report = progress or (lambda f, m: None)
    cache = EmbeddingCache(pipeline.signature) if use_cache else None  # type: ignore[attr-defined]
    items = list(iter_photos(root))
    xs: list[np.ndarray] = []
    ys: list[str] = []
    paths: list[Path] = []
    boxes: list[tuple[int, int, int, int]] = []
    skipped: list[Skipped] = []
    for n, (person, path) in enumerate(items):
        if cancel is not None and cancel():
            from core.recognition.classifiers import TrainingCancelled

            raise TrainingCancelled("Cancelled while reading photos.")
        report(n / max(len(items), 1), f"{person}/{path.name}" if person else path.name)
        label = person or label_loose_files
        if not label:
            skipped.append(Skipped(path, f"{path.name}: not inside a person's folder"))
            continue
        result = _embed_one(path, pipeline, cache)
        if isinstance(result, str):
            skipped.append(Skipped(path, result))
            log.info("skipped %s", result)
            continue
        xs.append(result[0])
        boxes.append(result[1])
        ys.append(label)
        paths.append(path)
    report(1.0, f"{len(ys)} faces, {len(skipped)} skipped")
    x = np.stack(xs).astype(np.float32) if xs else np.zeros((0, 128), np.float32)
    return EmbeddedSet(x, np.asarray(ys, dtype=str), paths, boxes, skipped)


def _embed_one(
    path: Path, pipeline: object, cache: EmbeddingCache | None
) -> tuple[np.ndarray, tuple[int, int, int, int]] | str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"{path.name}: cannot be read ({exc.strerror or exc})"
    digest = hashlib.sha256(data).hexdigest()
    if cache is not None:
        hit = cache.get(digest)
        if hit is not None:
            return hit
    value: tuple[np.ndarray, tuple[int, int, int, int]] | str
    try:
        image = decode_image(data, path.name)
        det, emb = pipeline.single_face(image, path.name)  # type: ignore[attr-defined]
        value = (emb, det.box)
    except ImageError as exc:
        value = str(exc)
    except FaceGateError as exc:
        return str(exc)  # not a property of the photo: don't cache
    if cache is not None:
        cache.put(digest, value)
    return value


def augment_for_training(
    data: EmbeddedSet, pipeline: object, *, use_cache: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augmented copies that top up the people of ``data`` with few photos (issue 12).

    As the registry does at enrollment (:mod:`core.recognition.augment`): each photo of a person with
    fewer than :data:`~core.recognition.augment.AUGMENT_BELOW` photos is embedded in its variations
    (cached beside its embedding), and :func:`~core.recognition.augment.top_up` picks the copies.
    Returns their embeddings, labels and the row of ``data`` each comes from (its group).
    """
    from core.recognition.augment import AUGMENT_BELOW, augmented_embeddings, top_up

    counts: dict[str, int] = {}
    for label in data.y.tolist():
        counts[label] = counts.get(label, 0) + 1
    cache = EmbeddingCache(pipeline.signature + "|augment-v1") if use_cache else None  # type: ignore[attr-defined]
    stored: dict[int, np.ndarray] = {}
    for row, (label, path) in enumerate(zip(data.y.tolist(), data.paths)):
        if counts[label] >= AUGMENT_BELOW:
            continue
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        hit = cache.get(digest) if cache is not None else None
        if isinstance(hit, tuple):
            stored[row] = hit[0]
            continue
        image = decode_image(raw, path.name)
        det, _ = pipeline.single_face(image, path.name)  # type: ignore[attr-defined]
        face = pipeline.align(image, [det])  # type: ignore[attr-defined]
        stored[row] = augmented_embeddings(pipeline.embedder, face)[0]  # type: ignore[attr-defined]
        if cache is not None:
            cache.put(digest, (stored[row], det.box))
    rows, variants = top_up(data.y.tolist(), list(range(len(data))), stored)
    if not rows:
        return np.zeros((0, data.x.shape[1]), np.float32), np.zeros(0, dtype=data.y.dtype), np.zeros(0, np.int64)
    x_aug = np.stack([stored[r][v] for r, v in zip(rows, variants)]).astype(np.float32)
    return x_aug, data.y[np.asarray(rows)], np.asarray(rows, np.int64)


def write_json(path: Path, obj: object) -> None:
    """Write JSON via a temp file and rename."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)
