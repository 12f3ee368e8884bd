"""The model comparison view: the active model version's thesis tables and a live chart of the
three models' probabilities for one face (see :class:`gui.comparison.view.ComparisonView`)."""

from gui.comparison.view import ComparisonView

__all__ = ["ComparisonView"]
