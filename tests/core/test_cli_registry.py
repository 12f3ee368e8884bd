"""Registry commands end to end on a real SQLite file: HR passphrase, people, import, train, models,
events, audit, verify, backup/restore, purge."""

from __future__ import annotations

import re
import shutil
import sqlite3

from tests.core.conftest import run


def test_people_and_login_rules(data, capsys, monkeypatch):
    capsys.readouterr()
    code, out, err = run(capsys, "people", "add", "--id", "E1", "--name", "Ada Lovelace", "--department", "Ops")
    assert code == 0 and "Added E1" in out, err
    code, out, _ = run(capsys, "people", "list")
    assert code == 0 and "E1" in out and "Ada Lovelace" in out
    code, out, _ = run(capsys, "people", "show", "E1")
    assert code == 0 and "Ada Lovelace" in out
    # Wrong passphrase: refused in one line, audited.
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", "wrong passphrase")
    code, _, err = run(capsys, "people", "add", "--id", "E2", "--name", "Bob")
    assert code == 2 and "passphrase" in err and len(err.strip().splitlines()) == 1
    # No variable and no terminal: a clear error, not a hang.
    monkeypatch.delenv("FACEGATE_HR_PASSPHRASE")
    code, _, err = run(capsys, "people", "remove", "E1")
    assert code == 2 and "FACEGATE_HR_PASSPHRASE" in err
    # A guard can still read.
    code, out, _ = run(capsys, "audit")
    assert code == 0 and "hr_denied" in out and "admin:hr.lead" in out
    code, _, err = run(capsys, "people", "show", "E9")
    assert code == 2 and err.startswith("facegate: error:")
    code, out, _ = run(capsys, "verify")
    assert code == 0 and "signed by admin:hr.lead" in out


def test_events_verify_backup_restore_purge(data, capsys, tmp_path):
    from core.registry import Registry

    assert run(capsys, "people", "add", "--id", "E1", "--name", "Ada")[0] == 0
    with Registry.open(data / "facegate.db") as reg:
        for i in range(5):
            reg.record_event("gate-1", "recognised" if i % 2 else "unknown", "E1" if i % 2 else None,
                             {"svc": {"E1": 0.9}}, 0.4, None, "v1", reason="test")
    code, out, _ = run(capsys, "events", "--since", "1")
    assert code == 0 and out.count("gate-1") == 5
    csv_path = tmp_path / "events.csv"
    code, out, _ = run(capsys, "events", "--csv", str(csv_path), "--limit", "3")
    assert code == 0 and len(csv_path.read_text().splitlines()) == 4
    code, out, _ = run(capsys, "verify")
    assert code == 0 and "verified" in out
    backup = tmp_path / "backup.db"
    assert run(capsys, "backup", str(backup))[0] == 0
    code, _, err = run(capsys, "backup", str(backup))
    assert code == 2 and "exists" in err.lower()
    assert backup.read_bytes().startswith(b"FACEGATE-BACKUP")  # encrypted: no photo or name in clear
    assert b"Ada" not in backup.read_bytes()
    assert run(capsys, "people", "add", "--id", "E2", "--name", "Bob")[0] == 0
    assert run(capsys, "people", "remove", "E1")[0] == 0
    code, out, _ = run(capsys, "restore", str(backup))
    assert code == 0 and "before-restore" in out
    code, out, _ = run(capsys, "people", "list")
    assert "E1" not in out  # erased after the backup was taken: the restore erases them again
    code, out, _ = run(capsys, "purge", "--days", "0")
    assert code == 0 and "Purged 5 events" in out
    code, out, _ = run(capsys, "verify")
    assert code == 0, out
    # Tampering with an event row is caught.
    with Registry.open(data / "facegate.db") as reg:
        reg.record_event("gate-2", "unknown", None, {}, 0.3, None, "v1")
        reg.record_event("gate-2", "unknown", None, {}, 0.3, None, "v1")
    con = sqlite3.connect(data / "facegate.db")
    with con:
        con.execute("DROP TRIGGER IF EXISTS events_no_update")
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='events'"):
            con.execute(f"DROP TRIGGER {name}")
        con.execute("UPDATE events SET camera = 'gate-9' WHERE camera = 'gate-2' AND id = (SELECT max(id) FROM events)")
    con.close()
    code, out, _ = run(capsys, "verify")
    assert code == 1 and "PROBLEM" in out


