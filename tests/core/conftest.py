"""Shared by the registry CLI tests: a data folder with its first HR account, and a CLI runner."""

from __future__ import annotations

import pytest

from core.cli.main import main

PASS = "correct horse battery"


@pytest.fixture()
def data(tmp_path, monkeypatch):
    """A data folder whose first account (an admin, "hr.lead") exists, logged in through the environment."""
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACEGATE_NEW_HR_PASSPHRASE", PASS)
    assert main(["-q", "accounts", "init", "--name", "hr.lead", "--yes"]) == 0
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", PASS)
    return tmp_path / "data"


def run(capsys, *argv):
    """Run the CLI; return its exit code and what it printed (and only that)."""
    capsys.readouterr()
    code = main(["-q", *argv])
    out, err = capsys.readouterr()
    return code, out, err
