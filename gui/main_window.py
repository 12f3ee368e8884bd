"""The guard console's main window: live feeds, at-the-gate panel, alarms, events, model comparison.

Everything it shows comes from the live session's signals (:class:`gui.session_worker.SessionWorker`,
on its own QThread); everything it asks of the registry goes through that worker or through the views'
own core APIs.  Closing the window stops every thread and writes every pending event.

The status bar says whether what decides who is let in is signed by HR (``ModelInfo.trust``); a
registry changed without HR's signature is an alarm, and the Settings dialog opens with the decision
HR signed, not ``console.toml``'s copy.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QMetaObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStatusBar,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.live.flags import flag_reasons
from core.live.monitor import decision_code
from core.live.session import (
    ModelInfo,
    RecordedEvent,
    SessionEnd,
    SessionError,
    SessionSettings,
    parse_sources,
)
from core.live.sources import SourceStatus
from core.live.tracking import TrackDecision
from gui import theme
from gui.feed import FeedGrid
from gui.gate_panel import GatePanel, OverrideDialog
from gui.session_worker import SessionWorker, TodayCounts
from gui.threads import start_worker, stop_thread

log = logging.getLogger(__name__)


@dataclass
class Alarm:
    """An UNKNOWN or FLAGGED decision, or a security warning, the guard has not acknowledged yet."""

    camera: str  # "" for an alarm about the whole console (no tile is marked)
    state: str  # "unknown", "flagged" or "untrusted"
    text: str
    time: datetime


UNTRUSTED_MARK = "does not match what HR signed"
"""In a session error's message when the registry's security state fails HR's signature."""
UNTRUSTED_ALARM = ("Registry changed without HR's signature: the console keeps the last verified model. "
                   "Call HR.")
_SIGNER = re.compile(r"^signed by (\S+) at ")


def trust_display(trust: str) -> tuple[str, str]:
    """``(short text, colour name or "")`` for the status bar from a ``TrustState.status()`` line.

    The marks are ones DejaVu Sans draws (✔ ⚠ ✖): a padlock emoji is a blank box on a console PC
    without an emoji font.
    """
    amber, red = theme.DECISION_COLOURS["checking"].name(), theme.DECISION_COLOURS["unknown"].name()
    if not trust:
        return "", ""
    if trust.startswith("REFUSED"):
        return "✖ Refused: not what HR signed", red
    if trust.startswith("UNSIGNED"):
        return "⚠ Unsigned: no HR accounts", amber
    if "UNANCHORED" in trust:
        return "⚠ Unanchored: signed, but no trust anchor installed", amber
    match = _SIGNER.match(trust)
    if match:
        return f"✔ Signed by {match.group(1)} · anchored", ""
    return trust if len(trust) <= 60 else trust[:59] + "…", ""


