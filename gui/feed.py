"""Live feed tiles: the frame painted 1:1 with each face's box, landmarks, decision, three model bars and
the gate's open-set bar.

Painted in ``paintEvent`` with QPainter from the newest :class:`~gui.session_worker.DisplayFrame`
(already resized for the tile in the camera's thread); nothing here decodes, resizes or recognises.
"""

from __future__ import annotations

import math
import time
from collections import deque

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGridLayout, QSizePolicy, QWidget

from core.live.flags import flag_reasons
from core.live.sources import SourceState, SourceStatus
from core.live.tracking import TrackState, TrackView
from core.recognition.openset import enrolled_label
from gui import theme
from gui.session_worker import DisplayFrame

HEADER = 34
"""Height of the tile's title bar (camera name, health, fps)."""

GATE_SHORT = "GATE"
"""Row label of the gate's probability that the face is enrolled at all, under the three models'."""


def track_state(track: TrackView) -> str:
    """``recognised``, ``unknown``, ``checking`` or ``flagged`` — how the face is drawn."""
    if track.state is TrackState.CHECKING:
        return "checking"
    if flag_reasons(track):
        return "flagged"
    return "recognised" if track.state is TrackState.NAMED else "unknown"


def track_label(track: TrackView, names: dict[str, str]) -> str:
    state = track_state(track)
    if state == "checking":
        return "CHECKING…"
    if track.state is TrackState.UNKNOWN:
        word = "UNKNOWN"
    else:
        word = names.get(track.identity) or track.identity
    return f"{theme.FLAG_ICON} {word}" if state == "flagged" else word


