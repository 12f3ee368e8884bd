"""The event log and the audit trail: appending to them and reading them back.

Events are what happened at the gate, one row per decision: the camera, the decision code
(``recognised``, ``gallery-only``, ``unknown`` or ``undecided``, written by
:func:`core.live.monitor.decision_code`), the person if known, the scores and a thumbnail.  Audit
rows are who changed what.  Both are hash chains (:mod:`core.registry.chains`); erasure redacts
events and retention purges them (:mod:`core.registry.erasure`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.errors import RegistryError
from core.registry.chains import _EVENT_COLS, _event_hash, _events_head, _personal_digest
from core.registry.connection import RegistryBase, _guarded
from core.registry.records import AuditEntry, Event, NewEvent
from core.registry.sql import _finite_or_none, _iso, _json, _limit, _loads, _time, _where

RESERVED_AUDIT_ACTIONS = frozenset({
    "add_operator", "set_active", "remove_operator", "add_photo", "add_model_version",
    "activate_model", "rollback_model", "purge", "set_setting", "backup", "restore", "update_operator",
    "discard_model", "sign_state", "accounts_init", "add_account", "change_passphrase", "disable_account",
    "enable_account", "unlock_account",
    # Model files deleted because they were trained with an erased person (Registry.record_pruned_models).
    "prune_models",
    # A guard's answer goes through Registry.record_guard_action, which checks the event and the reason.
    "guard_confirm", "guard_let_in", "guard_turn_away",
})
"""Actions only the registry itself writes; :meth:`Registry.audit` refuses them."""
_DECISION_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class EventsMixin(RegistryBase):
    """Recording and reading events and audit rows (part of :class:`~core.registry.Registry`)."""

    # ------------------------------------------------------------------------------------- events

    @_guarded
    def record_event(self, camera: str, decision: str, operator_id: int | str | None,
                     probabilities: Mapping[str, Any], distance: float | None,
                     thumbnail_jpeg: bytes | None, model_version: str, *, reason: str = "",
                     time: datetime | None = None) -> int:
        """Append one recognition event; durable once this returns.

        Parameters
        ----------
        camera
            Which camera saw it.
        decision
            Short lower-case code (letters, digits, ``-``, ``_``; at most 32): the live monitor
            writes ``recognised``, ``gallery-only``, ``unknown`` and ``undecided``.  Never a name:
            names live in the operator.
        operator_id
            The recognised operator (row id or employee id), ``None`` for a stranger.
        probabilities
            JSON-able per-model scores, e.g. ``{"svc": {"E1001": 0.97}, …}``.
        distance
            Distance to the nearest gallery embedding (finite) or ``None``.
        thumbnail_jpeg
            A small JPEG of the face, or ``None``.
        model_version
            The engine's model version string.
        reason
            Free-text explanation of the decision (may name people; redacted on erasure).
        time
            When it happened; default now.

        Returns
        -------
        int
            The event id.
        """
        return self.record_events([NewEvent(camera, decision, operator_id, probabilities, distance,
                                            thumbnail_jpeg, model_version, reason, time)])[0]

    @_guarded
    def record_events(self, events: Sequence[NewEvent]) -> list[int]:
        """Append several events in one transaction (all or none); returns their ids in order."""
        prepared = []
        for ev in events:
            decision = str(ev.decision)
            if not _DECISION_RE.match(decision):
                raise RegistryError(
                    f"Event decision {decision!r} is not a short code (lower-case letters, digits, '-' "
                    "or '_', at most 32, e.g. 'recognised'); put names in the operator, details in reason.")
            prepared.append((
                _iso(ev.time), str(ev.camera), decision,
                _finite_or_none(ev.distance, "An event's distance"), str(ev.model_version),
                ev.operator, _json(dict(ev.probabilities), "Event probabilities"), str(ev.reason),
                bytes(ev.thumbnail_jpeg) if ev.thumbnail_jpeg is not None else None,
            ))
        ids: list[int] = []
        with self.transaction():
            last_id, prev = _events_head(self.db.conn)
            for time_s, camera, decision, distance, version, op, probs, reason, thumb in prepared:
                op_id = None if op is None else int(self._operator_row(op)["id"])
                salt = secrets.token_bytes(16)
                personal = _personal_digest(salt, op_id, probs, reason, thumb)
                last_id += 1
                row = [last_id, time_s, camera, decision, distance, version, personal, prev]
                digest = _event_hash(row)
                self.db.conn.execute(
                    f"INSERT INTO events ({_EVENT_COLS}, hash, operator_id, probabilities, reason, "
                    "thumbnail, salt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [*row, digest, op_id, probs, reason, thumb, salt])
                ids.append(last_id)
                prev = digest
            if ids:
                self._note_head("events", last_id, prev)
        return ids

    @_guarded
    def events(self, since: datetime | None = None, limit: int | None = None, *,
               until: datetime | None = None, camera: str | None = None) -> list[Event]:
        """Recorded events, oldest first: at most ``limit`` of the most recent ones.

        ``since`` (inclusive) and ``until`` (exclusive) bound the event time; ``camera`` filters.
        Thumbnails are not loaded: use :meth:`event_thumbnail`.
        """
        where, params = _where([("e.time >= ?", since and _iso(since)), ("e.time < ?", until and _iso(until)),
                                ("e.camera = ?", camera)])
        rows = self._rows(
            "SELECT e.id, e.time, e.camera, e.decision, e.operator_id, o.employee_id, o.name, "
            "e.probabilities, e.reason, e.distance, e.model_version, e.thumbnail IS NOT NULL AS has_thumb, "
            f"e.redacted FROM events e LEFT JOIN operators o ON o.id = e.operator_id {where} "
            f"ORDER BY e.id DESC {_limit(limit)}", params)[::-1]
        return [Event(r["id"], _time(r["time"]), r["camera"], r["decision"], r["operator_id"],
                      r["employee_id"], r["name"], _loads(r["probabilities"]), r["reason"], r["distance"],
                      r["model_version"], bool(r["has_thumb"]), bool(r["redacted"])) for r in rows]

    @_guarded
    def event_thumbnail(self, event_id: int) -> bytes | None:
        """The JPEG thumbnail of one event, or ``None`` (none taken, erased or purged)."""
        row = self._one("SELECT thumbnail FROM events WHERE id = ?", [event_id])
        return None if row is None or row["thumbnail"] is None else bytes(row["thumbnail"])

    # -------------------------------------------------------------------------------------- audit

    @_guarded
    def audit(self, actor: str, action: str, obj: str, old: Any = None, new: Any = None) -> int:
        """Append an audit row for something done outside the registry (e.g. ``"train"``).

        Parameters
        ----------
        actor
            Who did it (``"hr:alice"``, ``"trainer"`` …).
        action
            What was done, a short verb; the registry's own actions
            (:data:`RESERVED_AUDIT_ACTIONS`) are refused.
        obj
            What it was done to (employee id, model id, file …).
        old, new
            JSON-able values before and after (no images or embeddings).

        Returns
        -------
        int
            The audit row id.
        """
        if action in RESERVED_AUDIT_ACTIONS:
            raise RegistryError(f"Audit action {action!r} is written by the registry itself; "
                                "use another action name.")
        with self.transaction():
            return self._append_audit(actor, action, obj, old, new)

    @_guarded
    def audit_log(self, since: datetime | None = None, limit: int | None = None,
                  action: str | None = None) -> list[AuditEntry]:
        """Audit rows, oldest first: at most ``limit`` of the most recent ones since ``since``."""
        where, params = _where([("time >= ?", since and _iso(since)), ("action = ?", action)])
        rows = self._rows(f"SELECT * FROM audit {where} ORDER BY id DESC {_limit(limit)}", params)[::-1]
        return [AuditEntry(r["id"], _time(r["time"]), r["actor"], r["action"], r["object"],
                           _loads(r["old"]), _loads(r["new"])) for r in rows]
