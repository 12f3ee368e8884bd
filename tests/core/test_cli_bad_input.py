"""Bad input never ends in a traceback.

Every ``facegate`` command is run as a user would run it (a subprocess) with bad values and bad paths,
and must fail in one line: exit code 1 or 2, the last line of stderr ``facegate: error: …``, at most a
few lines in all, no "Traceback" anywhere. Every case fails before a model is loaded, so the whole
corpus takes seconds.

The commands and their options come from :func:`core.cli.main.build_parser`, so a new command is
covered automatically; a new option whose kind this file does not know (a number without a checked
type, a path nobody classified) fails :func:`test_every_option_is_classified` until it is added here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.cli.common import FloatArg, IntArg
from core.cli.main import build_parser
from core.cli.registry import since

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# A folder that nobody, not even root, can create: /proc accepts no new entries.
UNCREATABLE = Path("/proc/facegate-no-such-dir") if Path("/proc/self").exists() else None

# Arguments that name something that must exist, and what kind of thing (for a valid stand-in).
INPUTS = {
    ("evaluate", "dataset"): "dataset",
    ("evaluate", "--unknown"): "folder",
    ("recognize", "images"): "file",
    ("recognize", "--model"): "folder",
    ("recognize", "--dataset"): "folder",
    ("enroll", "photos"): "file",
    ("import", "dataset"): "folder",
    ("restore", "file"): "file",
    ("monitor", "--source"): "file",
    ("console", "--source"): "file",
    ("cameras approve", "specs"): "file",
}
# Arguments that name a file (or folder) the command writes.
OUTPUTS = {("evaluate", "--report"), ("evaluate", "--out"), ("events", "--csv"), ("backup", "file"),
           ("console", "--screenshot"), ("accounts init", "--anchor-dir"), ("accounts install-anchor", "--anchor-dir")}
# Free text: any value is valid (account names are checked by the registry, with a sentence).
TEXT = {"--id", "--name", "--department", "id", "name", "--reason", "names"}
# Options with a type of their own, and values it must refuse.
SPECIAL = {"--since": (since, ["yesterday", "-3", "inf", "1e12", "0001-01-01"])}


def _commands(parser: argparse.ArgumentParser,
              words: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(words), parser
    for sub in subs:
        for name, subparser in sub.choices.items():
            yield from _commands(subparser, (*words, name))


def _key(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments that take a value (not -h, not the on/off flags)."""
    return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction) and a.nargs != 0]


COMMANDS = dict(_commands(build_parser()))


# -- the workspace: valid stand-ins for the arguments a case does not test ---------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-input")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xffnot really a photo")
    (root / "folder" / "person").mkdir(parents=True)
    for split in ("train", "val"):
        (root / "dataset" / split / "someone").mkdir(parents=True)
    (root / "a-file").write_text("in the way")
    (root / "data").mkdir()
    return root


def _valid(command: str, action: argparse.Action, work: Path) -> str:
    key = _key(action)
    if isinstance(action.type, FloatArg):
        low = action.type.minimum
        return "1" if low is None else str(int(low) + 1 if action.type.above else int(low))
    if (command, key) in INPUTS:
        return str(work / {"dataset": "dataset", "folder": "folder", "file": "photo.jpg"}[INPUTS[command, key]])
    if (command, key) in OUTPUTS:
        return str(work / "out" / f"{action.dest}.out")
    if action.choices:
        return str(next(iter(action.choices)))
    return "x"


def _argv(command: str, work: Path, bad: tuple[argparse.Action, str] | None = None,
          extra: tuple[str, ...] = ()) -> list[str]:
    """``command`` with every required argument filled with a valid value, and ``bad`` in its place."""
    options: list[str] = list(extra)
    positionals: list[str] = []
    for action in _arguments(COMMANDS[command]):
        value = bad[1] if bad is not None and action is bad[0] else None
        if action.option_strings:
            if value is not None:
                options.append(f"{action.option_strings[0]}={value}")  # `=`: a value may start with '-'
            elif action.required:
                options += [action.option_strings[0], _valid(command, action, work)]
        else:
            positionals.append(value if value is not None else _valid(command, action, work))
    return [*command.split(), *options, "--", *positionals] if positionals else [*command.split(), *options]


