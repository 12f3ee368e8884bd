"""Colours, fonts and words the whole console shares, so a decision looks the same everywhere.

Colour is never the only signal (glare, colour-blind guards): every state also has a word, and a
flagged face an icon.  Model colours are fixed per model in every view (feeds, panel, charts).
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont

#: Decision states → colour.  ``flagged`` wins over the others when the models disagree.
DECISION_COLOURS: dict[str, QColor] = {
    "recognised": QColor(32, 178, 84),
    "gallery-only": QColor(32, 178, 84),
    "unknown": QColor(220, 38, 38),
    "checking": QColor(217, 160, 30),
    "flagged": QColor(200, 60, 200),
    "undecided": QColor(140, 140, 140),
}

#: The word shown with each state.
DECISION_WORDS: dict[str, str] = {
    "recognised": "RECOGNISED",
    "gallery-only": "RECOGNISED",
    "unknown": "UNKNOWN",
    "checking": "CHECKING",
    "flagged": "FLAGGED",
    "undecided": "UNDECIDED",
}

FLAG_ICON = "\u2691"  # ⚑

#: The three models, in the order they are always shown, with their display names and colours.
MODEL_ORDER: tuple[str, ...] = ("svc", "stacker", "super_learner")
MODEL_NAMES: dict[str, str] = {"svc": "SVC", "stacker": "Stacker", "super_learner": "Super Learner"}
MODEL_SHORT: dict[str, str] = {"svc": "SVC", "stacker": "STACK", "super_learner": "SUPER"}
MODEL_COLOURS: dict[str, QColor] = {
    "svc": QColor(66, 133, 244),
    "stacker": QColor(255, 152, 0),
    "super_learner": QColor(0, 172, 193),
}

#: Camera health → colour of its dot in the status bar and on its tile.
HEALTH_COLOURS: dict[str, QColor] = {
    "live": QColor(32, 178, 84),
    "connecting": QColor(217, 160, 30),
    "stalled": QColor(217, 160, 30),
    "failed": QColor(220, 38, 38),
    "ended": QColor(140, 140, 140),
    "stopped": QColor(140, 140, 140),
}

BACKGROUND = QColor(18, 20, 24)
PANEL = QColor(30, 33, 40)
TEXT = QColor(235, 235, 235)
GOOD = DECISION_COLOURS["recognised"]
"""Text that says all is well (a check passed, a shot kept)."""
WARN = DECISION_COLOURS["checking"]
"""Text that asks for attention (close to the threshold, a look-alike)."""
BAD = DECISION_COLOURS["unknown"]
"""Text that says something was refused or failed."""
MUTED = QColor(160, 165, 175)


def font(points: float, bold: bool = False) -> QFont:
    """The console's font at ``points`` (large by default: read from a step away)."""
    f = QFont()
    f.setPointSizeF(points)
    f.setBold(bold)
    return f


BASE_POINTS = 11.0
"""The console's base font size; set on the window with ``setFont`` (a ``font-size`` in the style
sheet would override every widget's own ``setFont``, and the decision words must be large)."""

STYLESHEET = f"""
QWidget {{ background: {BACKGROUND.name()}; color: {TEXT.name()}; }}
QLabel, QRadioButton, QCheckBox {{ background: transparent; }}
QTableView, QTreeView, QListView {{ background: {PANEL.name()}; alternate-background-color: #262a33;
    gridline-color: #3a3f4b; selection-background-color: #3b5bdb; }}
QHeaderView::section {{ background: #2b2f38; color: {TEXT.name()}; padding: 4px; border: 0; font-weight: bold; }}
QPushButton {{ background: #2f3542; border: 1px solid #4b5263; padding: 6px 12px; border-radius: 4px; }}
QPushButton:hover {{ background: #3b4252; }}
QLineEdit, QComboBox, QDateTimeEdit, QSpinBox, QDoubleSpinBox, QPlainTextEdit {{
    background: #242833; border: 1px solid #4b5263; padding: 4px; }}
QTabBar::tab {{ background: #242833; padding: 8px 18px; font-size: 12pt; }}
QTabBar::tab:selected {{ background: #3b4252; font-weight: bold; }}
QStatusBar {{ background: #101216; font-size: 11pt; }}
"""


def probability_text(p: float) -> str:
    """A probability as the console shows it: two decimals, three beyond 0.01 and 0.99, so that 0.996
    never reads as a certain 1.00 (the calibrations stop short of 1, and the screen must say so)."""
    return f"{p:.2f}" if 0.01 <= p <= 0.99 else f"{p:.3f}"
