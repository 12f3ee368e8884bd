"""Erasure reaches every copy: model versions trained with the person, and backups restored later.

One registry with four people (synthetic, well separated embeddings stored through the registry API)
and two model versions trained by the real :func:`retrain` is built once per module; each test works
on its own copy (SQLite backup API + a copy of the models folder).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelError
from core.recognition.engine import RecognitionModel
from core.registry import ModelVersion, Registry, RegistryError
from core.registry.chains import verify_registry
from core.registry.erasure import PRUNED_NOTE
from core.registry.pruning import prune_erased
from core.registry.training import EmbedderInfo, retrain, rollback
from tests.conftest import clone_registry

HR = "hr:test"
INFO = EmbedderInfo("facenet", "synthetic-1", "facenet@synthetic-1|test")
PEOPLE = {"E1001": "Ada Erasmus", "E1002": "Ben Keeper", "E1003": "Cleo Keeper", "E1004": "Dan Keeper"}
PHOTOS = 6


@dataclass(frozen=True)
class Base:
    db: Path
    models: Path
    v1: ModelVersion
    v2: ModelVersion


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("erasure-base")
    rng = np.random.default_rng(7)
    with Registry.open(root / "facegate.db") as reg:
        for emp, name in PEOPLE.items():
            op = reg.add_operator(emp, name, "Operations", actor=HR)
            centre = rng.normal(size=128)
            for i in range(PHOTOS):
                marker = b"PHOTO-%s-%d-" % (emp.encode(), i)
                photo = reg.add_photo(op, marker + rng.bytes(32), f"{emp}_{i}.jpg", None, {}, actor=HR)
                vector = centre + rng.normal(scale=0.25, size=128)
                reg.add_embedding(photo, (vector / np.linalg.norm(vector)).astype(np.float32), INFO.name,
                                  INFO.version)
        for emp in ("E1001", "E1001", "E1002"):
            reg.record_event("gate-1", "recognised", emp, {"svc": {emp: 0.97}}, 0.4,
                             b"THUMB-" + emp.encode(), "m", reason=f"matched {emp}")
        v1 = retrain(reg, INFO, root / "models", actor=HR)
        v2 = retrain(reg, INFO, root / "models", actor=HR)
    assert v1.active and v2.active, (v1.notes, v2.notes)
    return Base(root / "facegate.db", root / "models", v1, v2)


def clone(base: Base, dest: Path) -> tuple[Path, Path]:
    """A private copy of the base registry and its models folder."""
    return clone_registry(base.db, base.models, dest)


def who_is_in(folder: Path) -> set[str]:
    """Everybody a model folder knows: sidecar classes, gallery labels and every classifier's classes."""
    model = RecognitionModel.load(folder)
    known = set(json.loads((folder / "model.json").read_text())["classes"])
    known |= {str(x) for x in model.gallery.labels}
    for clf in model.classifiers.values():
        known |= {str(c) for c in clf.classes_}
    return known


def folders_knowing(models: Path, person: str) -> list[str]:
    return [f.name for f in sorted(models.iterdir()) if f.is_dir() and person in who_is_in(f)]


def chains_ok(reg: Registry) -> list[str]:
    """The hash chains and the erasure accounting (the heads journal belongs to the original folder)."""
    return verify_registry(reg.db.conn)


