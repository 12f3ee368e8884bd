"""What the console shows of an enrolled person at the gate: name, id, department, the photo on file."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.errors import FaceGateError
from core.registry.store import Registry

__all__ = ["OperatorCard", "operator_card"]


@dataclass(frozen=True)
class OperatorCard:
    """An enrolled person as the guard sees them; ``photo`` is an RGB face crop from their first
    enrolled photo (``None`` if they have none left, e.g. after erasure)."""

    employee_id: str
    name: str
    department: str
    active: bool
    photo: np.ndarray | None = field(default=None, repr=False, compare=False)


def operator_card(registry: Registry, employee_id: str, size: int = 192) -> OperatorCard | None:
    """The card of ``employee_id``, or ``None`` if nobody has that id (any more).

    The face is cut from the first photo that passed enrollment, around the box the quality gate
    recorded (with some margin), and resized to ``size`` pixels wide.
    """
    try:
        op = registry.get_operator(employee_id)
    except FaceGateError:
        return None
    photo = None
    for record in registry.list_photos(op.id):
        try:
            photo = _face_crop(registry.photo_bytes(record.id), record.quality.get("box"), size)
        except (FaceGateError, ValueError):
            continue
        if photo is not None:
            break
    return OperatorCard(op.employee_id, op.name, op.department, op.active, photo)


def _face_crop(data: bytes, box: list[int] | None, size: int) -> np.ndarray | None:
    import cv2

    from core.vision.imageio import decode_image

    rgb = decode_image(data)
    h, w = rgb.shape[:2]
    if box and len(box) == 4:
        x, y, bw, bh = (int(v) for v in box)
        pad_x, pad_y = int(0.35 * bw), int(0.35 * bh)
        x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
        x1, y1 = min(w, x + bw + pad_x), min(h, y + bh + pad_y)
        if x1 > x0 and y1 > y0:
            rgb = rgb[y0:y1, x0:x1]
    scale = size / rgb.shape[1]
    out = cv2.resize(rgb, (size, max(1, int(round(rgb.shape[0] * scale)))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out)
