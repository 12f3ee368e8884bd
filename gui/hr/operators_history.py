"""The selected operator's recognition history: the re-enrollment advice first, then two charts over time.

Top chart: the distance of each recognition to their enrolled photos, against the threshold (dashed red)
and the band just below it where the advice starts (amber); turned-away attempts are red crosses.
Bottom chart: each model's probability for them, in the colours every other view uses.  Drawn with
pyqtgraph, like the model comparison.  The panel only shows what it is given
(:meth:`HistoryPanel.show_history`); the view loads it on a worker thread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from core.registry.history import DRIFT_RATIO, recent_median, recent_points
from gui import theme

THRESHOLD_COLOUR = theme.DECISION_COLOURS["unknown"]
ADVICE_COLOUR = theme.DECISION_COLOURS["checking"]
OK_COLOUR = theme.DECISION_COLOURS["recognised"]


def _rgba(colour: QColor, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c


def _style_axis(axis: pg.AxisItem, label: str | None) -> None:
    axis.setTickFont(theme.font(10))
    axis.setTextPen(pg.mkPen(theme.TEXT))
    axis.setPen(pg.mkPen(theme.MUTED))
    if label:
        axis.setLabel(label, color=theme.TEXT.name(), **{"font-size": "11pt"})


class HistoryPanel(QWidget):
    """Who is selected, the advice, and the charts of their recognitions."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 0, 0, 0)
        head = QHBoxLayout()
        self.photo = QLabel()
        self.photo.setFixedSize(120, 150)
        self.photo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.photo.setStyleSheet(f"background: {theme.PANEL.name()};")
        head.addWidget(self.photo)
        who = QVBoxLayout()
        self.title = QLabel()
        self.title.setFont(theme.font(16, bold=True))
        self.title.setWordWrap(True)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        who.addWidget(self.title)
        who.addWidget(self.details)
        who.addWidget(self.summary)
        who.addStretch(1)
        head.addLayout(who, 1)
        layout.addLayout(head)

        self.advice = QLabel()
        self.advice.setWordWrap(True)
        self.advice.setFont(theme.font(12, bold=True))
        self.advice.setTextFormat(Qt.TextFormat.PlainText)
        self.advice.setMargin(10)
        layout.addWidget(self.advice)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(theme.PANEL)
        self.graphics.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.graphics.setMinimumHeight(320)
        layout.addWidget(self.graphics, 1)
        self.dist_plot = self.graphics.addPlot(row=0, col=0, axisItems={"bottom": pg.DateAxisItem()})
        self.prob_plot = self.graphics.addPlot(row=1, col=0, axisItems={"bottom": pg.DateAxisItem()})
        self.dist_plot.setTitle("Distance to their enrolled photos (lower is a surer match)", color=theme.TEXT.name(),
                                size="11pt")
        self.prob_plot.setTitle("Each model's probability that it is them", color=theme.TEXT.name(), size="11pt")
        for plot, label in ((self.dist_plot, "distance"), (self.prob_plot, "probability")):
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.18)
            _style_axis(plot.getAxis("left"), label)
            _style_axis(plot.getAxis("bottom"), None)
            plot.getAxis("left").setWidth(64)
        self.prob_plot.setXLink(self.dist_plot)
        self.prob_plot.setYRange(0.0, 1.0, padding=0.05)

        self.near_band = pg.LinearRegionItem(orientation="horizontal", movable=False,
                                             brush=pg.mkBrush(_rgba(ADVICE_COLOUR, 55)), pen=pg.mkPen(None))
        self.dist_plot.addItem(self.near_band)
        self.threshold_line = pg.InfiniteLine(angle=0, movable=False,
                                              pen=pg.mkPen(THRESHOLD_COLOUR, width=2.5, style=Qt.PenStyle.DashLine))
        self.dist_plot.addItem(self.threshold_line)
        self.threshold_text = pg.TextItem("", color=THRESHOLD_COLOUR, anchor=(0.0, 1.0))
        self.threshold_text.setFont(theme.font(10, bold=True))
        self.dist_plot.addItem(self.threshold_text)
        self.distance_line = self.dist_plot.plot(pen=pg.mkPen(theme.TEXT, width=2), symbol="o", symbolSize=7,
                                                 symbolBrush=pg.mkBrush(theme.TEXT), symbolPen=None)
        self.away_points = pg.ScatterPlotItem(symbol="x", size=13, pen=pg.mkPen(THRESHOLD_COLOUR, width=3),
                                              brush=pg.mkBrush(THRESHOLD_COLOUR))
        self.dist_plot.addItem(self.away_points)
        self.lines: dict[str, pg.PlotDataItem] = {}
        for name in theme.MODEL_ORDER:
            colour = theme.MODEL_COLOURS[name]
            self.lines[name] = self.prob_plot.plot(pen=pg.mkPen(colour, width=2.5), connect="finite", symbol="o",
                                                   symbolSize=6, symbolBrush=pg.mkBrush(colour), symbolPen=None)
        keys = [(f"\u25a0 {theme.MODEL_NAMES[n]}", theme.MODEL_COLOURS[n]) for n in theme.MODEL_ORDER]
        keys += [("\u2716 turned away", THRESHOLD_COLOUR), ("\u2500 \u2500 threshold", THRESHOLD_COLOUR),
                 ("\u25a0 close to the threshold", ADVICE_COLOUR)]
        self.legend = QLabel(" &nbsp; ".join(f'<span style="color:{c.name()}; font-weight:bold">{t.replace(" ", "&nbsp;")}</span>'
                                                   for t, c in keys))
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)  # never wider than the panel: the table beside it keeps its columns
        layout.addWidget(self.legend)
        self.note = QLabel("A missing probability: that model took the face for someone else.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {theme.MUTED.name()};")
        layout.addWidget(self.note)
        self.history: Any = None
        self.show_nothing("Select an operator to see their recognitions.")

    # -- showing -----------------------------------------------------------------------------------------

    def _set_advice(self, text: str, colour: QColor | None) -> None:
        self.advice.setText(text)
        if colour is None:
            self.advice.setStyleSheet(f"color: {theme.MUTED.name()}; background: transparent;")
        else:
            self.advice.setStyleSheet(f"color: #111; background: {colour.name()}; border-radius: 4px;")

    def show_nothing(self, text: str) -> None:
        """No operator (or they are gone): empty charts and ``text``."""
        self.history = None
        self.title.setText("")
        self.details.setText("")
        self.summary.setText(text)
        self.photo.clear()
        self._set_advice("", None)
        self.advice.hide()
        self._draw(np.zeros(0), np.zeros(0), np.zeros(0, bool), {}, None)

    def show_history(self, history: Any, advice: Any, operator: Any = None, photo: QImage | None = None) -> None:
        """Draw ``history`` (an :class:`~core.registry.history.OperatorHistory`) with ``advice``."""
        self.history = history
        name = operator.name if operator is not None else history.name
        self.title.setText(name if name == history.employee_id else f"{name}  ·  {history.employee_id}")
        if operator is not None:
            status = "active" if operator.active else "DEACTIVATED — not let in"
            self.details.setText(f"{operator.department or 'no department'}  ·  {operator.photos} photos on file  ·  "
                                 f"enrolled {operator.created.astimezone():%Y-%m-%d}  ·  {status}")
        if photo is not None:
            self.photo.setPixmap(QPixmap.fromImage(photo).scaled(
                self.photo.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
        else:
            self.photo.setText("no photo")
        points = history.points
        threshold = history.threshold
        if points:
            first = min(p.time for p in points).astimezone()
            away = f", {history.turned_away} turned away" if history.turned_away else ""
            text = f"{history.accepted} recognitions since {first:%Y-%m-%d}{away}."
        else:
            text = "Not seen at the gate yet."
        if threshold is not None:
            text += f" Threshold {threshold:.2f} ({history.threshold_source})."
        self.summary.setText(text)
        self.advice.show()
        if advice is not None:
            self._set_advice(f"\u26a0 Re-enrollment suggested. {advice.message}", ADVICE_COLOUR)
        else:
            self._set_advice(self._calm_text(history), None)
        t = np.array([p.time.timestamp() for p in points], float)
        d = np.array([math.nan if p.distance is None else p.distance for p in points], float)
        accepted = np.array([p.accepted for p in points], bool)
        probs = {m: np.array([math.nan if p.probabilities.get(m) is None else p.probabilities[m] for p in points],
                             float) for m in theme.MODEL_ORDER}
        self._draw(t, d, accepted, probs, threshold)

    @staticmethod
    def _calm_text(history: Any) -> str:
        recent = recent_points(history)
        median = recent_median(history)
        if history.threshold is None:
            return "No model is active, so there is no threshold to compare with."
        if len(recent) < 5:
            return f"Too few recognitions to judge yet ({len(recent)}; at least 5 are needed)."
        if median is None:
            return "No recent recognition let them in."
        return (f"No re-enrollment needed yet: the median distance of their recent recognitions is {median:.2f}; "
                f"the threshold is {history.threshold:.2f}, and re-enrollment is suggested from "
                f"{DRIFT_RATIO * history.threshold:.2f} (the amber band).")

    def _draw(self, t: np.ndarray, d: np.ndarray, accepted: np.ndarray, probs: dict[str, np.ndarray],
              threshold: float | None) -> None:
        ok = accepted & np.isfinite(d)
        self.distance_line.setData(t[ok], d[ok])
        away = ~accepted & np.isfinite(d)
        self.away_points.setData(t[away], d[away])
        for name, line in self.lines.items():
            y = probs.get(name, np.zeros(0))
            line.setData(t[: len(y)], y)
        top = max(1.2, float(np.nanmax(d)) * 1.1 if np.isfinite(d).any() else 0.0,
                  (threshold or 0.0) * 1.15)
        self.dist_plot.setYRange(0.0, top, padding=0.02)
        if threshold is None:
            self.threshold_line.hide()
            self.near_band.hide()
            self.threshold_text.hide()
        else:
            self.threshold_line.setValue(threshold)
            self.near_band.setRegion((DRIFT_RATIO * threshold, threshold))
            self.threshold_text.setText(f"threshold {threshold:.2f}: farther off is turned away")
            self.threshold_line.show()
            self.near_band.show()
            self.threshold_text.show()
        if t.size:
            span = max(float(t.max() - t.min()), 3600.0)
            lo, hi = float(t.min()) - 0.04 * span, float(t.max()) + 0.04 * span
        else:
            import time

            hi = time.time()
            lo = hi - 7 * 86400
        self.dist_plot.setXRange(lo, hi, padding=0)
        if threshold is not None:
            self.threshold_text.setPos(lo, threshold + 0.01 * top)
