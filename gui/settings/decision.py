"""The Decision tab: who is let in — decider, probability floor, margin, threshold, minimum face size.

These settings live in the registry, signed by HR (:mod:`core.registry.decision`); the page opens
with the signed ones, not with ``console.toml``'s display copy.  Saving a change needs an HR login
(account and passphrase), is signed with that account and audited (the dialog does that through
:func:`core.live.settings.apply_policy_change`).  The page lists what changed, so HR sees what it
signs.  A value the spin boxes cannot show exactly (a threshold of 0.9537) is kept as it was unless
the user changes it: merely opening and saving never changes the decision.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.live.settings import ConsoleSettings, decision_record
from core.recognition.engine import Policy
from gui import theme

DECIDERS = (("all", "All three models must agree"), ("svc", theme.MODEL_NAMES["svc"]),
            ("stacker", theme.MODEL_NAMES["stacker"]), ("super_learner", theme.MODEL_NAMES["super_learner"]))
LABELS = {"decider": "decider", "min_probability": "probability floor", "min_margin": "margin",
          "threshold": "threshold", "min_face": "minimum face"}


def _kept(spin: QDoubleSpinBox, original: float) -> float:
    """The spin box's value, or ``original`` if the box merely shows it rounded."""
    return original if round(original, spin.decimals()) == spin.value() else spin.value()


def _shown(key: str, value: object) -> str:
    if value is None:
        return "calibrated"
    if key == "min_face":
        return f"{value} px"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


class DecisionPage(QWidget):
    """Edits a :class:`~core.recognition.engine.Policy` and the minimum face size."""

    changed = Signal()

    def __init__(self, policy: Policy, min_face: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.original = policy
        self.original_min_face = min_face
        self.decider = QComboBox()
        for key, text in DECIDERS:
            self.decider.addItem(text, key)
        self.decider.setCurrentIndex(max(0, self.decider.findData(policy.decider)))
        self.decider.setMaximumWidth(380)
        self.probability = self._spin(0.0, 1.0, 0.05, 2, policy.min_probability)
        self.margin = self._spin(0.0, 2.0, 0.01, 2, policy.min_margin)
        self.override = QCheckBox("Override the calibrated threshold")
        self.override.setChecked(policy.threshold is not None)
        self.threshold = self._spin(0.01, 2.0, 0.01, 3, policy.threshold if policy.threshold is not None else 0.95)
        self.threshold.setEnabled(policy.threshold is not None)
        self.override.toggled.connect(self.threshold.setEnabled)
        self.min_face = QSpinBox()
        self.min_face.setRange(20, 4096)
        self.min_face.setSuffix(" px")
        self.min_face.setValue(min_face)
        self.min_face.setMinimumWidth(120)
        for signal in (self.decider.currentIndexChanged, self.probability.valueChanged, self.margin.valueChanged,
                       self.override.toggled, self.threshold.valueChanged, self.min_face.valueChanged):
            signal.connect(self._changed)

        banner = QLabel("<b>HR only.</b> These settings decide who is let in. Saving a change asks for an HR "
                        "login; the change is signed with that account and recorded in the audit log.")
        banner.setWordWrap(True)
        banner.setStyleSheet(f"background: #3a2f12; color: {theme.TEXT.name()}; padding: 10px; "
                             f"border-left: 4px solid {theme.DECISION_COLOURS['checking'].name()};")
        form = QFormLayout()
        form.addRow("Who decides", self.decider)
        form.addRow("Probability floor", self._with_hint(self.probability, "the deciding model's, 0 to 1"))
        form.addRow("Margin", self._with_hint(self.margin, "to the second-nearest person, 0 to 2"))
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.override)
        threshold_row.addWidget(self.threshold)
        threshold_row.addStretch(1)
        form.addRow("Distance threshold", threshold_row)
        form.addRow("Minimum face size", self._with_hint(self.min_face, "smallest face looked for, 20 to 4096"))
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(banner)
        layout.addSpacing(8)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addStretch(1)
        self._changed()

    def _spin(self, lo: float, hi: float, step: float, decimals: int, value: float) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(lo, hi)
        spin.setSingleStep(step)
        spin.setDecimals(decimals)
        spin.setValue(value)
        spin.setMinimumWidth(120)
        return spin

    @staticmethod
    def _with_hint(widget: QWidget, hint: str) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(widget)
        label = QLabel(hint)
        label.setStyleSheet(f"color: {theme.MUTED.name()};")
        row.addWidget(label, 1)
        return row

    def policy(self) -> Policy:
        o = self.original
        threshold = None
        if self.override.isChecked():
            threshold = _kept(self.threshold, o.threshold) if o.threshold is not None else self.threshold.value()
        return Policy(str(self.decider.currentData()), _kept(self.probability, o.min_probability),
                      _kept(self.margin, o.min_margin), threshold)

    def min_face_size(self) -> int:
        return int(self.min_face.value())

    def changes(self) -> list[str]:
        """What differs from the settings in force, in words (``probability floor 0.50 → 0.80``)."""
        before = decision_record(ConsoleSettings(policy=self.original, min_face=self.original_min_face))
        after = decision_record(ConsoleSettings(policy=self.policy(), min_face=self.min_face_size()))
        return [f"{LABELS[k]} {_shown(k, before[k])} \u2192 {_shown(k, after[k])}"
                for k in before if before[k] != after[k]]

    def _changed(self) -> None:
        changes = self.changes()
        if changes:
            self.summary.setText("Changed (needs an HR login): " + "; ".join(changes))
            self.summary.setStyleSheet(f"color: {theme.DECISION_COLOURS['checking'].name()}; font-weight: bold;")
        else:
            self.summary.setText("No change.")
            self.summary.setStyleSheet(f"color: {theme.MUTED.name()};")
        self.changed.emit()
