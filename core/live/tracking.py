"""Face tracks on live video: one person crossing the gate is one track, one decision, one event.

Detection and recognition cost far more than a frame interval, so they run on some frames only
(:mod:`core.live.monitor` runs them in their own thread on the newest frame).  Between them,
:class:`Tracker` keeps every face's box up to date by optical flow (:class:`FlowShifter`, pyramidal
Lucas-Kanade on a small grey copy of each frame), and merges each recognition pass into its tracks
by overlap (IoU).

Naming a track
--------------
Every recognition pass adds an *observation* to the face's track: the open-set decision (a name or
unknown), the three models' probabilities, the gallery distance, and a weight from the face's size,
the detector's confidence and how frontal it is.  A track stays **checking** until its last
``votes_needed`` observations agree (or its last ``strong_votes_needed`` when each of them is clear-cut:
every model sure of the same person well inside the threshold, or a face far from everyone enrolled)
*and* that outcome holds at least ``min_share`` of the weighted votes in the track's window; it is then **named** (an enrolled person) or **unknown**.  A track that
keeps disagreeing with itself is declared unknown after ``give_up_after`` observations: a security
product never names someone on inconsistent evidence.

A decided track keeps being observed.  If ``votes_needed`` consecutive observations then agree on
another outcome (two people swapped boxes, or the first decision was wrong) the track is decided
again and a new decision is reported.  A track that leaves before it was decided is reported as
``undecided`` if it was observed at least ``min_observations_to_report`` times (default 2), so that
every face that passed is on record; a single glimpse (in practice a face crossing the frame's edge)
is only counted.

Everything here runs in one thread (the monitor's overlay thread); only :meth:`Tracker.snapshot`
output (frozen :class:`TrackView` objects) crosses threads.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from core.types import UNKNOWN, Box, FaceResult, Point, iou

__all__ = [
    "FlowShifter",
    "Observation",
    "TrackDecision",
    "TrackState",
    "TrackView",
    "Tracker",
    "TrackerOptions",
    "iou",
    "is_strong",
    "observation_weight",
]


class TrackState(str, Enum):
    """Where a track stands."""

    CHECKING = "checking"
    NAMED = "named"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TrackerOptions:
    """How tracks are matched, named and ended.

    Attributes
    ----------
    iou_match
        Smallest overlap between a track's box and a new detection for them to be the same face.
    lost_after_s
        A track that no recognition pass has seen for this long has left; it ends.
    votes_needed
        Consecutive agreeing observations before a track is named or called unknown.
    min_share
        Share of the weighted votes in the window that outcome must also hold.
    window
        Observations kept per track for the vote and the displayed figures.
    give_up_after
        Observations without a decision after which the track is declared unknown.
    strong_votes_needed
        Consecutive agreeing observations that suffice when every one of them is clear-cut
        (:func:`is_strong`); ``votes_needed`` if that is fewer.
    min_observations_to_report
        A track that leaves undecided is reported only if it was observed at least this often;
        fewer is a glimpse (usually a face crossing the frame's edge), counted in
        :attr:`Tracker.glimpses` but not recorded.
    """

    iou_match: float = 0.3
    lost_after_s: float = 1.0
    votes_needed: int = 3
    min_share: float = 0.6
    window: int = 12
    give_up_after: int = 10
    min_observations_to_report: int = 2
    strong_votes_needed: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_match <= 1.0:
            raise ValueError("iou_match must lie in (0, 1].")
        if self.votes_needed < 1 or self.window < self.votes_needed:
            raise ValueError("votes_needed must be at least 1 and no larger than window.")
        if self.strong_votes_needed < 1:
            raise ValueError("strong_votes_needed must be at least 1.")
        if self.give_up_after < self.votes_needed:
            raise ValueError("give_up_after must be at least votes_needed.")
        if not 0.5 <= self.min_share <= 1.0:
            raise ValueError("min_share must lie between 0.5 and 1.")
        if self.lost_after_s <= 0:
            raise ValueError("lost_after_s must be positive.")


@dataclass(frozen=True)
class Observation:
    """One recognition pass's view of one face."""

    frame_index: int
    captured: float
    result: FaceResult
    weight: float
    thumbnail: np.ndarray | None = field(default=None, compare=False, repr=False)
    partial: bool = False
    """The face is cut by the frame's edge: it moves the track but does not vote."""
    strong: bool = False
    """Clear-cut evidence (see :func:`is_strong`): fewer such votes are needed."""

    @property
    def outcome(self) -> str:
        """The identity this observation votes for: an enrolled id, or :data:`UNKNOWN`."""
        return self.result.decision.identity if self.result.decision.accepted else UNKNOWN


@dataclass(frozen=True)
class TrackView:
    """What a track looks like now: drawn on the overlay, shown in the side panel.

    ``models`` maps each model to ``(identity, probability)``: its favourite person over the
    track's window, with the mean probability it gave them.  ``distance`` is the median gallery
    distance of the window's observations of the track's identity (or of all of them while
    checking).  Times are ``time.monotonic()`` seconds of the frames concerned.
    """

    id: int
    camera: str
    box: Box
    landmarks: tuple[Point, ...]
    state: TrackState
    identity: str
    reason: str
    models: dict[str, tuple[str, float]] = field(hash=False)
    distance: float
    threshold: float
    observations: int
    first_seen: float
    last_seen: float
    decided_at: float | None
    frames_since_detection: int
    gallery_only: bool = False
    margin: float = math.nan
    enrolled: float = math.nan

    #: ``margin``: median of how much further the second-nearest enrolled person is than the nearest
    #: (the gate's own margin), over the same observations as ``distance``; NaN before any.
    #: ``enrolled``: median of the gate's probability that the face is an enrolled person at all
    #: (:attr:`core.types.FaceResult.enrolled`), over the same observations; NaN before any.

    @property
    def label(self) -> str:
        """``checking…``, ``unknown`` or the person's id."""
        if self.state is TrackState.CHECKING:
            return "checking…"
        return UNKNOWN if self.state is TrackState.UNKNOWN else self.identity


@dataclass(frozen=True)
class TrackDecision:
    """A decision to record: a track was named, called unknown, changed its mind, or left undecided.

    ``kind`` is ``"decided"``, ``"changed"`` or ``"undecided"``; ``previous`` is the identity the
    track had before a change.  ``latency`` is seconds from the track's first frame to the frame
    that settled it.  ``thumbnail`` is an RGB crop of the face from the track's best observation.
    """

    kind: str
    track: TrackView
    previous: str | None
    latency: float | None
    thumbnail: np.ndarray | None = field(default=None, compare=False, repr=False)
    model_version: str = ""


def observation_weight(result: FaceResult, reference_size: int = 112) -> float:
    """How much one observation counts: bigger, surer, more frontal faces count more.

    ``min(1, size / reference_size) * confidence * frontal``, where ``frontal`` falls from 1 for a
    face looking at the camera to 0.25 for one turned well away (yaw from the landmarks).  Never 0,
    so that every observation still counts a little.
    """
    from core.vision.quality import pose

    det = result.detection
    size = min(1.0, det.size / float(reference_size))
    yaw, _ = pose(det)
    frontal = 0.25 if not math.isfinite(yaw) else max(0.25, 1.0 - 2.0 * abs(yaw))
    return max(1e-3, size * float(det.confidence) * frontal)


def is_strong(result: FaceResult, min_probability: float = 0.8, margin: float = 0.2) -> bool:
    """Whether one observation is clear-cut evidence on its own.

    A named face: accepted, every model names the same person with at least ``min_probability``, and
    the distance is at most ``(1 - margin)`` of the threshold.  An unknown face: its distance is at
    least ``(1 + margin)`` times the threshold (far from everyone enrolled).  Anything in between is
    ordinary evidence and needs the full ``votes_needed``.
    """
    d = result.decision
    if not (math.isfinite(d.distance) and math.isfinite(d.threshold)):
        return False
    if d.accepted:
        return (d.distance <= (1 - margin) * d.threshold and bool(result.votes)
                and all(v.identity == d.identity and v.probability >= min_probability for v in result.votes))
    return d.distance >= (1 + margin) * d.threshold


def _match_score(a: Box, b: Box, min_iou: float) -> float:
    """How well a detection matches a track's box; 0 for no match.

    Boxes match when their IoU reaches ``min_iou``, or when they are of similar size and their centres
    lie within three quarters of a face of each other (a fast walker between two recognition passes).  The score
    orders candidate pairs: the IoU, never below a small positive floor for a centre match.
    """
    overlap = iou(a, b)
    if overlap >= min_iou:
        return overlap
    size_a, size_b = max(a[2], a[3]), max(b[2], b[3])
    if min(size_a, size_b) <= 0 or max(size_a, size_b) > 1.5 * min(size_a, size_b):
        return 0.0
    centre = math.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2)
    reach = 0.75 * max(size_a, size_b)
    return max(overlap, 1e-3 * (1.0 - centre / reach)) if centre < reach else 0.0


