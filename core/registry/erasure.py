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
* Model version rows keep their metrics, whose ``left_out`` may name a person who had too few
  photos to be trained on (so none of their face data is in that model).
* Backups made before the erasure still hold the person's data; old backups age out.  Restoring
  one does not bring the person back (see below).

The erasure ledger, model files and restores
--------------------------------------------
Each erasure also appends a row to the *erasure ledger* (table ``erasures``,
:meth:`~ErasureMixin.erasure_ledger`) in the same transaction: its time and the operator's internal
row id, which AUTOINCREMENT never hands out again (a restore keeps it that way, see below) — no
employee id, no name.

Model files trained with the person hold their embeddings (the gallery) and classifiers fitted on
them (an SVC keeps support vectors), in every version, not only the active one.
:func:`core.registry.pruning.prune_erased` deletes the files of every version that lists an erased
person, after training and activating a replacement for the active one; the version rows stay, with
no path and the note :data:`PRUNED_NOTE`, and :meth:`~ErasureMixin.record_pruned_models` writes the
``prune_models`` audit row and the ledger's ``models_pruned``.  If no replacement can be trained
(too few people left), the active version keeps its files and the audit row lists it as
``pending``: it still holds the person's data until HR retrains.  ``facegate people remove`` does
both steps.

:meth:`Registry.restore` reads the ledger before it copies a backup in and applies again every
erasure the backup does not know of (audited as ``remove_operator`` by ``restore``: the employee id
as object, as for any erasure — the restored audit trail names them already in ``add_operator`` —
but no name or department), carries the ledger rows over, and marks restored model versions whose
files were pruned since the backup as pruned.  ``facegate restore`` then prunes the model files.

``PRAGMA secure_delete`` is on, and erasure and purge end with a WAL checkpoint, so deleted images,
embeddings and thumbnails are overwritten in the file rather than left in free pages.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import RegistryError
from core.registry.connection import RegistryBase, _guarded
from core.registry.records import ErasureRecord, ErasureReport
from core.registry.sql import _iso, _json, _time

log = logging.getLogger(__name__)

PRUNED_NOTE = "files deleted: trained with an erased person"
"""Notes of a model version whose files were deleted because it was trained with an erased person."""


