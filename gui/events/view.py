"""The Events view: every decision at the gate, newest first, with a filter bar and CSV export.

Built from :class:`~gui.events.model.EventsModel` (which asks the registry API, never SQL); the
main window calls :meth:`EventsView.refresh_newest` whenever the live session writes an event or a
guard answers one.  Keyboard: Ctrl+F filter, Ctrl+E export, Esc clear the filter, Enter or a double
click opens an event (:attr:`EventsView.eventActivated`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QDateTime, QEvent, QModelIndex, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressDialog,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.errors import FaceGateError
from core.registry import DECISION_CODES, FLAGGED, EventFilter
from gui import theme
from gui.events.delegates import MAIN_PT, DecisionDelegate, ScoreDelegate, TextDelegate, ThumbDelegate
from gui.events.model import COLUMNS, THUMB_SIZE, EventsModel

log = logging.getLogger(__name__)

ROW_HEIGHT = THUMB_SIZE + 10
"""Height of a table row, in pixels."""

#: Time range choices: label → how far back (``None``: any time; ``"custom"``: the two date fields).
TIME_RANGES: tuple[tuple[str, timedelta | str | None], ...] = (
    ("Any time", None), ("Last hour", timedelta(hours=1)), ("Last 24 hours", timedelta(days=1)),
    ("Last 7 days", timedelta(days=7)), ("Last 30 days", timedelta(days=30)), ("From … to …", "custom"),
)
#: Decision choices: label → :attr:`EventFilter.decision`.
DECISIONS: tuple[tuple[str, str | None], ...] = (
    ("All decisions", None), ("Recognised", "recognised"), ("Recognised (gallery only)", "gallery-only"),
    ("Unknown", "unknown"), (f"{theme.FLAG_ICON} Flagged", FLAGGED), ("Undecided", "undecided"),
)
assert {d for _, d in DECISIONS} == {None, FLAGGED, *DECISION_CODES}

#: Column widths in pixels, (narrowest, preferred): below the preferred total every column gives way
#: in proportion (still readable at 1366×768); above it the extra goes to the columns in _EXTRA.
_WIDTHS: dict[str, tuple[int, int]] = {
    "thumbnail": (THUMB_SIZE + 16, THUMB_SIZE + 16), "time": (96, 108), "camera": (80, 128),
    "decision": (156, 164), "person": (140, 200), "svc": (96, 120), "stacker": (96, 120),
    "super_learner": (112, 130), "distance": (70, 84), "guard": (140, 190)}
_EXTRA = {"person": 0.45, "guard": 0.4, "camera": 0.15}


def column_widths(available: int) -> list[int]:
    """The width of each column of :data:`~gui.events.model.COLUMNS` for a table ``available`` px wide."""
    low = sum(w[0] for w in _WIDTHS.values())
    high = sum(w[1] for w in _WIDTHS.values())
    if available >= high:
        extra = available - high
        return [_WIDTHS[c][1] + int(extra * _EXTRA.get(c, 0.0)) for c in COLUMNS]
    t = max(0.0, (available - low) / (high - low))
    return [round(_WIDTHS[c][0] + t * (_WIDTHS[c][1] - _WIDTHS[c][0])) for c in COLUMNS]


class _Table(QTableView):
    """The table; fits its columns to its width whenever that changes."""

    def shift_rows(self, rows: int) -> None:
        """Scroll down by ``rows`` rows at once (to keep what is on screen after rows were put on top)."""
        self.updateGeometries()  # the scroll range must know the new rows before the value moves
        bar = self.verticalScrollBar()
        bar.setValue(bar.value() + rows * ROW_HEIGHT)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        for i, width in enumerate(column_widths(self.viewport().width() - 2)):
            self.setColumnWidth(i, width)


class _KeepKeys(QObject):
    """Lets a widget have Enter/Return even where the window has shortcuts on them (confirm)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) and event.key() in (
                Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event.accept()
            return True
        return False


class EventsView(QWidget):
    """The event log of one registry: filter bar, table (newest first), count, CSV export.

    Parameters
    ----------
    registry_path
        The registry file; the view reads it through its own connection (:meth:`close_registry`).
    """

    eventActivated = Signal(int)
    """An event was opened (double click, or Enter on its row): its id."""

    def __init__(self, registry_path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = EventsModel(Path(registry_path), self)
        self._applying = False
        self._keep_keys = _KeepKeys(self)
        self._debounce = QTimer(self, singleShot=True, interval=350)
        self._debounce.timeout.connect(self._apply_widgets)

        self._build_filter_bar()
        self._build_table()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        layout.addLayout(self._bar)
        self.dates_row = QWidget(self)
        dates = QHBoxLayout(self.dates_row)
        dates.setContentsMargins(0, 0, 0, 0)
        for text, edit in (("From", self.since_edit), ("to", self.until_edit)):
            label = QLabel(text, self.dates_row)
            label.setFont(theme.font(13))
            dates.addWidget(label)
            dates.addWidget(edit)
        dates.addStretch(1)
        self.dates_row.setVisible(False)
        layout.addWidget(self.dates_row)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.table)
        self.empty = QLabel("", self)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setFont(theme.font(18))
        self.empty.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.stack.addWidget(self.empty)
        layout.addWidget(self.stack, 1)

        for keys, slot in (("Ctrl+F", self.focus_filter), ("Ctrl+E", self._export_clicked),
                           ("Esc", self.clear_filter)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        self.model.countChanged.connect(self._show_count)
        self.model.modelReset.connect(lambda: self._show_count(self.model.total))
        self._refresh_cameras()
        self._show_count(self.model.total)

    # ------------------------------------------------------------------------------- building

    def _build_filter_bar(self) -> None:
        bar = self._bar = QHBoxLayout()
        bar.setSpacing(8)
        big = theme.font(13)
        self.range_box = QComboBox(self)
        for label, value in TIME_RANGES:
            self.range_box.addItem(label, value)
        self.since_edit = QDateTimeEdit(self)
        self.until_edit = QDateTimeEdit(self)
        now = QDateTime.currentDateTime()
        self.since_edit.setDateTime(now.addDays(-1))
        self.until_edit.setDateTime(now.addSecs(3600))
        for edit in (self.since_edit, self.until_edit):
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
            edit.setCalendarPopup(True)
            edit.dateTimeChanged.connect(lambda _: self._debounce.start())
        self.person_edit = QLineEdit(self)
        self.person_edit.setPlaceholderText("Person (id or name)  [Ctrl+F]")
        self.person_edit.setClearButtonEnabled(True)
        self.person_edit.setMinimumWidth(270)
        self.person_edit.textChanged.connect(lambda _: self._debounce.start())
        self.person_edit.returnPressed.connect(self._apply_widgets)
        self.person_edit.installEventFilter(self._keep_keys)
        self.decision_box = QComboBox(self)
        for label, value in DECISIONS:
            self.decision_box.addItem(label, value)
        self.camera_box = QComboBox(self)
        self.camera_box.addItem("All cameras", None)
        self.clear_button = QPushButton("Clear  [Esc]", self)
        self.clear_button.clicked.connect(self.clear_filter)
        self.count_label = QLabel(self)
        self.count_label.setFont(theme.font(14, bold=True))
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.message = QLabel(self)
        self.message.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.export_button = QPushButton("Export CSV  [Ctrl+E]", self)
        self.export_button.setToolTip("Write every event that matches the filter (not only those on screen) "
                                      "to a CSV file")
        self.export_button.clicked.connect(self._export_clicked)
        self.range_box.currentIndexChanged.connect(self._range_changed)
        self.decision_box.currentIndexChanged.connect(lambda _: self._apply_widgets())
        self.camera_box.currentIndexChanged.connect(lambda _: self._apply_widgets())
        for w in (self.range_box, self.since_edit, self.until_edit, self.person_edit, self.decision_box,
                  self.camera_box, self.clear_button, self.export_button, self.message):
            w.setFont(big)
        for w in (self.range_box, self.person_edit, self.decision_box, self.camera_box, self.clear_button):
            bar.addWidget(w)
        for box in (self.range_box, self.decision_box, self.camera_box):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        bar.addWidget(self.message, 1)
        bar.addWidget(self.count_label)
        bar.addWidget(self.export_button)

    def _build_table(self) -> None:
        table = self.table = _Table(self)
        table.setModel(self.model)
        table.setFont(theme.font(MAIN_PT))
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        table.setAlternatingRowColors(True)
        table.setShowGrid(False)
        table.setWordWrap(False)
        table.setSortingEnabled(False)  # always newest first: that is how the pages come
        rows = table.verticalHeader()
        rows.setVisible(False)
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(ROW_HEIGHT)
        header = table.horizontalHeader()
        header.setFont(theme.font(11, bold=True))
        header.setMinimumSectionSize(60)
        header.setHighlightSections(False)
        header.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._delegates = []
        for i, column in enumerate(COLUMNS):
            if column == "thumbnail":
                delegate: TextDelegate | DecisionDelegate | ScoreDelegate | ThumbDelegate = ThumbDelegate(table)
            elif column == "decision":
                delegate = DecisionDelegate(table)
            elif column in theme.MODEL_ORDER:
                delegate = ScoreDelegate(column, table)
            else:
                delegate = TextDelegate(table, bold=column == "person")
            self._delegates.append(delegate)  # the view does not own its delegates
            table.setItemDelegateForColumn(i, delegate)
        table.activated.connect(self._activated)
        table.installEventFilter(self._keep_keys)

    # ---------------------------------------------------------------------------------- public API

    def refresh_newest(self) -> int:
        """Put events written since the last look on top (and refresh guard actions); how many were added.

        The guard's place is kept: at the top, new events show up; further down, the rows on screen
        stay where they are.
        """
        scrolled = self.table.verticalScrollBar().value() > 0
        added = self.model.refresh_newest()
        if added and scrolled:
            self.table.shift_rows(added)
        if added:
            self._refresh_cameras()
        return added

    def set_filter(self, flt: EventFilter) -> None:
        """Show the events that match ``flt`` (the filter bar shows it too)."""
        self._debounce.stop()
        self._applying = True
        try:
            custom = flt.since is not None or flt.until is not None
            self.range_box.setCurrentIndex(len(TIME_RANGES) - 1 if custom else 0)
            self._show_dates(custom)
            if flt.since is not None:
                self.since_edit.setDateTime(QDateTime(flt.since.astimezone().replace(tzinfo=None)))
            if flt.until is not None:
                self.until_edit.setDateTime(QDateTime(flt.until.astimezone().replace(tzinfo=None)))
            self.person_edit.setText(flt.person)
            self._select(self.decision_box, flt.decision, flt.decision or "")
            self._select(self.camera_box, flt.camera, flt.camera or "")
        finally:
            self._applying = False
        self._debounce.stop()  # the widgets' own change signals must not re-apply a rounded copy
        self._load(flt)

    def filter(self) -> EventFilter:
        """The filter the table shows."""
        return self.model.filter

    def export_csv(self, path: Path | str) -> int:
        """Write every event that matches the filter (fetched or not) to ``path``; return how many.

        Written to a temporary file and renamed.  A progress dialog with Cancel shows if it takes
        more than half a second.  Raises :class:`~core.errors.FaceGateError` if the file cannot be
        written or the guard cancelled (the file is then left as it was).
        """
        dialog = QProgressDialog(f"Writing events to {Path(path).name}…", "Cancel", 0, max(1, self.model.total), self)
        dialog.setWindowTitle("Export CSV")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(500)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)

        def progress(done: int, total: int) -> bool:
            dialog.setMaximum(max(1, total))
            dialog.setValue(min(done, max(1, total)))
            return not dialog.wasCanceled()

        try:
            return self.model.export_csv(Path(path), progress)
        finally:
            dialog.close()
            dialog.deleteLater()

    def selected_event_id(self) -> int | None:
        """The id of the selected event, or ``None``."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.event_at(rows[0].row()).id

    def focus_filter(self) -> None:
        """Put the cursor in the person field of the filter bar."""
        self.person_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.person_edit.selectAll()

    def clear_filter(self) -> None:
        """Show every event again."""
        self.set_filter(EventFilter())
        self.table.setFocus()

    def close_registry(self) -> None:
        """Close the view's registry connection (call when the window closes)."""
        self._debounce.stop()
        self.model.close()

    # -------------------------------------------------------------------------------------- slots

    def _range_changed(self, _: int) -> None:
        self._show_dates(self.range_box.currentData() == "custom")
        self._apply_widgets()

    def _show_dates(self, visible: bool) -> None:
        self.dates_row.setVisible(visible)

    def _widget_filter(self) -> EventFilter:
        span = self.range_box.currentData()
        since = until = None
        if span == "custom":
            since = self.since_edit.dateTime().toPython()
            until = self.until_edit.dateTime().toPython()
        elif isinstance(span, timedelta):
            since = datetime.now().astimezone() - span
        return EventFilter(since=since, until=until, person=self.person_edit.text().strip(),
                           decision=self.decision_box.currentData(), camera=self.camera_box.currentData())

    def _apply_widgets(self) -> None:
        if self._applying:
            return
        self._debounce.stop()
        try:
            flt = self._widget_filter()
        except FaceGateError as exc:
            self._say(str(exc), error=True)
            return
        if flt != self.model.filter:
            self._load(flt)

    def _load(self, flt: EventFilter) -> None:
        try:
            self.model.set_filter(flt)
        except FaceGateError as exc:
            log.warning("events view: %s", exc)
            self._say(str(exc), error=True)
            return
        self._say("")
        if self.model.rowCount():
            self.table.scrollToTop()

    def _show_count(self, total: int) -> None:
        filtered = not self.model.filter.is_empty
        if total == 0:
            self.count_label.setText("No events")
            self.empty.setText("No events match the filter.   [Esc] clears it" if filtered else
                               "No events yet: they appear here as the cameras see people.")
            self.stack.setCurrentWidget(self.empty)
            return
        if filtered:
            self.count_label.setText(f"{total:,} {'event matches' if total == 1 else 'events match'}")
        else:
            self.count_label.setText(f"{total:,} {'event' if total == 1 else 'events'}")
        self.stack.setCurrentWidget(self.table)

    def _refresh_cameras(self) -> None:
        try:
            cameras = self.model.cameras()
        except FaceGateError as exc:
            log.warning("events view: %s", exc)
            return
        shown = [self.camera_box.itemData(i) for i in range(1, self.camera_box.count())]
        missing = [c for c in cameras if c not in shown]
        if missing:
            self._applying = True
            try:
                for camera in missing:
                    self.camera_box.addItem(camera, camera)
            finally:
                self._applying = False

    def _activated(self, index: QModelIndex) -> None:
        if index.isValid():
            self.eventActivated.emit(self.model.event_at(index.row()).id)

    def _export_clicked(self) -> None:
        default = Path.home() / f"facegate-events-{datetime.now():%Y%m%d-%H%M}.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export the events shown to CSV", str(default),
                                              "CSV files (*.csv)")
        if not path:
            return
        try:
            n = self.export_csv(path)
        except FaceGateError as exc:
            self._say(str(exc), error=True)
            return
        self._say(f"Wrote {n:,} events to {path}")

    def _say(self, text: str, error: bool = False) -> None:
        colour = theme.DECISION_COLOURS["unknown"] if error else theme.MUTED
        self.message.setStyleSheet(f"color: {colour.name()};")
        self.message.setText(text)
        self.message.setToolTip(text)

    # ------------------------------------------------------------------------------------- helpers

    def _select(self, box: QComboBox, value: str | None, label: str) -> None:
        i = box.findData(value)
        if i < 0:
            box.addItem(label, value)
            i = box.count() - 1
        box.setCurrentIndex(i)
