"""Erasure of a person and retention of events: what is deleted, what is redacted, what is kept.

Erasure and retention
---------------------
*Erasure* (:meth:`Registry.remove_operator`) deletes the person's operator row, photos and
embeddings, and *redacts* each of their events: ``operator_id``, ``probabilities`` (identity-keyed
scores would name the person), ``reason``, ``thumbnail`` and ``salt`` become NULL and ``redacted``
becomes 1.  The row keeps its time, camera, decision, distance and model version, and its
``personal_digest`` — which, with the salt gone, can no longer be linked back to anybody (a digest
of a guessable employee id without a secret salt could).  The audit row of the erasure records how
many events were redacted, not which ones.

*Retention* (:meth:`Registry.purge`) deletes the oldest events, always a prefix of the chain.  Its
audit row (action ``purge``) is the checkpoint: it records ``through_id`` and ``through_hash``
(id and hash of the last purged row), and the remaining chain must start from that hash.  The audit
chain itself is never purged, so every checkpoint is covered by it.

What erasure keeps, on purpose
------------------------------
* Audit rows keep the employee id, name and department of people who were enrolled and erased:
  accountability for who was given access to a critical plant; none of it is biometric.
* Events of *other* people keep their probability tables, which may list the erased person's
  employee id as one of the classes with its score.  Not biometric; it only says the person was
  enrolled at the time, as the audit trail does.
* Backups made before the erasure still hold the person's data; so do model files trained before
  it (an SVC keeps support vectors).  The caller retrains; old backups age out.

``PRAGMA secure_delete`` is on, and erasure and purge end with a WAL checkpoint, so deleted images,
embeddings and thumbnails are overwritten in the file rather than left in free pages.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from core.errors import RegistryError
from core.registry.connection import RegistryBase, _guarded
from core.registry.records import ErasureReport
from core.registry.sql import _iso

log = logging.getLogger(__name__)


class ErasureMixin(RegistryBase):
    """Erasing operators and purging old events (part of :class:`~core.registry.Registry`)."""

    @_guarded
    def remove_operator(self, op: int | str, *, actor: str) -> ErasureReport:
        """Erase an operator (right to erasure).  Audited as ``remove_operator``.

        Deletes the operator row, all their photos and embeddings, and redacts all their events
        (operator link, probabilities, reason, thumbnail and salt set to NULL; time, camera, decision,
        distance and model version kept, and the hash chain still verifies).  The audit row keeps
        the employee id, name and department and the counts, not which events were redacted.
        Model files trained before the erasure still know the person: retrain.

        Returns
        -------
        ErasureReport
            How many photos and embeddings were deleted and events redacted.
        """
        with self.transaction():
            row = self._operator_row(op)
            op_id = row["id"]
            counts = self._operators("WHERE o.id = ?", [op_id])[0]
            redacted = self.db.conn.execute(
                "UPDATE events SET operator_id = NULL, probabilities = NULL, reason = NULL, "
                "thumbnail = NULL, salt = NULL, redacted = 1 WHERE operator_id = ?", [op_id]).rowcount
            self.db.conn.execute("DELETE FROM operators WHERE id = ?", [op_id])  # cascades
            report = ErasureReport(row["employee_id"], counts.photos, counts.embeddings, redacted)
            self._append_audit(
                actor, "remove_operator", row["employee_id"],
                {"employee_id": row["employee_id"], "name": row["name"], "department": row["department"]},
                {"photos": report.photos, "embeddings": report.embeddings, "events_redacted": redacted})
        self._checkpoint()
        log.info("erased operator %s: %s", row["employee_id"], report)
        return report

    @_guarded
    def purge(self, older_than_days: float, *, actor: str = "retention") -> int:
        """Retention: delete events (and their thumbnails) older than ``older_than_days`` days.

        Deletes the longest run of oldest events (by id) whose time is before the cutoff: an event
        recorded with an out-of-order older time after a newer one waits for the next purge.  The
        ``purge`` audit row is the chain checkpoint (id and hash of the last deleted event).

        Returns
        -------
        int
            How many events were deleted.
        """
        if older_than_days < 0:
            raise RegistryError("The retention period cannot be negative.")
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        with self.transaction():
            keep = self._one("SELECT min(id) AS id FROM events WHERE time >= ?", [_iso(cutoff)])
            bound = "id < ?" if keep and keep["id"] is not None else "1"
            args = [keep["id"]] if keep and keep["id"] is not None else []
            last = self._one(f"SELECT id, hash FROM events WHERE {bound} ORDER BY id DESC LIMIT 1", args)
            if last is None:
                return 0
            stats = self._one("SELECT count(*) AS n, coalesce(sum(redacted), 0) AS r FROM events "
                              "WHERE id <= ?", [last["id"]])
            assert stats is not None
            self._append_audit(actor, "purge", "events", None, {
                "through_id": last["id"], "through_hash": last["hash"], "events": stats["n"],
                "redacted_purged": stats["r"], "older_than_days": older_than_days, "cutoff": _iso(cutoff)})
            self.db.conn.execute("DELETE FROM events WHERE id <= ?", [last["id"]])
        self._checkpoint()
        log.info("purged %d events older than %s days", stats["n"], older_than_days)
        return int(stats["n"])
