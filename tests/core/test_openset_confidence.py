"""The gate's open-set confidence: the probability that a face is an enrolled person at all.

Real MTCNN and FaceNet weights on real photos: the 5-celebrity set (train/val), the strangers of the
demo (Barack Obama, Joe Biden), and leave-one-identity-out strangers (one celebrity's photos against
a gallery of the other four).
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from core.recognition.openset import (
    ENROLLED_FLOOR,
    Calibration,
    Gallery,
    calibrate,
    enrolled_label,
    fit_enrolled,
)
from core.vision.imageio import read_image


def stranger_photos(strangers_dir):
    return sorted(p for p in strangers_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_probability_falls_with_distance_and_is_one_half_at_the_threshold(trained_model):
    cal = trained_model.calibration
    assert cal.enrolled_fit is not None  # fitted at training, stored as two plain floats
    assert all(type(v) is float for v in cal.enrolled_fit)
    d = np.linspace(0.0, 2.0, 2001)
    p = cal.enrolled_probability(d)
    assert np.all(np.diff(p) <= 0) and p[0] > p[-1]
    assert p.min() >= ENROLLED_FLOOR and p.max() <= 1 - ENROLLED_FLOOR
    assert float(cal.enrolled_probability(cal.threshold)) == pytest.approx(0.5)
    assert enrolled_label(0.98) == "enrolled (0.98)" and enrolled_label(0.0234) == "not enrolled (0.02)"
    assert enrolled_label(0.001) == "not enrolled (0.001)" and enrolled_label(0.999) == "enrolled (0.999)"
    assert enrolled_label(None) == enrolled_label(float("nan")) == ""
    assert float(cal.enrolled_probability(np.inf)) == ENROLLED_FLOOR  # an empty gallery: nobody is enrolled
    assert np.isnan(cal.enrolled_probability(np.nan))
    # The genuine and impostor distances it was fitted on fall on their own sides.
    assert np.median(cal.enrolled_probability(cal.genuine_distances)) >= 0.9
    assert np.median(cal.enrolled_probability(cal.impostor_distances)) <= 0.1


def test_fit_is_monotone_even_on_inverted_or_empty_data():
    for g, i in ((np.array([1.2, 1.3]), np.array([0.5, 0.6])), (np.array([]), np.array([1.0])),
                 (np.array([0.5, 0.6, 0.7]), np.array([1.1, 1.2, 1.4]))):
        intercept, slope = fit_enrolled(g, i, 0.9)
        assert slope < 0 and intercept + slope * 0.9 == pytest.approx(0.0)


def test_enrolled_people_score_high_on_their_val_photos(trained_model, val_set):
    """Genuine faces never trained on: the gate is confident they are enrolled."""
    from core.recognition.engine import Recognizer

    results = Recognizer(trained_model, pipeline=object()).results([None] * len(val_set), val_set.x)
    p = np.array([r.enrolled for r in results])
    print(f"genuine val faces: median {np.median(p):.3f}, min {p.min():.3f}")
    assert np.median(p) >= 0.9
    assert np.mean(p >= 0.5) >= 0.95
    # Accepted means within the calibrated threshold: at least one half, the same side.
    assert all(r.enrolled >= 0.5 for r in results if r.decision.accepted)


def test_strangers_score_low(trained_model, pipeline, strangers_dir):
    """The demo's strangers, through the whole pipeline on their photos: "not enrolled"."""
    from core.recognition.engine import Recognizer

    recognizer = Recognizer(trained_model, pipeline)
    faces = [f for path in stranger_photos(strangers_dir) for f in recognizer.recognize(read_image(path))]
    assert len(faces) >= 4
    p = np.array([f.enrolled for f in faces])
    print(f"strangers: {np.round(p, 3).tolist()}; the models said "
          f"{[(v.model, v.identity, round(v.probability, 2)) for v in faces[0].votes]}")
    assert all(f.decision.identity == "unknown" for f in faces)
    assert p.max() < 0.5 and np.median(p) <= 0.1
    assert all(enrolled_label(f.enrolled).startswith("not enrolled (") for f in faces)


def test_leave_one_identity_out_strangers_score_low(train_set, val_set):
    """Each celebrity in turn is a stranger to a gallery of the other four (calibrated without them)."""
    low, high = [], []
    for person in np.unique(train_set.y):
        keep = train_set.y != person
        gallery = Gallery(train_set.x[keep], train_set.y[keep])
        cal = calibrate(gallery)
        outsider = np.concatenate([train_set.x[~keep], val_set.x[val_set.y == person]])
        low.append(cal.enrolled_probability(gallery.nearest(outsider)[1]))
        high.append(cal.enrolled_probability(gallery.nearest(val_set.x[val_set.y != person])[1]))
    low_p, high_p = np.concatenate(low), np.concatenate(high)
    print(f"leave-one-identity-out: strangers median {np.median(low_p):.3f}, max {low_p.max():.3f}, "
          f"share < 0.5 {np.mean(low_p < 0.5):.3f}; enrolled median {np.median(high_p):.3f}")
    assert np.median(low_p) <= 0.1 and np.mean(low_p < 0.5) >= 0.95
    assert np.median(high_p) >= 0.9


def _old_calibration(cal: Calibration) -> Calibration:
    """``cal`` as a model saved before the open-set fit existed unpickles it: no ``enrolled_fit`` entry."""
    old = object.__new__(Calibration)
    old.__dict__.update({k: v for k, v in cal.__dict__.items() if k not in ("enrolled_fit", "_fitted_enrolled")})
    return old


