"""What the ``facegate`` sub-command modules share: the progress bar, the registry folder, the decision
options, argparse types that check numbers at the edge, and tables sized to their content.

This module imports none of :mod:`.main`, :mod:`.monitor` and :mod:`.registry` (they import it), so the
CLI has no import cycle; a test checks that with grimp.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import FaceGateError

if TYPE_CHECKING:
    from core.recognition.engine import Policy
    from core.registry import Registry

DATA_DIR_ENV = "FACEGATE_DATA_DIR"
DATA_DIR_HELP = "registry folder (default: $FACEGATE_DATA_DIR or the user data dir)"
_DATA_DIR_HINT = "Give a folder you may write to with --data-dir DIR (or $FACEGATE_DATA_DIR)."


class ProgressBar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, stream: Any = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -1.0
        self._last_title = ""

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if self.tty:
            filled = int(self.width * fraction)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {100 * fraction:5.1f}% {message[:60]:<60}")
            if fraction >= 1.0:
                self.stream.write("\n")
            self.stream.flush()
            return
        title = message.split(":")[0]
        # Not a terminal (CI, a log file): a line per 10 % or per new stage is enough.
        if fraction - self._last >= 0.1 or title != self._last_title or fraction >= 1.0:
            self.stream.write(f"[{100 * fraction:5.1f}%] {message}\n")
            self.stream.flush()
            self._last, self._last_title = fraction, title


def progress_bar(args: argparse.Namespace) -> ProgressBar | None:
    """A progress bar, or None with ``-q``."""
    return None if getattr(args, "quiet", False) else ProgressBar()


# -- numbers checked at the edge ----------------------------------------------------------------------


def _show(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class FloatArg:
    """An argparse ``type=`` for a finite number within bounds.

    A bad value becomes argparse's own one-line error ("argument --max-frame-age: expected a number
    greater than 0, got '0'") before any work starts. The bounds are attributes, so the tests can
    derive bad values for every numeric option.

    Parameters
    ----------
    minimum, maximum
        Inclusive bounds (None: unbounded).
    above
        The minimum itself is not allowed (``> minimum`` rather than ``>= minimum``).
    """

    minimum: float | None = None
    maximum: float | None = None
    above: bool = False

    kind = "a number"

    def describe(self) -> str:
        """``a number greater than 0``, ``a number from 0 to 1``, ``a whole number of at least 20`` …"""
        low = None if self.minimum is None else _show(self.minimum)
        high = None if self.maximum is None else _show(self.maximum)
        if low is not None and high is not None and self.above:
            return f"{self.kind} greater than {low} and at most {high}"
        if low is not None and high is not None:
            return f"{self.kind} from {low} to {high}"
        if low is not None:
            return f"{self.kind} greater than {low}" if self.above else f"{self.kind} of at least {low}"
        if high is not None:
            return f"{self.kind} of at most {high}"
        return self.kind

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within the bounds."""
        if self.minimum is not None and (value <= self.minimum if self.above else value < self.minimum):
            return False
        return self.maximum is None or value <= self.maximum

    def _parse(self, text: str) -> float:
        return float(text)

    def __call__(self, text: str) -> float:
        try:
            value = self._parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        if not (math.isfinite(value) and self.contains(value)):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}")
        return value


@dataclass(frozen=True)
class IntArg(FloatArg):
    """An argparse ``type=`` for a whole number within bounds (see :class:`FloatArg`)."""

    kind = "a whole number"

    def _parse(self, text: str) -> int:
        return int(text)

    def __call__(self, text: str) -> int:
        return int(super().__call__(text))


POSITIVE_SECONDS = FloatArg(minimum=0, above=True)
PROBABILITY = FloatArg(minimum=0, maximum=1)
# Distances between L2-normalised embeddings lie between 0 and 2.
DISTANCE_THRESHOLD = FloatArg(minimum=0, maximum=2, above=True)
DISTANCE_MARGIN = FloatArg(minimum=0, maximum=2)
COUNT = IntArg(minimum=1, maximum=1_000_000_000)


# -- the inference backend ---------------------------------------------------------------------------


def add_backend_arg(p: argparse.ArgumentParser) -> None:
    """``--backend {onnx,tf}`` on a command that detects or embeds faces (issue 13)."""
    from core.vision.backends import BACKENDS, ENV_VAR

    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="run the networks with ONNX Runtime ('onnx', the default: converted from the pinned "
                        "weights once, then TensorFlow is never loaded) or TensorFlow ('tf', the reference); "
                        f"the results are the same (default: ${ENV_VAR}, else onnx)")


def apply_backend_arg(args: argparse.Namespace) -> None:
    """Make ``--backend`` this process's default (and its children's, through the environment)."""
    from core.vision.backends import ENV_VAR, check_backend

    if getattr(args, "backend", None):
        os.environ[ENV_VAR] = check_backend(args.backend)


# -- the decision policy ------------------------------------------------------------------------------


