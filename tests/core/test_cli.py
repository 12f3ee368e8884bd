"""The command line: recognise, bad inputs, JSON output, and every command documented in README."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    assert "facegate monitor" in blocks[0] and "pytest" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest" in ci


def test_recognize_prints_each_face_and_skips_bad_files(seed, strangers_dir, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xffgarbage")
    madonna = sorted((seed.dataset / "val" / "madonna").iterdir())[0]
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
    code = (
        "import sys; sys.modules['PySide6'] = None\n"
        "from core.cli.main import main\n"
        f"sys.exit(main(['-q', 'recognize', '--model', {str(tmp_path)!r}, 'x.jpg']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "not a FaceGate model" in proc.stderr and "Traceback" not in proc.stderr


def test_core_imports_without_qt():
    code = (
        "import sys, pkgutil, importlib\n"
        "for name in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6'): sys.modules[name] = None\n"
        "import core\n"
        "for m in pkgutil.iter_modules(core.__path__): importlib.import_module('core.' + m.name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