def test_an_old_model_without_the_fit_gets_it_from_its_stored_distances(trained_model, val_set, tmp_path):
    from dataclasses import replace

    from core.recognition.engine import RecognitionModel, Recognizer

    old = replace(trained_model, calibration=_old_calibration(trained_model.calibration))
    assert "enrolled_fit" not in old.calibration.__dict__ and old.calibration.enrolled_fit is None
    old.save(tmp_path / "old")
    loaded = RecognitionModel.load(tmp_path / "old")  # through the restricted unpickler
    assert loaded.calibration.enrolled_fit is None
    assert loaded.calibration.enrolled_parameters == pytest.approx(trained_model.calibration.enrolled_fit)
    results = Recognizer(loaded, pipeline=object()).results([None] * 3, val_set.x[:3])
    assert all(r.enrolled is not None and r.enrolled >= 0.9 for r in results)
    # Saved again with the fit it made: still loads (the cached value is two floats).
    loaded.save(tmp_path / "again")
    assert RecognitionModel.load(tmp_path / "again").calibration.enrolled_parameters == pytest.approx(
        trained_model.calibration.enrolled_fit)


def test_the_model_saved_by_0_1_has_an_open_set_probability():
    from pathlib import Path

    from core.recognition.engine import RecognitionModel

    data = Path(__file__).resolve().parents[1] / "data"
    model = RecognitionModel.load(data / "legacy_model_0_1")
    assert model.calibration.enrolled_fit is None
    x = np.load(data / "legacy_model_0_1_val_x.npy")
    distance = np.array([d.distance for _, _, d, _ in model.decide(x)])
    p = model.enrolled_probability(distance)
    assert np.median(p) >= 0.9 and np.all(np.diff(p[np.argsort(distance)]) <= 0)


def test_recognize_says_not_enrolled_for_a_stranger(seed, strangers_dir, tmp_path, capsys):
    from core.cli.main import main

    madonna = min((seed.dataset / "val" / "madonna").iterdir())
    obama = strangers_dir / "barack_obama" / "obama.jpg"
    assert main(["-q", "recognize", str(madonna), str(obama)]) == 0
    out = capsys.readouterr().out
    known, stranger = out.split(str(obama))
    assert re.search(r"\n    enrolled \(0\.9\d+\)  svc=madonna", known) and "not enrolled" not in known, known
    # The models name someone with a high probability; the gate says it is nobody enrolled.
    assert re.search(r"\n    not enrolled \(0\.(0\d+|1\d)\)  svc=", stranger), stranger
    assert "-> UNKNOWN" in stranger

    assert main(["-q", "recognize", "--json", str(madonna), str(obama)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["decision"] for r in rows] == ["madonna", "unknown"]
    assert isinstance(rows[0]["enrolled"], float) and rows[0]["enrolled"] >= 0.9
    assert isinstance(rows[1]["enrolled"], float) and rows[1]["enrolled"] < 0.5


def test_monitor_events_and_lines_carry_the_open_set_probability(seed, strangers_dir, trained_model, pipeline,
                                                                tmp_path):
    """Madonna then a stranger on a live (rendered) camera: both events store ``enrolled``; the chain
    verifies, the events table and the CSV export read the events as before."""
    from core.cli.monitor import _decision_json, _format_decision
    from core.live.events import ENROLLED_KEY
    from core.live.monitor import Monitor, decision_code
    from core.live.sources import RenderedSource
    from core.registry import EventFilter, Registry
    from tests.conftest import madonna_then_stranger

    scene = madonna_then_stranger(seed, strangers_dir)
    path = tmp_path / "facegate.db"
    with Registry.open(path) as reg:
        reg.add_operator("madonna", "Madonna", actor="test")
    monitor = Monitor([RenderedSource("gate1", scene.render, fps=scene.fps)], trained_model, pipeline,
                      registry_path=path)
    monitor.start()
    try:
        deadline = time.monotonic() + scene.period / scene.fps - 0.5
        while time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        monitor.stop()
    decided = {decision_code(d): d for d in monitor.decisions if d.kind != "undecided"}
    assert {"recognised", "unknown"} <= set(decided)
    assert decided["recognised"].track.enrolled >= 0.9 and decided["unknown"].track.enrolled < 0.5
    line = _format_decision(decided["unknown"], {})
    assert "not enrolled (" in line, line
    assert "enrolled (" in _format_decision(decided["recognised"], {"madonna": "Madonna"})
    assert _decision_json(decided["unknown"])["enrolled"] == pytest.approx(decided["unknown"].track.enrolled,
                                                                           abs=1e-4)

    with Registry.open(path) as reg:
        events = reg.events()
        assert reg.verify() == []
        by_code = {e.decision: e for e in events}
        assert set(by_code["recognised"].probabilities) == {"svc", "stacker", "super_learner", ENROLLED_KEY}
        assert by_code["recognised"].probabilities[ENROLLED_KEY] >= 0.9
        assert by_code["unknown"].probabilities[ENROLLED_KEY] < 0.5
        # The events browser's rows: the three models' scores, and the open-set number on its own.
        rows = reg.event_page(EventFilter())
        assert len(rows) == len(events)
        assert all({s[0] for s in r.scores} == {"svc", "stacker", "super_learner"} for r in rows)
        rows_by = {r.decision: r for r in rows}
        assert rows_by["recognised"].enrolled >= 0.9 and rows_by["unknown"].enrolled < 0.5
        out = tmp_path / "events.csv"
        assert reg.export_events_csv(EventFilter(), out) == len(events)
        import csv

        table = list(csv.DictReader(out.open()))
        assert "svc_probability" in table[0]
        assert {r["decision"]: float(r["enrolled_probability"]) for r in table}["unknown"] < 0.5
