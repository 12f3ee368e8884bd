"""Model versions: which trained model is live, and the history of activations and rollbacks.

The trainer (:mod:`core.registry.training`) writes the model files and registers them here as a
``candidate`` or ``rejected`` version; activating one retires the previous one, and a rollback
re-activates the one before.  The database itself keeps at most one version active.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import RegistryError
from core.registry.connection import RegistryBase, _guarded
from core.registry.records import ModelVersion
from core.registry.sql import _iso, _json, _parse_time, _time

MODEL_STATUSES = ("candidate", "active", "retired", "rolled_back", "rejected")
"""``candidate``: trained, never active; ``active``: live; ``retired``: replaced by a newer
activation; ``rolled_back``: replaced by a rollback (skipped by later rollbacks); ``rejected``:
failed its checks, can never be activated."""


class ModelVersionsMixin(RegistryBase):
    """Registering, activating and rolling back model versions (part of :class:`~core.registry.Registry`)."""

    def _model(self, r: sqlite3.Row) -> ModelVersion:
        return ModelVersion(r["id"], _time(r["created"]), r["path"], r["embedder"], r["embedder_version"],
                            json.loads(r["metrics"]), bool(r["active"]), r["status"],
                            _parse_time(r["activated_at"]), r["notes"])

    @_guarded
    def add_model_version(self, path: Path | str, embedder: str, embedder_version: str,
                          metrics: Mapping[str, Any], status: str = "candidate", notes: str = "", *,
                          actor: str) -> int:
        """Register a trained model artifact (already written and renamed into place).  Audited.

        ``status`` is ``candidate`` (passed its checks; activate it with :meth:`activate_model`) or
        ``rejected`` (failed them; kept for the record, never activatable).  ``metrics`` is JSON-able
        (per-model CV accuracy, open-set figures …).  Returns the version id.
        """
        if status not in ("candidate", "rejected"):
            raise RegistryError(f"A new model version is 'candidate' or 'rejected', not {status!r}; "
                                "activate it with activate_model.")
        metrics_j = _json(dict(metrics), "Model metrics")
        with self.transaction():
            cur = self.db.conn.execute(
                "INSERT INTO model_versions (created, path, embedder, embedder_version, metrics, active, "
                "status, notes) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                [_iso(), str(path), embedder, embedder_version, metrics_j, status, notes])
            model_id = int(cur.lastrowid or 0)
            self._append_audit(actor, "add_model_version", str(model_id), None,
                               {"path": str(path), "embedder": embedder,
                                "embedder_version": embedder_version, "status": status})
        return model_id

    def _set_active_model(self, target: sqlite3.Row, current: sqlite3.Row | None, current_status: str) -> None:
        conn = self.db.conn
        if current is not None:
            conn.execute("UPDATE model_versions SET active = 0, status = ? WHERE id = ?",
                         [current_status, current["id"]])
        seq = self._one("SELECT coalesce(max(activation_seq), 0) + 1 AS s FROM model_versions")
        assert seq is not None
        conn.execute("UPDATE model_versions SET active = 1, status = 'active', activated_at = ?, "
                     "activation_seq = ? WHERE id = ?", [_iso(), seq["s"], target["id"]])

    @_guarded
    def activate_model(self, model_id: int, *, actor: str) -> None:
        """Make one model version the only active one (the previous becomes ``retired``).  Audited.

        Raises
        ------
        RegistryError
            If the version does not exist or was rejected.
        """
        with self.transaction():
            target = self._one("SELECT * FROM model_versions WHERE id = ?", [model_id])
            if target is None:
                raise RegistryError(f"There is no model version {model_id}.")
            if target["status"] == "rejected":
                raise RegistryError(f"Model version {model_id} failed its checks (status 'rejected') and "
                                    "cannot be activated.")
            current = self._one("SELECT * FROM model_versions WHERE active = 1")
            if current is not None and current["id"] == model_id:
                return
            self._set_active_model(target, current, "retired")
            self._append_audit(actor, "activate_model", str(model_id),
                               {"active": current["id"] if current else None}, {"active": model_id})

    @_guarded
    def rollback_model(self, *, actor: str) -> ModelVersion:
        """Re-activate the version that was active before the current one.  Audited.

        The current version becomes ``rolled_back`` and is skipped by later rollbacks, so rolling back
        twice goes two steps back instead of returning to the bad version.

        Returns
        -------
        ModelVersion
            The version now active.

        Raises
        ------
        RegistryError
            If no version is active, or none was active before it.
        """
        with self.transaction():
            current = self._one("SELECT * FROM model_versions WHERE active = 1")
            if current is None:
                raise RegistryError("No model version is active, so there is nothing to roll back.")
            target = self._one(
                "SELECT * FROM model_versions WHERE id != ? AND activation_seq IS NOT NULL "
                "AND status NOT IN ('rolled_back', 'rejected') ORDER BY activation_seq DESC LIMIT 1",
                [current["id"]])
            if target is None:
                raise RegistryError(f"There is no previous model version to roll back to: version "
                                    f"{current['id']} is the first one that was ever active.")
            self._set_active_model(target, current, "rolled_back")
            self._append_audit(actor, "rollback_model", str(target["id"]), {"active": current["id"]},
                               {"active": target["id"]})
            row = self._one("SELECT * FROM model_versions WHERE id = ?", [target["id"]])
        assert row is not None
        return self._model(row)

    @_guarded
    def discard_model(self, model_id: int, *, actor: str) -> None:
        """HR looked at a candidate and does not want it: it becomes ``rejected`` ("discarded by HR") and can
        never be activated; its files stay until the next sweep of unused versions.  Audited.

        Raises
        ------
        RegistryError
            If the version does not exist or is not a candidate (an active or once-active version is
            rolled back instead).
        """
        with self.transaction():
            row = self._one("SELECT * FROM model_versions WHERE id = ?", [model_id])
            if row is None:
                raise RegistryError(f"There is no model version {model_id}.")
            if row["status"] != "candidate":
                raise RegistryError(f"Model version {model_id} is {row['status']}, not a candidate: only a version "
                                    "that was never active can be discarded.")
            self.db.conn.execute("UPDATE model_versions SET status = 'rejected', notes = ? WHERE id = ?",
                                 [f"discarded by HR; {row['notes']}"[:500], model_id])
            self._append_audit(actor, "discard_model", str(model_id), {"status": "candidate"},
                               {"status": "rejected"})

    @_guarded
    def active_model(self) -> ModelVersion | None:
        """The active model version, or ``None`` if none was ever activated."""
        row = self._one("SELECT * FROM model_versions WHERE active = 1")
        return self._model(row) if row is not None else None

    @_guarded
    def gallery_state(self) -> tuple[int | None, int, int, int, int]:
        """A cheap fingerprint of what recognition depends on.

        ``(active model id, embeddings, largest embedding id, active operators, newest HR signature)``:
        it changes when a model is activated or rolled back, when people are enrolled, erased,
        suspended or reinstated, and whenever HR signs a change (the decision settings, say), so a
        running monitor can poll it and reload only when something changed.  An edit that leaves it
        unchanged is not picked up at all: the console keeps deciding with what it verified.
        """
        row = self._one(
            "SELECT (SELECT id FROM model_versions WHERE active = 1) AS model, "
            "(SELECT count(*) FROM embeddings) AS n, (SELECT coalesce(max(id), 0) FROM embeddings) AS last, "
            "(SELECT count(*) FROM operators WHERE active = 1) AS people, "
            "(SELECT coalesce(max(id), 0) FROM signatures) AS signed")
        assert row is not None
        return (None if row["model"] is None else int(row["model"]), int(row["n"]), int(row["last"]),
                int(row["people"]), int(row["signed"]))

    @_guarded
    def list_models(self) -> list[ModelVersion]:
        """All model versions, oldest first."""
        return [self._model(r) for r in self._rows("SELECT * FROM model_versions ORDER BY id")]
