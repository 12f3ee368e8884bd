"""The "At the gate" panel: per camera, the latest decision, large, with the guard's confirm / override.

It shows what the session decided and asks the guard; the main window sends the guard's answer to the
session worker, which records it in the registry's tamper-evident log.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from core.live.flags import flag_reasons
from core.live.monitor import decision_code
from core.live.tracking import TrackDecision, TrackState
from core.recognition.openset import enrolled_label
from gui import theme

FACE = 132
"""Side of the live-face and photo-on-file pictures, in pixels."""


def to_pixmap(rgb: np.ndarray | None, size: int = FACE) -> QPixmap:
    """An RGB array as a square-ish pixmap of width ``size`` (a grey placeholder for ``None``)."""
    if rgb is None:
        pm = QPixmap(size, size)
        pm.fill(QColor(50, 54, 64))
        return pm
    rgb = np.ascontiguousarray(rgb)
    img = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(img).scaledToWidth(size, Qt.TransformationMode.SmoothTransformation)


class _Bars(QWidget):
    """The three models' probabilities as bars, in the fixed order and colours, and under them the gate's
    probability that the face is enrolled at all (row ``"gate"``: green from 0.5 up, else red)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[str, str, float]] = []
        self.setMinimumHeight(4 * 26)

    def sizeHint(self) -> QSize:
        return QSize(300, 4 * 26)

    def set_rows(self, rows: list[tuple[str, str, float]]) -> None:
        self.rows = rows
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setFont(theme.font(11, bold=True))
        for i, (model, text, prob) in enumerate(self.rows):
            y = i * 26
            p.setPen(theme.TEXT)
            gate = model == "gate"
            p.drawText(QRectF(0, y, 70, 22), Qt.AlignmentFlag.AlignVCenter, "GATE" if gate else theme.MODEL_SHORT[model])
            bar = QRectF(72, y + 5, max(40.0, min(160.0, self.width() - 240)), 12)
            p.fillRect(bar, QColor(70, 70, 70))
            colour = (theme.GOOD if prob >= 0.5 else theme.BAD) if gate else theme.MODEL_COLOURS[model]
            p.fillRect(QRectF(bar.x(), bar.y(), bar.width() * max(0.0, min(1.0, prob)), bar.height()), colour)
            p.drawText(QRectF(bar.right() + 8, y, self.width() - bar.right() - 8, 22), Qt.AlignmentFlag.AlignVCenter,
                       text)
        p.end()


