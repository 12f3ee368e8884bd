"""Registry benchmark: enroll N synthetic operators × M embeddings, then retrain all three models.

Run from the repository root::

    .venv/bin/python benchmarks/bench_registry.py                 # 1,000 × 10, writes benchmarks/results/registry.json
    .venv/bin/python benchmarks/bench_registry.py --people 200    # smaller

Embeddings are sampled around random centres on the unit sphere (fine for timing; accuracy is measured
on the real photos by ``facegate evaluate``). Photos are tiny placeholder JPEGs: what is timed is the
registry's writes and the retrain, not the camera. Peak memory is the process's maximum resident set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))



def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--per", type=int, default=10)
    args = parser.parse_args()

    from benchmarks.bench_engine import machine, synthetic
    from core.registry import Registry
    from core.training import EmbedderInfo, retrain

    x, y = synthetic(args.people, args.per)
    info = EmbedderInfo("facenet-keras-taniai-msceleb1m", "synthetic", "synthetic-benchmark")
    jpeg = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
    result: dict = {"machine": machine(), "people": args.people, "per_person": args.per}
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry.open(Path(tmp) / "facegate.db")
        t0 = time.perf_counter()
        with reg.transaction():
            for p in range(args.people):
                emp = y[p * args.per]
                op = reg.add_operator(emp, f"Operator {p}", "bench", actor="bench")
                items = []
                for j in range(args.per):
                    photo = reg.add_photo(op, jpeg + f"{p}-{j}".encode(), "bench", None, {}, actor="bench")
                    items.append((photo, x[p * args.per + j]))
                reg.add_embeddings(items, info.name, info.version)
        result["enroll_s"] = round(time.perf_counter() - t0, 2)
        print(f"enrolled {args.people} × {args.per} in {result['enroll_s']} s", flush=True)

        stages: list[tuple[float, str]] = []
        t0 = time.perf_counter()
        version = retrain(reg, info, Path(tmp) / "models", actor="bench",
                          progress=lambda f, m: stages.append((time.perf_counter() - t0, m)))
        result["retrain_s"] = round(time.perf_counter() - t0, 2)
        result["retrain_status"] = version.status
        result["fit_seconds"] = version.metrics.get("fit_seconds")
        reg.close()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"retrained in {result['retrain_s']} s ({result['retrain_status']}); per model: {result['fit_seconds']}")
    print(f"peak resident memory {result['peak_rss_mb']} MB")
    print("machine:", json.dumps(result["machine"]))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "registry.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'registry.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
