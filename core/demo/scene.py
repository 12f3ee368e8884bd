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
(:func:`core.demo.script._probe_ok`): a photo on which MTCNN would miss the face, or "find" a second
one on a hand or a ring once scaled up, is left out.  All detector answers are cached by the pixels' SHA-256 under
``cache_dir()/demo``, so only the first start at a given size and seed needs the detector.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.demo.photos import _FaceBoxes, _images_in, _interleave, _single_face
from core.demo.render import _blend, _scale_of, _Sprite
from core.demo.script import _assemble, _Part, _Role
from core.errors import AssetError
from core.types import UNKNOWN, Box, Detection
from core.vision.imageio import read_image

if TYPE_CHECKING:
    from core.vision.detector import Detector

log = logging.getLogger(__name__)

PERSONS = ("ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling")
# Faces with less of their box inside the frame are not reported by DemoScene.truth(partial=True).
MIN_VISIBLE = 0.4


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
            agrees with what the detector sees (see :func:`core.demo.script._probe_ok`).  Done once per
            size and seed, then cached: the first start at a new size or seed runs the detector about 120
            times (about a minute on two busy cores), later starts take 1–3 s.
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
        scene = DemoScene(*_assemble(specs, groups, size, seed, fps, probe=boxes.detect if verify else None,
                                     progress=step), fps)
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
        return DemoScene(*_assemble(specs, groups, size, seed, fps), fps)

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