def run(argv: list[str], work: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "FACEGATE_HR_PASSPHRASE"}
    # The registry goes to a temp folder; the cache (the pinned weights) stays where it is.
    environ |= {"FACEGATE_DATA_DIR": str(work / "data"), **env}
    return subprocess.run([sys.executable, "-m", "core.cli.main", "-q", *argv], capture_output=True, text=True,
                          cwd=ROOT, env=environ, timeout=300, check=False)


def assert_fails_in_one_line(proc: subprocess.CompletedProcess[str], mentions: str = "") -> None:
    shown = f"exit {proc.returncode}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    assert proc.returncode in (1, 2), shown
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("facegate: error:"), shown
    assert len((proc.stdout + proc.stderr).strip().splitlines()) <= 3, shown
    assert mentions in lines[-1], shown


# -- the cases ---------------------------------------------------------------------------------------


def _bad_numbers(kind: FloatArg) -> list[str]:
    """Not a number, negative, zero (where refused), just out of range at either end, NaN / a fraction."""
    integer = isinstance(kind, IntArg)
    values = ["abc", "-1"]
    if not kind.contains(0):
        values.append("0")
    if kind.minimum is not None and kind.minimum > 0:
        values.append(str(kind.minimum) if kind.above else str(kind.minimum - (1 if integer else 0.01)))
    if kind.maximum is not None:
        values.append(str(kind.maximum + (1 if integer else 0.01)))
    values.append("2.5" if integer else "nan")
    return list(dict.fromkeys(values))


def _value_cases() -> Iterator[object]:
    for command, parser in COMMANDS.items():
        for action in _arguments(parser):
            key = _key(action)
            if isinstance(action.type, FloatArg):
                values = _bad_numbers(action.type)
            elif action.choices:
                values = ["nope"]
            elif key in SPECIAL:
                values = SPECIAL[key][1]
            else:
                continue
            for value in values:
                yield pytest.param(command, key, value, id=f"{command} {key}={value}")


@pytest.mark.parametrize(("command", "key", "value"), list(_value_cases()))
def test_bad_value_is_refused_by_argparse(command, key, value, work):
    action = next(a for a in _arguments(COMMANDS[command]) if _key(a) == key)
    proc = run(_argv(command, work, (action, value)), work)
    assert_fails_in_one_line(proc, mentions=f"argument {key if action.option_strings else action.dest}:")
    assert proc.returncode == 2


def _path_cases() -> Iterator[object]:
    for command, parser in COMMANDS.items():
        for action in _arguments(parser):
            key = _key(action)
            if (command, key) in INPUTS:
                yield pytest.param(command, key, "missing", id=f"{command} {key}=missing")
            if (command, key) in OUTPUTS:
                yield pytest.param(command, key, "under-a-file", id=f"{command} {key}=under-a-file")
                if UNCREATABLE is not None:
                    yield pytest.param(command, key, "uncreatable", id=f"{command} {key}=in-/proc")


@pytest.mark.parametrize(("command", "key", "how"), list(_path_cases()))
def test_bad_path_fails_before_any_work(command, key, how, work):
    action = next(a for a in _arguments(COMMANDS[command]) if _key(a) == key)
    path = {"missing": work / "no-such-thing" / "photo.jpg", "under-a-file": work / "a-file" / "out" / "x.out",
            "uncreatable": (UNCREATABLE or work) / "x.out"}[how]
    proc = run(_argv(command, work, (action, str(path))), work)
    # The message names the path (or the file in its way), so it is the case under test that failed.
    assert_fails_in_one_line(proc, mentions=str(work / "a-file") if how == "under-a-file" else str(path.parent))


# Every command is tried with a file for a data folder; these with every kind of unusable folder.
EVERY_KIND = {"people list", "recognize", "monitor"}


