"""An operator's recognition history, for HR: how close their recognitions come to the threshold over time.

A face changes — new glasses, a beard, ageing — and the distance between the person at the gate and their
enrolled photos creeps up towards the threshold until, one morning, they are turned away.  HR sees it
coming here:

* :func:`recognition_history` — one operator's recognitions, oldest first: time, camera, decision,
  distance, each model's probability for *them*, the threshold in force.  Besides the events recorded
  under their name it includes, as *turned away*, the ``unknown`` decisions every model attributed to
  them with a distance just past the threshold: the gate rejected a face the models took for them (the
  person themself, most likely, whose face has drifted).
* :func:`drift` — a plain sentence suggesting re-enrollment when their recent recognitions come close to
  the threshold or are turned away more often (:class:`DriftAdvice`).
* :func:`last_seen` — when each operator was last recognised (one query for all, for the operators table).
* :func:`erasure_preview` — exactly what erasing an operator will remove (photos, embeddings, redacted
  events, model versions), for the confirmation HR reads before it is done.

What events store (:class:`core.live.events.EventWriter`): ``probabilities`` holds each model's
*favourite* person only, ``{"svc": {"madonna": 0.97}, …}``; so a model's probability for the operator is
known when it favoured them, and ``None`` when it favoured someone else (:attr:`HistoryPoint.others`
says whom).  The threshold is not a column: it is read from the decision's reason ("within 0.974 of the
gallery", "(1.02 > 0.974)") when written there, else the threshold in force now is used (HR's signed
override, or the active model's calibrated one).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.registry.pruning import _classes, _folders
from core.registry.sql import _time
from core.registry.store import Registry

__all__ = [
    "ACCEPTED", "DRIFT_MIN_POINTS", "DRIFT_RATIO", "DRIFT_RECENT", "NEAR_MISS_RATIO", "DriftAdvice",
    "ErasurePreview", "HistoryPoint", "OperatorHistory", "drift", "erasure_preview", "last_seen",
    "recent_median", "recent_points", "recognition_history", "threshold_in_force",
]

ACCEPTED = frozenset({"recognised", "gallery-only"})
"""Decision codes that let the person in."""
DRIFT_RECENT = 20
"""How many of the newest recognitions :func:`drift` looks at."""
DRIFT_MIN_POINTS = 5
"""Fewer recent recognitions than this: too few to advise anything."""
DRIFT_RATIO = 0.85
"""Advise re-enrollment when the median recent distance is at least this share of the threshold."""
DRIFT_REJECTED = 0.25
"""... or when at least this share of the recent attempts were turned away (and at least 2)."""
NEAR_MISS_RATIO = 1.15
"""An ``unknown`` decision every model gave to the operator counts as a turned-away attempt of theirs only
within this multiple of the threshold: farther off it is more likely a stranger who resembles them."""

_WITHIN = re.compile(r"within (\d+(?:\.\d+)?) of the gallery")
_PAST = re.compile(r"\((\d+(?:\.\d+)?) > (\d+(?:\.\d+)?)\)")


@dataclass(frozen=True)
class HistoryPoint:
    """One recognition (or turned-away attempt) of the operator.

    ``probabilities``: each model's probability for the operator, ``None`` when that model favoured
    someone else (named in ``others``) or recorded nothing.  ``threshold``: the one written in the
    decision's reason, else ``None``.  ``accepted``: the gate let them in.
    """

    event_id: int
    time: datetime
    camera: str
    decision: str
    accepted: bool
    distance: float | None
    probabilities: dict[str, float | None] = field(hash=False)
    others: dict[str, str] = field(hash=False)
    threshold: float | None
    flagged: bool


@dataclass(frozen=True)
class OperatorHistory:
    """An operator's recognitions, oldest first, and the threshold in force now (``None``: no model yet)."""

    employee_id: str
    name: str
    threshold: float | None
    threshold_source: str
    points: tuple[HistoryPoint, ...]

    @property
    def accepted(self) -> int:
        return sum(p.accepted for p in self.points)

    @property
    def turned_away(self) -> int:
        return sum(not p.accepted for p in self.points)


@dataclass(frozen=True)
class DriftAdvice:
    """The suggestion to re-enroll someone, with the figures behind it and the sentence HR reads."""

    employee_id: str
    median_distance: float | None
    threshold: float
    recent: int
    turned_away: int
    message: str


