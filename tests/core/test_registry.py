"""The registry on real SQLite files: schema, CRUD, erasure, crash safety, concurrency, tampering,
bad files, backup/restore, model versions, retention and the HR passphrase.  No Qt, no models."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from core.registry import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    NewEvent,
    Registry,
    RegistryError,
    data_dir,
    security,
)

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("registry_writer.py")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "facegate.db"


@pytest.fixture
def reg(db_path: Path):
    with Registry.open(db_path) as registry:
        yield registry


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, as a tamperer (or a curious engineer) would use."""
    return sqlite3.connect(path, isolation_level=None)


def enroll(reg: Registry, employee_id: str, marker: bytes, n_photos: int = 2) -> int:
    op = reg.add_operator(employee_id, f"Name of {employee_id}", "Ops", actor="hr")
    for i in range(n_photos):
        photo = reg.add_photo(op, marker + b"-photo-%d-" % i + os.urandom(64), f"{employee_id}_{i}.jpg",
                              datetime.now(UTC), {"sharpness": 120.0 + i}, actor="hr")
        reg.add_embedding(photo, vector(employee_id, i), "facenet", "v1")
    return op


def vector(employee_id: str, i: int) -> np.ndarray:
    return np.random.default_rng([zlib.crc32(employee_id.encode()), i]).normal(size=128).astype(np.float32)


def event(reg: Registry, op: int | str | None, thumb: bytes | None = None, **kw) -> int:
    args = {"camera": "gate-1", "decision": "recognised" if op is not None else "unknown", "operator_id": op,
            "probabilities": {"svc": {"E1": 0.9}}, "distance": 0.42, "thumbnail_jpeg": thumb,
            "model_version": "m1", **kw}
    return reg.record_event(**args)


# ------------------------------------------------------------------------------------------ schema


def test_schema_is_applied_once_and_reopening_is_idempotent(db_path: Path):
    with Registry.open(db_path) as reg:
        assert reg.schema_version == SCHEMA_VERSION >= 1
    with Registry.open(db_path) as reg:
        assert reg.schema_version == SCHEMA_VERSION
        conn = reg.db.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    with raw(db_path) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'facegate'")]
        assert len(names) == len(set(names)) == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"operators", "photos", "embeddings", "model_versions", "events", "audit", "settings"} <= tables


def test_data_dir_comes_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data" / "here"))
    assert data_dir() == tmp_path / "data" / "here" and data_dir().is_dir()
    with Registry.open() as reg:
        assert reg.path == tmp_path / "data" / "here" / "facegate.db"


# --------------------------------------------------------------------------------------- operators


def test_operator_crud_and_duplicate_employee_id(reg: Registry):
    op = reg.add_operator("E1", "Ada Lovelace", "Maintenance", actor="hr:alice")
    assert reg.get_operator(op) == reg.get_operator("E1")
    assert reg.get_operator("E1").name == "Ada Lovelace" and reg.get_operator(op).active
    with pytest.raises(RegistryError, match="already enrolled"):
        reg.add_operator("E1", "Someone Else", actor="hr:alice")
    with pytest.raises(RegistryError, match="No operator"):
        reg.get_operator("E404")
    reg.add_operator("E2", "Grace Hopper", actor="hr:alice")
    assert [o.employee_id for o in reg.list_operators()] == ["E1", "E2"]
    reg.set_active("E1", False, actor="hr:alice")
    assert [o.employee_id for o in reg.list_operators(active_only=True)] == ["E2"]
    actions = [(a.actor, a.action, a.object) for a in reg.audit_log()]
    assert actions == [("hr:alice", "add_operator", "E1"), ("hr:alice", "add_operator", "E2"),
                       ("hr:alice", "set_active", "E1")]


def test_photos_and_embeddings_roundtrip_as_float32(reg: Registry):
    a = enroll(reg, "EA", b"A")
    enroll(reg, "EB", b"B", n_photos=3)
    x, labels, photo_ids = reg.embeddings("v1")
    assert x.dtype == np.float32 and x.shape == (5, 128)
    assert labels == ["EA", "EA", "EB", "EB", "EB"] and len(set(photo_ids)) == 5
    np.testing.assert_array_equal(x[0], vector("EA", 0))
    assert reg.embeddings("v2")[0].shape == (0, 0)
    reg.set_active(a, False, actor="hr")
    assert reg.embeddings("v1")[1] == ["EB"] * 3  # a suspended operator is not trained on
    photo = reg.list_photos("EB")[0]
    with pytest.raises(RegistryError, match="already enrolled"):
        reg.add_photo("EB", reg.photo_bytes(photo.id), "again.jpg", None, {}, actor="hr")
    with pytest.raises(RegistryError, match="NaN"):
        reg.add_embedding(photo.id, np.full(128, np.nan), "facenet", "v9")


