"""The reading machinery every source runs on: threads, the latest-frame slot, watchdog and reconnects.

Each source has two threads:

- a *worker* per connection attempt that opens the input and reads frames in a loop (through a
  :class:`_Reader`, which each kind of source provides);
- a *supervisor* that starts workers, watches them from outside (a read can hang inside FFmpeg or a
  driver, and a thread blocked in C code cannot be killed), marks the source ``stalled`` when frames stop,
  abandons a worker whose open or read is stuck past its timeout, and reconnects with capped exponential
  backoff and jitter.

Every connection attempt gets a generation number; a frame from an abandoned worker whose read returns
late is thrown away, and that worker releases its capture itself on the way out.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

import numpy as np

from core.errors import FaceGateError
from core.live.sources.base import Frame, SourceOptions, SourceState, SourceStatus

log = logging.getLogger(__name__)

_FPS_WINDOW_S = 2.0
_TICK_S = 0.05  # how often the supervisor looks at its worker
_STABLE_S = 10.0  # a connection that delivered frames this long resets the backoff
_MAX_ABANDONED = 3  # stuck workers still alive before we stop opening new connections


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
