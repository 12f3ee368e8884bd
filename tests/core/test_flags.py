"""The flag rule: when a face deserves a second look."""

from __future__ import annotations

import math

from core.live.flags import flag_reasons
from core.live.tracking import TrackState, TrackView


def view(state: TrackState, identity: str, models: dict[str, tuple[str, float]], distance: float = 0.6,
         threshold: float = 0.95, margin: float = 0.4) -> TrackView:
    return TrackView(1, "gate", (0, 0, 100, 100), (), state, identity, "", models, distance, threshold, 5,
                     0.0, 1.0, 1.0, 0, margin=margin)


AGREE = {"svc": ("ada", 0.9), "stacker": ("ada", 0.95), "super_learner": ("ada", 1.0)}


def test_a_clear_recognition_is_not_flagged():
    assert flag_reasons(view(TrackState.NAMED, "ada", AGREE)) == ()


def test_models_that_disagree_flag_the_face():
    models = {**AGREE, "stacker": ("bob", 0.7)}
    reasons = flag_reasons(view(TrackState.NAMED, "ada", models))
    assert any("disagree" in r for r in reasons) and any("stacker prefers bob" in r for r in reasons)


def test_an_unsure_model_or_a_close_second_person_flags_the_face():
    unsure = {**AGREE, "svc": ("ada", 0.3)}
    assert any("svc is unsure" in r for r in flag_reasons(view(TrackState.NAMED, "ada", unsure)))
    assert any("next-closest" in r for r in flag_reasons(view(TrackState.NAMED, "ada", AGREE, margin=0.02)))


def test_a_stranger_is_not_flagged_for_being_mapped_to_someone_but_a_near_miss_is():
    far = view(TrackState.UNKNOWN, "unknown", {m: ("ada", 0.95) for m in AGREE}, distance=1.2)
    assert flag_reasons(far) == ()
    near = view(TrackState.UNKNOWN, "unknown", {m: ("ada", 0.95) for m in AGREE}, distance=0.97)
    assert any("just past the threshold" in r for r in flag_reasons(near))


def test_a_stranger_the_models_disagree_on_is_unknown_not_flagged():
    models = {"svc": ("ada", 0.8), "stacker": ("bob", 0.85), "super_learner": ("cy", 0.5)}
    assert flag_reasons(view(TrackState.UNKNOWN, "unknown", models, distance=1.15)) == ()


def test_a_track_still_checking_is_never_flagged():
    models = {**AGREE, "stacker": ("bob", 0.7)}
    assert flag_reasons(view(TrackState.CHECKING, "unknown", models, margin=math.nan)) == ()