@dataclass(frozen=True)
class ErasurePreview:
    """What erasing an operator removes, counted before HR confirms (:func:`erasure_preview`).

    ``model_versions``: the versions whose files hold the person's face data and will be deleted;
    ``active_retrained``: the active version is one of them, so a new model is trained without the person
    first.  ``unreadable``: versions it cannot tell about (their ``model.json`` is unreadable).
    """

    employee_id: str
    name: str
    department: str
    photos: int
    embeddings: int
    events: int
    snapshots: int
    model_versions: tuple[int, ...]
    active_model: int | None
    active_retrained: bool
    people_left: int
    unreadable: tuple[int, ...] = ()

    def lines(self) -> list[str]:
        """The list HR confirms, one plain sentence per item."""
        out = [f"{self.photos} enrollment photo{_s(self.photos)} — deleted",
               f"{self.embeddings} face embedding{_s(self.embeddings)} (the face data recognition uses) — deleted"]
        if self.events:
            snapshots = f", the reason and {self.snapshots} face snapshot{_s(self.snapshots)}" if self.snapshots \
                else " and the reason"
            out.append(f"{self.events} gate event{_s(self.events)} — kept for the log, but "
                       f"{'its' if self.events == 1 else 'their'} link to {self.employee_id}, the scores{snapshots} "
                       "are removed")
        else:
            out.append("no gate events name them")
        if self.model_versions:
            versions = ", ".join(str(v) for v in self.model_versions)
            out.append(f"model version{_s(len(self.model_versions))} {versions} (trained with their face) — "
                       "files deleted")
        if self.active_retrained:
            out.append(f"the active model (version {self.active_model}) is first retrained without them on the "
                       f"{self.people_left} people left; this takes a while")
        if self.unreadable:
            out.append(f"model version{_s(len(self.unreadable))} {', '.join(map(str, self.unreadable))}: cannot "
                       "tell whom it was trained on; left as it is")
        return out


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def threshold_in_force(registry: Registry) -> tuple[float | None, str]:
    """``(threshold, where it comes from)``: HR's signed override, else the active model's calibrated one.

    ``(None, "")`` when there is no active model and no override.
    """
    from core.registry.decision import decision_settings  # lazily: it pulls in the recognition engine

    signed = decision_settings(registry)
    if signed is not None and signed[0].threshold is not None:
        return float(signed[0].threshold), "set by HR"
    model = registry.active_model()
    if model is not None:
        value = model.metrics.get("threshold")
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            return float(value), f"calibrated, model version {model.id}"
    return None, ""


def _reason_threshold(reason: str | None) -> float | None:
    if not reason:
        return None
    match = _WITHIN.search(reason)
    if match:
        return float(match.group(1))
    match = _PAST.search(reason)
    return float(match.group(2)) if match else None


def _scores(text: str | None, employee_id: str) -> tuple[dict[str, float | None], dict[str, str]]:
    """Each model's probability for ``employee_id`` and, when it favoured someone else, whom."""
    mine: dict[str, float | None] = {}
    others: dict[str, str] = {}
    try:
        table = json.loads(text) if text else {}
        items = table.items() if isinstance(table, dict) else ()
        for model, votes in items:
            if not isinstance(votes, dict) or not votes:
                continue
            if employee_id in votes:
                mine[str(model)] = float(votes[employee_id])
            else:
                mine[str(model)] = None
                others[str(model)] = str(max(votes.items(), key=lambda kv: float(kv[1]))[0])
    except (TypeError, ValueError, AttributeError):
        return {}, {}  # a hand-written event of another shape: shown without scores
    return mine, others


def recognition_history(registry: Registry, employee_id: str, limit: int = 500) -> OperatorHistory:
    """The newest ``limit`` recognitions of ``employee_id`` (and attempts turned away), oldest first.

    Raises
    ------
    RegistryError
        If nobody has that employee id.
    """
    op = registry.get_operator(employee_id)
    threshold, source = threshold_in_force(registry)
    conn = registry.db.conn
    cols = "id, time, camera, decision, distance, probabilities, reason"
    rows = conn.execute(f"SELECT {cols} FROM events WHERE operator_id = ? ORDER BY id DESC LIMIT ?",
                        [op.id, int(limit)]).fetchall()
    points = [_point(r, op.employee_id, accepted=r[3] in ACCEPTED) for r in rows]
    # Turned away, probably them: every model gave the face to them and it was just past the threshold.
    needle = json.dumps(op.employee_id, ensure_ascii=False)
    misses = conn.execute(
        f"SELECT {cols} FROM events WHERE decision = 'unknown' AND operator_id IS NULL AND redacted = 0 "
        "AND instr(probabilities, ?) > 0 ORDER BY id DESC LIMIT ?", [needle, int(limit)]).fetchall()
    for r in misses:
        point = _point(r, op.employee_id, accepted=False)
        bound = point.threshold if point.threshold is not None else threshold
        if (point.probabilities and all(p is not None for p in point.probabilities.values())
                and point.distance is not None and bound is not None and point.distance <= NEAR_MISS_RATIO * bound):
            points.append(point)
    points.sort(key=lambda p: p.event_id)
    return OperatorHistory(op.employee_id, op.name, threshold, source, tuple(points[-int(limit):]))