class FeedTile(QWidget):
    """One camera: its newest frame with overlays; an alarm border until the guard acknowledges."""

    clicked = Signal(str)

    def __init__(self, camera: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera = camera
        self.frame: DisplayFrame | None = None
        self.status: SourceStatus | None = None
        self.names: dict[str, str] = {}
        self.alarm: str | None = None  # "unknown" or "flagged" while an alarm is unacknowledged
        self.focused = False
        self.painted = 0
        #: Seconds from each painted frame's capture to its paint (newest 500), for the benchmark.
        self.latencies: deque[float] = deque(maxlen=500)
        self._last_painted_index = -1
        self.setMinimumSize(320, 240 + HEADER)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def picture_size(self) -> tuple[int, int]:
        """The area frames are resized to (below the title bar)."""
        return self.width() - 8, self.height() - HEADER - 8

    def set_frame(self, frame: DisplayFrame) -> None:
        self.frame = frame
        self.status = frame.result.status
        self.update()

    def set_status(self, status: SourceStatus) -> None:
        self.status = status
        self.update()

    def set_alarm(self, alarm: str | None) -> None:
        self.alarm = alarm
        self.update()

    def mousePressEvent(self, event) -> None:
        self.clicked.emit(self.camera)
        super().mousePressEvent(event)

    # -- painting ---------------------------------------------------------------------------------

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), theme.BACKGROUND)
        self._paint_header(p)
        area = QRectF(4, HEADER + 4, self.width() - 8, self.height() - HEADER - 8)
        frame = self.frame
        state = self.status.state if self.status is not None else SourceState.CONNECTING
        if frame is not None:
            img = frame.image
            qimg = QImage(img.data, img.shape[1], img.shape[0], img.strides[0], QImage.Format.Format_RGB888)
            x0 = area.x() + (area.width() - img.shape[1]) / 2
            y0 = area.y() + (area.height() - img.shape[0]) / 2
            p.drawImage(QPointF(x0, y0), qimg)
            if frame.result.frame_index != self._last_painted_index:
                self._last_painted_index = frame.result.frame_index
                self.latencies.append(time.monotonic() - frame.result.captured)
            if state is SourceState.LIVE:
                for track in frame.result.tracks:
                    self._paint_track(p, track, frame.scale, x0, y0)
            else:
                p.fillRect(QRectF(x0, y0, img.shape[1], img.shape[0]), QColor(0, 0, 0, 150))  # greyed
        if state is not SourceState.LIVE:
            self._paint_state(p, area)
        if self.alarm is not None:
            colour = theme.DECISION_COLOURS["flagged" if self.alarm == "flagged" else "unknown"]
            p.setPen(QPen(colour, 8))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(4, 4, self.width() - 8, self.height() - 8))
        elif self.focused:
            p.setPen(QPen(QColor(90, 120, 200), 3))
            p.drawRect(QRectF(1.5, 1.5, self.width() - 3, self.height() - 3))
        p.end()
        self.painted += 1

    def _paint_header(self, p: QPainter) -> None:
        p.fillRect(QRectF(0, 0, self.width(), HEADER), theme.PANEL)
        status = self.status
        state = status.state.value if status is not None else "connecting"
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(theme.HEALTH_COLOURS.get(state, theme.MUTED))
        p.drawEllipse(QPointF(16, HEADER / 2), 7, 7)
        p.setPen(theme.TEXT)
        p.setFont(theme.font(13, bold=True))
        p.drawText(QRectF(30, 0, self.width() / 2, HEADER), Qt.AlignmentFlag.AlignVCenter, self.camera)
        detail = state
        if status is not None and status.state is SourceState.LIVE:
            detail = f"live  {status.fps:.0f} fps"
        p.setFont(theme.font(11))
        p.setPen(theme.MUTED)
        p.drawText(QRectF(self.width() / 2, 0, self.width() / 2 - 10, HEADER),
                   Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, detail)

    def _paint_state(self, p: QPainter, area: QRectF) -> None:
        status = self.status
        if status is None:
            title, line = "CONNECTING", "opening the camera…"
        else:
            title = status.state.value.upper()
            line = status.line()
        p.setPen(theme.HEALTH_COLOURS.get(title.lower(), theme.TEXT))
        p.setFont(theme.font(22, bold=True))
        p.drawText(area.adjusted(0, -30, 0, -30), Qt.AlignmentFlag.AlignCenter, title)
        p.setPen(theme.TEXT)
        p.setFont(theme.font(11))
        p.drawText(area.adjusted(20, 40, -20, 40), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, line)

    def _paint_track(self, p: QPainter, track: TrackView, scale: float, x0: float, y0: float) -> None:
        state = track_state(track)
        colour = theme.DECISION_COLOURS[state]
        x, y, w, h = track.box
        box = QRectF(x0 + x * scale, y0 + y * scale, w * scale, h * scale)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(colour, 4 if state != "checking" else 2,
                      Qt.PenStyle.SolidLine if state != "checking" else Qt.PenStyle.DashLine))
        p.drawRect(box)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(255, 255, 255))
        for lx, ly in track.landmarks:
            p.drawEllipse(QPointF(x0 + lx * scale, y0 + ly * scale), 3.5, 3.5)
        # The name above the box, on a band of its colour: readable from a step away.
        label = track_label(track, self.names)
        p.setFont(theme.font(16, bold=True))
        metrics = p.fontMetrics()
        band = QRectF(box.x() - 2, box.y() - metrics.height() - 8, max(box.width() + 4, metrics.horizontalAdvance(label)
                                                                        + 16), metrics.height() + 6)
        if band.y() < y0:
            band.moveTop(box.bottom() + 2)
        p.fillRect(band, colour)
        p.setPen(QColor(0, 0, 0) if state in ("checking", "recognised") else QColor(255, 255, 255))
        p.drawText(band.adjusted(8, 0, -4, 0), Qt.AlignmentFlag.AlignVCenter, label)
        self._paint_bars(p, track, box)

    def _paint_bars(self, p: QPainter, track: TrackView, box: QRectF) -> None:
        """Bars beside the box: each model's favourite person and probability, same order always, then
        the gate's probability that the face is enrolled at all (``GATE``, when known)."""
        row_h = 22.0
        p.setFont(theme.font(10, bold=True))
        metrics = p.fontMetrics()
        # (row label, probability, text, bar colour)
        rows: list[tuple[str, float, str, QColor]] = []
        for name in theme.MODEL_ORDER:
            if name in track.models:
                ident, prob = track.models[name]
                named_same = track.state is TrackState.NAMED and ident == track.identity
                text = theme.probability_text(prob) if named_same else f"{ident[:14]} {theme.probability_text(prob)}"
                rows.append((theme.MODEL_SHORT[name], prob, text, theme.MODEL_COLOURS[name]))
        # The models' numbers assume the face is someone enrolled; this one says whether it is.
        gate = enrolled_label(track.enrolled)
        if gate:
            rows.append((GATE_SHORT, track.enrolled, gate, theme.GOOD if track.enrolled >= 0.5 else theme.BAD))
        label_w = max(metrics.horizontalAdvance(t) for t in (*theme.MODEL_SHORT.values(), GATE_SHORT)) + 10
        text_w = max((metrics.horizontalAdvance(r[2]) for r in rows), default=0) + 10
        bar_w = 64.0
        width = label_w + bar_w + 6 + text_w
        left = box.right() + 8
        if left + width > self.width():
            left = max(4.0, box.x() - width - 8)
        for i, (label, prob, text, colour) in enumerate(rows):
            row = QRectF(left, box.y() + i * (row_h + 4), width, row_h)
            p.fillRect(row, QColor(0, 0, 0, 180))
            p.setPen(theme.TEXT)
            p.drawText(row.adjusted(5, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, label)
            bar = QRectF(row.x() + label_w, row.y() + 6, bar_w, row_h - 12)
            p.fillRect(bar, QColor(70, 70, 70))
            filled = QRectF(bar.x(), bar.y(), bar.width() * max(0.0, min(1.0, prob)), bar.height())
            p.fillRect(filled, colour)
            p.drawText(QRectF(bar.right() + 6, row.y(), text_w, row_h), Qt.AlignmentFlag.AlignVCenter, text)


class FeedGrid(QWidget):
    """1–4 tiles in a grid (1×1, 1×2, 2×2)."""

    def __init__(self, cameras: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles: dict[str, FeedTile] = {}
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        columns = 1 if len(cameras) == 1 else 2
        for i, name in enumerate(cameras[:4]):
            tile = FeedTile(name, self)
            self.tiles[name] = tile
            layout.addWidget(tile, i // columns, i % columns)


def seconds_ago(t: float) -> str:
    """``"3 s ago"`` for a ``time.monotonic()`` stamp."""
    dt = time.monotonic() - t
    return "now" if not math.isfinite(dt) or dt < 1 else f"{dt:.0f} s ago"