def test_import_train_and_model_versions(data, capsys, seed, tmp_path):
    """The 5-celebrity train folder enrolls through `facegate import`, trains, and rolls back."""
    root = tmp_path / "people"
    for person in ("ben_afflek", "madonna", "jerry_seinfeld"):
        shutil.copytree(seed.dataset / "train" / person, root / person)
    code, out, err = run(capsys, "import", str(root))
    assert code == 0 and "Imported 3 people" in out, err
    code, out, err = run(capsys, "train")
    assert code == 0 and "active" in out, err
    code, out, err = run(capsys, "train")
    assert code == 0, err
    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and out.count("\n") >= 2 and "*" in out
    code, out, err = run(capsys, "models", "rollback")
    assert code == 0 and "active again" in out, err
    # A new photo of an enrolled person is recognised by the trained model.
    photo = min((seed.dataset / "val" / "madonna").iterdir())
    code, out, err = run(capsys, "recognize", "--registry", "--json", str(photo))
    assert code == 0 and '"decision": "madonna"' in out, err
    code, out, err = run(capsys, "enroll", "--id", "madonna", str(photo))
    assert code == 0 and "1 photos accepted" in out, err
    # Someone enrolled after the last training is recognised through the gallery alone.
    new = sorted((seed.dataset / "train" / "mindy_kaling").iterdir())
    code, out, err = run(capsys, "enroll", "--id", "E77", "--name", "Mindy", *map(str, new[:8]))
    assert code == 0, err
    probe = min((seed.dataset / "val" / "mindy_kaling").iterdir())
    code, out, err = run(capsys, "recognize", "--registry", "--json", str(probe))
    assert code == 0 and '"decision": "E77"' in out and "gallery only" in out, err


def test_recognize_registry_without_model_is_a_clear_error(data, capsys, seed):
    photo = min((seed.dataset / "val" / "madonna").iterdir())
    code, _, err = run(capsys, "recognize", "--registry", str(photo))
    assert code == 2 and "no active model" in err


def _columns_line_up(lines: list[str]) -> bool:
    """Every column starts where its header does, two spaces after the one before."""
    starts = [m.start() for m in re.finditer(r"(?<=  )\S", lines[0])]
    return all(line[s - 2:s] == "  " for line in lines[1:] for s in starts if s < len(line))


def test_tables_size_their_columns_to_their_content(data, capsys):
    """A long id, name or camera never runs into the next column (it did: `Angelina_JolieAngelina_Jolie`)."""
    from core.registry import Registry

    code, _, err = run(capsys, "people", "add", "--id", "Angelina_Jolie", "--name", "Angelina_Jolie",
                       "--department", "Facilities and Maintenance")
    assert code == 0, err
    assert run(capsys, "people", "add", "--id", "E1", "--name", "Ada")[0] == 0
    code, out, _ = run(capsys, "people", "list")
    lines = out.splitlines()
    assert code == 0 and "Angelina_Jolie  Angelina_Jolie  Facilities and Maintenance" in lines[1]
    assert _columns_line_up(lines)
    with Registry.open(data / "facegate.db") as reg:
        reg.record_event("north-gate-loading-dock", "recognised", "Angelina_Jolie", {}, 0.4, None, "v1")
        reg.record_event("gate-1", "unknown", None, {}, 1.3, None, "v1")
    code, out, _ = run(capsys, "events")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and "north-gate-loading-dock  recognised" in out
    assert _columns_line_up(lines)
    code, out, _ = run(capsys, "audit")
    assert code == 0 and _columns_line_up(out.splitlines())
