"""The recognition engine on the real weights and the real 5-celebrity photos."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from core.errors import FaceError, ModelError
from core.recognition.engine import MODEL_NAMES, Policy, RecognitionModel, Recognizer
from core.recognition.openset import Gallery
from core.types import UNKNOWN
from core.vision.imageio import read_image
from tests.conftest import compose, face_crop


def test_embeddings_same_person_closer_than_different_people(train_set):
    x, y = train_set.x, train_set.y
    assert x.dtype == np.float32 and x.shape[1] == 128
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    same = y[:, None] == y[None]
    off_diag = ~np.eye(len(y), dtype=bool)
    assert d[same & off_diag].mean() + 0.4 < d[~same].mean()


def test_all_three_models_classify_every_val_face(trained_model, val_set):
    assert len(val_set) == 25
    for name in MODEL_NAMES:
        pred = trained_model.classifiers[name].predict(val_set.x)
        assert (pred == val_set.y).all(), name
        proba = trained_model.classifiers[name].predict_proba(val_set.x)
        assert np.allclose(proba.sum(1), 1.0)


def test_enrolled_val_faces_are_accepted_as_themselves(trained_model, val_set):
    decisions = [d[2] for d in trained_model.decide(val_set.x)]
    ok = [dec.identity == truth for dec, truth in zip(decisions, val_set.y)]
    assert np.mean(ok) >= 0.95
    assert all(dec.identity in (truth, UNKNOWN) for dec, truth in zip(decisions, val_set.y)), \
        "an enrolled person must never be taken for another"


def test_strangers_come_out_unknown(trained_model, pipeline, strangers_dir):
    for photo in sorted(strangers_dir.rglob("*.jpg")):
        _, emb = pipeline.single_face(read_image(photo), photo.name)
        votes, _, decision, _ = trained_model.decide(emb)[0]
        assert decision.identity == UNKNOWN, (photo.name, decision)
        assert not decision.accepted
        # ... even though a closed-set classifier still names somebody.
        assert all(v.identity != UNKNOWN for v in votes)


def test_recognizer_names_three_people_in_one_frame(seed, trained_model, pipeline):
    people = ("ben_afflek", "madonna", "jerry_seinfeld")
    frame = compose([face_crop(seed, p, 1) for p in people])
    results = Recognizer(trained_model, pipeline).recognize(frame)
    assert len(results) == 3
    by_x = sorted(results, key=lambda r: r.detection.box[0])
    assert [r.decision.identity for r in by_x] == list(people)
    for r in results:
        assert {v.model for v in r.votes} == set(MODEL_NAMES)
        assert set(r.probabilities) == set(MODEL_NAMES)


def test_photo_with_several_faces_is_refused_for_single_face(seed, pipeline):
    frame = compose([face_crop(seed, p) for p in ("ben_afflek", "madonna")])
    with pytest.raises(FaceError, match="2 faces"):
        pipeline.single_face(frame, "group.jpg")
    with pytest.raises(FaceError, match="no face"):
        pipeline.single_face(np.full((300, 300, 3), 200, np.uint8), "wall.jpg")


@pytest.mark.parametrize("decider", ["svc", "stacker", "super_learner", "all"])
def test_each_policy_accepts_val_faces(trained_model, val_set, decider):
    model = RecognitionModel(trained_model.classifiers, trained_model.gallery, trained_model.calibration,
                             Policy(decider=decider), trained_model.metadata)
    ok = [d[2].identity == t for d, t in zip(model.decide(val_set.x), val_set.y)]
    assert np.mean(ok) >= 0.95


def test_policy_validation():
    with pytest.raises(ModelError, match="policy"):
        Policy(decider="majority")
    with pytest.raises(ModelError):
        Policy(min_probability=1.5)


def test_strict_probability_floor_turns_decisions_unknown(trained_model, val_set):
    model = RecognitionModel(trained_model.classifiers, trained_model.gallery, trained_model.calibration,
                             Policy(min_probability=1.0), trained_model.metadata)
    decisions = [d[2] for d in model.decide(val_set.x)]
    assert all(d.identity == UNKNOWN for d in decisions)
    assert any("unsure" in d.reason for d in decisions)


def test_person_in_gallery_but_not_yet_trained_is_recognised_by_gallery_only(trained_model, pipeline,
                                                                            strangers_dir, train_set):
    photos = sorted((strangers_dir / "barack_obama").glob("*.jpg"))
    embs = np.stack([pipeline.single_face(read_image(p), p.name)[1] for p in photos])
    gallery = Gallery(np.concatenate([train_set.x, embs[:2]]), np.concatenate([train_set.y, ["obama"] * 2]))
    model = RecognitionModel(trained_model.classifiers, gallery, trained_model.calibration, Policy(),
                             trained_model.metadata)
    decision = model.decide(embs[2:])[0][2]
    assert decision.identity == "obama"
    assert "gallery only" in decision.reason


def test_decide_tables_follow_the_classifiers_even_when_they_are_swapped(trained_model, val_set):
    model = RecognitionModel(dict(trained_model.classifiers), trained_model.gallery, trained_model.calibration,
                             Policy(), trained_model.metadata)
    probs = model.probabilities(val_set.x[:3])
    first = model.decide(val_set.x[:3])
    for i, (votes, table, decision, _) in enumerate(first):
        assert decision.accepted and "all three models agree" in decision.reason
        for name, clf in model.classifiers.items():
            assert table[name] == {str(c): float(p) for c, p in zip(clf.classes_, probs[name][i])}
    # The same models answering under other names: the gallery's people are no longer theirs.
    for name, clf in list(model.classifiers.items()):
        renamed = copy.copy(clf)
        renamed.classes_ = np.array([f"x-{c}" for c in clf.classes_])
        model.classifiers[name] = renamed
    for votes, table, decision, _ in model.decide(val_set.x[:3]):
        assert all(v.identity.startswith("x-") for v in votes)
        assert all(set(t) == {f"x-{c}" for c in trained_model.classifiers["svc"].classes_} for t in table.values())
        assert decision.accepted and "gallery only" in decision.reason


def test_training_with_the_large_gallery_parts_is_reproducible(monkeypatch, train_set, val_set):
    from core.recognition import classifiers
    from core.recognition.engine import train_model

    monkeypatch.setattr(classifiers.base, "MAX_THESIS_CLASSES", 2)  # the 1,000-people parts, threads on
    first, second = train_model(train_set.x, train_set.y), train_model(train_set.x, train_set.y)
    assert first.classifiers["stacker"].mode_ == "scalable"
    for name in MODEL_NAMES:
        np.testing.assert_array_equal(first.probabilities(val_set.x)[name], second.probabilities(val_set.x)[name])
        assert (first.classifiers[name].predict(val_set.x) == val_set.y).all(), name


def test_model_save_load_roundtrip(tmp_path, trained_model, val_set, pipeline):
    where = trained_model.save(tmp_path / "m")
    loaded = RecognitionModel.load(where)
    for name in MODEL_NAMES:
        assert np.allclose(loaded.probabilities(val_set.x)[name], trained_model.probabilities(val_set.x)[name])
    assert loaded.threshold == pytest.approx(trained_model.threshold)
    assert loaded.version == trained_model.version


def test_foreign_or_damaged_model_is_refused(tmp_path, trained_model):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "model.json").write_text('{"program": "other"}')
    with pytest.raises(ModelError, match="not written by"):
        RecognitionModel.load(tmp_path / "foreign")
    with pytest.raises(ModelError, match="not a FaceGate model"):
        RecognitionModel.load(tmp_path / "nothing")
    where = trained_model.save(tmp_path / "m")
    (where / "model.joblib").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="damaged"):
        RecognitionModel.load(where)
