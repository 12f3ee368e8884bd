"""Browsing the event log: filtered, paged queries fast enough for a table over 100,000+ events.

A console shows the events newest first and fetches them a page at a time as the guard scrolls.
:class:`EventFilter` says which events (time range, person, decision, camera); the queries are

* :meth:`EventQueryMixin.event_page` — the next page, *keyset* paginated on the event id (``id <
  before_id``), never ``OFFSET`` (whose cost grows with the offset);
* :meth:`EventQueryMixin.events_after` — what was written since the newest event shown (live updates);
* :meth:`EventQueryMixin.count_events` — how many match;
* :meth:`EventQueryMixin.export_events_csv` — all of them to a CSV file.

Each returns :class:`EventRow` records that carry the newest guard action (:mod:`core.registry.guard`).

Why they stay fast
------------------
Event rows are heavy (each holds a JPEG thumbnail of a few kB), so scanning the table itself for a
filter reads hundreds of megabytes.  Migration ``0002_event_browsing`` (:mod:`core.registry.schema`)
adds narrow indexes: ``events_scan`` on ``(id, camera, decision, operator_id, time)`` walks the events
newest first and tests every filter inside the index, then only the matching rows of one page are
read; ``events_flagged`` is the same, partial, over flagged events only; ``events_camera`` lists the
cameras.  On 100,000 events a page or a count takes at most ~10 ms, whatever the filter
(``benchmarks/bench_events_view.py``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import RegistryError
from core.registry.connection import RegistryBase, _guarded
from core.registry.events import _DECISION_RE
from core.registry.guard import GuardAction, GuardMixin
from core.registry.sql import _iso

__all__ = ["DECISION_CODES", "FLAGGED", "FLAG_MARKER", "EventFilter", "EventQueryMixin", "EventRow"]

DECISION_CODES: tuple[str, ...] = ("recognised", "gallery-only", "unknown", "undecided")
"""The decision codes the live monitor writes (:func:`core.live.monitor.decision_code`)."""
FLAGGED = "flagged"
""":attr:`EventFilter.decision` value that selects flagged events, whatever their decision code."""
FLAG_MARKER = "FLAGGED:"
"""What the live monitor writes into a flagged event's reason (``core/live/monitor.py``); the
``events_flagged`` index is built on it."""

PAGE_MAX = 5000
_FLAG_SQL = f"instr(reason, '{FLAG_MARKER}') > 0"  # must match the events_flagged index's WHERE exactly
_ROW_SQL = ("SELECT e.id, e.time, e.camera, e.decision, e.reason, o.employee_id, o.name, e.probabilities, "
            "e.distance, e.model_version, e.thumbnail IS NOT NULL, e.redacted "
            "FROM events e LEFT JOIN operators o ON o.id = e.operator_id ")


@dataclass(frozen=True)
class EventFilter:
    """Which events to show; every field left at its default matches everything.

    Parameters
    ----------
    since, until
        Event time from ``since`` (inclusive) to ``until`` (exclusive); naive times are local.
    person
        Part of the employee id or name of the decided person, any case (``"mad"`` finds
        Madonna); strangers and erased people never match.
    decision
        A decision code (:data:`DECISION_CODES`), or :data:`FLAGGED` for every flagged event.
    camera
        The camera's name, exactly.
    """

    since: datetime | None = None
    until: datetime | None = None
    person: str = ""
    decision: str | None = None
    camera: str | None = None

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision != FLAGGED and not _DECISION_RE.match(self.decision):
            raise RegistryError(f"{self.decision!r} is not a decision to filter on: use one of "
                                f"{', '.join(DECISION_CODES)} or {FLAGGED}.")
        if self.since is not None and self.until is not None and _iso(self.until) <= _iso(self.since):
            raise RegistryError("The end of the time range must come after its start.")

    @property
    def is_empty(self) -> bool:
        """True when it matches every event."""
        return self == EventFilter()


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as an events table shows it.

    ``scores`` holds each model's favourite person and its probability, ``(model, identity,
    probability)``, by model name (empty after erasure); :meth:`score` looks one up.  ``flagged``: the
    models disagreed or the call was close (the reason says why).  ``erased``: the person was erased,
    so ``employee_id``, ``name``, ``scores`` and ``reason`` are gone.  ``guard``: the newest guard
    action on it, if any.  ``enrolled``: the gate's probability that the face was anyone enrolled at
    all (:data:`core.live.events.ENROLLED_KEY`), for events recorded since it exists.
    """

    id: int
    time: datetime
    camera: str
    decision: str
    flagged: bool
    reason: str | None
    employee_id: str | None
    name: str | None
    scores: tuple[tuple[str, str, float], ...] = field(hash=False)
    distance: float | None
    model_version: str
    has_thumbnail: bool
    erased: bool
    guard: GuardAction | None = None
    enrolled: float | None = field(default=None, hash=False)

    def score(self, model: str) -> tuple[str, float] | None:
        """``(identity, probability)`` of ``model``'s favourite person, or ``None``."""
        for name, identity, p in self.scores:
            if name == model:
                return identity, p
        return None


