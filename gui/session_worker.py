"""The live session, off the GUI thread: a QObject worker around :class:`core.live.session.LiveSession`.

Qt's worker pattern: :class:`SessionWorker` is moved to its own QThread (``gui.threads.start_worker``);
starting, stopping (which writes every pending event) and the registry writes a guard makes happen
there.  The core session's own threads call back into this object; it turns every report into a
Qt signal carrying the core's frozen dataclass, which Qt queues to the GUI thread.

Frames are never queued: each camera keeps only its newest :class:`DisplayFrame`, resized for its
tile in the camera's own overlay thread; ``framesReady`` is emitted only when nothing is pending,
and the GUI takes them all with :meth:`SessionWorker.take_frames`.  A slow paint therefore drops
frames instead of building lag.  Each frame is a new array: a buffer handed to the GUI is never
written again.
"""

from __future__ import annotations

import getpass
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from core.live.monitor import FrameResult
from core.live.session import (
    LiveSession,
    ModelInfo,
    RecordedEvent,
    SessionCallbacks,
    SessionEnd,
    SessionError,
    SessionSettings,
)
from core.live.sources import SourceStatus
from core.live.tracking import TrackDecision
from core.registry.event_query import FLAG_MARKER

log = logging.getLogger(__name__)


def guard_actor() -> str:
    """The audit actor for a guard's action: the operating-system account running the console."""
    try:
        return f"guard:{getpass.getuser()}"
    except Exception:  # no user name (a service account without one)
        return "guard:console"


@dataclass(frozen=True)
class DisplayFrame:
    """A camera frame ready to paint 1:1: ``image`` (RGB, already sized for the tile) and the
    :class:`FrameResult` it came from; ``scale`` maps frame pixels to ``image`` pixels."""

    result: FrameResult
    image: np.ndarray = field(repr=False, compare=False)
    scale: float


@dataclass(frozen=True)
class TodayCounts:
    """Decisions recorded since midnight, by code (``recognised``, ``unknown`` …) and flagged."""

    by_decision: dict[str, int]
    flagged: int


