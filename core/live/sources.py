"""Camera and frame sources that survive disconnects.

A *source* turns a spec (``"demo"``, ``"0"``, ``"rtsp://…"``, a video file, a folder of pictures) into a
stream of :class:`Frame` objects.  Every source reads in its own daemon threads with **latest-frame
semantics**: there is one slot, each new frame overwrites it, and consumers always get the newest frame.
A slow consumer never builds a queue; frames it did not take are counted as ``dropped``.

Each source has two threads:

- a *worker* per connection attempt that opens the capture and reads frames in a loop;
- a *supervisor* that starts workers, watches them from outside (a read can hang inside FFmpeg or a
  driver, and a thread blocked in C code cannot be killed), marks the source ``stalled`` when frames stop,
  abandons a worker whose open or read is stuck past its timeout, and reconnects with capped exponential
  backoff and jitter.

Every connection attempt gets a generation number; a frame from an abandoned worker whose read returns
late is thrown away, and that worker releases its capture itself on the way out.

Health states (:class:`SourceState`)::

    connecting -> live -> stalled -> (reconnect) connecting -> live
    connecting -> failed (retrying, ``retry_in`` set) -> connecting -> …
    live -> ended          (video files and folders, unless looping)
    any -> stopped         (stop() was called, or start() was never called)

Images are ``uint8`` RGB ``(H, W, 3)``, read-only (one frame may be shared by several consumers: copy it
before drawing on it).  Times are ``time.monotonic()`` unless named ``wall_time``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np

from core.errors import CameraError, FaceGateError, ImageError
from core.vision.imageio import is_image_path, read_image, to_rgb8

log = logging.getLogger(__name__)

URL_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "srt", "tcp"})
DEFAULT_FOLDER_FPS = 5.0
DEFAULT_RENDER_FPS = 25.0
DEFAULT_FILE_FPS = 25.0  # when the container does not say (or says something absurd)

_FPS_WINDOW_S = 2.0
_TICK_S = 0.05  # how often the supervisor looks at its worker
_STABLE_S = 10.0  # a connection that delivered frames this long resets the backoff
_MAX_ABANDONED = 3  # stuck workers still alive before we stop opening new connections
_FILE_RESYNC_READS = 2  # extra reads after a failed read in the middle of a file (FFmpeg may resync)


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


# --------------------------------------------------------------------------------------------------
# Machinery shared by every source


class _SourceFailure(Exception):
    """An open or read failed; the message is the sentence shown to the operator."""


class _Reader:
    """One connection to the input, used by exactly one worker thread from open() to close()."""

    #: frames per second to pace at (None: as fast as the input delivers, e.g. a live camera)
    rate: float | None = None
    #: the attempt this reader belongs to (set by the worker before open())
    session: _Session | None = None

    def open(self) -> None:
        """Open the input; raise :class:`_SourceFailure` with a clear sentence if it cannot be opened."""

    def read(self) -> np.ndarray | None:
        """Return the next frame as ``uint8`` RGB, or None when the input has no more frames."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the input; must be safe to call more than once."""

    def end_note(self) -> str | None:
        """Optional remark when the input ended (e.g. fewer frames than the file announced)."""
        return None


class _Session:
    """One connection attempt: run by a worker thread, watched by the supervisor."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.gate_token: object | None = None  # held while this attempt owns the FFmpeg open gate
        self.cancel = threading.Event()  # set on stop() or when the supervisor abandons the worker
        self.done = threading.Event()  # set by the worker after it released its input
        self.phase = "open"
        self.busy_since: float | None = None  # start of the blocking open/read in progress
        self.opened = False
        self.frames = 0
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.outcome = ""  # "ended" | "lost" | "open_failed" | "error" | "abandoned"
        self.error: str | None = None

    def finish(self, outcome: str, error: str | None = None) -> bool:
        """Record how the attempt ended; the first caller (worker or watchdog) wins."""
        with self._lock:
            if self.outcome:
                return False
            self.outcome, self.error = outcome, error
            return True


class _OpenGate:
    """Lets one FFmpeg open run at a time, the way OpenCV does anyway, so the watchdog times only our own.

    OpenCV's FFmpeg backend holds a process-wide mutex for the whole of ``VideoCapture.open`` (unless
    ``OPENCV_FFMPEG_IS_THREAD_SAFE=1`` is set): an offline camera that takes ``open_timeout_s`` to fail
    holds up every other camera's open.  Queueing here, interruptibly and outside the watchdog's clock,
    keeps a healthy camera that merely waits its turn from being abandoned as "hung".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meta = threading.Lock()
        self._holder: object | None = None

    @staticmethod
    def parallel() -> bool:
        return os.environ.get("OPENCV_FFMPEG_IS_THREAD_SAFE", "").strip().lower() in ("1", "true", "yes", "on")

    @contextmanager
    def hold(self, session: _Session | None) -> Iterator[None]:
        if session is None or self.parallel():
            yield
            return
        session.phase, session.busy_since = "queued", None
        while not self._lock.acquire(timeout=0.1):
            if session.cancel.is_set():
                raise _SourceFailure("cancelled while waiting for another camera's connection attempt")
        token = object()
        with self._meta:
            self._holder = token
        session.gate_token = token
        session.phase, session.busy_since = "open", time.monotonic()
        try:
            yield
        finally:
            self.release(token)

    def release(self, token: object | None) -> None:
        """Release the gate if ``token`` still holds it (the watchdog may have released it already)."""
        with self._meta:
            if token is not None and self._holder is token:
                self._holder = None
                self._lock.release()


