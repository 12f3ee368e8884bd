"""The demo scene's script: who walks in when, where they stand and leave, at what size, and which
of their photos the detector sees cleanly enough to be shown (:func:`_assemble`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.demo.render import _TORSO_COLOURS, _blend, _draw_background, _make_sprite, _scale_of, _Sprite
from core.types import Box, Detection, iou

log = logging.getLogger(__name__)

# Face heights at the reference size (640×480), scaled like the rest of the layout (see render._scale_of).
FACE_HEIGHT = (125.0, 165.0)
# Timing in seconds.
WALK_IN_S, WALK_OUT_S, GAP_S = 1.4, 1.4, 0.8
STAND_S = (2.0, 3.0)
STAGGER_S = 0.35  # people in a group do not move in lockstep
# A sprite is shown only if the detector finds exactly its face on it, this sure and this close, at
# each of these pixel offsets from its place at the gate.  (The places are where the sprite stands;
# while people walk, a rare small false face on a hand or ring can still appear.)
PROBE_CONFIDENCE = 0.9
PROBE_MEDIAN_CONFIDENCE = 0.95
PROBE_IOU = 0.6
# P-Net looks at the image on a grid of about 3–4 px at the scales where small false faces appear, so
# the offsets cover the grid's phases in both directions (and the sway's range).
PROBE_OFFSETS = ((0, 0), (2, 1), (-3, -1), (1, 2), (3, 3), (-1, 1))


@dataclass(frozen=True)
class _Part:
    """One actor's movement within one loop of the script (frames relative to the loop start)."""

    role: int
    appearance: int  # the role's n-th appearance in a loop: picks a different photo each time
    start: int
    walk_in: int
    stand: int
    walk_out: int
    slot_x: float  # face centre x while standing
    face_y: float  # face centre y while standing
    side_in: int  # -1 enters from the left, +1 from the right
    side_out: int
    sway: float  # pixels
    sway_half_cycles: int
    bob: float  # pixels
    step: float  # frames per step

    @property
    def end(self) -> int:
        return self.start + self.walk_in + self.stand + self.walk_out

    @property
    def gate(self) -> tuple[int, int]:
        return self.start + self.walk_in, self.start + self.walk_in + self.stand


@dataclass(frozen=True)
class _Role:
    identity: str
    sprites: tuple[_Sprite, ...]
    appearances: int  # per loop


