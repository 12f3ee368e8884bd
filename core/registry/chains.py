"""Tamper evidence: the hash chains of events and audit rows, and :func:`verify_registry`.

``events`` and ``audit`` are append-only hash chains.  Each row stores ``prev_hash`` (the ``hash``
of the row before it in the same table, or :data:`GENESIS_HASH` for the first) and
``hash = SHA-256(domain ‖ canonical JSON of its content fields and prev_hash)``.  The canonical
serialisation is a JSON array of the stored column values in a fixed order, with no whitespace.

An event's content is split in two:

* **public part** — ``id, time, camera, decision, distance, model_version`` — hashed directly;
* **personal part** — ``operator_id, probabilities, reason, thumbnail`` — hashed through
  ``personal_digest = SHA-256(domain ‖ salt ‖ canonical JSON [operator_id, probabilities, reason,
  sha256(thumbnail)])`` with a random 16-byte per-row ``salt``.  The digest is part of the hashed
  content; the salt and the personal values are not.

How erasure and retention keep the chain verifiable is told in :mod:`core.registry.erasure`.

:meth:`Registry.verify <core.registry.Registry.verify>` recomputes both chains and reports, in plain sentences, any event or audit
row whose content no longer matches its hash (a plain SQL ``UPDATE`` of time, camera, decision,
distance, model version, operator link, probabilities, reason or thumbnail), any row deleted from
the start, the middle or the end (the registry numbers rows consecutively, so a deleted row leaves a
gap in the ids — and before new rows arrive, ``sqlite_sequence`` still remembers the highest id ever
used), a broken ``prev_hash`` link, redactions not covered by an audited erasure (the count of
redacted rows must equal the count recorded by ``remove_operator`` audit rows), missing append-only
guard triggers, more than one active model, and whatever ``PRAGMA integrity_check`` and
``PRAGMA foreign_key_check`` report.

What the chain cannot do: someone with write access to the file *and* this documentation can
rewrite a whole chain from the tampered row on, consistently.  :meth:`Registry.chain_heads` gives
the newest id and hash of each chain; writing them somewhere else (a printed log, another host)
from time to time makes such a rewrite detectable too.

Triggers reject accidental tampering up front: audit rows can be neither updated nor deleted, an
event's public part and hashes cannot be updated, its personal part can only be redacted as a whole,
and an event can only be deleted once an audited purge covers its id.  (An operator row with events
can therefore only be deleted through :meth:`Registry.remove_operator`.)

Everything here works on a plain ``sqlite3`` connection; the :class:`~core.registry.Registry`
methods ``verify`` and ``chain_heads`` call :func:`verify_registry` and :func:`chain_heads`, and
every write of an audit row or an event chains to :func:`_audit_head` / :func:`_events_head`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from core.registry.schema import _GUARD_TRIGGERS
from core.registry.sql import _fetch_one

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first row of each chain."""
_EVENT_DOMAIN = b"facegate/events/v1\x00"
_PERSONAL_DOMAIN = b"facegate/events/personal/v1\x00"
_AUDIT_DOMAIN = b"facegate/audit/v1\x00"
_EVENT_COLS = "id, time, camera, decision, distance, model_version, personal_digest, prev_hash"
_AUDIT_COLS = "id, time, actor, action, object, old, new, prev_hash"


def _canonical(values: Sequence[Any]) -> bytes:
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _event_hash(row: Sequence[Any]) -> str:
    """Hash of an event from its stored ``_EVENT_COLS`` values (prev_hash last)."""
    return hashlib.sha256(_EVENT_DOMAIN + _canonical(row)).hexdigest()


def _audit_hash(row: Sequence[Any]) -> str:
    """Hash of an audit row from its stored ``_AUDIT_COLS`` values (prev_hash last)."""
    return hashlib.sha256(_AUDIT_DOMAIN + _canonical(row)).hexdigest()


def _personal_digest(salt: bytes, operator_id: int | None, probabilities: str | None,
                     reason: str | None, thumbnail: bytes | None) -> str:
    thumb = hashlib.sha256(thumbnail).hexdigest() if thumbnail is not None else None
    body = _canonical([operator_id, probabilities, reason, thumb])
    return hashlib.sha256(_PERSONAL_DOMAIN + salt + body).hexdigest()


