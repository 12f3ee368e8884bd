"""The ``facegate`` command line.

Every error reaches the user as one line (``facegate: error: …``), never a traceback: a bad option value
is refused by argparse before any work (exit 2); an error FaceGate raises on purpose, or a file or value
problem (``OSError``, ``ValueError``), stops the command at its boundary (exit 2); anything else is a
bug, reported in one line with a pointer to ``-v``, which shows the traceback (exit 1). A bad photo
inside a batch is reported and skipped, never the end of the run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from core.cli.common import (
    DATA_DIR_HELP,
    IntArg,
    add_backend_arg,
    add_policy_args,
    apply_backend_arg,
    check_output_file,
    data_dir,
    describe_os_error,
    models_dir,
    open_registry,
    policy_from_args,
    progress_bar,
    short_list,
)
from core.errors import FaceGateError

log = logging.getLogger("facegate")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``facegate evaluate``."""
    from core.recognition.dataset import check_layout
    from core.recognition.evaluate import evaluate, format_report, save_report

    # Everything that can be checked without the networks is checked first: a typo must not cost
    # a whole evaluation.
    check_layout(Path(args.dataset))
    if args.unknown and not Path(args.unknown).is_dir():
        raise FaceGateError(f"--unknown {args.unknown}: there is no such folder. Give a folder of photos of "
                            "people who are not in the dataset (or 'demo').")
    if args.report:
        check_output_file(Path(args.report), create_folder=True)
    out_dir = Path(args.out) if args.out else (Path(args.report).parent if args.report else Path("."))
    check_output_file(out_dir / "stacker_cv.csv", create_folder=True)
    report = evaluate(Path(args.dataset), unknown=Path(args.unknown) if args.unknown else None, out_dir=out_dir,
                      policy=policy_from_args(args), deep=args.deep, cv_splits=args.cv_splits,
                      cv_repeats=args.cv_repeats, progress=progress_bar(args))
    print(format_report(report))
    print(f"Wrote {out_dir / 'stacker_cv.csv'}, {out_dir / 'stacker_cv_boxplot.png'} "
          f"and {out_dir / 'reliability.png'}")
    if args.report:
        save_report(report, Path(args.report))
        print(f"Wrote {args.report}")
    return 0


def _model_for_dataset(dataset: Path, args: argparse.Namespace, progress: Any) -> Any:
    """Train on ``dataset/train`` (or load the cached model trained on the same faces)."""
    from core.assets import cache_dir
    from core.errors import ModelError
    from core.recognition.dataset import embed_folder
    from core.recognition.engine import FacePipeline, RecognitionModel, train_model

    pipeline = FacePipeline()
    train_dir = dataset / "train" if (dataset / "train").is_dir() else dataset
    data = embed_folder(train_dir, pipeline, progress=progress)
    for s in data.skipped:
        print(f"skipped: {s.reason}", file=sys.stderr)
    key = hashlib.sha256(data.x.tobytes() + "|".join(data.y).encode() + pipeline.signature.encode()
                         + str(args.deep).encode()).hexdigest()[:16]
    where = cache_dir() / "models" / f"dataset-{key}"
    try:
        model = RecognitionModel.load(where, expect_signature=pipeline.signature)
    except ModelError:
        model = train_model(data.x, data.y, deep=args.deep, progress=progress,
                            metadata={"signature": pipeline.signature, "dataset": str(dataset),
                                      "backend": pipeline.backend})
        model.save(where)
    from dataclasses import replace

    model.policy = replace(model.policy, **vars(policy_from_args(args)))
    return model, pipeline


