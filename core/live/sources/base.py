"""What every frame source hands out: frames, health states and snapshots, options, the protocol.

:class:`Frame` (one picture), :class:`SourceState` and :class:`SourceStatus` (health), :class:`SourceOptions`
(timeouts, backoff, pacing) and the :class:`FrameSource` protocol that the monitor and the session use.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

import numpy as np

from core.errors import CameraError


class SourceState(str, Enum):
    """Health of a frame source."""

    CONNECTING = "connecting"  #: opening the camera, stream or file
    LIVE = "live"  #: frames are arriving
    STALLED = "stalled"  #: frames stopped arriving (``retry_in`` set once a reconnect is scheduled)
    FAILED = "failed"  #: the last open attempt failed; retrying if ``retry_in`` is set
    ENDED = "ended"  #: a video file or folder played to its end
    STOPPED = "stopped"  #: not running (stop() was called, or start() not yet)


@dataclass(frozen=True)
class Frame:
    """One picture from a source.

    Attributes
    ----------
    camera
        Name of the source.
    index
        0, 1, 2, … per source: counts every frame read, taken or dropped; keeps counting across
        reconnects, so a gap between two frames a consumer got is the number of frames it missed.
    image
        ``uint8`` RGB ``(H, W, 3)``, read-only.
    captured
        ``time.monotonic()`` when the frame was read.
    wall_time
        ``time.time()`` when the frame was read (for logs and event records).
    """

    camera: str
    index: int
    image: np.ndarray = field(repr=False, compare=False)
    captured: float
    wall_time: float

    def age(self, now: float | None = None) -> float:
        """Seconds since the frame was read."""
        return (time.monotonic() if now is None else now) - self.captured


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source's health, safe to pass between threads.

    Attributes
    ----------
    camera, spec
        Name and spec of the source (passwords in URLs are masked).
    state
        Current :class:`SourceState`.
    fps
        Frames per second measured over the last ~2 s.
    frames
        Frames read since the source was created.
    dropped
        Frames overwritten before any consumer took them.
    reconnects
        Connection attempts after the first one.
    last_error
        The most recent problem in one sentence; kept after recovery so an operator can see why the
        source reconnected or skipped a picture.
    since
        Monotonic time of the last state change.
    last_frame_age
        Seconds since the newest frame was read, None before the first frame.
    retry_in
        Seconds to the next reconnect attempt while waiting for one, else None.
    at
        Monotonic time the snapshot was taken.
    """

    camera: str
    spec: str
    state: SourceState
    fps: float
    frames: int
    dropped: int
    reconnects: int
    last_error: str | None
    since: float
    last_frame_age: float | None
    retry_in: float | None
    at: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        """One human-readable status line.

        Examples: ``"cam1 live 24.8 fps, 0 reconnects"``,
        ``"cam2 stalled 3.1 s: no frame for 3.1 s (reconnecting in 1.0 s), 1 reconnect"``,
        ``"cam7 failed: camera 7 could not be opened (no such device, or it is in use) (retrying in
        4.0 s), 3 reconnects"``.
        """
        in_state = max(0.0, self.at - self.since)
        head = f"{self.camera} {self.state.value}"
        tail = f", {_plural(self.reconnects, 'reconnect')}"
        retry = f" (reconnecting in {self.retry_in:.1f} s)" if self.retry_in is not None else ""
        if self.state is SourceState.LIVE:
            return f"{head} {self.fps:.1f} fps{tail}"
        if self.state is SourceState.STALLED:
            quiet = self.last_frame_age if self.last_frame_age is not None else in_state
            reason = f"no frame for {quiet:.1f} s"
            if self.last_error and not self.last_error.startswith("no frame"):
                reason += f"; {self.last_error}"
            return f"{head} {quiet:.1f} s: {reason}{retry}{tail}"
        if self.state is SourceState.CONNECTING:
            return f"{head} {in_state:.1f} s{tail}"
        if self.state is SourceState.FAILED:
            reason = self.last_error or "could not be opened"
            retry = f" (retrying in {self.retry_in:.1f} s)" if self.retry_in is not None else " (not retrying)"
            return f"{head}: {reason}{retry}{tail}"
        if self.state is SourceState.ENDED:
            note = f"; {self.last_error}" if self.last_error else ""
            return f"{head} after {_plural(self.frames, 'frame')}{note}"
        return f"{head} after {_plural(self.frames, 'frame')}" if self.frames else head


@dataclass(frozen=True)
class SourceOptions:
    """How a source opens, reads, paces and recovers.

    Attributes
    ----------
    open_timeout_s, read_timeout_s
        Give up opening / waiting for the next frame after this long.  For network streams these are
        passed to FFmpeg; a watchdog abandons an open or read that still hangs a margin later.
    stall_after_s
        A live source that delivers no new frame for this long is reported ``stalled``.
    backoff_initial_s, backoff_max_s, jitter
        Reconnect delay: ``backoff_initial_s`` doubled after each failure, capped at ``backoff_max_s``,
        randomised by ±``jitter`` (a fraction) so many cameras do not reconnect in lock-step.
    fps
        Playback rate of video files, folders and rendered sources; None means the file's own rate,
        5 for folders, 25 for rendered sources.  Ignored for cameras and streams.
    loop
        Files and folders start again at the end instead of ending.
    realtime
        Files, folders and rendered sources are paced at ``fps``; False reads as fast as possible
        (benchmarks; consumers then see only the frames they keep up with).
    """

    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    stall_after_s: float = 2.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.2
    fps: float | None = None
    loop: bool = False
    realtime: bool = True

    def __post_init__(self) -> None:
        for name in ("open_timeout_s", "read_timeout_s", "stall_after_s", "backoff_initial_s"):
            if not getattr(self, name) > 0:
                raise CameraError(f"Source option {name} must be a positive number of seconds.")
        if not self.backoff_max_s >= self.backoff_initial_s:
            raise CameraError("Source option backoff_max_s must be at least backoff_initial_s.")
        if not 0.0 <= self.jitter < 1.0:
            raise CameraError("Source option jitter must be a fraction between 0 and 1.")
        if self.fps is not None and not self.fps > 0:
            raise CameraError("Source option fps must be a positive number of frames per second.")

    def backoff(self, failures: int, rng: random.Random | None = None) -> float:
        """Delay before the next attempt after ``failures`` consecutive failures (≥ 1)."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** max(0, failures - 1))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.backoff_max_s, base * (1.0 + spread)))


@runtime_checkable
class FrameSource(Protocol):
    """Anything that delivers frames with latest-frame semantics."""

    name: str

    def start(self) -> None:
        """Start reading in the background; returns at once (opening happens in the reader thread)."""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading; prompt and idempotent; the state becomes ``stopped``."""

    def latest(self, after: int = -1, max_age: float | None = None) -> Frame | None:
        """The newest frame if its index is > ``after`` and its age <= ``max_age``; never blocks."""

    def wait(self, after: int = -1, timeout: float = 1.0) -> Frame | None:
        """Block until a frame with index > ``after`` exists; None on timeout, stop or end."""

    def status(self) -> SourceStatus:
        """A snapshot of the source's health."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
