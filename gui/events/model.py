"""The events table's Qt model: the registry's event log, newest first, fetched a page at a time.

All SQL stays in :mod:`core.registry.event_query`; this model only asks for pages
(:meth:`Registry.event_page`), for what is new (:meth:`Registry.events_after`,
:meth:`Registry.guard_actions_after`) and for thumbnails (:meth:`Registry.event_thumbnail`).  It
runs on the GUI thread with its own read connection to the registry file (one connection per
thread); every one of those queries takes a few milliseconds on 100,000 events.

Qt asks for more rows through :meth:`EventsModel.canFetchMore` / :meth:`EventsModel.fetchMore` as the
guard scrolls towards the end.  A thumbnail is read and decoded only when its row is painted, and the
decoded pictures are kept in a bounded least-recently-used cache.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap

from core.registry import EventFilter, EventRow, GuardAction, Registry
from gui import theme

log = logging.getLogger(__name__)

_Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()

PAGE_SIZE = 200
"""Events fetched per page."""
THUMB_SIZE = 56
"""Side of a thumbnail in the table, in pixels."""
THUMB_CACHE = 400
"""Decoded thumbnails kept (least recently painted ones are dropped first)."""

COLUMNS: tuple[str, ...] = ("thumbnail", "time", "camera", "decision", "person", *theme.MODEL_ORDER, "distance",
                            "guard")
HEADERS: dict[str, str] = {"thumbnail": "", "time": "Time", "camera": "Camera", "decision": "Decision",
                           "person": "Person", **theme.MODEL_NAMES, "distance": "Dist.", "guard": "Guard"}

ROW_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's :class:`~core.registry.EventRow`."""
SUBTEXT_ROLE = Qt.ItemDataRole.UserRole + 2
"""A cell's second, smaller line (the date under the time, the employee id under the name …)."""
STATE_ROLE = Qt.ItemDataRole.UserRole + 3
"""The decision state for :data:`gui.theme.DECISION_COLOURS` (``flagged`` wins)."""
SCORE_ROLE = Qt.ItemDataRole.UserRole + 4
"""A model column's ``(probability, identity shown or "")``, or ``None``."""

GUARD_WORDS = {"confirm": "\u2713 CONFIRMED", "let-in": "LET IN", "turn-away": "TURNED AWAY"}
GUARD_COLOURS = {"confirm": theme.DECISION_COLOURS["recognised"], "let-in": theme.DECISION_COLOURS["checking"],
                 "turn-away": theme.DECISION_COLOURS["unknown"]}


_FIELDS = tuple(f.name for f in fields(EventRow))


def _pack(row: EventRow) -> tuple[Any, ...]:
    """An event as a plain tuple of its fields.

    Python's cyclic garbage collector stops tracking a plain tuple of numbers, strings, times and
    such tuples, but it walks every dataclass instance on each full collection: holding 100,000
    :class:`EventRow` objects made those collections (and so a random ``fetchMore``) take ~55 ms more
    on this machine.  The rows are kept as tuples and turned back into records when asked for.
    """
    return tuple(getattr(row, name) for name in _FIELDS)


def decision_state(row: EventRow) -> str:
    """The key into :data:`gui.theme.DECISION_COLOURS` / ``DECISION_WORDS`` for an event."""
    if row.flagged:
        return "flagged"
    return row.decision if row.decision in theme.DECISION_COLOURS else "undecided"


def _local(t: datetime) -> datetime:
    return t.astimezone()


