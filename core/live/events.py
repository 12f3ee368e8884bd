"""Recording decisions: the event writer thread, and the short decision code each event carries.

:class:`EventWriter` owns its own registry connection and appends one event per decision (with the
face's thumbnail, each model's probability and the gate's probability that the face is enrolled at all,
the distance, the camera, the model version, and the flag reasons of :mod:`core.live.flags` in the
reason), in small transactions, never dropping one.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FaceGateError
from core.live.flags import flag_reasons
from core.live.tracking import TrackDecision, TrackState
from core.registry.event_query import FLAG_MARKER

log = logging.getLogger(__name__)

__all__ = ["ENROLLED_KEY", "ErrorCallback", "EventWriter", "decision_code"]

ENROLLED_KEY = "enrolled"
"""Key of the gate's probability that the face is enrolled at all, in an event's ``probabilities``."""

ErrorCallback = Callable[[str, str, bool], None]
"""``on_error(where, message, fatal)``: a background thread failed.  ``where`` names the thread
(``event-writer``, ``model-watcher``, a camera); ``fatal`` means that part has stopped for good
(events can no longer be recorded, or the model can no longer be reloaded)."""


def decision_code(decision: TrackDecision) -> str:
    """The event's short decision code.

    ``recognised`` (an enrolled person, all checks passed), ``gallery-only`` (enrolled since the last
    retrain: recognised on distance alone), ``unknown`` (not an enrolled person, or not sure enough),
    ``undecided`` (left before a decision).
    """
    if decision.kind == "undecided":
        return "undecided"
    if decision.track.state is TrackState.NAMED:
        return "gallery-only" if decision.track.gallery_only else "recognised"
    return "unknown"


class EventWriter:
    """Appends one registry event per decision, from a thread that owns its registry connection.

    Decisions are queued (never dropped) and written in small batches, each in one transaction.
    :meth:`stop` writes everything still queued before it returns.  If the registry cannot be opened
    at all, :attr:`error` says why and ``on_error`` is called with ``fatal=True``; an event that
    cannot be written is counted in :attr:`failed` and reported with ``fatal=False``.
    """

    KEEP_IDS = 1024
    """How many of the newest written event ids :attr:`event_ids` keeps."""

    def __init__(self, registry_path: Path, *, on_error: ErrorCallback | None = None,
                 on_written: Callable[[TrackDecision, int], None] | None = None) -> None:
        self.registry_path = Path(registry_path)
        self.on_error = on_error
        self.on_written = on_written
        self._queue: queue.Queue[TrackDecision | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failed = 0
        self.error: str | None = None
        self.event_ids: deque[int] = deque(maxlen=self.KEEP_IDS)

    @property
    def pending(self) -> int:
        """Decisions queued and not yet written."""
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def submit(self, decision: TrackDecision) -> None:
        """Queue a decision for writing (thread-safe, never blocks)."""
        self._queue.put(decision)

    def stop(self, timeout: float = 30.0) -> bool:
        """Write what is queued, then stop; ``False`` if the writer was still busy after ``timeout``."""
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        finished = not self._thread.is_alive()
        self._thread = None
        return finished

    def _report(self, message: str, fatal: bool) -> None:
        log.error(message)
        if self.on_error is not None:
            try:
                self.on_error("event-writer", message, fatal)
            except Exception:
                log.exception("event-writer: error callback failed")

    def _run(self) -> None:
        from core.registry import Registry

        try:
            registry = Registry.open(self.registry_path)
        except Exception as exc:  # the thread must say why it stopped, never die silently
            self.error = f"cannot open the registry {self.registry_path} to record events: {exc}"
            self._report(self.error, fatal=True)
            return
        try:
            done = False
            while not done:
                batch: list[TrackDecision] = []
                item = self._queue.get()
                while True:
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                    if len(batch) >= 32:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    try:
                        self._write(registry, batch)
                    except Exception as exc:  # disk full, database locked for too long, a bug
                        self.failed += len(batch)
                        log.exception("event-writer: a batch could not be written")
                        self._report(f"{len(batch)} event(s) could not be recorded: {type(exc).__name__}: {exc}",
                                     fatal=False)
        finally:
            registry.close()

    def _write(self, registry: Any, batch: list[TrackDecision]) -> None:
        from core.registry import NewEvent

        events = [self._event(d) for d in batch]
        try:
            written = list(zip(batch, registry.record_events(events)))
        except FaceGateError:
            # One bad event (say, the person was erased a moment ago) must not cost the others.
            written = [(d, i) for d, ev in zip(batch, events) for i in self._write_one(registry, ev, NewEvent)]
        self.event_ids.extend(i for _, i in written)
        self.written += len(written)
        if self.on_written is not None:
            for decision, event_id in written:
                try:
                    self.on_written(decision, event_id)
                except Exception:
                    log.exception("event-writer: written callback failed")

    def _write_one(self, registry: Any, ev: Any, new_event: Any) -> list[int]:
        try:
            return list(registry.record_events([ev]))
        except FaceGateError as first:
            if ev.operator is None:
                return self._give_up(ev, first)
            retry = new_event(ev.camera, ev.decision, None, ev.probabilities, ev.distance, ev.thumbnail_jpeg,
                              ev.model_version, f"{ev.reason}; operator {ev.operator} is no longer enrolled",
                              ev.time)
            try:
                return list(registry.record_events([retry]))
            except FaceGateError as second:
                return self._give_up(ev, second)

    def _give_up(self, ev: Any, exc: Exception) -> list[int]:
        self.failed += 1
        self._report(f"an event from {ev.camera} could not be recorded: {exc}", fatal=False)
        return []

    @staticmethod
    def _event(decision: TrackDecision) -> Any:
        from datetime import datetime

        from core.registry import NewEvent

        track = decision.track
        named = track.state is TrackState.NAMED and decision.kind != "undecided"
        probabilities: dict[str, Any] = {name: {ident: round(p, 4)} for name, (ident, p) in track.models.items()}
        if math.isfinite(track.enrolled):
            # The gate's open-set probability beside the models' (a number, not a model's {who: p}:
            # readers of the column skip entries that are not a dict).
            probabilities[ENROLLED_KEY] = round(track.enrolled, 4)
        reason = track.reason if decision.kind != "changed" else f"{track.reason} (track {track.id})"
        flags = flag_reasons(track) if decision.kind != "undecided" else ()
        if flags:
            reason = f"{reason}; {FLAG_MARKER} {'; '.join(flags)}"
        thumb = _jpeg(decision.thumbnail) if decision.thumbnail is not None else None
        distance = track.distance if math.isfinite(track.distance) else None
        return NewEvent(track.camera, decision_code(decision), track.identity if named else None, probabilities,
                        distance, thumb, decision.model_version or "unversioned", reason, datetime.now().astimezone())


def _jpeg(rgb: np.ndarray, quality: int = 85) -> bytes | None:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return bytes(buf.tobytes()) if ok else None
