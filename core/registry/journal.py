"""The heads journal: the newest id and hash of each hash chain, kept outside the database.

Why
---
The hash chains (:mod:`core.registry.chains`) prove that no event or audit row was altered and
none is missing *between* the first and the newest row.  They cannot prove that the newest rows are
still there: someone with write access to the file can drop the append-only triggers, delete the
last events or audit rows, lower ``sqlite_sequence`` and put the triggers back, and what is left is
a shorter chain that verifies.  Only a copy of the heads kept somewhere else can tell.

What is written, and when
-------------------------
After every commit that appended events or audit rows, :meth:`RegistryBase.transaction
<core.registry.connection.RegistryBase.transaction>` appends one line per chain the transaction
touched (not one per row: a batch of 50 events is one line) to the journal file::

    {"time":"2024-05-01T07:12:03.123456Z","db":"/var/lib/facegate/facegate.db","chain":"events","id":135,"hash":"9f86…"}

``time`` is when the line was written (UTC), ``db`` the database file it belongs to (one journal may
serve several registries; :func:`verify_journal` ignores the lines of other files), ``id`` and
``hash`` the newest row of ``chain`` (``events`` or ``audit``) as committed.  The heads are noted
while the transaction runs and written only after its outermost ``COMMIT`` succeeded, so a head that
was rolled back is never recorded (a savepoint that rolls back takes its heads with it).

The file is opened with ``O_APPEND | O_CREAT`` (mode 0600 when created), written with one
``os.write`` per commit and ``fsync``-ed.  With ``O_APPEND`` every write lands whole at the current
end of the file, so any number of processes append to one journal safely.  Nothing is rewritten.

A journal write that fails (full disk, lost permission, missing folder) never loses the event: the
database commit has already happened.  It is logged as a warning once per journal and counted
(:func:`journal_failures`), and :func:`verify_journal` reports that the journal is missing lines.

Where
-----
``<folder of the database>/facegate-heads.log`` (:data:`JOURNAL_NAME`), or the path in
``$FACEGATE_HEADS_JOURNAL`` (:func:`journal_path_for`).

What protects what
------------------
* **The journal in the data folder** catches someone who edits the database and forgets the
  journal, or does not know it exists: the rows it recorded are missing, or differ.
* It does not stop someone who edits both: whoever can rewrite the database can rewrite a file next
  to it.  Against them, point ``$FACEGATE_HEADS_JOURNAL`` at a file the guard's account can only
  append to (on Linux, made append-only by root with ``chattr +a``: lines can be added, never
  truncated or rewritten), or at a file on another disk or host.
* **The system log.**  Each line also goes to ``/dev/log`` (facility ``authpriv``, logger
  ``facegate.heads``) when the machine has one; forwarded to a log server, it is a copy no local
  account can reach.  ``FACEGATE_SYSLOG=0`` turns it off (set it for test runs); sending is best
  effort and never fails a write.
* What none of them do: a journal that is missing or empty is reported, but once FaceGate writes
  again it starts a new one that vouches only for the rows from then on.  A database the journal
  has no lines of (a backup, the file a restore kept, a moved database) is not compared at all.

Restores
--------
A restore (:meth:`Registry.restore <core.registry.Registry.restore>`, an audited HR action)
legitimately puts an older database in place: the rows written since that backup are gone.  It
appends a *restore marker*::

    {"time":…,"db":…,"chain":"restore","id":<its restore audit row>,"hash":<that row's hash>,"events":[id,hash],"audit":[id,hash]}

and :func:`verify_journal` compares only the lines after the last marker whose ``restore`` audit row
is in the database with that hash and was not marked before.  A marker forged by someone who can
append to the journal is therefore ignored (and reported) unless they also forged a restore audit
row in the database, which the audit log then shows as a restore no HR clerk did (and the system
log holds no such marker).

Verifying
---------
:func:`verify_journal` streams the journal (huge journals are fine: it keeps only the newest head
and a few counters per chain, and checks the recorded ids against the database one SQL query per
batch of lines).  Every recorded head must still be in the database with the same hash, unless it
is an event an audited purge legitimately deleted (ids up to the newest purge checkpoint); audit
rows are never purged.  Rows newer than the journal's newest line are only remarked on: after a
failed journal write they are expected, otherwise the journal may have been moved or replaced.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import logging.handlers
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from core.registry.chains import _audit_head, _events_head, _purge_checkpoint
from core.registry.sql import _iso

log = logging.getLogger(__name__)

JOURNAL_NAME = "facegate-heads.log"
"""File name of the heads journal beside the database, unless :data:`JOURNAL_ENV` says otherwise."""
JOURNAL_ENV = "FACEGATE_HEADS_JOURNAL"
"""Environment variable with the path of the heads journal (e.g. an append-only file elsewhere)."""
SYSLOG_ENV = "FACEGATE_SYSLOG"
"""Environment variable: ``0`` keeps the heads out of the system log (on by default when there is one)."""
SYSLOG_ADDRESS = "/dev/log"
"""The system log's socket; heads are sent there only if it exists."""
HEADS_LOGGER = "facegate.heads"
"""Name of the logger that carries each head to the system log."""
CHAINS = ("events", "audit")
"""The hash chains whose heads are journaled; each is also the name of its table."""
RESTORE = "restore"
"""``chain`` value of a restore marker."""

