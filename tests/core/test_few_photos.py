"""Issue 12: people enrolled with one, two or three usable photos take part in every model.

Real photos, the real MTCNN and FaceNet weights, a real SQLite registry.  The five 5-celebrity people
are enrolled with 1, 2, 3, 5 and all of their *train* photos; the models are scored on the *val*
photos, which nobody was enrolled with.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.recognition.augment import AUGMENT_BELOW, TARGET_ROWS, VARIANTS, top_up, variants
from core.registry import Registry
from core.registry.enrollment import Enroller
from core.registry.signing import verify_state
from core.registry.training import load_active_model, retrain
from tests.conftest import make_hr

HR = "hr:test"
PHOTOS = {"ben_afflek": 1, "elton_john": 2, "jerry_seinfeld": 3, "madonna": 5, "mindy_kaling": None}


@pytest.fixture(scope="module")
def few(tmp_path_factory, seed, pipeline) -> tuple[Path, Path, dict[str, int]]:
    """A registry whose people have 1, 2, 3, 5 and all of their train photos, trained and signed."""
    from core.registry.security import signed

    root = tmp_path_factory.mktemp("few")
    db, models = root / "facegate.db", root / "models"
    enrolled = {}
    with Registry.open(db) as reg:
        session = make_hr(reg)
        enroller = Enroller(reg, pipeline)
        with signed(reg, session, reason="enroll few", models_dir=models):
            for person, n in PHOTOS.items():
                photos = sorted((seed.dataset / "train" / person).iterdir())
                if n is None:  # everyone: one batch (enough photos, so no augmented copies)
                    result = enroller.enroll_photos(person, person, "Ops", photos, actor=session.actor)
                    enrolled[person] = len(result.accepted)
                    continue
                kept = 0
                for photo in photos:  # the first n photos that pass the quality gate, one at a time
                    if kept == n:
                        break
                    result = enroller.enroll_photos(person, person, "Ops", [photo], actor=session.actor)
                    kept += len(result.accepted)
                enrolled[person] = kept
            retrain(reg, pipeline, models, actor=session.actor)
    return db, models, enrolled


def test_everyone_takes_part_in_every_model_and_recognises_their_val_faces(few, val_set):
    db, models, enrolled = few
    assert enrolled["ben_afflek"] == 1 and enrolled["elton_john"] == 2 and enrolled["jerry_seinfeld"] == 3
    with Registry.open(db) as reg:
        assert verify_state(reg).ok
        active = reg.active_model()
        assert active is not None and active.status == "active", active
        assert active.metrics["left_out"] == {}
        # Augmented copies topped up the people with fewer than AUGMENT_BELOW photos, and only them.
        assert active.metrics["augmented_people"] == sum(1 for n in enrolled.values() if n < AUGMENT_BELOW)
        model = load_active_model(reg, models)
    for name, clf in model.classifiers.items():
        assert sorted(clf.classes_) == sorted(PHOTOS), name
        right = int(np.sum(np.asarray(clf.predict(val_set.x)) == val_set.y))
        assert right >= 22, (name, right)  # the target with 1 photo each; here 1-all
        proba = clf.predict_proba(val_set.x)
        wrong = np.asarray(clf.predict(val_set.x)) != val_set.y
        assert not np.any(proba.max(axis=1)[wrong] >= 0.9), name  # no confident wrong name
    # The gallery (and its threshold) holds the real photos only.
    assert len(model.gallery) == sum(enrolled.values())


def test_augmented_embeddings_are_stored_once_at_enrollment_and_signed(few, tmp_path):
    db, models, enrolled = few
    with Registry.open(db) as reg:
        rows = reg.db.conn.execute(
            "SELECT o.employee_id, COUNT(*) FROM augmented_embeddings a JOIN operators o ON o.id = a.operator_id "
            "GROUP BY o.employee_id").fetchall()
    counts = dict(rows)
    for person, n in enrolled.items():
        if n < AUGMENT_BELOW:
            assert counts.get(person) == n * len(VARIANTS), person
        else:
            assert person not in counts  # enough photos: none computed
    # A planted augmented embedding is caught like any gallery change.
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE augmented_embeddings SET vector = ? WHERE id = (SELECT MIN(id) FROM augmented_embeddings)",
                     [np.zeros(128, "<f4").tobytes()])
    with Registry.open(copy) as reg:
        state = verify_state(reg)
    assert not state.ok and any("augmented" in p for p in state.problems)


def test_erasing_a_person_removes_their_augmented_embeddings(few, tmp_path):
    from tests.conftest import clone_registry

    db, models, _ = few
    db2, _models2 = clone_registry(db, models, tmp_path / "c")
    with Registry.open(db2) as reg:
        reg.remove_operator("ben_afflek", actor=HR)
        left = reg.db.conn.execute(
            "SELECT COUNT(*) FROM augmented_embeddings a LEFT JOIN photos p ON p.id = a.photo_id "
            "WHERE p.id IS NULL").fetchone()[0]
        ben = reg.db.conn.execute("SELECT COUNT(*) FROM augmented_embeddings WHERE operator_id NOT IN "
                                  "(SELECT id FROM operators)").fetchone()[0]
    assert left == 0 and ben == 0


def test_variants_of_a_real_face_stay_close_to_it(seed, pipeline):
    from core.vision.imageio import read_image

    image = read_image(sorted((seed.dataset / "train" / "madonna").iterdir())[0])
    det, emb = pipeline.single_face(image)
    face = pipeline.align(image, [det])[0]
    out = variants(face)
    assert out.shape == (len(VARIANTS), *face.shape) and out.dtype == np.uint8
    assert np.array_equal(out[0], face[:, ::-1])
    vectors = np.asarray(pipeline.embedder.embed(out))
    d = np.linalg.norm(vectors - emb, axis=1)
    assert np.all(d < 0.8), d  # the same face (FaceNet's same-person distances are ~0.5-0.9)
    assert np.all(d > 1e-3)  # ... but not the same vector


def test_top_up_fills_to_the_target_round_robin_and_skips_people_with_enough_photos():
    labels = ["a"] + ["b"] * 2 + ["c"] * AUGMENT_BELOW
    pids = list(range(len(labels)))
    stored = {p: np.zeros((len(VARIANTS), 4)) for p in pids}
    photos, which = top_up(labels, pids, stored)
    by = {}
    for p, v in zip(photos, which):
        by.setdefault(labels[p], []).append((p, v))
    assert len(by["a"]) == min(len(VARIANTS), TARGET_ROWS - 1)
    assert len(by["b"]) == TARGET_ROWS - 2 and by["b"][:2] == [(1, 0), (2, 0)]  # every photo's mirror first
    assert "c" not in by


def test_evaluate_a_dataset_with_one_two_and_three_photo_people(seed, pipeline, tmp_path):
    """The crash of issue 12: `facegate evaluate` on a dataset whose people have 1, 2 and 3 photos."""
    import shutil

    from core.recognition.evaluate import evaluate, format_report

    root = tmp_path / "few"
    for person, n in {"ben_afflek": 1, "elton_john": 2, "jerry_seinfeld": 3, "madonna": 3, "mindy_kaling": 4}.items():
        for split in ("train", "val"):
            (root / split / person).mkdir(parents=True)
        # Photos that pass the gate (checked once by embedding them), so each person has exactly n.
        for photo in [p for p in sorted((seed.dataset / "train" / person).iterdir())
                      if _one_face(pipeline, p)][:n]:
            shutil.copy(photo, root / "train" / person / photo.name)
        for photo in sorted((seed.dataset / "val" / person).iterdir()):
            shutil.copy(photo, root / "val" / person / photo.name)
    report = evaluate(root, pipeline=pipeline, out_dir=tmp_path / "out", cv_splits=10, cv_repeats=1)
    adapted = report["adapted"]
    assert adapted["photos_per_person"]["ben_afflek"] == 1 and adapted["cv_folds_per_person"]
    assert set(adapted["augmented_copies"]) == {"ben_afflek", "elton_john", "jerry_seinfeld", "madonna",
                                                "mindy_kaling"}
    for name in ("svc", "stacker", "super_learner"):
        assert report["models"][name]["val_accuracy"] >= 22 / 25, name
        assert 0.0 <= report["models"][name]["calibration"]["ece"] <= 1.0
    assert all(len(row["scores"]) == adapted["cv_folds_used"] for row in report["stacker_cv"].values())
    assert (tmp_path / "out" / "reliability.png").stat().st_size > 10_000
    assert "topped up with augmented copies" in format_report(report)


def _one_face(pipeline, path) -> bool:
    from core.errors import FaceGateError
    from core.vision.imageio import read_image

    try:
        pipeline.single_face(read_image(path))
    except FaceGateError:
        return False
    return True
