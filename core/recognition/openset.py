"""Open-set gate: a stranger must come out as *unknown*, never as the closest enrolled person.

A closed-set classifier always names someone, often with high probability.  So every decision is first
gated on the embedding's distance to the enrolled gallery:

- the distance from a probe to an identity is the mean of its ``k`` smallest Euclidean distances to that
  identity's enrolled embeddings (``k = 1`` is the nearest neighbour; a small ``k`` > 1 makes one
  mislabelled or blurred photo less able to admit a stranger);
- a probe is *accepted* as its nearest identity only if that distance is at most ``threshold`` **and**
  the second-nearest identity is at least ``min_margin`` further away.

The threshold is calibrated from data (:func:`calibrate`): *genuine* distances are each enrolled
embedding's distance to its own identity with itself left out; *impostor* distances are each enrolled
embedding's distance to the nearest *other* identity, which is exactly what that person would score if
they were a stranger to a gallery without them.  The threshold is the largest one that keeps the
impostor accept rate at or below ``target_far``, moved a ``safety`` fraction of the way towards the
genuine side, so that a security product errs on the side of asking a guard.

Beside the yes/no of the gate, :meth:`Calibration.enrolled_probability` gives the gate's probability
that a face belongs to an enrolled person *at all* (each classifier's probability only says which
enrolled person it is, *given* that it is one).  It is a logistic function of the distance to the
nearest enrolled identity, ``P = 1 / (1 + exp(-(intercept + slope * distance)))``, fitted at
calibration on the same genuine and impostor distances (:func:`fit_enrolled`):

- the **slope** comes from a logistic regression of *genuine* on distance with the two classes weighted
  equally (there are about as many impostor as genuine distances here, but not always) and Platt's
  smoothed targets ``(n+ + 1) / (n+ + 2)`` and ``1 / (n- + 2)``, so that a gallery whose genuine and
  impostor distances do not overlap (common with few people) gives a finite slope, not a step;
- the **prior** is the one the threshold implies: the intercept is set so that the probability is
  exactly 0.5 at the calibrated threshold.  A face the distance gate accepts reads above 0.5, a face
  it rejects below, and the number says how far on which side; the slope alone is learnt from data.

The probability falls monotonically with the distance and is clipped to
[:data:`ENROLLED_FLOOR`, 1 - :data:`ENROLLED_FLOOR`]: a few hundred calibration pairs cannot support more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from core.errors import ModelError
from core.types import UNKNOWN, Decision


@dataclass(frozen=True)
class Calibration:
    """Result of threshold calibration, kept with the model for the report."""

    threshold: float
    target_far: float
    genuine_accept_rate: float
    impostor_accept_rate: float
    genuine_distances: np.ndarray
    impostor_distances: np.ndarray
    enrolled_fit: tuple[float, float] | None = None
    """``(intercept, slope)`` of :meth:`enrolled_probability`, plain floats (see :func:`fit_enrolled`).

    ``None`` in models saved before it existed (their pickles have no such entry and read the class
    default): it is then fitted from the stored distances when first needed."""

    @cached_property
    def _fitted_enrolled(self) -> tuple[float, float]:
        # cached_property writes the instance __dict__ directly, which a frozen dataclass allows.
        return fit_enrolled(self.genuine_distances, self.impostor_distances, self.threshold)

    @property
    def enrolled_parameters(self) -> tuple[float, float]:
        """``(intercept, slope)`` in force: the stored fit, or one made now from the stored distances."""
        return self.enrolled_fit if self.enrolled_fit is not None else self._fitted_enrolled

    def enrolled_probability(self, distance: float | np.ndarray) -> np.ndarray:
        """The gate's probability that a face at ``distance`` from its nearest enrolled identity is enrolled.

        Monotonically decreasing in ``distance``, 0.5 at :attr:`threshold`, clipped to
        ``[ENROLLED_FLOOR, 1 - ENROLLED_FLOOR]``; an infinite distance (an empty gallery) gives the floor,
        NaN stays NaN.  Returns an array of the shape of ``distance`` (0-d for a number).
        """
        intercept, slope = self.enrolled_parameters
        d = np.asarray(distance, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            z = intercept + slope * d
            # tanh form of the logistic: no overflow warning for large |z|.
            p = 0.5 * (1.0 + np.tanh(0.5 * z))
        return np.clip(p, ENROLLED_FLOOR, 1.0 - ENROLLED_FLOOR)

    def summary(self) -> dict[str, float]:
        """Plain numbers for a JSON report."""
        g, i = self.genuine_distances, self.impostor_distances
        return {
            "threshold": round(self.threshold, 4),
            "target_far": self.target_far,
            "calibration_genuine_accept_rate": round(self.genuine_accept_rate, 4),
            "calibration_impostor_accept_rate": round(self.impostor_accept_rate, 4),
            "genuine_distance_median": round(float(np.median(g)), 4) if g.size else float("nan"),
            "impostor_distance_median": round(float(np.median(i)), 4) if i.size else float("nan"),
            "genuine_pairs": int(g.size),
            "impostor_pairs": int(i.size),
            "enrolled_slope": round(self.enrolled_parameters[1], 4),
        }


class Gallery:
    """Enrolled embeddings grouped by identity, with the distance of probes to each identity.

    Parameters
    ----------
    embeddings
        ``(n, d)`` L2-normalised float32 embeddings.
    labels
        ``n`` identity labels.
    k
        Number of nearest enrolled embeddings averaged per identity.
    """

    _CHUNK = 1 << 24
    """Distances computed per block of probes, at most this many floats at a time (64 MB)."""

    def __init__(self, embeddings: np.ndarray, labels: np.ndarray | list[str], k: int = 1) -> None:
        x = np.asarray(embeddings, dtype=np.float32)
        y = np.asarray(labels).astype(str)
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise ModelError("The gallery needs at least one enrolled embedding per identity.")
        self.k = k
        self.identities, codes = np.unique(y, return_inverse=True)
        self._x = x
        self._y = y
        # The rows grouped by identity, so that one matrix product gives every distance and a
        # per-identity reduction over contiguous column blocks gives each identity's nearest.
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(self.identities))
        self._sorted_x = np.ascontiguousarray(x[order])
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        self._column = np.empty(len(x), dtype=np.intp)  # gallery row -> its column in _sorted_x
        self._column[order] = np.arange(len(x))
        # For k > 1: each identity's columns, padded with a column of infinities (index n).
        self._padded: np.ndarray | None = None
        if k > 1:
            width = int(counts.max())
            slot = np.arange(width)
            self._padded = np.where(slot < counts[:, None], self._starts[:, None] + slot, len(x)).astype(np.intp)

    def __len__(self) -> int:
        return len(self._x)

    @property
    def embeddings(self) -> np.ndarray:
        """The enrolled embeddings, ``(n, d)`` float32, in enrollment order (read-only view)."""
        view = self._x.view()
        view.flags.writeable = False
        return view

    @property
    def labels(self) -> np.ndarray:
        """The identity of each enrolled embedding, ``(n,)`` str (read-only view)."""
        view = self._y.view()
        view.flags.writeable = False
        return view

    def distances(self, probes: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Distance of each probe to each identity, ``(n_probes, n_identities)``.

        ``exclude`` (optional, one gallery row index per probe or -1) leaves a row out, for
        leave-one-out calibration.
        """
        p = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        out = np.empty((len(p), len(self.identities)), dtype=np.float64)
        per_probe = len(self._x) if self._padded is None else max(len(self._x), self._padded.size)
        step = max(1, self._CHUNK // per_probe)
        for start in range(0, len(p), step):
            stop = min(start + step, len(p))
            dots = p[start:stop] @ self._sorted_x.T
            if exclude is not None:
                left_out = np.asarray(exclude[start:stop])
                rows = np.flatnonzero(left_out >= 0)
                dots[rows, self._column[left_out[rows]]] = -np.inf
            if self._padded is None:
                # The nearest photo has the largest dot product: reduce first, convert k values only.
                out[start:stop] = _distance(np.maximum.reduceat(dots, self._starts, axis=1))
            else:
                out[start:stop] = self._mean_of_nearest(_distance(dots))
        return out

    def _mean_of_nearest(self, d: np.ndarray) -> np.ndarray:
        """Mean of each identity's ``k`` smallest distances (of those that are finite; inf if none)."""
        assert self._padded is not None
        padded = np.concatenate([d, np.full((len(d), 1), np.inf, dtype=d.dtype)], axis=1)[:, self._padded]
        k = min(self.k, padded.shape[2])
        if k < padded.shape[2]:
            padded = np.partition(padded, k - 1, axis=2)[:, :, :k]
        # With a row excluded, or fewer than k photos, average what is finite.
        finite = np.isfinite(padded)
        count = finite.sum(axis=2)
        total = np.where(finite, padded, 0.0).sum(axis=2, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.inf)

    def nearest(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each probe: nearest identity, its distance and the margin to the second nearest."""
        d = self.distances(probes)
        rows = np.arange(len(d))
        first = np.argmin(d, axis=1)
        best = d[rows, first]
        if d.shape[1] > 1:
            d[rows, first] = np.inf
            second = d.min(axis=1)
        else:
            second = np.full(len(d), np.inf)
        return self.identities[first], best, second - best

    def genuine_and_impostor(self) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out genuine distances and nearest-other-identity impostor distances."""
        d = self.distances(self._x, exclude=np.arange(len(self._x)))
        own = np.searchsorted(self.identities, self._y)
        rows = np.arange(len(d))
        genuine = d[rows, own].copy()
        d[rows, own] = np.inf
        impostor = d.min(axis=1) if d.shape[1] > 1 else np.array([])
        return genuine[np.isfinite(genuine)], impostor[np.isfinite(impostor)]


def _distance(dots: np.ndarray) -> np.ndarray:
    """Euclidean distance of unit vectors from their dot products, in place: ``sqrt(2 - 2 a.b)``.

    Rounding noise below zero is clipped; a dot product of ``-inf`` (a left-out row) gives ``inf``.
    The conversion is monotonic, also in floating point, so converting the largest dot product
    gives exactly the smallest distance.
    """
    dots *= -2.0
    dots += 2.0
    np.maximum(dots, 0.0, out=dots)
    return np.sqrt(dots, out=dots)


ENROLLED_FLOOR = 0.001
"""Smallest (and one minus the largest) open-set probability reported."""

FALLBACK_SLOPE = -20.0
"""Slope used when the distances cannot be fitted (too few, or impostors no further than genuine
pairs): about what FaceNet galleries give, 0.1 either side of the threshold is 0.12 / 0.88."""


def fit_enrolled(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """``(intercept, slope)`` of the open-set probability: see the module documentation.

    A two-parameter logistic regression of *genuine* (1) vs *impostor* (0) on the distance, each class
    weighing half, with Platt's smoothed targets, solved by Newton's method; then the intercept is
    moved so that the probability is 0.5 at ``threshold`` (the prior the threshold implies).  The
    slope is negative whatever the data: :data:`FALLBACK_SLOPE` when the fit cannot give one.
    """
    g = np.asarray(genuine, dtype=np.float64)
    i = np.asarray(impostor, dtype=np.float64)
    g, i = g[np.isfinite(g)], i[np.isfinite(i)]
    slope = FALLBACK_SLOPE
    if g.size and i.size:
        d = np.concatenate([g, i])
        target = np.concatenate([np.full(g.size, (g.size + 1) / (g.size + 2)), np.full(i.size, 1 / (i.size + 2))])
        weight = np.concatenate([np.full(g.size, 0.5 / g.size), np.full(i.size, 0.5 / i.size)])
        # Centred distances keep the 2x2 Newton system well conditioned.
        centre = float(np.mean(d))
        x = d - centre
        a, b = 0.0, 0.0
        for _ in range(100):
            p = 0.5 * (1.0 + np.tanh(0.5 * (a + b * x)))
            r = weight * (p - target)
            s = weight * p * (1.0 - p)
            hessian = np.array([[s.sum(), (s * x).sum()], [(s * x).sum(), (s * x * x).sum()]])
            try:
                step = np.linalg.solve(hessian + 1e-12 * np.eye(2), [r.sum(), (r * x).sum()])
            except np.linalg.LinAlgError:
                break
            a, b = a - float(step[0]), b - float(step[1])
            if not (math.isfinite(a) and math.isfinite(b)) or max(abs(step)) < 1e-9:
                break
        if math.isfinite(b) and b < 0:
            slope = b
    threshold = float(threshold)
    return float(-slope * threshold), float(slope)


def calibrate(gallery: Gallery, target_far: float = 0.01, safety: float = 0.25) -> Calibration:
    """Choose the acceptance threshold from the gallery's own genuine and impostor distances.

    Parameters
    ----------
    target_far
        Largest tolerated impostor accept rate on the calibration pairs.
    safety
        Fraction of the gap between the FAR-limited threshold and the median genuine distance by which
        the threshold is moved towards the genuine side (0 keeps the FAR-limited threshold).
    """
    genuine, impostor = gallery.genuine_and_impostor()
    if genuine.size == 0 or impostor.size == 0:
        raise ModelError("Calibration needs at least two people with at least two photos each.")
    imp_sorted = np.sort(impostor)
    allowed = int(np.floor(target_far * imp_sorted.size))
    # Largest threshold with at most `allowed` impostors at or below it: just under the next impostor.
    far_limit = float(np.nextafter(imp_sorted[allowed], -np.inf)) if allowed < imp_sorted.size else float(
        imp_sorted[-1]
    )
    g_med = float(np.median(genuine))
    threshold = far_limit - safety * max(far_limit - g_med, 0.0)
    return Calibration(
        threshold=threshold,
        target_far=target_far,
        genuine_accept_rate=float(np.mean(genuine <= threshold)),
        impostor_accept_rate=float(np.mean(impostor <= threshold)),
        genuine_distances=genuine,
        impostor_distances=impostor,
        enrolled_fit=fit_enrolled(genuine, impostor, threshold),
    )


def enrolled_label(probability: float | None) -> str:
    """How the open-set probability reads: ``"enrolled (0.98)"``, ``"not enrolled (0.02)"``, ``""`` if unknown.

    The number is always the probability that the face *is* enrolled; the words say which side of 0.5
    (the calibrated threshold) it falls on.  Beyond 0.01 and 0.99 it has three decimals, so that the
    clipped extremes read 0.001 and 0.999, never a certain 0.00 or 1.00.
    """
    if probability is None or not math.isfinite(probability):
        return ""
    shown = f"{probability:.2f}" if 0.01 <= probability <= 0.99 else f"{probability:.3f}"
    return f"{'enrolled' if probability >= 0.5 else 'not enrolled'} ({shown})"


def gate(identity: str, distance: float, margin: float, threshold: float, min_margin: float) -> Decision:
    """The distance part of a decision: accept the nearest identity or say why not."""
    if not np.isfinite(distance) or distance > threshold:
        return Decision(UNKNOWN, False, distance, threshold, margin,
                        f"too far from every enrolled person ({distance:.3f} > {threshold:.3f})")
    if margin < min_margin:
        return Decision(UNKNOWN, False, distance, threshold, margin,
                        f"ambiguous: as close to a second person (margin {margin:.3f} < {min_margin:.3f})")
    return Decision(identity, True, distance, threshold, margin, f"within {threshold:.3f} of the gallery")
