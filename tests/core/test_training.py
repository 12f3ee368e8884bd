"""Retraining from a real SQLite registry: checks, versions, erasure, rollback, cancel, SIGKILL, gallery-only.

One registry with three people (enrolled from real photos through the quality gate) and one trained,
active model version is built once per module; each test works on its own copy of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelError
from core.recognition.classifiers import TrainingCancelled, TrainingDataError
from core.recognition.engine import Recognizer
from core.registry import ModelVersion, Registry, RegistryError
from core.registry.enrollment import Enroller
from core.registry.training import (
    EmbedderInfo,
    current_gallery_model,
    load_active_model,
    retrain,
    rollback,
    sweep_models_dir,
)
from core.vision.imageio import read_image

HR = "hr:test"
PEOPLE = {"E-BA": "ben_afflek", "E-JS": "jerry_seinfeld", "E-MK": "mindy_kaling"}
WORKER = Path(__file__).with_name("training_worker.py")
from tests.conftest import clone_registry


@dataclass(frozen=True)
class Base:
    db: Path
    models: Path
    v1: ModelVersion


@pytest.fixture(scope="module")
def base(tmp_path_factory, seed, pipeline) -> Base:
    root = tmp_path_factory.mktemp("base")
    with Registry.open(root / "facegate.db") as reg:
        enroller = Enroller(reg, pipeline)
        for emp, person in PEOPLE.items():
            result = enroller.enroll_photos(emp, person, "Operations",
                                            sorted((seed.dataset / "val" / person).iterdir()), actor=HR)
            assert len(result.accepted) >= 4, result.rejected
        v1 = retrain(reg, pipeline, root / "models", actor=HR)
    return Base(root / "facegate.db", root / "models", v1)


def clone(base: Base, dest: Path) -> tuple[Path, Path]:
    """A private copy of the base registry and its models folder."""
    return clone_registry(base.db, base.models, dest)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def probes(data, person: str) -> np.ndarray:
    return data.x[data.y == person]


def identities(model, x: np.ndarray) -> list[str]:
    return [decision.identity for _, _, decision, _ in model.decide(x)]


def test_retrain_records_checks_and_activates_a_new_version(base, pipeline, train_set):
    v1 = base.v1
    assert v1.active and v1.status == "active"
    metrics = v1.metrics
    assert metrics["people"] == 3 and metrics["embeddings"] >= 12 and metrics["left_out"] == {}
    assert all(check["ok"] for check in metrics["checks"].values())
    assert {"svc", "stacker", "lr", "knn", "cart", "svm", "bayes"} <= set(metrics["cv_accuracy"])
    assert all(len(scores) == metrics["cv_folds"] for scores in metrics["cv_accuracy"].values())
    assert metrics["cv_method"] == "refit"  # a small gallery: the SVC and the stacker retrained per fold
    assert set(metrics["train_accuracy"]) == {"svc", "stacker", "super_learner"}
    assert metrics["calibration"]["threshold"] == pytest.approx(metrics["threshold"])
    assert 0.5 < metrics["threshold"] < 1.3
    assert "3 people" in v1.notes
    assert Path(v1.path).name == metrics["version"] and listing(base.models) == [metrics["version"]]

    with Registry.open(base.db) as reg:
        model = load_active_model(reg, base.models, expect_signature=pipeline.signature)
        assert model is not None and model.version == metrics["version"]
        assert model.metadata["model_id"] == v1.id
        assert model.metadata["embedder_version"] == pipeline.embedder.version
        assert {str(c) for c in model.classifiers["svc"].classes_} == set(PEOPLE)
        actions = [(a.action, a.actor) for a in reg.audit_log()][-2:]
        assert actions == [("add_model_version", HR), ("activate_model", HR)]
        assert reg.verify() == []
    for emp, person in PEOPLE.items():
        got = identities(model, probes(train_set, person))
        assert got.count(emp) >= 0.8 * len(got), (emp, got)


def test_a_large_gallery_takes_its_fold_accuracy_from_the_training_folds(base, tmp_path, pipeline, monkeypatch):
    from core.recognition import classifiers

    monkeypatch.setattr(classifiers.base, "MAX_THESIS_CLASSES", 2)  # the large-gallery parts, on 3 people
    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        messages: list[str] = []
        mv = retrain(reg, pipeline, models, actor=HR, progress=lambda fraction, message: messages.append(message))
        assert mv.active, mv.notes
        metrics = mv.metrics
        assert metrics["cv_method"] == "out_of_fold"
        assert set(metrics["cv_accuracy"]) == {"svc", "lr", "knn", "cart", "svm", "bayes", "stacker"}
        assert all(len(scores) == metrics["cv_folds"] for scores in metrics["cv_accuracy"].values())
        model = load_active_model(reg, models)
        assert model is not None
        svc, stacker = model.classifiers["svc"], model.classifiers["stacker"]
        assert (svc.method_, stacker.mode_, svc.n_splits_) == ("temperature", "scalable", metrics["cv_folds"])
        assert metrics["cv_accuracy"]["svc"] == [round(a, 4) for a in svc.fold_accuracy_]
        assert metrics["cv_accuracy"]["stacker"] == [round(a, 4) for a in stacker.fold_accuracy_["stacking"]]
        # Nothing was trained again for the figures.
        assert not any(m.startswith(("cross-validating svc", "Fold ")) for m in messages)


def test_erasure_then_prune_forgets_the_person_in_every_version_and_rollback_cannot_bring_them_back(
        base, tmp_path, pipeline, train_set):
    from core.registry.pruning import prune_erased

    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        reg.remove_operator("E-JS", actor=HR)
        report = prune_erased(reg, models, actor=HR)
        v2 = report.retrained
        assert v2 is not None and v2.active and v2.id != base.v1.id and v2.metrics["people"] == 2
        assert report.deleted == (base.v1.id,) and report.pending == ()
        model = load_active_model(reg, models)
        assert model is not None
        for clf in model.classifiers.values():
            assert "E-JS" not in {str(c) for c in clf.classes_}
        assert "E-JS" not in set(model.gallery.identities)
        assert "E-JS" not in (models / v2.metrics["version"] / "model.json").read_text()
        assert "E-JS" not in identities(model, probes(train_set, "jerry_seinfeld"))
        # The version trained with them is gone from disk, not kept for a rollback.
        assert listing(models) == [v2.metrics["version"]]
        old = {m.id: m for m in reg.list_models()}[base.v1.id]
        assert old.path == "" and old.notes == "files deleted: trained with an erased person"

        with pytest.raises(ModelError):
            rollback(reg, HR, models)
        assert reg.active_model().id == v2.id  # type: ignore[union-attr]
        assert [a.action for a in reg.audit_log()][-1] == "prune_models"
        assert reg.verify() == []


def test_a_model_that_fails_its_checks_is_rejected_and_the_active_one_stays(base, tmp_path, pipeline, seed):
    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        # One person under two employee ids: the classifiers cannot tell "them" apart.
        train = sorted((seed.dataset / "train" / "ben_afflek").iterdir())
        twin = Enroller(reg, pipeline).enroll_photos("E-BA2", "Ben again", "", train, actor=HR,
                                                     confirm_duplicate=True)
        assert twin.duplicate_of == "E-BA" and len(twin.accepted) >= 4
        before_models, before_files = reg.list_models(), listing(models)
        mv = retrain(reg, pipeline, models, actor=HR)
        assert mv.status == "rejected" and not mv.active and mv.path == ""
        assert mv.notes.startswith("rejected: ")
        failed = [name for name, check in mv.metrics["checks"].items() if not check["ok"]]
        assert any(name.startswith(("cv_accuracy.", "train_accuracy.")) for name in failed), failed
        assert "cannot tell the enrolled people apart" in mv.notes or "does not generalise" in mv.notes
        assert reg.active_model().id == base.v1.id  # type: ignore[union-attr]
        assert len(reg.list_models()) == len(before_models) + 1
        assert listing(models) == before_files  # a rejected model keeps no files
        with pytest.raises(RegistryError, match="failed its checks"):
            reg.activate_model(mv.id, actor=HR)
        assert reg.verify() == []


def test_a_person_erased_while_the_model_trains_is_not_activated(base, tmp_path, pipeline, train_set):
    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        # Someone with two photos stored without augmented copies (as before issue 12): the retrain
        # computes those once from the stored photos, and she takes part in the classifiers.
        op = reg.add_operator("E-MD", "Madonna", actor=HR)
        for path, vector in list(zip(np.asarray(train_set.paths)[train_set.y == "madonna"],
                                     probes(train_set, "madonna")))[:2]:
            photo = reg.add_photo(op, Path(path).read_bytes(), "file", None, {}, actor=HR)
            reg.add_embedding(photo, vector, pipeline.embedder.name, pipeline.embedder.version)
        erased = []

        def progress(fraction: float, message: str) -> None:
            if "super_learner" in message and not erased:
                with Registry.open(db) as hr_desk:  # another HR session erases meanwhile
                    erased.append(hr_desk.remove_operator("E-MK", actor=HR))

        mv = retrain(reg, pipeline, models, actor=HR, progress=progress)
        assert erased and mv.status == "rejected" and mv.path == ""
        assert "E-MK were erased or suspended while this model was training" in mv.notes
        assert mv.metrics["left_out"] == {} and mv.metrics["augmented_backfilled"] == 2
        assert reg.augmented(pipeline.embedder.version, embedder=pipeline.embedder.name).keys() >= {
            p.id for p in reg.list_photos("E-MD")}
        assert reg.active_model().id == base.v1.id  # type: ignore[union-attr]
        assert listing(models) == [base.v1.metrics["version"]]
        assert reg.verify() == []


def test_cancel_leaves_no_trace(base, tmp_path, pipeline):
    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        before = (reg.list_models(), len(reg.audit_log()), listing(models), reg.chain_heads())
        with pytest.raises(TrainingCancelled):
            retrain(reg, pipeline, models, actor=HR, cancel=lambda: True)
        seen: list[str] = []
        with pytest.raises(TrainingCancelled):
            retrain(reg, pipeline, models, actor=HR, progress=lambda f, m: seen.append(m),
                    cancel=lambda: any("super_learner" in m for m in seen))
        assert any("super_learner" in m for m in seen)
        assert (reg.list_models(), len(reg.audit_log()), listing(models), reg.chain_heads()) == before
        assert not any(p.name.startswith(".") for p in models.iterdir())
        assert reg.active_model().id == base.v1.id  # type: ignore[union-attr]


def test_a_retrain_killed_with_sigkill_leaves_the_old_model_active(base, tmp_path, pipeline):
    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        before = (reg.list_models(), reg.chain_heads())
    info = EmbedderInfo.of(pipeline)
    proc = subprocess.Popen([sys.executable, str(WORKER), str(db), str(models), info.name, info.version,
                             info.signature], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    watchdog = threading.Timer(300, proc.kill)
    watchdog.start()
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if "super_learner" in line:  # deep inside training: the classifiers are being fitted
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, lines[-5:]
    assert not any(line.startswith("finished") for line in lines)
    with Registry.open(db) as reg:
        assert reg.verify() == []
        assert (reg.list_models(), reg.chain_heads()) == before
        assert reg.active_model().id == base.v1.id  # type: ignore[union-attr]
        model = load_active_model(reg, models)
        assert model is not None and model.version == base.v1.metrics["version"]
    assert listing(models) == [base.v1.metrics["version"]]


def test_someone_enrolled_after_the_last_retrain_is_recognised_through_the_gallery(
        base, tmp_path, pipeline, seed, val_set, train_set):
    db, models = clone(base, tmp_path)
    with Registry.open(db) as reg:
        elton = sorted((seed.dataset / "train" / "elton_john").iterdir())
        enrolled = Enroller(reg, pipeline).enroll_photos("E-EJ", "Elton John", "Stores", elton, actor=HR)
        assert len(enrolled.accepted) >= 5 and enrolled.duplicate_of is None
        trained = load_active_model(reg, models)
        assert trained is not None
        assert "E-EJ" not in identities(trained, probes(val_set, "elton_john"))

        model = current_gallery_model(reg, trained)
        assert model.metadata["gallery_only"] == ["E-EJ"] and model.classifiers is trained.classifiers
        assert model.threshold == trained.threshold
        results = model.decide(probes(val_set, "elton_john"))
        accepted = [d for _, _, d, _ in results if d.accepted]
        assert len(accepted) >= 3
        assert all(d.identity == "E-EJ" and "classifiers not retrained yet (gallery only)" in d.reason
                   for d in accepted)
        # The people the classifiers know are still decided by all three models.
        ben = [d for _, _, d, _ in model.decide(probes(train_set, "ben_afflek")) if d.accepted]
        assert ben and all(d.identity == "E-BA" and "all three models agree" in d.reason for d in ben)

        # End to end: a photo through detector, alignment, FaceNet and the live-gallery model.
        live = load_active_model(reg, models, live_gallery=True)
        assert live is not None
        photo = min((seed.dataset / "val" / "elton_john").iterdir())
        (face,) = Recognizer(live, pipeline).recognize(read_image(photo))
        assert face.decision.identity == "E-EJ" and "gallery only" in face.decision.reason
        assert face.model_version == base.v1.metrics["version"]


def test_too_little_data_is_refused_before_training(tmp_path, pipeline, train_set):
    with Registry.open(tmp_path / "facegate.db") as reg:
        assert load_active_model(reg, tmp_path / "models") is None
        op = reg.add_operator("E-ONE", "Only One", actor=HR)
        for path, vector in list(zip(train_set.paths, train_set.x))[:4]:
            photo = reg.add_photo(op, Path(path).read_bytes(), "file", None, {}, actor=HR)
            reg.add_embedding(photo, vector, pipeline.embedder.name, pipeline.embedder.version)
        heads = reg.chain_heads()
        with pytest.raises(TrainingDataError, match="at least 2 enrolled people"):
            retrain(reg, pipeline, tmp_path / "models", actor=HR)
        assert reg.list_models() == [] and reg.chain_heads() == heads


def test_missing_model_files_and_leftovers(tmp_path, pipeline):
    models = tmp_path / "models"
    with Registry.open(tmp_path / "facegate.db") as reg:
        info = EmbedderInfo.of(pipeline)
        (models / "20260101-000000-aaaaaa").mkdir(parents=True)
        (models / "20260101-000000-aaaaaa" / "model.json").write_text("{}")
        first = reg.add_model_version(str(models / "20260101-000000-aaaaaa"), info.name, info.version, {},
                                      actor=HR)
        reg.activate_model(first, actor=HR)
        gone = reg.add_model_version(str(models / "20260102-000000-bbbbbb"), info.name, info.version, {},
                                     actor=HR)
        reg.activate_model(gone, actor=HR)
        with pytest.raises(ModelError, match="files of model version .* are missing"):
            load_active_model(reg, models)

        # Leftovers of interrupted retrains go once stale; recorded versions and foreign folders stay.
        for name in (".model-x1y2", "20251231-235959-cccccc", "notes"):
            (models / name).mkdir()
        fresh = models / ".model-fresh"
        fresh.mkdir()
        old = time.time() - 7200
        for name in (".model-x1y2", "20251231-235959-cccccc", "notes", "20260101-000000-aaaaaa"):
            os.utime(models / name, (old, old))
        removed = sweep_models_dir(reg, models)
        assert sorted(p.name for p in removed) == [".model-x1y2", "20251231-235959-cccccc"]
        assert listing(models) == [".model-fresh", "20260101-000000-aaaaaa", "notes"]

        # Rolling back to a version whose files are missing is refused; nothing changes.
        third = reg.add_model_version(str(models / "20260103-000000-dddddd"), info.name, info.version, {},
                                      actor=HR)
        (models / "20260101-000000-aaaaaa" / "model.json").unlink()
        reg.activate_model(third, actor=HR)
        with pytest.raises(ModelError, match="missing"):
            rollback(reg, HR, models)
        assert reg.active_model().id == third  # type: ignore[union-attr]
