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

Tamper evidence
---------------
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

:meth:`Registry.verify` recomputes both chains and reports, in plain sentences, any event or audit
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

Schema changes
--------------
Tables, indexes and triggers are created by the migrations in :data:`MIGRATIONS` (sqlite-utils
``Migrations("facegate")``), applied on open under the write lock.  Never edit an applied migration:
add a new ``@MIGRATIONS(name="0002_…")`` function.  :attr:`Registry.schema_version` counts the
applied ones; a file with migrations this code does not know is refused as "newer".
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import sleep
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import numpy as np
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from core.errors import EnrollmentError

log = logging.getLogger(__name__)

DB_NAME = "facegate.db"
"""File name of the registry inside :func:`data_dir`."""
DATA_DIR_ENV = "FACEGATE_DATA_DIR"
"""Environment variable that overrides the data directory."""
BUSY_TIMEOUT_S = 10.0
"""How long a writer waits for another writer before giving up with a :class:`RegistryError`."""
GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first row of each chain."""
MODEL_STATUSES = ("candidate", "active", "retired", "rolled_back", "rejected")
"""``candidate``: trained, never active; ``active``: live; ``retired``: replaced by a newer
activation; ``rolled_back``: replaced by a rollback (skipped by later rollbacks); ``rejected``:
failed its checks, can never be activated."""
RESERVED_AUDIT_ACTIONS = frozenset({
    "add_operator", "set_active", "remove_operator", "add_photo", "add_model_version",
    "activate_model", "rollback_model", "purge", "set_setting", "backup", "restore",
})
"""Actions only the registry itself writes; :meth:`Registry.audit` refuses them."""
SECRET_SETTING_PREFIX = "security."
"""Settings under this prefix are secrets: their values never appear in the audit log."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
_EVENT_DOMAIN = b"facegate/events/v1\x00"
_PERSONAL_DOMAIN = b"facegate/events/personal/v1\x00"
_AUDIT_DOMAIN = b"facegate/audit/v1\x00"
_DECISION_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_EVENT_COLS = "id, time, camera, decision, distance, model_version, personal_digest, prev_hash"
_AUDIT_COLS = "id, time, actor, action, object, old, new, prev_hash"
_GUARD_TRIGGERS = (
    "audit_no_update", "audit_no_delete", "events_public_fixed", "events_redact_only",
    "events_delete_purged_only",
)


class RegistryError(EnrollmentError):
    """The registry refused an operation or its file cannot be used; the message says why."""


# --------------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Operator:
    """One enrolled person.  ``photos`` and ``embeddings`` are counts."""

    id: int
    employee_id: str
    name: str
    department: str
    active: bool
    created: datetime
    photos: int = 0
    embeddings: int = 0


@dataclass(frozen=True)
class Photo:
    """Metadata of one enrolled photo (the image bytes come from :meth:`Registry.photo_bytes`)."""

    id: int
    operator_id: int
    sha256: str
    source: str
    captured_at: datetime | None
    quality: dict[str, Any] = field(hash=False)
    created: datetime


@dataclass(frozen=True)
class NewEvent:
    """One recognition event to record (input of :meth:`Registry.record_events`).

    ``decision`` is a short lower-case code (``granted``, ``denied``, ``unknown``, ``gallery-only``
    …), never a name: the person is ``operator`` (row id or employee id, ``None`` for a stranger).
    ``probabilities`` is JSON-able, e.g. ``{"svc": {"E1001": 0.97, …}, …}``; ``reason`` is the
    free-text explanation.  Both are redacted together with the operator link on erasure.
    ``time`` defaults to now; a naive datetime is taken as local time.
    """

    camera: str
    decision: str
    operator: int | str | None
    probabilities: Mapping[str, Any] = field(hash=False)
    distance: float | None
    thumbnail_jpeg: bytes | None
    model_version: str
    reason: str = ""
    time: datetime | None = None


