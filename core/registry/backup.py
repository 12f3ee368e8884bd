"""Backup and restore of the whole registry with SQLite's backup API, never a file copy.

A backup is written to a temporary file, checked and renamed into place; a restore keeps the
current content beside the live file first and copies the backup *into* the live database, so
other FaceGate processes see the restored content without anything being swapped under them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from core.errors import RegistryError
from core.registry.connection import RegistryBase, _check_header, _guarded
from core.registry.schema import MIGRATIONS


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

        ``src`` must be a FaceGate database (no newer schema) that passes ``PRAGMA integrity_check``.
        The current content is first backed up to ``<name>.<UTC time>.before-restore`` next to the
        live file; then the backup is copied *into* the live database with SQLite's backup API (other
        FaceGate processes that have it open see the restored content, nothing is swapped under
        them), migrated to the current schema if older, and a ``restore`` audit row is appended.

        Returns
        -------
        Path
            Where the previous content was kept.
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
        try:
            try:
                if not self._check_ownership(source, src):
                    raise RegistryError(f"{src} is not a FaceGate database (it has no FaceGate schema "
                                        "record); nothing was restored.")
                check = [r[0] for r in source.execute("PRAGMA integrity_check").fetchall()]
            except sqlite3.DatabaseError as exc:
                raise RegistryError(f"{src} is not a usable FaceGate database (SQLite says \"{exc}\"); "
                                    "nothing was restored.") from exc
            if check != ["ok"]:
                raise RegistryError(f"The backup {src} is damaged ({'; '.join(check[:3])}); nothing was "
                                    "restored.")
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            kept = self.path.with_name(f"{self.path.name}.{stamp}.before-restore")
            self._copy_to(kept)
            try:
                source.backup(self.db.conn)
            except sqlite3.DatabaseError as exc:
                raise RegistryError(f"Could not copy {src} into {self.path} ({exc}); the previous content "
                                    f"is safe in {kept}.") from exc
        finally:
            source.close()
        if MIGRATIONS.pending(self.db):
            with self.transaction():
                MIGRATIONS.apply(self.db)
        with self.transaction():
            self._append_audit(actor, "restore", str(src), None, {"previous_kept_as": str(kept)})
        self._checkpoint()
        return kept