class GateCard(QFrame):
    """One camera's latest decision.  ``confirmRequested`` / ``overrideRequested`` carry the camera."""

    confirmRequested = Signal(str)
    overrideRequested = Signal(str)

    def __init__(self, camera: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera = camera
        self.decision: TrackDecision | None = None
        self.event_id: int | None = None
        self.employee_id: str | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("gateCard")
        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        top = QHBoxLayout()
        self.camera_label = QLabel(f"AT THE GATE · {camera}")
        self.camera_label.setFont(theme.font(11, bold=True))
        self.camera_label.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.time_label = QLabel("")
        self.time_label.setFont(theme.font(11))
        self.time_label.setAlignment(Qt.AlignmentFlag.AlignRight)
        top.addWidget(self.camera_label)
        top.addWidget(self.time_label)
        layout.addLayout(top)
        self.word = QLabel("WAITING")
        self.word.setFont(theme.font(26, bold=True))
        self.word.setWordWrap(True)
        layout.addWidget(self.word)
        faces = QGridLayout()
        self.live_face = QLabel()
        self.file_face = QLabel()
        for col, (label, caption) in enumerate(((self.live_face, "live"), (self.file_face, "on file"))):
            label.setPixmap(to_pixmap(None))
            label.setFixedSize(FACE, FACE)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            faces.addWidget(label, 0, col)
            cap = QLabel(caption)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cap.setStyleSheet(f"color: {theme.MUTED.name()};")
            faces.addWidget(cap, 1, col)
        faces.setColumnStretch(2, 1)
        layout.addLayout(faces)
        self.name = QLabel("—")
        self.name.setFont(theme.font(20, bold=True))
        self.name.setWordWrap(True)
        self.details = QLabel("")
        self.details.setFont(theme.font(12))
        self.details.setWordWrap(True)
        layout.addWidget(self.name)
        layout.addWidget(self.details)
        self.bars = _Bars()
        layout.addWidget(self.bars)
        self.distance = QLabel("")
        self.distance.setFont(theme.font(11))
        self.distance.setWordWrap(True)
        layout.addWidget(self.distance)
        self.flags = QLabel("")
        self.flags.setWordWrap(True)
        self.flags.setFont(theme.font(11))
        self.flags.setStyleSheet(f"color: {theme.DECISION_COLOURS['flagged'].lighter(140).name()};")
        layout.addWidget(self.flags)
        buttons = QHBoxLayout()
        self.confirm = QPushButton("Confirm  [Enter]")
        self.override = QPushButton("Override…  [O]")
        for b in (self.confirm, self.override):
            b.setFont(theme.font(12, bold=True))
            b.setEnabled(False)
            buttons.addWidget(b)
        self.confirm.clicked.connect(lambda: self.confirmRequested.emit(self.camera))
        self.override.clicked.connect(lambda: self.overrideRequested.emit(self.camera))
        layout.addLayout(buttons)
        self.action = QLabel("")
        self.action.setFont(theme.font(11))
        self.action.setWordWrap(True)
        layout.addWidget(self.action)
        layout.addStretch(1)
        self._set_colour(theme.MUTED)

    def _set_colour(self, colour: QColor) -> None:
        self.word.setStyleSheet(f"color: {colour.name()};")
        self.setStyleSheet(f"#gateCard {{ border: 3px solid {colour.name()}; border-radius: 6px; "
                           f"background: {theme.PANEL.name()}; }}")

    def show_decision(self, decision: TrackDecision, names: dict[str, str]) -> str:
        """Show ``decision``; returns its display state (``recognised`` / ``unknown`` / ``flagged``)."""
        track = decision.track
        self.decision = decision
        self.event_id = None
        code = decision_code(decision)
        reasons = flag_reasons(track) if decision.kind != "undecided" else ()
        state = "flagged" if reasons else ("recognised" if code in ("recognised", "gallery-only") else "unknown")
        colour = theme.DECISION_COLOURS[state]
        word = theme.DECISION_WORDS[state]
        if state == "flagged":
            word = f"{theme.FLAG_ICON} FLAGGED — {'RECOGNISED' if track.state is TrackState.NAMED else 'UNKNOWN'}"
        self.word.setText(word)
        self._set_colour(colour)
        self.time_label.setText(datetime.now().strftime("%H:%M:%S"))
        self.live_face.setPixmap(to_pixmap(decision.thumbnail))
        self.file_face.setPixmap(to_pixmap(None))
        named = track.state is TrackState.NAMED
        self.employee_id = track.identity if named else None
        if named:
            self.name.setText(names.get(track.identity) or track.identity)
            self.details.setText(track.identity)
        else:
            self.name.setText("Not an enrolled operator")
            self.details.setText("Check their badge and call the shift supervisor.")
        rows = []
        for model in theme.MODEL_ORDER:
            if model in track.models:
                ident, prob = track.models[model]
                shown = theme.probability_text(prob)
                text = shown if named and ident == track.identity else f"{ident}  {shown}"
                rows.append((model, text, prob))
        if math.isfinite(track.enrolled):  # the gate's own figure: is this anyone enrolled at all?
            rows.append(("gate", enrolled_label(track.enrolled), track.enrolled))
        self.bars.set_rows(rows)
        if math.isfinite(track.distance) and math.isfinite(track.threshold):
            gap = track.threshold - track.distance
            where = f"{gap:.2f} inside" if gap >= 0 else f"{-gap:.2f} past"
            self.distance.setText(f"distance {track.distance:.2f} — {where} the threshold {track.threshold:.2f}")
        else:
            self.distance.setText("")
        self.flags.setText("\n".join(f"{theme.FLAG_ICON} {r}" for r in reasons))
        self.action.setText("Recording…")
        self.confirm.setEnabled(False)
        self.override.setEnabled(False)
        return state

    def set_card(self, card: object) -> None:
        """The enrolled person's card (photo on file, name, department) once looked up."""
        if getattr(card, "employee_id", None) != self.employee_id:
            return
        self.file_face.setPixmap(to_pixmap(getattr(card, "photo", None)))
        self.name.setText(getattr(card, "name", "") or str(self.employee_id))
        dept = getattr(card, "department", "")
        self.details.setText(f"{self.employee_id}" + (f" · {dept}" if dept else "")
                             + ("" if getattr(card, "active", True) else " · DEACTIVATED"))

    def set_event(self, event_id: int) -> None:
        self.event_id = event_id
        self.action.setText(f"Recorded as event {event_id}. Confirm or override.")
        self.confirm.setEnabled(True)
        self.override.setEnabled(True)

    def set_action(self, text: str) -> None:
        self.action.setText(text)


class GatePanel(QWidget):
    """A :class:`GateCard` per camera, stacked."""

    def __init__(self, cameras: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.cards: dict[str, GateCard] = {}
        for name in cameras:
            card = GateCard(name, self)
            self.cards[name] = card
            layout.addWidget(card, 1)


class OverrideDialog(QDialog):
    """Let in or turn away, with a reason from a short list and free text."""

    def __init__(self, who: str, parent: QWidget | None = None) -> None:
        from core.registry.guard import NOTE_MAX_CHARS, OVERRIDE_REASONS

        super().__init__(parent)
        self.setWindowTitle("Override the decision")
        layout = QVBoxLayout(self)
        title = QLabel(f"Override the decision for {who}")
        title.setFont(theme.font(14, bold=True))
        layout.addWidget(title)
        self.let_in = QRadioButton("&Let in  [Alt+L]")
        self.turn_away = QRadioButton("&Turn away  [Alt+T]")
        for b in (self.let_in, self.turn_away):
            b.setFont(theme.font(13, bold=True))
            layout.addWidget(b)
        layout.addWidget(QLabel("Reason"))
        self.reason = QComboBox()
        self.reason.addItems(list(OVERRIDE_REASONS))
        layout.addWidget(self.reason)
        layout.addWidget(QLabel("Note (optional; kept in the log for good: describe what happened, not the "
                                "person)"))
        self.note = QLineEdit()
        self.note.setMaxLength(NOTE_MAX_CHARS)
        layout.addWidget(self.note)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self._accept)
        box.rejected.connect(self.reject)
        layout.addWidget(box)
        self.error = QLabel("")
        self.error.setStyleSheet(f"color: {theme.DECISION_COLOURS['unknown'].name()};")
        layout.addWidget(self.error)

    def _accept(self) -> None:
        if not (self.let_in.isChecked() or self.turn_away.isChecked()):
            self.error.setText("Choose Let in or Turn away.")
            return
        self.accept()

    def choice(self) -> tuple[str, str, str]:
        """``(action, reason, note)``."""
        action = "let-in" if self.let_in.isChecked() else "turn-away"
        return action, self.reason.currentText(), self.note.text().strip()