class ErasureMixin(RegistryBase):
    """Erasing operators and purging old events (part of :class:`~core.registry.Registry`)."""

    @_guarded
    def remove_operator(self, op: int | str, *, actor: str) -> ErasureReport:
        """Erase an operator (right to erasure).  Audited as ``remove_operator``.

        Deletes the operator row, all their photos and embeddings, and redacts all their events
        (operator link, probabilities, reason, thumbnail and salt set to NULL; time, camera, decision,
        distance and model version kept, and the hash chain still verifies).  The audit row keeps
        the employee id, name and department and the counts, not which events were redacted; the
        erasure ledger gets a row with the operator's row id only.  Model files trained with the
        person still know them: :func:`core.registry.pruning.prune_erased` deletes them.

        Returns
        -------
        ErasureReport
            How many photos and embeddings were deleted and events redacted.
        """
        with self.transaction():
            row = self._operator_row(op)
            report = self._erase(row, actor, {"employee_id": row["employee_id"], "name": row["name"],
                                              "department": row["department"]})
            self.db.conn.execute("INSERT INTO erasures (time, operator_row) VALUES (?, ?)",
                                 [_iso(), row["id"]])
        self._checkpoint()
        log.info("erased operator %s: %s", row["employee_id"], report)
        return report

    def _erase(self, row: sqlite3.Row, actor: str, old: Any,
               extra: Mapping[str, Any] | None = None) -> ErasureReport:
        """Delete an operator's row, photos, embeddings; redact their events; audit it.  In a transaction."""
        op_id = row["id"]
        counts = self._operators("WHERE o.id = ?", [op_id])[0]
        redacted = self.db.conn.execute(
            "UPDATE events SET operator_id = NULL, probabilities = NULL, reason = NULL, "
            "thumbnail = NULL, salt = NULL, redacted = 1 WHERE operator_id = ?", [op_id]).rowcount
        self.db.conn.execute("DELETE FROM operators WHERE id = ?", [op_id])  # cascades
        report = ErasureReport(row["employee_id"], counts.photos, counts.embeddings, redacted)
        # verify() checks that the events_redacted of remove_operator rows add up to the redacted events.
        self._append_audit(actor, "remove_operator", row["employee_id"], old,
                           {"photos": report.photos, "embeddings": report.embeddings,
                            "events_redacted": redacted, **(extra or {})})
        return report

    @_guarded
    def erasure_ledger(self) -> list[ErasureRecord]:
        """Every erasure of this registry, oldest first: time, operator row id, pruned model versions."""
        return [ErasureRecord(r["id"], _time(r["time"]), int(r["operator_row"]),
                              tuple(int(v) for v in json.loads(r["models_pruned"])))
                for r in self._rows("SELECT * FROM erasures ORDER BY id")]

    @_guarded
    def erased_employee_ids(self) -> set[str]:
        """Employee ids that were erased (a ``remove_operator`` audit row) and are not enrolled now."""
        erased = {r["object"] for r in self._rows(
            "SELECT DISTINCT object FROM audit WHERE action = 'remove_operator'")}
        return erased - {r["employee_id"] for r in self._rows("SELECT employee_id FROM operators")}

    @_guarded
    def record_pruned_models(self, deleted: Mapping[int, Collection[str]], *, pending: Sequence[int] = (),
                             retrained: int | None = None, leftover_folders: int = 0, actor: str) -> None:
        """Record that model files trained with erased people were deleted.  Audited as ``prune_models``.

        Called by :func:`core.registry.pruning.prune_erased` once it has trained a replacement for
        the active version (if needed), before it deletes the files: a crash in between leaves
        folders no row names, which :func:`core.registry.training.sweep_models_dir` removes.

        Parameters
        ----------
        deleted
            Model version id → the erased employee ids its files held.  Each version's row gets no
            path and the note :data:`PRUNED_NOTE`; the ledger rows of those people get the version
            in ``models_pruned``.
        pending
            Versions that still hold an erased person's data (an active one no new model could replace).
        retrained
            The version trained and activated to replace the active one, if any.
        leftover_folders
            Version folders no row names that were deleted for holding people no longer enrolled.
        actor
            Who pruned, for the audit row (which names versions and ledger rows, never people).
        """
        with self.transaction():
            touched: set[int] = set()
            for model_id, people in sorted(deleted.items()):
                self.db.conn.execute("UPDATE model_versions SET path = '', notes = ? WHERE id = ?",
                                     [PRUNED_NOTE, model_id])
                for ledger in self._ledger_rows_of(people):
                    pruned = sorted(set(json.loads(ledger["models_pruned"])) | {model_id})
                    self.db.conn.execute("UPDATE erasures SET models_pruned = ? WHERE id = ?",
                                         [_json(pruned, "Pruned model versions"), ledger["id"]])
                    touched.add(int(ledger["id"]))
            self._append_audit(actor, "prune_models", "model_versions", None, {
                "deleted": sorted(deleted), "pending": sorted(set(pending)), "retrained": retrained,
                "erasures": sorted(touched), "leftover_folders": leftover_folders})

    def _ledger_rows_of(self, employee_ids: Collection[str]) -> list[sqlite3.Row]:
        """Ledger rows of these employee ids, linked through the ``add_operator`` audit row of each row id."""
        if not employee_ids:
            return []
        marks = ", ".join("?" * len(employee_ids))
        return self._rows(
            "SELECT e.id, e.models_pruned FROM erasures e WHERE e.operator_row IN (SELECT "
            "CAST(json_extract(a.new, '$.id') AS INTEGER) FROM audit a WHERE a.action = 'add_operator' "
            f"AND a.object IN ({marks}))", list(employee_ids))

    def _reapply_erasures(self, ledger: Sequence[ErasureRecord], *, actor: str,
                          source: str) -> tuple[int, int]:
        """After a restore: apply again each erasure of ``ledger`` this (restored) content does not know.

        Call inside a transaction.  An erased operator row the backup still holds is erased again
        (audited as ``remove_operator`` with no ``old`` value: the name and department are not
        written again); every missing ledger row is added with its time, so a later restore of an
        even older backup still knows of it.  Returns (people erased again, ledger rows added).
        """
        known = {r["operator_row"] for r in self._rows("SELECT operator_row FROM erasures")}
        again = added = 0
        for record in ledger:
            if record.operator_row in known:
                continue
            row = self._one("SELECT * FROM operators WHERE id = ?", [record.operator_row])
            if row is not None:
                self._erase(row, actor, None, {"erasure_of": _iso(record.time), "restored_from": source})
                again += 1
            self.db.conn.execute(
                "INSERT INTO erasures (time, operator_row, models_pruned) VALUES (?, ?, ?)",
                [_iso(record.time), record.operator_row,
                 _json(list(record.models_pruned), "Pruned model versions")])
            known.add(record.operator_row)
            added += 1
        return again, added

    def _pruned_versions(self) -> list[tuple[int, str]]:
        """(id, created) of the versions whose files were deleted for an erasure."""
        return [(int(r["id"]), str(r["created"])) for r in self._rows(
            "SELECT id, created FROM model_versions WHERE path = '' AND notes = ?", [PRUNED_NOTE])]

    def _carry_over_pruned(self, versions: Sequence[tuple[int, str]]) -> int:
        """After a restore: these versions (id, creation time) lost their files since.  In a transaction."""
        changed = 0
        for model_id, created in versions:
            changed += self.db.conn.execute(
                "UPDATE model_versions SET path = '', notes = ? WHERE id = ? AND created = ? AND path != ''",
                [PRUNED_NOTE, model_id, created]).rowcount
        return changed

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