def test_erasure_deletes_every_model_version_that_knew_the_person(base, tmp_path):
    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        assert folders_knowing(models, "E1001") == sorted(Path(v.path).name for v in (base.v1, base.v2))
        row = reg.get_operator("E1001").id
        reg.remove_operator("E1001", actor=HR)
        messages: list[str] = []
        report = prune_erased(reg, models, actor=HR, progress=lambda f, m: messages.append(m))

        assert report.deleted == (base.v1.id, base.v2.id) and report.pending == ()
        assert report.people == ("E1001",)
        new = report.retrained
        assert new is not None and new.active and reg.active_model().id == new.id  # type: ignore[union-attr]
        assert report.describe("E1001") == (f"model versions {base.v1.id}, {base.v2.id} deleted; new model "
                                            f"version {new.id} active without E1001.")
        assert messages and messages[-1].endswith("deleted")
        # No model on disk knows them (sidecar, gallery, any classifier); only the new one is left.
        assert [f.name for f in models.iterdir()] == [Path(new.path).name]
        assert folders_knowing(models, "E1001") == []
        assert who_is_in(models / Path(new.path).name) == {"E1002", "E1003", "E1004"}
        # The old versions' rows stay, saying why they have no files; no rollback can bring them back.
        rows = {m.id: m for m in reg.list_models()}
        for old in (base.v1.id, base.v2.id):
            assert (rows[old].path, rows[old].notes, rows[old].status) == ("", PRUNED_NOTE, "retired")
        with pytest.raises(ModelError):
            rollback(reg, HR, models)
        assert reg.active_model().id == new.id  # type: ignore[union-attr]

        last = reg.audit_log()[-1]
        assert (last.actor, last.action, last.object) == (HR, "prune_models", "model_versions")
        (ledger,) = reg.erasure_ledger()
        assert last.new == {"deleted": [base.v1.id, base.v2.id], "pending": [], "retrained": new.id,
                            "erasures": [ledger.id], "leftover_folders": 0}
        with pytest.raises(RegistryError, match="written by the registry itself"):
            reg.audit(HR, "prune_models", "model_versions")
        assert (ledger.operator_row, ledger.models_pruned) == (row, (base.v1.id, base.v2.id))
        # The ledger holds no personal data: no employee id, no name, nothing but ids, a time and versions.
        with sqlite3.connect(db) as conn:
            cells = [str(v) for r in conn.execute("SELECT * FROM erasures") for v in r]
            columns = [c[1] for c in conn.execute("PRAGMA table_info(erasures)")]
        assert columns == ["id", "time", "operator_row", "models_pruned"]
        assert not [c for c in cells if "E1001" in c or "Ada" in c or "Erasmus" in c]
        assert chains_ok(reg) == []

        # Running it again finds nothing and writes nothing.
        audit_rows = len(reg.audit_log())
        again = prune_erased(reg, models, actor=HR)
        assert (again.deleted, again.retrained, again.pending) == ((), None, ())
        assert again.describe("E1001") == "no model file holds E1001's face data."
        assert len(reg.audit_log()) == audit_rows


def test_the_active_model_is_kept_and_reported_when_no_new_model_can_be_trained(base, tmp_path):
    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        for emp in ("E1002", "E1003", "E1001"):  # one person left: nothing can be trained
            reg.remove_operator(emp, actor=HR)
        report = prune_erased(reg, models, actor=HR)

        assert report.retrained is None
        assert report.pending == (base.v2.id,) and report.deleted == (base.v1.id,)
        assert "at least 2 enrolled people" in report.not_retrained
        text = report.describe("E1001")
        assert (f"model version {base.v2.id} is still active and still holds E1001's face data" in text
                and "until HR retrains with 'facegate train'" in text), text
        # The gate keeps its model (said plainly above); every other version that knew them is gone.
        assert reg.active_model().id == base.v2.id  # type: ignore[union-attr]
        assert folders_knowing(models, "E1001") == [Path(base.v2.path).name]
        assert not (models / Path(base.v1.path).name).exists()
        last = reg.audit_log()[-1]
        assert last.action == "prune_models"
        assert last.new["deleted"] == [base.v1.id] and last.new["pending"] == [base.v2.id]
        assert last.new["retrained"] is None
        assert [r.models_pruned for r in reg.erasure_ledger()] == [(base.v1.id,)] * 3
        assert chains_ok(reg) == []