@dataclass(frozen=True)
class Event:
    """One recorded recognition event.

    ``employee_id`` and ``name`` are looked up from the operator row at read time (``None`` for a
    stranger and after erasure).  ``erased`` is true once the person was erased: then
    ``probabilities`` and ``reason`` are ``None`` and there is no thumbnail.
    """

    id: int
    time: datetime
    camera: str
    decision: str
    operator_id: int | None
    employee_id: str | None
    name: str | None
    probabilities: dict[str, Any] | None = field(hash=False)
    reason: str | None
    distance: float | None
    model_version: str
    has_thumbnail: bool
    erased: bool


@dataclass(frozen=True)
class AuditEntry:
    """One audit row: ``actor`` did ``action`` to ``object``, changing ``old`` into ``new``."""

    id: int
    time: datetime
    actor: str
    action: str
    object: str
    old: Any = field(hash=False)
    new: Any = field(hash=False)


@dataclass(frozen=True)
class ModelVersion:
    """One trained model version; ``path`` is the artifact the trainer wrote."""

    id: int
    created: datetime
    path: str
    embedder: str
    embedder_version: str
    metrics: dict[str, Any] = field(hash=False)
    active: bool
    status: str
    activated_at: datetime | None
    notes: str


@dataclass(frozen=True)
class ErasureReport:
    """What :meth:`Registry.remove_operator` deleted or redacted."""

    employee_id: str
    photos: int
    embeddings: int
    events_redacted: int


# ----------------------------------------------------------------------------------------- schema

MIGRATIONS = Migrations("facegate")


@MIGRATIONS(name="0001_initial")
def _m0001_initial(db: Database) -> None:
    for sql in _SCHEMA_0001:
        db.execute(sql)