def _carry(detection: Any, then: Box, now: Box) -> tuple[Box, tuple[Point, ...]]:
    """A detection made when the track's box was ``then``, carried to where the track is ``now``."""
    dx = now[0] + now[2] / 2 - then[0] - then[2] / 2
    dy = now[1] + now[3] / 2 - then[1] - then[3] / 2
    scale = max(now[2], 1) / max(then[2], 1)
    x, y, w, h = detection.box
    cx, cy = x + w / 2, y + h / 2
    box = (round(cx + dx - w * scale / 2), round(cy + dy - h * scale / 2), round(w * scale), round(h * scale))
    marks = tuple((cx + dx + (px - cx) * scale, cy + dy + (py - cy) * scale) for px, py in detection.landmarks)
    return box, marks


def _inside_share(box: Box, frame_size: tuple[int, int]) -> float:
    x, y, w, h = box
    width, height = frame_size
    ix = max(0, min(x + w, width) - max(x, 0))
    iy = max(0, min(y + h, height) - max(y, 0))
    return ix * iy / max(1, w * h)


def _shift_box(box: Box, dx: float, dy: float, scale: float) -> Box:
    x, y, w, h = box
    cx, cy = x + w / 2 + dx, y + h / 2 + dy
    nw, nh = w * scale, h * scale
    return (round(cx - nw / 2), round(cy - nh / 2), max(1, round(nw)), max(1, round(nh)))


