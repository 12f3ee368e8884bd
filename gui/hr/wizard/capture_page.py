"""Wizard page 2, Capture: the live preview with the face box, landmarks and the gate's advice; the pose
guide; automatic capture, capture by hand, photo import; the duplicate check's warning."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from core.registry.capture import POSE_HINTS, POSES
from gui import theme
from gui.hr.wizard.workers import DuplicateCheck, FrameView

GOOD = theme.GOOD
WARN = theme.WARN
BAD = theme.BAD


class PreviewWidget(QWidget):
    """The newest analysed frame, painted 1:1 in ``paintEvent`` with its faces' boxes and landmarks."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: FrameView | None = None
        self.message = "Starting the camera…"
        self.painted = 0
        self.setMinimumSize(480, 360)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_view(self, view: FrameView) -> None:
        self.view = view
        self.update()

    def set_message(self, text: str) -> None:
        self.message = text
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), theme.PANEL)
        view = self.view
        if view is None:
            p.setPen(theme.MUTED)
            p.setFont(theme.font(14))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            p.end()
            return
        img = view.image
        qimg = QImage(img.data, img.shape[1], img.shape[0], img.strides[0], QImage.Format.Format_RGB888)
        x0 = max(0.0, (self.width() - img.shape[1]) / 2)
        y0 = max(0.0, (self.height() - img.shape[0]) / 2)
        p.drawImage(QPointF(x0, y0), qimg)
        colour = GOOD if view.passed else (BAD if len(view.faces) != 1 else WARN)
        for det in view.faces:
            x, y, w, h = det.box
            s = view.scale
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(colour, 3))
            p.drawRect(QRectF(x0 + x * s, y0 + y * s, w * s, h * s))
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(255, 255, 255))
            for lx, ly in det.landmarks:
                p.drawEllipse(QPointF(x0 + lx * s, y0 + ly * s), 3.0, 3.0)
        p.end()
        self.painted += 1


