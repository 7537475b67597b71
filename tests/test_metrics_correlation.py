"""meanmax and matched against the known example, scipy correlations and brute-force matching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr, spearmanr

from repsim_cli.metrics import correlation_matrix, matched_correlation, meanmax, parse_metric

X = np.array([[0, 3, 6], [1, 4, 7], [2, 5, 8]], dtype=float)
Y = np.array([[6, 0, 0], [7, -1, -123], [8, 0, 1000]], dtype=float)


def test_known_example():
    assert meanmax(X, Y, corr="spearman") == pytest.approx(1.0, abs=1e-12)
    assert matched_correlation(X, Y, corr="spearman") == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("corr,fn", [("pearson", pearsonr), ("spearman", spearmanr)])
def test_correlation_matrix_matches_scipy(corr, fn):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 4))
    y = np.column_stack([x[:, 0] ** 3, rng.standard_normal(30), np.round(x[:, 1]), x[:, 2] - x[:, 3]])
    c = correlation_matrix(x, y, corr)
    want = np.array([[fn(x[:, i], y[:, j])[0] for j in range(4)] for i in range(4)])
    assert np.max(np.abs(c - want)) <= 1e-12


def test_constant_column_correlates_zero_not_nan():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.standard_normal(20), np.full(20, 3.3)])
    y = rng.standard_normal((20, 2))
    for corr in ("pearson", "spearman"):
        c = correlation_matrix(x, y, corr)
        assert np.all(np.isfinite(c)) and np.all(c[1] == 0.0)
        assert np.isfinite(meanmax(x, y, corr)) and np.isfinite(matched_correlation(x, y, corr))


def brute_force_matching(c: np.ndarray) -> float:
    """max over injective maps of the smaller side into the larger of the mean score."""
    fa, fb = c.shape
    if fa <= fb:
        return max(np.mean([c[i, p[i]] for i in range(fa)]) for p in itertools.permutations(range(fb), fa))
    return brute_force_matching(c.T)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), fa=st.integers(1, 5), fb=st.integers(1, 5), absolute=st.booleans())
def test_matched_equals_brute_force(seed, fa, fb, absolute):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((15, fa))
    y = x[:, :1] @ rng.standard_normal((1, fb)) + rng.standard_normal((15, fb))
    c = correlation_matrix(x, y)
    score = np.abs(c) if absolute else c
    assert matched_correlation(x, y, absolute=absolute) == pytest.approx(brute_force_matching(score), abs=1e-12)


def test_meanmax_directions_bruteforce():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((25, 3)), rng.standard_normal((25, 5))
    c = np.abs(np.array([[pearsonr(x[:, i], y[:, j])[0] for j in range(5)] for i in range(3)]))
    a, b = c.max(axis=1).mean(), c.max(axis=0).mean()
    assert meanmax(x, y) == pytest.approx(a, abs=1e-12)
    assert meanmax(x, y, direction="b") == pytest.approx(b, abs=1e-12)
    assert meanmax(x, y, direction="both") == pytest.approx((a + b) / 2, abs=1e-12)


def test_matched_details_report_the_matching():
    r = parse_metric("matched:corr=spearman").compute(X, Y)
    pairs = r.details["matching"]
    assert len(pairs) == 3 and sorted(p[1] for p in pairs) == [0, 1, 2]
