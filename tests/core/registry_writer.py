"""Fault-injection helper for tests/core/test_registry.py: a writer the test kills with SIGKILL.

Usage: ``python tests/core/registry_writer.py DB_PATH COUNT``.  Records ``COUNT`` events, one
transaction each, and prints each event id on its own line, flushed, only after ``record_event``
returned (so every printed id is an acknowledged, durable event).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.registry import Registry


def main() -> None:
    path, count = Path(sys.argv[1]), int(sys.argv[2])
    with Registry.open(path) as reg:
        op = reg.add_operator("E-KILL", "Killed Writer", actor="test")
        print("ready", flush=True)
        for i in range(count):
            event_id = reg.record_event(
                camera="gate-1", decision="granted", operator_id=op,
                probabilities={"svc": {"E-KILL": 0.9}, "stacker": {"E-KILL": 0.8}}, distance=0.31 + i * 1e-4,
                thumbnail_jpeg=b"\xff\xd8" + os.urandom(3000), model_version="m1")
            sys.stdout.write(f"{event_id}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
