"""How the events table paints its cells: large text with a small second line, a coloured decision
badge with its word, probability bars in each model's colour, the face thumbnail.

Everything is read from the model's roles (:mod:`gui.events.model`); nothing here knows the registry.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from gui import theme
from gui.events.model import SCORE_ROLE, STATE_ROLE, SUBTEXT_ROLE, THUMB_SIZE

_Index = QModelIndex | QPersistentModelIndex

MAIN_PT = 14.0
"""Main line of a cell, in points: readable from a step away."""
SUB_PT = 10.5
"""Second line (date, employee id, reason)."""
PAD = 8


def _luminance(c: QColor) -> float:
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(c.redF()) + 0.7152 * lin(c.greenF()) + 0.0722 * lin(c.blueF())


def text_on(background: QColor) -> QColor:
    """Black or white, whichever contrasts more with ``background`` (WCAG contrast ratio)."""
    lum = _luminance(background)
    return QColor(0, 0, 0) if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else QColor(255, 255, 255)


class _Base(QStyledItemDelegate):
    """Paints the item background (selection, alternate rows) then :meth:`draw`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.main_font = theme.font(MAIN_PT)
        self.bold_font = theme.font(MAIN_PT, bold=True)
        self.sub_font = theme.font(SUB_PT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        opt.icon = QIcon()
        style = opt.widget.style() if opt.widget is not None else None
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, opt.widget)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.draw(painter, QRectF(option.rect).adjusted(PAD, 4, -PAD, -4), index,
                  bool(option.state & QStyle.StateFlag.State_Selected))
        painter.restore()

    def draw(self, p: QPainter, r: QRectF, index: _Index, selected: bool) -> None:
        raise NotImplementedError

    def _two_lines(self, p: QPainter, r: QRectF, main: str, sub: str | None, colour: QColor,
                   font: QFont | None = None) -> None:
        p.setFont(font or self.main_font)
        p.setPen(colour)
        align = Qt.AlignmentFlag.AlignLeft
        if not sub:
            p.drawText(r, align | Qt.AlignmentFlag.AlignVCenter,
                       p.fontMetrics().elidedText(main, Qt.TextElideMode.ElideRight, int(r.width())))
            return
        top = QRectF(r.x(), r.y(), r.width(), r.height() * 0.58)
        p.drawText(top, align | Qt.AlignmentFlag.AlignBottom,
                   p.fontMetrics().elidedText(main, Qt.TextElideMode.ElideRight, int(r.width())))
        p.setFont(self.sub_font)
        p.setPen(theme.MUTED)
        bottom = QRectF(r.x(), top.bottom() + 1, r.width(), r.height() - top.height() - 1)
        p.drawText(bottom, align | Qt.AlignmentFlag.AlignTop,
                   p.fontMetrics().elidedText(sub, Qt.TextElideMode.ElideRight, int(r.width())))


class TextDelegate(_Base):
    """A main line (in the cell's foreground colour) and an optional muted second line."""

    def __init__(self, parent: QWidget | None = None, bold: bool = False) -> None:
        super().__init__(parent)
        self.bold = bold

    def draw(self, p: QPainter, r: QRectF, index: _Index, selected: bool) -> None:
        main = index.data(Qt.ItemDataRole.DisplayRole)
        if not main:
            return
        colour = index.data(Qt.ItemDataRole.ForegroundRole)
        self._two_lines(p, r, str(main), index.data(SUBTEXT_ROLE), colour if colour is not None else theme.TEXT,
                        self.bold_font if self.bold else None)


class DecisionDelegate(_Base):
    """The decision as a badge in its colour with its word (never colour alone), flagged with ⚑."""

    def draw(self, p: QPainter, r: QRectF, index: _Index, selected: bool) -> None:
        word = index.data(Qt.ItemDataRole.DisplayRole)
        if not word:
            return
        colour = theme.DECISION_COLOURS.get(index.data(STATE_ROLE), theme.MUTED)
        sub = index.data(SUBTEXT_ROLE)
        p.setFont(theme.font(MAIN_PT - 1, bold=True))
        fm = p.fontMetrics()
        height = fm.height() + 8
        badge = QRectF(r.x(), r.y() + (r.height() - height) / 2 - (8 if sub else 0),
                       min(r.width(), fm.horizontalAdvance(word) + 16), height)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawRoundedRect(badge, 5, 5)
        p.setPen(text_on(colour))
        p.drawText(badge, Qt.AlignmentFlag.AlignCenter, word)
        if sub:
            p.setFont(self.sub_font)
            p.setPen(theme.MUTED)
            p.drawText(QRectF(r.x(), badge.bottom() + 2, r.width(), r.bottom() - badge.bottom() - 2),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, sub)


class ScoreDelegate(_Base):
    """One model's probability: the number, a bar in the model's colour, and the model's favourite
    person when it is not the decided one."""

    def __init__(self, model: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colour = theme.MODEL_COLOURS[model]

    def draw(self, p: QPainter, r: QRectF, index: _Index, selected: bool) -> None:
        score = index.data(SCORE_ROLE)
        if score is None:
            return
        prob, identity = score
        prob = max(0.0, min(1.0, float(prob)))
        bar = QRectF(r.x(), r.bottom() - 9, r.width(), 7)
        p.fillRect(bar, QColor(255, 255, 255, 28))
        p.fillRect(QRectF(bar.x(), bar.y(), bar.width() * prob, bar.height()), self.colour)
        p.setFont(self.bold_font)
        number_width = p.fontMetrics().horizontalAdvance("0.00") + 6
        line = p.fontMetrics().height()
        text = QRectF(r.x(), r.y(), r.width(), r.height() - 12)
        if identity:
            # The model prefers someone else: name them, beside the number if there is room.
            p.setFont(self.sub_font)
            fm = p.fontMetrics()
            beside = fm.horizontalAdvance(identity) <= r.width() - number_width
            if not beside:
                text = QRectF(r.x(), r.y(), r.width(), line + 2)
            where = (QRectF(r.x(), text.y(), r.width() - number_width, text.height()) if beside
                     else QRectF(r.x(), text.bottom(), r.width(), bar.y() - text.bottom()))
            p.setPen(self.colour.lighter(140))
            p.drawText(where, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(identity, Qt.TextElideMode.ElideRight, int(where.width())))
            p.setFont(self.bold_font)
        p.setPen(theme.TEXT)
        p.drawText(text, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{prob:.2f}")


class ThumbDelegate(_Base):
    """The face, centred; asks the model for it only when painted (the model decodes it then)."""

    def draw(self, p: QPainter, r: QRectF, index: _Index, selected: bool) -> None:
        pm = index.data(Qt.ItemDataRole.DecorationRole)
        box = QRectF(r.center().x() - THUMB_SIZE / 2, r.center().y() - THUMB_SIZE / 2, THUMB_SIZE, THUMB_SIZE)
        if pm is None:
            p.setPen(QPen(theme.MUTED, 1, Qt.PenStyle.DashLine))
            p.drawRect(box.adjusted(4, 4, -4, -4))
            return
        x = box.x() + (THUMB_SIZE - pm.width()) / 2
        y = box.y() + (THUMB_SIZE - pm.height()) / 2
        p.drawPixmap(int(x), int(y), pm)
