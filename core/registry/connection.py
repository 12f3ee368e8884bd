"""Opening the registry file and talking to SQLite: the base every part of the registry builds on.

:class:`RegistryBase` owns the connection: it checks that a file is a FaceGate database before
SQLite touches it, sets the connection up (WAL, busy timeout, foreign keys, ``synchronous=FULL``,
``secure_delete``), applies pending migrations, turns SQLite's errors into sentences
(:func:`_guarded`), runs transactions and appends audit rows; after each commit that appended events
or audit rows it writes the new chain heads to the heads journal (:mod:`core.registry.journal`).
The concerns of the registry (operators and photos, events, model versions, erasure, backup) are
mixins on top of it, assembled into :class:`~core.registry.Registry` in :mod:`core.registry.store`.

Threads and processes
---------------------
One :class:`Registry` per thread: each owns one ``sqlite3`` connection (wrapped in one
``sqlite_utils.Database``), and the connection refuses to be used from another thread.  Any number
of processes and threads may open the same file at once.  The file is in WAL mode, so readers never
wait for writers; writers queue behind each other for up to :data:`BUSY_TIMEOUT_S` seconds.  Every
write takes the write lock at its start (``BEGIN IMMEDIATE``), so two writers never deadlock on a
lock upgrade.  :meth:`Registry.transaction` groups many calls into one commit (one ``fsync``), which
is how bulk imports stay fast.

Durability
----------
``synchronous=FULL``: once a method that writes returns, the change survives a power cut or a
``SIGKILL``.  Every multi-row change is one transaction (``Database.atomic()``), so a crash leaves
either all of it or none of it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from time import sleep
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from core.errors import RegistryError
from core.registry import journal
from core.registry.chains import _AUDIT_COLS, _audit_hash, _audit_head, chain_heads
from core.registry.records import Operator
from core.registry.schema import _KNOWN_MIGRATIONS, MIGRATIONS
from core.registry.sql import _fetch_all, _fetch_one, _iso, _json, _time

log = logging.getLogger(__name__)

DB_NAME = "facegate.db"
"""File name of the registry inside :func:`data_dir`."""
DATA_DIR_ENV = "FACEGATE_DATA_DIR"
"""Environment variable that overrides the data directory."""
BUSY_TIMEOUT_S = 10.0
"""How long a writer waits for another writer before giving up with a :class:`RegistryError`."""

_SQLITE_MAGIC = b"SQLite format 3\x00"


def data_dir() -> Path:
    """Return FaceGate's data directory, creating it if missing.

    ``$FACEGATE_DATA_DIR`` if set, else the platform's user data directory
    (``platformdirs.user_data_dir("facegate")``, e.g. ``~/.local/share/facegate``).
    """
    from core.assets import user_dir

    return user_dir(DATA_DIR_ENV, "data")


# Files this process has SQLite connections to, by resolved path.  SQLite coordinates processes with
# POSIX advisory locks, and closing *any* descriptor of the database file drops every such lock this
# process holds on it; another process closing its last connection then thinks it is the last user
# and deletes the WAL and shared-memory files under our live connections ("disk I/O error" on every
# later open).  So the raw header read below happens only while this process has no connection to
# the file yet.
_open_counts: dict[str, int] = {}
_open_lock = threading.Lock()


def make_private(path: Path, mode: int) -> None:
    """Tighten ``path`` to ``mode`` (0700 for the data folder, 0600 for its files) if it is looser.

    The registry holds photos, embeddings and the HR passphrase's hash: no other local account may
    read it.  Logged as a warning when permissions were tightened; POSIX only.
    """
    if os.name != "posix":
        return
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not current & ~mode:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning("%s can be read by other accounts (mode %o) and could not be made private: %s", path,
                    current, exc)
        return
    log.warning("%s could be read by other accounts (mode %o); made it private (%o)", path, current, mode)


def _private_folder(folder: Path) -> None:
    """Make the data folder 0700 when it is FaceGate's own: owned by us, not sticky (``/tmp``), not the
    home folder, and holding nothing but the registry and its models (a shared folder someone pointed
    ``--data-dir`` at is left alone, with a warning)."""
    if os.name != "posix":
        return
    try:
        info = folder.stat()
        entries = {p.name for p in folder.iterdir()}
    except OSError:
        return
    own = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", "models", "backups", journal.JOURNAL_NAME}
    ours = (info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX
            and folder.resolve() != Path.home().resolve()
            and all(name in own or name.startswith((f".{DB_NAME}", f"{DB_NAME}.")) for name in entries))
    if ours:
        make_private(folder, 0o700)
    elif stat.S_IMODE(info.st_mode) & 0o077:
        log.warning("the data folder %s can be listed by other accounts and holds other files: keep the registry "
                    "in a folder of its own (--data-dir)", folder)


def _check_header(path: Path) -> None:
    """Refuse files that are not SQLite, or SQLite files cut short, before SQLite touches them."""
    for attempt in range(3):
        problem = _header_problem(path)
        if problem is None:
            return
        # Another process may be creating or checkpointing the file between our reads: look again
        # before calling a healthy file damaged.
        sleep(0.05 * (attempt + 1))
    raise RegistryError(problem)


def _header_problem(path: Path) -> str | None:
    wal = path.with_name(path.name + "-wal")
    try:
        wal_pending = wal.exists() and wal.stat().st_size > 0
        with open(path, "rb") as fh:
            head = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None  # SQLite treats an empty file as a new, empty database
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        return (f"{path} is not a FaceGate database: it is not an SQLite database file at all (a text "
                "file, another format, or garbage). Point FaceGate at its own database file "
                f"(--data-dir or {DATA_DIR_ENV}); the file was not changed.")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return (f"{path} is not a usable FaceGate database: its header is damaged. Restore a backup "
                "with `facegate restore FILE`; the file was not changed.")
    pages = int.from_bytes(head[28:32], "big")
    # The in-header page count is only trustworthy when the two counters agree (SQLite file format,
    # "in-header database size") and no WAL may still hold pages not yet copied back.
    short = not wal_pending and head[24:28] == head[92:96] and pages and size < pages * page_size
    if size % page_size or short:
        return (f"{path} is not a usable FaceGate database: it is damaged (the file is shorter than "
                "SQLite wrote it, probably truncated by a failed copy or a full disk). Restore a backup "
                "with `facegate restore FILE`; the file was not changed.")
    return None


P = ParamSpec("P")
R = TypeVar("R")
B = TypeVar("B", bound="RegistryBase")


def _guarded(fn: Callable[Concatenate[B, P], R]) -> Callable[Concatenate[B, P], R]:
    """Turn SQLite's exceptions into a :class:`RegistryError` with a sentence a person can act on."""

    @functools.wraps(fn)
    def wrapper(self: B, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._closed:
            raise RegistryError(f"The registry {self.path} has been closed; open it again.")
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from exc

    return wrapper


class RegistryBase:
    """The connection to one registry file; :class:`~core.registry.Registry` is built on it.

    Holds what every concern of the registry shares: opening and closing, transactions, queries,
    the translation of SQLite's errors, the audit trail's writer and the operator lookups.
    """

    def __init__(self, path: Path, db: Database, timeout: float = BUSY_TIMEOUT_S) -> None:
        """Wrap an open database; use :meth:`Registry.open` instead."""
        self.path = path
        self.db = db
        self._timeout = timeout
        self._closed = False
        self._key: str | None = None
        # Chain heads appended by the open transaction, chain → (id, hash): journaled after its COMMIT.
        self._pending_heads: dict[str, tuple[int, str]] = {}

    # ------------------------------------------------------------------------- opening and closing

    @classmethod
    def open(cls, path: Path | str | None = None, *, timeout: float = BUSY_TIMEOUT_S) -> Self:
        """Open (creating and migrating if needed) the registry file.

        Parameters
        ----------
        path
            Database file; default ``data_dir() / "facegate.db"``.  Its folder is created if missing.
        timeout
            Seconds a write waits for another writer before failing (SQLite busy timeout).

        Returns
        -------
        Registry
            The open registry, schema up to date, in WAL mode with foreign keys on.

        Raises
        ------
        RegistryError
            If the file is not SQLite, is damaged, belongs to another program, was written by a
            newer FaceGate, or cannot be opened.  Such a file is not modified.
        """
        path = Path(path).expanduser() if path is not None else data_dir() / DB_NAME
        if path.is_dir():
            raise RegistryError(f"{path} is a folder, not a FaceGate database file.")
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private_folder(path.parent)
        key = str(path.resolve())
        with _open_lock:
            if not _open_counts.get(key):
                _check_header(path)  # no connection of ours to this file yet: a raw read is safe
                if not path.exists():  # created private, so not even the first write is readable by others
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                make_private(path, 0o600)
            try:
                conn = sqlite3.connect(str(path), timeout=timeout)
            except sqlite3.Error as exc:
                raise RegistryError(f"Cannot open the FaceGate database {path} ({exc}); check the path "
                                    "and its permissions.") from exc
            _open_counts[key] = _open_counts.get(key, 0) + 1
        db = Database(conn, execute_plugins=False)
        reg = cls(path, db, timeout)
        reg._key = key
        try:
            reg._setup()
            for suffix in ("-wal", "-shm"):  # SQLite gives these the database file's mode; older ones may differ
                make_private(path.with_name(path.name + suffix), 0o600)
        except sqlite3.DatabaseError as exc:
            reg.close()
            err = reg._translate(exc, opening=True)
            raise err from exc
        except BaseException:
            reg.close()
            raise
        return reg

    def _setup(self) -> None:
        conn = self.db.conn
        # Per-connection settings first: nothing here writes to the file.
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        # Erased photos and thumbnails are overwritten, not left in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        self._check_ownership()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            with self.db.ensure_autocommit_on():
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RegistryError(f"Could not switch {self.path} to WAL mode (SQLite kept {mode!r}); "
                                    "is it on a network or read-only file system?")
        if MIGRATIONS.pending(self.db):
            with self.transaction():
                MIGRATIONS.apply(self.db)  # recomputes what is pending under the write lock
                log.info("registry %s migrated to schema version %d", self.path, self.schema_version)

    def _check_ownership(self, db: sqlite3.Connection | None = None, path: Path | None = None) -> set[str]:
        """Refuse a foreign SQLite database, or one written by a newer FaceGate; return applied migrations."""
        conn = db if db is not None else self.db.conn
        path = path or self.path
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        applied: set[str] = set()
        if Migrations.migrations_table in tables:
            applied = {r[0] for r in conn.execute(
                f"SELECT name FROM {Migrations.migrations_table} WHERE migration_set = ?",
                (MIGRATIONS.name,))}
        others = tables - {Migrations.migrations_table}
        if others and not applied:
            shown = ", ".join(sorted(others)[:6]) + (", …" if len(others) > 6 else "")
            raise RegistryError(
                f"{path} is not a FaceGate database: it is an SQLite database of another program "
                f"(tables {shown}) with no FaceGate schema record. Point FaceGate at its own "
                f"database file (--data-dir or {DATA_DIR_ENV}); the file was not changed."
            )
        unknown = applied - _KNOWN_MIGRATIONS
        if unknown:
            raise RegistryError(
                f"{path} was written by a newer FaceGate (schema changes {', '.join(sorted(unknown))} "
                "are unknown to this version). Update FaceGate before using this database."
            )
        return applied

    def close(self) -> None:
        """Close the connection.  Safe to call twice."""
        if not self._closed:
            self._closed = True
            self.db.close()
            if self._key is not None:
                with _open_lock:
                    left = _open_counts.get(self._key, 0) - 1
                    if left > 0:
                        _open_counts[self._key] = left
                    else:
                        _open_counts.pop(self._key, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Registry {self.path}{' (closed)' if self._closed else ''}>"

    @property
    def journal_path(self) -> Path:
        """The heads journal of this registry (``$FACEGATE_HEADS_JOURNAL`` or beside the file).

        See :mod:`core.registry.journal`.
        """
        return journal.journal_path_for(self.path)

    @property
    def schema_version(self) -> int:
        """Number of FaceGate migrations applied to this file (equals :data:`SCHEMA_VERSION`)."""
        return len(MIGRATIONS.applied(self.db))

    def _translate(self, exc: sqlite3.DatabaseError, opening: bool = False) -> RegistryError:
        msg = str(exc)
        low = msg.lower()
        if "locked" in low or "busy" in low:
            return RegistryError(
                f"The FaceGate database {self.path} is busy: another FaceGate program kept it locked "
                f"for more than {self._timeout:g} s. Try again in a moment."
            )
        if "not a database" in low or "malformed" in low or "corrupt" in low or "encrypted" in low:
            return RegistryError(
                f"{self.path} is not a usable FaceGate database: SQLite says \"{msg}\". If it was "
                "FaceGate's, it is damaged: run `facegate verify` and restore a backup with "
                "`facegate restore FILE`."
            )
        if "readonly" in low or "read-only" in low:
            return RegistryError(f"The FaceGate database {self.path} is read-only ({msg}); check the "
                                 "file's permissions.")
        if "disk i/o" in low or "full" in low or "unable to open" in low:
            return RegistryError(f"Could not use the FaceGate database {self.path} ({msg}); check free "
                                 "disk space, permissions and the path.")
        if opening:
            return RegistryError(f"Could not open {self.path} as a FaceGate database: {msg}.")
        return RegistryError(f"The FaceGate database {self.path} refused the change: {msg}.")

    # -------------------------------------------------------------------------------- transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Self]:
        """Group several calls into one transaction: all of them are committed, or none.

        The write lock is taken at the start (``BEGIN IMMEDIATE``), so the block never fails half
        way because another process wrote in between.  Nested blocks become savepoints.  Keep
        blocks short: other writers wait for them (up to the busy timeout).

        After the outermost block commits, the newest event and audit heads it appended are written
        to the heads journal (:mod:`core.registry.journal`), one line per chain; a failed journal
        write is logged and counted, never raised (the commit already happened).

        Examples
        --------
        >>> with reg.transaction():
        ...     for emp, name in people:
        ...         reg.add_operator(emp, name, actor="import")
        """
        conn = self.db.conn
        if conn.in_transaction:
            noted = dict(self._pending_heads)
            try:
                with self.db.atomic():
                    yield self
            except BaseException:
                self._pending_heads = noted  # the savepoint was rolled back, and the heads it noted with it
                raise
            return
        # Heads noted outside a transaction() of ours belong to a commit we never saw: not ours to vouch for.
        self._pending_heads = {}
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from exc
        try:
            with self.db.atomic():  # a savepoint inside the immediate transaction
                yield self
        except BaseException:
            self._pending_heads = {}
            self.db.rollback()
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._pending_heads = {}
            self.db.rollback()
            raise self._translate(exc) from exc
        heads, self._pending_heads = self._pending_heads, {}
        if heads:
            journal.append_heads(self.journal_path, self.path, heads)

    def _note_head(self, chain: str, row_id: int, digest: str) -> None:
        """Remember the newest row of ``chain`` appended in the open transaction, for the journal."""
        self._pending_heads[chain] = (row_id, digest)

    def _journal_restore(self) -> None:
        """Append a restore marker to the heads journal: the lines before it describe replaced content.

        Call at the very end of a restore, after its ``restore`` audit row was committed.
        """
        row = self._one("SELECT id, hash FROM audit WHERE action = 'restore' ORDER BY id DESC LIMIT 1")
        if row is not None:
            journal.append_restore_marker(self.journal_path, self.path, (row["id"], row["hash"]),
                                          chain_heads(self.db.conn))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return _fetch_all(self.db.conn, sql, params)

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return _fetch_one(self.db.conn, sql, params)

    def _checkpoint(self) -> None:
        """Fold the WAL back into the file, so overwritten pages do not linger in the WAL."""
        if self.db.conn.in_transaction:
            return
        try:
            self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.DatabaseError as exc:  # best effort: a busy reader only delays it
            log.info("WAL checkpoint of %s postponed: %s", self.path, exc)

    # -------------------------------------------------------------------------------------- audit

    def _append_audit(self, actor: str, action: str, obj: str, old: Any, new: Any) -> int:
        """Append one audit row; call inside a transaction."""
        actor = str(actor).strip()
        if not actor:
            raise RegistryError("Every audited change needs an actor (who did it), e.g. 'hr:alice'.")
        old_j = None if old is None else _json(old, "The audit 'old' value")
        new_j = None if new is None else _json(new, "The audit 'new' value")
        prev_id, prev_hash = _audit_head(self.db.conn)
        row = [prev_id + 1, _iso(), actor, str(action), str(obj), old_j, new_j, prev_hash]
        digest = _audit_hash(row)
        self.db.conn.execute(
            f"INSERT INTO audit ({_AUDIT_COLS}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [*row, digest])
        self._note_head("audit", prev_id + 1, digest)
        return prev_id + 1

    # ------------------------------------------------------------------------ operator lookups

    def _operator_row(self, op: int | str) -> sqlite3.Row:
        if isinstance(op, bool) or not isinstance(op, (int, str)):
            raise RegistryError(f"An operator is named by its row id or employee id, not {op!r}.")
        if isinstance(op, int):
            row = self._one("SELECT * FROM operators WHERE id = ?", [op])
            what = f"row id {op}"
        else:
            row = self._one("SELECT * FROM operators WHERE employee_id = ?", [op.strip()])
            what = f"employee id {op!r}"
        if row is None:
            raise RegistryError(f"No operator with {what} is enrolled.")
        return row

    def _operators(self, where: str = "", params: Sequence[Any] = ()) -> list[Operator]:
        """Operators with their photo and embedding counts, by employee id: the one place that counts.

        ``where`` is a ``WHERE`` clause on the operators table ``o`` (e.g. ``"WHERE o.id = ?"``).
        """
        rows = self._rows(
            "SELECT o.*, (SELECT count(*) FROM photos p WHERE p.operator_id = o.id) AS n_photos, "
            "(SELECT count(*) FROM embeddings e WHERE e.operator_id = o.id) AS n_embeddings "
            f"FROM operators o {where} ORDER BY o.employee_id", params)
        return [Operator(r["id"], r["employee_id"], r["name"], r["department"], bool(r["active"]),
                         _time(r["created"]), r["n_photos"], r["n_embeddings"]) for r in rows]