def add_policy_args(p: argparse.ArgumentParser, deep: bool = True, *, overrides: bool = False) -> None:
    """The decision options: ``--decider``, ``--min-probability``, ``--min-margin``, ``--threshold``
    (and ``--deep`` where a model is trained).

    With ``overrides`` (``facegate monitor``) they default to "not given": the run decides with the
    settings HR signed, and giving any of them is a run-time override that needs an HR login.
    """
    default = (lambda value: None) if overrides else (lambda value: value)
    how = ("; overrides HR's signed decision settings for this run: needs an HR login, audited" if overrides
           else "")
    p.add_argument("--decider", default=default("all"), choices=["svc", "stacker", "super_learner", "all"],
                   help="which model decides, or 'all' three must agree with the gallery (default: all)" + how)
    p.add_argument("--min-probability", type=PROBABILITY, default=default(0.5),
                   help="the deciding model's probability floor, 0 to 1 (default: 0.5)" + how)
    p.add_argument("--min-margin", type=DISTANCE_MARGIN, default=default(0.0),
                   help="required distance margin to the second-nearest person, 0 to 2 (default: 0)" + how)
    p.add_argument("--threshold", type=DISTANCE_THRESHOLD, default=None,
                   help="override the calibrated distance threshold (above 0, at most 2)" + how)
    if deep:
        p.add_argument("--deep", action="store_true", help="use the Deep Super Learner (thesis §5.2)")


POLICY_OPTIONS = ("decider", "min_probability", "min_margin", "threshold")


def policy_overridden(args: argparse.Namespace) -> dict[str, Any]:
    """The decision options given on the command line (for ``overrides`` parsers)."""
    return {k: getattr(args, k) for k in POLICY_OPTIONS if getattr(args, k, None) is not None}


def policy_from_args(args: argparse.Namespace) -> Policy:
    """The decision :class:`~core.recognition.engine.Policy` the decision options ask for."""
    from core.recognition.engine import Policy

    defaults = Policy()
    return Policy(decider=args.decider or defaults.decider,
                  min_probability=defaults.min_probability if args.min_probability is None else args.min_probability,
                  min_margin=defaults.min_margin if args.min_margin is None else args.min_margin,
                  threshold=args.threshold)


# -- the registry folder ------------------------------------------------------------------------------


def data_dir(args: argparse.Namespace) -> Path:
    """The registry folder: ``--data-dir``, else ``$FACEGATE_DATA_DIR``, else the user data dir.

    Created if missing. Raises :class:`FaceGateError` with what to do if it cannot be created or
    written (a file in the way, a read-only place), instead of a bare ``OSError`` later.
    """
    given = getattr(args, "data_dir", None) or os.environ.get(DATA_DIR_ENV)
    path = Path(given).expanduser() if given else None
    try:
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            from core.registry import data_dir as default_data_dir

            path = default_data_dir()
    except OSError as exc:
        where = path or exc.filename or "the user data folder"
        blocker = file_in_the_way(Path(where))
        if blocker is not None:
            what = "is a file" if blocker == Path(where) else f"lies inside {blocker}, which is a file"
            raise FaceGateError(f"The data folder {where} {what}, not a folder. {_DATA_DIR_HINT}") from exc
        raise FaceGateError(f"Cannot create the data folder {where}: {exc.strerror or exc}. "
                            f"{_DATA_DIR_HINT}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise FaceGateError(f"Cannot write to the data folder {path}: permission denied. {_DATA_DIR_HINT}")
    return path


@contextmanager
def open_registry(args: argparse.Namespace) -> Iterator[Registry]:
    """The registry in :func:`data_dir`, closed on exit."""
    from core.registry import Registry

    with Registry.open(data_dir(args) / "facegate.db") as reg:
        yield reg


def models_dir(args: argparse.Namespace) -> Path:
    """Where the registry's model versions live."""
    return data_dir(args) / "models"


# -- files the commands write -------------------------------------------------------------------------


def file_in_the_way(folder: Path) -> Path | None:
    """The file (not folder) that ``folder`` or one of its parents is, if any: nothing can be created there."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


def check_output_file(path: Path, *, create_folder: bool) -> Path:
    """Check, before any work, that ``path`` can be written (its folder is created if asked).

    Raises :class:`FaceGateError` naming the path and what to do.
    """
    path = path.expanduser()
    if path.is_dir():
        raise FaceGateError(f"Cannot write {path}: it is a folder. Give a file name.")
    folder = path.parent
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise FaceGateError(f"Cannot write {path}: {blocker} is a file, not a folder. Choose another file.")
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FaceGateError(f"Cannot write {path}: cannot create the folder {folder} ({exc.strerror or exc}). "
                                "Choose a file in a folder you may write to.") from exc
    elif not folder.is_dir():
        raise FaceGateError(f"Cannot write {path}: the folder {folder} does not exist. Create it first or "
                            "choose another file.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FaceGateError(f"Cannot write {path}: no permission to write in {folder}.")
    return path


def short_list(names: Sequence[str], shown: int = 3) -> str:
    """``a.jpg, b.jpg, c.jpg and 4 more``: a list of paths short enough for one line."""
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"


def describe_os_error(exc: OSError) -> str:
    """One sentence for an ``OSError`` that reached the command boundary."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return f"{reason}. Check the paths given to the command and that you may read and write there."
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
    return f"cannot use {where}: {reason}. Check the path and that you may read and write there."


# -- tables -------------------------------------------------------------------------------------------


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = (),
                 gap: int = 2) -> list[str]:
    """Lines of a table whose columns are as wide as their widest cell (never run together).

    ``right`` lists the columns aligned right (numbers); the last column is not padded.
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        if len(header) - 1 not in right:
            parts[-1] = row[-1]
        lines.append((" " * gap).join(parts).rstrip())
    return lines