def cmd_recognize(args: argparse.Namespace) -> int:
    """Run ``facegate recognize``."""
    from core.recognition.engine import FacePipeline, RecognitionModel, Recognizer
    from core.vision.imageio import read_image

    if not any(Path(name).is_file() for name in args.images):
        raise FaceGateError(f"No photo to recognise: {short_list(args.images)} — no such file (or not a "
                            "file). Give the paths of photo files.")
    if args.model and not Path(args.model).is_dir():
        raise FaceGateError(f"--model {args.model}: there is no such folder. Give a model folder FaceGate "
                            "wrote.")
    progress = progress_bar(args)
    if getattr(args, "registry", False):
        from core.registry.training import load_active_model

        pipeline = FacePipeline()
        with open_registry(args) as reg:
            loaded = load_active_model(reg, models_dir(args), expect_signature=pipeline.signature,
                                       live_gallery=True)
        if loaded is None:
            raise FaceGateError("The registry has no active model: enroll people ('facegate enroll' or "
                                "'facegate import') and run 'facegate train' first.")
        model = loaded
    elif args.model:
        pipeline = FacePipeline()
        model = RecognitionModel.load(Path(args.model), expect_signature=pipeline.signature)
    else:
        model, pipeline = _model_for_dataset(_dataset_arg(args.dataset), args, progress)
    recognizer = Recognizer(model, pipeline)
    results: list[dict[str, Any]] = []
    failures = 0
    root = getattr(args, "display_root", None)
    for name in args.images:
        shown = str(Path(name).relative_to(root)) if root and Path(name).is_relative_to(root) else name
        try:
            faces = recognizer.recognize(read_image(name))
        except FaceGateError as exc:
            failures += 1
            print(f"{shown}: skipped: {exc}", file=sys.stderr)
            continue
        if not faces:
            print(f"{shown}: no face found")
        for i, face in enumerate(faces):
            row = _face_row(shown, i, face)
            results.append(row)
            if not args.json:
                print(_format_face(row))
    if args.json:
        print(json.dumps(results, indent=2))
    args.results = results
    return 0 if failures == 0 else 1


def _face_row(name: str, index: int, face: Any) -> dict[str, Any]:
    d = face.detection
    return {
        "image": str(name), "face": index, "box": list(d.box), "confidence": round(d.confidence, 4),
        "landmarks": [[round(x, 1), round(y, 1)] for x, y in d.landmarks],
        "models": {v.model: {"identity": v.identity, "probability": round(v.probability, 4)} for v in face.votes},
        "enrolled": None if face.enrolled is None else round(face.enrolled, 4),
        "decision": face.decision.identity, "accepted": face.decision.accepted,
        "distance": round(face.decision.distance, 4), "threshold": round(face.decision.threshold, 4),
        "nearest": face.nearest, "reason": face.decision.reason, "model_version": face.model_version,
    }


def _format_face(row: dict[str, Any]) -> str:
    from core.recognition.openset import enrolled_label

    x, y, w, h = row["box"]
    marks = " ".join(f"({px:.0f},{py:.0f})" for px, py in row["landmarks"])
    votes = "  ".join(f"{m}={v['identity']} {100 * v['probability']:.1f}%" for m, v in row["models"].items())
    # The models' probabilities assume the face is someone enrolled; the gate's says whether it is.
    gate = enrolled_label(row["enrolled"])
    return (f"{row['image']} face {row['face']}: box x={x} y={y} w={w} h={h}  landmarks {marks}\n"
            f"    {gate + '  ' if gate else ''}{votes}\n"
            f"    -> {row['decision'].upper() if row['decision'] == 'unknown' else row['decision']}"
            f"  (distance {row['distance']:.3f}, threshold {row['threshold']:.3f}: {row['reason']})")


