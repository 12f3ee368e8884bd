"""HR's view of the enrolled operators: who is on file, their recognition history, and the HR actions.

A table (photo, employee id, name, department, photos, enrolled, last seen, status) with a search box;
on the right the selected operator's recognition history (:mod:`gui.hr.operators_history`) with the
re-enrollment advice.  Buttons: **Edit details…**, **Deactivate** / **Reactivate** (no longer let in, kept
on file), **Erase…** (the right to erasure: a confirmation listing exactly what goes, the employee id
typed to confirm).

Every HR action goes through the console's one :class:`~gui.hr.access.HRAccess` login, then runs on a
worker thread that opens its own registry and makes the change inside
:func:`core.registry.security.signed` — the same core calls and audit rows as ``facegate people …``.  A
running console picks the change up by itself (its model watcher reloads the signed state): a
deactivated or erased operator is UNKNOWN at the gate within seconds, without a restart.  Reading (the
table, a history, the erasure preview) runs on worker threads too; the GUI thread never waits on the
registry.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QThread,
    Signal,
    Slot,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.registry import Operator
from core.registry.keys import HRSession
from gui import theme
from gui.hr import operators_jobs as jobs
from gui.hr.access import HRAccess
from gui.hr.operators_dialogs import EditDialog, EraseDialog
from gui.hr.operators_history import HistoryPanel
from gui.hr.operators_jobs import ActionResult, Job, OperatorRow
from gui.threads import start_worker, stop_thread

log = logging.getLogger(__name__)

__all__ = ["OperatorsModel", "OperatorsView"]

COLUMNS = ("Photo", "Employee id", "Name", "Status", "Last seen", "Department", "Photos", "Enrolled")
STATUS, LAST_SEEN, PHOTOS = 3, 4, 6
SEARCHED = (1, 2, 3)
"""Columns the search box looks in: employee id, name, department."""
DEACTIVATED = theme.DECISION_COLOURS["unknown"]
WARN = theme.WARN


def _when(value: Any) -> str:
    return "never" if value is None else f"{value.astimezone():%Y-%m-%d %H:%M}"


class OperatorsModel(QAbstractTableModel):
    """The operators as table rows (:class:`~gui.hr.operators_jobs.OperatorRow`); filled by the view."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[OperatorRow] = []

    def set_rows(self, rows: list[OperatorRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def row_of(self, employee_id: str) -> int:
        return next((i for i, r in enumerate(self.rows) if r.operator.employee_id == employee_id), -1)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        op, col = row.operator, index.column()
        if role == Qt.ItemDataRole.DecorationRole and col == 0:
            return row.thumbnail
        if role == Qt.ItemDataRole.DisplayRole:
            return [None if row.thumbnail is not None else "no photo", op.employee_id, op.name,
                    "Active" if op.active else "Deactivated", _when(row.last_seen), op.department or "—",
                    str(op.photos), f"{op.created.astimezone():%Y-%m-%d}"][col]
        if role == Qt.ItemDataRole.UserRole:  # sorting
            return [op.employee_id, op.employee_id, op.name.casefold(), int(op.active),
                    row.last_seen.timestamp() if row.last_seen else 0.0, op.department.casefold(), op.photos,
                    op.created.timestamp()][col]
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == STATUS and not op.active:
                return DEACTIVATED
            if not op.active or (col == LAST_SEEN and row.last_seen is None):
                return theme.MUTED
        if role == Qt.ItemDataRole.FontRole and col == STATUS and not op.active:
            return theme.font(theme.BASE_POINTS, bold=True)
        if role == Qt.ItemDataRole.ToolTipRole and col == STATUS:
            return ("Let in at the gate when recognised." if op.active
                    else "Deactivated: not let in; kept on file and can be reactivated.")
        if role == Qt.ItemDataRole.TextAlignmentRole and col == PHOTOS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class _Search(QSortFilterProxyModel):
    """Filters on the employee id, name and department (any case, any part); sorts on the raw values."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.needle = ""
        self.setSortRole(Qt.ItemDataRole.UserRole)

    def set_needle(self, text: str) -> None:
        self.beginFilterChange()
        self.needle = " ".join(text.split()).casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        if not self.needle:
            return True
        model = self.sourceModel()
        assert isinstance(model, OperatorsModel)
        op = model.rows[source_row].operator
        return any(self.needle in " ".join(text.split()).casefold()
                   for text in (op.employee_id, op.name, op.department))


class OperatorsView(QWidget):
    """The operators on file, with their recognition history and HR's actions; see the module docstring.

    Parameters
    ----------
    registry_path
        The registry file (``facegate.db``).
    models_dir
        Its model versions folder (``<data dir>/models``): erasure deletes the versions that knew the person.
    access
        The console's HR login; every change asks it first.
    parent
        The main window.

    Signals
    -------
    loaded(int)
        The table was (re)loaded with this many operators.
    historyShown(str)
        The history of this employee id is on screen.
    actionDone(str)
        An HR action finished; the sentence shown in the view.
    actionFailed(str)
        An HR action (or a load) failed; the sentence shown in the view.
    previewReady(object)
        The :class:`~core.registry.history.ErasurePreview` the erase dialog shows.
    """

    loaded = Signal(int)
    historyShown = Signal(str)
    actionDone = Signal(str)
    actionFailed = Signal(str)
    previewReady = Signal(object)

    def __init__(self, registry_path: Path, models_dir: Path, access: HRAccess, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry_path, self.models_dir, self.access = Path(registry_path), Path(models_dir), access
        self._jobs: dict[Job, QThread] = {}
        self._reload_again = False
        self._history_wanted: str | None = None
        self._history_job: Job | None = None
        self._action_job: Job | None = None
        self._closed = False
        self._pending_action = False  # an HR action waits for the login
        self.edit_dialog: EditDialog | None = None
        self.erase_dialog: EraseDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self.model = OperatorsModel(self)
        self.proxy = _Search(self)
        self.proxy.setSourceModel(self.model)
        self._build()
        access.changed.connect(self._login_changed)
        access.refused.connect(self._login_refused)
        self._login_changed(access.session)
        self.reload()

    # -- layout ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by employee id, name or department")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search)
        self.count = QLabel()
        self.count.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.hr_status = QLabel()
        self.lock_button = QPushButton("Lock HR")
        self.lock_button.setToolTip("Log out of HR now (it also locks by itself after a few idle minutes).")
        self.lock_button.clicked.connect(self.access.lock)
        top = QHBoxLayout()
        top.addWidget(QLabel("Search"))
        top.addWidget(self.search, 2)
        top.addWidget(self.count)
        top.addStretch(1)
        top.addWidget(self.hr_status)
        top.addWidget(self.lock_button)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setIconSize(QSize(jobs.THUMB, jobs.THUMB + 14))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(jobs.THUMB + 10)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(self._selected)
        self.table.doubleClicked.connect(lambda _: self.edit())

        self.edit_button = QPushButton("Edit details\u2026")
        self.active_button = QPushButton("Deactivate")
        self.erase_button = QPushButton("Erase\u2026")
        self.erase_button.setStyleSheet(f"QPushButton:enabled {{ color: {DEACTIVATED.lighter(140).name()}; }}")
        self.edit_button.clicked.connect(self.edit)
        self.active_button.clicked.connect(self.toggle_active)
        self.erase_button.clicked.connect(self.erase)
        self.edit_button.setToolTip("Change the name or department (HR login).")
        self.erase_button.setToolTip("The right to erasure: remove the person, their photos and face data for good "
                                     "(HR login).")
        buttons = QHBoxLayout()
        for b in (self.edit_button, self.active_button, self.erase_button):
            buttons.addWidget(b)
        buttons.addStretch(1)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.progress)
        left_layout.addWidget(self.message)
        self.history = HistoryPanel()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.history)
        splitter.setStretchFactor(0, 6)
        splitter.setStretchFactor(1, 4)
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        self._sized = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        self._update_buttons()

    # -- state -------------------------------------------------------------------------------------------

    def selected(self) -> Operator | None:
        """The operator selected in the table, or ``None``."""
        index = self.table.selectionModel().currentIndex()
        if not index.isValid():
            return None
        return self.model.rows[self.proxy.mapToSource(index).row()].operator

    def select(self, employee_id: str) -> bool:
        """Select an operator by employee id (if shown); ``True`` if found."""
        row = self.model.row_of(employee_id)
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 1))
        if not index.isValid():
            return False
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)
        return True

    def visible_ids(self) -> list[str]:
        """Employee ids of the rows shown, in table order."""
        return [self.proxy.index(r, 1).data() for r in range(self.proxy.rowCount())]

    def say(self, text: str, kind: str = "info") -> None:
        """Show a sentence under the table: ``info``, ``ok``, ``warning`` or ``error``."""
        colour = {"ok": theme.DECISION_COLOURS["recognised"], "warning": WARN, "error": DEACTIVATED}.get(kind)
        self.message.setStyleSheet(f"color: {colour.name()}; font-weight: bold;" if colour else "")
        self.message.setText(text)

    @property
    def busy(self) -> bool:
        """An HR action is running."""
        return self._action_job is not None

    def _update_buttons(self) -> None:
        op = self.selected()
        free = op is not None and not self.busy
        for button in (self.edit_button, self.active_button, self.erase_button):
            button.setEnabled(free)
        self.active_button.setText("Reactivate" if op is not None and not op.active else "Deactivate")
        self.active_button.setToolTip(
            "Let them in again when recognised (HR login)." if op is not None and not op.active
            else "No longer let them in; they stay on file and can be reactivated (HR login).")

    @Slot(object)
    def _login_changed(self, session: HRSession | None) -> None:
        if session is None:
            self.hr_status.setText("HR: locked \u2014 changes ask for a login")
            self.hr_status.setStyleSheet(f"color: {theme.MUTED.name()};")
        else:
            self.hr_status.setText(f"HR: logged in as {session.actor}")
            self.hr_status.setStyleSheet(f"color: {WARN.name()}; font-weight: bold;")
        self.lock_button.setVisible(session is not None)

    @Slot(str)
    def _login_refused(self, message: str) -> None:
        if self.isVisible() or self._pending_action:
            self.say(f"HR login refused: {message}", "error")
        self._pending_action = False

    # -- jobs --------------------------------------------------------------------------------------------

    def _run(self, name: str, fn: Any, on_done: Any, on_failed: Any = None) -> Job:
        job = Job(name, fn)
        job.on_done, job.on_failed = on_done, on_failed
        job.done.connect(self._job_done)
        job.failed.connect(self._job_failed)
        job.progress.connect(self._job_progress)
        self._jobs[job] = start_worker(job, f"hr-operators-{name}")
        return job

    def _end(self, job: Job) -> None:
        stop_thread(self._jobs.pop(job, None))

    @Slot(object, object)
    def _job_done(self, job: Job, result: Any) -> None:
        self._end(job)
        if job.on_done is not None and not self._closed:
            job.on_done(result)

    @Slot(object, str)
    def _job_failed(self, job: Job, message: str) -> None:
        self._end(job)
        if self._closed:
            return
        if job.on_failed is not None:
            job.on_failed(message)
        else:
            self.say(message, "error")
            self.actionFailed.emit(message)

    @Slot(object, float, str)
    def _job_progress(self, job: Job, fraction: float, message: str) -> None:
        if job is self._action_job:
            self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
            self.progress.setFormat(f"{message} \u2014 %p%")

    def shutdown(self) -> None:
        """Wait for every job to end (the window is closing).  An erasure under way is finished, not cut."""
        self._closed = True
        for job in list(self._jobs):
            self._end(job)

    def _fit_table(self) -> None:
        """Once, when the first rows are in: every column of the table in view, the history beside it."""
        if self._sized or not self.isVisible():
            return
        self._sized = True
        self.table.resizeColumnsToContents()
        width = max(self.splitter.width(), 800)
        table = min(int(width * 0.66), max(int(width * 0.45), self.table.horizontalHeader().length() + 28))
        self.splitter.setSizes([table, width - table])

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)

    # -- loading -----------------------------------------------------------------------------------------

    @Slot()
    def reload(self) -> None:
        """Read the operators again (after a change, or when the view is shown)."""
        if any(job.name == "load" for job in self._jobs):
            self._reload_again = True
            return
        path = self.registry_path
        self._run("load", lambda progress: jobs.load_operators(path), self._loaded, self._load_failed)

    def _loaded(self, rows: list[OperatorRow]) -> None:
        keep = self.selected()
        self.model.set_rows(rows)
        self._count()
        if keep is not None and self.select(keep.employee_id):
            pass
        elif self.proxy.rowCount():
            self.table.selectRow(0)
        else:
            self.history.show_nothing("Nobody is enrolled." if not rows else "No operator matches the search.")
        self._update_buttons()
        self._fit_table()
        self.loaded.emit(len(rows))
        if self._reload_again:
            self._reload_again = False
            self.reload()

    def _load_failed(self, message: str) -> None:
        self.say(f"Cannot read the operators: {message}", "error")
        self.actionFailed.emit(message)

    def _count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count.setText(f"{total} operators" if shown == total else f"{shown} of {total} operators")

    @Slot(str)
    def _search(self, text: str) -> None:
        self.proxy.set_needle(text)
        self._count()
        if self.selected() is None and self.proxy.rowCount():
            self.table.selectRow(0)
        elif not self.proxy.rowCount():
            self.history.show_nothing("No operator matches the search.")
        self._update_buttons()

    @Slot(QModelIndex, QModelIndex)
    def _selected(self, current: QModelIndex, previous: QModelIndex) -> None:
        self._update_buttons()
        op = self.selected()
        if op is not None:
            self._load_history(op.employee_id)

    def _load_history(self, employee_id: str) -> None:
        self._history_wanted = employee_id
        if self._history_job is not None:
            return  # the newest wish is loaded when the one under way ends
        path = self.registry_path
        self._history_job = self._run("history", lambda progress: jobs.load_history(path, employee_id),
                                      lambda result: self._history_loaded(employee_id, result),
                                      lambda message: self._history_failed(employee_id, message))

    def _history_loaded(self, employee_id: str, result: tuple[Any, Any, Any]) -> None:
        self._history_job = None
        if self._history_wanted != employee_id:
            self._load_history(self._history_wanted or employee_id)
            return
        history, advice, photo = result
        row = self.model.row_of(employee_id)
        self.history.show_history(history, advice, self.model.rows[row].operator if row >= 0 else None, photo)
        self.historyShown.emit(employee_id)

    def _history_failed(self, employee_id: str, message: str) -> None:
        self._history_job = None
        if self._history_wanted != employee_id and self._history_wanted:
            self._load_history(self._history_wanted)
            return
        self.history.show_nothing(f"Cannot show the history of {employee_id}: {message}")

    # -- HR actions --------------------------------------------------------------------------------------

    def _start_action(self, name: str, fn: Any, what: str) -> None:
        self.progress.setValue(0)
        self.progress.setFormat(f"{what} \u2014 %p%")
        self.progress.setVisible(name == "erase")
        self.say(f"{what}\u2026")
        self._action_job = self._run(name, fn, self._action_done, self._action_failed)
        self._update_buttons()

    def _action_done(self, result: ActionResult) -> None:
        self._action_job = None
        self.progress.hide()
        self.access.touch()
        self.say(result.message, "warning" if result.warning else "ok")
        self._update_buttons()
        self.reload()
        self.actionDone.emit(result.message)

    def _action_failed(self, message: str) -> None:
        self._action_job = None
        self.progress.hide()
        self.say(message, "error")
        self._update_buttons()
        self.reload()  # a change may have been made part-way (an erasure whose models were not pruned)
        self.actionFailed.emit(message)

    def _require(self, action: str, then: Any) -> None:
        self._pending_action = True

        def run(session: HRSession) -> None:
            self._pending_action = False
            then(session)

        self.access.require(self, action, run)

    @Slot()
    def edit(self) -> None:
        """Edit the selected operator's name and department (asks for an HR login to save)."""
        op = self.selected()
        if op is None or self.busy:
            return
        dialog = EditDialog(op, self)
        self.edit_dialog = dialog
        dialog.accepted.connect(lambda: self._edit_accepted(op, *dialog.values()))
        dialog.open()

    def _edit_accepted(self, op: Operator, name: str, department: str) -> None:
        path, models = self.registry_path, self.models_dir

        def then(session: HRSession) -> None:
            self._start_action("edit", lambda progress: jobs.edit_operator(path, models, session, op.employee_id,
                                                                           name, department),
                               f"Saving the details of {op.employee_id}")

        self._require(f"edit the details of {op.employee_id}", then)

    @Slot()
    def toggle_active(self) -> None:
        """Deactivate the selected operator (after a confirmation) or reactivate them."""
        op = self.selected()
        if op is None or self.busy:
            return
        if not op.active:
            self._set_active(op, True)
            return
        box = QMessageBox(QMessageBox.Icon.Question, f"Deactivate {op.employee_id}",
                          f"Deactivate {op.name} ({op.employee_id})?\n\nThe gate stops letting them in within a few "
                          "seconds. Their photos and history stay on file, and you can reactivate them at any time.",
                          QMessageBox.StandardButton.Cancel, self)
        box.setStyleSheet(theme.STYLESHEET)
        box.addButton("Deactivate", QMessageBox.ButtonRole.AcceptRole)
        box.accepted.connect(lambda: self._set_active(op, False))
        self.confirm_box = box
        box.open()

    def _set_active(self, op: Operator, active: bool) -> None:
        path, models = self.registry_path, self.models_dir
        verb = "Reactivating" if active else "Deactivating"

        def then(session: HRSession) -> None:
            self._start_action("activate" if active else "deactivate",
                               lambda progress: jobs.set_operator_active(path, models, session, op.employee_id, active),
                               f"{verb} {op.employee_id}")

        self._require(f"{'reactivate' if active else 'deactivate'} {op.employee_id}", then)

    @Slot()
    def erase(self) -> None:
        """Erase the selected operator: count what goes (worker), confirm, log in, erase (worker, with progress)."""
        op = self.selected()
        if op is None or self.busy:
            return
        path, models = self.registry_path, self.models_dir
        self.say(f"Counting what erasing {op.employee_id} removes\u2026")
        self.erase_button.setEnabled(False)
        self._run("preview", lambda progress: jobs.preview_erasure(path, models, op.employee_id), self._preview_ready,
                  self._preview_failed)

    def _preview_failed(self, message: str) -> None:
        self._update_buttons()
        self.say(f"Cannot prepare the erasure: {message}", "error")
        self.actionFailed.emit(message)

    def _preview_ready(self, preview: Any) -> None:
        self._update_buttons()
        self.say("")
        dialog = EraseDialog(preview, self)
        self.erase_dialog = dialog
        dialog.accepted.connect(lambda: self._erase_confirmed(preview.employee_id))
        self.previewReady.emit(preview)
        dialog.open()

    def _erase_confirmed(self, employee_id: str) -> None:
        path, models = self.registry_path, self.models_dir

        def then(session: HRSession) -> None:
            self._start_action("erase", lambda progress: jobs.erase_operator(path, models, session, employee_id,
                                                                             progress),
                               f"Erasing {employee_id} (retraining the model without them can take a minute)")

        self._require(f"erase {employee_id} (right to erasure)", then)
