"""The Events view on real registry files: paging through 100,000 events, filtered CSV export, live
updates, guard actions, keyboard.  pytest-qt, offscreen; waits on conditions, never sleeps."""

from __future__ import annotations

import csv
import re
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QFileDialog, QMainWindow

from core.registry import FLAGGED, EventFilter, NewEvent, Registry
from gui import theme
from gui.events.model import COLUMNS, PAGE_SIZE, SUBTEXT_ROLE, THUMB_CACHE
from gui.events.view import ROW_HEIGHT, EventsView

T0 = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
PEOPLE = (("E1001", "Ada Lovelace"), ("E1002", "Grace Hopper"), ("E1003", "Søren Ørsted"))
CAMERAS = ("north", "south", "loading-bay")
CODES = ("recognised", "unknown", "recognised", "gallery-only", "undecided", "recognised")


def jpegs(n: int = 6) -> list[bytes]:
    """A few real 96 px JPEG thumbnails (a pale disc on a darker, noisy background)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = (rng.random((96, 96, 3)) * 50 + 20 * i).astype(np.uint8)
        cv2.circle(img, (48, 44), 30, (150 + 10 * i, 170, 200), -1)
        out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


def events(n: int, start: int = 0, thumbs: list[bytes] | None = None) -> list[NewEvent]:
    """``n`` events over three cameras and every decision code; every 13th is flagged."""
    out = []
    for i in range(start, start + n):
        code = CODES[i % len(CODES)]
        person = PEOPLE[i % 3][0]
        named = code in ("recognised", "gallery-only")
        rival = PEOPLE[(i + 1) % 3][0]
        probs = {"svc": {person: 0.87}, "stacker": {person: 0.95}, "super_learner": {rival if i % 13 == 0 else person: 1.0}}
        reason = "all three agree" + ("; FLAGGED: the models disagree" if i % 13 == 0 else "")
        out.append(NewEvent(CAMERAS[i % 3], code, person if named else None, probs, 0.6 + i % 50 / 100,
                            thumbs[i % len(thumbs)] if thumbs else None, "m1", reason, T0 + timedelta(seconds=10 * i)))
    return out


def make_registry(path: Path, n: int, batch: int = 10_000) -> Path:
    thumbs = jpegs()
    with Registry.open(path) as reg:
        for emp, name in PEOPLE:
            reg.add_operator(emp, name, "Ops", actor="hr")
        for start in range(0, n, batch):
            reg.record_events(events(min(batch, n - start), start, thumbs))
    return path


@pytest.fixture
def small_db(tmp_path: Path) -> Path:
    return make_registry(tmp_path / "facegate.db", 3000)


@pytest.fixture
def open_view(qtbot):
    views: list[EventsView] = []

    def _open(path: Path, size: tuple[int, int] = (1340, 640)) -> EventsView:
        view = EventsView(path)
        qtbot.addWidget(view)
        view.setStyleSheet(theme.STYLESHEET)
        view.resize(*size)
        view.show()
        qtbot.waitExposed(view)
        view.activateWindow()
        qtbot.waitUntil(view.isActiveWindow)
        views.append(view)
        return view

    yield _open
    for view in views:
        view.close_registry()


def shown_ids(view: EventsView) -> list[int]:
    return [view.model.event_at(i).id for i in range(view.model.rowCount())]


def fetch_all(view: EventsView) -> None:
    while view.model.canFetchMore(QModelIndex()):
        view.model.fetchMore(QModelIndex())


def cell(view: EventsView, row: int, column: str, role: int = Qt.ItemDataRole.DisplayRole):
    return view.model.index(row, COLUMNS.index(column)).data(role)


# -------------------------------------------------------------------------------------- scrolling


def test_scrolls_through_100000_events_fetching_pages_on_demand(qtbot, tmp_path: Path, open_view, capsys):
    path = make_registry(tmp_path / "facegate.db", 100_000)
    view = open_view(path)
    model = view.model
    assert model.total == 100_000
    assert model.rowCount() == PAGE_SIZE  # only the first page was read
    assert view.count_label.text() == "100,000 events"
    qtbot.waitUntil(lambda: model.thumbnails_decoded > 0)  # the rows on screen were painted
    visible = view.table.viewport().height() // ROW_HEIGHT + 2

    steps = 0
    while model.canFetchMore(QModelIndex()):
        before = model.rowCount()
        view.table.scrollToBottom()  # the view asks the model for the next page when it reaches the end
        qtbot.waitUntil(lambda n=before: model.rowCount() > n or not model.canFetchMore(QModelIndex()), timeout=10_000)
        assert model.rowCount() in (before + PAGE_SIZE, before)  # exactly one page at a time
        QApplication.processEvents()  # lay out and paint the rows now on screen, as while scrolling
        steps += 1
    view.table.scrollToBottom()
    qtbot.waitUntil(lambda: view.table.rowAt(view.table.viewport().height() - 1) == 100_000 - 1)

    assert model.rowCount() == 100_000 and len(model.fetch_ms) == steps == 100_000 // PAGE_SIZE
    ids = shown_ids(view)
    assert ids == list(range(100_000, 0, -1))  # newest first, none repeated or skipped
    # Thumbnails were decoded only for rows that were painted, and only a bounded number is kept.
    assert 0 < model.thumbnails_decoded <= (steps + 2) * visible < 100_000 // 5
    assert len(model._thumbs) <= THUMB_CACHE
    with capsys.disabled():
        print(f"\n100,000 events: {steps} fetchMore calls of {PAGE_SIZE}; median "
              f"{statistics.median(model.fetch_ms):.1f} ms, largest {max(model.fetch_ms):.1f} ms; "
              f"{model.thumbnails_decoded} thumbnails decoded")


# ------------------------------------------------------------------------------------------ export


def test_csv_export_writes_exactly_the_rows_shown_under_a_filter(qtbot, small_db: Path, tmp_path: Path, open_view,
                                                               monkeypatch):
    view = open_view(small_db)
    view.camera_box.setCurrentIndex(view.camera_box.findData("north"))
    view.decision_box.setCurrentIndex(view.decision_box.findData("recognised"))
    flt = EventFilter(camera="north", decision="recognised")
    assert view.filter() == flt
    assert view.model.rowCount() == PAGE_SIZE < view.model.total  # not everything is fetched yet
    assert view.count_label.text() == f"{view.model.total:,} events match"

    target = tmp_path / "shown.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "CSV files (*.csv)"))
    view.table.setFocus()
    qtbot.keyClick(view.table, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)  # Ctrl+E
    qtbot.waitUntil(target.exists)
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    fetch_all(view)
    assert [int(r["id"]) for r in rows] == shown_ids(view)
    assert len(rows) == view.model.total == 3000 // 6
    assert {(r["camera"], r["decision"]) for r in rows} == {("north", "recognised")}
    assert view.message.text() == f"Wrote {len(rows):,} events to {target}"

    # The public call gives the same rows; a flagged filter too.
    view.set_filter(EventFilter(decision=FLAGGED))
    assert view.decision_box.currentData() == FLAGGED
    n = view.export_csv(tmp_path / "flagged.csv")
    flagged = list(csv.DictReader((tmp_path / "flagged.csv").open(encoding="utf-8")))
    fetch_all(view)
    assert n == len(flagged) == view.model.total == len([i for i in range(3000) if i % 13 == 0])
    assert [int(r["id"]) for r in flagged] == shown_ids(view)
    assert {r["flagged"] for r in flagged} == {"1"}


def test_filter_bar_person_and_time_range(qtbot, small_db: Path, open_view):
    view = open_view(small_db)
    qtbot.keyClick(view.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)  # Ctrl+F
    assert view.person_edit.hasFocus()
    qtbot.keyClicks(view.person_edit, "ØRSTED")
    qtbot.waitUntil(lambda: view.filter().person == "ØRSTED")
    fetch_all(view)
    assert {view.model.event_at(i).employee_id for i in range(view.model.rowCount())} == {"E1003"}
    assert cell(view, 0, "person") == "Søren Ørsted" and cell(view, 0, "person", SUBTEXT_ROLE) == "E1003"

    since, until = T0 + timedelta(seconds=1000), T0 + timedelta(seconds=2000)
    view.set_filter(EventFilter(since=since, until=until))
    assert view.dates_row.isVisibleTo(view) and view.person_edit.text() == ""
    assert view.model.total == 100 and shown_ids(view) == list(range(200, 100, -1))
    qtbot.keyClick(view.table, Qt.Key.Key_Escape)
    assert view.filter() == EventFilter() and view.model.total == 3000

    view.set_filter(EventFilter(person="nobody here"))
    assert view.stack.currentWidget() is view.empty and "No events match" in view.empty.text()


# ------------------------------------------------------------------------------------ live updates


def test_a_new_event_appears_on_top_after_refresh_newest(qtbot, small_db: Path, open_view):
    view = open_view(small_db)
    assert shown_ids(view)[0] == 3000
    with Registry.open(small_db) as writer:  # what the live session's event writer does
        new_id = writer.record_events(events(1, start=3000, thumbs=jpegs(1)))[0]
        assert view.refresh_newest() == 1
        assert shown_ids(view)[:2] == [new_id, 3000] and view.model.total == 3001
        assert view.count_label.text() == "3,001 events"
        assert view.refresh_newest() == 0

        # Under a filter, only matching events come in; a new camera joins the camera list.
        view.set_filter(EventFilter(camera="gate-4"))
        assert view.stack.currentWidget() is view.empty
        writer.record_event("north", "unknown", None, {}, 1.2, None, "m1")
        gate4 = writer.record_event("gate-4", "unknown", None, {}, 1.2, None, "m1")
        assert view.refresh_newest() == 1 and shown_ids(view) == [gate4]
        assert view.stack.currentWidget() is view.table
        cameras = [view.camera_box.itemData(i) for i in range(view.camera_box.count())]
        assert cameras.count("gate-4") == 1 and cameras.count("north") == 1

        # Further down the list, the rows on screen stay where they are while new ones arrive.
        view.set_filter(EventFilter())
        bar = view.table.verticalScrollBar()
        qtbot.waitUntil(lambda: bar.maximum() > 50 * ROW_HEIGHT)  # the reset table is laid out
        bar.setValue(50 * ROW_HEIGHT)
        top = view.table.indexAt(view.table.viewport().rect().topLeft()).row()
        assert top == 50
        event_on_top = view.model.event_at(top).id
        writer.record_events(events(3, start=4000))
        assert view.refresh_newest() == 3
        assert view.model.event_at(view.table.indexAt(view.table.viewport().rect().topLeft()).row()).id == event_on_top


# ----------------------------------------------------------------------------------- guard actions


def test_confirm_and_override_appear_in_the_guard_column_and_verify_passes(qtbot, small_db: Path, open_view):
    with Registry.open(small_db) as writer:
        before = writer.record_guard_action(2990, "confirm", reason="", actor="guard:night")
    view = open_view(small_db)
    row = view.model.row_of(2990)
    assert cell(view, row, "guard") == "\u2713 CONFIRMED" and cell(view, row, "guard", SUBTEXT_ROLE) == "by guard:night"

    with Registry.open(small_db) as writer:  # what the session worker does when the guard answers
        confirm = writer.record_guard_action(3000, "confirm", reason="", actor="guard:jdoe")
        override = writer.record_guard_action(2999, "turn-away", reason="looks like someone else",
                                              note="asked for a badge", actor="guard:jdoe")
        let_in = writer.record_guard_action(2990, "let-in", reason="badge checked", actor="guard:jdoe")
        changed = []
        view.model.dataChanged.connect(lambda a, b: changed.append(a.row()))
        view.refresh_newest()
        assert sorted(changed) == sorted(view.model.row_of(i) for i in (3000, 2999, 2990))
        assert view.model.event_at(0).guard == confirm and view.model.event_at(1).guard == override
        assert cell(view, 0, "guard") == "\u2713 CONFIRMED"
        assert cell(view, 1, "guard") == "TURNED AWAY"
        assert cell(view, 1, "guard", SUBTEXT_ROLE) == "looks like someone else"
        assert "asked for a badge" in cell(view, 1, "guard", Qt.ItemDataRole.ToolTipRole)
        assert cell(view, row, "guard") == "LET IN" and view.model.event_at(row).guard == let_in != before
        assert writer.verify() == []
        actions = [a.action for a in writer.audit_log() if a.action.startswith("guard_")]
        assert actions == ["guard_confirm", "guard_confirm", "guard_turn_away", "guard_let_in"]


# ----------------------------------------------------------------------------- cells and keyboard


def test_cells_show_decision_words_flags_and_each_models_favourite(qtbot, small_db: Path, open_view):
    view = open_view(small_db)
    rows = {view.model.event_at(i).id: i for i in range(view.model.rowCount())}
    flagged = rows[2990 + 1]  # event index 2990 (id 2991) is flagged: 2990 % 13 == 0
    assert cell(view, flagged, "decision") == f"{theme.FLAG_ICON} FLAGGED"
    assert cell(view, flagged, "decision", Qt.ItemDataRole.ForegroundRole) == theme.DECISION_COLOURS["flagged"]
    named = view.model.event_at(flagged)
    assert cell(view, flagged, "svc") == "0.87" and cell(view, flagged, "super_learner") == "1.00"
    rival = PEOPLE[(2990 + 1) % 3][0]
    assert view.model.index(flagged, COLUMNS.index("super_learner")).data(Qt.ItemDataRole.UserRole + 4) == (1.0, rival)
    assert view.model.index(flagged, COLUMNS.index("svc")).data(Qt.ItemDataRole.UserRole + 4) == (0.87, "")
    assert named.employee_id != rival
    unknown = rows[3000 - 4]  # index 2995: 'unknown'
    assert cell(view, unknown, "decision") == "UNKNOWN" and cell(view, unknown, "person") == "\u2014"
    assert view.model.index(unknown, COLUMNS.index("svc")).data(Qt.ItemDataRole.UserRole + 4)[1] != ""
    assert cell(view, rows[3000 - 2], "decision", SUBTEXT_ROLE) == "gallery only"
    assert cell(view, 0, "time", SUBTEXT_ROLE).endswith("2026")


def test_enter_and_double_click_open_an_event_even_under_window_shortcuts(qtbot, small_db: Path, open_view):
    window = QMainWindow()
    qtbot.addWidget(window)
    confirmed = []
    for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):  # the main window confirms on Enter
        shortcut = QShortcut(QKeySequence(key), window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(lambda: confirmed.append(True))
    view = EventsView(small_db)
    window.setCentralWidget(view)
    window.resize(1340, 640)
    window.show()
    qtbot.waitExposed(window)
    try:
        assert view.selected_event_id() is None
        view.table.selectRow(3)
        view.table.setFocus()
        assert view.selected_event_id() == 2997
        with qtbot.waitSignal(view.eventActivated) as opened:
            qtbot.keyClick(view.table, Qt.Key.Key_Return)
        assert opened.args == [2997] and confirmed == []
        rect = view.table.visualRect(view.model.index(5, COLUMNS.index("person")))
        with qtbot.waitSignal(view.eventActivated) as opened:  # a real double click: click, then double click
            qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
            qtbot.mouseDClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        assert opened.args == [2995]
    finally:
        view.close_registry()


def test_an_empty_registry_says_so(qtbot, tmp_path: Path, open_view):
    with Registry.open(tmp_path / "facegate.db"):
        pass
    view = open_view(tmp_path / "facegate.db")
    assert view.model.rowCount() == 0 and view.count_label.text() == "No events"
    assert view.stack.currentWidget() is view.empty and "No events yet" in view.empty.text()
    view.grab()  # paints without a registry row


def test_widgets_never_reach_into_the_database():
    for source in (Path(__file__).parents[2] / "gui" / "events").glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\b|sqlite3|\.db\.conn", text), source
