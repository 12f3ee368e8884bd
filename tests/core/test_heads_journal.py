"""The heads journal: chain heads anchored outside the database catch deleted newest rows (issue 10, #3).

The attack: stop FaceGate, drop the append-only triggers with plain SQL, delete the newest events or
audit rows, put the triggers back and lower ``sqlite_sequence``.  The hash chains alone still verify;
the heads journal beside the database (or wherever ``FACEGATE_HEADS_JOURNAL`` points) does not
agree.  Real registry files, real subprocesses, a real syslog datagram socket; no Qt, no models.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.registry import NewEvent, Registry, chains, journal
from core.registry.chains import _AUDIT_COLS, _audit_hash

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _quiet_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(journal.JOURNAL_ENV, raising=False)
    monkeypatch.setenv(journal.SYSLOG_ENV, "0")
    monkeypatch.setattr(journal, "_failures", {})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "facegate.db"


def event(reg: Registry, **kw) -> int:
    args = {"camera": "gate-1", "decision": "unknown", "operator_id": None, "probabilities": {"svc": {}},
            "distance": 0.9, "thumbnail_jpeg": b"jpeg", "model_version": "m1", **kw}
    return reg.record_event(**args)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def truncate(db: Path, table: str, keep_through: int) -> None:
    """What an attacker with plain SQL does: drop the guards, delete the newest rows, hide the traces."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for name, _ in triggers:
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute(f"DELETE FROM {table} WHERE id > ?", [keep_through])
        for _, sql in triggers:
            conn.execute(sql)
        conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", [keep_through, table])
    finally:
        conn.close()