def test_facegate_people_remove_erases_the_model_files_too(base, tmp_path, monkeypatch, capsys):
    from core.cli.main import main
    from core.registry import Registry
    from tests.conftest import HR_PASSPHRASE, make_hr

    db, models = clone(base, tmp_path / "data")
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    with Registry.open(db) as reg:
        make_hr(reg)
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", HR_PASSPHRASE)
    assert main(["-q", "people", "remove", "E1001"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == (f"Erased E1001: {PHOTOS} photos, {PHOTOS} embeddings, 2 events redacted; model "
                           f"versions {base.v1.id}, {base.v2.id} deleted; new model version {base.v2.id + 1} "
                           "active without E1001.")
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count(PRUNED_NOTE) == 2
    assert folders_knowing(models, "E1001") == []


def test_restore_does_not_bring_an_erased_person_back(base, tmp_path):
    db, models = clone(base, tmp_path / "data")
    backup = tmp_path / "monday.db"
    with Registry.open(db) as reg:
        identity = reg.get_setting("registry.id")
        assert identity
        reg.backup(backup)
        rows = {emp: reg.get_operator(emp).id for emp in PEOPLE}
        late = reg.add_operator("E1009", "Late Joiner", actor=HR)  # enrolled and erased after the backup
        reg.remove_operator("E1009", actor=HR)
        reg.remove_operator("E1001", actor=HR)
        assert prune_erased(reg, models, actor=HR).retrained is not None

        reg.restore(backup)

        # The person is not back: operator, photos, embeddings gone, their events redacted.
        assert sorted(op.employee_id for op in reg.list_operators()) == ["E1002", "E1003", "E1004"]
        assert "E1001" not in set(reg.embeddings(INFO.version)[1])
        assert {p.operator_id for p in reg.list_photos()} == {rows["E1002"], rows["E1003"], rows["E1004"]}
        events = reg.events()
        assert [e.erased for e in events] == [True, True, False]
        assert all(e.probabilities is None and e.reason is None and not e.has_thumbnail for e in events[:2])
        for path in db.parent.glob("facegate.db*"):
            if path.name.endswith(".before-restore"):
                continue
            data = path.read_bytes()
            assert b"PHOTO-E1001" not in data and b"THUMB-E1001" not in data, path.name

        restored = reg.audit_log(action="restore")[-1]
        assert (restored.new["erasures_reapplied"], restored.new["erasures_carried_over"]) == (1, 2)
        assert restored.new["model_versions_pruned"] == 2  # v1 and v2 lost their files after the backup
        again = [a for a in reg.audit_log(action="remove_operator") if a.actor == "restore"]
        assert [(a.object, a.old, a.new["events_redacted"]) for a in again] == [("E1001", None, 2)]
        assert [r.operator_row for r in reg.erasure_ledger()] == [late, rows["E1001"]]
        assert reg.get_setting("registry.id") == identity
        # Row ids handed out before the restore are never handed out again (the ledger names rows).
        assert reg.add_operator("E1010", "Next Joiner", actor=HR) > late
        assert chains_ok(reg) == []

        # The restored model versions knew them; their files were deleted before, so retrain.
        active = reg.active_model()
        assert active is not None and active.path == "" and active.notes == PRUNED_NOTE
        report = prune_erased(reg, models, actor=HR)
        assert report.retrained is not None
        assert reg.active_model().id == report.retrained.id  # type: ignore[union-attr]
        assert folders_knowing(models, "E1001") == []


def test_restore_refuses_a_backup_of_another_registry(base, tmp_path):
    db, _ = clone(base, tmp_path / "data")
    other = tmp_path / "other-site.db"
    with Registry.open(tmp_path / "other" / "facegate.db") as elsewhere:
        elsewhere.add_operator("X1", "Someone Else", actor=HR)
        elsewhere.backup(other)
        theirs = elsewhere.get_setting("registry.id")
    with Registry.open(db) as reg:
        def state() -> tuple:
            people = [op.employee_id for op in reg.list_operators()]
            return people, reg.chain_heads(), sorted(db.parent.iterdir())

        before = state()
        refused = rf"backup of another registry \({theirs}\).*nothing was restored"
        with pytest.raises(RegistryError, match=refused):
            reg.restore(other)
        assert state() == before


def test_a_backup_made_before_registries_had_an_id_is_taken_as_this_registrys(base, tmp_path):
    db, _ = clone(base, tmp_path / "data")
    backup = tmp_path / "old.db"
    with Registry.open(db) as reg:
        identity = reg.get_setting("registry.id")
        reg.backup(backup)
        with sqlite3.connect(backup) as conn:
            conn.execute("DELETE FROM settings WHERE key = 'registry.id'")
        conn.close()
        reg.remove_operator("E1001", actor=HR)
        reg.restore(backup)
        assert reg.get_setting("registry.id") == identity
        assert "E1001" not in {op.employee_id for op in reg.list_operators()}
        assert reg.audit_log(action="restore")[-1].new["erasures_reapplied"] == 1
        assert chains_ok(reg) == []
