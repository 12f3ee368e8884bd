"""The Events view over a large event log: page fetches, paints, filter changes, live updates, export.

Run from the repository root::

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_events_view.py
    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_events_view.py --events 300000 --out /tmp/ev.json

It writes ``--events`` events (100,000) with real 96 px JPEG thumbnails into a new registry (through
``Registry.record_events`` in batches of 10,000; ``--db FILE`` reuses a registry instead), opens
:class:`gui.events.view.EventsView` at 1340×640 (the Events tab of a 1366×768 console) and measures,
on the GUI thread:

- ``open_ms``: building the view (its registry connection, the count, the first page);
- ``fetch_ms``: each ``fetchMore`` while scrolling to the very end (``scrollToBottom`` and
  ``processEvents`` per page, so the rows on screen are laid out and painted as they would be);
- ``paint_ms``: a synchronous ``viewport().repaint()`` after each page (thumbnails decoded lazily
  for the rows on screen);
- ``filter_ms``: switching the filter (count + first page) for a few typical filters;
- ``refresh_ms``: ``refresh_newest()`` after one new event is written from another connection;
- ``export_s``: the CSV export of every event;
- ``gc_full_ms``: a full garbage collection with every row loaded (the model keeps rows as plain
  tuples so it adds little), and the resident memory before and after loading every row.

Figures are medians, 90th percentiles and maxima; the machine and its load average are recorded.
No assertions: the tests check behaviour, this measures it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.registry import FLAGGED, EventFilter, NewEvent, Registry

PEOPLE = tuple((f"E{1000 + i}", f"Operator {i}") for i in range(50))
CAMERAS = ("north", "south", "loading-bay", "gate-4")
CODES = ("recognised", "unknown", "recognised", "gallery-only", "undecided", "recognised", "recognised")


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(values), "median": round(statistics.median(ordered), 3),
            "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 3), "max": round(ordered[-1], 3)}


def machine() -> dict[str, Any]:
    import PySide6

    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "pyside6": PySide6.__version__, "qpa": os.environ.get("QT_QPA_PLATFORM", "")}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def build(path: Path, n: int) -> float:
    """Write ``n`` events; return the seconds it took."""
    from tests.gui.test_events_view import jpegs  # the tests' real JPEG thumbnails

    thumbs = jpegs(16)
    t0 = time.perf_counter()
    start = datetime.now(UTC) - timedelta(seconds=20 * n)
    with Registry.open(path) as reg:
        for emp, name in PEOPLE:
            reg.add_operator(emp, name, "Ops", actor="bench")
        for first in range(0, n, 10_000):
            batch = []
            for i in range(first, min(n, first + 10_000)):
                code = CODES[i % len(CODES)]
                person = PEOPLE[i % len(PEOPLE)][0]
                probs = {"svc": {person: 0.87}, "stacker": {person: 0.95}, "super_learner": {person: 1.0}}
                reason = "all three agree" + ("; FLAGGED: the models disagree" if i % 29 == 0 else "")
                batch.append(NewEvent(CAMERAS[i % len(CAMERAS)], code,
                                      person if code in ("recognised", "gallery-only") else None, probs,
                                      0.5 + i % 60 / 100, thumbs[i % len(thumbs)], "bench", reason,
                                      start + timedelta(seconds=20 * i)))
            reg.record_events(batch)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to write (default 100,000)")
    parser.add_argument("--db", type=Path, help="use this registry instead of writing a new one")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QModelIndex
    from PySide6.QtWidgets import QApplication

    from gui import theme
    from gui.events.view import EventsView

    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {"machine": machine(), "load_before": round(load_before, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "facegate.db"
        if args.db is None:
            result["write_s"] = round(build(path, args.events), 2)
        app = QApplication.instance() or QApplication([])
        app.setStyleSheet(theme.STYLESHEET)
        rss0 = rss_mb()
        t0 = time.perf_counter()
        view = EventsView(path)
        result["open_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        view.resize(1340, 640)
        view.show()
        app.processEvents()
        model = view.model
        result["events"] = model.total

        paint = []
        while model.canFetchMore(QModelIndex()):
            view.table.scrollToBottom()
            app.processEvents()
            t0 = time.perf_counter()
            view.table.viewport().repaint()
            paint.append((time.perf_counter() - t0) * 1000)
        result["fetch_ms"] = stats(model.fetch_ms)
        result["paint_ms"] = stats(paint)
        result["thumbnails_decoded"] = model.thumbnails_decoded
        result["rows_loaded"] = model.rowCount()
        gc.collect()
        t0 = time.perf_counter()
        gc.collect()
        result["gc_full_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        result["rss_mb"] = {"before": round(rss0, 1), "all_rows_loaded": round(rss_mb(), 1)}

        filters = {"camera": EventFilter(camera="south"), "camera+decision": EventFilter(camera="south", decision="unknown"),
                   "flagged": EventFilter(decision=FLAGGED), "person": EventFilter(person="operator 7"),
                   "no match": EventFilter(camera="nowhere"),
                   "last day": EventFilter(since=datetime.now(UTC) - timedelta(days=1))}
        result["filter_ms"] = {}
        for name, flt in filters.items():
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                view.set_filter(flt)
                times.append((time.perf_counter() - t0) * 1000)
                matches = model.total
                app.processEvents()
                view.set_filter(EventFilter())
            result["filter_ms"][name] = {"median": round(statistics.median(times), 2), "matches": matches}

        refresh = []
        with Registry.open(path) as writer:
            for _ in range(50):
                writer.record_event("north", "unknown", None, {}, 1.2, None, "bench")
                t0 = time.perf_counter()
                view.refresh_newest()
                refresh.append((time.perf_counter() - t0) * 1000)
        result["refresh_ms"] = stats(refresh)

        t0 = time.perf_counter()
        written = view.export_csv(Path(tmp) / "all.csv")
        result["export_s"] = round(time.perf_counter() - t0, 2)
        result["export_rows"] = written
        view.close_registry()
        view.deleteLater()
    result["load_after"] = round(os.getloadavg()[0], 2)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
