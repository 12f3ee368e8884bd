"""The operator registry: FaceGate's durable memory in one SQLite file.

Who is enrolled (operators), with which photos and embeddings, which model version is live, what
happened at the gate (events) and who changed what (audit) — all in one SQLite database written
through sqlite-utils.  Headless: no Qt, no recognition code; the enrollment checks, the trainer, the
CLI and the GUI are built on top of this API.

Using it
--------
>>> from core.registry import Registry
>>> with Registry.open() as reg:                    # data_dir()/facegate.db, created if missing
...     op = reg.add_operator("E1001", "Ada Lovelace", "Maintenance", actor="hr:alice")
...     photo = reg.add_photo(op, jpeg_bytes, source="enroll-camera", captured_at=None,
...                           quality={"sharpness": 212.0}, actor="hr:alice")
...     reg.add_embedding(photo, vector, embedder="facenet", embedder_version="taniai-1")
...     x, labels, photo_ids = reg.embeddings("taniai-1")

Where the parts live
--------------------
:class:`Registry` is assembled here from one mixin per concern, all built on
:class:`~core.registry.connection.RegistryBase` (opening the file, transactions, the audit writer):
operators, photos, embeddings and settings are in this module; events and audit in
:mod:`core.registry.events`; model versions in :mod:`core.registry.model_versions`; erasure and
retention in :mod:`core.registry.erasure`; backup and restore in :mod:`core.registry.backup`.  The
hash chains and :meth:`Registry.verify` are in :mod:`core.registry.chains`, the tables in
:mod:`core.registry.schema`, the returned records in :mod:`core.registry.records`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from core.errors import RegistryError
from core.registry import chains, journal
from core.registry.backup import BackupMixin
from core.registry.connection import _guarded
from core.registry.erasure import ErasureMixin
from core.registry.event_query import EventQueryMixin
from core.registry.events import EventsMixin
from core.registry.model_versions import ModelVersionsMixin
from core.registry.records import Operator, Photo
from core.registry.sql import _iso, _json, _parse_time, _time, _where

SECRET_SETTING_PREFIX = "security."
"""Settings under this prefix are secrets: their values never appear in the audit log."""


class Registry(EventsMixin, EventQueryMixin, ModelVersionsMixin, ErasureMixin, BackupMixin):
    """FaceGate's registry on one SQLite file.  Open it with :meth:`Registry.open`.

    One ``Registry`` per thread (its connection refuses other threads); any number of them, in any
    number of processes, may share the file.  Use it as a context manager, or call :meth:`close`.

    Methods that change something and are worth accounting for take a keyword-only ``actor`` (who
    did it, e.g. ``"hr:alice"``, ``"cli"``, ``"trainer"``) and write an audit row in the same
    transaction.  The registry does not check roles: callers check the HR passphrase with
    :func:`core.registry.security.authorize_hr` before enrollment, erasure, settings and model activation.
    All errors are :class:`~core.errors.RegistryError` (a :class:`~core.errors.FaceGateError`).
    """

    # ---------------------------------------------------------------------------------- operators

    @_guarded
    def add_operator(self, employee_id: str, name: str, department: str = "", *, actor: str) -> int:
        """Enroll a new operator (active).  Audited as ``add_operator``.

        Parameters
        ----------
        employee_id
            The plant's unique employee id; leading/trailing spaces are dropped.
        name, department
            Shown to guards and HR.
        actor
            Who enrolled them.

        Returns
        -------
        int
            The operator's row id (never reused, even after erasure).

        Raises
        ------
        RegistryError
            If the employee id is empty or already enrolled.
        """
        employee_id, name, department = str(employee_id).strip(), str(name).strip(), str(department).strip()
        if not employee_id or not name:
            raise RegistryError("An operator needs a non-empty employee id and name.")
        with self.transaction():
            if self._one("SELECT 1 FROM operators WHERE employee_id = ?", [employee_id]):
                raise RegistryError(f"Employee id {employee_id!r} is already enrolled; one person, one "
                                    "identity. Use another id or update the existing operator.")
            cur = self.db.conn.execute(
                "INSERT INTO operators (employee_id, name, department, active, created) VALUES (?, ?, ?, 1, ?)",
                [employee_id, name, department, _iso()])
            op_id = int(cur.lastrowid or 0)
            self._append_audit(actor, "add_operator", employee_id, None,
                               {"id": op_id, "employee_id": employee_id, "name": name,
                                "department": department})
        return op_id

    @_guarded
    def get_operator(self, op: int | str) -> Operator:
        """Return one operator by row id (``int``) or employee id (``str``); unknown → RegistryError."""
        return self._operators("WHERE o.id = ?", [self._operator_row(op)["id"]])[0]

    @_guarded
    def list_operators(self, active_only: bool = False) -> list[Operator]:
        """All operators ordered by employee id, with their photo and embedding counts."""
        return self._operators("WHERE o.active = 1" if active_only else "")

    @_guarded
    def update_operator(self, op: int | str, *, name: str | None = None, department: str | None = None,
                        actor: str) -> None:
        """Change an operator's name or department (not the employee id).  Audited as ``update_operator``."""
        with self.transaction():
            row = self._operator_row(op)
            new_name = row["name"] if name is None else str(name).strip()
            new_dept = row["department"] if department is None else str(department).strip()
            if not new_name:
                raise RegistryError("An operator needs a name.")
            if (new_name, new_dept) == (row["name"], row["department"]):
                return
            self.db.conn.execute("UPDATE operators SET name = ?, department = ? WHERE id = ?",
                                 [new_name, new_dept, row["id"]])
            self._append_audit(actor, "update_operator", row["employee_id"],
                               {"name": row["name"], "department": row["department"]},
                               {"name": new_name, "department": new_dept})

    @_guarded
    def set_active(self, op: int | str, active: bool, *, actor: str) -> None:
        """Activate or suspend an operator (suspended ones drop out of :meth:`embeddings`).  Audited."""
        with self.transaction():
            row = self._operator_row(op)
            if bool(row["active"]) == bool(active):
                return
            self.db.conn.execute("UPDATE operators SET active = ? WHERE id = ?", [int(bool(active)), row["id"]])
            self._append_audit(actor, "set_active", row["employee_id"], {"active": bool(row["active"])},
                               {"active": bool(active)})

    # ------------------------------------------------------------------------ photos and embeddings

    @_guarded
    def add_photo(self, operator_id: int | str, image_bytes: bytes, source: str,
                  captured_at: datetime | None, quality: Mapping[str, Any], *, actor: str) -> int:
        """Store an accepted enrollment photo (the encoded JPEG/PNG bytes).  Audited as ``add_photo``.

        Parameters
        ----------
        operator_id
            Row id or employee id.
        image_bytes
            The encoded image as read from the file or encoded from the frame.
        source
            Where it came from: a file name, ``"camera:gate-1"`` ….
        captured_at
            When it was taken, if known.
        quality
            The quality figures that let it pass (face size, sharpness, brightness, pose …).

        Returns
        -------
        int
            The photo id.

        Raises
        ------
        RegistryError
            If the operator is unknown, the bytes are empty, or the same image (by SHA-256) is
            already enrolled for this operator.
        """
        data = bytes(image_bytes)
        if not data:
            raise RegistryError("An enrollment photo cannot be empty.")
        digest = hashlib.sha256(data).hexdigest()
        quality_j = _json(dict(quality), "Photo quality figures")
        with self.transaction():
            row = self._operator_row(operator_id)
            dup = self._one("SELECT id FROM photos WHERE operator_id = ? AND sha256 = ?", [row["id"], digest])
            if dup:
                raise RegistryError(f"This image is already enrolled for {row['employee_id']} "
                                    f"(photo {dup['id']}).")
            cur = self.db.conn.execute(
                "INSERT INTO photos (operator_id, sha256, image, source, captured_at, quality, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [row["id"], digest, data, str(source),
                 _iso(captured_at) if captured_at is not None else None, quality_j, _iso()])
            photo_id = int(cur.lastrowid or 0)
            self._append_audit(actor, "add_photo", row["employee_id"], None,
                               {"photo_id": photo_id, "sha256": digest, "source": str(source)})
        return photo_id

    def _photo(self, r: sqlite3.Row) -> Photo:
        return Photo(r["id"], r["operator_id"], r["sha256"], r["source"], _parse_time(r["captured_at"]),
                     json.loads(r["quality"]), _time(r["created"]))

    @_guarded
    def list_photos(self, operator: int | str | None = None) -> list[Photo]:
        """Photo metadata (no image bytes), of one operator or of everybody, in id order."""
        cols = "id, operator_id, sha256, source, captured_at, quality, created"
        if operator is None:
            rows = self._rows(f"SELECT {cols} FROM photos ORDER BY id")
        else:
            op_id = self._operator_row(operator)["id"]
            rows = self._rows(f"SELECT {cols} FROM photos WHERE operator_id = ? ORDER BY id", [op_id])
        return [self._photo(r) for r in rows]

    @_guarded
    def find_photos(self, sha256: str) -> list[Photo]:
        """Photos whose image bytes have this SHA-256 (hex), whoever they belong to."""
        rows = self._rows("SELECT id, operator_id, sha256, source, captured_at, quality, created "
                          "FROM photos WHERE sha256 = ? ORDER BY id", [sha256.lower()])
        return [self._photo(r) for r in rows]

    @_guarded
    def photo_bytes(self, photo_id: int) -> bytes:
        """The encoded image of one photo (to re-embed it with another embedder)."""
        row = self._one("SELECT image FROM photos WHERE id = ?", [photo_id])
        if row is None:
            raise RegistryError(f"There is no photo {photo_id}.")
        return bytes(row["image"])

    @_guarded
    def add_embedding(self, photo_id: int, vector: np.ndarray, embedder: str, embedder_version: str) -> int:
        """Store one embedding of a photo as little-endian float32 bytes, tagged with its embedder.

        Not audited (it is derived from an audited photo).  One embedding per photo and embedder
        version.  Returns the embedding id.

        Raises
        ------
        RegistryError
            If the photo is unknown, the vector is not 1-D or not finite, or this photo already has
            an embedding from this embedder version.
        """
        return self.add_embeddings([(photo_id, vector)], embedder, embedder_version)[0]

    @_guarded
    def add_embeddings(self, items: Sequence[tuple[int, np.ndarray]], embedder: str,
                       embedder_version: str) -> list[int]:
        """Batch variant of :meth:`add_embedding`: ``(photo_id, vector)`` pairs, one transaction."""
        if not embedder or not embedder_version:
            raise RegistryError("An embedding needs the embedder's name and version.")
        prepared = []
        for photo_id, vector in items:
            arr = np.asarray(vector)
            if arr.ndim == 2 and arr.shape[0] == 1:
                arr = arr[0]
            if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.number):
                raise RegistryError(f"An embedding must be a non-empty 1-D numeric vector, not shape {arr.shape}.")
            arr32 = arr.astype("<f4")
            if not np.all(np.isfinite(arr32)):
                raise RegistryError(f"The embedding of photo {photo_id} holds NaN or infinite values.")
            prepared.append((int(photo_id), arr32.tobytes(), int(arr32.size)))
        ids = []
        now = _iso()
        with self.transaction():
            for photo_id, blob, dim in prepared:
                photo = self._one("SELECT operator_id FROM photos WHERE id = ?", [photo_id])
                if photo is None:
                    raise RegistryError(f"There is no photo {photo_id} to attach an embedding to.")
                if self._one("SELECT 1 FROM embeddings WHERE photo_id = ? AND embedder = ? AND "
                             "embedder_version = ?", [photo_id, embedder, embedder_version]):
                    raise RegistryError(f"Photo {photo_id} already has a {embedder} {embedder_version} "
                                        "embedding.")
                cur = self.db.conn.execute(
                    "INSERT INTO embeddings (photo_id, operator_id, vector, dim, embedder, embedder_version, "
                    "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [photo_id, photo["operator_id"], blob, dim, embedder, embedder_version, now])
                ids.append(int(cur.lastrowid or 0))
        return ids

    @_guarded
    def add_augmented(self, photo_id: int, vectors: np.ndarray, embedder: str, embedder_version: str) -> int:
        """Store a photo's augmented embeddings ``(len(VARIANTS), d)`` (:mod:`core.recognition.augment`).

        Not audited (derived from an audited photo, like its embedding); signed with the rest.
        Replaces what this photo had from this embedder version.  Returns how many were stored.
        """
        arr = np.asarray(vectors, dtype="<f4")
        if arr.ndim != 2 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise RegistryError(f"Augmented embeddings of photo {photo_id} must be a finite (n, d) array.")
        now = _iso()
        with self.transaction():
            photo = self._one("SELECT operator_id FROM photos WHERE id = ?", [int(photo_id)])
            if photo is None:
                raise RegistryError(f"There is no photo {photo_id} to attach augmented embeddings to.")
            self.db.conn.execute("DELETE FROM augmented_embeddings WHERE photo_id = ? AND embedder = ? AND "
                                 "embedder_version = ?", [int(photo_id), embedder, embedder_version])
            self.db.conn.executemany(
                "INSERT INTO augmented_embeddings (photo_id, operator_id, variant, vector, dim, embedder, "
                "embedder_version, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(int(photo_id), photo[0], v, row.tobytes(), int(row.size), embedder, embedder_version, now)
                 for v, row in enumerate(arr)])
        return len(arr)

    @_guarded
    def augmented(self, embedder_version: str, *, embedder: str,
                  photo_ids: Sequence[int] | None = None) -> dict[int, np.ndarray]:
        """Augmented embeddings by photo id: ``(variants, d)`` float32, in variant order."""
        rows = self.db.conn.execute(
            "SELECT photo_id, variant, vector FROM augmented_embeddings WHERE embedder = ? AND "
            "embedder_version = ? ORDER BY photo_id, variant", [embedder, embedder_version]).fetchall()
        wanted = None if photo_ids is None else {int(p) for p in photo_ids}
        grouped: dict[int, list[np.ndarray]] = {}
        for pid, _variant, blob in rows:
            if wanted is None or pid in wanted:
                grouped.setdefault(int(pid), []).append(np.frombuffer(blob, dtype="<f4"))
        return {pid: np.stack(vs).astype(np.float32) for pid, vs in grouped.items()}

    @_guarded
    def embeddings(self, embedder_version: str | None = None, *, embedder: str | None = None,
                   active_only: bool = True) -> tuple[np.ndarray, list[str], list[int]]:
        """The training set: embeddings of (active) operators.

        Parameters
        ----------
        embedder_version, embedder
            Keep only embeddings from this embedder version / name.  Without them every stored
            embedding is returned, which fails if they have different sizes.
        active_only
            Leave out suspended operators (the default; they must not be recognised).

        Returns
        -------
        x : np.ndarray
            ``(n, dim)`` float32, in the order of the two lists; ``(0, 0)`` if there are none.
        employee_ids : list of str
            The label of each row.
        photo_ids : list of int
            The photo each row was computed from.
        """
        where, params = _where([("o.active = ?", 1 if active_only else None),
                                ("e.embedder_version = ?", embedder_version), ("e.embedder = ?", embedder)])
        rows = self.db.conn.execute(
            "SELECT e.vector, e.dim, o.employee_id, e.photo_id FROM embeddings e "
            f"JOIN operators o ON o.id = e.operator_id {where} ORDER BY o.employee_id, e.id",
            params).fetchall()
        if not rows:
            return np.zeros((0, 0), np.float32), [], []
        dims = {r[1] for r in rows}
        if len(dims) > 1:
            raise RegistryError(f"The stored embeddings have different sizes ({sorted(dims)}): ask for one "
                                "embedder version.")
        x = np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), dims.pop())
        return x.astype(np.float32), [r[2] for r in rows], [int(r[3]) for r in rows]

    # ---------------------------------------------------------------------------------- settings

    @_guarded
    def get_setting(self, key: str, default: Any = None) -> Any:
        """A setting's value (JSON-decoded), or ``default`` if it was never set."""
        row = self._one("SELECT value FROM settings WHERE key = ?", [key])
        return default if row is None else json.loads(row["value"])

    @_guarded
    def set_setting(self, key: str, value: Any, *, actor: str, secret: bool = False) -> None:
        """Set a setting (any JSON-able value).  Audited as ``set_setting`` with old and new values.

        Keys under ``security.`` need ``secret=True``: their values are then written to the audit log
        as ``"<secret>"``.  Use :mod:`core.registry.security` for those, not this method directly.
        """
        key = str(key).strip()
        if not key:
            raise RegistryError("A setting needs a name.")
        if key.startswith(SECRET_SETTING_PREFIX) and not secret:
            raise RegistryError(f"Setting {key!r} is a secret; change it through core.registry.security.")
        value_j = _json(value, f"Setting {key!r}")
        with self.transaction():
            old = self._one("SELECT value FROM settings WHERE key = ?", [key])
            old_v = None if old is None else json.loads(old["value"])
            if old is not None and old["value"] == value_j:
                return
            self.db.conn.execute(
                "INSERT INTO settings (key, value, updated) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value, updated = excluded.updated", [key, value_j, _iso()])
            shown_old = None if old is None else {"value": "<secret>" if secret else old_v}
            self._append_audit(actor, "set_setting", key, shown_old,
                               {"value": "<secret>" if secret else value})

    # ------------------------------------------------------------------------------------- verify

    @_guarded
    def chain_heads(self) -> dict[str, tuple[int, str]]:
        """``{"events": (id, hash), "audit": (id, hash)}`` of the newest row of each chain.

        Write these down elsewhere from time to time: a later :meth:`verify` plus a matching head
        proves nobody rewrote a chain wholesale.
        """
        return chains.chain_heads(self.db.conn)

    @_guarded
    def verify(self) -> list[str]:
        """Check the whole registry; return one sentence per problem (empty list: all good).

        Runs ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``, recomputes the audit and
        event hash chains (every row's content hash and its link to the previous row), checks the
        purge checkpoint, deleted newest rows, that every redacted event is covered by an audited
        erasure, that the append-only triggers are in place and that at most one model is active.
        Then compares the heads journal (:attr:`journal_path`) with the database: recorded heads
        deleted or rewritten since (the newest rows, which the chains alone cannot vouch for), a
        missing journal, failed journal writes.  Reads consistent snapshots; writers are not
        blocked.  See :mod:`core.registry.chains` and :mod:`core.registry.journal`.
        """
        problems = chains.verify_registry(self.db.conn)
        return problems + journal.verify_journal(self.db.conn, self.journal_path, db_path=self.path)
