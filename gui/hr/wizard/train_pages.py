"""Wizard pages 4 and 5: enroll and train in the background (with Cancel), then compare and decide."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from gui import theme
from gui.comparison.report_panel import ReportPanel
from gui.hr.wizard.workers import HeldOutShot, Results

GOOD = theme.GOOD
WARN = theme.WARN
BAD = theme.BAD


class TrainPage(QWizardPage):
    """Enrolls the shots (once), then trains a candidate model version; Cancel stops training."""

    def __init__(self, wizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("4 · Enroll and train")
        self.setSubTitle("The console keeps recognising at the gate while this runs. The new model version does "
                         "not go live until you activate it on the next page.")
        self.step = QLabel()
        self.step.setFont(theme.font(14, bold=True))
        self.step.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("%p %")
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.outcome = QLabel()
        self.outcome.setWordWrap(True)
        self.outcome.setFont(theme.font(12))
        self.cancel_button = QPushButton("Cancel training")
        self.retry_button = QPushButton("Train again")
        self.retry_button.hide()
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.retry_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.step)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)
        layout.addLayout(buttons)
        layout.addWidget(self.outcome)
        layout.addStretch(1)
        self.cancel_button.clicked.connect(self.w.cancel_training)
        self.retry_button.clicked.connect(self.w.start_training)

    def initializePage(self) -> None:
        self.w.start_enrollment()

    def set_step(self, text: str, busy: bool) -> None:
        self.step.setText(text)
        self.cancel_button.setVisible(busy and self.w.enrolled_result is not None)
        self.cancel_button.setEnabled(busy)
        self.retry_button.setVisible(not busy and self.w.enrolled_result is not None and self.w.candidate is None)
        self.completeChanged.emit()

    def set_progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.detail.setText(message)

    def isComplete(self) -> bool:
        return self.w.candidate is not None and not self.w.training


def _table(columns: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class ResultsPage(QWizardPage):
    """The candidate beside the active version, how both treat the new operator's shots; Activate/Discard."""

    def __init__(self, wizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("5 · Results: the new model version beside the active one")
        self.setSubTitle("How well each version recognises the new operator and everyone else. Activate the new "
                         "version to use it at the gate, or discard it.")
        self.status = QLabel("Measuring how the models recognise the new operator…")
        self.status.setWordWrap(True)
        self.status.setFont(theme.font(13, bold=True))
        self.heldout_heading = QLabel()
        self.heldout_heading.setFont(theme.font(13, bold=True))
        self.heldout_heading.setWordWrap(True)
        self.heldout = _table(["shot", "version", "SVC", "Stacker", "Super Learner", "gate decision"])
        self.heldout.setMinimumHeight(180)
        self.heldout_note = QLabel()
        self.heldout_note.setWordWrap(True)
        self.heldout_note.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.new_panel = ReportPanel()
        self.old_panel = ReportPanel()
        self.new_panel.set_message("New version: loading…")
        self.old_panel.set_message("Active version: loading…")
        panels = QHBoxLayout()
        panels.addWidget(self._column("NEW (candidate)", self.new_panel), 1)
        panels.addWidget(self._column("ACTIVE now", self.old_panel), 1)
        body = QWidget()
        inner = QVBoxLayout(body)
        inner.addWidget(self.heldout_heading)
        inner.addWidget(self.heldout)
        inner.addWidget(self.heldout_note)
        inner.addLayout(panels)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.activate_button = QPushButton("Activate the new version")
        self.discard_button = QPushButton("Discard it")
        self.activate_button.setEnabled(False)
        self.discard_button.setEnabled(False)
        self.decided = QLabel()
        self.decided.setWordWrap(True)
        self.decided.setFont(theme.font(12, bold=True))
        buttons = QHBoxLayout()
        buttons.addWidget(self.activate_button)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.decided, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        self.activate_button.clicked.connect(lambda: self.w.decide(True))
        self.discard_button.clicked.connect(lambda: self.w.decide(False))

    @staticmethod
    def _column(title: str, panel: QWidget) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        label = QLabel(title)
        label.setFont(theme.font(14, bold=True))
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setStyleSheet("background: #2b2f38; padding: 4px;")
        layout.addWidget(label)
        layout.addWidget(panel, 1)
        return box

    def initializePage(self) -> None:
        self.w.start_results()

    def show_results(self, results: Results) -> None:
        cand = results.candidate
        self.new_panel.set_report(cand)
        if results.active is not None:
            self.old_panel.set_report(results.active)
        else:
            self.old_panel.set_message("No model version is active yet.")
        eid = self.w.field("employee_id")
        rows: list[tuple[str, HeldOutShot]] = [("new", r) for r in results.new] + [("active", r) for r in results.old]
        rows.sort(key=lambda item: (item[1].photo, item[0] != "new"))
        self.heldout.setRowCount(len(rows))
        for r, (which, row) in enumerate(rows):
            cells = [f"#{row.photo}", which]
            for model in ("svc", "stacker", "super_learner"):
                favourite, prob = row.votes.get(model, ("—", 0.0))
                own = row.own.get(model, 0.0)
                cells.append(f"{own:.2f}" if favourite == eid else f"{own:.2f} (says {favourite} {prob:.2f})")
            named = row.decision == eid
            cells.append(f"{'✔ ' + eid if named else '✖ ' + row.decision} · distance {row.distance:.2f} / "
                         f"{row.threshold:.2f}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 2:
                    ok = text.startswith("✔") or (c < 5 and "says" not in text)
                    item.setForeground(GOOD if ok else BAD)
                self.heldout.setItem(r, c, item)
        self.heldout.resizeRowsToContents()
        self.heldout.setMinimumHeight(min(420, 40 + 30 * len(rows)))
        new_hits = sum(r.decision == eid for r in results.new)
        old_hits = sum(r.decision == eid for r in results.old)
        self.heldout_heading.setText(
            f"{eid}'s own shots, probability each model gives {eid}: the new version names them on "
            f"{new_hits} of {len(results.new)} held-out shots with all three models; the active one on {old_hits} of "
            f"{len(results.old)}, by distance alone (its models do not know {eid} and name someone else)")
        self.heldout_note.setText(results.note)
        usable = cand.status == "candidate"
        self.activate_button.setEnabled(usable)
        self.discard_button.setEnabled(usable)
        if usable:
            self.status.setText(f"New version #{cand.id} is ready. Compare, then activate it or discard it. "
                                "Either way the previous version stays available.")
            self.status.setStyleSheet("")
        else:
            self.status.setText(f"New version #{cand.id} failed its checks and cannot be activated: {cand.notes}")
            self.status.setStyleSheet(f"color: {BAD.name()};")

    def show_failed(self, message: str) -> None:
        self.status.setText(f"The comparison could not be made: {message}")
        self.status.setStyleSheet(f"color: {BAD.name()};")
        self.activate_button.setEnabled(self.w.candidate is not None and self.w.candidate.status == "candidate")
        self.discard_button.setEnabled(self.activate_button.isEnabled())

    def show_decided(self, what: str, version_id: int) -> None:
        self.activate_button.setEnabled(False)
        self.discard_button.setEnabled(False)
        if what == "activate":
            self.decided.setText(f"✔ Version #{version_id} is active: the gate uses it within seconds. "
                                 "The previous version stays available for a rollback.")
            self.decided.setStyleSheet(f"color: {GOOD.name()};")
        else:
            self.decided.setText(f"Version #{version_id} was discarded; the active version is unchanged. "
                                 f"{self.w.field('employee_id')}'s photos stay enrolled (recognised through the "
                                 "gallery) until the next training.")
            self.decided.setStyleSheet(f"color: {WARN.name()};")
        self.completeChanged.emit()

    def show_decide_failed(self, message: str) -> None:
        self.decided.setText(f"✖ {message}")
        self.decided.setStyleSheet(f"color: {BAD.name()};")
        usable = self.w.candidate is not None and self.w.candidate.status == "candidate"
        self.activate_button.setEnabled(usable)
        self.discard_button.setEnabled(usable)

    def isComplete(self) -> bool:
        return self.w.decision is not None or (self.w.candidate is not None and self.w.candidate.status != "candidate")