# ------------------------------------------------------------------------------------- chain heads


def _audit_head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(last id ever used, hash the next audit row must chain to)."""
    seq = _fetch_one(conn, "SELECT seq FROM sqlite_sequence WHERE name = 'audit'")
    last = _fetch_one(conn, "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
    last_id = max(int(seq["seq"]) if seq else 0, int(last["id"]) if last else 0)
    return last_id, (str(last["hash"]) if last else GENESIS_HASH)


def _events_head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(last id ever used, hash the next event must chain to)."""
    last = _fetch_one(conn, "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
    seq = _fetch_one(conn, "SELECT seq FROM sqlite_sequence WHERE name = 'events'")
    last_id = max(int(seq["seq"]) if seq else 0, int(last["id"]) if last else 0)
    if last is not None:
        return last_id, str(last["hash"])
    checkpoint = _purge_checkpoint(conn)
    return last_id, (checkpoint[1] if checkpoint else GENESIS_HASH)


def _purge_checkpoint(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """(id, hash) of the last event the newest purge deleted: where the events chain now starts."""
    row = _fetch_one(conn, "SELECT new FROM audit WHERE action = 'purge' AND object = 'events' "
                     "ORDER BY id DESC LIMIT 1")
    if row is None:
        return None
    new = json.loads(row["new"])
    return int(new["through_id"]), str(new["through_hash"])


def _seq(conn: sqlite3.Connection, table: str) -> int:
    row = _fetch_one(conn, "SELECT seq FROM sqlite_sequence WHERE name = ?", [table])
    return int(row["seq"]) if row else 0


def chain_heads(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """(id, hash) of the newest event and audit row: :meth:`Registry.chain_heads`."""
    out = {}
    for table in ("events", "audit"):
        row = _fetch_one(conn, f"SELECT id, hash FROM {table} ORDER BY id DESC LIMIT 1")
        out[table] = (int(row["id"]), str(row["hash"])) if row else (0, GENESIS_HASH)
    return out


# ------------------------------------------------------------------------------------------ verify


def verify_registry(conn: sqlite3.Connection) -> list[str]:
    """The checks of :meth:`Registry.verify`: one sentence per problem found, in one read snapshot.

    SQLite's own integrity and foreign-key checks, the append-only guard triggers, at most one
    active model, then both hash chains (:func:`_verify_audit`, :func:`_verify_events`).
    """
    problems: list[str] = []
    own_snapshot = not conn.in_transaction
    if own_snapshot:
        conn.execute("BEGIN")  # one read snapshot for all checks (WAL: writers carry on)
    try:
        check = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if check != ["ok"]:
            problems += [f"SQLite integrity check: {line}" for line in check[:20]]
        for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check").fetchall()[:20]:
            problems.append(f"{table} row {rowid} points to a missing {parent} row.")
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        missing = [t for t in _GUARD_TRIGGERS if t not in present]
        if missing:
            problems.append(f"The append-only guards {', '.join(missing)} were removed from the database.")
        n_active = conn.execute("SELECT count(*) FROM model_versions WHERE active = 1").fetchone()[0]
        if n_active > 1:
            problems.append(f"{n_active} model versions are marked active; exactly one may be.")
        audit_ok = _verify_audit(conn, problems)
        _verify_events(conn, problems, audit_ok)
    except sqlite3.DatabaseError as exc:
        problems.append(f"SQLite could not read the database (\"{exc}\"): the file is damaged; restore a "
                        "backup with `facegate restore FILE`.")
    except (KeyError, TypeError, ValueError) as exc:  # e.g. an unreadable purge checkpoint
        problems.append(f"The audit trail holds an unreadable purge checkpoint ({exc!r}).")
    finally:
        if own_snapshot:
            conn.execute("ROLLBACK")
    return problems


def _verify_audit(conn: sqlite3.Connection, problems: list[str]) -> bool:
    before = len(problems)
    prev_hash, prev_id = GENESIS_HASH, 0
    cur = conn.execute(f"SELECT {_AUDIT_COLS}, hash FROM audit ORDER BY id")
    for row in cur:
        values, stored = list(row[:-1]), row[-1]
        rid = values[0]
        if rid != prev_id + 1:
            problems.append(f"{_missing('Audit row', prev_id + 1, rid - 1)}: the log jumps from row "
                            f"{prev_id} to row {rid}.")
        elif values[-1] != prev_hash:
            where = f"after row {prev_id}" if prev_id else "at the start"
            problems.append(f"Audit row {rid} does not follow the chain {where}: an audit row before it "
                            "was altered.")
        if _audit_hash(values) != stored:
            problems.append(f"Audit row {rid} was altered after it was written (its content no longer "
                            "matches its hash).")
        prev_hash, prev_id = stored, rid
    if _seq(conn, "audit") > prev_id:
        problems.append(f"The newest audit rows after row {prev_id} were deleted "
                        f"(rows up to {_seq(conn, 'audit')} once existed).")
    return len(problems) == before


def _verify_events(conn: sqlite3.Connection, problems: list[str], audit_ok: bool) -> None:
    checkpoint = _purge_checkpoint(conn)
    through_id, prev_hash = checkpoint if checkpoint else (0, GENESIS_HASH)
    prev_id = through_id
    redacted_rows = 0
    cur = conn.execute(f"SELECT {_EVENT_COLS}, hash, operator_id, probabilities, reason, thumbnail, "
                       "salt, redacted FROM events ORDER BY id")
    for row in cur:
        values, stored = list(row[:8]), row[8]
        op_id, probs, reason, thumb, salt, redacted = row[9:]
        rid = values[0]
        if rid <= through_id:
            problems.append(f"Event {rid} should have been deleted by the purge through event {through_id}.")
        elif rid != prev_id + 1:
            problems.append(f"{_missing('Event', prev_id + 1, rid - 1)}: the log jumps from event "
                            f"{prev_id} to event {rid}.")
        elif values[-1] != prev_hash:
            where = f"event {prev_id}" if prev_id > through_id else (
                f"the purge checkpoint (event {through_id})" if checkpoint else "the start of the log")
            problems.append(f"Event {rid} does not follow {where}: an event before it was altered.")
        if _event_hash(values) != stored:
            problems.append(f"Event {rid} was altered after it was recorded (its time, camera, decision, "
                            "distance or model version no longer matches its hash).")
        personal_digest = values[6]
        if redacted:
            redacted_rows += 1
            if any(v is not None for v in (op_id, probs, reason, thumb, salt)):
                problems.append(f"Event {rid} is marked erased but still holds personal data.")
        elif salt is None or _personal_digest(salt, op_id, probs, reason, thumb) != personal_digest:
            problems.append(f"Event {rid} was altered after it was recorded (its operator, probabilities, "
                            "reason or thumbnail no longer matches its hash).")
        prev_hash, prev_id = stored, rid
    seq = _seq(conn, "events")
    if seq > max(prev_id, through_id):
        problems.append(f"The newest events after event {max(prev_id, through_id)} were deleted "
                        f"(events up to {seq} once existed).")
    if audit_ok:
        erased = conn.execute(
            "SELECT coalesce(sum(json_extract(new, '$.events_redacted')), 0) FROM audit "
            "WHERE action = 'remove_operator'").fetchone()[0]
        purged = conn.execute(
            "SELECT coalesce(sum(json_extract(new, '$.redacted_purged')), 0) FROM audit "
            "WHERE action = 'purge' AND object = 'events'").fetchone()[0]
        if redacted_rows + purged != erased:
            problems.append(f"{redacted_rows + purged} events are marked erased but audited erasures "
                            f"account for {erased}: events were stripped of their operator outside "
                            "FaceGate.")


def _missing(what: str, first: int, last: int) -> str:
    if first == last:
        return f"{what} {first} is missing (deleted outside FaceGate)"
    return f"{what}s {first} to {last} are missing (deleted outside FaceGate)"