class SessionWorker(QObject):
    """Runs one live session; see the module docstring.  Create it on the GUI thread, then move it
    with :func:`gui.threads.start_worker` (``start_slot="run"``)."""

    progress = Signal(float, str)
    ready = Signal(object)  # ModelInfo
    status = Signal(object)  # SourceStatus
    decision = Signal(object)  # TrackDecision
    event = Signal(object)  # RecordedEvent
    model = Signal(object)  # ModelInfo
    error = Signal(object)  # SessionError
    ended = Signal(object)  # SessionEnd
    stopped = Signal(object)  # StopReport or None
    framesReady = Signal()
    cardReady = Signal(object)  # OperatorCard
    todayCounts = Signal(object)  # TodayCounts
    guardRecorded = Signal(object)  # GuardAction
    guardFailed = Signal(int, str)  # event id, message

    def __init__(self, settings: SessionSettings) -> None:
        super().__init__()
        self.settings = settings
        self.session: LiveSession | None = None
        self._frames: dict[str, DisplayFrame] = {}
        self._frames_lock = threading.Lock()
        self._pending = False
        self._tile_sizes: dict[str, tuple[int, int]] = {}
        self._cards: dict[str, object] = {}
        self.last_report: object = None

    # -- called from the GUI thread (thread-safe) ---------------------------------------------------

    def set_tile_size(self, camera: str, width: int, height: int) -> None:
        """The size ``camera``'s frames are resized to (its tile's picture area)."""
        self._tile_sizes[camera] = (max(16, width), max(16, height))

    def take_frames(self) -> dict[str, DisplayFrame]:
        """The newest frame of every camera that has a new one; clears the pending flag."""
        with self._frames_lock:
            frames, self._frames = self._frames, {}
            self._pending = False
        return frames

    @property
    def registry_path(self) -> Path | None:
        return self.session.registry_path if self.session is not None else None

    # -- slots, run on the worker's thread --------------------------------------------------------

    @Slot()
    def run(self) -> None:
        callbacks = SessionCallbacks(
            on_progress=lambda f, m: self.progress.emit(f, m), on_ready=self._ready,
            on_status=self._status, on_frame=self._frame, on_decision=self._decision, on_event=self._event,
            on_model=self._model, on_error=self._error, on_ended=self._ended)
        try:
            self.session = LiveSession(self.settings, callbacks)
            self.session.start()
        except Exception as exc:  # a bad camera spec or setting: said in the window, never a traceback
            message = str(exc) if str(exc) else type(exc).__name__
            error = SessionError("loading", message, True)
            self.error.emit(error)
            self.ended.emit(SessionEnd("failed", error))

    @Slot()
    def stop(self) -> None:
        """Stop the session and write every pending event (blocks this worker's thread only)."""
        report = self.session.stop() if self.session is not None else None
        self.last_report = report
        self.stopped.emit(report)

    @Slot(str)
    def request_card(self, employee_id: str) -> None:
        """Look up an enrolled person's card (photo on file); answered by ``cardReady``."""
        from core.registry import Registry
        from core.registry.cards import operator_card

        if self.registry_path is None:
            return
        try:
            with Registry.open(self.registry_path) as registry:
                card = operator_card(registry, employee_id)
        except Exception as exc:
            log.warning("no card for %s: %s", employee_id, exc)
            return
        if card is not None:
            self.cardReady.emit(card)

    @Slot()
    def request_today_counts(self) -> None:
        """Count today's recorded decisions (answered by ``todayCounts``)."""
        from core.registry import Registry

        if self.registry_path is None:
            return
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            with Registry.open(self.registry_path) as registry:
                events = registry.events(since=midnight)
        except Exception as exc:
            log.warning("today's counts unavailable: %s", exc)
            return
        counts: dict[str, int] = {}
        flagged = 0
        for ev in events:
            counts[ev.decision] = counts.get(ev.decision, 0) + 1
            flagged += FLAG_MARKER in (ev.reason or "")
        self.todayCounts.emit(TodayCounts(counts, flagged))

    @Slot(int, str, str, str)
    def record_guard_action(self, event_id: int, action: str, reason: str, note: str) -> None:
        """Record a guard's confirm / let-in / turn-away in the tamper-evident log."""
        from core.registry import Registry

        if self.registry_path is None:
            self.guardFailed.emit(event_id, "The registry is not open yet.")
            return
        try:
            with Registry.open(self.registry_path) as registry:
                done = registry.record_guard_action(event_id, action, reason=reason, note=note,  # type: ignore[attr-defined]
                                                    actor=guard_actor())
        except Exception as exc:
            self.guardFailed.emit(event_id, str(exc) or type(exc).__name__)
            return
        self.guardRecorded.emit(done)

    # -- called from the core session's threads --------------------------------------------------

    def _ready(self, info: ModelInfo) -> None:
        self.ready.emit(info)

    def _status(self, status: SourceStatus) -> None:
        self.status.emit(status)

    def _decision(self, decision: TrackDecision) -> None:
        self.decision.emit(decision)

    def _event(self, recorded: RecordedEvent) -> None:
        self.event.emit(recorded)

    def _model(self, info: ModelInfo) -> None:
        self._cards.clear()
        self.model.emit(info)

    def _error(self, error: SessionError) -> None:
        self.error.emit(error)

    def _ended(self, end: SessionEnd) -> None:
        self.ended.emit(end)

    def _frame(self, result: FrameResult) -> None:
        """On the camera's overlay thread: resize for the tile (a new array), keep only the newest."""
        import cv2

        size = self._tile_sizes.get(result.camera)
        image = result.image
        h, w = image.shape[:2]
        scale = 1.0
        if size is not None:
            scale = min(size[0] / w, size[1] / h)
            if abs(scale - 1.0) > 0.01:
                image = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))),
                                   interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            else:
                scale = 1.0
        image = np.ascontiguousarray(image).copy() if image is result.image else np.ascontiguousarray(image)
        frame = DisplayFrame(result, image, scale)
        with self._frames_lock:
            self._frames[result.camera] = frame
            notify = not self._pending
            self._pending = True
        if notify:
            self.framesReady.emit()
