"""Wizard pages 1 and 3: who is enrolled (Operator) and which shots are kept (Review)."""

from __future__ import annotations

import re

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QFormLayout,
    QFrame,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from core.registry.capture import Shot
from gui import theme

GOOD = theme.GOOD
BAD = theme.BAD
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class OperatorPage(QWizardPage):
    """Employee id (checked against the registry as it is typed), name and department."""

    def __init__(self, wizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("1 · Operator")
        self.setSubTitle("Who is being enrolled? A new operator, or more photos for someone already enrolled.")
        self.new = QRadioButton("New operator")
        self.more = QRadioButton("Add photos to an operator who is already enrolled")
        self.new.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.new)
        group.addButton(self.more)
        self.employee_id = QLineEdit()
        self.employee_id.setPlaceholderText("e.g. E1042 (letters, digits, . _ -)")
        self.name = QLineEdit()
        self.name.setPlaceholderText("as it should appear at the gate")
        self.department = QLineEdit()
        self.department.setPlaceholderText("optional")
        self.id_status = QLabel()
        self.id_status.setWordWrap(True)
        self.id_status.setFont(theme.font(12, bold=True))
        self.loading = QLabel("Loading the face models and the list of enrolled operators…")
        self.loading.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.loading.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Employee id", self.employee_id)
        form.addRow("", self.id_status)
        form.addRow("Name", self.name)
        form.addRow("Department", self.department)
        layout = QVBoxLayout(self)
        layout.addWidget(self.new)
        layout.addWidget(self.more)
        layout.addSpacing(10)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addWidget(self.loading)
        for widget in (self.employee_id, self.name):
            widget.textChanged.connect(self._changed)
        self.new.toggled.connect(self._changed)
        self.registerField("employee_id*", self.employee_id)
        self._changed()

    @property
    def existing(self) -> bool:
        return self.more.isChecked()

    def set_loaded(self, error: str | None = None) -> None:
        if error:
            self.loading.setText(f"The face models could not be loaded: {error}")
            self.loading.setStyleSheet(f"color: {BAD.name()};")
        else:
            self.loading.hide()
        self._changed()

    def _changed(self) -> None:
        eid = self.employee_id.text().strip()
        known = self.w.operators.get(eid)
        ok, text = False, ""
        if not eid:
            text = ""
        elif not ID_RE.match(eid):
            text = "✖ An employee id is letters and digits (and . _ -), no spaces, at most 64 characters."
        elif self.w.operators_loaded is False:
            text = "Checking the id once the list of operators is loaded…"
        elif not self.existing:
            if known is not None:
                text = (f"✖ {eid} is already enrolled ({known.name}{', ' + known.department if known.department else ''})."
                        " To add photos to them, choose 'Add photos to an operator who is already enrolled'.")
            else:
                ok, text = True, f"✔ {eid} is a new employee id."
        elif known is None:
            text = f"✖ Nobody is enrolled as {eid}."
        else:
            ok = True
            text = f"✔ {known.name} ({known.department or 'no department'}), {known.photos} photos enrolled."
            if self.name.text() != known.name:
                self.name.setText(known.name)
                self.department.setText(known.department)
        self.name.setReadOnly(self.existing)
        self.department.setReadOnly(self.existing)
        self.id_status.setText(text)
        self.id_status.setStyleSheet(f"color: {(GOOD if ok else BAD).name()};")
        self._ok = ok
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return bool(getattr(self, "_ok", False)) and bool(self.name.text().strip()) and self.w.capture_ready


def shot_pixmap(shot: Shot, size: int = 150) -> QPixmap:
    face = shot.report.aligned if shot.report.aligned is not None else shot.image
    face = np.ascontiguousarray(face)
    qimg = QImage(face.data, face.shape[1], face.shape[0], face.strides[0], QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimg).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation)


class ShotCard(QFrame):
    def __init__(self, number: int, shot: Shot, on_remove) -> None:
        super().__init__()
        self.shot = shot
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("ShotCard { border: 1px solid #4b5263; border-radius: 4px; }")
        picture = QLabel()
        picture.setPixmap(shot_pixmap(shot))
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        f = shot.figures()
        how = "by hand" if shot.manual and shot.origin == "camera" else (
            "automatic" if shot.origin == "camera" else f"file {shot.origin}")
        text = QLabel(f"<b>#{number} · {shot.pose}</b> ({how})<br>"
                      f"face {f.get('face_size', 0):.0f} px · sharpness {f.get('sharpness', 0):.0f}<br>"
                      f"brightness {f.get('brightness', 0):.0f} · yaw {f.get('yaw', 0):+.2f} · "
                      f"pitch {f.get('pitch', 0):.2f}")
        text.setWordWrap(True)
        text.setFont(theme.font(10))
        self.remove = QPushButton("Remove")
        self.remove.clicked.connect(lambda: on_remove(shot.id))
        layout = QVBoxLayout(self)
        layout.addWidget(picture)
        layout.addWidget(text)
        layout.addWidget(self.remove)
        self.setFixedWidth(220)


class ReviewPage(QWizardPage):
    """A grid of the kept shots with their quality figures; remove any; at least ``min_shots`` remain."""

    COLUMNS = 5

    def __init__(self, wizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("3 · Review the shots")
        self.setSubTitle("Each shot with its quality figures. Remove any you do not want enrolled.")
        self.setCommitPage(True)
        self.setButtonText(self.w.WizardButton.CommitButton, "Enroll and train  ›")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setFont(theme.font(12, bold=True))
        self.cards: list[ShotCard] = []
        self.grid_box = QWidget()
        self.grid = QGridLayout(self.grid_box)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_box)
        note = QLabel("Remove blurred shots, shots where the face is covered, and shots of anyone else. "
                      "'Enroll and train' stores the shots for this operator (signed with your HR login) and "
                      "trains a new model version to compare with the active one; you can still discard it.")
        note.setWordWrap(True)
        note.setStyleSheet(f"color: {theme.MUTED.name()};")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(scroll, 1)
        layout.addWidget(note)

    def initializePage(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        for card in self.cards:
            self.grid.removeWidget(card)
            card.deleteLater()
        self.cards = []
        for i, shot in enumerate(self.w.shots):
            card = ShotCard(i + 1, shot, self.w.remove_shot)
            self.grid.addWidget(card, i // self.COLUMNS, i % self.COLUMNS)
            self.cards.append(card)
        n, least = len(self.w.shots), self.w.min_shots
        who = f"{self.w.field('employee_id')} · {self.w.operator_page.name.text()}"
        if n >= least:
            self.summary.setText(f"{who}: {n} shots will be enrolled (at least {least} must remain).")
            self.summary.setStyleSheet("")
        else:
            self.summary.setText(f"{who}: only {n} shots left — at least {least} are needed. Go back and capture more.")
            self.summary.setStyleSheet(f"color: {BAD.name()};")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return len(self.w.shots) >= self.w.min_shots
