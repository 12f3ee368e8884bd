"""Tracks: matching by overlap, naming after consistent frames, unknown on inconsistency, flow."""

from __future__ import annotations

import numpy as np
import pytest

from core.live.tracking import (
    FlowShifter,
    Observation,
    Tracker,
    TrackerOptions,
    TrackState,
    iou,
    observation_weight,
)
from core.types import UNKNOWN, Decision, Detection, FaceResult, ModelVote

LANDMARKS = ((130.0, 140.0), (170.0, 140.0), (150.0, 160.0), (135.0, 180.0), (165.0, 180.0))


def result(identity: str, accepted: bool = True, box=(100, 100, 100, 120), distance: float = 0.6,
           prob: float = 0.9, confidence: float = 0.99) -> FaceResult:
    x, y = box[0] - 100, box[1] - 100
    marks = tuple((px + x, py + y) for px, py in LANDMARKS)
    det = Detection(box, confidence, marks)  # type: ignore[arg-type]
    who = identity if identity != UNKNOWN else "alice"
    votes = tuple(ModelVote(m, who, prob) for m in ("svc", "stacker", "super_learner"))
    table = {m: {who: prob, "bob": 1 - prob} for m in ("svc", "stacker", "super_learner")}
    decision = Decision(identity if accepted else UNKNOWN, accepted, distance, 0.9, 0.3,
                        "within threshold" if accepted else "too far from everyone enrolled")
    return FaceResult(det, votes, table, decision, who, "v1")


def observe(tracker: Tracker, res: FaceResult, t: float, index: int = 0):
    obs = Observation(index, t, res, observation_weight(res), np.zeros((8, 8, 3), np.uint8))
    return tracker.observe([(obs, res.detection.box, res.detection.landmarks)])


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_named_after_consistent_frames_only():
    tracker = Tracker("cam", TrackerOptions(votes_needed=3))
    assert observe(tracker, result("alice"), 0.0) == []
    assert tracker.snapshot()[0].state is TrackState.CHECKING
    assert tracker.snapshot()[0].label == "checking…"
    assert observe(tracker, result("alice", box=(104, 100, 100, 120)), 0.1) == []
    decisions = observe(tracker, result("alice", box=(108, 101, 100, 120)), 0.2)
    assert len(decisions) == 1 and len(tracker) == 1
    d = decisions[0]
    assert d.kind == "decided" and d.track.state is TrackState.NAMED and d.track.identity == "alice"
    assert d.latency == pytest.approx(0.2)
    assert d.thumbnail is not None and d.model_version == "v1"
    assert set(d.track.models) == {"svc", "stacker", "super_learner"}
    assert d.track.models["svc"] == ("alice", pytest.approx(0.9))
    # More agreeing frames: no new decision, one track.
    assert observe(tracker, result("alice", box=(110, 101, 100, 120)), 0.3) == []


def test_stranger_is_unknown_and_inconsistent_votes_never_name():
    tracker = Tracker("cam", TrackerOptions(votes_needed=3, give_up_after=6))
    for i in range(2):
        assert observe(tracker, result("alice", accepted=False), 0.1 * i) == []
    d = observe(tracker, result("alice", accepted=False), 0.2)[0]
    assert d.track.state is TrackState.UNKNOWN and d.track.label == UNKNOWN

    flip = Tracker("cam", TrackerOptions(votes_needed=3, give_up_after=6))
    out = []
    for i in range(6):
        out += observe(flip, result("alice" if i % 2 else "bob"), 0.1 * i)
    assert len(out) == 1 and out[0].track.state is TrackState.UNKNOWN
    assert "no consistent identity" in out[0].track.reason


def test_minority_share_blocks_naming():
    tracker = Tracker("cam", TrackerOptions(votes_needed=2, min_share=0.7, give_up_after=10))
    named = []
    for i, who in enumerate(["bob", "carol", "alice", "alice", "alice", "alice", "alice"]):
        named += [(i, d) for d in observe(tracker, result(who), 0.1 * i)]
    # alice is consistent from frame 3 on, but holds 2/4, 3/5, 4/6 of the votes: below 70 % until 5/7.
    assert [i for i, _ in named] == [6]
    assert named[0][1].track.identity == "alice" and "71%" in named[0][1].track.reason


def test_change_of_mind_is_reported():
    tracker = Tracker("cam", TrackerOptions(votes_needed=2))
    observe(tracker, result("alice"), 0.0)
    assert observe(tracker, result("alice"), 0.1)[0].kind == "decided"
    assert observe(tracker, result("alice", accepted=False), 0.2) == []
    changed = observe(tracker, result("alice", accepted=False), 0.3)
    assert changed and changed[0].kind == "changed" and changed[0].previous == "alice"
    assert changed[0].track.state is TrackState.UNKNOWN


