"""Fault-injection helper for tests/core/test_training.py: a retrain the test kills with SIGKILL.

Usage: ``python tests/core/training_worker.py DB_PATH MODELS_DIR EMBEDDER VERSION SIGNATURE``.
Retrains from the registry and prints every progress report as ``<fraction> <message>``, flushed, so
the test can wait until the classifiers are being trained and then kill it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.registry import Registry
from core.registry.training import EmbedderInfo, retrain


def main() -> None:
    db, models, name, version, signature = sys.argv[1:6]
    with Registry.open(Path(db)) as reg:
        print("ready", flush=True)
        mv = retrain(reg, EmbedderInfo(name, version, signature), Path(models), actor="hr:worker",
                     progress=lambda fraction, message: print(f"{fraction:.3f} {message}", flush=True))
        print(f"finished {mv.id} {mv.status}", flush=True)


if __name__ == "__main__":
    main()