_BATCH = 500  # recorded ids checked per SQL query: well under SQLite's bound-parameter limit
_MAX_LINE = 4096  # a heads line is ~200 bytes; anything much longer is not one (and is not read whole)
_SHOWN = 5  # differing rows named one by one before "and n more"
_HASH_RE = re.compile(r"[0-9a-f]{64}")


def journal_path_for(db_path: Path | str) -> Path:
    """Where the heads of the database ``db_path`` are journaled.

    ``$FACEGATE_HEADS_JOURNAL`` if set, else ``facegate-heads.log`` in the database's folder.
    """
    override = os.environ.get(JOURNAL_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return Path(db_path).parent / JOURNAL_NAME


def _db_key(db_path: Path | str) -> str:
    """How journal lines name their database: its real path, so links and relative paths agree."""
    return os.path.realpath(db_path)


def _journal_key(journal: Path | str) -> str:
    return os.path.abspath(journal)


# ------------------------------------------------------------------------------------------ writing


@dataclass
class JournalFailures:
    """Writes to one heads journal that failed in this process.

    Attributes
    ----------
    count
        How many commits' heads could not be written.
    first_time, last_error
        When the first failure happened (UTC text) and what the last one said.
    """

    count: int
    first_time: str
    last_error: str


_failures: dict[str, JournalFailures] = {}
_failures_lock = threading.Lock()


def journal_failures(journal: Path | str) -> JournalFailures | None:
    """The failed writes to ``journal`` in this process, or ``None`` if every write succeeded."""
    with _failures_lock:
        found = _failures.get(_journal_key(journal))
        return None if found is None else JournalFailures(found.count, found.first_time, found.last_error)


def append_heads(journal: Path | str, db_path: Path | str, heads: Mapping[str, tuple[int, str]]) -> bool:
    """Append one line per chain in ``heads`` (chain → ``(id, hash)``) and send them to the system log.

    Call only after the commit that made these heads durable.  Never raises: a failed write is
    logged (a warning the first time), counted in :func:`journal_failures` and returns ``False``.
    """
    time, db = _iso(), _db_key(db_path)
    records = [{"time": time, "db": db, "chain": chain, "id": int(rid), "hash": str(digest)}
               for chain, (rid, digest) in heads.items() if chain in CHAINS]
    return _append(Path(journal), records) if records else True


def append_restore_marker(journal: Path | str, db_path: Path | str, restore_row: tuple[int, str],
                          heads: Mapping[str, tuple[int, str]]) -> bool:
    """Append a restore marker: lines before it describe a database that a restore replaced.

    Parameters
    ----------
    journal, db_path
        The journal and the database that was restored.
    restore_row
        ``(id, hash)`` of the ``restore`` audit row; the marker counts only while it exists.
    heads
        The heads after the restore, chain → ``(id, hash)``.
    """
    record: dict[str, Any] = {"time": _iso(), "db": _db_key(db_path), "chain": RESTORE,
                              "id": int(restore_row[0]), "hash": str(restore_row[1])}
    for chain in CHAINS:
        rid, digest = heads[chain]
        record[chain] = [int(rid), str(digest)]
    return _append(Path(journal), [record])


def _append(journal: Path, records: Sequence[Mapping[str, Any]]) -> bool:
    lines = [json.dumps(r, separators=(",", ":")) for r in records]
    ok = _write(journal, "".join(line + "\n" for line in lines).encode("utf-8"))
    _to_syslog(lines)
    return ok


def _write(journal: Path, data: bytes) -> bool:
    try:
        created = not journal.exists()
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            written = os.write(fd, data)  # one write: O_APPEND puts it whole at the end, never interleaved
            if written != len(data):
                # A short write (full disk) leaves a torn line: end it, so the next commit's line
                # starts on a line of its own instead of being glued to the torn one.
                with contextlib.suppress(OSError):
                    os.write(fd, b"\n")
                raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes could be written")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_folder(journal.parent)
    except OSError as exc:
        _count_failure(journal, exc)
        return False
    return True


def _fsync_folder(folder: Path) -> None:
    """Make a new journal's directory entry durable too (POSIX; best effort)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _count_failure(journal: Path, exc: OSError) -> None:
    key = _journal_key(journal)
    with _failures_lock:
        found = _failures.get(key)
        if found is None:
            _failures[key] = JournalFailures(1, _iso(), str(exc))
        else:
            found.count += 1
            found.last_error = str(exc)
    if found is None:
        log.warning("Could not write the chain heads to the journal %s (%s). Events and audit rows are still "
                    "recorded, but `facegate verify` cannot check the newest ones for deletion until the "
                    "journal can be written again: check free disk space, the file's permissions and %s.",
                    journal, exc, JOURNAL_ENV)
    else:
        log.debug("heads journal %s still cannot be written (%d failures): %s", journal, found.count, exc)


# ---------------------------------------------------------------------------------------- system log


class _QuietSysLogHandler(logging.handlers.SysLogHandler):
    """A SysLogHandler that never prints a traceback per commit when the log daemon goes away."""

    def handleError(self, record: logging.LogRecord) -> None:
        log.debug("a chain head could not be sent to the system log at %s", self.address)


@dataclass
class _SyslogState:
    handler: _QuietSysLogHandler | None = None
    address: str | None = None
    refused: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


_syslog = _SyslogState()


def _syslog_wanted(address: str) -> bool:
    setting = os.environ.get(SYSLOG_ENV, "").strip().lower()
    if setting in ("0", "no", "off", "false"):
        return False
    return os.path.exists(address)


def _heads_logger() -> logging.Logger | None:
    """The ``facegate.heads`` logger with its system-log handler attached (once), or ``None``."""
    address = SYSLOG_ADDRESS
    if not _syslog_wanted(address):
        return None
    heads_log = logging.getLogger(HEADS_LOGGER)
    with _syslog.lock:
        if _syslog.handler is not None and _syslog.address == address:
            return heads_log
        if address in _syslog.refused:
            return None
        if _syslog.handler is not None:  # the address changed (a test, or a reconfigured host)
            heads_log.removeHandler(_syslog.handler)
            _syslog.handler.close()
            _syslog.handler = None
        try:
            handler = _QuietSysLogHandler(address=address,
                                          facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV)
        except OSError as exc:
            _syslog.refused.add(address)
            log.warning("Chain heads are not sent to the system log: %s refused the connection (%s).",
                        address, exc)
            return None
        handler.ident = "facegate: "
        handler.setFormatter(logging.Formatter("%(message)s"))
        heads_log.addHandler(handler)
        heads_log.setLevel(logging.INFO)
        # Heads are for the system log only: the console's own log would get a line per event batch.
        heads_log.propagate = False
        _syslog.handler, _syslog.address = handler, address
        return heads_log


def _to_syslog(lines: Sequence[str]) -> None:
    try:
        heads_log = _heads_logger()
        if heads_log is not None:
            for line in lines:
                heads_log.info("chain head %s", line)
    except Exception as exc:  # noqa: BLE001 - best effort: the system log never fails a write
        log.debug("chain heads not sent to the system log: %s", exc)


# ---------------------------------------------------------------------------------------- verifying


@dataclass
class _Missing:
    """Recorded heads that are not in the database: how many, and the range of their ids."""

    count: int = 0
    low: int = 0
    high: int = 0
    high_time: str = ""

    def add(self, rid: int, time: str) -> None:
        self.low = rid if not self.count else min(self.low, rid)
        if not self.count or rid > self.high:
            self.high, self.high_time = rid, time
        self.count += 1

    def merge(self, other: _Missing) -> None:
        if not other.count:
            return
        if not self.count or other.high > self.high:
            self.high, self.high_time = other.high, other.high_time
        self.low = other.low if not self.count else min(self.low, other.low)
        self.count += other.count


@dataclass
class _ChainStats:
    """What one chain's recorded heads look like against the database."""

    newest_id: int = 0
    newest_time: str = ""
    tail: _Missing = field(default_factory=_Missing)  # missing above the database's newest row
    inner: _Missing = field(default_factory=_Missing)  # missing below it: deleted from the middle
    differs: list[tuple[int, str]] = field(default_factory=list)
    n_differs: int = 0

    def merge(self, other: _ChainStats) -> None:
        if other.newest_id > self.newest_id:
            self.newest_id, self.newest_time = other.newest_id, other.newest_time
        self.tail.merge(other.tail)
        self.inner.merge(other.inner)
        self.differs += other.differs[:max(0, _SHOWN - len(self.differs))]
        self.n_differs += other.n_differs


@dataclass
class _Segment:
    """The journal lines from the start, or from one restore marker, to the next marker."""

    line: int = 0
    time: str = ""
    restore_id: int = 0
    refused: str = ""  # why the marker that starts it was not honoured ("" if it was)
    chains: dict[str, _ChainStats] = field(default_factory=lambda: {c: _ChainStats() for c in CHAINS})


def _parse(raw: bytes) -> dict[str, Any] | None:
    """A journal line as a dict, or ``None`` if it is not a well-formed heads record."""
    try:
        rec = json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return None
    if not isinstance(rec, dict) or rec.get("chain") not in (*CHAINS, RESTORE):
        return None
    if not _is_head(rec.get("id"), rec.get("hash")) or not isinstance(rec.get("time"), str):
        return None
    if "db" in rec and not isinstance(rec["db"], str):
        return None
    if rec["chain"] == RESTORE:
        for chain in CHAINS:
            head = rec.get(chain)
            if not (isinstance(head, list) and len(head) == 2 and _is_head(*head)):
                return None
    rec["time"] = rec["time"][:40]  # quoted in sentences: keep a garbage time short
    return rec


def _is_head(rid: Any, digest: Any) -> bool:
    return (isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid < 2**63
            and isinstance(digest, str) and _HASH_RE.fullmatch(digest) is not None)


def _lines(fh: BinaryIO, end: int | None) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line)`` up to byte ``end`` (``None``: to the end); an over-long line is ``None``.

    A line crossing ``end``, or an unterminated last line, is being written right now: left out.
    """
    offset, number = fh.tell(), 0
    while end is None or offset < end:
        start = offset
        raw = fh.readline(_MAX_LINE)
        if not raw:
            return
        number += 1
        offset += len(raw)
        too_long = not raw.endswith(b"\n") and len(raw) == _MAX_LINE
        while too_long and raw and not raw.endswith(b"\n"):  # skip the rest without holding it
            raw = fh.readline(_MAX_LINE)
            offset += len(raw)
        if end is not None and offset > end or not raw.endswith(b"\n"):
            fh.seek(start)  # unfinished: a later read starts at this line again
            return
        yield number, None if too_long else raw


class _Scan:
    """One pass over the journal inside one read snapshot of the database."""

    def __init__(self, conn: sqlite3.Connection, db_key: str | None) -> None:
        self.conn = conn
        self.db_key = db_key
        checkpoint = _purge_checkpoint(conn)
        self.through_id = checkpoint[0] if checkpoint else 0
        self.db_newest = {chain: int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {chain}").fetchone()[0])
                          for chain in CHAINS}
        self.db_newest["events"] = max(self.db_newest["events"], self.through_id)
        self.segments = [_Segment()]
        self.pending: dict[str, list[tuple[int, str, str, _ChainStats]]] = {c: [] for c in CHAINS}
        self.malformed = 0
        self.first_malformed = 0
        self.other_db: str | None = None
        self.lines = 0  # all lines, well-formed or not
        self.ours = 0  # lines about this database
        self.marked: set[tuple[int, str]] = set()  # restore rows a marker was seen for

    def feed(self, number: int, raw: bytes | None) -> None:
        self.lines += 1
        rec = None if raw is None else _parse(raw)
        if rec is None:
            self.malformed += 1
            self.first_malformed = self.first_malformed or number
            return
        if self.db_key is not None and rec.get("db", self.db_key) != self.db_key:
            self.other_db = self.other_db or rec["db"]
            return
        self.ours += 1
        if rec["chain"] == RESTORE:
            row = self.conn.execute("SELECT hash, action FROM audit WHERE id = ?", [rec["id"]]).fetchone()
            restore = (rec["id"], rec["hash"])
            # A restore writes one marker; a second one naming the same restore row was appended by
            # someone else, to hide what was deleted since.
            if row is None or row[0] != rec["hash"] or row[1] != RESTORE:
                refused = "the database has no such restore row"
            else:
                refused = "that restore was already marked" if restore in self.marked else ""
            self.marked.add(restore)
            self.segments.append(_Segment(number, rec["time"], rec["id"], refused))
            for chain in CHAINS:
                self._record(chain, rec[chain][0], rec[chain][1], rec["time"])
        else:
            self._record(rec["chain"], rec["id"], rec["hash"], rec["time"])

    def _record(self, chain: str, rid: int, digest: str, time: str) -> None:
        if rid <= 0:  # an empty chain's head (a restore of a database without events)
            return
        stats = self.segments[-1].chains[chain]
        if rid > stats.newest_id:
            stats.newest_id, stats.newest_time = rid, time
        self.pending[chain].append((rid, digest, time, stats))
        if len(self.pending[chain]) >= _BATCH:
            self._flush(chain)

    def _flush(self, chain: str) -> None:
        batch, self.pending[chain] = self.pending[chain], []
        if not batch:
            return
        ids = sorted({rid for rid, _, _, _ in batch})
        marks = ", ".join("?" * len(ids))
        # chain is one of CHAINS (a table name), never text from the journal
        query = f"SELECT id, hash FROM {chain} WHERE id IN ({marks})"
        stored = dict(self.conn.execute(query, ids).fetchall())
        for rid, digest, time, stats in batch:
            found = stored.get(rid)
            if found is None:
                if chain == "events" and rid <= self.through_id:
                    continue  # deleted by an audited purge
                (stats.tail if rid > self.db_newest[chain] else stats.inner).add(rid, time)
            elif found != digest:
                stats.n_differs += 1
                if len(stats.differs) < _SHOWN:
                    stats.differs.append((rid, time))

    def finish(self, journal: Path) -> tuple[list[str], dict[str, _ChainStats]]:
        """Sentences for what the journal recorded but the database lost, and the merged statistics."""
        for chain in CHAINS:
            self._flush(chain)
        start = max(i for i, seg in enumerate(self.segments) if i == 0 or not seg.refused)
        used = self.segments[start:]
        problems = [
            f"The heads journal {journal} holds a restore marker (line {seg.line}, {seg.time}) for audit "
            f"row {seg.restore_id}, but {seg.refused}: the marker was not honoured."
            for seg in used[1:] if seg.refused]
        merged = {chain: _ChainStats() for chain in CHAINS}
        for seg in used:
            for chain in CHAINS:
                merged[chain].merge(seg.chains[chain])
        for chain in CHAINS:
            problems += _sentences(chain, merged[chain], self.db_newest[chain])
        if self.malformed:
            what = ("line of the heads journal {} is not a heads record" if self.malformed == 1 else
                    "lines of the heads journal {} are not heads records").format(journal)
            problems.append(f"{self.malformed} {what} (first: line {self.first_malformed}; a torn write, or "
                            "an edit): skipped.")
        return problems, merged


def _sentences(chain: str, stats: _ChainStats, db_newest: int) -> list[str]:
    out = []
    one, many = ("Event", "Events") if chain == "events" else ("Audit row", "Audit rows")

    def span(low: int, high: int) -> tuple[str, str, str]:
        """The rows ``low``-``high`` by name, and the verb forms that agree with them."""
        if low == high:
            return f"{one} {low}", "is", "it was"
        return f"{many} {low}-{high}", "are", "they were"

    if stats.tail.count:
        high = stats.tail.high
        rows, is_, it_was = span(db_newest + 1, high)
        if chain == "audit":
            out.append(f"The database's newest audit row is id {db_newest} but the heads journal recorded id "
                       f"{high} at {stats.tail.high_time}: {rows.lower()} {it_was.split()[1]} deleted after "
                       f"{it_was} written.")
        else:
            newest = f"the newest event left is {db_newest}" if db_newest else "no events are left"
            out.append(f"{rows} recorded in the heads journal {is_} missing from the database (deleted after "
                       f"{it_was} written; the journal recorded event {high} at {stats.tail.high_time}, "
                       f"{newest}).")
    if stats.inner.count:
        rows, is_, it_was = span(stats.inner.low, stats.inner.high)
        out.append(f"{rows} recorded in the heads journal {is_} missing from the database (deleted after "
                   f"{it_was} written).")
    for rid, time in stats.differs:
        out.append(f"{one} {rid} differs from the one recorded in the heads journal at {time} "
                   "(it was rewritten after it was written).")
    if stats.n_differs > len(stats.differs):
        out.append(f"… and {stats.n_differs - len(stats.differs)} more {many.lower()} differ from the "
                   "heads journal.")
    return out


def verify_journal(conn: sqlite3.Connection, journal_path: Path | str, *,
                   db_path: Path | str | None = None) -> list[str]:
    """Compare the heads journal with the database; one sentence per problem (empty: all good).

    Parameters
    ----------
    conn
        A connection to the database (a read snapshot is taken; writers are not blocked).
    journal_path
        The heads journal (:func:`journal_path_for`).
    db_path
        The database file: journal lines naming another file are ignored.  ``None`` checks every line.

    Returns
    -------
    list of str
        Recorded heads that are missing from the database or differ from it (after the last
        honoured restore marker; events an audited purge deleted are fine), a missing or unreadable
        journal while the database holds rows, malformed lines, failed journal writes in this
        process, and rows newer than the journal that no failed write explains.
    """
    journal = Path(journal_path)
    failures = journal_failures(journal)
    problems: list[str] = []
    if failures is not None:
        problems.append(
            f"The heads journal {journal} is missing lines: {failures.count} write(s) failed in this process "
            f"since {failures.first_time} (last: {failures.last_error}). The events and audit rows were "
            "recorded, but those written since cannot be checked for deletion; fix the journal's disk or "
            "permissions.")
    db_key = None if db_path is None else _db_key(db_path)
    try:
        fh = open(journal, "rb")  # noqa: SIM115 - closed below, after the tail is re-read
    except FileNotFoundError:
        return problems + _no_journal(conn, journal)
    except OSError as exc:
        return problems + [(f"The heads journal {journal} cannot be read ({exc}): deletion of the newest "
                            "events or audit rows cannot be checked. Run verify as an account that can read "
                            "it.")]
    with fh:
        # Only lines already written when the snapshot starts are compared: their commits are in it.
        size = os.fstat(fh.fileno()).st_size
        own_snapshot = not conn.in_transaction
        try:
            if own_snapshot:
                conn.execute("BEGIN")
            try:
                scan = _Scan(conn, db_key)
                for number, raw in _lines(fh, size):
                    scan.feed(number, raw)
                found, merged = scan.finish(journal)
                newer = {chain: int(conn.execute(f"SELECT count(*) FROM {chain} WHERE id > ?",
                                                 [merged[chain].newest_id]).fetchone()[0])
                         for chain in CHAINS}
            finally:
                if own_snapshot:
                    conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            return problems + [(f"The heads journal could not be compared with the database: SQLite says "
                               f"\"{exc}\".")]
        problems += found
        if not scan.lines:
            # Empty when the snapshot started: as good as missing, unless a writer has just begun it.
            if _late_heads(fh, db_key) is None:
                problems += _no_journal(conn, journal, empty=True)
        elif not scan.ours:
            # The journal anchors other database files only: this one is a copy (a backup, the file
            # kept by a restore) or was moved; there is nothing to compare it with.
            log.info("the heads journal %s records no heads of %s (its lines name %s); not compared", journal,
                     db_path, scan.other_db)
        elif failures is None and any(newer.values()):
            # Rows the journal has not seen are not a deletion: a writer killed between its commit and
            # its journal line leaves exactly that (one commit).  Said in the log, not counted as a problem.
            for note in _newer(journal, scan, merged, newer, _late_heads(fh, db_key) or {}):
                log.warning("%s", note)
    return problems


def _late_heads(fh: BinaryIO, db_key: str | None) -> dict[str, int] | None:
    """Newest id per chain in the lines appended after the snapshot started; ``None`` if none is ours.

    A writer may commit just before the snapshot and write its line just after it: such lines
    explain rows that look newer than the journal.
    """
    late: dict[str, int] | None = None
    for _, raw in _lines(fh, None):
        rec = None if raw is None else _parse(raw)
        if rec is None or db_key is not None and rec.get("db", db_key) != db_key:
            continue
        late = late if late is not None else dict.fromkeys(CHAINS, 0)
        pairs = [(c, rec[c][0]) for c in CHAINS] if rec["chain"] == RESTORE else [(rec["chain"], rec["id"])]
        for chain, rid in pairs:
            late[chain] = max(late[chain], rid)
    return late


def _newer(journal: Path, scan: _Scan, merged: dict[str, _ChainStats], newer: dict[str, int],
           late: dict[str, int]) -> list[str]:
    """Mild sentences for rows newer than the journal that no failed write explains.

    Only for a chain the journal has recorded heads of: a chain it never saw (a database from
    before the journal existed, or a copy that has not written that chain since) has nothing to
    compare with.
    """
    out = []
    for chain in CHAINS:
        n, stats = newer[chain], merged[chain]
        if not n or not stats.newest_id or late.get(chain, 0) >= scan.db_newest[chain]:
            continue
        rows = ("event" if n == 1 else "events") if chain == "events" else (
            "audit row" if n == 1 else "audit rows")
        out.append(f"{n} {rows} in the database {'is' if n == 1 else 'are'} newer than the newest the heads "
                   f"journal {journal} records ({chain} id {stats.newest_id} at {stats.newest_time}), so "
                   "their deletion could not be detected; was the journal moved or replaced?")
    return out


def _no_journal(conn: sqlite3.Connection, journal: Path, *, empty: bool = False) -> list[str]:
    try:
        used = _audit_head(conn)[0] or _events_head(conn)[0]
    except sqlite3.DatabaseError:
        used = 1
    if not used:
        return []  # a brand-new registry: nothing was ever written, so nothing was journaled yet
    what = f"The heads journal {journal} is empty" if empty else f"There is no heads journal at {journal}"
    return [(f"{what}: truncation cannot be checked (deleting the newest events or audit rows would go "
             f"unnoticed). If the journal was moved, point {JOURNAL_ENV} at it; if it was deleted, treat "
             "that as tampering.")]
