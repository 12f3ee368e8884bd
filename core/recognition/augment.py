"""Augmented copies of an aligned face, for people enrolled with few photos (issue 12).

A person enrolled with one, two or three usable photos took part in no classifier before: the
cross-validations had nothing to hold out.  Each enrolled photo's aligned face is now also embedded
in :data:`VARIANTS` small variations — mirrored, shifted, zoomed in and out, lighter and darker —
once, at enrollment (:func:`augmented_embeddings`), and the training set tops such a person up with
them (:func:`top_up`): never so many that they swamp the real photos, and none at all for someone
with :data:`AUGMENT_BELOW` photos or more.  The gallery and its threshold use real photos only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

VARIANTS: tuple[str, ...] = ("flip", "shift", "zoom_in", "zoom_out", "lighter", "darker")
"""The variations, in the order they are stored."""

AUGMENT_BELOW = 6
"""People with fewer real photos than this are topped up with augmented copies; others are not."""

TARGET_ROWS = 8
"""A person's rows (real + augmented) after the top-up, when they have fewer real photos."""

SHIFT = 0.04
ZOOM = 0.08
GAIN = 0.22


def variants(face: np.ndarray) -> np.ndarray:
    """The :data:`VARIANTS` of an aligned ``(s, s, 3)`` uint8 face, as ``(len(VARIANTS), s, s, 3)``."""
    import cv2

    face = np.ascontiguousarray(face, dtype=np.uint8)
    size = face.shape[0]
    centre = (size / 2.0, size / 2.0)

    def warp(matrix: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(face, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    shift = np.array([[1, 0, SHIFT * size], [0, 1, SHIFT * size / 2]], dtype=np.float32)
    out = [
        np.ascontiguousarray(face[:, ::-1]),
        warp(shift),
        warp(cv2.getRotationMatrix2D(centre, 0.0, 1.0 + ZOOM)),
        warp(cv2.getRotationMatrix2D(centre, 0.0, 1.0 - ZOOM)),
        np.clip(face.astype(np.float32) * (1.0 + GAIN), 0, 255).astype(np.uint8),
        np.clip(face.astype(np.float32) * (1.0 - GAIN), 0, 255).astype(np.uint8),
    ]
    return np.stack(out)


def augmented_embeddings(embedder: Any, faces: np.ndarray) -> np.ndarray:
    """Embeddings ``(n, len(VARIANTS), d)`` of the variants of ``n`` aligned faces, in one batch."""
    faces = np.asarray(faces)
    if len(faces) == 0:
        return np.zeros((0, len(VARIANTS), 0), np.float32)
    batch = np.concatenate([variants(f) for f in faces])
    emb = np.asarray(embedder.embed(batch), dtype=np.float32)
    return emb.reshape(len(faces), len(VARIANTS), -1)


def top_up(
    labels: Sequence[str], photo_ids: Sequence[int], augmented: dict[int, np.ndarray]
) -> tuple[list[int], list[int]]:
    """Which augmented copies to add: ``(photo id, variant index)`` rows, as two lists.

    A person with fewer than :data:`AUGMENT_BELOW` real photos gets copies until they have
    :data:`TARGET_ROWS` rows, taken round-robin over their photos (every photo's mirror image
    first, then every photo's shift, …), so no photo dominates and real photos stay the larger
    share once there are 4 or more.  ``augmented`` maps a photo id to its ``(len(VARIANTS), d)``
    embeddings; photos without any are skipped.
    """
    counts = Counter(labels)
    by_person: dict[str, list[int]] = {}
    for label, pid in zip(labels, photo_ids):
        if counts[label] < AUGMENT_BELOW and pid in augmented:
            by_person.setdefault(label, []).append(pid)
    rows_photo: list[int] = []
    rows_variant: list[int] = []
    for label, pids in by_person.items():
        need = max(0, TARGET_ROWS - counts[label])
        order = [(pid, v) for v in range(len(VARIANTS)) for pid in pids]
        for pid, v in order[:need]:
            rows_photo.append(pid)
            rows_variant.append(v)
    return rows_photo, rows_variant
