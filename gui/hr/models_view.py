"""HR's model-versions view: every trained version, its thesis-style figures, and activate / roll back / discard.

Left, the versions newest first — number, when trained, people and photos, the status in words (the
active one marked), the note; right, the selected version's tables and cross-validation boxplot, drawn
by the Models tab's own :class:`~gui.comparison.report_panel.ReportPanel` from a
:class:`~core.registry.report.VersionReport`.

Every change goes through the console's one HR login (:class:`~gui.hr.access.HRAccess`): the login
dialog names the change; when HR is already logged in a short question does.  The change then runs in a
worker thread that opens its own registry connection and does exactly what ``facegate models
activate|rollback`` does — the same core calls, audited as the account, inside
:func:`core.registry.security.signed` so it ends with HR's signature.  A running console notices the new
active version on its own (its model watcher checks the signature and reloads): nothing restarts.

Reading the list and the reports (which load the model files) also runs in worker threads: the GUI
thread never waits on the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import FaceGateError
from core.registry.erasure import PRUNED_NOTE
from core.registry.keys import HRSession
from core.registry.records import ModelVersion
from core.registry.report import VersionReport
from gui import theme
from gui.comparison.report_panel import ReportPanel
from gui.hr.access import HRAccess
from gui.threads import start_worker, stop_thread

log = logging.getLogger(__name__)

ACTIVATABLE = ("candidate", "retired", "rolled_back")
"""Statuses a version with files may be made active from (``rejected`` never; ``active`` already is)."""

_GREEN = theme.DECISION_COLOURS["recognised"]
_RED = theme.DECISION_COLOURS["unknown"]
_AMBER = theme.DECISION_COLOURS["checking"]


@dataclass(frozen=True)
class VersionRow:
    """One line of the list: a model version as an HR clerk reads it (built in the worker thread)."""

    id: int
    version: str
    created: datetime
    people: int | None
    photos: int | None
    status: str
    active: bool
    activated_at: datetime | None
    has_files: bool
    files_deleted: bool
    discarded: bool
    failed_checks: tuple[str, ...]
    notes: str
    left_out: tuple[str, ...] = ()
    checks_total: int = 0

    @property
    def checks_text(self) -> str:
        """The activation checks: all passed, or the ones that failed."""
        if self.failed_checks:
            return "✗ failed: " + "; ".join(self.failed_checks)
        return f"✓ all {self.checks_total} passed" if self.checks_total else "not recorded"

    @property
    def status_text(self) -> str:
        """The status in words: what the version is for the gate."""
        if self.active:
            text = "ACTIVE at the gate"
        elif self.discarded:
            text = "discarded by HR"
        elif self.status == "rejected":
            # The failed checks have a column of their own; anything else (erased while training) is said here.
            why = "" if self.failed_checks else self.notes.removeprefix("rejected:").strip()
            text = f"rejected: {why}" if why else "rejected"
        else:
            text = {"candidate": "candidate (never used)", "retired": "retired (replaced)",
                    "rolled_back": "rolled back"}.get(self.status, self.status)
        if self.files_deleted:
            text += " · files deleted"
        elif not self.has_files and self.status != "rejected":
            text += " · model files missing"
        return text

    @property
    def note_text(self) -> str:
        """What the other columns do not say (the training summary would only repeat them and the figures)."""
        if self.files_deleted:
            return "Its files were deleted: it was trained with a person who has since been erased."
        if self.left_out:
            return f"Left out (too few photos): {', '.join(self.left_out)}"
        return ""

    @property
    def in_use_text(self) -> str:
        """When the gate last started using it."""
        if self.activated_at is None:
            return "never"
        return self.activated_at.astimezone().strftime("%Y-%m-%d %H:%M")

    @property
    def can_activate(self) -> bool:
        return not self.active and self.status in ACTIVATABLE and self.has_files

    @property
    def why_not_activate(self) -> str:
        """Why Activate is off for this version ("" when it is on)."""
        if self.active:
            return f"Version #{self.id} is already the active one."
        if self.files_deleted:
            return (f"Version #{self.id} cannot be activated: its files were deleted because it was trained "
                    "with a person who has since been erased.")
        if self.discarded:
            return f"Version #{self.id} was discarded by HR and cannot be activated."
        if self.status == "rejected":
            return f"Version #{self.id} failed its checks and cannot be activated."
        if not self.has_files:
            return f"Version #{self.id} cannot be activated: its model files are missing from the models folder."
        return ""

    @property
    def can_discard(self) -> bool:
        return self.status == "candidate"


def version_rows(models: Sequence[ModelVersion], models_dir: Path) -> list[VersionRow]:
    """The list's rows, newest first (reads only the registry's records and whether each folder exists)."""
    rows = []
    for mv in models:
        m = mv.metrics
        folder = models_dir / Path(mv.path).name if mv.path else None
        checks = m.get("checks") or {}
        failed = tuple(str(c.get("message") or name) for name, c in checks.items()
                       if isinstance(c, dict) and not c.get("ok"))
        people, photos = m.get("people", m.get("n_classes")), m.get("embeddings")
        rows.append(VersionRow(
            id=mv.id, version=str(m.get("version") or Path(mv.path).name or mv.id), created=mv.created,
            people=int(people) if people is not None else None, photos=int(photos) if photos is not None else None,
            status=mv.status, active=mv.active, activated_at=mv.activated_at,
            has_files=folder is not None and folder.is_dir(), files_deleted=mv.notes.startswith(PRUNED_NOTE),
            discarded=mv.status == "rejected" and mv.notes.startswith("discarded by HR"),
            failed_checks=failed, notes=mv.notes, left_out=tuple(str(k) for k in m.get("left_out") or ()),
            checks_total=sum(isinstance(c, dict) for c in checks.values())))
    return sorted(rows, key=lambda r: r.id, reverse=True)


def rollback_target(rows: Sequence[VersionRow]) -> VersionRow | None:
    """The version a rollback would make active: the most recently active one before the current one that
    was not rolled back (the rule of :meth:`~core.registry.Registry.rollback_model`)."""
    if not any(r.active for r in rows):
        return None
    before = [r for r in rows if not r.active and r.activated_at is not None
              and r.status not in ("rolled_back", "rejected")]
    return max(before, key=lambda r: (r.activated_at, r.id)) if before else None


# -- workers (each opens its own registry connection in its own thread) ----------------------------------


class _ListWorker(QObject):
    done = Signal(int, object)  # job, list[VersionRow]
    failed = Signal(int, str)

    def __init__(self, job: int, registry_path: Path, models_dir: Path) -> None:
        super().__init__()
        self.job, self.registry_path, self.models_dir = job, registry_path, models_dir

    @Slot()
    def run(self) -> None:
        from core.registry import Registry

        try:
            if not self.registry_path.is_file():
                raise FaceGateError(f"There is no registry at {self.registry_path}: enroll people and train a "
                                    "model first.")
            with Registry.open(self.registry_path) as registry:
                models = registry.list_models()
            rows = version_rows(models, self.models_dir)
        except FaceGateError as exc:
            self.failed.emit(self.job, str(exc))
        except Exception as exc:  # a bug: said in the view, logged with its traceback
            log.exception("reading the model versions failed")
            self.failed.emit(self.job, f"The model versions could not be read ({exc}).")
        else:
            self.done.emit(self.job, rows)


class _ReportWorker(QObject):
    done = Signal(int, object)  # job, VersionReport
    failed = Signal(int, str)

    def __init__(self, job: int, registry_path: Path, models_dir: Path, version_id: int) -> None:
        super().__init__()
        self.job, self.registry_path, self.models_dir, self.version_id = job, registry_path, models_dir, version_id

    @Slot()
    def run(self) -> None:
        from core.registry import Registry
        from core.registry.report import version_report

        try:
            with Registry.open(self.registry_path) as registry:
                report = version_report(registry, self.models_dir, self.version_id)
        except FaceGateError as exc:
            self.failed.emit(self.job, str(exc))
        except Exception as exc:
            log.exception("reading model version %s's figures failed", self.version_id)
            self.failed.emit(self.job, f"The figures of version #{self.version_id} could not be read ({exc}).")
        else:
            self.done.emit(self.job, report)


class _ChangeWorker(QObject):
    """Activates, rolls back or discards as HR, signed — what ``facegate models …`` does."""

    done = Signal(int, str)  # job, the sentence to show
    failed = Signal(int, str)

    def __init__(self, job: int, registry_path: Path, models_dir: Path, kind: str, version_id: int | None,
                 session: HRSession) -> None:
        super().__init__()
        self.job, self.registry_path, self.models_dir = job, registry_path, models_dir
        self.kind, self.version_id, self.session = kind, version_id, session

    @Slot()
    def run(self) -> None:
        try:
            message = self._change()
        except FaceGateError as exc:
            self.failed.emit(self.job, str(exc))
        except Exception as exc:
            log.exception("model version change (%s) failed", self.kind)
            self.failed.emit(self.job, f"That could not be done ({type(exc).__name__}: {exc}). Nothing was "
                                       "changed unless the list says otherwise; the details are in the log.")
        else:
            self.done.emit(self.job, message)
        finally:
            self.session = None  # type: ignore[assignment]  # the worker keeps no login

    def _change(self) -> str:
        from core.registry import Registry
        from core.registry.security import signed
        from core.registry.training import rollback

        session, vid = self.session, self.version_id
        with Registry.open(self.registry_path) as registry:
            if self.kind == "rollback":
                with signed(registry, session, reason="roll back the model", models_dir=self.models_dir):
                    mv = rollback(registry, session.actor, self.models_dir)
                return (f"Rolled back: version #{mv.id} is active again. A running console switches to it "
                        "within a few seconds.")
            assert vid is not None
            row = next((r for r in version_rows(registry.list_models(), self.models_dir) if r.id == vid), None)
            if row is None:
                raise FaceGateError(f"There is no model version {vid} any more; the list has been reloaded.")
            if self.kind == "activate":
                if not row.can_activate:  # checked again: the list may be older than the registry
                    raise FaceGateError(row.why_not_activate)
                with signed(registry, session, reason=f"activate model {vid}", models_dir=self.models_dir):
                    registry.activate_model(vid, actor=session.actor)
                return (f"Version #{vid} is now active. A running console switches to it within a few "
                        "seconds.")
            if self.kind == "discard":
                with signed(registry, session, reason=f"discard model {vid}", models_dir=self.models_dir):
                    registry.discard_model(vid, actor=session.actor)
                return f"Version #{vid} was discarded: it can never be activated."
        raise ValueError(self.kind)


# -- the view ----------------------------------------------------------------------------------------------


COLUMNS = ["Version", "Trained", "People", "Photos", "In use from", "Checks", "Status"]
_WRAPPING = (5, 6)  # the checks and the status (with its note) share the room left, and wrap


class ModelVersionsView(QWidget):
    """The model versions, the selected one's figures, and HR's activate / roll back / discard.

    Parameters
    ----------
    registry_path
        The registry's ``facegate.db`` (or its data folder).
    models_dir
        The data folder's ``models`` folder.
    access
        The console's HR login; every change goes through :meth:`HRAccess.require`.
    show_login
        Show who is logged in and a Lock button (``False`` inside a panel that already shows them).

    Signals
    -------
    listed(list)
        The list was (re)loaded: the :class:`VersionRow` objects, newest first.
    reportShown(VersionReport)
        The selected version's figures are shown.
    changed(str)
        A change was made and signed; the sentence shown to HR.
    failed(str)
        Something could not be read or done; the sentence shown in the view.
    """

    listed = Signal(object)
    reportShown = Signal(object)
    changed = Signal(str)
    failed = Signal(str)

    def __init__(self, registry_path: Path | str, models_dir: Path | str, access: HRAccess,
                 parent: QWidget | None = None, *, show_login: bool = True) -> None:
        super().__init__(parent)
        self.show_login = show_login
        path = Path(registry_path)
        self.registry_path = path / "facegate.db" if path.is_dir() else path
        self.models_dir = Path(models_dir)
        self.access = access
        self.rows: list[VersionRow] = []
        self.busy = False
        self.confirm_box: QMessageBox | None = None
        self._confirming: tuple[str, Callable[[HRSession], None]] | None = None
        self._job = 0
        self._list_job = 0
        self._report_job = 0
        self._selected_id: int | None = None
        self._jobs: dict[int, tuple[QObject, QThread]] = {}
        self._stopped = False
        self._build()
        access.changed.connect(self._on_access)
        access.refused.connect(self._on_refused)
        self._on_access(access.session)
        self.reload()

    # -- layout -------------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.setStyleSheet("QPushButton:disabled { color: #6b7280; border-color: #353b47; background: #23272f; }")
        title = QLabel("Model versions")
        title.setFont(theme.font(16, bold=True))
        self.hr_label = QLabel()
        self.hr_label.setFont(theme.font(11.5))
        self.lock_button = QPushButton("Lock HR")
        self.lock_button.clicked.connect(self.access.lock)
        top = QHBoxLayout()
        top.addWidget(title)
        top.addStretch(1)
        top.addWidget(self.hr_label)
        top.addWidget(self.lock_button)
        intro = QLabel("The gate recognises people with the ACTIVE version. Select a version to see its figures. "
                       "Activating, rolling back and discarding need an HR login; each is signed and recorded "
                       "in the audit log.")
        intro.setWordWrap(True)
        intro.setFont(theme.font(11))
        intro.setStyleSheet(f"color: {theme.MUTED.name()};")

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(True)
        self.table.setFont(theme.font(12))
        header = self.table.horizontalHeader()
        header.setFont(theme.font(11, bold=True))
        for c in range(len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch if c in _WRAPPING
                                        else QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the note wraps instead
        self.table.itemSelectionChanged.connect(self._on_selection)

        self.activate_button = QPushButton("Activate selected")
        self.activate_button.clicked.connect(self.activate_selected)
        self.discard_button = QPushButton("Discard selected")
        self.discard_button.clicked.connect(self.discard_selected)
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.clicked.connect(self.roll_back)
        self.reload_button = QPushButton("Reload")
        self.reload_button.clicked.connect(self.reload)
        for b in (self.activate_button, self.discard_button, self.rollback_button, self.reload_button):
            b.setFont(theme.font(12))
        buttons = QHBoxLayout()
        buttons.addWidget(self.activate_button)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.rollback_button)
        buttons.addStretch(1)
        buttons.addWidget(self.reload_button)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setFont(theme.font(11))
        self.hint.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setFont(theme.font(12, bold=True))
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 1)
        ll.addLayout(buttons)
        ll.addWidget(self.hint)
        ll.addWidget(self.message)

        self.panel = ReportPanel()
        self.panel.set_message("Select a version to see its figures.")
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setMinimumWidth(430)
        self.report_scroll = scroll

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 4)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([860, 600])
        self.splitter = splitter

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(intro)
        layout.addWidget(splitter, 1)
        self._update_buttons()

    # -- public -------------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the versions again (in a worker); emits :attr:`listed` or :attr:`failed`."""
        self._list_job = job = self._next_job()
        worker = _ListWorker(job, self.registry_path, self.models_dir)
        worker.done.connect(self._on_listed)
        worker.failed.connect(self._on_list_failed)
        self._start(job, worker, "model-versions-list")

    def selected(self) -> VersionRow | None:
        """The selected version, if any."""
        return next((r for r in self.rows if r.id == self._selected_id), None)

    def select_version(self, version_id: int) -> None:
        """Select a version in the list (its figures load in the background)."""
        for i, row in enumerate(self.rows):
            if row.id == version_id:
                self.table.selectRow(i)
                return

    def activate_selected(self) -> None:
        """Make the selected version the active one (HR)."""
        row = self.selected()
        if row is None or self.busy:
            return
        if not row.can_activate:
            self._say(row.why_not_activate, error=True)
            return
        self._ask(f"make model version #{row.id} active at the gate",
                  partial(self._change, "activate", row.id))

    def discard_selected(self) -> None:
        """Discard the selected candidate: it can never be activated (HR)."""
        row = self.selected()
        if row is None or self.busy:
            return
        if not row.can_discard:
            self._say(f"Only a candidate (a version that was never active) can be discarded; version #{row.id} "
                      "is not one.", error=True)
            return
        self._ask(f"discard model version #{row.id} (it can never be activated afterwards)",
                  partial(self._change, "discard", row.id))

    def roll_back(self) -> None:
        """Go back to the version that was active before the current one (HR)."""
        target = rollback_target(self.rows)
        if target is None or self.busy:
            return
        self._ask(f"roll back the model to version #{target.id}",
                  partial(self._change, "rollback", None))

    def stop(self) -> None:
        """Wait for every worker still running and start no more (call before the window closes)."""
        self._stopped = True
        for job in list(self._jobs):
            self._finish(job)
        if self.confirm_box is not None:
            self.confirm_box.reject()

    # -- HR actions ---------------------------------------------------------------------------------------

    def _ask(self, action: str, then: Callable[[HRSession], None]) -> None:
        """Logged in: ask once more (a click must not switch the gate by accident); else the login dialog,
        which names the change, is the question."""
        if self.access.session is None:
            self.access.require(self, action, then)
            return
        self._confirming = (action, then)
        if self.confirm_box is not None:
            self.confirm_box.deleteLater()
        box = QMessageBox(QMessageBox.Icon.Question, "Model versions",
                          f"{action[0].upper()}{action[1:]}?", parent=self)
        box.setInformativeText(f"This is done as {self.access.session.actor}, signed and recorded in the audit log.")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(self._on_confirmed)
        self.confirm_box = box
        box.open()

    @Slot(int)
    def _on_confirmed(self, result: int) -> None:
        pending, self._confirming = self._confirming, None
        box = self.confirm_box
        yes = box is not None and box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Yes
        if pending is not None and yes:
            self.access.require(self, *pending)

    def _change(self, kind: str, version_id: int | None, session: HRSession) -> None:
        if self.busy:
            return
        self.busy = True
        self._update_buttons()
        doing = {"activate": f"Activating version #{version_id}…", "discard": f"Discarding version #{version_id}…",
                 "rollback": "Rolling back…"}[kind]
        self._say(doing)
        job = self._next_job()
        worker = _ChangeWorker(job, self.registry_path, self.models_dir, kind, version_id, session)
        worker.done.connect(self._on_changed)
        worker.failed.connect(self._on_change_failed)
        self._start(job, worker, "model-versions-change")

    @Slot(int, str)
    def _on_changed(self, job: int, message: str) -> None:
        self._finish(job)
        self.busy = False
        self._say(message, colour=_GREEN)
        self.access.touch()
        self.changed.emit(message)
        self.reload()

    @Slot(int, str)
    def _on_change_failed(self, job: int, message: str) -> None:
        self._finish(job)
        self.busy = False
        self._say(message, error=True)
        self.failed.emit(message)
        self.reload()

    @Slot(object)
    def _on_access(self, session: HRSession | None) -> None:
        if session is None:
            self.hr_label.setText("HR: not logged in")
            self.hr_label.setStyleSheet(f"color: {theme.MUTED.name()};")
        else:
            minutes = max(1, round(self.access.idle_ms / 60_000))
            self.hr_label.setText(f"HR: {session.actor} logged in · locks after {minutes} idle "
                                  f"minute{'s' if minutes != 1 else ''}")
            self.hr_label.setStyleSheet(f"color: {_GREEN.name()}; font-weight: bold;")
        self.hr_label.setVisible(self.show_login)
        self.lock_button.setVisible(self.show_login and session is not None)

    @Slot(str)
    def _on_refused(self, message: str) -> None:
        self._say(f"HR login refused, nothing was changed: {message}", error=True)
        self.failed.emit(message)

    # -- the list and the figures ------------------------------------------------------------------------

    @Slot(int, object)
    def _on_listed(self, job: int, rows: list[VersionRow]) -> None:
        self._finish(job)
        if job != self._list_job:
            return
        previous = self._selected_id
        self.rows = rows
        self._fill(rows)
        keep = previous if any(r.id == previous for r in rows) else next((r.id for r in rows if r.active), None)
        if keep is None and rows:
            keep = rows[0].id
        self._selected_id = None
        if keep is not None:
            self.select_version(keep)
        elif not rows:
            self.panel.set_message("No model has been trained yet.")
        self._update_buttons()
        self.listed.emit(rows)

    @Slot(int, str)
    def _on_list_failed(self, job: int, message: str) -> None:
        self._finish(job)
        if job != self._list_job:
            return
        self._say(message, error=True)
        self.failed.emit(message)

    def _fill(self, rows: list[VersionRow]) -> None:
        table = self.table
        table.blockSignals(True)
        table.clearSelection()
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            created = row.created.astimezone().strftime("%Y-%m-%d %H:%M")
            status = row.status_text + (f"\n{row.note_text}" if row.note_text else "")
            cells = [f"#{row.id}", created, "—" if row.people is None else str(row.people),
                     "—" if row.photos is None else str(row.photos), row.in_use_text, row.checks_text, status]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"model {row.version}" if c == 0 else text)
                if c in (2, 3):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if row.active:
                    item.setFont(theme.font(12, bold=True))
                if c == 5:
                    item.setForeground(QBrush(_RED if row.failed_checks else _GREEN))
                elif c == 6:
                    colour = (_GREEN if row.active else _RED if row.status == "rejected" or row.files_deleted
                              else _AMBER if row.status == "candidate" else theme.MUTED)
                    item.setForeground(QBrush(QColor(colour)))
                table.setItem(r, c, item)
        table.blockSignals(False)
        table.resizeRowsToContents()

    @Slot()
    def _on_selection(self) -> None:
        items = self.table.selectedItems()
        if not items:
            self._selected_id = None
            self._update_buttons()
            return
        row = self.rows[items[0].row()]
        self._selected_id = row.id
        self._update_buttons()
        self._report_job = job = self._next_job()
        self.panel.set_message(f"Loading the figures of version #{row.id}…")
        worker = _ReportWorker(job, self.registry_path, self.models_dir, row.id)
        worker.done.connect(self._on_report)
        worker.failed.connect(self._on_report_failed)
        self._start(job, worker, "model-versions-report")

    @Slot(int, object)
    def _on_report(self, job: int, report: VersionReport) -> None:
        self._finish(job)
        if job != self._report_job:
            return
        self.panel.set_report(report)
        row = next((r for r in self.rows if r.id == report.id), None)
        words = row.status_text if row is not None else report.status.replace("_", " ")
        self.panel.title.setText(f"Version #{report.id} · {words}")
        # The console's status bar names the model ("model 20261130-…"): the same name here, to match them.
        when = report.created.astimezone().strftime("%Y-%m-%d %H:%M")
        self.panel.subtitle.setText(f"model {report.version} · trained {when} · {report.people} people, "
                                    f"{report.embeddings} photos" + (", Deep Super Learner" if report.deep else "")
                                    + (f"; left out (too few photos): {', '.join(report.left_out)}"
                                       if report.left_out else ""))
        self.reportShown.emit(report)

    @Slot(int, str)
    def _on_report_failed(self, job: int, message: str) -> None:
        self._finish(job)
        if job != self._report_job:
            return
        self.panel.set_message(message, error=True)
        self.failed.emit(message)

    def _update_buttons(self) -> None:
        row = self.selected()
        target = rollback_target(self.rows)
        idle = not self.busy
        self.activate_button.setEnabled(idle and row is not None and row.can_activate)
        self.activate_button.setText(f"Activate #{row.id}" if row is not None else "Activate selected")
        self.discard_button.setEnabled(idle and row is not None and row.can_discard)
        self.discard_button.setText(f"Discard #{row.id}" if row is not None else "Discard selected")
        self.rollback_button.setEnabled(idle and target is not None and target.has_files)
        self.rollback_button.setText(f"Roll back to #{target.id}" if target is not None else "Roll back")
        hints = []
        if row is not None and not row.can_activate:
            hints.append(row.why_not_activate)
        if row is not None and row.can_discard:
            hints.append(f"Version #{row.id} is a candidate: the gate does not use it until it is activated. "
                         "Discard it if it should never be used.")
        if target is None:
            hints.append("Roll back: no earlier version was ever active.")
        elif not target.has_files:
            hints.append(f"Roll back is not possible: version #{target.id}, the one before, has no model files.")
        self.hint.setText("\n".join(hints))
        self.hint.setVisible(bool(hints))
        for b, tip in ((self.activate_button, "Make the selected version the one the gate uses"),
                       (self.discard_button, "Mark the selected candidate as never to be used"),
                       (self.rollback_button, "Go back to the version that was active before the current one")):
            b.setToolTip(tip)

    def _say(self, text: str, *, error: bool = False, colour: QColor | None = None) -> None:
        c = _RED if error else colour
        self.message.setStyleSheet(f"color: {c.name()};" if c is not None else "")
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # -- threads ------------------------------------------------------------------------------------------

    def _next_job(self) -> int:
        self._job += 1
        return self._job

    def _start(self, job: int, worker: QObject, name: str) -> None:
        if self._stopped:  # a result that arrived after stop() must not start another thread
            return
        self._jobs[job] = (worker, start_worker(worker, name))

    def _finish(self, job: int) -> None:
        entry = self._jobs.pop(job, None)
        if entry is not None:
            stop_thread(entry[1])