def _scores(text: str | None) -> tuple[tuple[tuple[str, str, float], ...], float | None]:
    """Each model's favourite from the stored ``{"svc": {"E1": 0.9, …}, …, "enrolled": 0.98}``, and the
    gate's ``enrolled`` probability (``None`` if absent)."""
    if not text:
        return (), None
    out = []
    enrolled = None
    try:
        for model, table in json.loads(text).items():
            if isinstance(table, dict) and table:
                identity, p = max(table.items(), key=lambda kv: float(kv[1]))
                out.append((sys.intern(str(model)), sys.intern(str(identity)), float(p)))
            elif model == "enrolled" and isinstance(table, (int, float)) and math.isfinite(table):
                enrolled = float(table)
    except (TypeError, ValueError, AttributeError):
        return (), None  # a hand-written event with another shape: show it without scores
    return tuple(out), enrolled


def _intern(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


def _row(r: Sequence[Any]) -> EventRow:
    reason = r[4]
    scores, enrolled = _scores(r[7])
    return EventRow(int(r[0]), datetime.fromisoformat(r[1]), sys.intern(r[2]), sys.intern(r[3]),
                    reason is not None and FLAG_MARKER in reason, reason, _intern(r[5]), _intern(r[6]),
                    scores, r[8], sys.intern(r[9]), bool(r[10]), bool(r[11]), enrolled=enrolled)


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP "CSV injection")."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class EventQueryMixin(GuardMixin, RegistryBase):
    """Filtered, paged reading of the event log (part of :class:`~core.registry.Registry`)."""

    # ----------------------------------------------------------------------------------- queries

    def _filter_sql(self, flt: EventFilter) -> tuple[str, list[str], list[Any]] | None:
        """``(index, conditions, params)`` of a filter; ``None`` if nothing can match."""
        conditions: list[str] = []
        params: list[Any] = []
        if flt.since is not None:
            conditions.append("time >= ?")
            params.append(_iso(flt.since))
        if flt.until is not None:
            conditions.append("time < ?")
            params.append(_iso(flt.until))
        if flt.camera is not None:
            conditions.append("camera = ?")
            params.append(flt.camera)
        index = "events_scan"
        if flt.decision == FLAGGED:
            index = "events_flagged"
            conditions.append(_FLAG_SQL)
        elif flt.decision is not None:
            conditions.append("decision = ?")
            params.append(flt.decision)
        needle = " ".join(flt.person.split()).casefold()
        if needle:
            # SQLite's LIKE folds ASCII only; names are matched here, in Python (operators are few).
            ids = [r[0] for r in self.db.conn.execute("SELECT id, employee_id, name FROM operators")
                   if needle in r[1].casefold() or needle in " ".join(r[2].split()).casefold()]
            if not ids:
                return None
            conditions.append("operator_id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(ids))
        return index, conditions, params

    def _page(self, flt: EventFilter, bound: str, bound_id: int, order: str, limit: int) -> list[EventRow]:
        sql = self._filter_sql(flt)
        if sql is None:
            return []
        index, conditions, params = sql
        where = " AND ".join([bound, *conditions])
        # The narrow index finds one page of ids in id order; only those rows are then read.
        rows = self.db.conn.execute(
            f"{_ROW_SQL} WHERE e.id IN (SELECT id FROM events INDEXED BY {index} WHERE {where} "
            f"ORDER BY id {order} LIMIT ?) ORDER BY e.id DESC",
            [bound_id, *params, max(1, min(int(limit), PAGE_MAX))]).fetchall()
        out = [_row(r) for r in rows]
        guards = self.guard_actions([e.id for e in out])
        return [replace(e, guard=guards[e.id]) if e.id in guards else e for e in out]

    @_guarded
    def event_page(self, flt: EventFilter = EventFilter(), *, before_id: int | None = None,
                   limit: int = 200) -> list[EventRow]:
        """The newest ``limit`` events that match ``flt`` and are older than ``before_id``, newest first.

        Page on by passing the last row's id as the next ``before_id``; ``before_id=None`` starts at
        the newest event.  A page shorter than ``limit`` is the last.  ``limit`` is 1 to 5,000.
        """
        return self._page(flt, "id < ?", sys.maxsize if before_id is None else int(before_id), "DESC", limit)

    @_guarded
    def events_after(self, flt: EventFilter, after_id: int, *, limit: int = 1000) -> list[EventRow]:
        """Events that match ``flt`` and came after event ``after_id``, newest first.

        Returns the ``limit`` events right after ``after_id``: if it returns ``limit`` rows, ask
        again with the newest id returned.
        """
        return self._page(flt, "id > ?", int(after_id), "ASC", limit)

    @_guarded
    def count_events(self, flt: EventFilter = EventFilter(), *, through_id: int | None = None) -> int:
        """How many events match ``flt`` (only those up to event ``through_id``, if given)."""
        sql = self._filter_sql(flt)
        if sql is None:
            return 0
        index, conditions, params = sql
        if through_id is not None:
            conditions = ["id <= ?", *conditions]
            params = [int(through_id), *params]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        return int(self.db.conn.execute(f"SELECT count(*) FROM events INDEXED BY {index} {where}",
                                        params).fetchone()[0])

    @_guarded
    def latest_event_id(self) -> int:
        """The id of the newest event (0 if there is none)."""
        return int(self.db.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    @_guarded
    def event_cameras(self) -> list[str]:
        """The cameras that have events, by name (a skip scan of the ``events_camera`` index)."""
        rows = self.db.conn.execute(
            "WITH RECURSIVE c(name) AS (SELECT min(camera) FROM events UNION ALL "
            "SELECT (SELECT min(camera) FROM events WHERE camera > c.name) FROM c WHERE c.name IS NOT NULL) "
            "SELECT name FROM c WHERE name IS NOT NULL").fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------------------------- export

    @_guarded
    def export_events_csv(self, flt: EventFilter, path: Path | str, *, through_id: int | None = None,
                          progress: Callable[[int, int], bool | None] | None = None) -> int:
        """Write every event that matches ``flt`` to a CSV file, newest first; return how many.

        One row per event: id, time (UTC and local), camera, decision, flagged, employee id and
        name, each model's favourite person and probability, distance, model version, the reason,
        and the newest guard action (action, reason, note, who, when).  Text that a spreadsheet
        would run as a formula is prefixed with ``'``.

        Parameters
        ----------
        flt
            Which events.
        path
            The CSV file.  Written to a temporary file beside it and renamed, so a failed or
            cancelled export leaves any previous file whole.
        through_id
            Only events up to this id: what a view showed when the export was asked for.
        progress
            Called as ``progress(done, total)`` after each page; returning ``False`` cancels.

        Raises
        ------
        RegistryError
            If the file cannot be written, or the export was cancelled (nothing is written then).
        """
        from core.recognition.engine import MODEL_NAMES  # lazily: it pulls in the vision stack

        path = Path(path)
        through = self.latest_event_id() if through_id is None else int(through_id)
        total = self.count_events(flt, through_id=through)
        header = ["id", "time_utc", "time_local", "camera", "decision", "flagged", "employee_id", "name"]
        for model in MODEL_NAMES:
            header += [f"{model}_identity", f"{model}_probability"]
        header += ["enrolled_probability", "distance", "model_version", "reason", "guard_action", "guard_reason", "guard_note",
                   "guard_by", "guard_time_utc", "erased"]
        tmp = path.with_name(f".{path.name}.tmp")
        written = 0
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                before = through + 1
                while True:
                    page = self._page(flt, "id < ?", before, "DESC", 1000)
                    writer.writerows(self._csv_row(e, MODEL_NAMES) for e in page)
                    written += len(page)
                    if progress is not None and progress(written, total) is False:
                        raise RegistryError(f"The export was cancelled; {path} was not written.")
                    if len(page) < 1000:
                        break
                    before = page[-1].id
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except OSError as exc:
            raise RegistryError(f"Cannot write {path}: {exc.strerror or exc}. Choose a file in a folder you "
                                "may write to.") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return written

    @staticmethod
    def _csv_row(e: EventRow, models: Sequence[str]) -> list[Any]:
        row: list[Any] = [e.id, e.time.isoformat(), e.time.astimezone().isoformat(), _cell(e.camera), e.decision,
                          int(e.flagged), _cell(e.employee_id or ""), _cell(e.name or "")]
        for model in models:
            score = e.score(model)
            row += ["", ""] if score is None else [_cell(score[0]), f"{score[1]:.4f}"]
        row.append("" if e.enrolled is None else f"{e.enrolled:.4f}")
        g = e.guard
        distance = "" if e.distance is None or not math.isfinite(e.distance) else f"{e.distance:.4f}"
        row += [distance, _cell(e.model_version), _cell(e.reason or ""),
                g.action if g else "", g.reason if g else "", _cell(g.note) if g else "",
                _cell(g.actor) if g else "", g.time.isoformat() if g else "", int(e.erased)]
        return row
