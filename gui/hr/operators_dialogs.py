"""The operators view's dialogs: edit an operator's details, and confirm an erasure by typing the employee id."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from core.registry import Operator
from gui import theme

HINT_STYLE = f"color: {theme.MUTED.name()};"
DANGER = theme.DECISION_COLOURS["unknown"]


class EditDialog(QDialog):
    """Change an operator's name and department (the employee id stays)."""

    def __init__(self, operator: Operator, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.operator = operator
        self.setWindowTitle(f"Edit {operator.employee_id}")
        self.setStyleSheet(theme.STYLESHEET)
        self.setFont(theme.font(theme.BASE_POINTS))
        self.employee_id = QLabel(operator.employee_id)
        self.name = QLineEdit(operator.name)
        self.department = QLineEdit(operator.department)
        self.department.setPlaceholderText("e.g. Maintenance")
        form = QFormLayout()
        form.addRow("Employee id", self.employee_id)
        form.addRow("Name", self.name)
        form.addRow("Department", self.department)
        note = QLabel("The employee id cannot be changed. Saving needs an HR login; the change is signed with "
                      "your account and recorded in the audit log.")
        note.setWordWrap(True)
        note.setStyleSheet(HINT_STYLE)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.name.textChanged.connect(self._update)
        self.department.textChanged.connect(self._update)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(520)
        self._update()

    def values(self) -> tuple[str, str]:
        """``(name, department)`` as typed, trimmed."""
        return self.name.text().strip(), self.department.text().strip()

    @Slot()
    def _update(self) -> None:
        name, department = self.values()
        changed = (name, department) != (self.operator.name, self.operator.department)
        self.save_button.setEnabled(bool(name) and changed)


class EraseDialog(QDialog):
    """The right to erasure: exactly what will be removed, and the employee id typed to confirm."""

    def __init__(self, preview: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview = preview
        who = preview.employee_id if preview.name == preview.employee_id else f"{preview.name} ({preview.employee_id})"
        self.setWindowTitle(f"Erase {preview.employee_id}")
        self.setObjectName("eraseDialog")
        self.setStyleSheet(theme.STYLESHEET + f" QDialog#eraseDialog {{ border: 2px solid {DANGER.name()}; }}")
        self.setFont(theme.font(theme.BASE_POINTS))
        title = QLabel(f"Erase {who} for good?")
        title.setFont(theme.font(15, bold=True))
        intro = QLabel("The right to erasure: this cannot be undone. Once it is done the gate no longer "
                       "recognises them. This is removed:")
        intro.setWordWrap(True)
        self.items = QLabel("\n".join(f"  \u2022 {line}" for line in preview.lines()))
        self.items.setWordWrap(True)
        self.items.setStyleSheet(f"color: {DANGER.lighter(130).name()}; font-weight: bold;")
        kept = QLabel(f"Kept: the audit log records that HR erased {who}, "
                      "when and by whom; guards' notes on their events stay as written.")
        kept.setWordWrap(True)
        kept.setStyleSheet(HINT_STYLE)
        self.confirm = QLineEdit()
        self.confirm.setPlaceholderText(preview.employee_id)
        form = QFormLayout()
        form.addRow(f"Type {preview.employee_id} to confirm", self.confirm)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.erase_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.erase_button.setText("Erase for good")
        self.erase_button.setStyleSheet(f"QPushButton:enabled {{ background: {DANGER.name()}; font-weight: bold; }}")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.confirm.textChanged.connect(self._update)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addWidget(self.items)
        layout.addWidget(kept)
        layout.addSpacing(6)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(640)
        self.confirm.setFocus(Qt.FocusReason.OtherFocusReason)
        self._update()

    @Slot()
    def _update(self) -> None:
        self.erase_button.setEnabled(self.confirm.text().strip() == self.preview.employee_id)