def _assemble(
    specs: Sequence[tuple[str, Sequence[tuple[str, np.ndarray, Box]]]],
    groups: Sequence[Sequence[int]],
    size: tuple[int, int],
    seed: int,
    fps: float,
    probe: Callable[[np.ndarray], list[Detection]] | None = None,
    progress: Callable[[], None] | None = None,
) -> tuple[list[_Role], list[_Part], int, np.ndarray]:
    """Lay out the script, then cut the sprites at the sizes the layout needs.

    Returns the ``roles, parts, period, background`` a :class:`core.demo.scene.DemoScene` is made of.

    With ``probe`` (a detector), each sprite is pasted at the gate on the background and checked: a
    sprite on which the detector does not find exactly its one face, confidently and where the truth
    box says, is dropped (unless its role has no other), so the scene's truth stays honest.
    """
    width, height = int(size[0]), int(size[1])
    if width < 160 or height < 120:
        raise ValueError(f"Demo frames must be at least 160×120, got {width}×{height}.")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    scale = _scale_of((width, height))
    rng = np.random.default_rng([seed, 2])
    n_roles = len(specs)
    face_h = rng.uniform(*FACE_HEIGHT, size=n_roles) * scale
    face_y = rng.uniform(0.38, 0.42, size=n_roles) * height
    colours = rng.integers(0, len(_TORSO_COLOURS), size=n_roles)
    # Keep neighbours' faces clear of each other's ellipses: the ellipse reaches 1.1 face widths from the
    # face centre and a face is at most ~0.85 of its height wide.
    widest = max(len(g) for g in groups)
    spacing = min(0.42 * width, 0.9 * width / widest)
    face_h = np.minimum(face_h, spacing / (1.6 * 0.85))

    def frames(seconds: float) -> int:
        return max(2, round(seconds * fps))

    parts: list[_Part] = []
    appearances = [0] * n_roles
    t0 = 0
    for group in groups:
        n = len(group)
        jitter = rng.uniform(-0.04, 0.04) * width if n == 1 else 0.0
        side_single = 1 if rng.random() < 0.5 else -1
        stand = frames(rng.uniform(*STAND_S))
        slots = [width / 2 + (k - (n - 1) / 2) * spacing + jitter for k in range(n)]
        sides = [side_single] * n if n == 1 else [-1 if x < width / 2 else 1 for x in slots]
        # In a group each person comes from and goes back to their own side.  Nobody walks through
        # someone standing: the innermost on each side come first and leave last.
        rank_in = [sum(1 for j in range(n) if sides[j] == sides[k] and abs(slots[j] - width / 2)
                       < abs(slots[k] - width / 2)) for k in range(n)]
        rank_out = [sum(1 for j in range(n) if sides[j] == sides[k] and j != k) - r for k, r in enumerate(rank_in)]
        lag = [0.0 if n == 1 or sides[k] < 0 else 0.5 for k in range(n)]  # the right side a little later
        starts = [t0 + round(STAGGER_S * (r + g) * fps) for r, g in zip(rank_in, lag)]
        walk_in, walk_out = frames(WALK_IN_S), frames(WALK_OUT_S)
        leave = max(starts) + walk_in + stand
        end = t0
        for k, role in enumerate(group):
            gate_start = starts[k] + walk_in
            exit_at = leave + round(STAGGER_S * (rank_out[k] + lag[k]) * fps)
            part = _Part(
                role=role,
                appearance=appearances[role],
                start=starts[k],
                walk_in=walk_in,
                stand=exit_at - gate_start,
                walk_out=walk_out,
                slot_x=float(slots[k]),
                face_y=float(face_y[role]),
                side_in=sides[k],
                side_out=-sides[k] if n == 1 else sides[k],  # alone, they walk past the gate
                sway=float(rng.uniform(3.0, 5.0) * scale),
                sway_half_cycles=max(1, round((exit_at - gate_start) / fps / 1.1)),
                bob=float(4.0 * scale),
                step=float(rng.uniform(0.45, 0.55) * fps),
            )
            appearances[role] += 1
            parts.append(part)
            end = max(end, part.end)
        t0 = end + frames(GAP_S)
    period = t0

    background = _draw_background(width, height, np.random.default_rng([seed, 3]))
    roles = []
    for i, (identity, photos) in enumerate(specs):
        colour = int(colours[i])
        sprites = [
            _make_sprite(name, image, box, float(face_h[i]), float(face_y[i]), height, scale, colour)
            for name, image, box in photos
        ]
        if probe is not None:
            passed = []
            places = sorted({(p.slot_x, p.face_y) for p in parts if p.role == i})
            for sprite in sprites:
                if all(_probe_ok(sprite, background, x, y, probe) for x, y in places):
                    passed.append(sprite)
                else:
                    log.info("demo scene: not showing %s (the detector does not see it cleanly)", sprite.photo)
                if progress is not None:
                    progress()
            if passed:
                sprites = passed
            else:
                log.warning("demo scene: no photo of %s passed the detector check; showing them anyway", identity)
        roles.append(_Role(identity, tuple(sprites), max(1, appearances[i])))
    return roles, parts, period, background


def _probe_ok(
    sprite: _Sprite,
    background: np.ndarray,
    face_x: float,
    face_y: float,
    probe: Callable[[np.ndarray], list[Detection]],
) -> bool:
    """Paste ``sprite`` where it stands at the gate and check that the detector finds its face only.

    MTCNN's answer depends on how the face falls on its networks' pixel grids (and a crop of the frame
    is resampled differently from the whole frame), so whole frames are tried with the sprite at a few
    offsets within its sway; every try must find exactly the one face, confidently.
    """
    cx, cy = sprite.face_center
    x, y = round(face_x - cx), round(face_y - cy)
    fx, fy, fw, fh = sprite.face
    confidences = []
    for dx, dy in PROBE_OFFSETS:
        frame = background.copy()
        _blend(frame, sprite, x + dx, y + dy)
        found = probe(frame)
        expected = (x + dx + fx, y + dy + fy, fw, fh)
        log.debug("demo scene probe %s %+d%+d: %s", sprite.photo, dx, dy,
                  [(d.box, round(d.confidence, 3)) for d in found])
        if not (
            len(found) == 1
            and found[0].confidence >= PROBE_CONFIDENCE
            and iou(found[0].box, expected) >= PROBE_IOU
        ):
            return False
        confidences.append(found[0].confidence)
    # A face the detector is only just sure of somewhere is missed somewhere else on the way.
    return float(np.median(confidences)) >= PROBE_MEDIAN_CONFIDENCE