def _point(r: Any, employee_id: str, *, accepted: bool) -> HistoryPoint:
    mine, others = _scores(r[5], employee_id)
    reason = r[6]
    return HistoryPoint(int(r[0]), _time(r[1]), str(r[2]), str(r[3]), accepted,
                        None if r[4] is None else float(r[4]), mine, others, _reason_threshold(reason),
                        bool(reason) and "FLAGGED:" in reason)


def recent_points(history: OperatorHistory) -> list[HistoryPoint]:
    """The newest :data:`DRIFT_RECENT` points with a distance: what :func:`drift` judges."""
    return [p for p in history.points if p.distance is not None][-DRIFT_RECENT:]


def recent_median(history: OperatorHistory) -> float | None:
    """The median distance of the recent recognitions that let the operator in (``None``: none)."""
    let_in = [p.distance for p in recent_points(history) if p.accepted and p.distance is not None]
    return float(statistics.median(let_in)) if let_in else None


def drift(history: OperatorHistory, threshold: float | None = None) -> DriftAdvice | None:
    """Suggest re-enrollment when ``history``'s recent recognitions come close to the threshold.

    Looks at the newest :data:`DRIFT_RECENT` points with a distance (at least :data:`DRIFT_MIN_POINTS`):
    advice when the median distance of those let in is at least :data:`DRIFT_RATIO` of the threshold, or
    when at least :data:`DRIFT_REJECTED` of them (and 2) were turned away.  ``threshold`` defaults to the
    history's; ``None`` when there is nothing to advise (or no threshold to compare with).
    """
    threshold = history.threshold if threshold is None else threshold
    if threshold is None or not threshold > 0:
        return None
    recent = recent_points(history)
    if len(recent) < DRIFT_MIN_POINTS:
        return None
    median = recent_median(history)
    away = sum(not p.accepted for p in recent)
    who = history.employee_id
    close = median is not None and median >= DRIFT_RATIO * threshold
    rejected = away >= 2 and away >= DRIFT_REJECTED * len(recent)
    if not (close or rejected):
        return None
    if close and rejected:
        text = (f"Recent recognitions of {who} are close to the threshold (median {median:.2f} of {threshold:.2f}) "
                f"and {away} of the last {len(recent)} attempts were turned away: re-enroll with new photos.")
    elif close:
        text = (f"Recent recognitions of {who} are close to the threshold (median {median:.2f} of "
                f"{threshold:.2f}): re-enroll with new photos.")
    else:
        text = (f"{away} of the last {len(recent)} attempts by {who} were turned away (the models took the face "
                f"for {who}, but it was past the threshold {threshold:.2f}): re-enroll with new photos.")
    return DriftAdvice(who, median, threshold, len(recent), away, text)


def last_seen(registry: Registry) -> dict[str, datetime]:
    """When each operator was last let in at the gate, by employee id (one query for all of them)."""
    marks = ", ".join("?" * len(ACCEPTED))
    rows = registry.db.conn.execute(
        "SELECT o.employee_id, max(e.time) FROM events e JOIN operators o ON o.id = e.operator_id "
        f"WHERE e.decision IN ({marks}) GROUP BY e.operator_id", sorted(ACCEPTED)).fetchall()
    return {str(r[0]): _time(r[1]) for r in rows if r[1] is not None}


def erasure_preview(registry: Registry, models_dir: Path | str, employee_id: str) -> ErasurePreview:
    """What :meth:`Registry.remove_operator` and :func:`~core.registry.pruning.prune_erased` will remove.

    Counted the way they count: the operator's photos and embeddings, the events that name them (kept,
    with their personal fields redacted), and the model versions whose ``model.json`` lists them (their
    files are deleted; the active one is retrained without them first).
    """
    op = registry.get_operator(employee_id)
    models_dir = Path(models_dir)
    events, snapshots = registry.db.conn.execute(
        "SELECT count(*), count(thumbnail) FROM events WHERE operator_id = ?", [op.id]).fetchone()
    holders: list[int] = []
    unreadable: list[int] = []
    for mv in registry.list_models():
        for folder in _folders(mv, models_dir):
            classes = _classes(folder)
            if classes is None:
                unreadable.append(mv.id)
            elif op.employee_id in classes:
                holders.append(mv.id)
    active = registry.active_model()
    left = sum(1 for other in registry.list_operators() if other.id != op.id and other.active and other.embeddings)
    return ErasurePreview(op.employee_id, op.name, op.department, op.photos, op.embeddings, int(events),
                          int(snapshots), tuple(holders), None if active is None else active.id,
                          active is not None and active.id in holders, left, tuple(unreadable))
