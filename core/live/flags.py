"""When a face deserves a second look: the three models disagree, or the gate's call is a close one.

Running three classifiers side by side is only worth it if their disagreement is shown.  A track is
*flagged* — a colour and an icon of its own on the console, whatever its decision — when:

* **the models disagree with the gate or each other**: the gate named someone, but the models'
  favourite people are not all the same, or a model's favourite is someone else, or it gives the
  named person less than :data:`FlagRules.min_probability`;
* **the best two people are close**: the gate named someone, but the second-nearest enrolled person
  is less than :data:`FlagRules.close_margin` further away than the nearest;
* **a near miss**: the gate said unknown, but the distance is within :data:`FlagRules.near_threshold`
  of the threshold and all three models are sure (≥ :data:`FlagRules.sure`) of the same person.

A flag says "this decision may be wrong".  A stranger whom the models map to *some* enrolled person
(closed-set classifiers always name someone; for a stranger they often disagree on whom) is not
flagged for that: the gate rejecting them is the system working, and UNKNOWN raises its own alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.live.tracking import TrackState, TrackView

__all__ = ["FlagRules", "flag_reasons"]


@dataclass(frozen=True)
class FlagRules:
    """Thresholds of :func:`flag_reasons` (see the module docstring)."""

    min_probability: float = 0.5
    close_margin: float = 0.08
    near_threshold: float = 0.05
    sure: float = 0.9


def flag_reasons(track: TrackView, rules: FlagRules = FlagRules()) -> tuple[str, ...]:
    """Why ``track`` should be flagged (empty: it should not), each a short sentence for the guard.

    A track still checking is never flagged: it has not decided anything yet.
    """
    if track.state is TrackState.CHECKING or not track.models:
        return ()
    reasons: list[str] = []
    if track.state is TrackState.NAMED:
        favourites = {name: ident for name, (ident, _) in track.models.items()}
        if len(set(favourites.values())) > 1:
            reasons.append("the models disagree: " + ", ".join(f"{m} {i}" for m, i in favourites.items()))
        for name, (ident, p) in track.models.items():
            if ident != track.identity:
                reasons.append(f"{name} prefers {ident} to {track.identity}")
            elif p < rules.min_probability:
                reasons.append(f"{name} is unsure of {track.identity} ({p:.2f})")
        if math.isfinite(track.margin) and track.margin < rules.close_margin:
            reasons.append(f"the next-closest person is only {track.margin:.2f} further away")
    elif track.state is TrackState.UNKNOWN and math.isfinite(track.distance) and math.isfinite(track.threshold):
        sure = {ident for ident, p in track.models.values() if p >= rules.sure}
        if (len(sure) == 1 and len(track.models) == len([1 for _, p in track.models.values() if p >= rules.sure])
                and track.distance - track.threshold < rules.near_threshold):
            reasons.append(f"just past the threshold ({track.distance:.2f} > {track.threshold:.2f}) while every "
                           f"model is sure of {next(iter(sure))}")
    return tuple(dict.fromkeys(reasons))
