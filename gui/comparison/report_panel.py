"""The active model version's thesis-style tables and the cross-validation boxplot.

Built from a :class:`core.registry.report.VersionReport` (never from the database directly):
the three models' and the Super Learner's base learners' accuracy with its weights, the stacking
ensemble's cross-validation mean (std) as the thesis prints it, the boxplot of the same folds, the
open-set calibration figures, and what the training run did not record.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.registry.report import Accuracy, VersionReport
from gui import theme
from gui.comparison.boxplot import BoxPlotItem


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _mean_std(row: Accuracy, percent: bool = False) -> str:
    if row.cv_mean is None or row.cv_std is None:
        return "—"
    if percent:
        return f"{100 * row.cv_mean:.1f} ({100 * row.cv_std:.1f})"
    return f"{row.cv_mean:.3f} ({row.cv_std:.3f})"


def _table(columns: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setFont(theme.font(12))
    table.horizontalHeader().setFont(theme.font(11, bold=True))
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return table


Styles = dict[int, tuple[str | None, bool]]


def _fill(table: QTableWidget, rows: list[list[str]], styles: Styles | None = None) -> None:
    """Put ``rows`` into ``table``; ``styles[row] = (colour, bold)`` for the first cell of a row."""
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            align = Qt.AlignmentFlag.AlignVCenter | (
                Qt.AlignmentFlag.AlignLeft if c == 0 else Qt.AlignmentFlag.AlignRight)
            item.setTextAlignment(align)
            colour, bold = (styles or {}).get(r, (None, False))
            if bold:
                font = theme.font(12, bold=True)
                item.setFont(font)
            if colour is not None and c == 0:
                item.setForeground(QBrush(QColor(colour)))
            table.setItem(r, c, item)
    table.resizeColumnsToContents()
    table.resizeRowsToContents()
    height = table.horizontalHeader().sizeHint().height() + sum(table.rowHeight(r) for r in range(len(rows)))
    table.setFixedHeight(height + 2 * table.frameWidth() + 2)


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setFont(theme.font(13, bold=True))
    label.setContentsMargins(0, 10, 0, 0)
    label.setWordWrap(True)
    return label


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setFont(theme.font(10.5))
    label.setStyleSheet(f"color: {theme.MUTED.name()};")
    label.setWordWrap(True)
    return label


class ReportPanel(QWidget):
    """The tables of one model version; :meth:`set_report` fills them, :meth:`set_message` says why not."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: VersionReport | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)

        self.title = QLabel("Model version —")
        self.title.setFont(theme.font(15, bold=True))
        self.title.setWordWrap(True)
        self.subtitle = QLabel()
        self.subtitle.setFont(theme.font(11.5))
        self.subtitle.setWordWrap(True)
        self.subtitle.setStyleSheet(f"color: {theme.MUTED.name()};")
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)

        self.accuracy_heading = _heading("The three models: accuracy, %")
        self.accuracy = _table(["model", "train", "CV mean (std)"])
        self.accuracy_note = _note("")
        layout.addWidget(self.accuracy_heading)
        layout.addWidget(self.accuracy)
        layout.addWidget(self.accuracy_note)

        self.cv_heading = _heading("Stacking ensemble, cross-validated accuracy: mean (std)")
        self.cv_table = _table(["model", "mean (std)"])
        self.cv_table.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.boxplot = pg.PlotWidget(background=theme.PANEL)
        self.boxplot.setMinimumWidth(170)
        plot = self.boxplot.getPlotItem()
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.showGrid(y=True, alpha=0.2)
        plot.getAxis("bottom").setStyle(hideOverlappingLabels=30)
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setTickFont(theme.font(10))
            axis.setTextPen(pg.mkPen(theme.TEXT))
            axis.setPen(pg.mkPen(theme.MUTED))
        plot.setTitle("accuracy per fold", color=theme.TEXT.name(), size="11pt")
        self.box_items: list[BoxPlotItem] = []
        cv_row = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        cv_row.setSpacing(8)
        cv_row.addWidget(self.cv_table, 0, Qt.AlignmentFlag.AlignTop)
        cv_row.addWidget(self.boxplot, 1)
        self.cv_row = cv_row
        self.cv_box = QWidget()
        self.cv_box.setLayout(cv_row)
        cv_row.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.cv_heading)
        layout.addWidget(self.cv_box)

        self.open_heading = _heading("Open set: threshold calibration on the enrolled photos")
        self.open_table = _table(["figure", "value"])
        layout.addWidget(self.open_heading)
        layout.addWidget(self.open_table)

        self.base_heading = _heading("Super Learner: base learners")
        self.base_table = _table(["base learner", "weight", "train, %"])
        layout.addWidget(self.base_heading)
        layout.addWidget(self.base_table)

        self.checks_label = QLabel()
        self.checks_label.setFont(theme.font(11.5))
        self.checks_label.setWordWrap(True)
        layout.addWidget(self.checks_label)
        self.missing_heading = _heading("Not recorded by the training run")
        self.missing = _note("")
        layout.addWidget(self.missing_heading)
        layout.addWidget(self.missing)
        layout.addStretch(1)
        self._parts = [self.accuracy_heading, self.accuracy, self.accuracy_note, self.cv_heading, self.cv_box,
                       self.open_heading, self.open_table, self.base_heading, self.base_table,
                       self.checks_label, self.missing_heading, self.missing]
        self.set_message("Loading the active model version's figures…")

    def resizeEvent(self, event) -> None:
        # Beside the table the boxplot needs ~300 px to keep its labels apart; below it, when narrower.
        wide = event.size().width() >= 560
        direction = QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        if self.cv_row.direction() != direction:
            self.cv_row.setDirection(direction)
            self.boxplot.setFixedHeight(max(self.cv_table.height(), 200) if wide else 200)
        super().resizeEvent(event)

    # -- public -------------------------------------------------------------------------------------

    def set_message(self, text: str, error: bool = False) -> None:
        """Show ``text`` instead of the tables (no report yet, loading, or why it failed)."""
        self.report = None
        self.title.setText(text)
        self.title.setStyleSheet(f"color: {theme.DECISION_COLOURS['unknown'].name()};" if error else "")
        self.subtitle.setText("")
        for part in self._parts:
            part.hide()

    def set_report(self, report: VersionReport) -> None:
        """Fill every table from ``report``."""
        self.report = report
        self.title.setStyleSheet("")
        state = "active" if report.active else report.status
        self.title.setText(f"Model {report.version} · {state}")
        when = report.created.astimezone().strftime("%Y-%m-%d %H:%M")
        left_out = f"; left out (too few photos): {', '.join(report.left_out)}" if report.left_out else ""
        deep = ", Deep Super Learner" if report.deep else ""
        self.subtitle.setText(f"#{report.id} · trained {when} · {report.people} people, "
                              f"{report.embeddings} photos{deep}{left_out}")
        for part in self._parts:
            part.show()
        self._fill_accuracy(report)
        self._fill_cv(report)
        self._fill_open_set(report)
        passed = sum(c.ok for c in report.checks)
        failed = [c.message for c in report.checks if not c.ok]
        self.checks_label.setText(f"Activation checks: {passed} of {len(report.checks)} passed"
                                  + ("" if not failed else " — failed: " + "; ".join(failed)))
        self.missing.setText("\n".join(f"• {line}" for line in report.not_recorded))

    # -- tables -------------------------------------------------------------------------------------

    def _fill_accuracy(self, report: VersionReport) -> None:
        rows: list[list[str]] = []
        styles: Styles = {}
        for row in report.models:
            colour = theme.MODEL_COLOURS.get(row.name)
            styles[len(rows)] = (colour.name() if colour is not None else None, True)
            cv = _mean_std(row, percent=True) if row.cv_scores else "not measured"
            rows.append([theme.MODEL_NAMES.get(row.name, row.name), _pct(row.train), cv])
        _fill(self.accuracy, rows, styles)
        method = {"refit": "every fold trained anew", "out_of_fold": "from the training folds"}.get(
            report.cv_method, report.cv_method or "method not recorded")
        self.accuracy_note.setText(
            f"train: in-sample, on the {report.embeddings} enrolled photos; CV: stratified "
            f"{report.cv_folds}-fold × {report.cv_repeats} ({method}). "
            "A training run keeps no validation photos.")

        base = []
        for row in report.base_learners:
            base.append([row.name, "—" if row.weight is None else f"{row.weight:.2f}", _pct(row.train)])
        heavy = {i: (theme.MODEL_COLOURS["super_learner"].name(), True)
                 for i, row in enumerate(report.base_learners) if row.weight}
        _fill(self.base_table, base, heavy)
        measured = any(r.train is not None for r in report.base_learners)
        layers = len(report.super_learner_layers)
        deep = f" (first of {layers} layers)" if layers > 1 else ""
        train = " — train measured now, from the saved model" if measured else " — weights only"
        self.base_heading.setText(f"Super Learner: base learners{deep}{train}")

    def _fill_cv(self, report: VersionReport) -> None:
        rows = [[r.name, _mean_std(r)] for r in report.stacker_cv]
        svc = report.model("svc")
        rows.append(["svc", _mean_std(svc)])
        stacking = len(report.stacker_cv) - 1
        styles: Styles = {stacking: (theme.MODEL_COLOURS["stacker"].name(), True),
                          len(rows) - 1: (theme.MODEL_COLOURS["svc"].name(), True)}
        _fill(self.cv_table, rows, styles)
        folds = f"{report.cv_folds}-fold × {report.cv_repeats}"
        self.cv_heading.setText(f"Stacking ensemble, stratified {folds}: accuracy mean (std), and the SVC's")
        table = self.cv_table
        table.setFixedWidth(table.horizontalHeader().length() + 2 * table.frameWidth() + 2)
        wide = self.cv_row.direction() == QBoxLayout.Direction.LeftToRight
        self.boxplot.setFixedHeight(max(self.cv_table.height(), 200) if wide else 200)
        self._draw_boxplot(list(report.stacker_cv))  # the thesis's six: seven labels do not fit

    def _draw_boxplot(self, rows: list[Accuracy]) -> None:
        plot = self.boxplot.getPlotItem()
        for item in self.box_items:
            plot.removeItem(item)
        self.box_items = []
        rows = [r for r in rows if r.cv_scores]
        if not rows:
            return
        special = {"stacking": theme.MODEL_COLOURS["stacker"], "svc": theme.MODEL_COLOURS["svc"]}
        colours = [special.get(r.name, theme.MUTED) for r in rows]
        box = BoxPlotItem([r.cv_scores for r in rows], colours, theme.TEXT)
        plot.addItem(box)
        self.box_items.append(box)
        lows = min(min(r.cv_scores) for r in rows)
        plot.setYRange(min(lows - 0.05, 0.9), 1.02, padding=0)
        plot.setXRange(-0.7, len(rows) - 0.1, padding=0)  # room for the last label
        short = {"stacking": "stack"}  # "bayes" and "stacking" collide under a ~300 px plot
        plot.getAxis("bottom").setTicks([[(i, short.get(r.name, r.name)) for i, r in enumerate(rows)]])

    def _fill_open_set(self, report: VersionReport) -> None:
        o = report.open_set
        thr = "—" if o.threshold is None else f"{o.threshold:.3f}"
        far = "—" if o.target_far is None else f"{100 * o.target_far:g} %"

        def rate(value: float | None, pairs: int, what: str) -> str:
            return "—" if value is None else f"{100 * value:.1f} %  ({pairs} {what})"

        def dist(value: float | None) -> str:
            return "—" if value is None else f"{value:.3f}"

        rows = [["distance threshold", thr],
                ["impostor accept target", far],
                ["genuine accept rate", rate(o.genuine_accept_rate, o.genuine_pairs, "photos")],
                ["impostor reject rate", rate(o.impostor_reject_rate, o.impostor_pairs, "pairs")],
                ["median distance, genuine / impostor",
                 f"{dist(o.genuine_distance_median)} / {dist(o.impostor_distance_median)}"]]
        _fill(self.open_table, rows)
