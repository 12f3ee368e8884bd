"""Backup and restore of the whole registry with SQLite's backup API, never a file copy.

A backup is written to a temporary file, checked and renamed into place; a restore keeps the
current content beside the live file first and copies the backup *into* the live database, so
other FaceGate processes see the restored content without anything being swapped under them.
A restore never undoes an erasure: the erasure ledger is read first and re-applied to the restored
content before the live file sees it (:mod:`core.registry.erasure`), and a backup of another
registry is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from core.errors import RegistryError
from core.registry.connection import RegistryBase, _check_header, _guarded
from core.registry.erasure import ErasureMixin
from core.registry.schema import MIGRATIONS
from core.registry.sql import _iso


class BackupMixin(RegistryBase):
    """Backing up and restoring the registry file (part of :class:`~core.registry.Registry`)."""

    @_guarded
    def backup(self, dest: Path | str, *, overwrite: bool = False, actor: str = "backup") -> Path:
        """Copy the whole registry to ``dest`` with SQLite's backup API, then check the copy.

        The copy is written to a temporary file next to ``dest``, checked with
        ``PRAGMA integrity_check``, switched to a single self-contained file (no WAL) and renamed
        into place, so ``dest`` is either the previous file or a complete, checked backup.  Audited.

        Raises
        ------
        RegistryError
            If ``dest`` exists (and not ``overwrite``), is this registry, or the copy fails its check.
        """
        dest = Path(dest).expanduser()
        if dest.exists() and dest.resolve() == self.path.resolve():
            raise RegistryError(f"{dest} is the live database; back it up to another file.")
        if dest.exists() and not overwrite:
            raise RegistryError(f"{dest} already exists; choose another name or allow overwriting.")
        self._copy_to(dest)
        with self.transaction():
            self._append_audit(actor, "backup", str(dest), None, {"bytes": dest.stat().st_size})
        return dest

    def _copy_to(self, dest: Path) -> None:
        if self.db.conn.in_transaction:
            raise RegistryError("A backup cannot be taken inside a transaction.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        try:
            # A backup holds the same photos and embeddings: readable by its owner only.
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            target = sqlite3.connect(str(tmp))
            try:
                self.db.conn.backup(target)
                target.execute("PRAGMA journal_mode = DELETE").fetchall()
                check = [r[0] for r in target.execute("PRAGMA integrity_check").fetchall()]
            finally:
                target.close()
            if check != ["ok"]:
                raise RegistryError(f"The backup copy failed its integrity check ({'; '.join(check[:3])}); "
                                    f"{dest} was not written. Run `facegate verify` on the live database.")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            with contextlib.suppress(OSError):  # make the rename itself durable
                dir_fd = os.open(dest.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
                leftover.unlink(missing_ok=True)

    @_guarded
    def restore(self, src: Path | str, *, actor: str = "restore") -> Path:
        """Replace the registry's content with a backup; the current content is kept beside it.

        ``src`` must be a FaceGate database (no newer schema) of *this* registry (same ``registry.id``
        setting; a backup made before registries had one is taken as this registry's) that passes
        ``PRAGMA integrity_check``.  The current content is first backed up to
        ``<name>.<UTC time>.before-restore`` next to the live file.  The backup is then copied into a
        staging file, migrated to the current schema if older, and made to honour everything that
        must outlive a restore (below); only then is it copied *into* the live database with
        SQLite's backup API, in one step (other FaceGate processes that have it open see the
        restored content, nothing is swapped under them), and a ``restore`` audit row is appended.

        Erasures are not undone.  Every erasure in the current erasure ledger that the backup does
        not know of is applied again: an operator row the backup still holds is erased (photos,
        embeddings, events redacted; audited as ``remove_operator`` by ``actor`` with the employee
        id as object and no name or department) and the ledger row is carried over.  Model versions
        whose files were deleted since the backup for an erasure are marked so; the caller then
        runs :func:`core.registry.pruning.prune_erased` for the model folders.  The registry's
        ``registry.id`` and the highest operator row id handed out are kept, so a row id in the
        ledger never names anybody else.  The ``restore`` audit row records ``erasures_reapplied``
        (people erased again), ``erasures_carried_over`` (ledger rows added) and
        ``model_versions_pruned``.

        Returns
        -------
        Path
            Where the previous content was kept.

        Raises
        ------
        RegistryError
            If ``src`` is missing, the live file, not a FaceGate database, damaged, of a newer
            FaceGate or of another registry; nothing was restored then.
        """
        src = Path(src).expanduser()
        if not src.is_file():
            raise RegistryError(f"There is no backup file {src}.")
        if src.resolve() == self.path.resolve():
            raise RegistryError(f"{src} is the live database itself; restore from a backup file.")
        _check_header(src)
        try:
            source = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True, timeout=self._timeout)
        except sqlite3.Error as exc:
            raise RegistryError(f"Cannot open the backup {src} ({exc}).") from exc
        # What must outlive the restore, read before anything changes.
        reg = self
        assert isinstance(reg, ErasureMixin)  # Registry has both; the staging file is opened as one too
        ours = _registry_id(self.db.conn)
        ledger = reg.erasure_ledger()
        pruned_versions = reg._pruned_versions()
        operator_rows = _sequence(self.db.conn, "operators")
        try:
            try:
                if not self._check_ownership(source, src):
                    raise RegistryError(f"{src} is not a FaceGate database (it has no FaceGate schema "
                                        "record); nothing was restored.")
                check = [r[0] for r in source.execute("PRAGMA integrity_check").fetchall()]
                theirs = _registry_id(source)
            except sqlite3.DatabaseError as exc:
                raise RegistryError(f"{src} is not a usable FaceGate database (SQLite says \"{exc}\"); "
                                    "nothing was restored.") from exc
            if check != ["ok"]:
                raise RegistryError(f"The backup {src} is damaged ({'; '.join(check[:3])}); nothing was "
                                    "restored.")
            if theirs is not None and ours is not None and theirs != ours:
                raise RegistryError(f"{src} is a backup of another registry ({theirs}), not of this one "
                                    f"({ours}); nothing was restored.")
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            kept = self.path.with_name(f"{self.path.name}.{stamp}.before-restore")
            self._copy_to(kept)
            staging = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.restoring")
            try:
                os.close(os.open(staging, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                target = sqlite3.connect(str(staging))
                try:
                    source.backup(target)
                finally:
                    target.close()
                # The staging copy is migrated and made to honour the erasures before the live file
                # sees it, so no crash can leave an erased person restored.
                staged = type(self).open(staging, timeout=self._timeout)
                try:
                    assert isinstance(staged, ErasureMixin)
                    # db.atomic(), not transaction(): the staging file's own chain heads must not reach
                    # the heads journal; the live file's restore marker records the heads that count.
                    with staged.db.atomic():
                        # Keep this registry's id: a backup made before registries had one got a
                        # random one from its migration just now.
                        if ours is not None:
                            staged.db.conn.execute(
                                "INSERT INTO settings (key, value, updated) VALUES (?, ?, ?) "
                                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                [_REGISTRY_ID, json.dumps(ours), _iso()])
                        again, carried = staged._reapply_erasures(ledger, actor=actor, source=str(src))
                        pruned = staged._carry_over_pruned(pruned_versions)
                        _raise_sequence(staged.db.conn, "operators", operator_rows)
                    staged.db.conn.backup(self.db.conn)
                finally:
                    staged.close()
            except sqlite3.DatabaseError as exc:
                raise RegistryError(f"Could not copy {src} into {self.path} ({exc}); the previous content "
                                    f"is safe in {kept}.") from exc
            finally:
                for end in ("", "-wal", "-shm", "-journal"):
                    staging.with_name(staging.name + end).unlink(missing_ok=True)
        finally:
            source.close()
        if MIGRATIONS.pending(self.db):
            with self.transaction():
                MIGRATIONS.apply(self.db)
        with self.transaction():
            self._append_audit(actor, "restore", str(src), None, {
                "previous_kept_as": str(kept), "erasures_reapplied": again, "erasures_carried_over": carried,
                "model_versions_pruned": pruned})
        self._checkpoint()
        self._journal_restore()  # the heads journal compares only what was written after this restore
        return kept


_REGISTRY_ID = "registry.id"


def _registry_id(conn: sqlite3.Connection) -> str | None:
    """The ``registry.id`` setting of a FaceGate database, or ``None`` (made before registries had one)."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", [_REGISTRY_ID]).fetchone()
    return None if row is None else str(json.loads(row[0]))


def _sequence(conn: sqlite3.Connection, table: str) -> int:
    """The highest row id AUTOINCREMENT ever handed out in ``table``."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", [table]).fetchone()
    return 0 if row is None else int(row[0])


def _raise_sequence(conn: sqlite3.Connection, table: str, at_least: int) -> None:
    """Make AUTOINCREMENT in ``table`` continue after ``at_least``: restored content must not reuse a row id
    the replaced content handed out (the erasure ledger names operators by row id)."""
    if _sequence(conn, table) >= at_least:
        return
    if not conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", [at_least, table]).rowcount:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", [table, at_least])
