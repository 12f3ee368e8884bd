"""What HR's signature costs: verifying and signing the state of a 1,000-person registry.

Run from the repository root::

    .venv/bin/python benchmarks/bench_signing.py
    .venv/bin/python benchmarks/bench_signing.py --people 2000 --photos 10 --out /tmp/signing.json

It builds a registry with ``--people`` operators of ``--photos`` photos each (random 40 KB "images", the
size of an enrolled JPEG, and random unit 128-d embeddings: the digests do not care what the bytes
show), creates the first HR account, and measures:

- ``verify_ms``: :func:`core.registry.signing.verify_state` (every section's digest and the signature),
  what the console and ``facegate monitor`` do before they use a gallery, and the model watcher on each
  change;
- ``sign_ms``: :func:`core.registry.signing.sign_state` (a verification of the previous signature, the
  digests, the Ed25519 signature), what every HR action adds;
- ``login_ms``: :func:`core.registry.accounts.login` (scrypt, n=2**15, r=8), what an HR login costs.

Medians of ``--repeats`` runs, with the machine and its load average.  No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(path: Path, people: int, photos: int) -> None:
    from core.registry import Registry

    rng = np.random.default_rng(0)
    with Registry.open(path) as reg, reg.transaction():
        for p in range(people):
            op = reg.add_operator(f"E{p:05d}", f"Person {p}", "Ops", actor="bench")
            ids = [reg.add_photo(op, rng.bytes(40_000), "file:bench", None, {"sharpness": 100.0}, actor="bench")
                   for _ in range(photos)]
            vectors = rng.normal(size=(photos, 128)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            reg.add_embeddings(list(zip(ids, vectors)), "facenet", "bench")


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - start))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "signing.json"))
    args = parser.parse_args()

    from core.registry import Registry
    from core.registry.accounts import init_accounts, login
    from core.registry.signing import sign_state, verify_state

    work = Path(tempfile.mkdtemp(prefix="facegate-bench-signing-"))
    os.environ["FACEGATE_TRUST_DIR"] = str(work / "trust")
    db = work / "facegate.db"
    start = time.perf_counter()
    build(db, args.people, args.photos)
    build_s = time.perf_counter() - start
    passphrase = "correct horse battery staple"
    with Registry.open(db) as reg:
        session = init_accounts(reg, "alice", passphrase)
        assert verify_state(reg).ok
        verify = timed(lambda: verify_state(reg), args.repeats)
        sign = timed(lambda: sign_state(reg, session, reason="bench"), args.repeats)
        logins = timed(lambda: login(reg, "alice", passphrase, action="bench"), args.repeats)
    result = {
        "people": args.people, "photos_per_person": args.photos, "db_mb": round(db.stat().st_size / 1e6, 1),
        "build_s": round(build_s, 1),
        "verify_ms": {"median": round(statistics.median(verify), 1), "max": round(max(verify), 1)},
        "sign_ms": {"median": round(statistics.median(sign), 1), "max": round(max(sign), 1)},
        "login_ms": {"median": round(statistics.median(logins), 1), "max": round(max(logins), 1)},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "load_average": [round(x, 2) for x in os.getloadavg()]},
        "command": "python benchmarks/bench_signing.py " + " ".join(sys.argv[1:]),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