_FFMPEG_OPEN_GATE = _OpenGate()


class _RateMeter:
    """Frames per second over a sliding window, bounded memory."""

    def __init__(self, window: float = _FPS_WINDOW_S, maxlen: int = 4096) -> None:
        self.window = window
        self.times: deque[float] = deque(maxlen=maxlen)
        self.older = False  # True once a frame fell out of the window (the window is fully covered)

    def add(self, now: float) -> None:
        self.times.append(now)
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
            self.older = True

    def fps(self, now: float) -> float:
        self._prune(now)
        n = len(self.times)
        if n == 0:
            return 0.0
        if self.older and n < (self.times.maxlen or n + 1):
            return n / self.window
        if n < 2:
            return 0.0
        # Just after (re)connecting two frames a millisecond apart would read as 1000 fps: measure over
        # at least half a second (the figure then rises to the true rate instead of overshooting).
        span = max(now - self.times[0], self.times[-1] - self.times[0], 0.5)
        return (n - 1) / span


class _Pacer:
    """Sleeps between frames to hold a rate, without bursting to catch up after a slow frame."""

    def __init__(self, rate: float | None) -> None:
        self.period = 1.0 / rate if rate else 0.0
        self.due = time.monotonic()

    def wait(self, cancel: threading.Event) -> None:
        if not self.period:
            return
        self.due += self.period
        delay = self.due - time.monotonic()
        if delay > 0:
            cancel.wait(delay)
        elif delay < -self.period:
            self.due = time.monotonic()  # fell behind by more than a frame: restart the schedule