# ---------------------------------------------------------------------------------------- erasure


def _scan(path: Path, needles: list[bytes]) -> list[str]:
    """Every table, every row, every column: where does any needle occur?"""
    found = []
    with raw(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cur = conn.execute(f'SELECT * FROM "{table}"')
            cols = [d[0] for d in cur.description]
            for row in cur:
                for col, value in zip(cols, row):
                    data = value if isinstance(value, bytes) else str(value).encode()
                    for needle in needles:
                        if needle in data:
                            found.append(f"{table}.{col} holds {needle[:20]!r}")
    return found


def test_erasure_leaves_no_biometric_row_behind(db_path: Path):
    with Registry.open(db_path) as reg:
        gone = enroll(reg, "E-GONE", b"GONE-PHOTO-MARKER")
        stay = enroll(reg, "E-STAY", b"STAY-PHOTO-MARKER")
        gone_vec = reg.embeddings("v1")[0][0].tobytes()
        for i in range(3):
            event(reg, gone, b"GONE-THUMB-MARKER-%d" % i, reason="matched E-GONE",
                  probabilities={"svc": {"E-GONE": 0.97, "E-STAY": 0.03}})
            event(reg, stay, b"STAY-THUMB-MARKER-%d" % i, probabilities={"svc": {"E-STAY": 0.9, "E-GONE": 0.1}})
        event(reg, None, b"STRANGER-THUMB")
        report = reg.remove_operator("E-GONE", actor="hr:alice")
        assert (report.photos, report.embeddings, report.events_redacted) == (2, 2, 3)

        # The person's operator row, photos, embeddings and thumbnails are gone, from every table ...
        assert _scan(db_path, [b"GONE-PHOTO-MARKER", b"GONE-THUMB-MARKER", gone_vec]) == []
        with raw(db_path) as conn:
            for table, col in [("operators", "id"), ("photos", "operator_id"),
                               ("embeddings", "operator_id"), ("events", "operator_id")]:
                assert conn.execute(f"SELECT count(*) FROM {table} WHERE {col} = ?", [gone]).fetchone()[0] == 0
            # ... and outside the audit trail nothing names them (events no longer link to them).
            non_audit = [hit for hit in _scan(db_path, [b"E-GONE"]) if not hit.startswith("audit.")]
            assert non_audit == ["events.probabilities holds b'E-GONE'"] * 3  # E-STAY's events: a class
        # ... and not in the file's free pages or the WAL either (secure_delete + checkpoint).
        for path in db_path.parent.glob("facegate.db*"):
            data = path.read_bytes()
            assert b"GONE-PHOTO-MARKER" not in data and b"GONE-THUMB-MARKER" not in data, path.name

        # The events stay, with their decision, but no link, thumbnail, probabilities or reason.
        events = reg.events()
        erased = [e for e in events if e.erased]
        assert len(erased) == 3 and len(events) == 7
        assert all(e.decision == "recognised" and e.distance == 0.42 and e.operator_id is None
                   and e.probabilities is None and e.reason is None and not e.has_thumbnail for e in erased)
        assert reg.event_thumbnail(erased[0].id) is None
        # The other person is untouched; the chains still verify; the erasure is audited.
        assert reg.get_operator("E-STAY").photos == 2 and reg.embeddings("v1")[1] == ["E-STAY"] * 2
        assert sum(e.has_thumbnail for e in events) == 4
        assert reg.verify() == []
        last = reg.audit_log()[-1]
        assert (last.actor, last.action, last.object) == ("hr:alice", "remove_operator", "E-GONE")
        assert last.new == {"photos": 2, "embeddings": 2, "events_redacted": 3}
        with pytest.raises(RegistryError, match="No operator"):
            reg.remove_operator("E-GONE", actor="hr:alice")


def test_operators_cannot_be_deleted_behind_the_registrys_back(db_path: Path):
    with Registry.open(db_path) as reg:
        op = enroll(reg, "E1", b"X")
        event(reg, op, b"thumb")
    with raw(db_path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError, match="remove_operator"):
            conn.execute("DELETE FROM operators WHERE id = ?", [op])


# ------------------------------------------------------------------------------- crash and locking


def test_writer_killed_mid_way_leaves_every_acknowledged_event(db_path: Path):
    proc = subprocess.Popen([sys.executable, str(WRITER), str(db_path), "1000"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        acked = []
        while len(acked) < 150:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "writer died"
            acked.append(int(line))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        acked += [int(line) for line in proc.stdout.read().split()]  # printed before it died
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 150 <= len(acked) < 1000, "the writer must be killed mid-way"
    with Registry.open(db_path) as reg:
        assert reg.db.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert reg.verify() == []
        stored = {e.id for e in reg.events()}
        assert set(acked) <= stored
        assert len(stored) <= len(acked) + 1  # at most the one committed while being killed
        event(reg, "E-KILL", b"after")  # the chain carries on
        assert reg.verify() == []


def test_concurrent_reader_never_sees_database_is_locked(db_path: Path):
    Registry.open(db_path).close()
    errors: list[BaseException] = []
    done = threading.Event()
    reads = [0]

    def hr_writer() -> None:
        try:
            with Registry.open(db_path) as reg:
                for i in range(60):
                    with reg.transaction():
                        op = reg.add_operator(f"E{i}", f"Person {i}", actor="hr")
                        photo = reg.add_photo(op, os.urandom(5000), "cam", None, {"q": i}, actor="hr")
                        reg.add_embedding(photo, np.ones(128), "facenet", "v1")
                    reg.set_setting("threshold", 0.5 + i / 1000, actor="hr")
                    model = reg.add_model_version(f"/m/{i}", "facenet", "v1", {"acc": 0.9}, actor="trainer")
                    reg.activate_model(model, actor="hr")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def gate_writer() -> None:
        try:
            with Registry.open(db_path) as reg:
                while not done.is_set():
                    reg.record_events([NewEvent("gate-2", "unknown", None, {}, 0.9, os.urandom(800), "m")] * 3)
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            with Registry.open(db_path) as reg:
                while not done.is_set():
                    reg.list_operators()
                    reg.embeddings("v1")
                    reg.events(limit=20)
                    reg.audit_log(limit=20)
                    reg.get_setting("threshold")
                    reg.active_model()
                    reads[0] += 1
                assert reg.verify() == []
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (hr_writer, gate_writer, reader, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert reads[0] > 0
    with Registry.open(db_path) as reg:
        assert len(reg.list_operators()) == 60 and reg.verify() == []


# -------------------------------------------------------------------------------------- tampering


def _tamper(path: Path, *sql: str) -> None:
    """Drop the guard triggers (a determined tamperer would) and run the SQL."""
    with raw(path) as conn:
        for trigger in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]:
            conn.execute(f"DROP TRIGGER {trigger}")
        for statement in sql:
            conn.execute(statement)


@pytest.fixture
def logged(db_path: Path) -> Path:
    with Registry.open(db_path) as reg:
        op = reg.add_operator("E1", "Ada", actor="hr")
        for i in range(5):
            event(reg, op if i % 2 else None, b"thumb-%d" % i)
        reg.set_setting("threshold", 0.6, actor="hr")
        reg.audit("trainer", "train", "model 1", None, {"acc": 0.9})
        reg.set_setting("threshold", 0.7, actor="hr")
        assert reg.verify() == []
    return db_path


def test_plain_sql_tampering_is_refused_by_the_guards(logged: Path):
    with raw(logged) as conn:
        for sql in ["UPDATE events SET decision = 'recognised' WHERE id = 3",
                    "DELETE FROM events WHERE id = 3",
                    "UPDATE events SET thumbnail = x'00' WHERE id = 3",
                    "UPDATE audit SET actor = 'nobody' WHERE id = 2",
                    "DELETE FROM audit WHERE id = 2"]:
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(sql)


@pytest.mark.parametrize("sql, expected", [
    ("UPDATE events SET decision = 'undecided' WHERE id = 3", "Event 3 was altered"),
    ("UPDATE events SET camera = 'gate-9' WHERE id = 3", "Event 3 was altered"),
    ("UPDATE events SET time = '2020-01-01T00:00:00.000000Z' WHERE id = 3", "Event 3 was altered"),
    ("UPDATE events SET probabilities = '{\"svc\":{\"E1\":0.1}}' WHERE id = 4", "Event 4 was altered"),
    ("UPDATE events SET operator_id = NULL WHERE id = 4", "Event 4 was altered"),
    ("UPDATE events SET thumbnail = x'ffd8' WHERE id = 2", "Event 2 was altered"),
    ("DELETE FROM events WHERE id = 3", "Event 3 is missing"),
    ("DELETE FROM events WHERE id IN (2, 3)", "Events 2 to 3 are missing"),
    ("DELETE FROM events WHERE id = 1", "Event 1 is missing"),
    ("DELETE FROM events WHERE id = 5", "newest events after event 4 were deleted"),
    ("UPDATE events SET prev_hash = hash WHERE id = 3", "Event 3 does not follow event 2"),
    (("UPDATE events SET operator_id = NULL, probabilities = NULL, reason = NULL, thumbnail = NULL, "
      "salt = NULL, redacted = 1 WHERE id = 4"), "stripped of their operator outside FaceGate"),
    ("UPDATE audit SET new = '{\"value\":0.99}' WHERE action = 'set_setting' AND id > 2",
     "was altered after it was written"),
    ("DELETE FROM audit WHERE action = 'train'", "is missing (deleted outside FaceGate)"),
])
def test_verify_catches_tampering(logged: Path, sql: str, expected: str):
    _tamper(logged, sql)
    with Registry.open(logged) as reg:
        problems = reg.verify()
    assert any(expected in p for p in problems), problems
    assert any("append-only guards" in p for p in problems)


def test_deleting_the_newest_events_stays_visible_after_new_events(logged: Path):
    _tamper(logged, "DELETE FROM events WHERE id >= 4")
    with Registry.open(logged) as reg:
        event(reg, None, b"new")
        event(reg, None, b"newer")
        assert [e.id for e in reg.events()] == [1, 2, 3, 6, 7]
        assert any("Events 4 to 5 are missing" in p for p in reg.verify())


def test_verify_reports_damage_found_by_integrity_check(logged: Path):
    _tamper(logged, "PRAGMA writable_schema = ON",
            "UPDATE sqlite_master SET sql = replace(sql, 'hash TEXT NOT NULL', 'hash TEXT NOT NULL UNIQUE') "
            "WHERE name = 'events'")
    # Declaring a UNIQUE constraint without its index is a schema the b-trees do not match.
    with Registry.open(logged) as reg:
        assert reg.verify() != []


# ------------------------------------------------------------------------------------- bad files


def test_random_bytes_are_not_a_faceGate_database(tmp_path: Path):
    path = tmp_path / "noise.db"
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(RegistryError, match="is not a FaceGate database"):
        Registry.open(path)


def test_text_file_is_not_a_facegate_database(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n" * 100)
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="is not a FaceGate database: it is not an SQLite"):
        Registry.open(path)
    assert path.read_bytes() == before


def test_foreign_sqlite_database_is_refused_and_left_unchanged(tmp_path: Path):
    path = tmp_path / "other.db"
    with raw(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    before = path.read_bytes()
    with pytest.raises(RegistryError, match=r"is not a FaceGate database: .*tables invoices"):
        Registry.open(path)
    assert path.read_bytes() == before and not Path(str(path) + "-wal").exists()


@pytest.mark.parametrize("keep", [0.5, 4096 * 3])
def test_truncated_database_gets_a_clear_error(db_path: Path, keep: float):
    with Registry.open(db_path) as reg:
        op = enroll(reg, "E1", b"X", n_photos=20)
        for _ in range(50):
            event(reg, op, os.urandom(4000))
    size = db_path.stat().st_size
    with open(db_path, "r+b") as fh:
        fh.truncate(int(size * keep) if keep < 1 else int(keep))
    with pytest.raises(RegistryError, match="is not a usable FaceGate database: it is damaged"):
        Registry.open(db_path)


def test_database_from_a_newer_facegate_is_refused(db_path: Path):
    Registry.open(db_path).close()
    with raw(db_path) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('facegate', '9999_future', 'x')")
    with pytest.raises(RegistryError, match="newer FaceGate"):
        Registry.open(db_path)


def test_damage_found_later_is_a_registry_error(db_path: Path):
    with Registry.open(db_path) as reg:
        op = enroll(reg, "E1", b"X", n_photos=3)
        for _ in range(200):
            event(reg, op, os.urandom(3000))
    with open(db_path, "r+b") as fh:  # scribble over the middle pages, keep the header
        fh.seek(db_path.stat().st_size // 2)
        fh.write(b"\x55" * 40000)
    with Registry.open(db_path) as reg:
        problems = reg.verify()
        assert problems and any("damaged" in p or "integrity" in p for p in problems), problems
        with pytest.raises(RegistryError, match="is not a usable FaceGate database"):
            for event_id in [e.id for e in reg.events()]:  # reading everything hits the damage
                reg.event_thumbnail(event_id)


# -------------------------------------------------------------------------------- backup, restore


def test_backup_and_restore_roundtrip_keeps_the_previous_file(tmp_path: Path, db_path: Path):
    backup = tmp_path / "backups" / "monday.db"
    with Registry.open(db_path) as reg:
        enroll(reg, "E1", b"X")
        event(reg, "E1", b"thumb")
        assert reg.backup(backup) == backup
        with pytest.raises(RegistryError, match="already exists"):
            reg.backup(backup)
        reg.add_operator("E2", "Added after the backup", actor="hr")
        event(reg, "E2", b"thumb2")
        assert not list(backup.parent.glob(".*tmp"))

        with raw(backup) as conn:  # a single checked file, no WAL needed
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

        kept = reg.restore(backup)
        assert kept.name.endswith(".before-restore") and kept.parent == db_path.parent
        assert [o.employee_id for o in reg.list_operators()] == ["E1"]
        assert len(reg.events()) == 1 and reg.get_operator("E1").embeddings == 2
        assert reg.audit_log()[-1].action == "restore"
        assert reg.verify() == []
        assert reg.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Registry.open(kept) as before:  # nothing lost: the pre-restore state is intact
        assert [o.employee_id for o in before.list_operators()] == ["E1", "E2"]
        assert before.verify() == []
    with Registry.open(db_path) as reg:
        assert [o.employee_id for o in reg.list_operators()] == ["E1"]


def test_restore_refuses_foreign_and_damaged_files(tmp_path: Path, reg: Registry):
    reg.add_operator("E1", "Ada", actor="hr")
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 50)
    other = tmp_path / "other.db"
    with raw(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    for src in (text, other, tmp_path / "missing.db"):
        with pytest.raises(RegistryError):
            reg.restore(src)
    assert [o.employee_id for o in reg.list_operators()] == ["E1"]


# -------------------------------------------------------------------------------- model versions


def test_model_activation_and_rollback(reg: Registry):
    assert reg.active_model() is None
    with pytest.raises(RegistryError, match="No model version is active"):
        reg.rollback_model(actor="hr")
    m1 = reg.add_model_version("/models/1.joblib", "facenet", "v1", {"svc": 0.95}, actor="trainer")
    reg.activate_model(m1, actor="hr")
    with pytest.raises(RegistryError, match="no previous model version"):
        reg.rollback_model(actor="hr")
    m2 = reg.add_model_version("/models/2.joblib", "facenet", "v1", {"svc": 0.96}, actor="trainer")
    m3 = reg.add_model_version("/models/3.joblib", "facenet", "v1", {"svc": 0.97}, actor="trainer")
    bad = reg.add_model_version("/models/4.joblib", "facenet", "v1", {"svc": 0.2}, status="rejected",
                                actor="trainer")
    reg.activate_model(m2, actor="hr")
    reg.activate_model(m3, actor="hr")
    with pytest.raises(RegistryError, match="rejected"):
        reg.activate_model(bad, actor="hr")
    active = reg.active_model()
    assert active is not None and active.id == m3
    assert reg.rollback_model(actor="hr").id == m2  # one step back ...
    assert reg.rollback_model(actor="hr").id == m1  # ... and another, never back to the bad m3
    with pytest.raises(RegistryError, match="no previous model version"):
        reg.rollback_model(actor="hr")
    models = {m.id: m for m in reg.list_models()}
    assert [m.id for m in models.values() if m.active] == [m1]
    assert (models[m2].status, models[m3].status, models[bad].status) == ("rolled_back", "rolled_back", "rejected")
    with pytest.raises(sqlite3.IntegrityError):  # the database itself allows only one active model
        reg.db.conn.execute("UPDATE model_versions SET active = 1 WHERE id = ?", [m2])
    assert [a.action for a in reg.audit_log(action="rollback_model")] == ["rollback_model"] * 2


# ---------------------------------------------------------------------------------------- purge


def test_purge_removes_old_events_and_thumbnails_and_the_chain_still_verifies(db_path: Path):
    now = datetime.now(UTC)
    with Registry.open(db_path) as reg:
        op = reg.add_operator("E1", "Ada", actor="hr")
        for days in (40, 39, 35):
            event(reg, op, b"OLD-THUMB-%d" % days, time=now - timedelta(days=days))
        reg.remove_operator("E1", actor="hr")  # one redacted run purged, chain accounting stays right
        op = reg.add_operator("E1", "Ada again", actor="hr")
        event(reg, None, b"OLD-STRANGER", time=now - timedelta(days=31))
        recent = [event(reg, op, b"NEW-THUMB-%d" % d, time=now - timedelta(days=d)) for d in (5, 1)]
        assert reg.purge(30) == 4
        assert [e.id for e in reg.events()] == recent
        assert reg.verify() == []
        assert reg.purge(30) == 0
        assert _scan(db_path, [b"OLD-THUMB", b"OLD-STRANGER"]) == []
        for path in db_path.parent.glob("facegate.db*"):
            assert b"OLD-STRANGER" not in path.read_bytes()
        event(reg, op, b"after purge")
        assert reg.verify() == []
        assert reg.purge(0) == 3  # everything, then the chain restarts from the checkpoint
        assert reg.events() == [] and reg.verify() == []
        event(reg, op, b"after full purge")
        assert reg.verify() == []
        assert reg.audit_log(action="purge")[-1].new["through_id"] == recent[-1] + 1
    with raw(db_path) as conn:  # the first event after a purge chains to the checkpoint, not genesis
        assert conn.execute("SELECT prev_hash FROM events").fetchone()[0] != GENESIS_HASH


def test_events_are_validated(reg: Registry):
    with pytest.raises(RegistryError, match="short code"):
        event(reg, None, decision="Ada Lovelace recognised")
    with pytest.raises(RegistryError, match="finite"):
        event(reg, None, distance=float("nan"))
    with pytest.raises(RegistryError, match="plain JSON"):
        event(reg, None, probabilities={"svc": np.zeros(3)})
    with pytest.raises(RegistryError, match="No operator"):
        event(reg, "E404")
    assert reg.events() == []
    ids = reg.record_events([NewEvent("gate-1", "unknown", None, {}, None, None, "m")] * 3)
    assert ids == [1, 2, 3] and [e.id for e in reg.events(limit=2)] == [2, 3]


def test_audit_refuses_reserved_actions_and_non_json(reg: Registry):
    with pytest.raises(RegistryError, match="written by the registry itself"):
        reg.audit("me", "purge", "events", None, {"through_id": 99})
    with pytest.raises(RegistryError, match="plain JSON"):
        reg.audit("me", "note", "x", None, {"image": b"\xff\xd8"})
    reg.audit("trainer", "train", "model 7", None, {"acc": 0.93})
    assert reg.audit_log()[-1].new == {"acc": 0.93}


# ------------------------------------------------------------------------------------- passphrase


def test_the_old_shared_passphrase_is_gone_and_security_settings_stay_secret(reg: Registry):
    """Accounts replaced the one shared passphrase (tests/core/test_accounts.py); secrets stay hidden."""
    with pytest.raises(security.PermissionDenied, match="no HR accounts yet"):
        security.authorize_hr(reg, lambda: (None, "anything at all"), action="remove E1")
    with pytest.raises(RegistryError, match="secret"):
        reg.set_setting("security.public_key", "an attacker's key", actor="intruder")
    assert reg.verify() == []


def test_passphrase_from_env_or_prompt(monkeypatch):
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", "from the environment")
    assert security.passphrase_from_env_or_prompt() == "from the environment"

    monkeypatch.delenv("FACEGATE_HR_PASSPHRASE")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(security.PermissionDenied, match="no terminal.*FACEGATE_HR_PASSPHRASE"):
        security.passphrase_from_env_or_prompt()

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["typed at the terminal", "typed at the terminal", "something else"])
    monkeypatch.setattr(security.getpass, "getpass", lambda prompt="": next(answers))
    assert security.passphrase_from_env_or_prompt() == "typed at the terminal"
    with pytest.raises(security.WeakPassphrase, match="differ"):
        security.passphrase_from_env_or_prompt(confirm=True)


def test_registry_never_imports_qt():
    code = ("import sys\n"
            "for name in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6'): sys.modules[name] = None\n"
            "import core.registry, core.registry.security\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
