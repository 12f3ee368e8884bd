"""FaceNet embedding: TensorFlow (today's ``tf.function`` path) against ONNX Runtime (issue 13).

Run from the repository root::

    .venv/bin/python benchmarks/bench_onnx.py             # writes benchmarks/results/onnx.json
    .venv/bin/python benchmarks/bench_onnx.py --quick     # fewer repeats, one round

One runtime per process, as the issue measured (loading TensorFlow and ONNX Runtime in one process
slows both): the parent aligns 20 real 5-celebrity val faces with the pipeline and makes sure the
ONNX file is converted and cached, then starts one worker process per runtime and configuration,
alternating them over ``--rounds`` rounds so that a change in the machine's load hits every runtime
alike.  Each worker imports only its runtime, loads the embedder, warms it up and reports the median
ms per face of ``--repeats`` calls at batch 1 and batch 4 (cycling through the 20 faces), its import
and load times, its CPU time per face and its embeddings (compared with TensorFlow's by the parent).
Ratios are TensorFlow's median over ONNX Runtime's, per round, and of the medians over all rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

BATCHES = (1, 4)
N_FACES = 20


def worker(runtime: str, faces_file: Path, out_file: Path, repeats: int, threads: int) -> dict:
    """Time one runtime in this process; write its embeddings to ``out_file``."""
    faces = np.load(faces_file)
    t0 = time.perf_counter()
    if runtime == "tf":
        import tensorflow  # noqa: F401  (timed on its own: the import is most of a cold start)

        t1 = time.perf_counter()
        from core.vision.facenet import FaceNetEmbedder

        emb = FaceNetEmbedder()
    else:
        import onnxruntime  # noqa: F401

        t1 = time.perf_counter()
        from core.vision.onnx_embedder import OnnxEmbedder

        emb = OnnxEmbedder(threads=threads)
    emb.load()
    t2 = time.perf_counter()
    row: dict = {"runtime": runtime, "threads": threads if runtime == "onnx" else "tf default (all cores)",
                 "import_s": round(t1 - t0, 2), "load_s": round(t2 - t1, 2)}
    if runtime == "onnx":
        row["loaded_from_cache"] = bool(emb.loaded_from_cache_)
    np.save(out_file, emb.embed(faces))
    for b in BATCHES:
        batches = [faces[(i * b) % len(faces):(i * b) % len(faces) + b] for i in range(len(faces) // b)]
        for k in range(3):
            emb.embed(batches[k % len(batches)])
        wall, cpu = [], []
        for i in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            emb.embed(batches[i % len(batches)])
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        row[f"batch{b}_ms_per_face"] = round(statistics.median(wall) * 1000 / b, 1)
        row[f"batch{b}_cpu_ms_per_face"] = round(statistics.median(cpu) * 1000 / b, 1)
    row["tensorflow_imported"] = "tensorflow" in sys.modules
    return row


def aligned_faces(n: int) -> np.ndarray:
    """``n`` real aligned val faces (four per person), detected and aligned as the pipeline does."""
    from core.assets import ensure_seed_assets
    from core.recognition.engine import FacePipeline
    from core.vision.imageio import read_image

    pipeline = FacePipeline()
    val = ensure_seed_assets().dataset / "val"
    crops = []
    for person in sorted(p for p in val.iterdir() if p.is_dir()):
        for path in sorted(person.iterdir())[: n // 5]:
            image = read_image(path)
            found = pipeline.detector.detect(image)
            if found:
                crops.append(pipeline.align(image, [max(found, key=lambda d: d.box[2] * d.box[3])])[0])
    return np.stack(crops)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 repeats, one round")
    parser.add_argument("--repeats", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", choices=("tf", "onnx"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--faces", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from core.vision.onnx_embedder import INTRA_OP_THREADS

        print(json.dumps(worker(args.worker, args.faces, args.out, args.repeats, args.threads or INTRA_OP_THREADS)))
        return 0

    repeats, rounds = (40, 1) if args.quick else (args.repeats, args.rounds)
    from benchmarks.bench_engine import machine
    from core.vision.onnx_embedder import INTRA_OP_THREADS, OnnxEmbedder

    load_at_start = _loadavg()
    faces = aligned_faces(N_FACES)
    t0 = time.perf_counter()
    onnx = OnnxEmbedder()
    onnx.load()  # converts (and checks) once if the cache has no valid file
    prepare = {"onnx_file": onnx.onnx_path_.name if onnx.onnx_path_ else None,
               "converted_now": not onnx.loaded_from_cache_, "prepare_s": round(time.perf_counter() - t0, 1),
               "max_abs_diff_at_conversion": onnx.max_abs_diff_}
    del onnx
    configs = [("tf", 0), ("onnx", INTRA_OP_THREADS), ("onnx", 1 if INTRA_OP_THREADS != 1 else 2)]
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        faces_file = Path(tmp) / "faces.npy"
        np.save(faces_file, faces)
        for r in range(rounds):
            for runtime, threads in configs:
                out = Path(tmp) / f"{runtime}-{threads}-{r}.npy"
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", runtime, "--faces", str(faces_file),
                       "--out", str(out), "--repeats", str(repeats), "--threads", str(threads or 1)]
                proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return 1
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row["round"] = r
                row["embeddings"] = out.name
                runs.append(row)
                print(json.dumps(row))
        reference = np.load(Path(tmp) / "tf-0-0.npy")
        for row in runs:
            emb = np.load(Path(tmp) / row.pop("embeddings"))
            row["max_abs_diff_vs_tf"] = float(np.abs(emb.astype(np.float64) - reference).max())
            row["min_cosine_vs_tf"] = round(float(np.min(np.sum(emb * reference, axis=1))), 8)

    def key(row: dict) -> str:
        return "tf" if row["runtime"] == "tf" else f"onnx_{row['threads']}threads"

    summary: dict = {}
    for name in dict.fromkeys(key(r) for r in runs):
        rows = [r for r in runs if key(r) == name]
        summary[name] = {f"batch{b}_ms_per_face": round(statistics.median(r[f"batch{b}_ms_per_face"] for r in rows), 1)
                         for b in BATCHES}
        summary[name].update({f"batch{b}_cpu_ms_per_face": round(statistics.median(
            r[f"batch{b}_cpu_ms_per_face"] for r in rows), 1) for b in BATCHES})
        summary[name]["import_s"] = round(statistics.median(r["import_s"] for r in rows), 2)
        summary[name]["load_s"] = round(statistics.median(r["load_s"] for r in rows), 2)
        summary[name]["max_abs_diff_vs_tf"] = max(r["max_abs_diff_vs_tf"] for r in rows)
    ratios: dict = {}
    for name in summary:
        if name == "tf":
            continue
        for b in BATCHES:
            k = f"batch{b}_ms_per_face"
            ratios[f"{name}_batch{b}"] = {
                "of_medians": round(summary["tf"][k] / summary[name][k], 2),
                "per_round": [round(t[k] / o[k], 2) for t, o in zip(
                    [r for r in runs if key(r) == "tf"], [r for r in runs if key(r) == name])],
            }
    results = {
        "machine": machine(), "onnxruntime": _version("onnxruntime"), "tf2onnx": _version("tf2onnx"),
        "command": " ".join(["benchmarks/bench_onnx.py", *sys.argv[1:]]), "repeats": repeats, "rounds": rounds,
        "faces": len(faces), "load_average": {"start": load_at_start, "end": _loadavg()}, "prepare": prepare,
        "summary": summary, "speedup_tf_over_onnx": ratios, "runs": runs,
        "targets": {"batch1": ">= 1.8x", "batch4": ">= 1.25x"},
    }
    print("\nMachine:", json.dumps(results["machine"]))
    for name, row in summary.items():
        print(f"  {name:<18} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    for name, row in ratios.items():
        print(f"  TF/ONNX {name:<26} {row['of_medians']}  (rounds {row['per_round']})")
    path = ROOT / "benchmarks" / "results" / "onnx.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path}")
    return 0


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