class _ThreadedSource:
    """Base class: threads, the latest-frame slot, health state, watchdog and reconnect policy.

    Subclasses set the policy attributes and implement :meth:`_make_reader` and :attr:`_what`.
    """

    #: reconnect (with backoff) when the input is lost, instead of ending
    _reconnect_on_loss = True
    #: retry (with backoff) when the input cannot be opened, instead of failing for good
    _retry_open = True

    def __init__(self, name: str, spec: str, options: SourceOptions | None = None) -> None:
        self.name = name
        self.spec = spec
        self.options = options or SourceOptions()
        self._cond = threading.Condition(threading.RLock())
        self._slot: Frame | None = None
        self._slot_taken = False
        self._next_index = 0
        self._dropped = 0
        self._reconnects = 0
        self._state = SourceState.STOPPED
        self._since = time.monotonic()
        self._last_error: str | None = None
        self._logged_error: str | None = None
        self._retry_at: float | None = None
        self._last_frame_at: float | None = None
        self._rate = _RateMeter()
        self._run = 0  # bumped by start() and stop(); a supervisor of an older run changes nothing
        self._generation = 0  # bumped per connection attempt and by stop(); stale workers publish nothing
        self._finished = False  # ended or failed for good: wait() returns at once
        self._stop_event = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._session: _Session | None = None
        self._abandoned: list[_Session] = []
        self._rng = random.Random()
        self._current_stall_limit = self.options.stall_after_s
        self._logged_exception: str | None = None

    # ---- what subclasses provide

    @property
    def _what(self) -> str:
        """Short description for messages: 'camera 0', 'stream host', 'clip.avi'."""
        return self.name

    def _make_reader(self) -> _Reader:
        raise NotImplementedError

    def _stall_limit(self, reader_rate: float | None) -> float:
        limit = self.options.stall_after_s
        if reader_rate and self.options.realtime:
            limit = max(limit, 3.0 / reader_rate)  # a folder at 0.5 fps is not stalled between pictures
        return limit

    # ---- public API

    def start(self) -> None:
        """Start reading in a background thread and return at once.

        Opening happens in the reader thread: watch :meth:`status` or call :meth:`wait`.  Calling
        start() on a running source does nothing; after :meth:`stop` (or the end of a file) it starts
        the source again; frame indexes keep counting.
        """
        with self._cond:
            if self._supervisor is not None and self._supervisor.is_alive() and not self._stop_event.is_set():
                return
            self._run += 1
            run = self._run
            self._stop_event = threading.Event()
            self._finished = False
            self._retry_at = None
            self._change(SourceState.CONNECTING)
            self._supervisor = threading.Thread(
                target=self._supervise, args=(run, self._stop_event), name=f"source-{self.name}", daemon=True
            )
            self._supervisor.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and release the input; idempotent.

        Waits at most ``timeout`` seconds for the reader thread.  A read stuck inside a driver cannot be
        interrupted: stop() then returns anyway and the abandoned thread releases its capture when the
        read finally returns.
        """
        with self._cond:
            self._run += 1
            self._generation += 1
            self._stop_event.set()
            session, supervisor = self._session, self._supervisor
            was = self._state
            self._retry_at = None
            self._change(SourceState.STOPPED)
            self._cond.notify_all()
        if session is not None:
            session.cancel.set()
        deadline = time.monotonic() + max(0.0, timeout)
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            # The supervisor may have started one more attempt while we were taking the lock above.
            if self._session is not None and self._session is not session:
                session = self._session
                session.cancel.set()
        worker = session.thread if session is not None else None
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning("%s: the reader is stuck in a blocking call; it will release the input when the "
                            "call returns", self.name)
        if was is not SourceState.STOPPED:
            log.info("%s: stopped", self.name)

    def latest(self, after: int = -1, max_age: float | None = None) -> Frame | None:
        """Return the newest frame, or None if it is not newer than ``after`` or older than ``max_age``.

        Never blocks.  Frames older than the newest are never returned: they were overwritten.

        Parameters
        ----------
        after
            Only return a frame whose index is greater (pass the index of the last frame you handled).
        max_age
            Only return a frame read at most this many seconds ago.
        """
        with self._cond:
            frame = self._slot
            if frame is None or frame.index <= after:
                return None
            if max_age is not None and time.monotonic() - frame.captured > max_age:
                return None
            self._slot_taken = True
            return frame

    def wait(self, after: int = -1, timeout: float = 1.0) -> Frame | None:
        """Block until a frame with index > ``after`` exists and return it (the newest).

        Returns None after ``timeout`` seconds, or at once when the source is stopped, ended or has
        failed for good.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                frame = self._slot
                if frame is not None and frame.index > after:
                    self._slot_taken = True
                    return frame
                if self._finished or self._state is SourceState.STOPPED:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def status(self) -> SourceStatus:
        """A consistent snapshot of the source's health; callable from any thread."""
        now = time.monotonic()
        with self._cond:
            retry_in = None
            if self._retry_at is not None and self._state in (SourceState.FAILED, SourceState.STALLED):
                retry_in = max(0.0, self._retry_at - now)
            return SourceStatus(
                camera=self.name,
                spec=self._display_spec(),
                state=self._state,
                fps=self._rate.fps(now),
                frames=self._next_index,
                dropped=self._dropped,
                reconnects=self._reconnects,
                last_error=self._last_error,
                since=self._since,
                last_frame_age=None if self._last_frame_at is None else now - self._last_frame_at,
                retry_in=retry_in,
                at=now,
            )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._display_spec()!r} {self._state.value}>"

    # ---- internals (lock held where noted)

    def _display_spec(self) -> str:
        return self.spec

    def _change(self, state: SourceState, error: str | None = None, retry_at: float | None = None) -> None:
        """Set the state (lock held); log transitions."""
        if error is not None:
            # One warning per distinct problem; the same failure on every retry goes to debug.
            level = logging.DEBUG
            if error != self._logged_error:
                level = logging.WARNING if state in (SourceState.FAILED, SourceState.STALLED) else logging.INFO
                self._logged_error = error
            log.log(level, "%s %s: %s", self.name, state.value, error)
            self._last_error = error
        elif state is not self._state and state is not SourceState.STOPPED:
            log.log(logging.DEBUG if state is SourceState.CONNECTING else logging.INFO,
                    "%s: %s", self.name, state.value)
        if state is SourceState.LIVE:
            self._logged_error = None
        self._retry_at = retry_at
        if state is not self._state:
            self._state = state
            self._since = time.monotonic()
            self._cond.notify_all()

    def _set(self, run: int, state: SourceState, error: str | None = None, retry_at: float | None = None,
             final: bool = False) -> bool:
        with self._cond:
            if run != self._run:
                return False
            self._change(state, error, retry_at)
            if final:
                self._finished = True
                self._cond.notify_all()
            return True

    def _note(self, message: str) -> None:
        """Record a problem that does not change the state (e.g. a skipped picture)."""
        log.warning("%s: %s", self.name, message)
        with self._cond:
            self._last_error = message

    def _publish(self, session: _Session, image: np.ndarray) -> bool:
        now, wall = time.monotonic(), time.time()
        image.flags.writeable = False
        with self._cond:
            if session.generation != self._generation or session.cancel.is_set():
                return False  # a late frame from an abandoned or stopped worker
            index = self._next_index
            self._next_index += 1
            if self._slot is not None and not self._slot_taken:
                self._dropped += 1
            self._slot = Frame(self.name, index, image, now, wall)
            self._slot_taken = False
            self._last_frame_at = now
            self._rate.add(now)
            session.frames += 1
            session.last_frame_at = now
            if session.first_frame_at is None:
                session.first_frame_at = now
            if self._state is not SourceState.LIVE:
                self._change(SourceState.LIVE)
            self._cond.notify_all()
            return True

    def _work(self, session: _Session, reader: _Reader) -> None:
        """Worker thread: open, read and publish until the input ends, fails or we are cancelled."""
        try:
            if session.cancel.is_set():
                return
            reader.session = session
            session.phase, session.busy_since = "open", time.monotonic()
            reader.open()
            session.busy_since = None
            session.opened = True
            pacer = _Pacer(reader.rate if self.options.realtime else None)
            stall_limit = self._stall_limit(reader.rate)
            with self._cond:
                if session.generation == self._generation:
                    self._current_stall_limit = stall_limit
            pass_frames = 0
            while not session.cancel.is_set():
                session.phase, session.busy_since = "read", time.monotonic()
                image = reader.read()
                session.busy_since = None
                if session.cancel.is_set():
                    break
                if image is None:
                    if self._reconnect_on_loss:
                        session.finish("lost", f"{self._what} stopped sending frames")
                        break
                    if self.options.loop and pass_frames > 0:
                        reader.close()
                        session.phase, session.busy_since = "open", time.monotonic()
                        reader.open()
                        session.busy_since = None
                        pass_frames = 0
                        continue
                    session.finish("ended", reader.end_note())
                    break
                if self._publish(session, image):
                    pass_frames += 1
                pacer.wait(session.cancel)
        except (_SourceFailure, FaceGateError) as exc:  # FaceGateError: already a sentence for the operator
            session.finish("lost" if session.opened else "open_failed", str(exc))
        except Exception as exc:  # a library or renderer bug must not kill the source silently
            text = f"{type(exc).__name__}: {exc}"
            # The traceback once per distinct error, not on every retry.
            log.log(logging.ERROR if text != self._logged_exception else logging.DEBUG,
                    "%s: unexpected error in the reader", self.name, exc_info=True)
            self._logged_exception = text
            session.finish("error", f"unexpected error while reading {self._what} ({text})")
        finally:
            session.busy_since = None
            try:
                reader.close()
            except Exception:  # releasing must never take the thread down with it
                log.exception("%s: error while releasing the input", self.name)
            session.finish("cancelled")
            session.done.set()

    def _supervise(self, run: int, stop: threading.Event) -> None:
        """Supervisor thread: run connection attempts, watch them, reconnect with backoff."""
        failures = 0
        attempts = 0
        try:
            while not stop.is_set():
                self._reap_abandoned()
                if len(self._abandoned) >= _MAX_ABANDONED:
                    # Stuck workers each hold a capture; opening more would pile up threads and sockets.
                    failures += 1
                    delay = self.options.backoff(failures, self._rng)
                    msg = (f"{len(self._abandoned)} earlier connections to {self._what} are still stuck; "
                           "waiting for them before trying again")
                    self._set(run, SourceState.FAILED, msg, time.monotonic() + delay)
                    stop.wait(delay)
                    continue
                with self._cond:
                    if run != self._run:
                        return
                    if attempts:
                        self._reconnects += 1
                    self._generation += 1
                    session = _Session(self._generation)
                    self._session = session
                    self._current_stall_limit = self.options.stall_after_s
                    self._change(SourceState.CONNECTING)
                attempts += 1
                reader = self._make_reader()
                session.thread = threading.Thread(target=self._work, args=(session, reader),
                                                  name=f"source-{self.name}-{session.generation}", daemon=True)
                session.thread.start()
                self._watch(run, stop, session)
                if stop.is_set():
                    session.cancel.set()
                    return
                if not self._after_session(run, session):
                    return
                lived = (session.last_frame_at or 0.0) - (session.first_frame_at or 0.0)
                failures = 1 if session.frames and lived >= _STABLE_S else failures + 1
                delay = self.options.backoff(failures, self._rng)
                state = SourceState.STALLED if session.frames else SourceState.FAILED
                self._set(run, state, self._session_error(session), time.monotonic() + delay)
                stop.wait(delay)
        except Exception:  # pragma: no cover - a bug here must leave a visible trace and a failed state
            log.exception("%s: supervisor crashed", self.name)
            self._set(run, SourceState.FAILED, f"internal error while watching {self._what}", final=True)

    def _after_session(self, run: int, session: _Session) -> bool:
        """Handle an attempt that ended on its own; return True to reconnect."""
        if session.outcome == "ended":
            self._set(run, SourceState.ENDED, session.error, final=True)
            return False
        retry = self._retry_open if not session.frames else self._reconnect_on_loss
        if not retry:
            self._set(run, SourceState.FAILED, self._session_error(session), final=True)
            return False
        return True

    def _session_error(self, session: _Session) -> str:
        error = session.error or f"{self._what} stopped unexpectedly"
        if session.opened and not session.frames and session.outcome == "lost":
            return f"{self._what} was opened but delivered no frame ({error})"
        return error

    def _watch(self, run: int, stop: threading.Event, session: _Session) -> None:
        """Wait for the attempt to end; flag stalls; abandon an open or read stuck past its timeout."""
        open_limit = self.options.open_timeout_s + max(1.0, 0.5 * self.options.open_timeout_s)
        read_limit = self.options.read_timeout_s + max(1.0, 0.5 * self.options.read_timeout_s)
        while not session.done.wait(_TICK_S):
            if stop.is_set():
                return
            now = time.monotonic()
            busy = session.busy_since
            if busy is not None:
                limit = open_limit if session.phase == "open" else read_limit
                if now - busy > limit:
                    verb = "opening" if session.phase == "open" else "a read from"
                    msg = f"{verb} {self._what} hung for more than {limit:.1f} s; connection abandoned"
                    if session.finish("open_failed" if session.phase == "open" else "lost", msg):
                        session.cancel.set()
                        _FFMPEG_OPEN_GATE.release(session.gate_token)
                        with self._cond:
                            self._abandoned.append(session)
                        log.warning("%s: %s", self.name, msg)
                        return
            with self._cond:
                if (run == self._run and self._state is SourceState.LIVE and self._last_frame_at is not None
                        and now - self._last_frame_at > self._current_stall_limit):
                    self._change(SourceState.STALLED, f"no frame for more than {self._current_stall_limit:.1f} s")

    def _reap_abandoned(self) -> None:
        with self._cond:
            self._abandoned = [s for s in self._abandoned if s.thread is not None and s.thread.is_alive()]



