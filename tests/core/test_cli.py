"""The command line: recognise, bad inputs, JSON output, and every command documented in README."""

from __future__ import annotations

import errno
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _commands(parser, prefix="facegate"):
    """Yield (command line, parser) for every command and sub-command."""
    subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    if not subs:
        yield prefix, parser
    for sub in subs:
        for name, subparser in sub.choices.items():
            yield from _commands(subparser, f"{prefix} {name}")


def test_every_command_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    commands = list(_commands(build_parser()))
    assert len(commands) >= 10
    for command, subparser in commands:
        assert command in readme, f"README does not document '{command}'"
        for action in subparser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in readme, f"README does not document {command} {flag}"


def test_readme_starts_with_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.DOTALL)
    # The main job is the guard console (bare `facegate`); the second command runs the tests.
    assert blocks[0].strip().endswith(".venv/bin/facegate") and "requirements.lock" in blocks[0]
    assert "pytest" in blocks[1] and "requirements.lock" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest" in ci


def test_recognize_prints_each_face_and_skips_bad_files(seed, strangers_dir, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xffgarbage")
    madonna = min((seed.dataset / "val" / "madonna").iterdir())
    obama = strangers_dir / "barack_obama" / "obama.jpg"
    code = main(["-q", "recognize", "--json", str(madonna), str(bad), str(obama)])
    out, err = capsys.readouterr()
    assert code == 1  # one file was skipped
    assert "broken.jpg: skipped:" in err and "Traceback" not in err
    rows = json.loads(out)
    assert [r["decision"] for r in rows] == ["madonna", "unknown"]
    for row in rows:
        assert len(row["landmarks"]) == 5 and len(row["box"]) == 4
        assert set(row["models"]) == {"svc", "stacker", "super_learner"}


def test_recognize_text_output(seed, capsys):
    photo = sorted((seed.dataset / "val" / "elton_john").iterdir())[1]
    assert main(["-q", "recognize", "--decider", "svc", str(photo)]) == 0
    out = capsys.readouterr().out
    assert "landmarks" in out and "svc=elton_john" in out and "-> elton_john" in out


def test_console_script_runs_without_qt_and_reports_errors_in_one_line(tmp_path):
    """`python -m core.cli.main` with PySide6 blocked: core never needs Qt."""
    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    (tmp_path / "model").mkdir()
    code = (
        "import sys; sys.modules['PySide6'] = None\n"
        "from core.cli.main import main\n"
        f"sys.exit(main(['-q', 'recognize', '--model', {str(tmp_path / 'model')!r}, {str(photo)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert "not a FaceGate model" in proc.stderr and "Traceback" not in proc.stderr


def test_installed_facegate_command_runs_the_current_entry_point():
    """The `facegate` script an install wrote must call the entry point pyproject.toml names now (an
    install from an older layout calls a function that moved: every command would end in an error)."""
    import tomllib
    from importlib.metadata import entry_points

    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["facegate"]
    scripts = [e.value for e in entry_points(group="console_scripts") if e.name == "facegate"]
    assert scripts == [wanted], ("the installed `facegate` is stale; reinstall with "
                                 "`.venv/bin/python -m pip install --no-deps -e .`")


def test_core_imports_without_qt():
    code = (
        "import sys, pkgutil, importlib\n"
        "for name in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6'): sys.modules[name] = None\n"
        "import core\n"
        "for m in pkgutil.iter_modules(core.__path__): importlib.import_module('core.' + m.name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr


# -- the command boundary: one line, whatever goes wrong ----------------------------------------------


@pytest.mark.parametrize(("exc", "code", "says"), [
    pytest.param(FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/such/file"), 2,
                 "cannot use /no/such/file: No such file or directory. Check the path and that you may read and "
                 "write there.", id="OSError"),
    pytest.param(ValueError("min_face_size must be at least 20 pixels."), 2,
                 "min_face_size must be at least 20 pixels. (check the values given to the command; see "
                 "'facegate people list --help')", id="ValueError"),
    pytest.param(RuntimeError("boom\nsecond line"), 1,
                 "unexpected RuntimeError: boom second line. This is a bug in FaceGate; run the command again "
                 "with -v to see the traceback, and report it.", id="a bug"),
])
def test_errors_at_the_command_boundary_are_one_line(exc, code, says, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path))

    def broken(args):
        raise exc

    monkeypatch.setattr("core.cli.registry.cmd_people_list", broken)
    assert main(["people", "list"]) == code
    out, err = capsys.readouterr()
    assert out == "" and err == f"facegate: error: {says}\n"


def test_a_bug_shows_its_traceback_with_verbose(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path))

    def broken(args):
        raise KeyError("where")

    monkeypatch.setattr("core.cli.registry.cmd_people_list", broken)
    assert main(["-v", "people", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "in broken" in err
    assert err.splitlines()[-1].startswith("facegate: error: unexpected KeyError: 'where'.")


def test_bad_option_value_is_one_line_naming_the_option(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["monitor", "--min-face", "10"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == ("facegate: error: argument --min-face: expected a whole number from 20 to "
                                       "4,096, got '10' (see 'facegate monitor --help')\n")


def test_cli_modules_import_each_other_in_one_direction():
    """common < registry, monitor < main: no cycle, not even through imports inside functions."""
    import grimp

    graph = grimp.build_graph("core")
    below = {"core.cli.common": {"core.cli.main", "core.cli.monitor", "core.cli.registry"},
             "core.cli.registry": {"core.cli.main", "core.cli.monitor"},
             "core.cli.monitor": {"core.cli.main", "core.cli.registry"}}
    for importer, forbidden in below.items():
        for imported in forbidden:
            assert not graph.chain_exists(importer=importer, imported=imported), f"{importer} -> {imported}"
