"""Two processes on one registry: the console keeps its connections while HR's commands come and go.

SQLite relies on POSIX advisory locks, and closing *any* file descriptor of the database file drops
every such lock the process holds on it.  A raw read of the file's header (to refuse a non-SQLite file
with a clear message) while the process already had connections open made another process's close
believe it was the last user: it deleted the WAL and shared-memory files under the live connections,
and every later open in the first process failed with "disk I/O error".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_another_process_opening_and_closing_does_not_break_our_open_connections(tmp_path):
    from core.registry import NewEvent, Registry

    path = tmp_path / "facegate.db"
    writer = Registry.open(path)  # the console's event writer, open for hours
    try:
        writer.add_operator("E1", "Ada", actor="test")
        second = Registry.open(path)  # another thread of the same process opens (raw header read)
        second.close()
        # HR's command in another process: opens, writes, closes.
        code = ("import sys; from core.registry import Registry\n"
                "r = Registry.open(sys.argv[1]); r.add_operator('E2', 'Bob', actor='hr'); r.close()\n")
        proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert Path(str(path) + "-wal").exists() and Path(str(path) + "-shm").exists()
        again = Registry.open(path)  # a card look-up on the worker thread
        try:
            assert {op.employee_id for op in again.list_operators()} == {"E1", "E2"}
        finally:
            again.close()
        writer.record_events([NewEvent("gate", "unknown", None, {}, 1.2, None, "v1", "test")])
        assert writer.verify() == []
    finally:
        writer.close()