def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@contextmanager
def _no_gate() -> Iterator[None]:
    yield


def _bgr_to_rgb(frame: Any) -> np.ndarray | None:
    """OpenCV capture output (BGR, BGRA or gray) as contiguous ``uint8`` RGB; None for an empty frame."""
    import cv2

    if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0:
        return None
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return to_rgb8(frame)


# --------------------------------------------------------------------------------------------------
# OpenCV captures: network streams, webcams, video files


class _CaptureReader(_Reader):
    """A ``cv2.VideoCapture`` opened with a list of (api, params) to try in order."""

    def __init__(self, target: str | int, attempts: list[tuple[int, list[int]]], fail_message: Callable[[float], str],
                 *, buffer_one: bool = False, rate: float | None = None, file_rate: bool = False,
                 resync: bool = False) -> None:
        self.target = target
        self.attempts = attempts
        self.fail_message = fail_message
        self.buffer_one = buffer_one
        self.rate = rate
        self.file_rate = file_rate
        self.resync = resync
        self.cap: Any = None
        self.announced = 0  # frame count the container claims (files)
        self.read_count = 0

    def open(self) -> None:
        import cv2

        elapsed = 0.0
        for api, params in self.attempts:
            gate = _FFMPEG_OPEN_GATE.hold(self.session) if api == cv2.CAP_FFMPEG else _no_gate()
            with gate:
                t0 = time.monotonic()
                cap = cv2.VideoCapture(self.target, api, params) if params else cv2.VideoCapture(self.target, api)
                elapsed = max(elapsed, time.monotonic() - t0)
            if cap.isOpened():
                self.cap = cap
                break
            cap.release()
        if self.cap is None:
            raise _SourceFailure(self.fail_message(elapsed))
        if self.buffer_one:
            self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # webcams: keep the driver from queueing old frames
        if self.file_rate:
            fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.rate = self.rate or (fps if 0.5 <= fps <= 240.0 else DEFAULT_FILE_FPS)
            count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
            self.announced = int(count) if 0 < count < 1e9 else 0
        self.read_count = 0

    def read(self) -> np.ndarray | None:
        import cv2

        tries = 1 + (_FILE_RESYNC_READS if self.resync else 0)
        for _ in range(tries):
            ok, frame = self.cap.read()
            image = _bgr_to_rgb(frame) if ok else None
            if image is not None:
                self.read_count += 1
                return image
            # A damaged stretch of a file: FFmpeg may find the next good frame on a later read.
            pos = self.cap.get(cv2.CAP_PROP_POS_FRAMES)
            if not (self.announced and 0 <= pos < self.announced - 1):
                break
        return None

    def close(self) -> None:
        cap, self.cap = self.cap, None
        if cap is not None:
            cap.release()

    def end_note(self) -> str | None:
        if self.announced and self.read_count < 0.98 * self.announced:
            return (f"only {self.read_count} of the {self.announced} frames the file announces could be "
                    "decoded (the file is damaged or truncated)")
        return None


