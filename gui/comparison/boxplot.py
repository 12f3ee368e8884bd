"""A box plot item for pyqtgraph, drawn directly in data coordinates.

pyqtgraph's own ``BoxplotItem`` records its boxes in a ``QPicture``, which rounds coordinates to
whole numbers: accuracies between 0 and 1 come out as boxes from 0 to 1, a full column wide.  This
item paints each box itself.  Whiskers follow matplotlib's default (the thesis's figures and
``facegate evaluate``'s PNG): the most extreme folds within 1.5 × IQR of the box, folds beyond them
as dots, and the mean as a diamond.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPolygonF


class BoxStats:
    """The numbers of one box: quartiles, whiskers, outliers, mean."""

    def __init__(self, values: Sequence[float]) -> None:
        v = np.asarray(values, dtype=float)
        self.q1, self.median, self.q3 = (float(x) for x in np.percentile(v, [25, 50, 75]))
        iqr = self.q3 - self.q1
        inside = v[(v >= self.q1 - 1.5 * iqr) & (v <= self.q3 + 1.5 * iqr)]
        self.low, self.high = float(inside.min()), float(inside.max())
        self.outliers = v[(v < self.low) | (v > self.high)]
        self.mean = float(v.mean())
        self.min, self.max = float(v.min()), float(v.max())


class BoxPlotItem(pg.GraphicsObject):
    """Boxes at x = 0, 1, 2 … for ``data[i]``, each in ``colours[i]``.

    Parameters
    ----------
    data
        One sequence of values per box (e.g. the accuracy of each fold).
    colours
        One colour per box: outline, whiskers and the translucent fill.
    median_colour
        The median line and the mean marker.
    width
        Box width in x units.
    """

    def __init__(self, data: Sequence[Sequence[float]], colours: Sequence[QColor], median_colour: QColor,
                 width: float = 0.6) -> None:
        super().__init__()
        self.stats = [BoxStats(d) for d in data]
        self.colours = [QColor(c) for c in colours]
        self.median_colour = QColor(median_colour)
        self.width = width
        lows = [s.min for s in self.stats] or [0.0]
        highs = [s.max for s in self.stats] or [1.0]
        self._rect = QRectF(-width, min(lows), len(self.stats) + width, max(highs) - min(lows))

    def boundingRect(self) -> QRectF:
        return self._rect

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange: object = None) -> tuple[float, float]:
        r = self._rect
        return (r.left(), r.right()) if ax == 0 else (r.top(), r.bottom())

    def paint(self, p: QPainter, *args: object) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        half, quarter = self.width / 2, self.width / 4
        px = self.pixelLength(pg.Point(0, 1)) or 0.002  # one pixel in y, for markers of fixed size
        for x, (s, colour) in enumerate(zip(self.stats, self.colours)):
            pen = QPen(colour, 2)
            pen.setCosmetic(True)
            fill = QColor(colour)
            fill.setAlpha(110)
            p.setPen(pen)
            p.setBrush(QBrush(fill))
            p.drawLine(QPointF(x, s.high), QPointF(x, s.q3))
            p.drawLine(QPointF(x, s.low), QPointF(x, s.q1))
            p.drawLine(QPointF(x - quarter, s.high), QPointF(x + quarter, s.high))
            p.drawLine(QPointF(x - quarter, s.low), QPointF(x + quarter, s.low))
            p.drawRect(QRectF(x - half, s.q1, self.width, s.q3 - s.q1))
            median = QPen(self.median_colour, 3)
            median.setCosmetic(True)
            p.setPen(median)
            p.drawLine(QPointF(x - half, s.median), QPointF(x + half, s.median))
            p.setBrush(QBrush(colour))
            p.setPen(QPen(colour, 0))
            for y in s.outliers:
                p.drawEllipse(QPointF(x, float(y)), 0.05, 4 * px)
            p.setBrush(QBrush(self.median_colour))
            d = 5 * px
            diamond = [QPointF(x, s.mean - d), QPointF(x + 0.07, s.mean), QPointF(x, s.mean + d),
                       QPointF(x - 0.07, s.mean)]
            p.drawPolygon(QPolygonF(diamond))
