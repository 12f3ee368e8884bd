"""Face detection speed: the ``mtcnn`` package, the previous wrapper, and the fast MtcnnDetector.

Run from the repository root::

    .venv/bin/python benchmarks/bench_detector.py                # writes benchmarks/results/detector.json
    .venv/bin/python benchmarks/bench_detector.py --quick        # 10 rounds instead of 40
    .venv/bin/python benchmarks/bench_detector.py --equivalence  # also compare old and new on all 118 photos

Frames are real faces on a neutral grey background, the way a gate camera sees them: 5-celebrity val
faces cropped around the face and pasted at gate size, ~140–170 px faces on 640×480 and the same scene
1.5× larger on 1280×720 (a 720p camera with the same field of view), with one and with three faces.

Every figure is a median (and the best run) in milliseconds over ``--rounds`` calls after two warm-up
calls.  The rounds are interleaved — each round calls every configuration once — so load from other
processes on this shared machine spreads evenly over the configurations; the 1-minute load average
before and after each frame's rounds is recorded with its results (``load_1min``).  Configurations:

- ``package``: ``mtcnn.MTCNN().detect_faces(frame)`` with the package defaults (``min_face_size=20``),
  the naive baseline;
- ``old_minN``: :class:`core.vision.detector.PackageMtcnnDetector` (the previous wrapper, which downscales by
  ``20 / N`` before calling the package);
- ``new_minN``: :class:`core.vision.detector.MtcnnDetector` (fast stages, same results).

On 1280×720 ``min_face_size=120`` is the 640×480 ``80`` scaled with the frame, which is what a user of
a 720p camera would set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from benchmarks.bench_engine import machine
from core.types import iou

GREY = 96
PEOPLE_ONE = ("madonna",)
PEOPLE_THREE = ("ben_afflek", "madonna", "jerry_seinfeld")


def face_tile(seed: Any, person: str, face_px: int, margin: float = 0.2) -> np.ndarray:
    """The first val photo of ``person``, cropped ``margin`` × face size around the face, resized so
    the face box is about ``face_px`` wide (the reference detector finds the face)."""
    import cv2

    from core.vision.detector import PackageMtcnnDetector
    from core.vision.imageio import read_image

    path = min((seed.dataset / "val" / person).iterdir())
    image = read_image(path)
    x, y, w, h = PackageMtcnnDetector().detect(image)[0].box
    pad = int(margin * w)
    crop = image[max(0, y - pad): y + h + pad, max(0, x - pad): x + w + pad]
    scale = face_px / w
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def gate_frame(tiles: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Tiles spread evenly across a grey frame of ``shape`` (height, width), vertically centred."""
    frame = np.full((*shape, 3), GREY, np.uint8)
    gap = (shape[1] - sum(t.shape[1] for t in tiles)) // (len(tiles) + 1)
    if gap < 0:
        raise ValueError("the faces do not fit side by side in the frame")
    x = gap
    for tile in tiles:
        th = min(tile.shape[0], shape[0])
        y = (shape[0] - th) // 2
        frame[y:y + th, x:x + tile.shape[1]] = tile[:th]
        x += tile.shape[1] + gap
    return frame


def frames(seed: Any) -> dict[str, np.ndarray]:
    out = {}
    for label, people, face_px in (("1face", PEOPLE_ONE, 160), ("3faces", PEOPLE_THREE, 140)):
        for shape, k in (((480, 640), 1.0), ((720, 1280), 1.5)):
            tiles = [face_tile(seed, p, round(face_px * k)) for p in people]
            out[f"{shape[1]}x{shape[0]}_{label}"] = gate_frame(tiles, shape)
    return out


