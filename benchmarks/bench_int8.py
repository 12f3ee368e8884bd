"""INT8 FaceNet under ONNX Runtime: speed, embeddings and the 5-celebrity figures (issue 13's experiment).

Run from the repository root::

    .venv/bin/python benchmarks/bench_int8.py            # writes benchmarks/results/int8.json
    .venv/bin/python benchmarks/bench_int8.py --quick    # three runtimes, fewer repeats, writes nothing

Issue 13 allows INT8 only "as a measured experiment: report its accuracy on the 5-celebrity set and
its open-set figures; make it an option only if those do not get worse".  This measures that:

* ``variants``: the cached FP32 FaceNet ONNX file (:class:`~core.vision.onnx_embedder.OnnxEmbedder`)
  quantized with ``onnxruntime.quantization`` (after its ``quant_pre_process``): dynamic (weights
  INT8 ahead of time, activations quantized per call: ``ConvInteger``) with signed 7-bit weights
  (``reduce_range``: no overflow in AVX2's u8×s8 multiply-add) or unsigned 8-bit ones; and static
  QDQ (``QLinearConv`` after fusion), activations calibrated (min/max) on the aligned *train* faces,
  weights per channel or per tensor.  The files go to a temporary folder, never the repository or
  the model cache.
* ``speed``: one process per runtime (as ``bench_onnx.py``), alternated over ``--rounds`` rounds;
  each loads its file with :func:`~core.vision.onnx_embedder.session_options` (2 intra-op threads,
  no spinning) and reports the median ms per face of ``--repeats`` calls at batch 1 and batch 4 on
  20 aligned val faces, and the CPU time per face.
* ``embeddings``: every train, val and stranger face embedded by each runtime, against FP32:
  largest absolute difference and lowest cosine of the L2-normalised embeddings.
* ``accuracy``: per runtime, the three models trained as ``facegate evaluate`` trains them
  (:func:`~core.recognition.evaluate.train_topped_up` on :func:`~core.recognition.dataset.embed_folder`'s
  train set): each model's val accuracy, the gated decision's val accept rate (named right), the 4
  strangers (Obama ×3, Biden) rejected, and the leave-one-identity-out open set as ``evaluate``
  defines it (each person left out in turn; their train and val photos presented as impostors, the
  others' val photos as genuine).  These saturate on five people, so ``headroom`` adds how close
  the closest call came to the threshold.  ``mixed``: the FP32 models (and FP32 fold models)
  queried with INT8 embeddings — what switching a site with an FP32 gallery to INT8 would do.

Faces are detected once (MTCNN, memoised per image) and aligned by the pipeline for every runtime;
the embedding cache is not used (its key does not tell INT8 from FP32).  ``train_topped_up`` still
opens its augmentation cache under each INT8 runtime's own name: an empty folder per runtime in
``<cache>/embeddings/``, since every person has enough photos to need no augmented copies.  No assertions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from benchmarks.bench_onnx import _loadavg, _version

BATCHES = (1, 4)
N_FACES = 20
# name -> how it is made; "fp32" is the cached file itself.
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"kind": "fp32"},
    "dynamic_s8_rr": {"kind": "dynamic", "weight_type": "QInt8", "per_channel": False, "reduce_range": True},
    "dynamic_u8": {"kind": "dynamic", "weight_type": "QUInt8", "per_channel": False, "reduce_range": False},
    "static_qdq_pc_rr": {"kind": "static", "weight_type": "QInt8", "activation_type": "QUInt8",
                         "per_channel": True, "reduce_range": True, "calibration": "MinMax, train faces"},
    "static_qdq_pt_rr": {"kind": "static", "weight_type": "QInt8", "activation_type": "QUInt8",
                         "per_channel": False, "reduce_range": True, "calibration": "MinMax, train faces"},
}
QUICK_VARIANTS = ("fp32", "dynamic_s8_rr", "static_qdq_pc_rr")


# --------------------------------------------------------------------------------------------
# Runtimes


class FileEmbedder:
    """An ONNX FaceNet file run exactly as :class:`OnnxEmbedder` runs its own (options, pre/post-processing)."""

    embedding_size = 128
    input_size = 160
    backend = "onnx"

    def __init__(self, name: str, version: str, path: Path, threads: int) -> None:
        # A name of its own: the pipeline's signature (cache keys, model sidecars) must not pass for FP32's.
        self.name = name
        self.version = version
        self.path = path
        self.threads = threads
        self._session: Any = None

    def load(self) -> None:
        import onnxruntime as ort

        from core.vision.onnx_embedder import session_options

        if self._session is None:
            self._session = ort.InferenceSession(self.path.read_bytes(), session_options(self.threads),
                                                 providers=["CPUExecutionProvider"])

    def embed(self, faces: np.ndarray) -> np.ndarray:
        from core.vision.onnx_embedder import _run

        batch = np.asarray(faces)
        if batch.ndim == 3:
            batch = batch[np.newaxis]
        if len(batch) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        self.load()
        return _run(self._session, batch)


class MemoDetector:
    """Delegates to a detector, remembering its answer per image: each photo is detected once for all runtimes."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        self._seen: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:  # min_face_size etc., for the pipeline's signature
        return getattr(self._detector, name)

    def detect(self, image: np.ndarray) -> Any:
        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() + str(image.shape)
        if key not in self._seen:
            self._seen[key] = self._detector.detect(image)
        return self._seen[key]


