"""An operator's recognition history, the re-enrollment advice, last seen, and the erasure preview
(``core.registry.history``), on a real SQLite registry with events recorded as the live EventWriter
writes them: ``{"svc": {<favourite>: p}, "stacker": …, "super_learner": …}`` and the decision's reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import RegistryError
from core.registry import Registry
from core.registry.history import (
    DRIFT_MIN_POINTS,
    drift,
    erasure_preview,
    last_seen,
    recognition_history,
    threshold_in_force,
)

HR = "hr:test"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MODELS = ("svc", "stacker", "super_learner")


def votes(who: str, p: float, **others: tuple[str, float]) -> dict:
    """Each model's favourite as the EventWriter records it; ``others`` overrides one model's."""
    out = {m: {who: p} for m in MODELS}
    for model, (identity, prob) in others.items():
        out[model] = {identity: prob}
    return out


@pytest.fixture()
def reg(tmp_path: Path):
    with Registry.open(tmp_path / "data" / "facegate.db") as registry:
        registry.add_operator("E1001", "Ada Lovelace", "Maintenance", actor=HR)
        registry.add_operator("E1002", "Alan Turing", "Control room", actor=HR)
        registry.add_operator("E1003", "Grace Hopper", "Logistics", actor=HR)
        model = registry.add_model_version(tmp_path / "data" / "models" / "x", "facenet", "v1",
                                           {"threshold": 0.95}, actor=HR)
        registry.activate_model(model, actor=HR)
        yield registry


def record(reg: Registry, when: datetime, decision: str, who: str | None, distance: float, probs: dict,
           reason: str = "", camera: str = "gate") -> int:
    return reg.record_event(camera, decision, who, probs, distance, b"\xff\xd8jpeg", "v1", reason=reason, time=when)


def test_history_lists_their_recognitions_with_their_own_probabilities_oldest_first(reg):
    record(reg, T0, "recognised", "E1001", 0.41, votes("E1001", 0.97),
           "all models agree; within 0.974 of the gallery")
    record(reg, T0 + timedelta(days=1), "recognised", "E1002", 0.38, votes("E1002", 0.99))  # someone else
    record(reg, T0 + timedelta(days=2), "recognised", "E1001", 0.52,
           votes("E1001", 0.91, stacker=("E1002", 0.55)), "FLAGGED: the stacker prefers E1002", camera="door")
    record(reg, T0 + timedelta(days=3), "unknown", None, 1.31, votes("E1003", 0.6))  # a stranger

    history = recognition_history(reg, "E1001")
    assert history.employee_id == "E1001" and history.name == "Ada Lovelace"
    assert (history.threshold, history.threshold_source) == (0.95, "calibrated, model version 1")
    assert [p.distance for p in history.points] == [0.41, 0.52]
    first, second = history.points
    assert first.time == T0 and first.camera == "gate" and first.accepted and first.decision == "recognised"
    assert first.probabilities == {"svc": 0.97, "stacker": 0.97, "super_learner": 0.97}
    assert first.threshold == 0.974 and not first.flagged  # the threshold written in the reason
    # The stacker favoured someone else: its probability for her is not recorded, and whom it preferred is.
    assert second.probabilities == {"svc": 0.91, "stacker": None, "super_learner": 0.91}
    assert second.others == {"stacker": "E1002"} and second.flagged and second.camera == "door"
    assert second.threshold is None
    assert history.accepted == 2 and history.turned_away == 0
    assert recognition_history(reg, "E1001", limit=1).points == (second,)
    with pytest.raises(RegistryError):
        recognition_history(reg, "E9999")


def test_a_face_every_model_gave_them_just_past_the_threshold_counts_as_turned_away(reg):
    near = record(reg, T0, "unknown", None, 1.02, votes("E1001", 0.88),
                  "too far from every enrolled person (1.020 > 0.950)")
    record(reg, T0 + timedelta(hours=1), "unknown", None, 1.40, votes("E1001", 0.7))  # far off: a stranger
    record(reg, T0 + timedelta(hours=2), "unknown", None, 1.0, votes("E1001", 0.8, svc=("E1002", 0.6)))  # split
    history = recognition_history(reg, "E1001")
    assert [(p.event_id, p.accepted, p.threshold) for p in history.points] == [(near, False, 0.95)]
    assert history.turned_away == 1


def test_drift_advises_re_enrollment_when_recent_recognitions_creep_towards_the_threshold(reg):
    # Months of comfortable recognitions, then new glasses: the last ones come close to 0.95.
    for day, distance in enumerate([0.45] * 30 + [0.84, 0.86, 0.83, 0.88, 0.87, 0.85, 0.9, 0.86, 0.84, 0.85, 0.87, 0.86]):
        record(reg, T0 + timedelta(days=day), "recognised", "E1001", distance, votes("E1001", 0.9))
    advice = drift(recognition_history(reg, "E1001"))
    assert advice is not None and advice.employee_id == "E1001" and advice.threshold == 0.95
    assert advice.recent == 20 and advice.turned_away == 0
    assert advice.message == ("Recent recognitions of E1001 are close to the threshold (median 0.84 of 0.95): "
                              "re-enroll with new photos.")
    # A comfortable operator gets no advice; a stricter threshold passed in changes nothing for them.
    for day in range(10):
        record(reg, T0 + timedelta(days=day), "recognised", "E1002", 0.40, votes("E1002", 0.99))
    assert drift(recognition_history(reg, "E1002")) is None
    assert drift(recognition_history(reg, "E1002"), threshold=0.9) is None
    # ...but the same distances against a much lower threshold are close to it.
    assert drift(recognition_history(reg, "E1002"), threshold=0.45) is not None


def test_drift_needs_enough_recognitions_and_speaks_of_turned_away_attempts(reg):
    for i in range(DRIFT_MIN_POINTS - 1):
        record(reg, T0 + timedelta(days=i), "recognised", "E1001", 0.9, votes("E1001", 0.9))
    assert drift(recognition_history(reg, "E1001")) is None  # four are too few to tell
    for i in range(6):
        record(reg, T0 + timedelta(days=10 + i), "recognised", "E1002", 0.5, votes("E1002", 0.95))
    for i in range(3):
        record(reg, T0 + timedelta(days=20 + i), "unknown", None, 1.0, votes("E1002", 0.8))
    advice = drift(recognition_history(reg, "E1002"))
    assert advice is not None and advice.turned_away == 3 and advice.recent == 9
    assert advice.message.startswith("3 of the last 9 attempts by E1002 were turned away")
    assert "re-enroll with new photos" in advice.message


def test_no_threshold_without_a_model_and_hr_s_override_wins(tmp_path: Path):
    from core.recognition.engine import Policy
    from core.registry.decision import DECISION_SETTING, decision_record

    with Registry.open(tmp_path / "facegate.db") as reg:
        reg.add_operator("E1", "A", actor=HR)
        assert threshold_in_force(reg) == (None, "")
        assert drift(recognition_history(reg, "E1")) is None
        reg.set_setting(DECISION_SETTING, decision_record(Policy("all", 0.5, 0.0, 0.8), 80), actor=HR)
        assert threshold_in_force(reg) == (0.8, "set by HR")


def test_last_seen_is_the_newest_time_each_operator_was_let_in(reg):
    record(reg, T0, "recognised", "E1001", 0.4, votes("E1001", 0.9))
    record(reg, T0 + timedelta(days=2), "gallery-only", "E1001", 0.5, votes("E1001", 0.9))
    record(reg, T0 + timedelta(days=1), "recognised", "E1002", 0.4, votes("E1002", 0.9))
    record(reg, T0 + timedelta(days=5), "unknown", None, 1.2, votes("E1002", 0.6))
    assert last_seen(reg) == {"E1001": T0 + timedelta(days=2), "E1002": T0 + timedelta(days=1)}


def test_the_erasure_preview_counts_what_erasure_then_removes(reg, tmp_path: Path):
    models = tmp_path / "data" / "models"
    folders = {}
    for name, classes in (("20260301-080000-aaaaaa", ["E1001", "E1002"]), ("20260302-080000-bbbbbb", ["E1002"]),
                          ("20260303-080000-cccccc", ["E1001", "E1002", "E1003"])):
        folder = models / name
        folder.mkdir(parents=True)
        (folder / "model.json").write_text(json.dumps({"classes": classes}))
        folders[name] = reg.add_model_version(folder, "facenet", "v1", {"threshold": 0.9}, actor=HR)
    reg.activate_model(folders["20260303-080000-cccccc"], actor=HR)
    photo = reg.add_photo("E1001", b"\xff\xd8one", "test", None, {}, actor=HR)
    reg.add_photo("E1001", b"\xff\xd8two", "test", None, {}, actor=HR)
    import numpy as np

    reg.add_embedding(photo, np.ones(128, np.float32) / np.sqrt(128), "facenet", "v1")
    for i in range(3):
        record(reg, T0 + timedelta(days=i), "recognised", "E1001", 0.4, votes("E1001", 0.9))
    reg.record_event("gate", "recognised", "E1001", votes("E1001", 0.9), 0.4, None, "v1", time=T0)  # no snapshot

    preview = erasure_preview(reg, models, "E1001")
    assert (preview.photos, preview.embeddings, preview.events, preview.snapshots) == (2, 1, 4, 3)
    assert preview.model_versions == (folders["20260301-080000-aaaaaa"], folders["20260303-080000-cccccc"])
    assert preview.active_retrained and preview.active_model == folders["20260303-080000-cccccc"]
    lines = preview.lines()
    assert lines[0] == "2 enrollment photos — deleted"
    assert lines[1].startswith("1 face embedding ")
    assert "4 gate events" in lines[2] and "3 face snapshots" in lines[2]
    assert f"model versions {folders['20260301-080000-aaaaaa']}, {folders['20260303-080000-cccccc']}" in lines[3]
    assert "retrained without them" in lines[4]
    report = reg.remove_operator("E1001", actor=HR)  # what the erasure itself then counts
    assert (report.photos, report.embeddings, report.events_redacted) == (2, 1, 4)