def interleaved(configs: dict[str, Callable[[], Any]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Milliseconds per call of every configuration, one call each per round."""
    for fn in configs.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(rounds):
        for key, fn in configs.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1000)
    return times


def speed(seed: Any, rounds: int, skip_slow: bool) -> dict[str, Any]:
    from mtcnn import MTCNN

    from core.vision.detector import MtcnnDetector, PackageMtcnnDetector

    package = MTCNN()
    results: dict[str, Any] = {}
    for fname, frame in frames(seed).items():
        min_faces = (20, 40, 60, 80) if fname.startswith("640") else (20, 40, 80, 120)
        configs: dict[str, Callable[[], Any]] = {}
        faces: dict[str, list[int]] = {}
        if not skip_slow:
            configs["package"] = lambda f=frame: package.detect_faces(f)
            faces["package"] = sorted(int(d["box"][2]) for d in package.detect_faces(frame))
        for mf in min_faces:
            new, old = MtcnnDetector(min_face_size=mf), PackageMtcnnDetector(min_face_size=mf)
            if not (skip_slow and mf < 80):
                configs[f"old_min{mf}"] = lambda d=old, f=frame: d.detect(f)
                faces[f"old_min{mf}"] = sorted(d.box[2] for d in old.detect(frame))
            configs[f"new_min{mf}"] = lambda d=new, f=frame: d.detect(f)
            faces[f"new_min{mf}"] = sorted(d.box[2] for d in new.detect(frame))
        load_before = os.getloadavg()[0]
        times = interleaved(configs, rounds)
        row = results[fname] = {"load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
        for key, ts in times.items():
            row[key] = {"median_ms": round(statistics.median(ts), 1), "best_ms": round(min(ts), 1),
                        "face_widths": faces[key]}
        print(f"\n{fname}  ({rounds} rounds; 1-min load average {row['load_1min'][0]} -> {row['load_1min'][1]})")
        print(f"  {'configuration':<14} {'median ms':>10} {'best ms':>9}   face widths (px)")
        for key, r in row.items():
            if key == "load_1min":
                continue
            print(f"  {key:<14} {r['median_ms']:>10.1f} {r['best_ms']:>9.1f}   {r['face_widths']}", flush=True)
    return results


def compare(ref: list[list[Any]], new: list[list[Any]]) -> dict[str, Any]:
    """Face counts, box IoU / corner shift, landmark shift (px) and confidence of ``new`` against ``ref``."""
    mismatched, ious, shifts, marks, confs = 0, [], [], [], []
    for r, n in zip(ref, new):
        if len(r) != len(n):
            mismatched += 1
            continue
        left = list(n)
        for a in r:
            b = max(left, key=lambda d: iou(a.box, d.box))
            left.remove(b)
            ious.append(iou(a.box, b.box))
            corners = [a.box[0] - b.box[0], a.box[1] - b.box[1], a.box[0] + a.box[2] - b.box[0] - b.box[2],
                       a.box[1] + a.box[3] - b.box[1] - b.box[3]]
            shifts.append(max(abs(c) for c in corners))
            marks.append(float(np.abs(a.landmarks_array() - b.landmarks_array()).max()))
            confs.append(abs(a.confidence - b.confidence))
    return {
        "photos": len(ref), "photos_with_other_count": mismatched,
        "faces_ref": sum(map(len, ref)), "faces_new": sum(map(len, new)),
        "box_iou_min": round(min(ious), 3), "box_iou_median": round(statistics.median(ious), 3),
        "box_corner_px_max": max(shifts), "box_corner_px_median": statistics.median(shifts),
        "landmark_px_max": round(max(marks), 2), "landmark_px_median": round(statistics.median(marks), 2),
        "confidence_abs_diff_max": float(f"{max(confs):.2g}"),
    }


def equivalence(seed: Any) -> dict[str, Any]:
    """The previous wrapper against the fast detector on every train and val photo."""
    from core.vision.detector import MtcnnDetector, PackageMtcnnDetector
    from core.vision.imageio import read_image

    photos = [read_image(p) for p in sorted(seed.dataset.rglob("*")) if p.is_file()]
    out = {}
    for mf in (20, 80):
        t0 = time.perf_counter()
        ref = [PackageMtcnnDetector(min_face_size=mf).detect(im) for im in photos]
        t1 = time.perf_counter()
        new = [MtcnnDetector(min_face_size=mf).detect(im) for im in photos]
        t2 = time.perf_counter()
        row = out[f"min{mf}"] = compare(ref, new)
        row["old_s"], row["new_s"] = round(t1 - t0, 1), round(t2 - t1, 1)
        print(f"\nequivalence min_face_size={mf}: {json.dumps(row)}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10 rounds")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--skip-slow", action="store_true", help="skip the package and old min 20/40")
    parser.add_argument("--equivalence", action="store_true", help="compare old and new on all 118 photos")
    args = parser.parse_args()
    rounds = 10 if args.quick else args.rounds

    from core.assets import ensure_seed_assets

    seed = ensure_seed_assets()
    results: dict[str, Any] = {"machine": machine(), "rounds": rounds, "load_before": os.getloadavg()}
    results["frames_ms"] = speed(seed, rounds, args.skip_slow)
    if args.equivalence:
        results["equivalence"] = equivalence(seed)
    results["load_after"] = os.getloadavg()
    print("\nMachine:", json.dumps(results["machine"]))
    print("Load average (1, 5, 15 min) before:", results["load_before"], "after:", results["load_after"])
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "detector.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nWrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