def redact_url(url: str) -> str:
    """Mask the password in a URL (``rtsp://admin:***@10.0.0.7/…``) for logs and status lines."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class StreamSource(_ThreadedSource):
    """A network camera or stream (RTSP, HTTP MJPEG, …) read with OpenCV's FFmpeg backend.

    Open and read timeouts are passed to FFmpeg; a watchdog abandons a connection whose open or read
    hangs anyway.  A lost stream is reconnected with capped exponential backoff.
    """

    def __init__(self, name: str, url: str, options: SourceOptions | None = None) -> None:
        super().__init__(name, url, options)
        self._host = urlsplit(url).hostname or "stream"

    @property
    def _what(self) -> str:
        return f"stream {self._host}"

    def _display_spec(self) -> str:
        return redact_url(self.spec)

    def _make_reader(self) -> _Reader:
        import cv2

        o = self.options
        # The timeouts only take effect as open parameters of the FFmpeg backend.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(o.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(o.read_timeout_s * 1000)]
        shown = redact_url(self.spec)

        def fail(elapsed: float) -> str:
            if elapsed >= 0.9 * o.open_timeout_s:
                return (f"stream {shown} did not answer within {o.open_timeout_s:.1f} s "
                        "(camera offline, wrong address, or blocked by a firewall)")
            return (f"stream {shown} could not be opened (connection refused, wrong address or password, "
                    "or not a video stream)")

        return _LiveCaptureReader(self.spec, [(cv2.CAP_FFMPEG, params)], fail,
                                  lost=f"connection to {self._host} lost (the stream ended or sent nothing "
                                       f"for {o.read_timeout_s:.1f} s)")


class _LiveCaptureReader(_CaptureReader):
    """A camera or stream: a failed read means the connection is gone, not the end of a file."""

    def __init__(self, target: str | int, attempts: list[tuple[int, list[int]]],
                 fail_message: Callable[[float], str], *, lost: str, buffer_one: bool = False) -> None:
        super().__init__(target, attempts, fail_message, buffer_one=buffer_one)
        self.lost = lost

    def read(self) -> np.ndarray | None:
        image = super().read()
        if image is None:
            raise _SourceFailure(self.lost)
        return image


class WebcamSource(_ThreadedSource):
    """A local camera by index (``"0"``) or device path (``/dev/video0``)."""

    def __init__(self, name: str, index: int, options: SourceOptions | None = None, spec: str | None = None) -> None:
        super().__init__(name, spec if spec is not None else str(index), options)
        self.index = index

    @property
    def _what(self) -> str:
        return f"camera {self.index}"

    def _make_reader(self) -> _Reader:
        import cv2

        what = self._what
        return _LiveCaptureReader(
            self.index, [(cv2.CAP_ANY, [])],
            lambda _elapsed: f"{what} could not be opened (no such device, or it is in use)",
            lost=f"{what} stopped delivering frames (unplugged, or taken by another program)",
            buffer_one=True,
        )


class VideoFileSource(_ThreadedSource):
    """A video file, played at its own rate (or ``options.fps``); ``ended`` at the end unless looping.

    Damaged stretches are skipped where FFmpeg can resynchronise; otherwise the file ends early.
    A file that cannot be opened at all fails for good (no retries).
    """

    _reconnect_on_loss = False
    _retry_open = False

    def __init__(self, name: str, path: str | Path, options: SourceOptions | None = None) -> None:
        self.path = Path(path)
        super().__init__(name, str(path), options)

    @property
    def _what(self) -> str:
        return self.path.name

    def _make_reader(self) -> _Reader:
        import cv2

        path = self.path

        def fail(_elapsed: float) -> str:
            if not path.exists():
                return f"video file {path} no longer exists"
            return f"{path.name} could not be opened as a video (unsupported format, or a damaged file)"

        return _CaptureReader(str(path), [(cv2.CAP_FFMPEG, []), (cv2.CAP_ANY, [])], fail,
                              rate=self.options.fps, file_rate=True, resync=True)


# --------------------------------------------------------------------------------------------------
# Image folders and rendered sources


class _FolderReader(_Reader):
    def __init__(self, folder: Path, rate: float, note: Callable[[str], None]) -> None:
        self.folder = folder
        self.rate = rate
        self.note = note
        self.files: list[Path] = []
        self.position = 0
        self.good = 0

    def open(self) -> None:
        try:
            files = sorted((p for p in self.folder.iterdir() if p.is_file() and is_image_path(p)),
                           key=lambda p: p.name.casefold())
        except OSError as exc:
            raise _SourceFailure(f"folder {self.folder} cannot be read ({exc.strerror or exc})") from exc
        if not files:
            raise _SourceFailure(f"folder {self.folder} holds no pictures (JPEG, PNG, BMP, WebP, TIFF)")
        self.files, self.position, self.good = files, 0, 0

    def read(self) -> np.ndarray | None:
        while self.position < len(self.files):
            path = self.files[self.position]
            self.position += 1
            try:
                image = read_image(path)
            except ImageError as exc:
                self.note(f"skipped {exc}")
                continue
            self.good += 1
            return image
        return None

    def end_note(self) -> str | None:
        if self.files and not self.good:
            return f"none of the {len(self.files)} pictures in {self.folder.name} could be read"
        return None


class ImageFolderSource(_ThreadedSource):
    """The pictures in a folder, in name order, at ``options.fps`` (default 5 per second).

    Unreadable pictures are skipped and reported in ``last_error``; the source ends after the last
    picture unless ``options.loop`` is set (the folder is listed again on each pass).
    """

    _reconnect_on_loss = False
    _retry_open = False

    def __init__(self, name: str, folder: str | Path, options: SourceOptions | None = None) -> None:
        self.folder = Path(folder)
        super().__init__(name, str(folder), options)

    @property
    def _what(self) -> str:
        return f"folder {self.folder.name}"

    def _make_reader(self) -> _Reader:
        return _FolderReader(self.folder, self.options.fps or DEFAULT_FOLDER_FPS, self._note)


class _RenderReader(_Reader):
    def __init__(self, source: RenderedSource) -> None:
        self.source = source

    def open(self) -> None:
        self.source._ensure_built(self.session)
        self.rate = self.source.fps

    def read(self) -> np.ndarray | None:
        index = self.source._peek_index()
        image = np.asarray(self.source.render(index))
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            image = to_rgb8(image)
        # Copy: the renderer may reuse its buffer, and published frames are read-only.
        return np.array(image, dtype=np.uint8, order="C", copy=True)


class RenderedSource(_ThreadedSource):
    """Plays ``render(index) -> uint8 RGB (H, W, 3)`` endlessly at ``options.fps`` or ``fps`` (default 25).

    The index passed to ``render`` is the index of the frame it produces, so a deterministic renderer
    gives the same picture for the same :attr:`Frame.index`.  An exception from the renderer puts the
    source in ``failed`` and it retries with backoff.

    Parameters
    ----------
    name
        Source name.
    render
        Callable returning the picture for a frame index.
    fps
        The renderer's natural rate; ``options.fps`` overrides it.
    options
        Pacing and recovery options.
    spec
        Spec shown in the status (default ``"rendered"``).
    """

    def __init__(self, name: str, render: Callable[[int], np.ndarray], fps: float | None = None, *,
                 options: SourceOptions | None = None, spec: str = "rendered") -> None:
        super().__init__(name, spec, options)
        self.render = render
        self.fps = float(self.options.fps or fps or DEFAULT_RENDER_FPS)
        if not self.fps > 0:
            raise CameraError("A rendered source needs a positive frame rate.")
        self._build: Callable[[], tuple[Callable[[int], np.ndarray], float | None]] | None = None
        self._build_lock = threading.Lock()

    @classmethod
    def deferred(cls, name: str, build: Callable[[], tuple[Callable[[int], np.ndarray], float | None]], *,
                 options: SourceOptions | None = None, spec: str = "rendered") -> RenderedSource:
        """A rendered source whose renderer is built in the reader thread when it first starts.

        For renderers with a slow set-up (the demo scene runs the face detector over its photos): the
        caller is never blocked, the source shows ``connecting`` meanwhile, and the open watchdog does
        not time the build.  ``build()`` returns ``(render, fps)``; ``options.fps`` overrides that fps.
        """

        def not_built(index: int) -> np.ndarray:
            raise CameraError(f"The renderer of {name} has not been built yet.")

        source = cls(name, not_built, options=options, spec=spec)
        source._build = build
        return source

    def _ensure_built(self, session: _Session | None) -> None:
        with self._build_lock:
            build = self._build
            if build is None:
                return
            if session is not None:
                session.phase, session.busy_since = "setup", None  # not an open that can hang on a network
            render, fps = build()
            self.render = render
            if self.options.fps is None and fps:
                self.fps = float(fps)
            self._build = None

    def _peek_index(self) -> int:
        with self._cond:
            return self._next_index

    @property
    def _what(self) -> str:
        return f"rendered source {self.name}"

    def _make_reader(self) -> _Reader:
        return _RenderReader(self)


# --------------------------------------------------------------------------------------------------
# Specs


def default_name(spec: str) -> str:
    """The name a source gets from its spec: ``demo``, ``cam0``, the URL's host, file stem, folder name."""
    spec = spec.strip()
    if spec.lower() == "demo":
        return "demo"
    if spec.isdigit():
        return f"cam{int(spec)}"
    if "://" in spec:
        try:
            host = urlsplit(spec).hostname
        except ValueError:
            host = None
        if spec.lower().startswith("file://"):
            return Path(unquote(urlsplit(spec).path)).stem or "file"
        return host or "stream"
    path = Path(spec).expanduser()
    if path.name.startswith("video") and path.parent == Path("/dev"):
        return f"cam{path.name[5:]}" if path.name[5:].isdigit() else path.name
    if path.is_dir():
        return path.resolve().name or str(path)
    return path.stem or path.name or str(path)