_SCHEMA_0001 = (
    """CREATE TABLE operators (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        employee_id TEXT NOT NULL UNIQUE CHECK (length(trim(employee_id)) > 0),
        name TEXT NOT NULL,
        department TEXT NOT NULL DEFAULT '',
        active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        created TEXT NOT NULL
    )""",
    """CREATE TABLE photos (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        operator_id INTEGER NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        image BLOB NOT NULL,
        source TEXT NOT NULL,
        captured_at TEXT,
        quality TEXT NOT NULL DEFAULT '{}',
        created TEXT NOT NULL,
        UNIQUE (operator_id, sha256)
    )""",
    "CREATE INDEX photos_sha256 ON photos(sha256)",
    """CREATE TABLE embeddings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        operator_id INTEGER NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
        vector BLOB NOT NULL,
        dim INTEGER NOT NULL CHECK (dim > 0 AND length(vector) = 4 * dim),
        embedder TEXT NOT NULL,
        embedder_version TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (photo_id, embedder, embedder_version)
    )""",
    "CREATE INDEX embeddings_operator ON embeddings(operator_id)",
    "CREATE INDEX embeddings_version ON embeddings(embedder_version, embedder)",
    """CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created TEXT NOT NULL,
        path TEXT NOT NULL,
        embedder TEXT NOT NULL,
        embedder_version TEXT NOT NULL,
        metrics TEXT NOT NULL DEFAULT '{}',
        active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
        status TEXT NOT NULL
            CHECK (status IN ('candidate', 'active', 'retired', 'rolled_back', 'rejected')),
        activated_at TEXT,
        activation_seq INTEGER,
        notes TEXT NOT NULL DEFAULT ''
    )""",
    # At most one active model, enforced by the database itself.
    "CREATE UNIQUE INDEX model_versions_one_active ON model_versions(active) WHERE active = 1",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        camera TEXT NOT NULL,
        decision TEXT NOT NULL,
        distance REAL,
        model_version TEXT NOT NULL,
        operator_id INTEGER REFERENCES operators(id) ON DELETE SET NULL,
        probabilities TEXT,
        reason TEXT,
        thumbnail BLOB,
        salt BLOB,
        personal_digest TEXT NOT NULL,
        redacted INTEGER NOT NULL DEFAULT 0 CHECK (redacted IN (0, 1)),
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX events_time ON events(time)",
    "CREATE INDEX events_operator ON events(operator_id)",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        old TEXT,
        new TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX audit_action ON audit(action, object)",
    """CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated TEXT NOT NULL
    )""",
    # Append-only guards.  They stop accidents and casual edits; verify() catches the rest.
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
       BEGIN SELECT RAISE(ABORT, 'FaceGate audit rows are append-only'); END""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
       BEGIN SELECT RAISE(ABORT, 'FaceGate audit rows are append-only'); END""",
    """CREATE TRIGGER events_public_fixed
       BEFORE UPDATE OF id, time, camera, decision, distance, model_version, personal_digest,
                        prev_hash, hash ON events
       BEGIN SELECT RAISE(ABORT, 'FaceGate events are append-only'); END""",
    """CREATE TRIGGER events_redact_only
       BEFORE UPDATE OF operator_id, probabilities, reason, thumbnail, salt, redacted ON events
       WHEN NOT (NEW.redacted = 1 AND NEW.operator_id IS NULL AND NEW.probabilities IS NULL
                 AND NEW.reason IS NULL AND NEW.thumbnail IS NULL AND NEW.salt IS NULL)
       BEGIN SELECT RAISE(ABORT,
           'FaceGate events can only be redacted as a whole; erase operators with remove_operator');
       END""",
    """CREATE TRIGGER events_delete_purged_only BEFORE DELETE ON events
       WHEN OLD.id > coalesce((SELECT max(CAST(json_extract(new, '$.through_id') AS INTEGER))
                               FROM audit WHERE action = 'purge' AND object = 'events'), 0)
       BEGIN SELECT RAISE(ABORT, 'FaceGate events can only be deleted by an audited purge'); END""",
)



def _known_migrations() -> tuple[str, ...]:
    with contextlib.closing(Database(memory=True, execute_plugins=False)) as empty:
        return tuple(m.name for m in MIGRATIONS.pending(empty))


_KNOWN_MIGRATIONS = frozenset(_known_migrations())
SCHEMA_VERSION = len(_KNOWN_MIGRATIONS)
"""Schema version this code writes: the number of FaceGate migrations it knows."""


# ---------------------------------------------------------------------------------------- helpers


def data_dir() -> Path:
    """Return FaceGate's data directory, creating it if missing.

    ``$FACEGATE_DATA_DIR`` if set, else the platform's user data directory
    (``platformdirs.user_data_dir("facegate")``, e.g. ``~/.local/share/facegate``).
    """
    from core.assets import user_dir

    return user_dir(DATA_DIR_ENV, "data")


def _iso(dt: datetime | None = None) -> str:
    """UTC timestamp in one fixed, lexicographically sortable format."""
    if dt is None:
        dt = datetime.now(UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _time(text: str) -> datetime:
    dt = _parse_time(text)
    assert dt is not None
    return dt


def _json(value: Any, what: str) -> str:
    """Canonical JSON (sorted keys, no whitespace, no NaN); a clear error for non-JSON values."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RegistryError(
            f"{what} must be plain JSON data (numbers, text, lists, dicts; no images, arrays or NaN): {exc}."
        ) from exc


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


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


