"""A model saved before core/ was split into subpackages still loads and decides the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"


def test_model_saved_by_0_1_loads_and_decides_the_same():
    from core.recognition.engine import RecognitionModel

    model = RecognitionModel.load(DATA / "legacy_model_0_1")
    x = np.load(DATA / "legacy_model_0_1_val_x.npy")
    expected = json.loads((DATA / "legacy_model_0_1_expected.json").read_text())
    for (votes, table, decision, nearest), want in zip(model.decide(x), expected, strict=True):
        assert decision.identity == want["identity"]
        assert decision.accepted == want["accepted"]
        for name, probabilities in want["table"].items():
            for identity, p in probabilities.items():
                assert abs(table[name][identity] - p) < 1e-9


def test_saved_model_round_trips_under_the_new_names(tmp_path):
    from core.recognition.engine import RecognitionModel

    model = RecognitionModel.load(DATA / "legacy_model_0_1")
    model.save(tmp_path / "m")
    again = RecognitionModel.load(tmp_path / "m")
    assert np.array_equal(again.gallery.embeddings, model.gallery.embeddings)
    assert (tmp_path / "m" / "model.joblib").read_bytes().count(b"core.classifiers\n") == 0
