"""The model comparison view: the active version's thesis tables (left) and a live chart (right).

The main window feeds it every :class:`~core.live.monitor.FrameResult` of the focused camera
(:meth:`ComparisonView.add_frame`, ~25 a second).  Each frame only appends to small numpy buffers
(:mod:`gui.comparison.history`); a 100 ms timer redraws the chart when something changed and the
view is visible, so the chart costs at most ~10 redraws a second whatever the frame rate.

The tables come from :func:`core.registry.report.version_report`, read in a short-lived worker thread
by :meth:`ComparisonView.load_report` (it imports scikit-learn and loads the model file: about a
second, which must not freeze the console), or handed over ready-made with :meth:`set_report`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.errors import FaceGateError
from core.live.monitor import FrameResult
from core.live.tracking import TrackState, TrackView
from core.registry.report import VersionReport
from gui import theme
from gui.comparison.history import TrackHistory
from gui.comparison.live_chart import LiveChart
from gui.comparison.report_panel import ReportPanel
from gui.threads import start_worker, stop_thread

log = logging.getLogger(__name__)

REDRAW_MS = 100
MAX_HISTORIES = 8  # faces remembered per camera (each ~10 kB)


class _ReportLoader(QObject):
    """Reads a version report off the GUI thread (its own registry connection, as every thread)."""

    done = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, generation: int, registry_path: Path, models_dir: Path) -> None:
        super().__init__()
        self.generation = generation
        self.registry_path = registry_path
        self.models_dir = models_dir

    @Slot()
    def run(self) -> None:
        from core.registry import Registry
        from core.registry.report import version_report

        try:
            if not self.registry_path.is_file():
                raise FaceGateError(f"There is no registry at {self.registry_path}: enroll people and "
                                    "train a model first.")
            with Registry.open(self.registry_path) as registry:
                report = version_report(registry, self.models_dir)
        except FaceGateError as exc:
            self.failed.emit(self.generation, str(exc))
        except Exception as exc:  # a bug: say so in the view, keep the console running
            log.exception("reading the model version's figures failed")
            self.failed.emit(self.generation, f"The model's figures could not be read ({exc}).")
        else:
            self.done.emit(self.generation, report)


def decision_word(track: TrackView, flagged: bool) -> tuple[str, str]:
    """The word and colour key of ``track``'s decision, as the feed shows it."""
    if flagged:
        return f"FLAGGED {theme.FLAG_ICON}", "flagged"
    key = {TrackState.NAMED: "recognised", TrackState.UNKNOWN: "unknown"}.get(track.state, "checking")
    return theme.DECISION_WORDS[key], key


