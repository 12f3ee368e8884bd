"""The registry is private to the account that runs FaceGate: folder 0700, database and backups 0600."""

from __future__ import annotations

import logging
import os
import stat

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_registry_is_private_from_the_start(tmp_path):
    from core.registry import Registry

    data = tmp_path / "data"
    with Registry.open(data / "facegate.db") as reg:
        reg.add_operator("E1", "Ada", actor="test")
        reg.backup(tmp_path / "backups" / "copy.db")
        assert mode(data) == 0o700
        for name in ("facegate.db", "facegate.db-wal", "facegate.db-shm"):
            assert mode(data / name) == 0o600, name
    assert mode(tmp_path / "backups" / "copy.db") == 0o600


def test_a_readable_registry_is_made_private_on_open_with_a_warning(tmp_path, caplog):
    from core.registry import Registry

    data = tmp_path / "data"
    with Registry.open(data / "facegate.db") as reg:
        reg.add_operator("E1", "Ada", actor="test")
    os.chmod(data, 0o755)
    os.chmod(data / "facegate.db", 0o644)
    with caplog.at_level(logging.WARNING), Registry.open(data / "facegate.db") as reg:
        assert [op.employee_id for op in reg.list_operators()] == ["E1"]
    assert mode(data) == 0o700 and mode(data / "facegate.db") == 0o600
    assert any("made it private" in r.getMessage() for r in caplog.records)


def test_a_shared_folder_someone_pointed_at_is_left_alone_with_a_warning(tmp_path, caplog):
    from core.registry import Registry

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    (shared / "someone-elses-notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING), Registry.open(shared / "facegate.db"):
        pass
    assert mode(shared) == 0o755  # not ours to lock
    assert mode(shared / "facegate.db") == 0o600
    assert any("folder of its own" in r.getMessage() for r in caplog.records)
