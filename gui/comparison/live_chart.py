"""The live chart: the three models' probabilities for one face over the last 30 s, and its distance.

Drawn with pyqtgraph (see ``benchmarks/bench_charts.py`` for why): one ``GraphicsLayoutWidget``
(one view, one paint) with two plots sharing the time axis.  The axes never move — time is
"seconds before the newest point" — because a moving axis re-lays out its ticks during the paint and
makes pyqtgraph paint every update twice.  Disagreements (the track was flagged) are shaded in the
flag colour on both plots.  :meth:`LiveChart.show_series` is called by the view's redraw timer, never
per frame.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from core.live.tracking import TrackState, TrackView
from gui import theme
from gui.comparison.history import MODELS, Series

FLAG = theme.DECISION_COLOURS["flagged"]
THRESHOLD_COLOUR = theme.DECISION_COLOURS["unknown"]
DISTANCE_TOP = 1.6  # distances lie in 0–2; strangers at the gate score ~1.2–1.3
assert MODELS == theme.MODEL_ORDER


def _rgba(colour: QColor, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c


def _style_axis(axis: pg.AxisItem, label: str | None) -> None:
    axis.setTickFont(theme.font(11))
    axis.setTextPen(pg.mkPen(theme.TEXT))
    axis.setPen(pg.mkPen(theme.MUTED))
    if label:
        axis.setLabel(label, color=theme.TEXT.name(), **{"font-size": "12pt"})


def shading(series: Series, top: float, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Polygons (x, y) covering each flagged point's stretch of time, from 0 to ``top``.

    A point covers the time halfway to its neighbours, at most ``half_width`` each side, so a flag
    before a gap (the face was not seen) does not shade the gap.
    """
    t = series.t
    if t.size == 0 or not series.flagged.any():
        return np.zeros(0), np.zeros(0)
    mid = (t[:-1] + t[1:]) / 2
    lo = np.maximum(np.concatenate([[-np.inf], mid]), t - half_width)
    hi = np.minimum(np.concatenate([mid, [np.inf]]), t + half_width)
    # One rectangle per run of touching flagged points: a fill path with a corner per point costs
    # several milliseconds per paint, a handful of rectangles next to nothing.
    flagged = series.flagged.astype(np.int8)
    touching = np.concatenate([[False], hi[:-1] >= lo[1:]])  # no gap between a point and the one before
    starts = np.flatnonzero((flagged == 1) & ~(touching & (np.concatenate([[0], flagged[:-1]]) == 1)))
    ends = np.flatnonzero((flagged == 1) & ~(np.concatenate([touching[1:], [False]])
                                             & (np.concatenate([flagged[1:], [0]]) == 1)))
    x = np.stack([lo[starts], lo[starts], hi[ends], hi[ends]], axis=1).ravel()
    y = np.tile(np.array([0.0, top, top, 0.0]), starts.size)
    return x, y