def _data_dir_cases() -> Iterator[object]:
    kinds = ["file", "under-a-file", *(["uncreatable"] if UNCREATABLE else []), "read-only"]
    for command, parser in COMMANDS.items():
        if any(_key(a) == "--data-dir" for a in parser._actions):
            for how in kinds if command in EVERY_KIND else kinds[:1]:
                root_skips = pytest.mark.skipif(IS_ROOT, reason="root may write anywhere")
                marks = [root_skips] if how == "read-only" else []
                yield pytest.param(command, how, id=f"{command} --data-dir={how}", marks=marks)


def _bad_data_dir(how: str, work: Path) -> Path:
    if how == "read-only":
        folder = work / "read-only"
        folder.mkdir(exist_ok=True)
        folder.chmod(0o555)
        return folder / "data"
    return {"file": work / "a-file", "under-a-file": work / "a-file" / "data",
            "uncreatable": (UNCREATABLE or work) / "data"}[how]


@pytest.mark.parametrize(("command", "how"), list(_data_dir_cases()))
def test_unusable_data_dir_is_one_line(command, how, work):
    path = _bad_data_dir(how, work)
    proc = run(_argv(command, work, extra=("--data-dir", str(path))), work)
    assert_fails_in_one_line(proc, mentions=str(path if how != "under-a-file" else work / "a-file"))
    assert proc.returncode == 2


@pytest.mark.parametrize("command", ["people list", "events", "monitor", "accounts list"])
def test_unusable_data_dir_from_the_environment_is_one_line(command, work):
    proc = run(_argv(command, work), work, FACEGATE_DATA_DIR=str(work / "a-file"))
    assert_fails_in_one_line(proc, mentions=str(work / "a-file"))


@pytest.mark.parametrize("argv", [
    pytest.param(["monitor", "--min-face", "10"], id="monitor --min-face 10"),
    pytest.param(["monitor", "--max-frame-age", "0"], id="monitor --max-frame-age 0"),
    pytest.param(["events", "--csv", "/no/such/dir/x.csv"], id="events --csv in a missing folder"),
    pytest.param(["people", "list", "--data-dir", "DATA"], id="people list --data-dir unwritable"),
    pytest.param([], id="no command"),
    pytest.param(["nope"], id="unknown command"),
    pytest.param(["people"], id="people without a sub-command"),
])
def test_reported_cases(argv, work):
    """The cases a new user tried first (they printed a traceback), and a few more of the kind."""
    bad = str(UNCREATABLE or work / "a-file")
    proc = run([bad if a == "DATA" else a for a in argv], work)
    assert_fails_in_one_line(proc)
    assert proc.returncode == 2


# -- the corpus covers every argument ----------------------------------------------------------------


def test_every_option_is_classified():
    """A number needs a checked type (FloatArg/IntArg), a path a place in INPUTS or OUTPUTS."""
    unknown = []
    for command, parser in COMMANDS.items():
        for action in _arguments(parser):
            key = _key(action)
            if isinstance(action.type, FloatArg) or action.choices or key == "--data-dir":
                continue
            if key in SPECIAL:
                assert action.type is SPECIAL[key][0], f"{command} {key}"
                continue
            known = (command, key) in INPUTS or (command, key) in OUTPUTS or key in TEXT
            if action.type is not None or not known:
                unknown.append(f"{command} {key} (type {getattr(action.type, '__name__', action.type)})")
    assert not unknown, ("classify these in test_cli_bad_input.py (numbers: type=FloatArg/IntArg from "
                         f"core.cli.common): {unknown}")
    stale = [k for k in (*INPUTS, *OUTPUTS) if k[0] not in COMMANDS
             or not any(_key(a) == k[1] for a in _arguments(COMMANDS[k[0]]))]
    assert not stale, f"these arguments are gone: {stale}"


def test_corpus_covers_every_command():
    covered = {c.values[0] for c in [*_value_cases(), *_path_cases(), *_data_dir_cases()]}
    # Commands with nothing to get wrong but the data folder are covered through it.
    assert covered == set(COMMANDS), set(COMMANDS) - covered