class ComparisonView(QWidget):
    """Thesis tables of the active model version and a live chart of the three models for one face.

    Signals
    -------
    reportLoaded(VersionReport)
        :meth:`load_report` finished and the tables show its figures.
    reportFailed(str)
        :meth:`load_report` failed; the sentence is shown in place of the tables.
    redrawn()
        The chart was redrawn (at most every 100 ms, only when new data arrived).
    trackSelected(str, object)
        The user picked a face in the view's own selector (camera, track id or ``None`` = follow).
    """

    reportLoaded = Signal(object)
    reportFailed = Signal(str)
    redrawn = Signal()
    trackSelected = Signal(str, object)

    def __init__(self, parent: QWidget | None = None, *, capacity: int = 300,
                 min_interval: float = 0.1) -> None:
        super().__init__(parent)
        self.capacity = capacity
        self.min_interval = min_interval
        self.camera: str | None = None
        self.selected_track: int | None = None  # None: follow the newest face
        self.shown_track: int | None = None
        self.histories: dict[int, TrackHistory] = {}
        self.in_view: dict[int, TrackView] = {}
        self.last_captured: float | None = None
        self.frames_seen = 0
        self._dirty = False
        self._combo_key: tuple[object, ...] = ()
        self._generation = 0
        self._loader: _ReportLoader | None = None
        self._loader_thread: QThread | None = None

        self.panel = ReportPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumWidth(430)
        self.scroll = scroll

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(8, 8, 8, 8)
        rl.setSpacing(6)
        top = QHBoxLayout()
        self.track_title = QLabel()
        self.track_title.setFont(theme.font(15, bold=True))
        self.track_title.setTextFormat(Qt.TextFormat.RichText)
        self.track_title.setWordWrap(True)
        top.addWidget(self.track_title, 1)
        pick = QLabel("Face:")
        pick.setFont(theme.font(12))
        top.addWidget(pick)
        self.track_combo = QComboBox()
        self.track_combo.setFont(theme.font(12))
        self.track_combo.setMinimumWidth(220)
        self.track_combo.activated.connect(self._on_combo)
        top.addWidget(self.track_combo)
        rl.addLayout(top)
        self.chart = LiveChart(window=capacity * min_interval)
        rl.addWidget(self.chart, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 5)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([520, 800])
        self.splitter = splitter
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._redraw)
        self._dirty = True
        self._redraw()

    # -- the tables ---------------------------------------------------------------------------------

    def set_report(self, report: VersionReport | None) -> None:
        """Show ``report``'s tables (``None``: say that no model version is loaded)."""
        self._generation += 1  # a load still running is now stale
        if report is None:
            self.panel.set_message("No model version is loaded.")
        else:
            self.panel.set_report(report)

    def load_report(self, registry_path: Path | str, models_dir: Path | str | None = None) -> None:
        """Read the active version's figures from the registry in the background, then show them.

        ``registry_path`` is the registry's ``facegate.db`` (or its data folder); ``models_dir``
        defaults to the ``models`` folder beside it.  Emits :attr:`reportLoaded` or :attr:`reportFailed`.
        """
        path = Path(registry_path)
        if path.is_dir():
            path = path / "facegate.db"
        models = Path(models_dir) if models_dir is not None else path.parent / "models"
        self._generation += 1
        self.panel.set_message("Loading the active model version's figures…")
        self._stop_loader()
        self._loader = _ReportLoader(self._generation, path, models)
        self._loader.done.connect(self._on_loaded)
        self._loader.failed.connect(self._on_failed)
        self._loader_thread = start_worker(self._loader, "comparison-report")

    def stop(self) -> None:
        """Wait for a report still loading (call before the window closes; the chart needs no stop)."""
        self._stop_loader()
        self.timer.stop()

    @Slot(int, object)
    def _on_loaded(self, generation: int, report: VersionReport) -> None:
        self._stop_loader()
        if generation != self._generation:
            return
        self.panel.set_report(report)
        self.reportLoaded.emit(report)

    @Slot(int, str)
    def _on_failed(self, generation: int, message: str) -> None:
        self._stop_loader()
        if generation != self._generation:
            return
        self.panel.set_message(message, error=True)
        self.reportFailed.emit(message)

    def _stop_loader(self) -> None:
        if self._loader_thread is not None:
            stop_thread(self._loader_thread)
            self._loader_thread = None
        self._loader = None

    # -- the live chart -----------------------------------------------------------------------------

    def add_frame(self, result: FrameResult) -> None:
        """Record every face of one processed frame (cheap: the chart redraws on its own timer)."""
        if self.camera is None:
            self.camera = result.camera
        if result.camera != self.camera:
            return
        self.frames_seen += 1
        self.last_captured = result.captured
        self.in_view = {t.id: t for t in result.tracks}
        for track in result.tracks:
            history = self.histories.get(track.id)
            if history is None:
                history = self.histories[track.id] = TrackHistory(track.id, self.capacity, self.min_interval)
            history.add(result.captured, track)
        if self.selected_track is None and self.in_view:
            newest = max(self.in_view.values(), key=lambda t: (t.first_seen, t.id))
            self.shown_track = newest.id
        elif self.selected_track is not None:
            self.shown_track = self.selected_track
        self._forget_old()
        self._dirty = True

    def select_track(self, camera: str, track_id: int | None) -> None:
        """Chart ``track_id`` of ``camera`` (``None``: follow the newest face in view)."""
        if camera != self.camera:
            self._reset()
            self.camera = camera
        self.selected_track = track_id
        if track_id is not None:
            self.shown_track = track_id
        elif self.in_view:
            self.shown_track = max(self.in_view.values(), key=lambda t: (t.first_seen, t.id)).id
        self._dirty = True

    def clear(self) -> None:
        """Forget every face and go back to following the newest one (the tables stay)."""
        self._reset()
        self._dirty = True

    def history(self, track_id: int | None = None) -> TrackHistory | None:
        """The buffered history of ``track_id`` (default: the face the chart shows)."""
        return self.histories.get(self.shown_track if track_id is None else track_id)

    def _reset(self) -> None:
        self.histories.clear()
        self.in_view = {}
        self.selected_track = None
        self.shown_track = None
        self.last_captured = None

    def _forget_old(self) -> None:
        if len(self.histories) <= MAX_HISTORIES:
            return
        keep = set(self.in_view) | {self.shown_track}
        gone = sorted((h.last_time, tid) for tid, h in self.histories.items() if tid not in keep)
        for _, tid in gone[:len(self.histories) - MAX_HISTORIES]:
            del self.histories[tid]

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._dirty = True
        self.timer.start()

    def hideEvent(self, event) -> None:
        self.timer.stop()
        super().hideEvent(event)

    @Slot()
    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        history = self.history()
        if history is None or history.latest is None:
            self.chart.show_series(None, None, ())
            where = f"camera {self.camera}" if self.camera else "the focused camera"
            self.track_title.setText(f"No face on {where} yet")
        else:
            self.chart.show_series(history.series(), history.latest, history.reasons)
            self.track_title.setText(self._title(history))
        self._refresh_combo()
        self.redrawn.emit()

    def _title(self, history: TrackHistory) -> str:
        track = history.latest
        assert track is not None
        word, key = decision_word(track, bool(history.reasons))
        colour = theme.DECISION_COLOURS[key].name()
        name = track.identity if track.state is TrackState.NAMED else ""
        where = f"{self.camera} · track {track.id}"
        if history.track_id not in self.in_view and self.last_captured is not None:
            gone = max(0.0, self.last_captured - history.last_time)
            tail = f" <span style='color:{theme.MUTED.name()}'>· left the view {gone:.0f} s ago</span>"
        else:
            tail = ""
        return f"{where} · {name} <span style='color:{colour}'>{word}</span>{tail}"

    def _refresh_combo(self) -> None:
        entries: list[tuple[str, int | None]] = [("Follow the newest face", None)]
        for tid in sorted(self.in_view):
            entries.append((f"track {tid}: {self.in_view[tid].label}", tid))
        if self.selected_track is not None and self.selected_track not in self.in_view:
            entries.append((f"track {self.selected_track}: left the view", self.selected_track))
        key = (*entries, self.selected_track)
        if key == self._combo_key:
            return
        self._combo_key = key
        self.track_combo.blockSignals(True)
        self.track_combo.clear()
        for text, data in entries:
            self.track_combo.addItem(text, data)
        current = next(i for i, (_, d) in enumerate(entries) if d == self.selected_track)
        self.track_combo.setCurrentIndex(current)
        self.track_combo.blockSignals(False)

    @Slot(int)
    def _on_combo(self, index: int) -> None:
        track_id = self.track_combo.itemData(index)
        if self.camera is not None:
            self.select_track(self.camera, track_id)
            self.trackSelected.emit(self.camera, track_id)