def chains_alone(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return chains.verify_registry(conn)
    finally:
        conn.close()


# ------------------------------------------------------------------------------------- truncation


def test_deleting_the_newest_events_is_reported(db_path: Path):
    with Registry.open(db_path) as reg:
        for _ in range(3):
            event(reg)
        reg.record_events([NewEvent("gate-1", "unknown", None, {}, 0.9, None, "m1", "")] * 3)  # 4-6
        assert reg.verify() == []
        assert reg.journal_path == db_path.parent / "facegate-heads.log"
    truncate(db_path, "events", 3)
    assert chains_alone(db_path) == []  # the chain alone cannot tell
    with Registry.open(db_path) as reg:
        problems = reg.verify()
    assert any(p.startswith("Events 4-6 recorded in the heads journal are missing from the database")
               for p in problems), problems


def test_deleting_the_newest_audit_rows_is_reported(db_path: Path, tmp_path: Path, monkeypatch):
    elsewhere = tmp_path / "var-log" / "heads.log"
    elsewhere.parent.mkdir()
    monkeypatch.setenv(journal.JOURNAL_ENV, str(elsewhere))
    with Registry.open(db_path) as reg:
        assert reg.journal_path == elsewhere
        for i in range(5):
            reg.add_operator(f"E{i}", f"Person {i}", actor="hr")
        newest = reg.audit_log()[-1].id
    assert not (db_path.parent / journal.JOURNAL_NAME).exists()
    truncate(db_path, "audit", newest - 2)
    assert chains_alone(db_path) == []
    with Registry.open(db_path) as reg:
        problems = reg.verify()
    expected = f"newest audit row is id {newest - 2} but the heads journal recorded id {newest}"
    assert any(expected in p for p in problems), problems


def test_a_rewritten_newest_audit_row_differs_from_the_journal(db_path: Path):
    with Registry.open(db_path) as reg:
        reg.add_operator("E1", "Ada", actor="hr")
        reg.audit("hr:alice", "export", "report.csv")
        last = reg.audit_log()[-1].id
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:  # replace the newest row by a forged one that chains correctly
        row = conn.execute(f"SELECT {_AUDIT_COLS} FROM audit WHERE id = ?", [last]).fetchone()
        forged = [*row[:2], "hr:mallory", *row[3:]]
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute("DELETE FROM audit WHERE id = ?", [last])
        conn.execute(f"INSERT INTO audit ({_AUDIT_COLS}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [*forged, _audit_hash(forged)])
        conn.execute("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
                     "BEGIN SELECT RAISE(ABORT, 'FaceGate audit rows are append-only'); END")
    finally:
        conn.close()
    assert chains_alone(db_path) == []
    with Registry.open(db_path) as reg:
        problems = reg.verify()
    assert any(p.startswith(f"Audit row {last} differs from the one recorded in the heads journal at")
               for p in problems), problems


def test_a_legitimate_purge_is_not_a_problem(db_path: Path):
    now = datetime.now(UTC)
    with Registry.open(db_path) as reg:
        for days in (40, 35):
            event(reg, time=now - timedelta(days=days))
        event(reg, time=now)
        assert reg.purge(30) == 2
        assert reg.verify() == []
        assert reg.purge(0) == 1  # every event, including the journal's newest head
        assert reg.verify() == []


def test_the_journal_is_checked_in_batches_not_line_by_line(db_path: Path):
    with Registry.open(db_path) as reg:
        ids = reg.record_events([NewEvent("gate-1", "unknown", None, {}, 0.9, None, "m1", "")] * 1200)
        heads = dict(reg.db.conn.execute("SELECT id, hash FROM events").fetchall())
    # A long-running site: one line per commit.  Written directly, without 1200 fsyncs.
    with open(db_path.parent / journal.JOURNAL_NAME, "a") as fh:
        fh.writelines(json.dumps({"time": "t", "db": os.path.realpath(db_path), "chain": "events", "id": rid,
                                 "hash": heads[rid]}) + "\n" for rid in ids)
    truncate(db_path, "events", 1000)
    with Registry.open(db_path) as reg:
        statements: list[str] = []
        reg.db.conn.set_trace_callback(statements.append)
        problems = reg.verify()
    assert any(p.startswith("Events 1001-1200 recorded in the heads journal are missing") for p in problems)
    lookups = [s for s in statements if "WHERE id IN" in s]
    assert 0 < len(lookups) <= 4, len(lookups)  # 1200 lines, batches of 500


# ----------------------------------------------------------------------------- what gets written


def test_one_line_per_chain_per_commit_and_none_for_a_rollback(db_path: Path):
    journal_file = db_path.parent / journal.JOURNAL_NAME
    with Registry.open(db_path) as reg:
        ids = reg.record_events([NewEvent("gate-1", "unknown", None, {}, 0.9, None, "m1", "")] * 50)
        assert [(r["chain"], r["id"]) for r in lines(journal_file)] == [("events", ids[-1])]

        with pytest.raises(RuntimeError), reg.transaction():
            event(reg)
            reg.audit("hr", "export", "x")
            raise RuntimeError("cancelled")
        assert len(lines(journal_file)) == 1

        with reg.transaction():  # the outer block commits, the inner savepoint rolls back
            reg.add_operator("E1", "Ada", actor="hr")
            try:
                with reg.transaction():
                    event(reg)
                    raise RuntimeError("inner")
            except RuntimeError:
                pass
        recorded = lines(journal_file)
        assert [r["chain"] for r in recorded] == ["events", "audit"]
        assert (recorded[-1]["id"], recorded[-1]["hash"]) == reg.chain_heads()["audit"]
        assert reg.chain_heads()["events"][0] == ids[-1]

        with reg.transaction():
            event(reg)
            reg.audit("hr", "export", "y")
        assert sorted(r["chain"] for r in lines(journal_file)[-2:]) == ["audit", "events"]
        assert reg.verify() == []
    if os.name == "posix":
        assert journal_file.stat().st_mode & 0o777 == 0o600


def test_a_journal_write_failure_never_loses_the_event(db_path: Path, monkeypatch, caplog):
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if bytes(data).startswith(b'{"time"'):
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    with Registry.open(db_path) as reg:
        event(reg)
        monkeypatch.setattr(journal.os, "write", full_disk)
        with caplog.at_level(logging.WARNING, logger="core.registry.journal"):
            first, second = event(reg), event(reg)
        monkeypatch.setattr(journal.os, "write", real_write)
        assert [e.id for e in reg.events()] == [1, first, second]  # recorded, durable
        warnings = [r for r in caplog.records if "Could not write the chain heads" in r.getMessage()]
        assert len(warnings) == 1  # once, not per event
        failures = journal.journal_failures(reg.journal_path)
        assert failures is not None and failures.count == 2
        problems = reg.verify()
    assert len(problems) == 1 and "is missing lines: 2 write(s) failed" in problems[0], problems


# --------------------------------------------------------------------------- missing, bad, restore


def test_a_missing_journal_is_a_problem_unless_the_registry_is_new(db_path: Path):
    with Registry.open(db_path) as reg:
        assert reg.verify() == []  # brand new: nothing written, nothing journaled
        event(reg)
        reg.journal_path.unlink()
        problems = reg.verify()
        assert len(problems) == 1 and problems[0].startswith("There is no heads journal at"), problems
        reg.journal_path.write_text("")
        assert reg.verify()[0].startswith(f"The heads journal {reg.journal_path} is empty")


def test_malformed_lines_are_reported_and_skipped(db_path: Path):
    with Registry.open(db_path) as reg:
        event(reg)
        with open(reg.journal_path, "a") as fh:
            fh.write('{"time": "t", "chain": "events", "id": 1, "ha\n')  # a torn write
        event(reg)
        problems = reg.verify()
    assert len(problems) == 1 and problems[0].startswith("1 line of the heads journal"), problems
    assert "is not a heads record (first: line 2" in problems[0], problems


def test_rows_newer_than_the_journal_are_remarked_on_in_the_log_not_a_problem(db_path: Path, caplog):
    """A writer killed between its commit and its journal line leaves this; it is no deletion."""
    with Registry.open(db_path) as reg:
        event(reg)
        older = reg.journal_path.read_bytes()
        event(reg)
        event(reg)
        reg.journal_path.write_bytes(older)  # an older copy of the journal put in its place
        with caplog.at_level("WARNING", logger="core.registry.journal"):
            problems = reg.verify()
    assert problems == []
    [note] = [r.getMessage() for r in caplog.records if "newer than" in r.getMessage()]
    assert note.startswith("2 events in the database are newer than") and "moved or replaced?" in note


def test_a_restore_marker_hides_what_the_restore_removed_and_a_forged_one_hides_nothing(db_path: Path,
                                                                                        tmp_path: Path):
    backup = tmp_path / "monday.db"
    with Registry.open(db_path) as reg:
        event(reg)
        reg.backup(backup)
        event(reg)
        event(reg)  # gone after the restore, legitimately
        reg.restore(backup)
        assert lines(reg.journal_path)[-1]["chain"] == "restore"
        assert reg.verify() == []
        for _ in range(3):
            event(reg)
        newest = reg.chain_heads()["events"][0]
        audit_id, audit_hash = reg.chain_heads()["audit"]
    truncate(db_path, "events", newest - 2)
    with open(db_path.parent / journal.JOURNAL_NAME, "a") as fh:  # the attacker's own "restore"
        fh.write(json.dumps({"time": "t", "db": os.path.realpath(db_path), "chain": "restore", "id": audit_id,
                             "hash": audit_hash, "events": [newest - 2, "0" * 64],
                             "audit": [audit_id, audit_hash]}) + "\n")
    with Registry.open(db_path) as reg:
        problems = reg.verify()
    assert any("was not honoured" in p for p in problems), problems
    assert any(p.startswith(f"Events {newest - 1}-{newest} recorded in the heads journal are missing")
               for p in problems), problems


# ------------------------------------------------------------------------------ processes, syslog


def test_two_processes_append_whole_lines_to_one_journal(db_path: Path):
    with Registry.open(db_path) as reg:
        reg.add_operator("E1", "Ada", actor="hr")
    code = ("import sys\nfrom core.registry import NewEvent, Registry\n"
            "with Registry.open(sys.argv[1]) as reg:\n"
            "    for i in range(60):\n"
            "        ev = NewEvent('gate-' + sys.argv[2], 'unknown', None, {}, 0.5, None, 'm', '')\n"
            "        reg.record_events([ev])\n"
            "        if i % 10 == 0:\n"
            "            reg.audit('proc-' + sys.argv[2], 'note', str(i))\n")
    env = {**os.environ, journal.SYSLOG_ENV: "0"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db_path), str(n)], cwd=ROOT, env=env,
                              stderr=subprocess.PIPE, text=True) for n in (1, 2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    raw = (db_path.parent / journal.JOURNAL_NAME).read_bytes()
    assert raw.endswith(b"\n")
    recorded = [json.loads(line) for line in raw.decode().splitlines()]  # every line whole
    assert sum(r["chain"] == "events" for r in recorded) == 120
    assert sum(r["chain"] == "audit" for r in recorded) == 1 + 12
    with Registry.open(db_path) as reg:
        assert reg.verify() == []
        assert max(r["id"] for r in recorded if r["chain"] == "events") == reg.chain_heads()["events"][0]


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix datagram sockets")
def test_each_head_goes_to_the_system_log_when_there_is_one(db_path: Path, monkeypatch):
    from logging.handlers import SysLogHandler

    with tempfile.TemporaryDirectory() as short:  # socket paths are limited to ~100 bytes
        address = os.path.join(short, "log")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(address)
        server.setblocking(False)
        monkeypatch.setattr(journal, "SYSLOG_ADDRESS", address)
        monkeypatch.setattr(journal, "_syslog", journal._SyslogState())
        heads_log = logging.getLogger(journal.HEADS_LOGGER)
        try:
            monkeypatch.setenv(journal.SYSLOG_ENV, "1")
            with Registry.open(db_path) as reg:
                event_id = event(reg)
                message = server.recv(4096).decode()
                monkeypatch.setenv(journal.SYSLOG_ENV, "0")
                event(reg)
                with pytest.raises(BlockingIOError):
                    server.recv(4096)  # turned off: nothing sent
        finally:
            handler = journal._syslog.handler
            if handler is not None:
                heads_log.removeHandler(handler)
                handler.close()
            server.close()
    priority = SysLogHandler.LOG_AUTHPRIV * 8 + SysLogHandler.LOG_INFO
    assert message.startswith(f"<{priority}>facegate: chain head "), message
    record = json.loads(message.split("chain head ", 1)[1].rstrip("\x00"))
    assert (record["chain"], record["id"]) == ("events", event_id)