def test_two_faces_two_tracks_and_expiry():
    tracker = Tracker("cam", TrackerOptions(votes_needed=3, lost_after_s=1.0))
    a, b = result("alice", box=(10, 10, 100, 120)), result("bob", box=(300, 10, 100, 120))
    obs = [(Observation(0, 0.0, r, 1.0), r.detection.box, r.detection.landmarks) for r in (a, b)]
    tracker.observe(obs)
    assert len(tracker) == 2
    assert tracker.expire(0.5) == []
    tracker.observe([(Observation(1, 0.1, r, 1.0), r.detection.box, r.detection.landmarks) for r in (a, b)])
    gone = tracker.expire(2.0)
    assert len(tracker) == 0
    assert [g.kind for g in gone] == ["undecided", "undecided"]
    assert all("before a decision" in g.track.reason for g in gone)
    # A single glimpse is counted, not reported.
    tracker.observe(obs[:1])
    assert tracker.expire(5.0) == [] and tracker.glimpses == 1


def test_partial_faces_move_tracks_but_do_not_vote():
    tracker = Tracker("cam", TrackerOptions(votes_needed=2))
    r = result("alice")
    for i in range(3):
        tracker.observe([(Observation(i, 0.1 * i, r, 0.0, partial=True), r.detection.box, r.detection.landmarks)])
    (view,) = tracker.snapshot()
    assert view.state is TrackState.CHECKING and view.observations == 0
    assert tracker.expire(5.0) == [] and tracker.glimpses == 0


def test_weight_prefers_large_confident_frontal_faces():
    small = result("alice", box=(100, 100, 40, 48), confidence=0.9)
    big = result("alice", box=(100, 100, 140, 160))
    assert observation_weight(big) > observation_weight(small) > 0


def test_options_are_validated():
    with pytest.raises(ValueError):
        TrackerOptions(votes_needed=0)
    with pytest.raises(ValueError):
        TrackerOptions(votes_needed=5, give_up_after=3)
    with pytest.raises(ValueError):
        TrackerOptions(min_share=0.3)


def test_flow_follows_a_moving_face(seed):
    from tests.conftest import face_crop

    face = face_crop(seed, "madonna", 0, size=160)
    frame0 = np.full((480, 640, 3), 90, np.uint8)
    frame1 = frame0.copy()
    h = min(face.shape[0], 300)
    frame0[100:100 + h, 200:360] = face[:h]
    frame1[106:106 + h, 212:372] = face[:h]  # moved 12 px right, 6 px down
    flow = FlowShifter(width=320)
    shift = flow.shift(flow.prepare(frame0), flow.prepare(frame1), [(220, 130, 120, 140)])[0]
    assert shift is not None
    dx, dy, scale = shift
    assert dx == pytest.approx(12, abs=2.5) and dy == pytest.approx(6, abs=2.5)
    assert scale == pytest.approx(1.0, abs=0.08)
    tracker = Tracker("cam")
    r = result("alice", box=(220, 130, 120, 140))
    tracker.observe([(Observation(0, 0.0, r, 1.0), r.detection.box, r.detection.landmarks)])
    tracker.move([shift])
    x, y, _, _ = tracker.boxes()[0]
    assert abs(x - 232) <= 3 and abs(y - 136) <= 3


def test_a_late_pass_is_matched_where_the_track_was_in_its_frame():
    """A recognition pass finishes a few frames late, after the face moved by more than its width."""
    tracker = Tracker("cam", TrackerOptions(votes_needed=2))
    first = result("alice", box=(100, 100, 100, 120))
    tracker.observe([(Observation(10, 0.0, first, 1.0), first.detection.box, first.detection.landmarks)], 10)
    for frame in range(11, 16):  # the face walks 40 px per frame to the right
        tracker.move([(40.0, 0.0, 1.0)], frame)
    assert tracker.boxes()[0][0] == 300
    # A pass from frame 12 (face at x=180) arrives now, in frame 15; its flow estimate failed.
    late = result("alice", box=(182, 100, 100, 120))
    decisions = tracker.observe([(Observation(12, 0.08, late, 1.0), late.detection.box, late.detection.landmarks)], 15)
    assert len(tracker) == 1 and decisions and decisions[0].track.identity == "alice"
    x = tracker.boxes()[0][0]
    assert abs(x - 302) <= 2  # the detection carried forward by the track's own motion


def test_clear_cut_evidence_decides_after_fewer_frames():
    from core.live.tracking import is_strong

    tracker = Tracker("cam", TrackerOptions(votes_needed=3, strong_votes_needed=2))
    sure = result("alice", distance=0.4, prob=0.95)  # threshold 0.9: well inside, all models sure
    assert is_strong(sure)
    assert not is_strong(result("alice", distance=0.85, prob=0.95))  # near the threshold
    assert not is_strong(result("alice", distance=0.4, prob=0.6))  # a model unsure
    assert is_strong(result("alice", accepted=False, distance=1.3))  # far from everyone
    obs = [(Observation(i, 0.1 * i, sure, 1.0, strong=is_strong(sure)), sure.detection.box,
            sure.detection.landmarks) for i in range(2)]
    assert tracker.observe(obs[:1]) == []
    decided = tracker.observe(obs[1:])
    assert decided and decided[0].track.identity == "alice" and "clear-cut" in decided[0].track.reason