class LiveChart(QWidget):
    """Probabilities (top) and distance against the threshold (bottom) of one face.

    Each model's line is the probability it gives its own favourite person (the name in the
    legend), so a line that dips while the stretch is shaded is a model that changed its mind.

    Parameters
    ----------
    window
        Seconds of history shown (the x axis runs from ``-window`` to 0).
    """

    def __init__(self, window: float = 30.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.half_width = 0.15
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)

        legend = QHBoxLayout()
        legend.setSpacing(18)
        # One label that wraps, so three long names never force the window wider than 1366 px.
        self.models_label = QLabel()
        self.models_label.setFont(theme.font(13, bold=True))
        self.models_label.setTextFormat(Qt.TextFormat.RichText)
        self.models_label.setWordWrap(True)
        legend.addWidget(self.models_label, 1)
        key = QLabel(f"<span style='color:{FLAG.name()}'>■</span> flagged")
        key.setFont(theme.font(12))
        key.setToolTip("Shaded: moments the face was flagged (the models disagreed with each other or "
                       "with the gate, or the two nearest people were close)")
        legend.addWidget(key, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(legend)

        self.flag_label = QLabel()
        self.flag_label.setFont(theme.font(12, bold=True))
        self.flag_label.setWordWrap(True)
        self.flag_label.setMinimumHeight(self.flag_label.fontMetrics().height() * 2 + 4)
        self.flag_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.flag_label)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(theme.PANEL)
        self.graphics.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.graphics.setMinimumHeight(260)
        layout.addWidget(self.graphics, 1)

        self.prob_plot = self.graphics.addPlot(row=0, col=0)
        self.dist_plot = self.graphics.addPlot(row=1, col=0)
        self.graphics.ci.layout.setRowStretchFactor(0, 2)
        self.graphics.ci.layout.setRowStretchFactor(1, 1)
        ticks_x = [[(-s, "now" if s == 0 else f"−{s:g} s") for s in np.arange(0, window + 1, 5)]]
        for plot, label in ((self.prob_plot, "probability"), (self.dist_plot, "distance")):
            plot.setMouseEnabled(False, False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.enableAutoRange(x=False, y=False)
            plot.setXRange(-1.06 * window, 0.05 * window, padding=0)  # room for the end labels
            plot.showGrid(x=True, y=True, alpha=0.18)
            _style_axis(plot.getAxis("left"), label)
            _style_axis(plot.getAxis("bottom"), None)
            plot.getAxis("bottom").setTicks(ticks_x)
            plot.getAxis("left").setWidth(72)
        self.prob_plot.getAxis("bottom").setStyle(showValues=False)
        self.dist_plot.setXLink(self.prob_plot)
        self.prob_plot.setYRange(0.0, 1.0, padding=0.06)
        self.prob_plot.getAxis("left").setTicks([[(v, f"{v:.2f}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)]])
        self.distance_top = DISTANCE_TOP
        self.dist_plot.setYRange(0.0, self.distance_top, padding=0.06)
        self.dist_plot.getAxis("left").setTicks([[(v, f"{v:.1f}") for v in (0.0, 0.5, 1.0, 1.5, 2.0)]])

        fill = pg.mkBrush(_rgba(FLAG, 95))
        self.prob_shade = pg.PlotDataItem(pen=None, fillLevel=0.0, brush=fill)
        self.dist_shade = pg.PlotDataItem(pen=None, fillLevel=0.0, brush=fill)
        self.prob_plot.addItem(self.prob_shade)
        self.dist_plot.addItem(self.dist_shade)
        self.lines: dict[str, pg.PlotDataItem] = {}
        for name in MODELS:
            pen = pg.mkPen(theme.MODEL_COLOURS[name], width=3)
            self.lines[name] = self.prob_plot.plot(pen=pen, connect="finite", antialias=True,
                                                   name=theme.MODEL_NAMES[name])
        self.threshold_line = self.dist_plot.plot(
            pen=pg.mkPen(THRESHOLD_COLOUR, width=2.5, style=Qt.PenStyle.DashLine), connect="finite",
            antialias=True)
        self.distance_line = self.dist_plot.plot(pen=pg.mkPen(theme.TEXT, width=3), connect="finite",
                                                 antialias=True)
        self.threshold_text = pg.TextItem("threshold", color=THRESHOLD_COLOUR, anchor=(1.0, 1.0))
        self.threshold_text.setFont(theme.font(11, bold=True))
        self.dist_plot.addItem(self.threshold_text)
        self.threshold_text.hide()

        self.distance_label = QLabel()
        self.distance_label.setTextFormat(Qt.TextFormat.RichText)
        self.distance_label.setFont(theme.font(12, bold=True))
        layout.addWidget(self.distance_label)
        self.series: Series | None = None
        self.show_series(None, None, ())

    # -- drawing ------------------------------------------------------------------------------------

    def show_series(self, series: Series | None, track: TrackView | None, reasons: tuple[str, ...]) -> None:
        """Draw ``series`` (``None``: empty), with ``track``'s current votes and ``reasons`` as text."""
        self.series = series
        empty = np.zeros(0)
        if series is None or len(series) == 0:
            for line in self.lines.values():
                line.setData(empty, empty)
            for item in (self.prob_shade, self.dist_shade, self.distance_line, self.threshold_line):
                item.setData(empty, empty)
            self.threshold_text.hide()
        else:
            t = series.t
            for row, name in enumerate(MODELS):
                self.lines[name].setData(t, series.p[row])
            finite = series.distance[np.isfinite(series.distance)]
            top = DISTANCE_TOP if finite.size == 0 or finite.max() <= DISTANCE_TOP - 0.05 else 2.0
            if top != self.distance_top:  # rare: re-laying out the axis costs a second paint
                self.distance_top = top
                self.dist_plot.setYRange(0.0, top, padding=0.06)
            self.prob_shade.setData(*shading(series, 1.0, self.half_width))
            self.dist_shade.setData(*shading(series, top, self.half_width))
            self.distance_line.setData(t, series.distance)
            self.threshold_line.setData(t, series.threshold)
            thr = series.threshold[-1]
            if math.isfinite(float(thr)):
                self.threshold_text.setText(f"threshold {thr:.3f}")
                self.threshold_text.setPos(0.0, float(thr))
                self.threshold_text.show()
            else:
                self.threshold_text.hide()
        self._show_text(track, reasons)

    def _show_text(self, track: TrackView | None, reasons: tuple[str, ...]) -> None:
        entries = []
        for name in MODELS:
            colour = theme.MODEL_COLOURS[name].name()
            vote = track.models.get(name) if track is not None else None
            value = (f"{vote[0]}&nbsp;<span style='color:{theme.TEXT.name()}'>{vote[1]:.2f}</span>"
                     if vote is not None else f"<span style='color:{theme.MUTED.name()}'>—</span>")
            label = theme.MODEL_NAMES[name].replace(" ", "&nbsp;")
            entries.append(f"<span style='color:{colour}'>━━&nbsp;{label}</span>&nbsp;{value}")
        self.models_label.setText("&nbsp;&nbsp;&nbsp; ".join(entries))
        if track is None:
            self.flag_label.setText("")
            self.distance_label.setText("")
            return
        if reasons:
            self.flag_label.setStyleSheet(f"color: {FLAG.name()};")
            self.flag_label.setText(f"{theme.FLAG_ICON} FLAGGED — " + "; ".join(reasons))
        elif track.state is TrackState.CHECKING:
            self.flag_label.setStyleSheet(f"color: {theme.MUTED.name()};")
            self.flag_label.setText("checking… (the models have not voted enough yet)")
        else:
            self.flag_label.setStyleSheet(f"color: {theme.MUTED.name()};")
            self.flag_label.setText("the models agree with each other and with the gate")
        if math.isfinite(track.distance) and math.isfinite(track.threshold):
            verdict = "within" if track.distance <= track.threshold else "beyond"
            ok = verdict == "within"
            colour = (theme.DECISION_COLOURS["recognised"] if ok else THRESHOLD_COLOUR).name()
            self.distance_label.setText(
                f"distance <span style='color:{colour}'>{track.distance:.3f}</span> — {verdict} the "
                f"threshold {track.threshold:.3f}")
        else:
            self.distance_label.setText("distance —")