class EventsModel(QAbstractTableModel):
    """The events that match a filter, newest first; rows arrive a page at a time.

    Parameters
    ----------
    registry_path
        The registry file; the model opens its own connection to it (close it with :meth:`close`).
    page_size
        Events per fetched page.

    Attributes
    ----------
    fetch_ms
        How long each page fetch took (query + insertion), in milliseconds, for benchmarks.
    thumbnails_decoded
        How many thumbnails were read and decoded (only painted rows are).
    """

    countChanged = Signal(int)
    """How many events match the filter (all of them, fetched or not)."""

    def __init__(self, registry_path: Path, parent: QObject | None = None, *, page_size: int = PAGE_SIZE) -> None:
        super().__init__(parent)
        self.registry = Registry.open(registry_path)
        self.page_size = page_size
        self._filter = EventFilter()
        self._rows: list[tuple[Any, ...]] = []  # packed EventRows (see _pack)
        self._last: tuple[int, EventRow | None] = (-1, None)  # the row data() unpacked last
        self._ids: list[int] = []  # negated ids, ascending: bisect finds a row by event id
        self._exhausted = True
        self._through_id = 0  # newest event id the rows account for
        self._audit_mark = 0  # newest audit row whose guard action the rows account for
        self._total = 0
        self._thumbs: OrderedDict[int, QPixmap] = OrderedDict()
        self._open = True
        self.fetch_ms: list[float] = []
        self.thumbnails_decoded = 0
        self.reload()

    # ------------------------------------------------------------------------------------ loading

    @property
    def filter(self) -> EventFilter:
        """The filter the rows match."""
        return self._filter

    @property
    def total(self) -> int:
        """How many events match the filter (the rows fetched so far are :meth:`rowCount`)."""
        return self._total

    @property
    def through_id(self) -> int:
        """The newest event id the model has looked at: an export writes the events up to it."""
        return self._through_id

    def set_filter(self, flt: EventFilter) -> None:
        """Show the events that match ``flt``, starting again from the newest."""
        self._filter = flt
        self.reload()

    def reload(self) -> None:
        """Start again from the newest event: count the matches and fetch the first page."""
        self.beginResetModel()
        self._audit_mark = self.registry.chain_heads()["audit"][0]
        self._through_id = self.registry.latest_event_id()
        self._total = self.registry.count_events(self._filter, through_id=self._through_id)
        self._rows, self._ids, self._exhausted = [], [], False
        self._last = (-1, None)
        self._append(self.registry.event_page(self._filter, before_id=self._through_id + 1, limit=self.page_size))
        self.endResetModel()
        self.countChanged.emit(self._total)

    def _append(self, page: list[EventRow]) -> None:
        self._rows.extend(_pack(e) for e in page)
        self._ids.extend(-e.id for e in page)
        if len(page) < self.page_size:
            self._exhausted = True

    def canFetchMore(self, parent: _Index = _ROOT) -> bool:
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: _Index = _ROOT) -> None:
        if parent.isValid() or self._exhausted:
            return
        start = time.perf_counter()
        before = self._rows[-1][0] if self._rows else self._through_id + 1
        page = self.registry.event_page(self._filter, before_id=before, limit=self.page_size)
        if page:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(page) - 1)
            self._append(page)
            self.endInsertRows()
        else:
            self._exhausted = True
        self.fetch_ms.append((time.perf_counter() - start) * 1000)

    def refresh_newest(self) -> int:
        """Put the events written since the last look on top, and update changed guard actions.

        Returns how many events were added.
        """
        if not self._open:
            return 0
        added = 0
        while True:
            latest = self.registry.latest_event_id()
            new = self.registry.events_after(self._filter, self._through_id, limit=1000)
            self._through_id = max(latest, new[0].id if new else 0, self._through_id)
            if new:
                self.beginInsertRows(QModelIndex(), 0, len(new) - 1)
                self._rows[:0] = [_pack(e) for e in new]
                self._last = (-1, None)
                self._ids[:0] = [-e.id for e in new]
                self.endInsertRows()
                added += len(new)
            if len(new) < 1000:
                break
        self._update_guard_actions()
        if added:
            self._total += added
            self.countChanged.emit(self._total)
        return added

    def _update_guard_actions(self) -> None:
        while True:
            actions = self.registry.guard_actions_after(self._audit_mark)
            for action in actions:
                self._audit_mark = max(self._audit_mark, action.audit_id)
                self._set_guard(action)
            if len(actions) < 1000:
                return

    def _set_guard(self, action: GuardAction) -> None:
        row = self.row_of(action.event_id)
        if row is None:
            return
        self._rows[row] = _pack(replace(self.event_at(row), guard=action))
        self._last = (-1, None)
        col = COLUMNS.index("guard")
        self.dataChanged.emit(self.index(row, col), self.index(row, col))

    def row_of(self, event_id: int) -> int | None:
        """The row showing event ``event_id``, if it was fetched."""
        i = bisect.bisect_left(self._ids, -event_id)
        return i if i < len(self._ids) and self._ids[i] == -event_id else None

    def event_at(self, row: int) -> EventRow:
        """The event in ``row``."""
        last_row, event = self._last
        if last_row != row or event is None:
            # Painting asks for every cell of a row in turn: unpack each row once.
            event = EventRow(*self._rows[row])
            self._last = (row, event)
        return event

    def export_csv(self, path: Path, progress: Callable[[int, int], bool | None] | None = None) -> int:
        """Write every event matching the filter, up to the newest one looked at, to ``path``."""
        return self.registry.export_events_csv(self._filter, path, through_id=self._through_id, progress=progress)

    def cameras(self) -> list[str]:
        """The cameras that have events."""
        return self.registry.event_cameras()

    def close(self) -> None:
        """Close the model's registry connection (the rows stay, nothing more is fetched)."""
        self._exhausted = True
        self._open = False
        self._thumbs.clear()
        self.registry.close()

    # ------------------------------------------------------------------------------- Qt model API

    def rowCount(self, parent: _Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        column = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[column]
        if role == Qt.ItemDataRole.ForegroundRole and column in theme.MODEL_COLOURS:
            return theme.MODEL_COLOURS[column]
        if role == Qt.ItemDataRole.ToolTipRole and column in theme.MODEL_NAMES:
            return (f"{theme.MODEL_NAMES[column]}: its probability for the decided person, or its favourite "
                    "person and probability when it prefers someone else")
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self.event_at(index.row())
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == SUBTEXT_ROLE:
            return self._subtext(row, column)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(row) if column == "thumbnail" else None
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._colour(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if role == ROW_ROLE:
            return row
        if role == STATE_ROLE:
            return decision_state(row)
        if role == SCORE_ROLE:
            return self._score(row, column)
        return None

    # --------------------------------------------------------------------------------- cell values

    def _text(self, row: EventRow, column: str) -> str | None:
        if column == "time":
            return f"{_local(row.time):%H:%M:%S}"
        if column == "camera":
            return row.camera
        if column == "decision":
            word = theme.DECISION_WORDS[decision_state(row)]
            return f"{theme.FLAG_ICON} {word}" if row.flagged else word
        if column == "person":
            if row.erased:
                return "(erased)"
            return row.name or row.employee_id or "\u2014"
        if column in theme.MODEL_NAMES:
            score = self._score(row, column)
            return None if score is None else f"{score[0]:.2f}"
        if column == "distance":
            return "" if row.distance is None else f"{row.distance:.2f}"
        if column == "guard" and row.guard is not None:
            return GUARD_WORDS[row.guard.action]
        return None

    def _subtext(self, row: EventRow, column: str) -> str | None:
        if column == "time":
            day = _local(row.time).date()
            return "today" if day == datetime.now().astimezone().date() else f"{day:%a %d %b %Y}"
        if column == "decision":
            if row.flagged:
                return theme.DECISION_WORDS.get(row.decision, row.decision.upper()).lower()
            return "gallery only" if row.decision == "gallery-only" else None
        if column == "person" and row.name and row.employee_id:
            return row.employee_id
        if column == "guard" and row.guard is not None:
            return row.guard.reason or f"by {row.guard.actor}"
        return None

    def _score(self, row: EventRow, model: str) -> tuple[float, str] | None:
        score = row.score(model)
        if score is None:
            return None
        identity, p = score
        return p, "" if identity == row.employee_id else identity

    def _colour(self, row: EventRow, column: str) -> QColor | None:
        if column == "decision":
            return theme.DECISION_COLOURS[decision_state(row)]
        if column == "guard" and row.guard is not None:
            return GUARD_COLOURS[row.guard.action]
        if column == "person" and (row.erased or not row.employee_id):
            return theme.MUTED
        return None

    def _tooltip(self, row: EventRow, column: str) -> str | None:
        if column == "guard" and row.guard is not None:
            g = row.guard
            lines = [f"{GUARD_WORDS[g.action]} by {g.actor} at {_local(g.time):%Y-%m-%d %H:%M:%S}"]
            lines += [f"Reason: {g.reason}"] if g.reason else []
            lines += [f"Note: {g.note}"] if g.note else []
            return "\n".join(lines)
        when = f"{_local(row.time):%Y-%m-%d %H:%M:%S}"
        reason = row.reason or ("(erased)" if row.erased else "")
        return f"Event {row.id} · {row.camera} · {when} · model {row.model_version}\n{reason}".strip()

    # ------------------------------------------------------------------------------ thumbnails

    def thumbnail(self, row: EventRow) -> QPixmap | None:
        """The event's face, decoded on first use and cached (``None`` if it has none)."""
        if not row.has_thumbnail:
            return None
        pm = self._thumbs.get(row.id)
        if pm is not None:
            self._thumbs.move_to_end(row.id)
            return pm
        if not self._open:
            return None
        data = self.registry.event_thumbnail(row.id)
        img = QImage.fromData(data) if data else QImage()
        if img.isNull():
            return None
        pm = QPixmap.fromImage(img.scaled(THUMB_SIZE, THUMB_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation))
        self.thumbnails_decoded += 1
        self._thumbs[row.id] = pm
        while len(self._thumbs) > THUMB_CACHE:
            self._thumbs.popitem(last=False)
        return pm