def _dataset_arg(value: str | None) -> Path:
    if value:
        return Path(value)
    from core.assets import ensure_seed_assets

    return ensure_seed_assets().dataset


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``facegate demo``: recognition on the built-in 5-celebrity photos and two strangers."""
    from core.assets import ensure_seed_assets, ensure_strangers
    from core.recognition.dataset import iter_photos

    seed = ensure_seed_assets()
    strangers = ensure_strangers()
    args.images = [str(p) for _, p in iter_photos(seed.dataset / "val")] + [str(p) for _, p in iter_photos(strangers)]
    args.dataset, args.model, args.display_root = str(seed.dataset), None, seed.dataset.parent
    if not args.json:
        print("FaceGate demo: trained on the 5-celebrity train photos; now recognising the val photos of the "
              "five enrolled people and photos of two people who are not enrolled (Barack Obama, Joe Biden).")
    start = time.perf_counter()
    code = cmd_recognize(args)
    if not args.json:
        enrolled = [r for r in args.results if "/val/" in r["image"]]
        named = sum(r["decision"] == Path(r["image"]).parent.name for r in enrolled)
        others = [r for r in args.results if "/val/" not in r["image"]]
        rejected = sum(r["decision"] == "unknown" for r in others)
        print(f"Enrolled people recognised: {named}/{len(enrolled)}. Strangers reported unknown: "
              f"{rejected}/{len(others)}. Done in {time.perf_counter() - start:.1f} s.")
    return code


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``facegate: error: argument --min-face: … (see 'facegate monitor
    --help')`` instead of the full usage, as every other error (sub-parsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"facegate: error: {_one_line(message)} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the README documentation test)."""
    parser = Parser(prog="facegate", description="FaceGate: face recognition for plant gates.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log what happens (and show the traceback of an unexpected error)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("evaluate", help="reproduce the thesis tables and open-set figures on a dataset")
    p.add_argument("dataset", help="folder holding train/<person>/ and val/<person>/ ('demo' for the seed dataset)")
    p.add_argument("--unknown", help="folder of photos of people who are not in DATASET ('demo': Obama, Biden)")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--out", help="folder for the CSV, the boxplot and the reliability diagram PNG "
                                 "(default: beside --report, else .)")
    p.add_argument("--cv-splits", type=IntArg(minimum=2), default=10,
                   help="stacking CV folds, at least 2 (adapted to small classes; default: 10)")
    p.add_argument("--cv-repeats", type=IntArg(minimum=1), default=3, help="stacking CV repeats (default: 3)")
    add_policy_args(p)
    add_backend_arg(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("recognize", help="recognise the faces in photos")
    p.add_argument("images", nargs="+", help="photo files")
    p.add_argument("--model", help="a model folder written by FaceGate")
    p.add_argument("--dataset", help="train on this dataset's train/ folder (default: the demo dataset)")
    p.add_argument("--registry", action="store_true",
                   help="use the registry's active model, with people enrolled since its training")
    p.add_argument("--data-dir", help=f"{DATA_DIR_HELP}, for --registry")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_policy_args(p)
    add_backend_arg(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("demo", help="recognition on the built-in demo photos (no camera needed)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_policy_args(p)
    add_backend_arg(p)
    p.set_defaults(func=cmd_demo)

    from core.cli.accounts import register as register_accounts
    from core.cli.console import register as register_console
    from core.cli.monitor import register as register_monitor
    from core.cli.registry import register

    register(sub)
    register_accounts(sub)
    register_monitor(sub)
    register_console(sub)
    return parser


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int) -> int:
    print(f"facegate: error: {_one_line(message)}", file=sys.stderr)
    return code


def _command(args: argparse.Namespace) -> str:
    """``facegate people list``: the command that ran, for "see --help" hints."""
    words = [getattr(args, key, None) for key in ("command", "people_cmd", "models_cmd")]
    return " ".join(["facegate", *(w for w in words if w)])


def _run(args: argparse.Namespace) -> int:
    apply_backend_arg(args)
    if "data_dir" in vars(args) and (args.data_dir or getattr(args, "registry", True)):
        # Checked before the command starts: an unusable registry folder must not cost a model load
        # (recognize without --registry never opens the registry).
        data_dir(args)
    if args.command in ("evaluate", "recognize"):
        if getattr(args, "dataset", None) == "demo":
            args.dataset = str(_dataset_arg(None))
        if getattr(args, "unknown", None) == "demo":
            from core.assets import ensure_strangers

            args.unknown = str(ensure_strangers())
    return int(args.func(args))


def main(argv: Sequence[str] | None = None, *, console_runner: Any = None) -> int:
    """Entry point of the ``facegate`` command.

    ``console_runner(args) -> int`` runs ``facegate console``; the GUI's launcher passes it (core never
    imports the GUI).

    Exit codes: 0 done, 1 partly done (a photo skipped, a check failed) or an unexpected error (a bug),
    2 an error the user can fix (the one-line message says how), 130 interrupted.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.console_runner = console_runner
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except FaceGateError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        print("facegate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`facegate events | head`): nothing more to say, nowhere to say it, and
        # Python must not complain about stdout when it exits.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        return _fail(describe_os_error(exc), 2)
    except ValueError as exc:
        return _fail(f"{exc} (check the values given to the command; see '{_command(args)} --help')", 2)
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        where = ("the traceback is above" if args.verbose
                 else "run the command again with -v to see the traceback")
        return _fail(f"unexpected {type(exc).__name__}: {str(exc) or 'no message'}. This is a bug in "
                     f"FaceGate; {where}, and report it.", 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
