"""The guard's answer to a decision: confirm it, or override it (let in / turn away), in the audit log.

The console asks the guard at the gate to confirm each decision or to override it with a reason from
a short list (:data:`OVERRIDE_REASONS`) and an optional note.  The answer is an **audit row**, so it
is part of the audit hash chain (:mod:`core.registry.chains`) and ``facegate verify`` catches an
answer that was edited or deleted afterwards:

=================  =======================================================================
``actor``          who answered, e.g. ``"guard:jdoe"``
``action``         ``guard_confirm``, ``guard_let_in`` or ``guard_turn_away``
``object``         ``event:<id>``
``old``            the guard action it replaces on the same event (``action``, ``audit_id``),
                   or ``null`` for the first answer
``new``            ``event_id``, ``event_hash`` (binds the answer to that exact event row),
                   ``decision``, ``reason``, ``note``
=================  =======================================================================

An event may be answered more than once (a guard corrects a slip); the newest answer counts
(:meth:`GuardMixin.guard_actions`), the older ones stay in the log.  Audit rows are never redacted,
so nothing personal about the person at the gate is copied into them — only the event id; the note
is the guard's own free text and is kept for good (the console says so).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.errors import RegistryError
from core.registry.connection import RegistryBase, _guarded

__all__ = ["GUARD_ACTIONS", "NOTE_MAX_CHARS", "OVERRIDE_REASONS", "GuardAction", "GuardMixin"]

GUARD_ACTIONS: tuple[str, ...] = ("confirm", "let-in", "turn-away")
"""``confirm`` the decision, or override it: ``let-in`` / ``turn-away``."""

OVERRIDE_REASONS: tuple[str, ...] = (
    "badge checked",
    "known visitor or contractor",
    "photo on file is outdated",
    "lighting or angle",
    "looks like someone else",
    "other",
)
"""Why a guard overrides a decision (required for ``let-in`` and ``turn-away``; optional for ``confirm``)."""

NOTE_MAX_CHARS = 500
"""Longest free-text note a guard may add."""

_AUDIT_ACTION = {action: "guard_" + action.replace("-", "_") for action in GUARD_ACTIONS}
_FROM_AUDIT = {audit: action for action, audit in _AUDIT_ACTION.items()}
_OBJECT_PREFIX = "event:"
_ACTIONS_SQL = ", ".join(f"'{a}'" for a in _AUDIT_ACTION.values())
_SPOKEN = {"confirm": "confirm", "let-in": "let in", "turn-away": "turn away"}


@dataclass(frozen=True, slots=True)
class GuardAction:
    """A guard's answer to one event: ``action`` is one of :data:`GUARD_ACTIONS`.

    ``reason`` is one of :data:`OVERRIDE_REASONS` (or empty for a confirm without one), ``note`` the
    guard's free text, ``time`` when it was recorded (UTC), ``audit_id`` its row in the audit log.
    """

    event_id: int
    action: str
    reason: str
    note: str
    actor: str
    time: datetime
    audit_id: int

    @property
    def is_override(self) -> bool:
        """True for ``let-in`` and ``turn-away``."""
        return self.action != "confirm"


def _guard_action(audit_id: int, time: str, actor: str, action: str, obj: str, new: str | None) -> GuardAction:
    values = json.loads(new) if new else {}
    return GuardAction(int(obj[len(_OBJECT_PREFIX):]), _FROM_AUDIT[action], str(values.get("reason", "")),
                       str(values.get("note", "")), actor, datetime.fromisoformat(time), int(audit_id))


def _check(event_id: int, action: str, reason: str, note: str) -> tuple[str, str]:
    """The cleaned ``(reason, note)``; a :class:`RegistryError` a guard understands if refused."""
    if isinstance(event_id, bool) or not isinstance(event_id, int):
        raise RegistryError(f"An event is named by its number, not {event_id!r}; nothing was recorded.")
    if action not in GUARD_ACTIONS:
        raise RegistryError(f"{action!r} is not something a guard can do here: confirm the decision, let "
                            "the person in, or turn them away. Nothing was recorded.")
    reason = " ".join(str(reason).split())
    note = str(note).strip()
    if action != "confirm" and not reason:
        raise RegistryError(f"Say why you {_SPOKEN[action]} this person against the decision: choose a "
                            "reason from the list. Nothing was recorded.")
    if reason and reason not in OVERRIDE_REASONS:
        raise RegistryError(f"{reason[:60]!r} is not one of the reasons on the list; choose one of them "
                            "(use 'other' and write a note). Nothing was recorded.")
    if len(note) > NOTE_MAX_CHARS:
        raise RegistryError(f"The note is too long ({len(note)} characters): keep it under "
                            f"{NOTE_MAX_CHARS}. Nothing was recorded.")
    return reason, note


class GuardMixin(RegistryBase):
    """Confirming and overriding decisions (part of :class:`~core.registry.Registry`)."""

    @_guarded
    def record_guard_action(self, event_id: int, action: str, *, reason: str, note: str = "",
                            actor: str) -> GuardAction:
        """Record a guard's answer to an event in the audit log; durable once this returns.

        Parameters
        ----------
        event_id
            The event the guard answers.
        action
            ``"confirm"``, ``"let-in"`` or ``"turn-away"`` (:data:`GUARD_ACTIONS`).
        reason
            One of :data:`OVERRIDE_REASONS`; required for an override, may be ``""`` for a confirm.
        note
            Optional free text, at most :data:`NOTE_MAX_CHARS` characters; kept for good (audit rows
            are never redacted), so it should not describe the person.
        actor
            Who answered, e.g. ``"guard:jdoe"``.

        Returns
        -------
        GuardAction
            What was recorded, with its audit row id.

        Raises
        ------
        RegistryError
            If the event does not exist (never recorded, or purged), the action is unknown, an
            override has no reason, the reason is not on the list, the note is too long or the
            actor is empty.  Nothing is recorded then.
        """
        reason, note = _check(event_id, action, reason, note)
        obj = f"{_OBJECT_PREFIX}{event_id}"
        with self.transaction():
            event = self._one("SELECT decision, hash FROM events WHERE id = ?", [event_id])
            if event is None:
                raise RegistryError(f"There is no event {event_id} (it may have been removed by the retention "
                                    "purge); nothing was recorded.")
            previous = self._latest_guard_rows([obj])
            old = None
            if previous:
                old = {"action": _FROM_AUDIT[previous[0]["action"]], "audit_id": previous[0]["id"]}
            audit_id = self._append_audit(actor, _AUDIT_ACTION[action], obj, old, {
                "event_id": event_id, "event_hash": event["hash"], "decision": event["decision"],
                "reason": reason, "note": note})
            row = self._one("SELECT id, time, actor, action, object, new FROM audit WHERE id = ?", [audit_id])
        assert row is not None
        return _guard_action(*row)

    @_guarded
    def guard_actions(self, event_ids: Sequence[int]) -> dict[int, GuardAction]:
        """The newest guard action of each of these events that has one: ``{event id: action}``."""
        objects = [f"{_OBJECT_PREFIX}{int(i)}" for i in event_ids]
        out: dict[int, GuardAction] = {}
        for start in range(0, len(objects), 5000):
            for row in self._latest_guard_rows(objects[start:start + 5000]):
                action = _guard_action(*row)
                out[action.event_id] = action
        return out

    @_guarded
    def guard_actions_after(self, audit_id: int, limit: int = 1000) -> list[GuardAction]:
        """Guard actions recorded after audit row ``audit_id``, oldest first (at most ``limit``).

        A view that shows guard actions keeps the newest ``audit_id`` it has seen (start from
        ``chain_heads()["audit"][0]``) and asks for what came after, to update the rows it shows.
        """
        rows = self._rows(f"SELECT id, time, actor, action, object, new FROM audit WHERE id > ? AND action IN "
                          f"({_ACTIONS_SQL}) ORDER BY id LIMIT ?", [int(audit_id), max(1, int(limit))])
        return [_guard_action(*r) for r in rows]

    def _latest_guard_rows(self, objects: Sequence[str]) -> list[sqlite3.Row]:
        """The newest guard audit row of each ``event:<id>`` object (the ``audit_action`` index)."""
        if not objects:
            return []
        return self._rows(
            "SELECT id, time, actor, action, object, new FROM audit WHERE id IN ("
            f"SELECT max(id) FROM audit WHERE action IN ({_ACTIONS_SQL}) "
            "AND object IN (SELECT value FROM json_each(?)) GROUP BY object)",
            [json.dumps(list(objects))])
