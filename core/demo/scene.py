"""The built-in demo camera: a plant gate where real people walk in, stand, and walk out.

The live monitor needs a frame source on machines without a camera.  :class:`DemoScene` composes one
from the 5-celebrity **val** photos and two strangers (Barack Obama, Joe Biden; reported as
``"unknown"``).  The demo registry is enrolled from the *train* photos, so recognition on the demo is
honest: no frame ever shows a picture the classifiers were trained on, and the stranger is not enrolled.

How a frame is made
-------------------
At construction each photo's face is found with MTCNN, a head-and-shoulders crop around it is scaled
so the face is 125–165 px tall at 640×480 (proportionally larger at 1280×720), given a feathered
elliptical alpha mask and a simple torso, and stored as a *sprite*.  :meth:`DemoScene.render` then only
copies a pre-drawn background and alpha-blends one to three sprites at positions computed from the
frame index, so a frame costs about a millisecond and ``render(i)`` is a pure function of
``(size, seed, i)``.

Because the sprite is a scaled copy of the photo, the face box the detector reported on the photo lands
at a known place in the frame: :meth:`DemoScene.truth` returns those boxes, for tests and benchmarks.
To keep that truth honest, each sprite is also pasted where it will stand and shown to the detector
(:func:`_probe_ok`): a photo on which MTCNN would miss the face, or "find" a second one on a hand or a
ring once scaled up, is left out.  All detector answers are cached by the pixels' SHA-256 under
``cache_dir()/demo``, so only the first start at a given size and seed needs the detector.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import AssetError, FaceError
from core.vision.imageio import is_image_path, read_image
from core.types import UNKNOWN, Box, Detection

if TYPE_CHECKING:
    from core.vision.detector import Detector

log = logging.getLogger(__name__)

PERSONS = ("ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling")
# Face heights and layout are designed at 640×480 and scaled by min(w / 640, h / 480).
REFERENCE_SIZE = (640, 480)
FACE_HEIGHT = (125.0, 165.0)
# Head-and-shoulders crop around the detected face box, in face widths (sides) and heights (top/bottom).
CROP_SIDE, CROP_TOP, CROP_BOTTOM = 0.6, 0.6, 0.8
# The ellipse inscribed in the crop is opaque up to this normalised radius and fades out to 1.0; the
# face box corners sit at radius <= 0.68, so the fade never touches the face.
FEATHER_FROM = 0.78
# The drawn torso: neck base below the face top and half the shoulder width, in face heights / widths.
TORSO_TOP, TORSO_HALF = 1.12, 1.25
# Timing in seconds.
WALK_IN_S, WALK_OUT_S, GAP_S = 1.4, 1.4, 0.8
STAND_S = (2.0, 3.0)
STAGGER_S = 0.35  # people in a group do not move in lockstep
# Photos must show one clear face of a usable size to become sprites.
MIN_CONFIDENCE = 0.9
MIN_FACE_PX = 40
# A sprite is shown only if the detector finds exactly its face on it, this sure and this close, at
# each of these pixel offsets from its place at the gate.  (The places are where the sprite stands;
# while people walk, a rare small false face on a hand or ring can still appear.)
PROBE_CONFIDENCE = 0.9
PROBE_MEDIAN_CONFIDENCE = 0.95
PROBE_IOU = 0.6
# P-Net looks at the image on a grid of about 3–4 px at the scales where small false faces appear, so
# the offsets cover the grid's phases in both directions (and the sway's range).
PROBE_OFFSETS = ((0, 0), (2, 1), (-3, -1), (1, 2), (3, 3), (-1, 1))
# Faces with less of their box inside the frame are not reported by DemoScene.truth(partial=True).
MIN_VISIBLE = 0.4
_CACHE_VERSION = 3
_TORSO_COLOURS = (
    (44, 52, 82),  # navy work jacket
    (58, 58, 62),  # charcoal
    (214, 204, 46),  # hi-vis yellow
    (232, 112, 34),  # hi-vis orange
    (42, 72, 54),  # dark green
    (92, 66, 46),  # brown
)
_HI_VIS = {2, 3}


@dataclass(frozen=True)
class Actor:
    """One appearance of one person in the scene's script.

    Attributes
    ----------
    identity
        The dataset folder name, or ``"unknown"`` for the stranger.
    photo
        File name of the photo shown.
    start, end
        Frames ``[start, end)`` during which the person walks in, stands and walks out.
    gate_start, gate_end
        Frames ``[gate_start, gate_end)`` during which the person stands at the gate.
    """

    identity: str
    photo: str
    start: int
    end: int
    gate_start: int = 0
    gate_end: int = 0


@dataclass(frozen=True)
class TruthFace:
    """A face visible in a rendered frame.

    Attributes
    ----------
    identity
        The dataset folder name, or ``"unknown"`` for the stranger.
    box
        ``(x, y, w, h)`` of the face in frame pixels (always inside the frame).
    visible
        Fraction of the face box inside the frame: 1.0 unless asked for with
        ``DemoScene.truth(i, partial=True)``, where a face cut by the frame's edge is listed with its
        box clipped to the frame.
    """

    identity: str
    box: tuple[int, int, int, int]
    visible: float = 1.0


@dataclass(frozen=True)
class _Sprite:
    """A pre-scaled head-and-shoulders cut-out, ready to blend."""

    rgb: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    inv_alpha: np.ndarray  # 1 - alpha, precomputed so a frame does no arithmetic on it
    face: tuple[float, float, float, float]  # detected face box in sprite pixels
    photo: str

    @property
    def face_center(self) -> tuple[float, float]:
        x, y, w, h = self.face
        return x + w / 2, y + h / 2


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


class DemoScene:
    """An endless, deterministic video of people at a plant gate, with ground-truth face boxes.

    Build it with :meth:`from_assets` (the 5-celebrity val photos and the strangers) or
    :meth:`with_faces` (any photos).  Frame ``i`` and ``i + period`` show the same people at the same
    places; the photo of each person changes from loop to loop when several are available.

    Attributes
    ----------
    fps
        Nominal frame rate the script's timing is written for.
    size
        ``(width, height)`` of rendered frames.
    """

    def __init__(
        self,
        roles: Sequence[_Role],
        parts: Sequence[_Part],
        period: int,
        background: np.ndarray,
        fps: float,
        label: str = "DEMO CAM",
    ) -> None:
        # Private: use from_assets or with_faces.
        self.fps = float(fps)
        self.size = (int(background.shape[1]), int(background.shape[0]))
        self._roles = tuple(roles)
        self._parts = tuple(parts)
        self._period = int(period)
        self._background = background
        self._label = label
        active: list[list[_Part]] = [[] for _ in range(self._period)]
        for part in self._parts:
            for f in range(part.start, part.end):
                active[f].append(part)
        self._active = tuple(tuple(a) for a in active)
        self._font_scale = 0.45 * _scale_of(self.size)

    # ----------------------------------------------------------------------------------------- build
    @classmethod
    def from_assets(
        cls,
        size: tuple[int, int] = (640, 480),
        seed: int = 0,
        fps: float = 25.0,
        *,
        detector: Detector | None = None,
        cache: bool = True,
        verify: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> DemoScene:
        """The standard demo: the five celebrities' **val** photos and two strangers.

        One loop (36 s at 25 fps with seed 0) shows each of the five people alone, the stranger alone, and
        the fifth person together with the stranger.  The order, face sizes and positions depend on
        ``seed``; the photo of each person rotates from loop to loop.

        Parameters
        ----------
        size
            ``(width, height)`` of the frames, e.g. ``(640, 480)`` or ``(1280, 720)``.
        seed
            Chooses the order, sizes, positions and background texture.
        fps
            Frame rate the timing is written for.
        detector
            A :class:`core.vision.detector.Detector` to find the faces in the photos (default: a new
            ``MtcnnDetector``, loaded only if some photo's face is not cached yet).
        cache
            Keep the detected face boxes under ``cache_dir()/demo`` keyed by the photos' SHA-256, so
            later starts need no detector at all.
        verify
            Paste each photo's sprite where it will stand and run the detector on the frame; photos on
            which it misses the face or also "finds" a hand or a ring are not shown, so :meth:`truth`
            agrees with what the detector sees (see :func:`_probe_ok`).  Done once per size and seed,
            then cached: the first start at a new size or seed runs the detector about 120 times
            (about a minute on two busy cores), later starts take 1–3 s.
        progress
            Called as ``progress(done, total)`` after each photo; raise from it to cancel.

        Raises
        ------
        AssetError
            If the assets cannot be fetched or a person has no usable photo.
        """
        from core.assets import ensure_seed_assets, ensure_strangers

        val = ensure_seed_assets().dataset / "val"
        people: list[tuple[str, list[Path]]] = [(p, _images_in(val / p)) for p in PERSONS]
        strangers_root = ensure_strangers()
        folders = sorted(d for d in strangers_root.iterdir() if d.is_dir())
        # Alternate people (obama, biden, obama2, …) so both strangers show up in the first loop.
        stranger_paths = _interleave([_images_in(d) for d in folders])

        boxes = _FaceBoxes(detector, cache)
        photos: list[tuple[str, list[tuple[str, np.ndarray, Detection]]]] = []
        everyone = [*people, (UNKNOWN, stranger_paths)]
        # Each photo is looked at twice: once to find its face, once as a sprite at the gate.
        total, done = (2 if verify else 1) * sum(len(paths) for _, paths in everyone), 0

        def step() -> None:
            nonlocal done
            boxes.save()  # keep what was found, even if cancelled
            done += 1
            if progress is not None:
                progress(done, total)

        for identity, paths in everyone:
            usable = []
            for path in paths:
                image = read_image(path)
                face = _single_face(boxes.detect(image))
                step()
                if face is None:
                    log.info("demo scene: skipping %s (no single clear face)", path.name)
                    done += 1 if verify else 0  # it will not be probed
                    continue
                usable.append((path.name, image, face))
            if not usable:
                raise AssetError(
                    f"None of the demo photos of {identity} shows one clear face; delete "
                    f"{boxes.path.parent} and the seed cache and run again."
                )
            if identity != UNKNOWN:
                # Largest faces first: the first loop shows the sharpest pictures.
                usable.sort(key=lambda u: -u[2].box[3])
            photos.append((identity, usable))

        rng = np.random.default_rng([seed, 1])
        order = [int(i) for i in rng.permutation(len(PERSONS))]
        stranger = len(PERSONS)
        groups = [[order[0]], [order[1]], [stranger], [order[2]], [order[3]], [order[4], stranger]]
        specs = [(identity, [(name, img, d.box) for name, img, d in usable]) for identity, usable in photos]
        scene = _assemble(specs, groups, size, seed, fps, probe=boxes.detect if verify else None, progress=step)
        boxes.save()
        return scene

    @classmethod
    def with_faces(
        cls,
        faces: Sequence[tuple[str, np.ndarray, Box]],
        size: tuple[int, int] = (640, 480),
        seed: int = 0,
        fps: float = 25.0,
        *,
        together: int = 1,
        script: Sequence[Sequence[int]] | None = None,
        names: Sequence[str] | None = None,
    ) -> DemoScene:
        """A scene built from already-loaded photos, for tests and benchmarks.

        Parameters
        ----------
        faces
            ``(identity, RGB photo, face box)`` triples; the box is ``(x, y, w, h)`` in the photo's
            pixels, e.g. from ``MtcnnDetector().detect(photo)[0].box``.
        size, seed, fps
            As in :meth:`from_assets`.
        together
            Without ``script``: the faces appear in order, ``together`` at a time (1–3 fit a 640×480
            frame comfortably; more are allowed and get smaller).
        script
            Explicit groups of indexes into ``faces``, one group per segment, e.g. ``[[0], [1, 2]]``.
            A face may appear in several groups.
        names
            Photo names reported in :class:`Actor` (default ``"<identity>-<index>"``).
        """
        if not faces:
            raise ValueError("with_faces needs at least one (identity, photo, box) triple.")
        if script is None:
            if together < 1:
                raise ValueError(f"together must be at least 1, got {together}.")
            script = [list(range(i, min(i + together, len(faces)))) for i in range(0, len(faces), together)]
        groups = [list(g) for g in script]
        if not groups or any(not g for g in groups):
            raise ValueError("script must be a non-empty list of non-empty groups of face indexes.")
        if any(not 0 <= i < len(faces) for g in groups for i in g):
            raise ValueError(f"script refers to a face index outside 0..{len(faces) - 1}.")
        if any(len(set(g)) != len(g) for g in groups):
            raise ValueError("a face cannot appear twice in the same group.")
        labels = list(names) if names is not None else [f"{ident}-{i}" for i, (ident, _, _) in enumerate(faces)]
        if len(labels) != len(faces):
            raise ValueError("names must have one entry per face.")
        specs = []
        for (identity, photo, box), label in zip(faces, labels):
            image = np.asarray(photo)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"{label}: expected a uint8 RGB photo, got {image.shape} {image.dtype}.")
            x, y, w, h = (int(v) for v in box)
            if w <= 0 or h <= 0:
                raise ValueError(f"{label}: the face box {box} is empty.")
            specs.append((identity, [(label, image, (x, y, w, h))]))
        return _assemble(specs, groups, size, seed, fps)

    # ----------------------------------------------------------------------------------------- query
    @property
    def period(self) -> int:
        """Frames in one loop of the script."""
        return self._period

    @property
    def identities(self) -> list[str]:
        """The enrolled identities that appear, sorted; the stranger (``"unknown"``) is not listed."""
        return sorted({r.identity for r in self._roles if r.identity != UNKNOWN})

    def actors(self, loop: int = 0) -> list[Actor]:
        """The script of loop ``loop`` in the order people enter, with absolute frame indexes."""
        base = loop * self._period
        out = []
        for part in sorted(self._parts, key=lambda p: (p.start, p.slot_x)):
            gate = part.gate
            out.append(
                Actor(
                    self._roles[part.role].identity,
                    self._sprite(part, loop).photo,
                    base + part.start,
                    base + part.end,
                    base + gate[0],
                    base + gate[1],
                )
            )
        return out

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` (``>= 0``) as ``uint8`` RGB ``(height, width, 3)``; deterministic, endless."""
        import cv2

        loop, f = self._locate(index)
        frame = self._background.copy()
        for part in self._active[f]:
            sprite = self._sprite(part, loop)
            x, y = self._place(part, sprite, f - part.start)
            _blend(frame, sprite, x, y)
        seconds = index / self.fps
        stamp = f"{int(seconds // 3600):02d}:{int(seconds // 60) % 60:02d}:{seconds % 60:05.2f}"
        scale = self._font_scale
        org_y = max(12, round(22 * scale / 0.45))
        cv2.putText(frame, self._label, (round(10 * scale / 0.45), org_y), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (235, 235, 235), 1, cv2.LINE_AA)
        (tw, _), _ = cv2.getTextSize(stamp, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(frame, stamp, (self.size[0] - tw - round(10 * scale / 0.45), org_y),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)
        return frame

    def truth(self, index: int, partial: bool = False) -> list[TruthFace]:
        """The faces wholly inside frame ``index``, left to right.

        Parameters
        ----------
        index
            Frame index, ``>= 0``.
        partial
            Also list faces cut by the frame's edge while people walk in or out, when at least
            :data:`MIN_VISIBLE` of the face box is inside; their boxes are clipped to the frame and
            their ``visible`` is below 1.  MTCNN finds such faces down to about 60 % visible, so a
            scorer should treat them as optional: neither a miss nor a false detection.
        """
        loop, f = self._locate(index)
        width, height = self.size
        out = []
        for part in self._active[f]:
            sprite = self._sprite(part, loop)
            x, y = self._place(part, sprite, f - part.start)
            fx, fy, fw, fh = sprite.face
            x0, y0, x1, y1 = round(x + fx), round(y + fy), round(x + fx + fw), round(y + fy + fh)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            visible = (cx1 - cx0) * (cy1 - cy0) / ((x1 - x0) * (y1 - y0))
            if visible >= 1.0 or (partial and visible >= MIN_VISIBLE):
                box = (cx0, cy0, cx1 - cx0, cy1 - cy0)
                out.append(TruthFace(self._roles[part.role].identity, box, round(visible, 3)))
        out.sort(key=lambda t: t.box[0])
        return out

    def __repr__(self) -> str:
        return (
            f"DemoScene(size={self.size}, fps={self.fps}, period={self._period}, "
            f"people={[r.identity for r in self._roles]})"
        )

    # -------------------------------------------------------------------------------------- internals
    def _locate(self, index: int) -> tuple[int, int]:
        index = int(index)
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}.")
        loop, f = divmod(index, self._period)
        return loop, f

    def _sprite(self, part: _Part, loop: int) -> _Sprite:
        role = self._roles[part.role]
        return role.sprites[(loop * role.appearances + part.appearance) % len(role.sprites)]

    def _place(self, part: _Part, sprite: _Sprite, t: int) -> tuple[int, int]:
        """Top-left corner of ``sprite`` at frame ``t`` of ``part``."""
        width = self.size[0]
        cx, cy = sprite.face_center
        w = sprite.alpha.shape[1]

        def offscreen(side: int) -> float:
            # Face-centre x at which the whole sprite is just outside the frame.
            return -(w - cx) - 1.0 if side < 0 else width + cx + 1.0

        if t < part.walk_in:
            u = t / part.walk_in
            p = 1.0 - (1.0 - u) ** 2  # slow down when reaching the gate
            x = offscreen(part.side_in) + (part.slot_x - offscreen(part.side_in)) * p
            y = part.face_y - part.bob * abs(math.sin(math.pi * t / part.step)) * (1.0 - p)
        elif t < part.walk_in + part.stand:
            s = (t - part.walk_in) / part.stand
            x = part.slot_x + part.sway * math.sin(math.pi * part.sway_half_cycles * s)
            y = part.face_y + 0.25 * part.sway * math.sin(2 * math.pi * s)
        else:
            tt = t - part.walk_in - part.stand
            u = (tt + 1) / part.walk_out
            p = u * u  # start slowly
            x = part.slot_x + (offscreen(part.side_out) - part.slot_x) * p
            y = part.face_y - part.bob * abs(math.sin(math.pi * tt / part.step)) * p
        return round(x - cx), round(y - cy)


# ------------------------------------------------------------------------------------------- assembly
def _scale_of(size: tuple[int, int]) -> float:
    return min(size[0] / REFERENCE_SIZE[0], size[1] / REFERENCE_SIZE[1])


def _assemble(
    specs: Sequence[tuple[str, Sequence[tuple[str, np.ndarray, Box]]]],
    groups: Sequence[Sequence[int]],
    size: tuple[int, int],
    seed: int,
    fps: float,
    probe: Callable[[np.ndarray], list[Detection]] | None = None,
    progress: Callable[[], None] | None = None,
) -> DemoScene:
    """Lay out the script, then cut the sprites at the sizes the layout needs.

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
    return DemoScene(roles, parts, period, background, fps)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


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
            and _iou(tuple(float(v) for v in found[0].box), expected) >= PROBE_IOU  # type: ignore[arg-type]
        ):
            return False
        confidences.append(found[0].confidence)
    # A face the detector is only just sure of somewhere is missed somewhere else on the way.
    return float(np.median(confidences)) >= PROBE_MEDIAN_CONFIDENCE


def _interleave(lists: Sequence[Sequence[Path]]) -> list[Path]:
    out: list[Path] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise AssetError(f"The demo photo folder {folder} is missing; delete the seed cache and run again.")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))


def _single_face(faces: Sequence[Detection]) -> Detection | None:
    """The photo's face if it shows exactly one, clear and large enough; else None.

    A second face would end up partly inside the crop and be detected without a truth box.
    """
    if len(faces) != 1:
        return None
    face = faces[0]
    if face.confidence < MIN_CONFIDENCE or min(face.box[2], face.box[3]) < MIN_FACE_PX:
        return None
    return face


class _FaceBoxes:
    """A detector whose answers are cached by the image's content, so later starts need no detector.

    The cache (``cache_dir()/demo/faces.json``) maps the SHA-256 of an image's pixels to the faces
    found in it; it holds the demo photos and the sprite probes (see :func:`_assemble`).
    """

    def __init__(self, detector: Detector | None, use_cache: bool) -> None:
        from core.assets import cache_dir

        if detector is None:
            from core.vision.detector import MtcnnDetector

            detector = MtcnnDetector()  # loads its networks on first use only
        self.path = cache_dir() / "demo" / "faces.json"
        self._detector = detector
        # Answers depend on the detector and its settings: a detector that ignores small faces must
        # not reuse another's answers.
        self._tag = ",".join(
            [type(detector).__name__]
            + [f"{name}={getattr(detector, name, None)}" for name in ("min_face_size", "min_confidence", "max_side")]
        )
        self._use_cache = use_cache
        self._entries: dict[str, list[list[float]]] = {}
        self._dirty = False
        if use_cache and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == _CACHE_VERSION and isinstance(data.get("faces"), dict):
                    self._entries = data["faces"]
            except (OSError, ValueError, AttributeError) as exc:
                log.warning("demo scene: ignoring unreadable face cache %s (%s)", self.path, exc)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces in ``image`` (``uint8`` RGB), from the cache or the detector."""
        digest = hashlib.sha256(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).data)
        key = f"{self._tag}:{digest.hexdigest()}"
        cached = self._entries.get(key) if self._use_cache else None
        if cached is not None:
            try:
                return [
                    Detection(
                        (int(r[0]), int(r[1]), int(r[2]), int(r[3])),
                        float(r[4]),
                        tuple((float(r[5 + 2 * k]), float(r[6 + 2 * k])) for k in range(5)),  # type: ignore[arg-type]
                    )
                    for r in cached
                ]
            except (IndexError, TypeError, ValueError):
                log.warning("demo scene: ignoring a malformed face cache entry")
        faces = self._detector.detect(image)
        self._entries[key] = [
            [*d.box, d.confidence, *(c for point in d.landmarks for c in point)] for d in faces
        ]
        self._dirty = True
        return faces

    def save(self) -> None:
        if not (self._use_cache and self._dirty):
            return
        tmp = None
        try:
            # Other processes (a test run, the console) may have added entries since we read the file.
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == _CACHE_VERSION and isinstance(data.get("faces"), dict):
                    self._entries = {**data["faces"], **self._entries}
            except (OSError, ValueError, AttributeError):
                pass
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".faces-", suffix=".json", dir=self.path.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": _CACHE_VERSION, "faces": self._entries}, fh)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError as exc:  # a read-only cache only costs detection time on the next start
            log.warning("demo scene: could not write the face cache %s (%s)", self.path, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- sprites
def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _make_sprite(
    name: str,
    image: np.ndarray,
    box: Box,
    face_h: float,
    face_y: float,
    frame_h: int,
    scale: float,
    colour: int,
) -> _Sprite:
    """Cut a head-and-shoulders sprite whose face is ``face_h`` pixels tall, with a torso below it.

    The torso reaches the bottom of the frame when the face centre is at ``face_y``.
    """
    import cv2

    x, y, w, h = (float(v) for v in box)
    ih, iw = image.shape[:2]
    if x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
        raise FaceError(f"{name}: the face box {box} lies outside the {iw}×{ih} photo.")
    k = face_h / h
    resized = cv2.resize(
        image,
        (max(1, round(iw * k)), max(1, round(ih * k))),
        interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC,
    )
    rh, rw = resized.shape[:2]
    kx, ky = rw / iw, rh / ih  # the exact factors after rounding the size
    fx, fy, fw, fh = x * kx, y * ky, w * kx, h * ky
    # The crop, in resized-photo pixels (integers so the face box maps exactly).
    cx0 = math.floor(fx - CROP_SIDE * fw)
    cy0 = math.floor(fy - CROP_TOP * fh)
    cx1 = math.ceil(fx + fw + CROP_SIDE * fw)
    cy1 = math.ceil(fy + fh + CROP_BOTTOM * fh)
    pad = max(0, -cx0, -cy0, cx1 - rw, cy1 - rh)
    padded = cv2.copyMakeBorder(resized, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else resized
    photo = padded[cy0 + pad: cy1 + pad, cx0 + pad: cx1 + pad].astype(np.float32)
    ph, pw = photo.shape[:2]
    # Face box relative to the crop.
    face_x, face_y0 = fx - cx0, fy - cy0

    # Photo alpha: a feathered ellipse inscribed in the crop, faded out where the crop left the photo.
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    r = np.sqrt(((xx + 0.5 - pw / 2) / (pw / 2)) ** 2 + ((yy + 0.5 - ph / 2) / (ph / 2)) ** 2)
    a_photo = 1.0 - _smoothstep(FEATHER_FROM, 1.0, r)
    feather = max(2.0, 6.0 * scale)
    sx, sy = xx + cx0 + 0.5, yy + cy0 + 0.5  # pixel centres in resized-photo coordinates
    inside = np.minimum(np.minimum(sx, rw - sx), np.minimum(sy, rh - sy))
    a_photo *= _smoothstep(0.0, feather, inside)
    # Below the chin the photo's own clothes fade into the drawn jacket.
    chin = face_y0 + fh
    a_photo *= 1.0 - _smoothstep(chin + 0.25 * fh, chin + 0.75 * fh, yy + 0.5)

    # Canvas: wide enough for the torso, tall enough to reach the frame bottom (plus the walking bob).
    ref_w = 0.78 * face_h  # torso proportions follow the role's face size, not the photo's box
    torso_half = TORSO_HALF * 1.05 * ref_w
    centre_x = face_x + fw / 2
    left = math.floor(min(0.0, centre_x - torso_half - 2))
    right = math.ceil(max(float(pw), centre_x + torso_half + 2))
    face_centre_y = face_y0 + fh / 2
    bottom = math.ceil(max(float(ph), frame_h - face_y + face_centre_y + 8 * scale + 2))
    cw, ch = right - left, bottom
    ox = -left  # photo crop's x in the canvas
    centre_x += ox
    face_x += ox

    torso_rgb, torso_a = _torso(cw, ch, centre_x, face_y0, fh, ref_w, colour, image, box)
    under_a = torso_a
    a_full = np.zeros((ch, cw), np.float32)
    a_full[0:ph, ox: ox + pw] = a_photo
    photo_full = np.zeros((ch, cw, 3), np.float32)
    photo_full[0:ph, ox: ox + pw] = photo
    # "Photo over torso", un-premultiplied so the frame blend is a single weighted sum.
    alpha = a_full + under_a * (1.0 - a_full)
    premult = photo_full * a_full[..., None] + torso_rgb * (under_a * (1.0 - a_full))[..., None]
    rgb = np.where(alpha[..., None] > 1e-4, premult / np.maximum(alpha, 1e-4)[..., None], 0.0)
    rgb_u8 = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    alpha = np.where(alpha < 1.0 / 512, 0.0, alpha).astype(np.float32)
    # Trim transparent margins so every frame blends as few pixels as possible.
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    rgb_u8 = np.ascontiguousarray(rgb_u8[r0: rows[-1] + 1, c0: cols[-1] + 1])
    alpha = np.ascontiguousarray(alpha[r0: rows[-1] + 1, c0: cols[-1] + 1])
    return _Sprite(rgb_u8, alpha, np.ascontiguousarray(1.0 - alpha), (face_x - c0, face_y0 - r0, fw, fh), name)


def _torso(
    cw: int,
    ch: int,
    centre_x: float,
    face_top: float,
    face_h: float,
    ref_w: float,
    colour: int,
    image: np.ndarray,
    box: Box,
) -> tuple[np.ndarray, np.ndarray]:
    """A neck and a work jacket (or a hi-vis vest over one) below the face, as float RGB and alpha."""
    import cv2

    ss = 4  # supersampling for smooth edges
    cx = centre_x
    top = face_top + TORSO_TOP * face_h  # base of the neck
    half = TORSO_HALF * ref_w  # half the shoulder width
    neck_w = 0.42 * ref_w
    # Sloping shoulders, then slightly widening sides down to the bottom of the canvas.
    outline = np.array(
        [
            (cx - neck_w, top),
            (cx + neck_w, top),
            (cx + 0.85 * half, top + 0.12 * face_h),
            (cx + half, top + 0.35 * face_h),
            (cx + 1.05 * half, ch + 1.0),
            (cx - 1.05 * half, ch + 1.0),
            (cx - half, top + 0.35 * face_h),
            (cx - 0.85 * half, top + 0.12 * face_h),
        ]
    )
    mask = np.zeros((ch * ss, cw * ss), np.uint8)
    cv2.fillPoly(mask, [np.round(outline * ss).astype(np.int32)], 255, cv2.LINE_AA)
    neck = np.zeros_like(mask)
    cv2.rectangle(neck, (round((cx - 0.3 * ref_w) * ss), round((face_top + 0.75 * face_h) * ss)),
                  (round((cx + 0.3 * ref_w) * ss), round((top + 0.2 * face_h) * ss)), 255, -1)
    a_torso = cv2.resize(mask, (cw, ch), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    a_neck = cv2.resize(neck, (cw, ch), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    # Blurring and re-thresholding rounds the shoulders' corners.
    a_torso = np.clip((cv2.GaussianBlur(a_torso, (0, 0), 0.06 * face_h) - 0.375) * 8.0, 0.0, 1.0)

    # Skin tone for the neck: the median of the face's central part, a little shaded.
    x, y, w, h = box
    ih, iw = image.shape[:2]
    core = image[max(0, y + h // 3): min(ih, y + 2 * h // 3), max(0, x + w // 3): min(iw, x + 2 * w // 3)]
    skin = np.median(core.reshape(-1, 3), axis=0) * 0.75 if core.size else np.array([150.0, 115.0, 95.0])

    dx = (np.arange(cw, dtype=np.float32) + 0.5 - cx) / half
    shade_x = 0.65 + 0.35 * np.sqrt(np.clip(1.0 - 0.8 * dx * dx, 0.0, 1.0))  # a rounded body, lit from the front
    dy = (np.arange(ch, dtype=np.float32) + 0.5 - top) / max(face_h, 1.0)
    shade_y = np.clip(1.0 - 0.1 * dy, 0.7, 1.0)
    shade = shade_x[None, :, None] * shade_y[:, None, None]
    if colour in _HI_VIS:
        jacket = np.broadcast_to(np.asarray(_TORSO_COLOURS[1], np.float32), (ch, cw, 3)) * shade
        vest = np.abs(dx) < 0.62
        vest_rgb = np.asarray(_TORSO_COLOURS[colour], np.float32) * shade[:, vest]
        for band in (0.7, 1.15):  # reflective stripes
            rows = (dy >= band) & (dy < band + 0.12)
            vest_rgb[rows] = np.array([205.0, 208.0, 210.0], np.float32) * shade_x[vest][None, :, None]
        jacket[:, vest] = vest_rgb
    else:
        jacket = np.broadcast_to(np.asarray(_TORSO_COLOURS[colour], np.float32), (ch, cw, 3)) * shade
        jacket[:, np.abs(dx) < 0.02] *= 0.55  # the zip
    # A darker collar opening below the chin.
    collar = (np.abs(dx)[None, :] < 0.28 * np.clip(1.0 - dy[:, None] / 0.45, 0.0, 1.0)) & (dy[:, None] >= 0)
    jacket[collar] *= 0.55
    neck_rgb = np.broadcast_to(skin.astype(np.float32), (ch, cw, 3))
    # Jacket over neck.
    alpha = a_torso + a_neck * (1.0 - a_torso)
    premult = jacket * a_torso[..., None] + neck_rgb * (a_neck * (1.0 - a_torso))[..., None]
    rgb = np.where(alpha[..., None] > 1e-4, premult / np.maximum(alpha, 1e-4)[..., None], 0.0)
    return rgb.astype(np.float32), alpha


def _blend(frame: np.ndarray, sprite: _Sprite, x: int, y: int) -> None:
    """Alpha-blend ``sprite`` into ``frame`` with its top-left corner at ``(x, y)``, clipped."""
    import cv2

    fh, fw = frame.shape[:2]
    sh, sw = sprite.alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, fw), min(y + sh, fh)
    if x0 >= x1 or y0 >= y1:
        return
    sl = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    region = frame[y0:y1, x0:x1]
    region[...] = cv2.blendLinear(sprite.rgb[sl], region, sprite.alpha[sl], sprite.inv_alpha[sl])


# ------------------------------------------------------------------------------------------ background
def _draw_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A plant gate seen from the guard's camera: wall, corridor opening, floor, gate frame, sign."""
    import cv2

    W, H = width, height
    s = _scale_of((W, H))
    img = np.zeros((H, W, 3), np.float32)
    ys = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None, None]
    horizon = 0.64
    wall = np.array([158, 163, 168], np.float32) * (1.0 - 0.18 * ys) + np.array([0, 2, 6], np.float32)
    img[:] = wall
    # Wall panels.
    for px in np.arange(0.06, 1.0, 0.11):
        c = round(px * W)
        img[: round(horizon * H), max(0, c - 1): c + 1] *= 0.88
    # Ceiling strip and lights.
    img[: round(0.05 * H)] = np.array([196, 198, 194], np.float32)
    for lx in (0.22, 0.5, 0.78):
        x0, x1 = round((lx - 0.07) * W), round((lx + 0.07) * W)
        img[round(0.012 * H): round(0.035 * H), x0:x1] = np.array([248, 248, 240], np.float32)
    # The corridor opening behind the gate: darker, with its own floor.
    ox0, ox1, oy0, oy1 = round(0.33 * W), round(0.67 * W), round(0.17 * H), round(horizon * H)
    depth = np.linspace(0.0, 1.0, oy1 - oy0, dtype=np.float32)[:, None, None]
    img[oy0:oy1, ox0:ox1] = np.array([92, 98, 106], np.float32) * (0.85 + 0.15 * depth)
    img[round(0.52 * H): oy1, ox0:ox1] = np.array([78, 76, 72], np.float32)
    cv2.rectangle(img, (ox0, oy0), (ox1, oy1), (70, 72, 76), max(1, round(3 * s)))
    # Floor with perspective joints towards a vanishing point.
    fy0 = round(horizon * H)
    fl = np.linspace(0.0, 1.0, H - fy0, dtype=np.float32)[:, None, None]
    img[fy0:] = np.array([112, 108, 102], np.float32) * (1.0 - 0.3 * fl)
    vx, vy = 0.5 * W, 0.40 * H
    for bx in np.linspace(-0.6, 1.6, 12):
        x_bottom = bx * W
        t = (fy0 - vy) / (H - vy)
        cv2.line(img, (round(vx + (x_bottom - vx) * t), fy0), (round(x_bottom), H), (88, 85, 80), max(1, round(s)),
                 cv2.LINE_AA)
    for fy in (0.70, 0.78, 0.89):
        cv2.line(img, (0, round(fy * H)), (W, round(fy * H)), (90, 87, 82), max(1, round(s)), cv2.LINE_AA)
    # Yellow/black safety stripe on the floor at the gate line.
    sy0, sy1 = round(0.80 * H), round(0.84 * H)
    xx = np.arange(W, dtype=np.float32)[None, :]
    yy = np.arange(sy0, sy1, dtype=np.float32)[:, None]
    stripes = ((xx + yy) // max(8.0, 16 * s)) % 2 == 0
    img[sy0:sy1][stripes] = np.array([222, 186, 30], np.float32)
    img[sy0:sy1][~stripes] = np.array([30, 30, 30], np.float32)
    # The gate frame: two steel posts and a beam with a sign.
    post = np.array([122, 128, 134], np.float32)
    for px0, px1 in ((0.07, 0.12), (0.88, 0.93)):
        x0, x1 = round(px0 * W), round(px1 * W)
        img[round(0.10 * H): round(0.92 * H), x0:x1] = post
        img[round(0.10 * H): round(0.92 * H), x0: x0 + max(1, round(2 * s))] = post * 1.25
        img[round(0.10 * H): round(0.92 * H), x1 - max(1, round(2 * s)): x1] = post * 0.7
    img[round(0.08 * H): round(0.13 * H), round(0.07 * W): round(0.93 * W)] = post * 0.95
    sx0, sx1, sy0, sy1 = round(0.36 * W), round(0.64 * W), round(0.085 * H), round(0.125 * H)
    img[sy0:sy1, sx0:sx1] = np.array([24, 96, 58], np.float32)
    # Badge reader on the right post.
    rx0, rx1 = round(0.895 * W), round(0.925 * W)
    img[round(0.50 * H): round(0.58 * H), rx0:rx1] = np.array([28, 30, 34], np.float32)
    led = (round(0.91 * W), round(0.515 * H))
    cv2.circle(img, led, max(1, round(2 * s)), (60, 230, 90), -1, cv2.LINE_AA)
    # Static sensor texture and a slight lens vignette.
    noise = rng.normal(0.0, 3.0, (H, W)).astype(np.float32)
    img += cv2.GaussianBlur(noise, (3, 3), 0)[..., None]
    yy2, xx2 = np.mgrid[0:H, 0:W].astype(np.float32)
    rr = ((xx2 - W / 2) / (W / 2)) ** 2 + ((yy2 - H / 2) / (H / 2)) ** 2
    img *= (1.0 - 0.12 * rr)[..., None]
    out = np.ascontiguousarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    font_scale = 0.42 * s
    text = "GATE 2  AUTHORISED STAFF"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    cv2.putText(out, text, ((sx0 + sx1 - tw) // 2, (sy0 + sy1 + th) // 2), cv2.FONT_HERSHEY_SIMPLEX,
                font_scale, (235, 240, 235), 1, cv2.LINE_AA)
    return out
