"""Encrypted backups: made and restored only with an HR login, unreadable without it, and refused when
altered, cut short, or made by another registry's HR.  Real SQLite files, no models."""

from __future__ import annotations

import pytest

from core.errors import PermissionDenied, RegistryError
from core.registry import Registry, accounts
from core.registry.signing import verify_state
from core.registry.vault import CHUNK, is_encrypted_backup, make_encrypted_backup, restore_encrypted_backup
from tests.conftest import HR_PASSPHRASE, make_hr


@pytest.fixture()
def reg(tmp_path):
    with Registry.open(tmp_path / "data" / "facegate.db") as r:
        yield r


def test_a_backup_is_encrypted_and_restores_with_hr(reg, tmp_path):
    session = make_hr(reg)
    reg.add_operator("E1", "Ada Lovelace", actor=session.actor)
    backup = make_encrypted_backup(reg, session, tmp_path / "b.fgb")
    raw = backup.read_bytes()
    assert is_encrypted_backup(backup) and b"Ada Lovelace" not in raw and b"SQLite format" not in raw
    assert backup.stat().st_mode & 0o777 == 0o600
    reg.add_operator("E2", "Bob", actor=session.actor)
    kept = restore_encrypted_backup(reg, session, backup)
    assert kept.exists() and [op.employee_id for op in reg.list_operators()] == ["E1"]
    assert [a.action for a in reg.audit_log()][-1] == "restore"
    assert not list(reg.path.parent.glob(".restore-*")) and not list(reg.path.parent.glob(".backup-*"))


def test_an_altered_or_truncated_backup_is_refused_and_nothing_changes(reg, tmp_path):
    session = make_hr(reg)
    reg.add_operator("E1", "Ada", actor=session.actor)
    backup = make_encrypted_backup(reg, session, tmp_path / "b.fgb")
    reg.add_operator("E2", "Bob", actor=session.actor)
    raw = bytearray(backup.read_bytes())
    flipped = tmp_path / "flipped.fgb"
    raw[-40] ^= 1
    flipped.write_bytes(bytes(raw))
    short = tmp_path / "short.fgb"
    short.write_bytes(backup.read_bytes()[:-20])
    longer = tmp_path / "longer.fgb"
    longer.write_bytes(backup.read_bytes() + b"x")
    for bad in (flipped, short, longer):
        with pytest.raises((PermissionDenied, RegistryError), match="damaged|altered|decrypted"):
            restore_encrypted_backup(reg, session, bad)
        assert [op.employee_id for op in reg.list_operators()] == ["E1", "E2"]


def test_another_registrys_hr_cannot_restore_it(reg, tmp_path):
    session = make_hr(reg)
    backup = make_encrypted_backup(reg, session, tmp_path / "b.fgb")
    with Registry.open(tmp_path / "other" / "facegate.db") as other:
        theirs = accounts.init_accounts(other, "mallory", "mallory's own passphrase")
        with pytest.raises(PermissionDenied, match="cannot be decrypted"):
            restore_encrypted_backup(other, theirs, backup)


def test_large_registries_go_in_several_chunks(reg, tmp_path, monkeypatch):
    from core.registry import vault

    session = make_hr(reg)
    for i in range(50):
        reg.add_operator(f"E{i}", "x" * 2000, actor=session.actor)
    monkeypatch.setattr(vault, "CHUNK", 4096)
    backup = make_encrypted_backup(reg, session, tmp_path / "b.fgb")
    assert backup.stat().st_size > 3 * 4096
    restore_encrypted_backup(reg, session, backup)
    assert len(reg.list_operators()) == 50
    assert CHUNK == 4 * 1024 * 1024


def test_the_cli_backs_up_only_with_an_hr_login_and_refuses_plain_copies_without_plain(tmp_path, monkeypatch,
                                                                                          capsys):
    from core.cli.main import main

    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACEGATE_NEW_HR_PASSPHRASE", HR_PASSPHRASE)
    assert main(["-q", "accounts", "init", "--name", "alice", "--yes"]) == 0
    monkeypatch.delenv("FACEGATE_HR_PASSPHRASE", raising=False)
    assert main(["-q", "backup", str(tmp_path / "b.fgb")]) == 2
    assert "FACEGATE_HR_PASSPHRASE" in capsys.readouterr().err and not (tmp_path / "b.fgb").exists()
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", HR_PASSPHRASE)
    assert main(["-q", "backup", str(tmp_path / "b.fgb")]) == 0
    with Registry.open(tmp_path / "data" / "facegate.db") as reg:
        reg.backup(tmp_path / "plain.db")  # a plain copy, as the old `facegate backup` made
    capsys.readouterr()
    assert main(["-q", "restore", str(tmp_path / "plain.db")]) == 2
    assert "--plain" in capsys.readouterr().err
    assert main(["-q", "restore", str(tmp_path / "b.fgb")]) == 0
    with Registry.open(tmp_path / "data" / "facegate.db") as reg:
        assert verify_state(reg).ok