class MainWindow(QMainWindow):
    """The guard console.  ``settings`` says what the live session runs."""

    sessionEnded = Signal(object)  # SessionEnd, re-emitted for tests and the launcher
    closed = Signal(object)  # StopReport or None, once every thread has stopped
    # Requests to the session worker (queued to its thread).
    cardRequested = Signal(str)
    todayRequested = Signal()
    guardActionRequested = Signal(int, str, str, str)

    def __init__(self, settings: SessionSettings, *, title: str = "FaceGate", console: object = None,
                 settings_path: Path | None = None) -> None:
        super().__init__()
        self.settings = settings
        #: The console settings file's content (``core.live.settings.ConsoleSettings``), if it was read.
        self.console = console
        self.settings_path = settings_path
        self.title = title
        self.cameras = [name for name, _ in parse_sources(settings.sources)][:4]
        self.names: dict[str, str] = {}
        self.model_info: ModelInfo | None = None
        self.alarms: deque[Alarm] = deque()
        self.statuses: dict[str, SourceStatus] = {}
        self.today = TodayCounts({}, 0)
        self.session_counts: dict[str, int] = {}
        self.session_flagged = 0
        self.decisions_seen = 0
        self.focused_camera = self.cameras[0] if self.cameras else ""
        self.stop_report: object = None
        self._closing = False
        self.setWindowTitle(f"{title} — {', '.join(self.cameras)}")
        self.setStyleSheet(theme.STYLESHEET)
        self.setFont(theme.font(theme.BASE_POINTS))
        self._build()
        self._shortcuts()
        self.worker = SessionWorker(settings)
        self._connect(self.worker)
        self.thread = start_worker(self.worker, "live-session-worker")

    # -- layout -----------------------------------------------------------------------------------

    def _build(self) -> None:
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(8, 8, 8, 4)
        self.banner = QPushButton("")
        self.banner.setFont(theme.font(15, bold=True))
        self.banner.setVisible(False)
        self.banner.clicked.connect(self.acknowledge_alarm)
        outer.addWidget(self.banner)
        self.loading = QWidget()
        row = QHBoxLayout(self.loading)
        row.setContentsMargins(0, 0, 0, 0)
        self.loading_text = QLabel("Starting…")
        self.loading_text.setFont(theme.font(12))
        # Progress lines can be long (a photo's path): never let them widen the window.
        self.loading_text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.loading_bar = QProgressBar()
        self.loading_bar.setRange(0, 1000)
        row.addWidget(self.loading_text, 2)
        row.addWidget(self.loading_bar, 1)
        outer.addWidget(self.loading)
        self.problem = QLabel("")
        self.problem.setWordWrap(True)
        self.problem.setFont(theme.font(13, bold=True))
        self.problem.setStyleSheet(f"background: {theme.DECISION_COLOURS['unknown'].darker(180).name()}; "
                                   "padding: 8px; border-radius: 4px;")
        self.problem.setVisible(False)
        outer.addWidget(self.problem)
        self.tabs = QTabWidget()
        outer.addWidget(self.tabs, 1)
        live = QSplitter(Qt.Orientation.Horizontal)
        self.grid = FeedGrid(self.cameras)
        self.panel = GatePanel(self.cameras)
        live.addWidget(self.grid)
        live.addWidget(self.panel)
        live.setStretchFactor(0, 3)
        live.setStretchFactor(1, 1)
        live.setSizes([1100, 420])
        self.live_splitter = live
        self.tabs.addTab(live, "Live  [F1]")
        self.events_view: QWidget | None = None
        self.events_placeholder = QLabel("The event log opens once the registry is loaded.")
        self.events_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.tabs.addTab(self.events_placeholder, "Events  [F2]")
        # Built now, before the session starts: importing the chart library (~0.3 s) later would stall
        # the GUI thread while the cameras already run.
        from gui.comparison import ComparisonView

        self.comparison_view = ComparisonView()
        self.tabs.addTab(self.comparison_view, "Models  [F3]")
        self.hr_panel: QWidget | None = None
        self.hr_access = None
        self.hr_placeholder = QLabel("HR (enrollment, operators, model versions) opens once the registry is loaded.")
        self.hr_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.tabs.addTab(self.hr_placeholder, "HR  [F4]")
        self.setCentralWidget(central)
        self.settings_button = QPushButton("⚙  Settings  [Ctrl+,]")
        self.settings_button.clicked.connect(self.open_settings)
        self.tabs.setCornerWidget(self.settings_button)
        self._wire_live()
        bar = QStatusBar()
        self.setStatusBar(bar)
        self.camera_labels: dict[str, QLabel] = {}
        for name in self.cameras:
            label = QLabel(f"● {name} connecting")
            self.camera_labels[name] = label
            bar.addWidget(label)
        self.trust_label = QLabel("")
        self.trust_label.setVisible(False)  # until the session says what it verified
        self.model_label = QLabel("model: loading…")
        self.today_label = QLabel("today: —")
        bar.addPermanentWidget(self.trust_label)
        bar.addPermanentWidget(self.model_label)
        bar.addPermanentWidget(self.today_label)
        fullscreen = QAction("Full screen", self)
        fullscreen.setShortcut(QKeySequence(Qt.Key.Key_F11))
        fullscreen.triggered.connect(self.toggle_fullscreen)
        self.addAction(fullscreen)
        self.resize(1600, 1000)

    def _wire_live(self) -> None:
        for tile in self.grid.tiles.values():
            tile.clicked.connect(self.focus_camera)
        for card in self.panel.cards.values():
            card.confirmRequested.connect(self.confirm)
            card.overrideRequested.connect(self.override)

    def _shortcuts(self) -> None:
        def add(key: object, slot: object) -> None:
            shortcut = QShortcut(QKeySequence(key), self)  # type: ignore[call-overload]
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)

        add(Qt.Key.Key_Return, lambda: self._live_key() and self.confirm(self.focused_camera))
        add(Qt.Key.Key_Enter, lambda: self._live_key() and self.confirm(self.focused_camera))
        add(Qt.Key.Key_O, lambda: self._live_key() and self.override(self.focused_camera))
        add(Qt.Key.Key_Space, lambda: self._live_key(any_tab=True) and self.acknowledge_alarm())
        add(Qt.Key.Key_F1, lambda: self.tabs.setCurrentIndex(0))
        add(Qt.Key.Key_F2, lambda: self.tabs.setCurrentIndex(1))
        add(Qt.Key.Key_F3, lambda: self.tabs.setCurrentIndex(2))
        add(Qt.Key.Key_F4, lambda: self.tabs.setCurrentIndex(3))
        add("Ctrl+,", self.open_settings)
        for i, name in enumerate(self.cameras):
            add(Qt.Key.Key_1 + i, lambda n=name: self._live_key() and self.focus_camera(n))

    def _live_key(self, any_tab: bool = False) -> bool:
        """A one-key shortcut acts only on the live view, and never while the guard types in a field."""
        from PySide6.QtWidgets import (
            QAbstractSpinBox,
            QApplication,
            QComboBox,
            QLineEdit,
            QPlainTextEdit,
            QTextEdit,
        )

        if not any_tab and self.tabs.currentIndex() != 0:
            return False
        focus = QApplication.focusWidget()
        return not isinstance(focus, (QLineEdit, QComboBox, QTextEdit, QPlainTextEdit, QAbstractSpinBox))

    def _connect(self, w: SessionWorker) -> None:
        w.progress.connect(self.on_progress)
        w.ready.connect(self.on_ready)
        w.status.connect(self.on_status)
        w.decision.connect(self.on_decision)
        w.event.connect(self.on_event)
        w.model.connect(self.on_model)
        w.error.connect(self.on_error)
        w.ended.connect(self.on_ended)
        w.framesReady.connect(self.on_frames)
        w.cardReady.connect(self.on_card)
        w.todayCounts.connect(self.on_today)
        w.guardRecorded.connect(self.on_guard_recorded)
        w.guardFailed.connect(self.on_guard_failed)
        w.stopped.connect(self._on_stopped)
        self.cardRequested.connect(w.request_card)
        self.todayRequested.connect(w.request_today_counts)
        self.guardActionRequested.connect(w.record_guard_action)

    # -- session reports (GUI thread) ------------------------------------------------------------

    @Slot(float, str)
    def on_progress(self, fraction: float, message: str) -> None:
        self.loading.setVisible(True)
        self.loading_bar.setValue(int(1000 * fraction))
        self.loading_text.setText(message)

    @Slot(object)
    def on_ready(self, info: ModelInfo) -> None:
        self.loading.setVisible(False)
        self.set_model(info)
        for tile in self.grid.tiles.values():
            tile.names = self.names
        self._size_tiles()
        self.todayRequested.emit()
        self._open_views()

    def set_model(self, info: ModelInfo) -> None:
        self.model_info = info
        self.names.clear()
        self.names.update(info.names)
        networks = info.networks.split(" (")[0]  # the reason for a fallback goes to the tooltip
        self.model_label.setText(f"model {info.version} · {info.people} people enrolled"
                                 + (f" · {networks}" if networks else ""))
        self.model_label.setToolTip(f"Networks run by {info.networks}" if info.networks else "")
        self.set_trust(info.trust)
        self._follow_decision(info)

    def set_trust(self, trust: str, *, text: str = "", colour: str = "") -> None:
        """Show the security state compactly, the whole sentence as the tooltip."""
        if not text:
            text, colour = trust_display(trust)
        self.trust_label.setText(text)
        self.trust_label.setToolTip(trust)
        # Room before the model label that follows it in the status bar.
        self.trust_label.setStyleSheet((f"color: {colour}; font-weight: bold;" if colour else "") + " padding-right: 14px;")
        self.trust_label.setVisible(bool(text))

    def _follow_decision(self, info: ModelInfo) -> None:
        """The Settings dialog opens with the decision in force (HR's signed one), never the file's copy."""
        from core.live.settings import ConsoleSettings

        if info.policy is not None and isinstance(self.console, ConsoleSettings):
            self.console = replace(self.console, policy=info.policy, min_face=info.min_face)

    @Slot(object)
    def on_model(self, info: ModelInfo) -> None:
        self.set_model(info)
        self._load_report()  # a retrain or rollback: the tables follow
        self.statusBar().showMessage(f"Model reloaded: version {info.version} ({info.people} people)", 8000)

    @Slot(object)
    def on_status(self, status: SourceStatus) -> None:
        self.statuses[status.camera] = status
        tile = self.grid.tiles.get(status.camera)
        if tile is not None:
            tile.set_status(status)
        label = self.camera_labels.get(status.camera)
        if label is not None:
            colour = theme.HEALTH_COLOURS.get(status.state.value, theme.MUTED).name()
            label.setText(f"<span style='color:{colour}'>●</span> {status.camera} {status.state.value}")
            label.setToolTip(status.line())

    @Slot()
    def on_frames(self) -> None:
        for camera, frame in self.worker.take_frames().items():
            tile = self.grid.tiles.get(camera)
            if tile is not None:
                tile.set_frame(frame)
                st = frame.result.status
                label = self.camera_labels.get(camera)
                if label is not None and st.state.value == "live":
                    colour = theme.HEALTH_COLOURS["live"].name()
                    label.setText(f"<span style='color:{colour}'>●</span> {camera} live {st.fps:.0f} fps")
            if camera == self.focused_camera:
                self.comparison_view.add_frame(frame.result)

    @Slot(object)
    def on_decision(self, decision: TrackDecision) -> None:
        if decision.kind == "undecided":
            return
        self.decisions_seen += 1
        camera = decision.track.camera
        card = self.panel.cards.get(camera)
        if card is None:
            return
        state = card.show_decision(decision, self.names)
        code = decision_code(decision)
        self.session_counts[code] = self.session_counts.get(code, 0) + 1
        if state == "flagged":
            self.session_flagged += 1
        self._update_today()
        if card.employee_id:
            self.cardRequested.emit(card.employee_id)
        if state in ("unknown", "flagged"):
            who = "UNKNOWN person" if state == "unknown" else (
                f"FLAGGED: {self.names.get(decision.track.identity) or decision.track.identity}")
            reasons = flag_reasons(decision.track)
            text = f"⚠ {who} at {camera} {datetime.now():%H:%M:%S}" + (f" — {reasons[0]}" if reasons else "")
            self.alarms.append(Alarm(camera, state, text, datetime.now()))
            self._show_alarm()

    @Slot(object)
    def on_event(self, recorded: RecordedEvent) -> None:
        card = self.panel.cards.get(recorded.decision.track.camera)
        if card is not None and card.decision is recorded.decision:
            card.set_event(recorded.event_id)
        if self.events_view is not None:
            self.events_view.refresh_newest()  # type: ignore[attr-defined]

    @Slot(object)
    def on_card(self, card: object) -> None:
        for gate in self.panel.cards.values():
            gate.set_card(card)

    @Slot(object)
    def on_today(self, counts: TodayCounts) -> None:
        # Counts from the registry at start, plus what this session decides from now on.
        self.today = TodayCounts({k: v - self.session_counts.get(k, 0) for k, v in counts.by_decision.items()},
                                 counts.flagged - self.session_flagged)
        self._update_today()

    def _update_today(self) -> None:
        counts = dict(self.today.by_decision)
        for k, v in self.session_counts.items():
            counts[k] = counts.get(k, 0) + v
        recognised = counts.get("recognised", 0) + counts.get("gallery-only", 0)
        flagged = self.today.flagged + self.session_flagged
        self.today_label.setText(f"today: {recognised} recognised · {counts.get('unknown', 0)} unknown · "
                                 f"{flagged} flagged")

    @Slot(object)
    def on_error(self, error: SessionError) -> None:
        untrusted = UNTRUSTED_MARK in error.message
        if untrusted:
            self.set_trust(error.message, text="✖ Not what HR signed",
                           colour=theme.DECISION_COLOURS["unknown"].name())
        if error.fatal:
            self.problem.setText(f"{error.where}: {error.message}")
            self.problem.setVisible(True)
            self.loading.setVisible(False)
        else:
            self.statusBar().showMessage(f"{error.where}: {error.message}", 15000)
            if untrusted:  # the model watcher refused a change: recognition goes on with what was verified
                self.alarms.append(Alarm("", "untrusted", f"⚠ {UNTRUSTED_ALARM}", datetime.now()))
                self._show_alarm()

    @Slot(object)
    def on_ended(self, end: SessionEnd) -> None:
        if end.reason == "sources-ended":
            self.statusBar().showMessage("Every source has ended.", 0)
        self.sessionEnded.emit(end)

    @Slot(object)
    def on_guard_recorded(self, action: object) -> None:
        event_id = getattr(action, "event_id", None)
        for card in self.panel.cards.values():
            if card.event_id == event_id:
                word = {"confirm": "Confirmed", "let-in": "Overridden: LET IN", "turn-away": "Overridden: TURNED AWAY"}
                text = word.get(getattr(action, "action", ""), "Recorded")
                reason = getattr(action, "reason", "")
                card.set_action(f"{text}{' — ' + reason if reason else ''} · {getattr(action, 'actor', '')} "
                                f"{datetime.now():%H:%M:%S}")
                card.confirm.setEnabled(False)
                card.override.setEnabled(False)
        if self.events_view is not None:
            self.events_view.refresh_newest()  # type: ignore[attr-defined]

    @Slot(int, str)
    def on_guard_failed(self, event_id: int, message: str) -> None:
        QMessageBox.warning(self, "Not recorded", f"Your action on event {event_id} was not recorded: {message}")

    # -- guard actions ----------------------------------------------------------------------------

    @Slot(str)
    def focus_camera(self, camera: str) -> None:
        self.focused_camera = camera
        for name, tile in self.grid.tiles.items():
            tile.focused = name == camera
            tile.update()
        self.comparison_view.select_track(camera, None)

    @Slot(str)
    def confirm(self, camera: str) -> None:
        card = self.panel.cards.get(camera)
        if card is None or card.event_id is None:
            return
        self._record(card.event_id, "confirm", "", "")

    @Slot(str)
    def override(self, camera: str) -> None:
        card = self.panel.cards.get(camera)
        if card is None or card.event_id is None:
            return
        who = card.name.text()
        dialog = OverrideDialog(who, self)
        if dialog.exec():
            action, reason, note = dialog.choice()
            self._record(card.event_id, action, reason, note)

    def _record(self, event_id: int, action: str, reason: str, note: str) -> None:
        for card in self.panel.cards.values():
            if card.event_id == event_id:
                card.confirm.setEnabled(False)
                card.override.setEnabled(False)
                card.set_action("Recording your action…")
        self.guardActionRequested.emit(event_id, action, reason, note)

    def _show_alarm(self) -> None:
        if not self.alarms:
            self.banner.setVisible(False)
            for tile in self.grid.tiles.values():
                tile.set_alarm(None)
            return
        alarm = self.alarms[0]
        more = f"   (+{len(self.alarms) - 1} more)" if len(self.alarms) > 1 else ""
        colour = theme.DECISION_COLOURS["unknown" if alarm.state == "untrusted" else alarm.state]  # red: call HR
        self.banner.setText(f"{alarm.text}{more}   —   [Space] acknowledge")
        self.banner.setStyleSheet(f"background: {colour.name()}; color: white; padding: 10px; border: 0;")
        self.banner.setVisible(True)
        pending = {a.camera: a.state for a in reversed(self.alarms) if a.camera}
        for name, tile in self.grid.tiles.items():
            tile.set_alarm(pending.get(name))

    @Slot()
    def acknowledge_alarm(self) -> None:
        """The oldest unacknowledged alarm is seen (it stays in the event log)."""
        if self.alarms:
            self.alarms.popleft()
        self._show_alarm()

    @Slot()
    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    # -- settings ---------------------------------------------------------------------------------------

    def _registry_path(self) -> Path:
        if self.worker.registry_path is not None:
            return Path(self.worker.registry_path)
        from core.registry import data_dir

        return Path(self.settings.data_dir or data_dir()) / "facegate.db"

    @Slot()
    def open_settings(self) -> None:
        """Settings: cameras (tested live before saving) and the decision policy (HR)."""
        from core.live.settings import ConsoleSettings, decision_changed
        from gui.settings import SettingsDialog

        current = self.console if isinstance(self.console, ConsoleSettings) else ConsoleSettings()
        info = self.model_info
        if info is not None and info.policy is not None:  # no settings file read: still the decision in force
            current = replace(current, policy=info.policy, min_face=info.min_face)
        dialog = SettingsDialog(current, self._registry_path(), self, path=self.settings_path)
        if not dialog.exec():
            return
        new = dialog.result_settings()
        self.console = new
        session = new.session_settings(data_dir=self.settings.data_dir or new.data_dir)
        # The session decides with what HR signed whatever ``policy`` says, so a difference from the
        # file's copy it was started with is no reason to restart; a decision HR just signed is.
        same_run = replace(session, policy=self.settings.policy, min_face=self.settings.min_face) == self.settings
        if not same_run or decision_changed(current, new):
            self.restart_session(session)

    def restart_session(self, settings: SessionSettings) -> None:
        """Stop the running session (writing its pending events) and start one with ``settings``."""
        self.stop()
        self.settings = settings
        self.cameras = [name for name, _ in parse_sources(settings.sources)][:4]
        old_grid, old_panel = self.grid, self.panel
        self.grid = FeedGrid(self.cameras)
        self.panel = GatePanel(self.cameras)
        self.live_splitter.replaceWidget(0, self.grid)
        self.live_splitter.replaceWidget(1, self.panel)
        old_grid.deleteLater()
        old_panel.deleteLater()
        self.alarms.clear()
        self._show_alarm()
        bar = self.statusBar()
        for label in self.camera_labels.values():
            bar.removeWidget(label)
        self.camera_labels = {}
        for name in reversed(self.cameras):
            label = QLabel(f"● {name} connecting")
            self.camera_labels[name] = label
            bar.insertWidget(0, label)
        self.focused_camera = self.cameras[0] if self.cameras else ""
        self.setWindowTitle(f"{self.title} — {', '.join(self.cameras)}")
        self._wire_live()
        self.loading.setVisible(True)
        self.problem.setVisible(False)
        self.worker = SessionWorker(settings)
        self._connect(self.worker)
        self.thread = start_worker(self.worker, "live-session-worker")

    def restore_layout(self) -> None:
        """The window's size, position and full-screen state as the guard left them."""
        window = getattr(self.console, "window", None)
        if window is None:
            return
        try:
            if window.geometry:
                self.restoreGeometry(window.geometry_bytes)
            if window.state:
                self.restoreState(window.state_bytes)
        except Exception as exc:  # a damaged [window] section only costs the layout
            log.warning("window layout not restored: %s", exc)

    def save_layout(self) -> None:
        if self.console is None:
            return
        from core.live.settings import WindowState, save_window

        try:
            self.console = save_window(WindowState.from_bytes(bytes(self.saveGeometry().data()),
                                                              bytes(self.saveState().data()),
                                                              self.isFullScreen()), self.settings_path)
        except Exception as exc:  # the layout is a convenience: never lose a close over it
            log.warning("window layout not saved: %s", exc)

    # -- views opened once the registry is known ---------------------------------------------------

    def _open_views(self) -> None:
        path = self.worker.registry_path
        if path is None:
            return
        if self.events_view is None:
            try:
                from gui.events.view import EventsView

                self.events_view = EventsView(Path(path))
                self.tabs.removeTab(1)
                self.tabs.insertTab(1, self.events_view, "Events  [F2]")
            except Exception as exc:
                log.exception("events view unavailable")
                self.events_placeholder.setText(f"The event log could not be opened: {exc}")
        if self.hr_panel is None:
            self._open_hr(Path(path))
        self._load_report()

    def _open_hr(self, registry_path: Path) -> None:
        """The HR tab: its login locks when idle; every change it makes is signed by HR."""
        try:
            from gui.hr.access import HRAccess
            from gui.hr.panel import HRPanel

            self.hr_access = HRAccess(registry_path, self)
            cameras = parse_sources(self.settings.sources)
            self.hr_panel = HRPanel(registry_path, registry_path.parent / "models", cameras, self.hr_access)
            index = self.tabs.indexOf(self.hr_placeholder)
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, self.hr_panel, "HR  [F4]")
        except Exception as exc:
            log.exception("HR tab unavailable")
            self.hr_placeholder.setText(f"The HR tab could not be opened: {exc}")

    def _load_report(self) -> None:
        path = self.worker.registry_path
        # A model reload queued before the window closed may arrive after closeEvent stopped the views:
        # it must not start a new loader thread then.
        if path is not None and not self._closing:
            self.comparison_view.load_report(Path(path), Path(path).parent / "models")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        QTimer.singleShot(0, self._size_tiles)

    def _size_tiles(self) -> None:
        for name, tile in self.grid.tiles.items():
            w, h = tile.picture_size()
            self.worker.set_tile_size(name, w, h)

    # -- closing ------------------------------------------------------------------------------------

    def stop(self) -> object:
        """Stop the session (writing every pending event) and its thread; returns the stop report."""
        if getattr(self, "thread", None) is not None:
            if self.thread.isRunning():
                QMetaObject.invokeMethod(self.worker, "stop", Qt.ConnectionType.BlockingQueuedConnection)
                self.stop_report = self.worker.last_report
            stop_thread(self.thread)
            self.thread = None  # type: ignore[assignment]
        return self.stop_report

    @Slot(object)
    def _on_stopped(self, report: object) -> None:
        self.stop_report = report

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self.loading_text.setText("Writing pending events…")
            self.save_layout()
            report = self.stop()
            if self.events_view is not None and hasattr(self.events_view, "close_registry"):
                self.events_view.close_registry()
            self.comparison_view.stop()
            if self.hr_panel is not None:
                self.hr_panel.stop()  # type: ignore[attr-defined]
            self.closed.emit(report)
        super().closeEvent(event)
