"""The Cameras tab: add, edit, rename, remove and test cameras; tick the (up to four) shown in the grid.

Nothing here is saved until the Settings dialog is: the page edits a plain list of
:class:`~core.live.settings.CameraConfig` and the table is redrawn from it.  Addresses are shown with
their passwords masked (:func:`~core.live.settings.display_spec`); the editor never shows a stored
password, and an empty password field keeps it (:func:`~core.live.settings.restore_secrets`).
"""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt, Signal, Slot
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import FaceGateError
from core.live.settings import CAMERA_NAME, MAX_SHOWN, CameraConfig, editable_spec, restore_secrets
from core.live.sources import SourceOptions, SourceStatus, default_name, open_source
from gui import theme
from gui.settings.preview import CameraTester, PreviewView, health_text

TABLE_STYLE = (
    "QTableWidget::indicator { width: 16px; height: 16px; border: 2px solid #8a93a6; border-radius: 3px; "
    "background: #242833; }"
    f"QTableWidget::indicator:checked {{ background: {theme.HEALTH_COLOURS['live'].name()}; "
    f"border-color: {theme.HEALTH_COLOURS['live'].name()}; }}")

ERROR_STYLE = f"color: {theme.DECISION_COLOURS['unknown'].lighter(130).name()};"
HINT_STYLE = f"color: {theme.MUTED.name()};"
SPEC_FORMS = ("demo (the built-in gate scene) · 0, 1 … (a webcam) · rtsp://user@host/… or http://host/video.mjpg "
              "(a network camera) · a video file · a folder of pictures")


def _name_problem(name: str, others: list[str]) -> str | None:
    if not CAMERA_NAME.match(name):
        return "A camera name starts with a letter and holds only letters, digits, '-' and '_' (at most 32)."
    if name in others:
        return f"Another camera is already called {name!r}: give each its own name."
    return None


class CameraEditor(QDialog):
    """Add or edit one camera: name, address (password left out), password field, file pickers.

    ``camera()`` is the result after ``accepted``; ``accept()`` refuses (with a message in the
    dialog) a name in use, a password without a user name, or a spec that cannot be a camera.
    """

    def __init__(self, camera: CameraConfig | None, others: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit camera" if camera else "Add a camera")
        self.stored = camera
        self.others = others
        self._result: CameraConfig | None = None
        self.name = QLineEdit(camera.name if camera else "")
        self.name.setValidator(QRegularExpressionValidator(QRegularExpression(r"[A-Za-z][A-Za-z0-9_-]{0,31}")))
        self.name.setPlaceholderText("e.g. north (empty: from the source)")
        self.source = QLineEdit(editable_spec(camera.spec) if camera else "")
        self.source.setPlaceholderText("demo, 0, rtsp://user@10.0.0.7/stream1, /path/to/clip.mp4 …")
        self.source.setMinimumWidth(460)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        stored_password = camera is not None and camera.shown_spec != camera.spec
        self.password.setPlaceholderText("stored — leave empty to keep it" if stored_password
                                         else "only for an address with a user name")
        file_button = QPushButton("Video file…")
        folder_button = QPushButton("Folder…")
        file_button.clicked.connect(self._pick_file)
        folder_button.clicked.connect(self._pick_folder)
        pickers = QHBoxLayout()
        pickers.addWidget(self.source, 1)
        pickers.addWidget(file_button)
        pickers.addWidget(folder_button)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Source", pickers)
        form.addRow("Password", self.password)
        hint = QLabel(SPEC_FORMS)
        hint.setWordWrap(True)
        hint.setStyleSheet(HINT_STYLE)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def camera(self) -> CameraConfig | None:
        return self._result

    def accept(self) -> None:
        try:
            spec = restore_secrets(self.source.text(), self.stored.spec if self.stored else None,
                                   self.password.text())
            if not spec:
                raise ValueError("Give a source: " + SPEC_FORMS)
            name = self.name.text().strip() or self._free_name(default_name(spec))
            problem = _name_problem(name, self.others)
            if problem:
                raise ValueError(problem)
            open_source(spec, name=name)  # created, not started: refuses a missing file or a bad address now
        except (FaceGateError, ValueError) as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self._result = CameraConfig(name, spec)
        super().accept()

    def _free_name(self, base: str) -> str:
        base = base if CAMERA_NAME.match(base) else "cam"
        name, n = base[:32], 2
        while name in self.others:
            name, n = f"{base[:28]}-{n}", n + 1
        return name

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A video file", "",
                                              "Videos (*.mp4 *.avi *.mkv *.mov *.m4v *.webm);;All files (*)")
        if path:
            self.source.setText(path)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A folder of pictures")
        if path:
            self.source.setText(path)