def _finite_or_none(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    out = float(value)
    if not math.isfinite(out):
        raise RegistryError(f"{what} must be a finite number or None, not {value!r}.")
    return out


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


def _where(conditions: Sequence[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """``WHERE a AND b`` and its parameters, from ``(sql, value)`` pairs whose value is not None."""
    kept = [(sql, value) for sql, value in conditions if value is not None]
    clause = "WHERE " + " AND ".join(sql for sql, _ in kept) if kept else ""
    return clause, [value for _, value in kept]


def _limit(limit: int | None) -> str:
    return "" if limit is None else f"LIMIT {int(limit)}"


def _missing(what: str, first: int, last: int) -> str:
    if first == last:
        return f"{what} {first} is missing (deleted outside FaceGate)"
    return f"{what}s {first} to {last} are missing (deleted outside FaceGate)"


P = ParamSpec("P")
R = TypeVar("R")


def _guarded(fn: Callable[Concatenate[Registry, P], R]) -> Callable[Concatenate[Registry, P], R]:
    """Turn SQLite's exceptions into a :class:`RegistryError` with a sentence a person can act on."""

    @functools.wraps(fn)
    def wrapper(self: Registry, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._closed:
            raise RegistryError(f"The registry {self.path} has been closed; open it again.")
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from exc

    return wrapper


# --------------------------------------------------------------------------------------- registry


class Registry:
    """FaceGate's registry on one SQLite file.  Open it with :meth:`Registry.open`.

    One ``Registry`` per thread (its connection refuses other threads); any number of them, in any
    number of processes, may share the file.  Use it as a context manager, or call :meth:`close`.

    Methods that change something and are worth accounting for take a keyword-only ``actor`` (who
    did it, e.g. ``"hr:alice"``, ``"cli"``, ``"trainer"``) and write an audit row in the same
    transaction.  The registry does not check roles: callers check the HR passphrase with
    :func:`core.registry.security.require_hr` before enrollment, erasure, settings and model activation.
    All errors are :class:`RegistryError` (a :class:`~core.errors.EnrollmentError`).
    """

    def __init__(self, path: Path, db: Database, timeout: float = BUSY_TIMEOUT_S) -> None:
        """Wrap an open database; use :meth:`Registry.open` instead."""
        self.path = path
        self.db = db
        self._timeout = timeout
        self._closed = False

    # ------------------------------------------------------------------------- opening and closing

    @classmethod
    def open(cls, path: Path | str | None = None, *, timeout: float = BUSY_TIMEOUT_S) -> Registry:
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
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_header(path)
        try:
            conn = sqlite3.connect(str(path), timeout=timeout)
        except sqlite3.Error as exc:
            raise RegistryError(f"Cannot open the FaceGate database {path} ({exc}); check the path "
                                "and its permissions.") from exc
        db = Database(conn, execute_plugins=False)
        reg = cls(path, db, timeout)
        try:
            reg._setup()
        except sqlite3.DatabaseError as exc:
            db.close()
            err = reg._translate(exc, opening=True)
            raise err from exc
        except BaseException:
            db.close()
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Registry {self.path}{' (closed)' if self._closed else ''}>"

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
    def transaction(self) -> Iterator[Registry]:
        """Group several calls into one transaction: all of them are committed, or none.

        The write lock is taken at the start (``BEGIN IMMEDIATE``), so the block never fails half
        way because another process wrote in between.  Nested blocks become savepoints.  Keep
        blocks short: other writers wait for them (up to the busy timeout).

        Examples
        --------
        >>> with reg.transaction():
        ...     for emp, name in people:
        ...         reg.add_operator(emp, name, actor="import")
        """
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from exc
        try:
            with self.db.atomic():  # a savepoint inside the immediate transaction
                yield self
        except BaseException:
            self.db.rollback()
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self.db.rollback()
            raise self._translate(exc) from exc

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        cur = self.db.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, tuple(params)).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

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
        prev_id, prev_hash = self._audit_head()
        row = [prev_id + 1, _iso(), actor, str(action), str(obj), old_j, new_j, prev_hash]
        digest = _audit_hash(row)
        self.db.conn.execute(
            f"INSERT INTO audit ({_AUDIT_COLS}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [*row, digest])
        return prev_id + 1

    def _audit_head(self) -> tuple[int, str]:
        seq = self._one("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")
        last = self._one("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        last_id = max(int(seq["seq"]) if seq else 0, int(last["id"]) if last else 0)
        return last_id, (str(last["hash"]) if last else GENESIS_HASH)

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

    # ---------------------------------------------------------------------------------- operators

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

    def _operator(self, row: sqlite3.Row) -> Operator:
        counts = self._one(
            "SELECT (SELECT count(*) FROM photos WHERE operator_id = ?) AS p, "
            "(SELECT count(*) FROM embeddings WHERE operator_id = ?) AS e", [row["id"], row["id"]])
        assert counts is not None
        return Operator(row["id"], row["employee_id"], row["name"], row["department"],
                        bool(row["active"]), _time(row["created"]), counts["p"], counts["e"])

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
        return self._operator(self._operator_row(op))

    @_guarded
    def list_operators(self, active_only: bool = False) -> list[Operator]:
        """All operators ordered by employee id, with their photo and embedding counts."""
        rows = self._rows(
            "SELECT o.*, (SELECT count(*) FROM photos p WHERE p.operator_id = o.id) AS n_photos, "
            "(SELECT count(*) FROM embeddings e WHERE e.operator_id = o.id) AS n_embeddings "
            f"FROM operators o {'WHERE o.active = 1' if active_only else ''} ORDER BY o.employee_id")
        return [Operator(r["id"], r["employee_id"], r["name"], r["department"], bool(r["active"]),
                         _time(r["created"]), r["n_photos"], r["n_embeddings"]) for r in rows]

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
            counts = self._one(
                "SELECT (SELECT count(*) FROM photos WHERE operator_id = ?) AS p, "
                "(SELECT count(*) FROM embeddings WHERE operator_id = ?) AS e", [op_id, op_id])
            assert counts is not None
            redacted = self.db.conn.execute(
                "UPDATE events SET operator_id = NULL, probabilities = NULL, reason = NULL, "
                "thumbnail = NULL, salt = NULL, redacted = 1 WHERE operator_id = ?", [op_id]).rowcount
            self.db.conn.execute("DELETE FROM operators WHERE id = ?", [op_id])  # cascades
            report = ErasureReport(row["employee_id"], counts["p"], counts["e"], redacted)
            self._append_audit(
                actor, "remove_operator", row["employee_id"],
                {"employee_id": row["employee_id"], "name": row["name"], "department": row["department"]},
                {"photos": report.photos, "embeddings": report.embeddings, "events_redacted": redacted})
        self._checkpoint()
        log.info("erased operator %s: %s", row["employee_id"], report)
        return report

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

    # ------------------------------------------------------------------------------------- events

    def _events_head(self) -> tuple[int, str]:
        """(last id ever used, hash the next event must chain to)."""
        last = self._one("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
        seq = self._one("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        last_id = max(int(seq["seq"]) if seq else 0, int(last["id"]) if last else 0)
        if last is not None:
            return last_id, str(last["hash"])
        checkpoint = self._purge_checkpoint()
        return last_id, (checkpoint[1] if checkpoint else GENESIS_HASH)

    def _purge_checkpoint(self) -> tuple[int, str] | None:
        row = self._one("SELECT new FROM audit WHERE action = 'purge' AND object = 'events' "
                        "ORDER BY id DESC LIMIT 1")
        if row is None:
            return None
        new = json.loads(row["new"])
        return int(new["through_id"]), str(new["through_hash"])

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
            Short lower-case code, e.g. ``granted``, ``denied``, ``unknown``, ``gallery-only``
            (letters, digits, ``-``, ``_``; at most 32).  Never a name: names live in the operator.
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
                    "or '_', at most 32, e.g. 'granted'); put names in the operator, details in reason.")
            prepared.append((
                _iso(ev.time), str(ev.camera), decision,
                _finite_or_none(ev.distance, "An event's distance"), str(ev.model_version),
                ev.operator, _json(dict(ev.probabilities), "Event probabilities"), str(ev.reason),
                bytes(ev.thumbnail_jpeg) if ev.thumbnail_jpeg is not None else None,
            ))
        ids: list[int] = []
        with self.transaction():
            last_id, prev = self._events_head()
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

    # ----------------------------------------------------------------------------- model versions

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
    def active_model(self) -> ModelVersion | None:
        """The active model version, or ``None`` if none was ever activated."""
        row = self._one("SELECT * FROM model_versions WHERE active = 1")
        return self._model(row) if row is not None else None

    @_guarded
    def gallery_state(self) -> tuple[int | None, int, int, int]:
        """A cheap fingerprint of what recognition depends on.

        ``(active model id, embeddings, largest embedding id, active operators)``: it changes when a
        model is activated or rolled back, and when people are enrolled, erased, suspended or
        reinstated, so a running monitor can poll it and reload only when something changed.
        """
        row = self._one(
            "SELECT (SELECT id FROM model_versions WHERE active = 1) AS model, "
            "(SELECT count(*) FROM embeddings) AS n, (SELECT coalesce(max(id), 0) FROM embeddings) AS last, "
            "(SELECT count(*) FROM operators WHERE active = 1) AS people")
        assert row is not None
        return (None if row["model"] is None else int(row["model"]), int(row["n"]), int(row["last"]),
                int(row["people"]))

    @_guarded
    def list_models(self) -> list[ModelVersion]:
        """All model versions, oldest first."""
        return [self._model(r) for r in self._rows("SELECT * FROM model_versions ORDER BY id")]

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
            raise RegistryError(f"Setting {key!r} is a secret; change it through core.security.")
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

    # ---------------------------------------------------------------------------- backup, restore

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

    # ------------------------------------------------------------------------------------- verify

    @_guarded
    def chain_heads(self) -> dict[str, tuple[int, str]]:
        """``{"events": (id, hash), "audit": (id, hash)}`` of the newest row of each chain.

        Write these down elsewhere from time to time: a later :meth:`verify` plus a matching head
        proves nobody rewrote a chain wholesale.
        """
        out = {}
        for table in ("events", "audit"):
            row = self._one(f"SELECT id, hash FROM {table} ORDER BY id DESC LIMIT 1")
            out[table] = (int(row["id"]), str(row["hash"])) if row else (0, GENESIS_HASH)
        return out

    @_guarded
    def verify(self) -> list[str]:
        """Check the whole registry; return one sentence per problem (empty list: all good).

        Runs ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``, recomputes the audit and
        event hash chains (every row's content hash and its link to the previous row), checks the
        purge checkpoint, deleted newest rows, that every redacted event is covered by an audited
        erasure, that the append-only triggers are in place and that at most one model is active.
        Reads one consistent snapshot; writers are not blocked.
        """
        problems: list[str] = []
        conn = self.db.conn
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
            audit_ok = self._verify_audit(problems)
            self._verify_events(problems, audit_ok)
        except sqlite3.DatabaseError as exc:
            problems.append(f"SQLite could not read the database (\"{exc}\"): the file is damaged; restore a "
                            "backup with `facegate restore FILE`.")
        except (KeyError, TypeError, ValueError) as exc:  # e.g. an unreadable purge checkpoint
            problems.append(f"The audit trail holds an unreadable purge checkpoint ({exc!r}).")
        finally:
            if own_snapshot:
                conn.execute("ROLLBACK")
        return problems

    def _seq(self, table: str) -> int:
        row = self._one("SELECT seq FROM sqlite_sequence WHERE name = ?", [table])
        return int(row["seq"]) if row else 0

    def _verify_audit(self, problems: list[str]) -> bool:
        before = len(problems)
        prev_hash, prev_id = GENESIS_HASH, 0
        cur = self.db.conn.execute(f"SELECT {_AUDIT_COLS}, hash FROM audit ORDER BY id")
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
        if self._seq("audit") > prev_id:
            problems.append(f"The newest audit rows after row {prev_id} were deleted "
                            f"(rows up to {self._seq('audit')} once existed).")
        return len(problems) == before

    def _verify_events(self, problems: list[str], audit_ok: bool) -> None:
        conn = self.db.conn
        checkpoint = self._purge_checkpoint()
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
        seq = self._seq("events")
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