def worker(path: Path, faces_file: Path, out_file: Path, repeats: int, threads: int,
           max_seconds: float = 20.0) -> dict:
    """Time one ONNX file in this process (ONNX Runtime only); write its embeddings to ``out_file``."""
    faces = np.load(faces_file)
    t0 = time.perf_counter()
    import onnxruntime  # noqa: F401

    emb = FileEmbedder("timed", "-", path, threads)
    emb.load()
    row: dict = {"threads": threads, "load_s": round(time.perf_counter() - t0, 2)}
    np.save(out_file, emb.embed(faces))
    for b in BATCHES:
        batches = [faces[(i * b) % len(faces):(i * b) % len(faces) + b] for i in range(len(faces) // b)]
        for k in range(3):
            emb.embed(batches[k % len(batches)])
        wall, cpu = [], []
        stop = time.perf_counter() + max_seconds  # the slow dynamic variants: fewer calls, at least 15
        for i in range(repeats):
            if i >= 15 and time.perf_counter() > stop:
                break
            c0, w0 = time.process_time(), time.perf_counter()
            emb.embed(batches[i % len(batches)])
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        row[f"batch{b}_ms_per_face"] = round(statistics.median(wall) * 1000 / b, 1)
        row[f"batch{b}_cpu_ms_per_face"] = round(statistics.median(cpu) * 1000 / b, 1)
        row[f"batch{b}_calls"] = len(wall)
    row["tensorflow_imported"] = "tensorflow" in sys.modules
    return row


# --------------------------------------------------------------------------------------------
# Quantization


class _Faces:
    """``onnxruntime.quantization`` calibration reader: prewhitened aligned faces, 8 at a time."""

    def __init__(self, faces: np.ndarray, input_name: str) -> None:
        from core.vision.facenet import prewhiten

        x = prewhiten(faces)
        self._batches = iter([{input_name: x[i:i + 8]} for i in range(0, len(x), 8)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize(name: str, spec: dict[str, Any], fp32: Path, folder: Path, calibration: np.ndarray) -> Path:
    """Write variant ``name`` of ``fp32`` into ``folder``; return its path."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = folder / "facenet-pre.onnx"
    if not pre.exists():  # shape inference + graph optimisation, as onnxruntime recommends before quantizing
        # skip_symbolic_shape: sympy is not a FaceGate dependency, and every shape but the batch is fixed.
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    out = folder / f"facenet-{name}.onnx"
    if spec["kind"] == "dynamic":
        quantize_dynamic(pre, out, per_channel=spec["per_channel"], reduce_range=spec["reduce_range"],
                         weight_type=getattr(QuantType, spec["weight_type"]))
    else:
        import onnx

        input_name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
        quantize_static(pre, out, _Faces(calibration, input_name), quant_format=QuantFormat.QDQ,
                        per_channel=spec["per_channel"], reduce_range=spec["reduce_range"],
                        activation_type=getattr(QuantType, spec["activation_type"]),
                        weight_type=getattr(QuantType, spec["weight_type"]),
                        calibrate_method=CalibrationMethod.MinMax)
    return out


# --------------------------------------------------------------------------------------------
# Accuracy


def decided_as(model: Any, x: np.ndarray) -> list[str]:
    return [d[2].identity for d in model.decide(x)] if len(x) else []


def headroom(model: Any, genuine: np.ndarray, truth: np.ndarray, impostors: np.ndarray) -> dict[str, float]:
    """How far from the threshold the closest calls were: the figures saturate on 5 people, these do not.

    ``genuine``: the smallest ``threshold - distance`` of a genuine face (negative: rejected or too
    far); ``impostor``: the smallest ``distance - threshold`` of an impostor (negative: accepted);
    ``min_p_truth``: per model, the lowest probability given to a genuine face's true name.
    """
    g = model.decide(genuine) if len(genuine) else []
    i = model.decide(impostors) if len(impostors) else []
    out = {"genuine": min((d[2].threshold - d[2].distance for d in g), default=float("nan")),
           "impostor": min((d[2].distance - d[2].threshold for d in i), default=float("nan"))}
    out = {k: round(float(v), 4) for k, v in out.items()}
    for name in model.classifiers:
        out[f"min_p_truth_{name}"] = round(min((d[1][name].get(str(t), 0.0) for d, t in zip(g, truth)),
                                               default=float("nan")), 4)
    return out


def closed_and_open(model: Any, val: Any, strangers: Any) -> dict[str, Any]:
    """Each model's val accuracy, the gate's val accept rate, strangers rejected (``evaluate``'s figures)."""
    from core.recognition.engine import MODEL_NAMES
    from core.types import UNKNOWN

    val_decisions = decided_as(model, val.x)
    return {
        "val_accuracy": {n: round(float(np.mean(model.classifiers[n].predict(val.x) == val.y)), 4)
                         for n in MODEL_NAMES},
        "val_right": {n: int(np.sum(model.classifiers[n].predict(val.x) == val.y)) for n in MODEL_NAMES},
        "val_faces": len(val),
        "enrolled_val_accept_rate": round(float(np.mean([d == t for d, t in zip(val_decisions, val.y)])), 4),
        "strangers_rejected": sum(d == UNKNOWN for d in decided_as(model, strangers.x)),
        "strangers": len(strangers),
        "decisions": val_decisions + decided_as(model, strangers.x),
        "headroom": headroom(model, val.x, val.y, strangers.x),
    }


def fold_models(train: Any, pipeline: Any) -> dict[str, Any]:
    """``evaluate``'s leave-one-identity-out fold models: each person left out of training in turn."""
    from benchmarks.bench_few_photos import subset_rows
    from core.recognition.evaluate import train_topped_up

    return {p: train_topped_up(subset_rows(train, train.y != p), pipeline)[0] for p in sorted(set(train.y.tolist()))}


def leave_one_identity_out(folds: dict[str, Any], train: Any, val: Any) -> dict[str, Any]:
    """Genuine accept and impostor reject rates as ``evaluate`` counts them, probes from ``train``/``val``.

    The fold models may have been fitted on another runtime's embeddings (the mixed case).
    """
    from core.types import UNKNOWN

    genuine, impostor, rooms = [], [], []
    for person, model in folds.items():
        others = val.y != person
        genuine += [d == t for d, t in zip(decided_as(model, val.x[others]), val.y[others])]
        probes = np.concatenate([train.x[train.y == person], val.x[val.y == person]])
        impostor += [d == UNKNOWN for d in decided_as(model, probes)]
        rooms.append(headroom(model, val.x[others], val.y[others], probes))
    return {"genuine_accept_rate": round(float(np.mean(genuine)), 4),
            "impostor_reject_rate": round(float(np.mean(impostor)), 4),
            "genuine_faces": len(genuine), "impostor_faces": len(impostor),
            "headroom": {k: min(r[k] for r in rooms) for k in rooms[0]}}


def embedding_diff(a: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {"max_abs_diff": float(np.abs(a.astype(np.float64) - ref).max()),
            "min_cosine": round(float(np.min(np.sum(a.astype(np.float64) * ref, axis=1))), 6),
            "median_cosine": round(float(np.median(np.sum(a.astype(np.float64) * ref, axis=1))), 6)}


def accuracy(runtimes: dict[str, Any], detector: MemoDetector) -> tuple[dict[str, Any], dict[str, Any]]:
    """Embed the seed sets with every runtime; train, score and cross-query the models."""
    from core.assets import ensure_seed_assets, ensure_strangers
    from core.recognition.dataset import embed_folder
    from core.recognition.engine import FacePipeline

    seed = ensure_seed_assets()
    sets: dict[str, dict[str, Any]] = {}
    pipelines: dict[str, Any] = {}
    for name, embedder in runtimes.items():
        t0 = time.perf_counter()
        pipelines[name] = pipe = FacePipeline(detector=detector, embedder=embedder)
        sets[name] = {"train": embed_folder(seed.dataset / "train", pipe, use_cache=False),
                      "val": embed_folder(seed.dataset / "val", pipe, use_cache=False),
                      "strangers": embed_folder(ensure_strangers(), pipe, use_cache=False)}
        print(f"embedded with {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    ref = sets["fp32"]
    diffs = {}
    for name, s in sets.items():
        for part in ("train", "val", "strangers"):
            assert [p.name for p in s[part].paths] == [p.name for p in ref[part].paths], "faces differ by runtime"
        diffs[name] = embedding_diff(np.concatenate([s[p].x for p in ("train", "val", "strangers")]),
                                     np.concatenate([ref[p].x for p in ("train", "val", "strangers")]))

    figures: dict[str, Any] = {}
    fp32_model = fp32_folds = None
    for name, s in sets.items():
        t0 = time.perf_counter()
        from core.recognition.evaluate import train_topped_up

        model = train_topped_up(s["train"], pipelines[name])[0]
        folds = fold_models(s["train"], pipelines[name])
        row = closed_and_open(model, s["val"], s["strangers"])
        row["threshold"] = round(model.threshold, 4)
        row["leave_one_identity_out"] = leave_one_identity_out(folds, s["train"], s["val"])
        if name == "fp32":
            fp32_model, fp32_folds = model, folds
        else:  # the FP32 site, now embedding with this runtime
            assert fp32_model is not None and fp32_folds is not None
            mixed = closed_and_open(fp32_model, s["val"], s["strangers"])
            mixed["leave_one_identity_out"] = leave_one_identity_out(fp32_folds, s["train"], s["val"])
            row["mixed_fp32_models"] = mixed
        figures[name] = row
        print(f"{name}: trained and scored in {time.perf_counter() - t0:.0f} s", flush=True)
    reference = figures["fp32"]["decisions"]
    for name, row in figures.items():
        for r in (row, row.get("mixed_fp32_models")):
            if r is not None:
                ds = r.pop("decisions")
                r["decisions_differing_from_fp32"] = sum(a != b for a, b in zip(ds, reference))
    return figures, {"diffs": diffs, "faces": {p: len(ref[p]) for p in ("train", "val", "strangers")},
                     "skipped": sum(len(ref[p].skipped) for p in ("train", "val", "strangers"))}


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fp32, dynamic_s8_rr and static only; 40 repeats, "
                        "one round; writes nothing")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--faces", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--emb", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from core.vision.onnx_embedder import INTRA_OP_THREADS

        print(json.dumps(worker(args.worker, args.faces, args.emb, args.repeats, args.threads or INTRA_OP_THREADS)))
        return 0

    started = time.perf_counter()
    repeats, rounds = (40, 1) if args.quick else (args.repeats, args.rounds)
    names = QUICK_VARIANTS if args.quick else tuple(VARIANTS)
    load_at_start = _loadavg()
    from benchmarks.bench_engine import machine
    from core.vision.detector import MtcnnDetector
    from core.vision.onnx_embedder import INTRA_OP_THREADS, OnnxEmbedder

    fp32 = OnnxEmbedder()
    fp32.load()
    assert fp32.onnx_path_ is not None
    detector = MemoDetector(MtcnnDetector())
    results: dict[str, Any] = {
        "machine": machine(), "onnxruntime": _version("onnxruntime"), "onnx": _version("onnx"),
        "command": " ".join([".venv/bin/python benchmarks/bench_int8.py", *sys.argv[1:]]),
        "repeats": repeats, "rounds": rounds, "threads": INTRA_OP_THREADS, "fp32_file": fp32.onnx_path_.name,
        "variants": {n: VARIANTS[n] for n in names},
    }
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp_name:
        tmp = Path(tmp_name)
        from core.assets import ensure_seed_assets
        from core.recognition.engine import FacePipeline

        # Calibration faces: the train photos, detected and aligned as the pipeline does.
        pipe = FacePipeline(detector=detector, embedder=fp32)
        calibration = aligned(ensure_seed_assets().dataset / "train", pipe)
        paths: dict[str, Path] = {}
        for name in names:
            t0 = time.perf_counter()
            if VARIANTS[name]["kind"] == "fp32":
                paths[name] = fp32.onnx_path_
            else:
                try:
                    paths[name] = quantize(name, VARIANTS[name], fp32.onnx_path_, tmp, calibration)
                except Exception as exc:  # noqa: BLE001  (a variant this onnxruntime cannot make is a result)
                    results["variants"][name]["failed"] = repr(exc)[:500]
                    print(f"{name}: quantization failed: {exc!r}", flush=True)
                    continue
            results["variants"][name].update({"bytes": paths[name].stat().st_size,
                                              "quantize_s": round(time.perf_counter() - t0, 1)})
            print(f"{name}: {paths[name].stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s", flush=True)
        results["calibration_faces"] = len(calibration)

        # Speed: one process per runtime, alternated, before the accuracy work loads the machine.
        # bench_onnx.py's timing faces: the first four val photos of each person.
        faces = aligned(ensure_seed_assets().dataset / "val", pipe, per_person=N_FACES // 5)
        faces_file = tmp / "faces.npy"
        np.save(faces_file, faces)
        runs: list[dict] = []
        for r in range(rounds):
            for name, path in paths.items():
                emb_file = tmp / f"{name}-{r}.npy"
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(path), "--faces", str(faces_file),
                       "--emb", str(emb_file), "--repeats", str(repeats), "--threads", str(INTRA_OP_THREADS)]
                proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)
                if proc.returncode != 0:
                    print(f"{name}: worker failed\n{proc.stderr[-3000:]}", file=sys.stderr)
                    results["variants"][name]["worker_failed"] = proc.stderr[-500:]
                    continue
                row = {"variant": name, "round": r, "load_average_before": _loadavg(), **json.loads(proc.stdout.strip().splitlines()[-1])}
                row.update(embedding_diff(np.load(emb_file), np.load(tmp / f"fp32-{r}.npy")))
                runs.append(row)
                print(json.dumps(row), flush=True)
        speed: dict[str, Any] = {}
        for name in paths:
            rows = [r for r in runs if r["variant"] == name]
            if not rows:
                continue
            speed[name] = {k: round(statistics.median(r[k] for r in rows), 1) for k in
                           (f"batch{b}_{w}ms_per_face" for b in BATCHES for w in ("", "cpu_"))}
            for b in BATCHES:
                k = f"batch{b}_ms_per_face"
                fp = [r[k] for r in runs if r["variant"] == "fp32"]
                speed[name][f"batch{b}_speedup_over_fp32"] = round(statistics.median(fp) / speed[name][k], 2)
                speed[name][f"batch{b}_speedup_per_round"] = [round(f / r[k], 2) for f, r in zip(fp, rows)]
        results["speed"] = {"faces": len(faces), "summary": speed, "runs": runs}
        results["load_average_after_speed"] = _loadavg()

        # Accuracy: the same photos through every runtime that runs.
        runtimes = {n: (fp32 if n == "fp32" else FileEmbedder(f"facenet-{n}", fp32.version, p, INTRA_OP_THREADS))
                    for n, p in paths.items() if n in speed}
        figures, embedded = accuracy(runtimes, detector)
    results["embeddings_vs_fp32"] = embedded
    results["accuracy"] = figures
    results["load_average"] = {"start": load_at_start, "end": _loadavg()}
    results["seconds"] = round(time.perf_counter() - started)
    print("\n" + table(results))
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results" / "int8.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_suffix(".json.tmp")
        tmp_out.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp_out, out)
        print(f"\nwrote {out}")
    return 0


def aligned(root: Path, pipeline: Any, per_person: int | None = None) -> np.ndarray:
    """The aligned face of each usable photo under ``root/<person>/`` (one face per photo, as
    ``embed_folder`` requires), the first ``per_person`` photos of each person or all."""
    from core.errors import FaceGateError
    from core.recognition.dataset import iter_photos
    from core.vision.imageio import read_image

    crops = []
    taken: dict[str, int] = {}
    for person, path in iter_photos(root):
        if per_person is not None and taken.get(person, 0) >= per_person:
            continue
        taken[person] = taken.get(person, 0) + 1
        try:
            image = read_image(path)
            det, _ = pipeline.single_face(image, path.name)
        except FaceGateError:
            continue
        crops.append(pipeline.align(image, [det])[0])
    return np.stack(crops)


def table(results: dict[str, Any]) -> str:
    """The markdown table of docs/int8.md."""
    lines = [("| runtime | b1 ms/face | b4 ms/face | max diff | min cos | SVC | stacker | SL | gate val | "
              "strangers rej. | LOIO genuine | LOIO impostor rej. | mixed: SVC/stk/SL | mixed gate val | "
              "mixed strangers | mixed LOIO gen./imp. |"),
             "|" + "---|" * 16]
    for name, row in results["accuracy"].items():
        sp = results["speed"]["summary"][name]
        d = results["embeddings_vs_fp32"]["diffs"][name]
        acc = row["val_right"]
        loio = row["leave_one_identity_out"]
        cells = [name, sp["batch1_ms_per_face"], sp["batch4_ms_per_face"], f"{d['max_abs_diff']:.1e}",
                 f"{d['min_cosine']:.4f}", *(f"{acc[m]}/{row['val_faces']}" for m in acc),
                 row["enrolled_val_accept_rate"], f"{row['strangers_rejected']}/{row['strangers']}",
                 loio["genuine_accept_rate"], loio["impostor_reject_rate"]]
        mixed = row.get("mixed_fp32_models")
        if mixed:
            ml = mixed["leave_one_identity_out"]
            cells += ["/".join(str(v) for v in mixed["val_right"].values()), mixed["enrolled_val_accept_rate"],
                      f"{mixed['strangers_rejected']}/{mixed['strangers']}",
                      f"{ml['genuine_accept_rate']}/{ml['impostor_reject_rate']}"]
        else:
            cells += ["—"] * 4
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Headroom (distance to the threshold of the closest call; negative = wrong side):", "",
              ("| runtime | val genuine | strangers | LOIO genuine | LOIO impostor | lowest p(true name) SVC/stk/SL | "
               "mixed: val genuine | strangers | LOIO genuine | LOIO impostor |"), "|" + "---|" * 10]
    for name, row in results["accuracy"].items():
        cells = [name]
        for r in (row, row.get("mixed_fp32_models")):
            if r is None:
                cells += ["—"] * 4
                continue
            h, lh = r["headroom"], r["leave_one_identity_out"]["headroom"]
            cells += [h["genuine"], h["impostor"], lh["genuine"], lh["impostor"]]
            if r is row:
                cells.append("/".join(str(h[f"min_p_truth_{m}"]) for m in ("svc", "stacker", "super_learner")))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