class CamerasPage(QWidget):
    """The Cameras tab.  ``cameras()`` and ``selected()`` are what it holds now; ``changed`` fires on
    every edit.  ``tester`` runs the camera test into ``preview``."""

    changed = Signal()

    COLUMNS = ("Grid", "Name", "Source")

    def __init__(self, cameras: tuple[CameraConfig, ...], selected: tuple[str, ...], options: SourceOptions,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cameras = list(cameras)
        self._selected = list(selected)
        self.options = options
        self.editor: CameraEditor | None = None
        self.rename_dialog: QInputDialog | None = None

        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setStyleSheet(TABLE_STYLE)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._ticked)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda _index: self.edit_selected())

        self.add_button = QPushButton("Add…")
        self.edit_button = QPushButton("Edit…")
        self.rename_button = QPushButton("Rename…")
        self.remove_button = QPushButton("Remove")
        self.test_button = QPushButton("Test")
        self.add_button.clicked.connect(self.add)
        self.edit_button.clicked.connect(self.edit_selected)
        self.rename_button.clicked.connect(self.rename_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.test_button.clicked.connect(self._toggle_test)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.rename_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.test_button)

        self.note = QLabel()
        self.note.setWordWrap(True)
        self.preview = PreviewView()
        self.tester = CameraTester(self.preview, self)
        self.tester.statusChanged.connect(self._tested)
        self.preview_title = QLabel("Test")
        self.preview_title.setFont(theme.font(12, bold=True))
        self.health = QLabel("The test opens the camera as the console will. Nothing is saved until Save.")
        self.health.setWordWrap(True)
        self.health.setStyleSheet(HINT_STYLE)

        left = QVBoxLayout()
        left.addWidget(self.table, 1)
        left.addLayout(buttons)
        left.addWidget(self.note)
        right = QVBoxLayout()
        right.addWidget(self.preview_title)
        right.addWidget(self.preview, 1)
        right.addWidget(self.health)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 5)
        layout.addLayout(right, 4)
        self._refresh()

    # -- what the page holds ------------------------------------------------------------------------

    def cameras(self) -> tuple[CameraConfig, ...]:
        return tuple(self._cameras)

    def selected(self) -> tuple[str, ...]:
        return tuple(self._selected)

    def selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    # -- actions --------------------------------------------------------------------------------------

    @Slot()
    def add(self) -> None:
        """Open the editor for a new camera (non-modal to the event loop: ``open()``)."""
        self._open_editor(None)

    @Slot()
    def edit_selected(self) -> None:
        row = self.selected_row()
        if row is not None:
            self._open_editor(row)

    def _open_editor(self, row: int | None) -> None:
        camera = self._cameras[row] if row is not None else None
        others = [c.name for i, c in enumerate(self._cameras) if i != row]
        self.editor = CameraEditor(camera, others, self)
        self.editor.accepted.connect(lambda: self._edited(row))
        self.editor.open()

    def _edited(self, row: int | None) -> None:
        editor = self.editor
        camera = editor.camera() if editor is not None else None
        if camera is None:
            return
        if row is None:
            self._cameras.append(camera)
            row = len(self._cameras) - 1
            if len(self._selected) < MAX_SHOWN and self._selected:
                self._selected.append(camera.name)
        else:
            old = self._cameras[row]
            self._cameras[row] = camera
            self._selected = [camera.name if n == old.name else n for n in self._selected]
        self._refresh(row)
        self.changed.emit()
        self.test(row)  # see it at once: does the new address work?

    @Slot()
    def rename_selected(self) -> None:
        row = self.selected_row()
        if row is None:
            return
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename camera")
        dialog.setLabelText(f"New name for {self._cameras[row].name}:")
        dialog.setTextValue(self._cameras[row].name)
        dialog.textValueSelected.connect(lambda text: self.rename(row, text))
        self.rename_dialog = dialog
        dialog.open()

    def rename(self, row: int, name: str) -> bool:
        """Rename the camera in ``row``; ``False`` (with the reason shown) if the name is not allowed."""
        name = name.strip()
        old = self._cameras[row]
        if name == old.name:
            return True
        problem = _name_problem(name, [c.name for i, c in enumerate(self._cameras) if i != row])
        if problem:
            self._say(problem, error=True)
            return False
        self._cameras[row] = CameraConfig(name, old.spec)
        self._selected = [name if n == old.name else n for n in self._selected]
        if self.tester.camera is not None and self.tester.camera.name == old.name:
            self.stop_test()
        self._refresh(row)
        self.changed.emit()
        return True

    @Slot()
    def remove_selected(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.remove(row)

    def remove(self, row: int) -> None:
        camera = self._cameras.pop(row)
        self._selected = [n for n in self._selected if n != camera.name]
        if self.tester.camera is not None and self.tester.camera.name == camera.name:
            self.stop_test()
        self._refresh(min(row, len(self._cameras) - 1))
        self.changed.emit()

    def test(self, row: int) -> None:
        """Open the camera in ``row`` in the preview (off the GUI thread)."""
        camera = self._cameras[row]
        self.select_row(row)
        self.preview_title.setText(f"Test: {camera.name}")
        self.health.setText(f"CONNECTING \u2014 {camera.shown_spec}")
        self.tester.start(camera, self.options)
        self._update_buttons()

    def stop_test(self) -> None:
        self.tester.stop()
        self._update_buttons()

    @Slot()
    def _toggle_test(self) -> None:
        if self.tester.running:
            self.stop_test()
        elif (row := self.selected_row()) is not None:
            self.test(row)

    # -- the view -------------------------------------------------------------------------------------

    def _refresh(self, select: int | None = None) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(len(self._cameras))
        for row, camera in enumerate(self._cameras):
            shown = camera.name in self.shown_names()
            tick = QTableWidgetItem()
            tick.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            tick.setCheckState(Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)
            tick.setToolTip("Shown in the grid (at most four)")
            self.table.setItem(row, 0, tick)
            self.table.setItem(row, 1, QTableWidgetItem(camera.name))
            spec = QTableWidgetItem(camera.shown_spec)
            spec.setToolTip(camera.shown_spec)
            self.table.setItem(row, 2, spec)
        self.table.blockSignals(False)
        if select is not None and 0 <= select < len(self._cameras):
            self.table.selectRow(select)
        self._say(self._grid_note())
        self._update_buttons()

    def shown_names(self) -> list[str]:
        """The names the grid will show: the ticked ones, or the first four when none is ticked."""
        return list(self._selected) if self._selected else [c.name for c in self._cameras[:MAX_SHOWN]]

    def _grid_note(self) -> str:
        if not self._cameras:
            return "No camera configured: the console runs the built-in demo camera. Add one with Add…"
        if not self._selected:
            return f"None ticked: the grid shows the first {min(MAX_SHOWN, len(self._cameras))}."
        return f"The grid shows the {len(self._selected)} ticked (at most {MAX_SHOWN}); only those run."

    def _say(self, text: str, error: bool = False) -> None:
        self.note.setText(text)
        self.note.setStyleSheet(ERROR_STYLE if error else HINT_STYLE)

    @Slot(QTableWidgetItem)
    def _ticked(self, item: QTableWidgetItem) -> None:
        if item.column() != 0:
            return
        name = self._cameras[item.row()].name
        shown = self.shown_names()
        if item.checkState() == Qt.CheckState.Checked:
            if name not in shown and len(shown) >= MAX_SHOWN:
                self._refresh()
                self._say(f"The grid shows at most {MAX_SHOWN} cameras: untick one first.", error=True)
                return
            self._selected = shown if name in shown else [*shown, name]
        else:
            self._selected = [n for n in shown if n != name]
        self._refresh()
        self.changed.emit()

    @Slot()
    def _update_buttons(self) -> None:
        has_row = self.selected_row() is not None
        for button in (self.edit_button, self.rename_button, self.remove_button):
            button.setEnabled(has_row)
        self.test_button.setText("Stop test" if self.tester.running else "Test")
        self.test_button.setEnabled(self.tester.running or has_row)

    @Slot(object)
    def _tested(self, status: SourceStatus) -> None:
        camera = self.tester.camera
        where = camera.shown_spec if camera is not None else status.spec
        self.health.setText(f"{status.state.value.upper()} \u2014 {where}")
        self.health.setToolTip(health_text(status))
