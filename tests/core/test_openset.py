"""The open-set gate: gallery distances, calibration, and strangers coming out as unknown."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ModelError
from core.recognition.openset import Gallery, calibrate, gate
from core.types import UNKNOWN


def _clusters(n_people=6, per=8, noise=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, per, axis=0) + noise * rng.normal(size=(n_people * per, 128)) / np.sqrt(128)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat([f"p{i}" for i in range(n_people)], per)
    return x.astype(np.float32), y


def test_distances_match_brute_force():
    x, y = _clusters()
    g = Gallery(x, y, k=2)
    probe = x[:3] + 0.01
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    d = g.distances(probe)
    for j, ident in enumerate(g.identities):
        brute = np.sort(np.linalg.norm(probe[:, None] - x[y == ident][None], axis=2), axis=1)[:, :2].mean(1)
        assert np.allclose(d[:, j], brute, atol=1e-4)


@pytest.mark.parametrize("k", [1, 3])
def test_distances_with_left_out_rows_and_uneven_identities_match_brute_force(k):
    rng = np.random.default_rng(3)
    x, y = _clusters(n_people=9, per=6, noise=0.6)
    keep = rng.random(len(y)) < 0.6
    keep[::6] = True  # everyone keeps at least one photo, some only one
    x, y = x[keep], y[keep]
    order = rng.permutation(len(y))  # identities interleaved, as a registry returns them
    x, y = x[order], y[order]
    exclude = rng.integers(-1, len(x), size=len(x))
    g = Gallery(x, y, k=k)
    d = g.distances(x, exclude=exclude)
    for i in range(len(x)):
        for j, ident in enumerate(g.identities):
            rows = [r for r in np.flatnonzero(y == ident) if r != exclude[i]]
            if not rows:
                assert d[i, j] == np.inf
                continue
            brute = np.sort(np.linalg.norm(x[rows] - x[i], axis=1))[:k].mean()
            assert d[i, j] == pytest.approx(brute, abs=1e-3)  # float32: sqrt(2 - 2 a.b) near 0


def test_nearest_names_the_closest_identity_and_the_margin_to_the_next():
    x, y = _clusters(n_people=40, per=5, noise=0.8)
    probes, _ = _clusters(n_people=40, per=2, noise=0.8, seed=1)
    names, dist, margin = Gallery(x, y).nearest(probes)
    brute = np.stack([np.linalg.norm(probes[:, None] - x[y == ident][None], axis=2).min(axis=1)
                      for ident in np.unique(y)], axis=1)
    ranked = np.sort(brute, axis=1)
    assert list(names) == list(np.unique(y)[np.argmin(brute, axis=1)])
    np.testing.assert_allclose(dist, ranked[:, 0], atol=1e-4)
    np.testing.assert_allclose(margin, ranked[:, 1] - ranked[:, 0], atol=1e-4)


def test_leave_one_out_never_matches_itself():
    x, y = _clusters()
    genuine, impostor = Gallery(x, y).genuine_and_impostor()
    assert genuine.min() > 0.01  # a photo is never compared with itself
    assert genuine.max() < impostor.min()


def test_calibration_rejects_every_calibration_impostor_and_errs_to_safety():
    x, y = _clusters()
    cal = calibrate(Gallery(x, y), target_far=0.0)
    assert cal.impostor_accept_rate == 0.0
    assert cal.genuine_accept_rate == 1.0
    assert np.median(cal.genuine_distances) < cal.threshold < cal.impostor_distances.min()


def test_calibration_needs_two_people_with_two_photos():
    x, y = _clusters(n_people=1)
    with pytest.raises(ModelError, match="two people"):
        calibrate(Gallery(x, y))


def test_gate_reasons():
    assert gate("a", 0.5, 0.3, 0.9, 0.0).identity == "a"
    far = gate("a", 1.2, 0.3, 0.9, 0.0)
    assert far.identity == UNKNOWN and "too far" in far.reason
    amb = gate("a", 0.5, 0.01, 0.9, 0.05)
    assert amb.identity == UNKNOWN and "ambiguous" in amb.reason


def test_real_embeddings_separate_genuine_from_impostor(train_set, val_set):
    """On the real 5-celebrity faces a calibrated gallery accepts the val faces and rejects strangers."""
    g = Gallery(train_set.x, train_set.y)
    cal = calibrate(g)
    nearest, dist, _ = g.nearest(val_set.x)
    assert np.mean((nearest == val_set.y) & (dist <= cal.threshold)) >= 0.95
    # Leave each person out: their val faces must be too far from everybody else.
    rejected = []
    for person in sorted(set(train_set.y)):
        keep = train_set.y != person
        gp = Gallery(train_set.x[keep], train_set.y[keep])
        _, d, _ = gp.nearest(val_set.x[val_set.y == person])
        rejected += list(d > calibrate(gp).threshold)
    assert np.mean(rejected) >= 0.95
