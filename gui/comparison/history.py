"""The live chart's data: each face's recent probabilities, flags and distances, in numpy ring buffers.

Plain Python (no Qt), so it can be tested and reasoned about on its own: the view feeds it every
frame (~25 a second) and reads ordered arrays from it at most ~10 times a second to redraw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.live.flags import flag_reasons
from core.live.tracking import TrackView

#: The three models, in the order of ``gui.theme.MODEL_ORDER`` (repeated so this module needs no Qt).
MODELS: tuple[str, ...] = ("svc", "stacker", "super_learner")


@dataclass(frozen=True)
class Series:
    """A history as ordered arrays (oldest first); ``t`` in seconds before the newest point (≤ 0).

    ``p`` is ``(3, n)``: each model's probability of its favourite person (NaN while the track has
    no vote yet); ``flagged`` marks the points at which :func:`core.live.flags.flag_reasons` flagged
    the track (the models disagreed, or the gate's call was a close one).
    """

    t: np.ndarray
    p: np.ndarray
    flagged: np.ndarray
    distance: np.ndarray
    threshold: np.ndarray

    def __len__(self) -> int:
        return int(self.t.size)


class TrackHistory:
    """The last ``capacity`` points of one track.

    Points in the same ``min_interval``-second slot of time are merged into one (its values
    replaced by the newest, its flag kept if any of them was flagged), so the buffer spans
    ``capacity × min_interval`` seconds (30 s by default) whatever the frame rate, and a flag that
    lasted a single frame is never lost.
    """

    def __init__(self, track_id: int, capacity: int = 300, min_interval: float = 0.1) -> None:
        if capacity < 2:
            raise ValueError("a history needs room for at least 2 points")
        self.track_id = track_id
        self.capacity = capacity
        self.min_interval = min_interval
        self._t = np.zeros(capacity, np.float64)
        self._p = np.full((len(MODELS), capacity), np.nan, np.float32)
        self._flag = np.zeros(capacity, bool)
        self._dist = np.full(capacity, np.nan, np.float32)
        self._thr = np.full(capacity, np.nan, np.float32)
        self._next = 0  # where the next point goes
        self._n = 0
        self.latest: TrackView | None = None
        self.reasons: tuple[str, ...] = ()
        self.last_time = -math.inf  # when the track was last seen
        self._bucket = 0
        self.flagged_points = 0  # points (after merging) on which the track was flagged, all time

    def __len__(self) -> int:
        return self._n

    def add(self, t: float, track: TrackView) -> tuple[str, ...]:
        """Record ``track`` as seen at monotonic time ``t``; return its flag reasons (empty: not flagged)."""
        reasons = flag_reasons(track)
        self.latest, self.reasons, self.last_time = track, reasons, t
        bucket = math.floor(t / self.min_interval)
        if self._n and bucket == self._bucket:
            i = (self._next - 1) % self.capacity  # merge into the newest point
            if reasons and not self._flag[i]:
                self.flagged_points += 1
            flagged = bool(self._flag[i]) or bool(reasons)
        else:
            i = self._next
            self._next = (i + 1) % self.capacity
            self._n = min(self._n + 1, self.capacity)
            self._t[i] = t
            self._bucket = bucket
            flagged = bool(reasons)
            self.flagged_points += flagged
        for row, name in enumerate(MODELS):
            vote = track.models.get(name)
            self._p[row, i] = vote[1] if vote is not None else np.nan
        self._flag[i] = flagged
        self._dist[i] = track.distance
        self._thr[i] = track.threshold
        return reasons

    def series(self) -> Series:
        """The points, oldest first, with times relative to the newest."""
        n = self._n
        order = (self._next - n + np.arange(n)) % self.capacity
        t = self._t[order]
        return Series(t - (t[-1] if n else 0.0), self._p[:, order], self._flag[order], self._dist[order],
                      self._thr[order])
