"""magnitude, concentricity and uniformity against direct transcriptions of ReSi's formulas (scipy
distances on the raw rows, the full N x N matrix) and hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist, pdist, squareform

import repsim_cli.metrics.statistics as stats_mod
from repsim_cli.metrics import (
    concentricity_difference,
    magnitude_difference,
    parse_metric,
    uniformity_difference,
)

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def pair(seed: int, n: int, fa: int, fb: int, scale: float = 0.3):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((n, fa)) + rng.standard_normal(fa)
    y = scale * rng.standard_normal((n, fb)) + 0.5 * rng.standard_normal(fb)
    return x, y


def magnitude_resi(x, y):
    return abs(float(np.linalg.norm(x.mean(axis=0)) - np.linalg.norm(y.mean(axis=0))))


def concentricity_resi(x, y):
    def c(m):  # 1 - cosine distance of each row to the mean row (sklearn/scipy)
        return 1.0 - cdist(m, m.mean(axis=0, keepdims=True), "cosine")

    return float(abs(c(x).mean() - c(y).mean()))


def uniformity_resi(x, y, t=2.0):
    def u(m):  # the full N x N matrix of squared distances, diagonal included
        d2 = squareform(pdist(m, "sqeuclidean"))
        return np.log(np.exp(-t * d2).sum() / m.shape[0] ** 2)

    return float(abs(u(x) - u(y)))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 40), fa=st.integers(1, 10), fb=st.integers(1, 10))
def test_statistics_match_resi_formulas(seed, n, fa, fb):
    x, y = pair(seed, n, fa, fb)
    assert record("magnitude vs ReSi formula", magnitude_difference(x, y), magnitude_resi(x, y)) <= 1e-12
    assert record("concentricity vs ReSi formula", concentricity_difference(x, y), concentricity_resi(x, y)) <= 1e-12
    for t in (0.5, 2.0):
        got = uniformity_difference(x, y, t)
        assert record("uniformity vs ReSi formula", got, uniformity_resi(x, y, t)) <= 1e-11


def test_uniformity_blocks_and_large_distances(monkeypatch):
    """Row blocks (forced to 7 rows) give the same number; far-apart points saturate at -log N (only the
    diagonal's exp(0) = 1 survives)."""
    x, y = pair(1, 50, 6, 4)
    want = uniformity_resi(x, y)
    monkeypatch.setattr(stats_mod, "_block_rows", lambda n: 7)
    assert record("uniformity (7-row blocks) vs ReSi formula", uniformity_difference(x, y), want) <= 1e-12
    far = 1e3 * x
    assert stats_mod.uniformity(far) == pytest.approx(-np.log(50), abs=1e-14)


def test_hand_computed_values():
    x = np.array([[3.0, 4.0], [3.0, 4.0]])  # mean (3, 4): length 5; every row parallel to the mean
    y = np.array([[1.0, 0.0], [0.0, 1.0]])  # mean (.5, .5): length 1/sqrt2; cos 1/sqrt2 each
    assert magnitude_difference(x, y) == pytest.approx(5 - np.sqrt(0.5), abs=1e-15)
    assert concentricity_difference(x, y) == pytest.approx(1 - np.sqrt(0.5), abs=1e-15)
    # uniformity: x has all distances 0 -> log 1 = 0; y: d^2 = 2 off the diagonal -> log((2 + 2 e^-4)/4)
    assert uniformity_difference(x, y) == pytest.approx(-np.log((2 + 2 * np.exp(-4.0)) / 4), abs=1e-15)


def test_zero_rows_and_zero_mean_warn():
    x = np.array([[1.0, 2.0], [0.0, 0.0], [2.0, 1.0]])
    res = parse_metric("concentricity").compute(x, x + 1.0)
    assert any("zero row" in w for w in res.warnings)
    assert res.details["a"] == pytest.approx(2 / np.sqrt(10), abs=1e-15)  # mean (1, 1): cos 3/sqrt10, 0, 3/sqrt10
    res = parse_metric("concentricity").compute(np.array([[1.0, 0.0], [-1.0, 0.0]]), x)
    assert any("mean row is exactly zero" in w for w in res.warnings) and res.details["a"] == 0.0


def test_float32_offset_and_permutation_null_are_exact():
    """Large offsets (stored float32 near 1e4) keep their digits; a permutation of the inputs leaves every
    statistic unchanged (so a permutation null of these measures is degenerate: p = 1)."""
    x, y = pair(3, 30, 5, 5)
    for spec in ("magnitude", "concentricity", "uniformity"):
        bound = parse_metric(spec)
        x32 = (1e4 + x).astype(np.float32)
        exact = bound.compute(x32.astype(np.float64), y).value
        assert bound.compute(x32, y).value == exact
        perm = np.random.default_rng(0).permutation(30)
        assert bound.compute(x[perm], y).value == pytest.approx(bound.compute(x, y).value, abs=1e-13)


def test_report_worst_disagreements():
    for name, err in sorted(WORST.items()):
        print(f"worst |repsim - independent| {name}: {err:.2e}")
