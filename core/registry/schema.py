"""The registry's schema: its tables, indexes and append-only triggers, as migrations.

Schema changes
--------------
Tables, indexes and triggers are created by the migrations in :data:`MIGRATIONS` (sqlite-utils
``Migrations("facegate")``), applied on open under the write lock.  Never edit an applied migration:
add a new ``@MIGRATIONS(name="0002_…")`` function.  :attr:`Registry.schema_version` counts the
applied ones; a file with migrations this code does not know is refused as "newer".
"""

from __future__ import annotations

import contextlib

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

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


@MIGRATIONS(name="0002_event_browsing")
def _m0002_event_browsing(db: Database) -> None:
    for sql in _SCHEMA_0002:
        db.execute(sql)


# Narrow indexes for browsing the event log newest first under a filter (core.registry.event_query):
# event rows carry a thumbnail each, so a filter must be tested in an index, never on the table.  The
# leading ``id`` lets a page walk the index in id order and stop after one page of matches.
_SCHEMA_0002 = (
    "CREATE INDEX events_scan ON events(id, camera, decision, operator_id, time)",
    # Flagged events (the live monitor writes 'FLAGGED:' into the reason); erasure clears the reason.
    """CREATE INDEX events_flagged ON events(id, camera, decision, operator_id, time)
       WHERE instr(reason, 'FLAGGED:') > 0""",
    "CREATE INDEX events_camera ON events(camera)",
)


@MIGRATIONS(name="0003_security")
def _m0003_security(db: Database) -> None:
    for sql in _SCHEMA_0003:
        db.execute(sql)
    # The registry's identity: backups and trust anchors name it, so a restore or an anchor cannot be
    # mixed up with another site's registry.  Random, no personal data.
    import uuid
    from datetime import UTC, datetime

    db.execute("INSERT OR IGNORE INTO settings (key, value, updated) VALUES ('registry.id', ?, ?)",
               [f'"{uuid.uuid4()}"', datetime.now(UTC).isoformat(timespec="microseconds")])


# Named HR and admin accounts (core.registry.accounts), HR-signed snapshots of everything that decides
# who is let in (core.registry.signing), the erasure ledger (core.registry.erasure).
_SCHEMA_0003 = (
    """CREATE TABLE accounts (
        name TEXT PRIMARY KEY CHECK (length(trim(name)) > 0),
        role TEXT NOT NULL CHECK (role IN ('hr', 'admin')),
        record TEXT NOT NULL,
        created TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
    )""",
    # Failed logins, for the progressive delay and the lockout.  Not signed (the guard's process
    # records them); deleting rows here only resets a delay, it grants nothing.
    """CREATE TABLE account_failures (
        name TEXT PRIMARY KEY,
        failures INTEGER NOT NULL DEFAULT 0,
        last_failure TEXT,
        locked_until TEXT
    )""",
    """CREATE TABLE signatures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        signer TEXT NOT NULL,
        manifest TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
    """CREATE TRIGGER signatures_no_update BEFORE UPDATE ON signatures
       BEGIN SELECT RAISE(ABORT, 'FaceGate signatures are append-only'); END""",
    """CREATE TRIGGER signatures_no_delete BEFORE DELETE ON signatures
       BEGIN SELECT RAISE(ABORT, 'FaceGate signatures are append-only'); END""",
    # One row per erasure, with no personal data: the operator's row id (never reused) and counts.
    """CREATE TABLE erasures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        operator_row INTEGER NOT NULL,
        models_pruned TEXT NOT NULL DEFAULT '[]'
    )""",
)


@MIGRATIONS(name="0004_augmented_embeddings")
def _m0004_augmented_embeddings(db: Database) -> None:
    # Issue 12: each photo of a person enrolled with few photos is also embedded in small variations
    # (core.recognition.augment), once, at enrollment; the classifiers train on them, the gallery not.
    db.execute("""CREATE TABLE augmented_embeddings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        operator_id INTEGER NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
        variant INTEGER NOT NULL CHECK (variant >= 0),
        vector BLOB NOT NULL,
        dim INTEGER NOT NULL CHECK (dim > 0 AND length(vector) = 4 * dim),
        embedder TEXT NOT NULL,
        embedder_version TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (photo_id, variant, embedder, embedder_version)
    )""")
    db.execute("CREATE INDEX augmented_photo ON augmented_embeddings(photo_id)")


def _known_migrations() -> tuple[str, ...]:
    with contextlib.closing(Database(memory=True, execute_plugins=False)) as empty:
        return tuple(m.name for m in MIGRATIONS.pending(empty))


_KNOWN_MIGRATIONS = frozenset(_known_migrations())
SCHEMA_VERSION = len(_KNOWN_MIGRATIONS)
"""Schema version this code writes: the number of FaceGate migrations it knows."""
_GUARD_TRIGGERS = (
    "audit_no_update", "audit_no_delete", "events_public_fixed", "events_redact_only",
    "events_delete_purged_only", "signatures_no_update", "signatures_no_delete",
)
"""Triggers that keep events and audit rows append-only; :func:`~core.registry.chains.verify_registry`
reports any that were dropped."""