class PoseGuide(QWidget):
    """One cell per pose: how many shots it has of how many, ✔ when done."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        self.cells: dict[str, QLabel] = {}
        for i, pose in enumerate(POSES):
            cell = QLabel()
            cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cell.setMinimumWidth(96)
            cell.setFont(theme.font(11, bold=True))
            cell.setToolTip(POSE_HINTS[pose])
            grid.addWidget(cell, 0, i)
            self.cells[pose] = cell
        self.set_counts(dict.fromkeys(POSES, 0), {p: 1 for p in POSES})

    def set_counts(self, counts: dict[str, int], quota: dict[str, int]) -> None:
        for pose, cell in self.cells.items():
            have, want = counts.get(pose, 0), quota.get(pose, 0)
            done = have >= want
            cell.setText(f"{'✔ ' if done else ''}{pose}\n{have} of {want}")
            cell.setStyleSheet(f"border: 2px solid {(GOOD if done else theme.MUTED).name()}; border-radius: 4px; "
                               f"padding: 4px; color: {(GOOD if done else theme.TEXT).name()};")


class CapturePage(QWizardPage):
    """See the module docstring."""

    def __init__(self, wizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("2 · Capture the face")
        self.setSubTitle("Ask the person to face the camera. Shots are taken automatically when the picture is good; "
                         "the guide below shows which poses are still missing.")
        self.preview = PreviewWidget()
        self.advice = QLabel("Waiting for the camera…")
        self.advice.setFont(theme.font(20, bold=True))
        self.advice.setWordWrap(True)
        self.advice.setMinimumHeight(64)
        self.ask = QLabel()
        self.ask.setFont(theme.font(13))
        self.ask.setWordWrap(True)
        self.guide = PoseGuide()
        self.auto = QCheckBox("Capture automatically")
        self.auto.setChecked(True)
        self.pose_choice = QComboBox()
        self.pose_choice.addItem("pose as measured", "")
        for pose in POSES:
            self.pose_choice.addItem(pose, pose)
        self.capture_button = QPushButton("Capture now")
        self.capture_button.setToolTip("Keep the next good picture, whatever its pose (e.g. the smile)")
        self.import_button = QPushButton("Import photo files…")
        self.count = QLabel()
        self.count.setFont(theme.font(13, bold=True))
        self.last = QLabel()
        self.last.setWordWrap(True)
        self.last.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.duplicate = QLabel()
        self.duplicate.setWordWrap(True)
        self.duplicate.setFont(theme.font(13, bold=True))
        self.duplicate.setStyleSheet(f"color: {BAD.name()};")
        self.duplicate.hide()
        self.override = QCheckBox()
        self.override.hide()

        controls = QHBoxLayout()
        controls.addWidget(self.auto)
        controls.addSpacing(16)
        controls.addWidget(QLabel("By hand:"))
        controls.addWidget(self.pose_choice)
        controls.addWidget(self.capture_button)
        controls.addSpacing(16)
        controls.addWidget(self.import_button)
        controls.addStretch(1)
        side = QVBoxLayout()
        side.addWidget(self.advice)
        side.addWidget(self.ask)
        side.addWidget(self.count)
        side.addWidget(self.last)
        side.addWidget(self.duplicate)
        side.addWidget(self.override)
        side.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.preview, 3)
        side_box = QWidget()
        side_box.setLayout(side)
        side_box.setMinimumWidth(340)
        top.addWidget(side_box, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(self.guide)
        layout.addLayout(controls)

        self.auto.toggled.connect(self.w.request_auto.emit)
        self.capture_button.clicked.connect(lambda: self.w.request_capture.emit(self.pose_choice.currentData() or ""))
        self.import_button.clicked.connect(self._choose_files)
        self.override.toggled.connect(lambda _on: self.completeChanged.emit())
        self.refresh()

    # -- from the wizard -----------------------------------------------------------------------------

    def show_frame(self, view: FrameView) -> None:
        self.preview.set_view(view)
        self.advice.setText(view.feedback)
        self.advice.setStyleSheet(f"color: {(GOOD if view.passed else WARN).name()};")

    def show_status(self, text: str) -> None:
        self.preview.set_message(text)
        self.advice.setText(text)

    def show_refused(self, what: str, why: str) -> None:
        self.last.setText(f"Not kept — {what}: {why}")

    def show_duplicate(self, check: DuplicateCheck) -> None:
        was = self.override.isChecked()
        if check.kind == "duplicate":
            self.duplicate.setText(f"⚠ This face is already enrolled as {check.name} ({check.employee_id}): "
                                   f"median distance {check.distance:.2f}, within the threshold {check.threshold:.2f}. "
                                   "Check who this is before going on.")
            self.override.setText("It is a different person (a twin, a re-hire under a new id): enroll anyway. "
                                  "This is recorded in the audit log.")
        elif check.kind == "new_look":
            self.duplicate.setText(f"⚠ {check.photos} of {check.total} shots do not look like {check.name}'s "
                                   f"enrolled photos (median distance {check.distance:.2f}, threshold "
                                   f"{check.threshold:.2f}). Is this really {check.name}?")
            self.override.setText(f"Yes — {check.name}'s looks changed (a beard, glasses, an accident): enroll "
                                  "anyway. This is recorded in the audit log.")
        self.duplicate.setVisible(check.kind != "ok")
        self.override.setVisible(check.kind != "ok")
        self.override.setChecked(was and check.kind != "ok")
        self.completeChanged.emit()

    def refresh(self) -> None:
        plan = self.w.quota
        counts = self.w.pose_counts()
        self.guide.set_counts(counts, plan)
        n, target, least = len(self.w.shots), sum(plan.values()), self.w.min_shots
        self.count.setText(f"{n} shots kept — {target} wanted, at least {least} needed")
        missing = [p for p in POSES if counts.get(p, 0) < plan.get(p, 0)]
        if not missing:
            self.ask.setText("Every pose has its shots. Go on to the review.")
        else:
            hint = POSE_HINTS[missing[0]]
            extra = (" The smile is recognised only roughly: if it is not taken automatically, choose "
                     "'smile' beside 'By hand:' and press Capture now while the person smiles.") if missing[0] == "smile" else ""
            self.ask.setText(f"Next: {missing[0]} — ask the person to {hint}.{extra}")
        self.completeChanged.emit()

    # -- page --------------------------------------------------------------------------------------

    def isComplete(self) -> bool:
        # From the check itself, never from the warning's visibility: QWizard asks while it re-lays out the
        # page, when the warning can read as not visible, and Next was left enabled past the warning.
        blocked = self.w.duplicate.kind != "ok" and not self.override.isChecked()
        return len(self.w.shots) >= self.w.min_shots and not blocked and self.w.capture_ready

    def import_files(self, paths: list[str | Path]) -> None:
        """Check photo files with the gate and keep the good ones (also what the file dialog does)."""
        self.last.setText(f"Checking {len(paths)} photo file(s)…")
        self.w.request_import.emit([str(p) for p in paths])

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import photos of the operator", "",
                                                "Pictures (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff)")
        if files:
            self.import_files(files)