def open_source(spec: str, *, name: str | None = None, options: SourceOptions | None = None) -> FrameSource:
    """Create (but do not start) the frame source a spec describes.

    Parameters
    ----------
    spec
        ``"demo"`` (the built-in rendered scene); a webcam index (``"0"``) or ``/dev/videoN``;
        a stream URL (``rtsp://``, ``http(s)://`` MJPEG, ``rtmp://``, …); a video file path; a folder
        of pictures (``file://`` URLs work for files and folders).
    name
        Name for frames and status lines; by default derived from the spec (:func:`default_name`).
    options
        Timeouts, backoff and playback options.

    Raises
    ------
    CameraError
        If the spec is empty, uses an unknown URL scheme, or names a file or folder that does not exist.
    """
    raw = spec
    spec = (spec or "").strip()
    if not spec:
        raise CameraError("No camera given: use a camera number (0), a stream URL, a video file or a folder.")
    options = options or SourceOptions()
    label = name or default_name(spec)
    if spec.lower() == "demo":
        try:
            from core.demo.scene import DemoScene
        except ImportError as exc:
            raise CameraError(f"The demo scene is not available in this installation ({exc}).") from exc

        def build() -> tuple[Callable[[int], np.ndarray], float | None]:
            # Slow (it runs the face detector over the demo photos): done in the reader thread.
            scene = DemoScene.from_assets()
            return scene.render, scene.fps

        return RenderedSource.deferred(label, build, options=options, spec="demo")
    if spec.isdigit():
        return WebcamSource(label, int(spec), options)
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme == "file":
            spec = unquote(urlsplit(spec).path)
        elif scheme in URL_SCHEMES:
            try:
                host = urlsplit(spec).hostname
            except ValueError as exc:
                raise CameraError(f"The stream address {redact_url(spec)!r} is not a valid URL ({exc}).") from exc
            if not host:
                raise CameraError(f"The stream address {redact_url(spec)!r} names no host.")
            return StreamSource(label, spec, options)
        else:
            raise CameraError(f"Unknown kind of camera address {redact_url(spec)!r}: FaceGate reads "
                              f"{', '.join(sorted(s + '://' for s in URL_SCHEMES))} streams.")
    path = Path(spec).expanduser()
    if path.parent == Path("/dev") and path.name.startswith("video") and path.name[5:].isdigit():
        if not path.exists():
            raise CameraError(f"There is no camera device {path}.")
        return WebcamSource(label, int(path.name[5:]), options, spec=spec)
    if not path.exists():
        raise CameraError(f"No camera, stream, video file or folder called {raw.strip()!r}: "
                          f"{path} does not exist.")
    if path.is_dir():
        return ImageFolderSource(label, path, options)
    if path.is_file():
        return VideoFileSource(label, path, options)
    raise CameraError(f"{path} is neither a video file nor a folder of pictures.")


__all__ = [
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "RenderedSource",
    "SourceOptions",
    "SourceState",
    "SourceStatus",
    "StreamSource",
    "VideoFileSource",
    "WebcamSource",
    "default_name",
    "open_source",
    "redact_url",
]