class FlowShifter:
    """Moves boxes from one frame to another by pyramidal Lucas-Kanade optical flow.

    Frames are reduced to a grey image ``width`` pixels wide (:meth:`prepare`); flow on that costs
    about a millisecond per face.  A box moves by the median displacement of a grid of points inside
    it and scales by the median change of their spread (at most ``max_scale`` per call); points
    that do not flow back to within ``max_error`` small pixels of where they started are ignored, and
    a box that keeps fewer than half of its points stays where it is.
    """

    def __init__(self, width: int = 320, grid: int = 5, max_error: float = 1.0, max_scale: float = 1.15) -> None:
        self.width = width
        self.grid = grid
        self.max_error = max_error
        self.max_scale = max_scale

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """A small grey copy of an RGB frame and its scale (small pixels per frame pixel)."""
        import cv2

        h, w = image.shape[:2]
        scale = min(1.0, self.width / float(w))
        small = image if scale >= 1.0 else cv2.resize(image, (round(w * scale), round(h * scale)),
                                                      interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), scale

    def shift(self, before: tuple[np.ndarray, float], after: tuple[np.ndarray, float],
              boxes: Sequence[Box]) -> list[tuple[float, float, float] | None]:
        """``(dx, dy, scale)`` in frame pixels for each box, or ``None`` where flow failed."""
        import cv2

        if not boxes:
            return []
        gray0, s = before
        gray1, s1 = after
        if gray0.shape != gray1.shape or abs(s - s1) > 1e-9:
            return [None] * len(boxes)
        points = []
        for x, y, w, h in boxes:
            # Inner 60 % of the box: the face, not the background at its corners.
            xs = np.linspace(x + 0.2 * w, x + 0.8 * w, self.grid)
            ys = np.linspace(y + 0.2 * h, y + 0.8 * h, self.grid)
            points.append(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))
        p0 = (np.concatenate(points) * s).astype(np.float32).reshape(-1, 1, 2)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
        flow: Any = cv2.calcOpticalFlowPyrLK
        p1, status, _ = flow(gray0, gray1, p0, None, winSize=(15, 15), maxLevel=3, criteria=criteria)
        # Forward-backward check: a point that does not flow back to where it started was lost
        # (the face left, or was covered); a box whose points are mostly lost stays where it is.
        back, status_back, _ = flow(gray1, gray0, p1, None, winSize=(15, 15), maxLevel=3, criteria=criteria)
        good = ((status[:, 0] == 1) & (status_back[:, 0] == 1)
                & (np.linalg.norm((back - p0)[:, 0], axis=1) < self.max_error))
        out: list[tuple[float, float, float] | None] = []
        n = self.grid * self.grid
        for i in range(len(boxes)):
            ok = good[i * n:(i + 1) * n]
            if ok.sum() < max(3, n // 2):
                out.append(None)
                continue
            a = p0[i * n:(i + 1) * n, 0][ok] / s
            b = p1[i * n:(i + 1) * n, 0][ok] / s
            d = np.median(b - a, axis=0)
            spread_a = np.linalg.norm(a - a.mean(axis=0), axis=1)
            spread_b = np.linalg.norm(b - b.mean(axis=0), axis=1)
            keep = spread_a > 1e-3
            scale = float(np.median(spread_b[keep] / spread_a[keep])) if keep.any() else 1.0
            out.append((float(d[0]), float(d[1]), min(self.max_scale, max(1.0 / self.max_scale, scale))))
        return out


class _Track:
    def __init__(self, track_id: int, camera: str, obs: Observation, box: Box, landmarks: tuple[Point, ...],
                 window: int) -> None:
        self.id = track_id
        self.camera = camera
        self.box = box
        self.landmarks = landmarks
        self.first_seen = obs.captured
        self.last_seen = obs.captured
        self.observations: deque[Observation] = deque(maxlen=window)
        self.total = 0
        self.state = TrackState.CHECKING
        self.identity = UNKNOWN
        self.reason = "checking"
        self.decided_at: float | None = None
        self.frames_since_detection = 0
        self.best: Observation | None = None
        # (frame index, box) of the last frames: a recognition pass is matched against where the
        # track was in *its* frame, so no optical flow is needed to tell who is who.
        self.history: deque[tuple[int, Box]] = deque(maxlen=128)
        # Pixels per frame between the last two detections: moves the box when optical flow
        # loses the face (a face entering across the frame's edge has half its points outside).
        self.velocity = (0.0, 0.0)
        self.last_detection: tuple[int, Box] | None = None

    def detected(self, frame_index: int, box: Box) -> None:
        last = self.last_detection
        if last is not None and frame_index > last[0]:
            frames = frame_index - last[0]
            self.velocity = ((box[0] + box[2] / 2 - last[1][0] - last[1][2] / 2) / frames,
                             (box[1] + box[3] / 2 - last[1][1] - last[1][3] / 2) / frames)
        if last is None or frame_index > last[0]:
            self.last_detection = (frame_index, box)

    def box_at(self, frame_index: int) -> Box | None:
        """The box in frame ``frame_index``, interpolated between recorded frames; ``None`` if unknown."""
        before: tuple[int, Box] | None = None
        for index, box in self.history:
            if index == frame_index:
                return box
            if index > frame_index:
                if before is None:
                    return None
                t = (frame_index - before[0]) / (index - before[0])
                return tuple(round(a + t * (b - a)) for a, b in zip(before[1], box))  # type: ignore[return-value]
            before = (index, box)
        return before[1] if before is not None else None

    def record(self, frame_index: int | None) -> None:
        if frame_index is None:
            return
        while self.history and self.history[-1][0] >= frame_index:
            self.history.pop()
        self.history.append((frame_index, self.box))


class Tracker:
    """Tracks of one camera's faces (see the module docstring).

    Parameters
    ----------
    camera
        Name put on every track.
    options
        Matching and voting rules.
    """

    def __init__(self, camera: str, options: TrackerOptions | None = None) -> None:
        self.camera = camera
        self.options = options or TrackerOptions()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self.glimpses = 0

    def __len__(self) -> int:
        return len(self._tracks)

    # -- motion between recognition passes ----------------------------------------------------

    def move(self, shifts: Sequence[tuple[float, float, float] | None], frame_index: int | None = None) -> None:
        """Apply per-track ``(dx, dy, scale)`` shifts, in the order of :meth:`boxes`, for frame ``frame_index``."""
        for track, shift in zip(self._tracks, shifts):
            track.frames_since_detection += 1
            if shift is None:
                vx, vy = track.velocity
                if track.frames_since_detection > 25 or (vx == 0.0 and vy == 0.0):
                    track.record(frame_index)
                    continue
                shift = (vx, vy, 1.0)
            dx, dy, scale = shift
            track.box = _shift_box(track.box, dx, dy, scale)
            cx, cy = track.box[0] + track.box[2] / 2, track.box[1] + track.box[3] / 2
            track.landmarks = tuple(
                (cx + (px - cx + dx) * scale, cy + (py - cy + dy) * scale) for px, py in track.landmarks)
            track.record(frame_index)

    def boxes(self) -> list[Box]:
        """Current boxes of the tracks (the order :meth:`move` expects)."""
        return [t.box for t in self._tracks]

    # -- recognition passes ---------------------------------------------------------------------

    def observe(self, observations: Sequence[tuple[Observation, Box, tuple[Point, ...]]],
                frame_index: int | None = None) -> list[TrackDecision]:
        """Merge one recognition pass into the tracks, in frame ``frame_index``.

        Each observation comes with an estimate of its face's box and landmarks in the current frame
        (its detection moved by optical flow), used for a face no track knows.  A face is matched to
        a track by comparing its detection with the track's box *in the pass's frame*
        (:attr:`Observation.frame_index`); the matched track then takes the detected box, carried
        forward by the track's own motion since that frame.

        Returns the decisions this pass settled (named, unknown, or changed).
        """
        opts = self.options
        pairs = []
        for i, (obs, estimate, _) in enumerate(observations):
            detected = obs.result.detection.box
            for j, track in enumerate(self._tracks):
                then = track.box_at(obs.frame_index)
                overlap = (_match_score(detected, then, opts.iou_match) if then is not None
                           else _match_score(estimate, track.box, opts.iou_match))
                if overlap > 0.0:
                    pairs.append((overlap, i, j))
        pairs.sort(reverse=True)
        matched_obs: dict[int, int] = {}
        used_tracks: set[int] = set()
        for _, i, j in pairs:
            if i in matched_obs or j in used_tracks:
                continue
            matched_obs[i] = j
            used_tracks.add(j)
        decisions = []
        for i, (obs, estimate, landmarks) in enumerate(observations):
            if i in matched_obs:
                track = self._tracks[matched_obs[i]]
                then = track.box_at(obs.frame_index)
                if then is not None and then != track.box:
                    track.box, track.landmarks = _carry(obs.result.detection, then, track.box)
                elif then is not None:
                    track.box, track.landmarks = obs.result.detection.box, obs.result.detection.landmarks
                else:
                    track.box, track.landmarks = estimate, landmarks
            else:
                track = _Track(self._next_id, self.camera, obs, estimate, landmarks, opts.window)
                self._next_id += 1
                self._tracks.append(track)
                if frame_index is not None and frame_index != obs.frame_index:
                    track.history.append((obs.frame_index, obs.result.detection.box))
            track.record(frame_index)
            track.detected(obs.frame_index, obs.result.detection.box)
            decision = self._add(track, obs)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _add(self, track: _Track, obs: Observation) -> TrackDecision | None:
        opts = self.options
        track.last_seen = max(track.last_seen, obs.captured)
        track.frames_since_detection = 0
        if obs.partial:
            return None
        track.observations.append(obs)
        track.total += 1
        if track.best is None or obs.weight >= track.best.weight:
            track.best = obs
        recent = list(track.observations)[-opts.votes_needed:]
        outcomes = {o.outcome for o in recent}
        consistent = len(recent) == opts.votes_needed and len(outcomes) == 1
        fast = min(opts.strong_votes_needed, opts.votes_needed)
        quick = list(track.observations)[-fast:]
        if (not consistent and len(quick) == fast and all(o.strong for o in quick)
                and len({o.outcome for o in quick}) == 1):
            recent, consistent = quick, True
        if track.state is TrackState.CHECKING:
            if consistent:
                outcome = recent[0].outcome
                share = self._share(track, outcome)
                if share >= opts.min_share:
                    kind = " clear-cut" if len(recent) < opts.votes_needed else ""
                    return self._decide(track, outcome, obs, "decided", None,
                                        f"{len(recent)} consistent{kind} frames, {share:.0%} of the votes")
            if track.total >= opts.give_up_after:
                summary = self._summary(track)
                return self._decide(track, UNKNOWN, obs, "decided", None,
                                    f"no consistent identity after {track.total} frames ({summary})")
            return None
        if consistent and recent[0].outcome != track.identity:
            previous = track.identity
            share = self._share(track, recent[0].outcome)
            return self._decide(track, recent[0].outcome, obs, "changed", previous,
                                f"changed from {previous}: {len(recent)} consistent frames, "
                                f"{share:.0%} of the votes")
        return None

    @staticmethod
    def _tally(track: _Track) -> dict[str, float]:
        total = sum(o.weight for o in track.observations)
        tally: dict[str, float] = {}
        for o in track.observations:
            tally[o.outcome] = tally.get(o.outcome, 0.0) + o.weight / total
        return tally

    def _share(self, track: _Track, outcome: str) -> float:
        return self._tally(track).get(outcome, 0.0)

    @classmethod
    def _summary(cls, track: _Track) -> str:
        """The three largest shares of the track's votes, e.g. ``"madonna 67%, unknown 33%"``."""
        tally = cls._tally(track)
        return ", ".join(f"{k} {v:.0%}" for k, v in sorted(tally.items(), key=lambda kv: -kv[1])[:3])

    def _decide(self, track: _Track, outcome: str, obs: Observation, kind: str, previous: str | None,
                why: str) -> TrackDecision:
        track.state = TrackState.UNKNOWN if outcome == UNKNOWN else TrackState.NAMED
        track.identity = outcome
        last = obs.result.decision
        track.reason = f"{why}; {last.reason}" if last.identity == outcome or outcome == UNKNOWN else why
        track.decided_at = obs.captured
        view = self._view(track)
        best = self._best_for(track, outcome)
        return TrackDecision(kind, view, previous, obs.captured - track.first_seen,
                             best.thumbnail if best is not None else None, obs.result.model_version)

    @staticmethod
    def _best_for(track: _Track, outcome: str) -> Observation | None:
        same = [o for o in track.observations if o.outcome == outcome]
        return max(same, key=lambda o: o.weight) if same else track.best

    # -- ending tracks ----------------------------------------------------------------------------

    def expire(self, now: float, frame_size: tuple[int, int] | None = None) -> list[TrackDecision]:
        """End tracks not seen for ``lost_after_s``, or (given the frame's ``(width, height)``) whose box
        has mostly left the frame; report those that left undecided."""
        out = []
        keep = []
        for track in self._tracks:
            inside = 1.0 if frame_size is None else _inside_share(track.box, frame_size)
            if now - track.last_seen <= self.options.lost_after_s and inside >= 0.3:
                keep.append(track)
                continue
            if track.state is TrackState.CHECKING and 0 < track.total < self.options.min_observations_to_report:
                self.glimpses += 1
            elif track.state is TrackState.CHECKING and track.total > 0:
                summary = self._summary(track)
                track.reason = f"left after {track.total} frame(s) before a decision ({summary})"
                best = track.best
                out.append(TrackDecision("undecided", self._view(track), None, None,
                                         best.thumbnail if best is not None else None,
                                         best.result.model_version if best is not None else ""))
        self._tracks = keep
        return out

    def clear(self) -> list[TrackDecision]:
        """End every track (the camera stopped); report those that were undecided."""
        return self.expire(math.inf)

    # -- views ------------------------------------------------------------------------------------

    def snapshot(self) -> tuple[TrackView, ...]:
        """Frozen views of all current tracks."""
        return tuple(self._view(t) for t in self._tracks)

    def _view(self, track: _Track) -> TrackView:
        window = list(track.observations)
        focus = [o for o in window if o.outcome == track.identity] if track.state is not TrackState.CHECKING else window
        focus = focus or window
        models: dict[str, tuple[str, float]] = {}
        for name in sorted({v.model for o in window for v in o.result.votes}):
            # Candidates: whoever this model favoured in the window (and the track's person).
            candidates = {v.identity for o in window for v in o.result.votes if v.model == name}
            if track.state is TrackState.NAMED:
                candidates.add(track.identity)
            means = {c: sum(float(o.result.probabilities.get(name, {}).get(c, 0.0)) for o in window) / len(window)
                     for c in candidates}
            models[name] = max(means.items(), key=lambda kv: (kv[1], kv[0]))
        distances = [o.result.decision.distance for o in focus]
        margins = [o.result.decision.margin for o in focus if math.isfinite(o.result.decision.margin)]
        enrolled = [o.result.enrolled for o in focus if o.result.enrolled is not None
                    and math.isfinite(o.result.enrolled)]
        last: Any = window[-1].result if window else None
        return TrackView(
            id=track.id, camera=track.camera, box=track.box, landmarks=track.landmarks, state=track.state,
            identity=track.identity if track.state is not TrackState.CHECKING else UNKNOWN,
            reason=track.reason, models=models,
            distance=float(np.median(distances)) if distances else math.nan,
            threshold=float(last.decision.threshold) if last is not None else math.nan,
            observations=track.total, first_seen=track.first_seen, last_seen=track.last_seen,
            decided_at=track.decided_at, frames_since_detection=track.frames_since_detection,
            gallery_only=bool(last is not None and "gallery only" in last.decision.reason
                              and track.state is TrackState.NAMED),
            margin=float(np.median(margins)) if margins else math.nan,
            enrolled=float(np.median(enrolled)) if enrolled else math.nan,
        )
