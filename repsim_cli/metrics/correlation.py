"""Neuron-level comparisons: the naive mean-max baseline and Hungarian-matched correlation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.metrics._linalg import center
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register

CORR = Param("corr", str, "pearson", "column correlation: pearson or spearman (ranks, average ties)", ("pearson", "spearman"))


@dataclass
class Standardized:
    """Columns scaled to zero mean and unit norm; constant columns become zero (correlation 0)."""

    z: np.ndarray


def standardize_columns(x: np.ndarray, corr: str = "pearson") -> np.ndarray:
    """Columns with zero mean and unit Euclidean norm, so ``Zx.T @ Zy`` is the correlation matrix.

    ``corr='spearman'`` ranks each column first (average ranks for ties). A constant column
    has no defined correlation; it is mapped to the zero vector, so its correlation with
    anything is 0 (never NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    if corr == "spearman":
        from scipy.stats import rankdata  # imported lazily: scipy.stats costs ~0.3 s at start-up

        x = rankdata(x, axis=0)
    # each column divided by a power of two near its max |value| (exact): correlations ignore
    # column scales, and norms of 1e300 or 1e-300 columns neither overflow nor underflow
    top = np.maximum(np.max(x, axis=0, initial=0.0), -np.min(x, axis=0, initial=0.0)) if x.size else np.ones(x.shape[1])
    _, exps = np.frexp(np.where(top > 0.0, top, 1.0))
    x = x * np.ldexp(1.0, -exps)
    z = center(x)
    norms = np.linalg.norm(z, axis=0)
    scale = np.max(np.abs(x), axis=0) * np.sqrt(x.shape[0]) * 1e-12 if x.size else norms
    dead = norms <= np.maximum(scale, np.finfo(np.float64).tiny)
    norms[dead] = 1.0
    z /= norms
    z[:, dead] = 0.0
    return z


def correlation_matrix(x: np.ndarray, y: np.ndarray, corr: str = "pearson") -> np.ndarray:
    """F_A x F_B matrix of column correlations (0 for constant columns)."""
    return standardize_columns(x, corr).T @ standardize_columns(y, corr)


def _prepare(x: np.ndarray, params: Mapping[str, Any]) -> Standardized:
    return Standardized(standardize_columns(x, params["corr"]))


def _permute(prep: Standardized, perm: np.ndarray, params: Mapping[str, Any]) -> Standardized:
    return Standardized(prep.z[perm])


def _meanmax_pair(a: Standardized, b: Standardized, params: Mapping[str, Any]) -> MetricResult:
    c = np.abs(a.z.T @ b.z)
    direction = params["direction"]
    from_a = float(c.max(axis=1).mean())
    from_b = float(c.max(axis=0).mean())
    value = {"a": from_a, "b": from_b, "both": 0.5 * (from_a + from_b)}[direction]
    return MetricResult(value)


def _matched_pair(a: Standardized, b: Standardized, params: Mapping[str, Any]) -> MetricResult:
    from scipy.optimize import linear_sum_assignment

    c = a.z.T @ b.z
    score = np.abs(c) if params["absolute"] else c
    rows, cols = linear_sum_assignment(score, maximize=True)
    value = float(score[rows, cols].mean())
    details = {
        "matching": [[int(i), int(j), float(c[i, j])] for i, j in zip(rows, cols)],
    }
    return MetricResult(value, details)


def meanmax(x: np.ndarray, y: np.ndarray, corr: str = "pearson", direction: str = "a") -> float:
    """Naive baseline: mean over A's columns of max_j |corr(a_i, b_j)|.

    Biased upwards: one column of B that matches everything makes every column of A look
    matched, e.g. x = [[0,3,6],[1,4,7],[2,5,8]], y = [[6,0,0],[7,-1,-123],[8,0,1000]] scores
    1.0 with Spearman although only one of y's columns resembles x.
    """
    return METRIC_MEANMAX.bind(corr=corr, direction=direction).value_of(x, y)


def matched_correlation(x: np.ndarray, y: np.ndarray, corr: str = "pearson", absolute: bool = True) -> float:
    """Mean |correlation| over an optimal one-to-one matching of columns (Hungarian assignment).

    Uses :func:`scipy.optimize.linear_sum_assignment` to maximize the total |corr| over
    min(F_A, F_B) pairs (Li et al., "Convergent learning", ICLR 2016).
    """
    return METRIC_MATCHED.bind(corr=corr, absolute=absolute).value_of(x, y)


METRIC_MEANMAX = register(
    Metric(
        name="meanmax",
        summary="naive baseline: mean over columns of the max |correlation| with any other-side column",
        params=(
            CORR,
            Param("direction", str, "a", "whose columns are averaged: a, b, or both (mean of the two)", ("a", "b", "both")),
        ),
        higher_is_similar=True,
        symmetric=lambda p: p["direction"] == "both",
        invariances=frozenset({"isotropic_scaling", "permutation", "translation"}),
        min_n=2,
        formula="mean_i max_j |corr(a_i, b_j)|",
        reference="Li et al., Convergent learning, ICLR 2016 (as the baseline it warns against)",
        prepare=_prepare,
        pair=_meanmax_pair,
        permute=_permute,
        help=(
            "Biased: features have no order and one column of B that correlates with "
            "everything makes every column of A look matched, so unrelated layers can score "
            "1.0. Shown as a baseline; prefer matched, cka or cca."
        ),
    )
)

METRIC_MATCHED = register(
    Metric(
        name="matched",
        summary="mean |correlation| after optimal one-to-one neuron matching (Hungarian)",
        params=(
            CORR,
            Param("absolute", bool, True, "match and average |corr| (true) or signed corr (false)", (True, False)),
        ),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"isotropic_scaling", "permutation", "translation"}),
        min_n=2,
        formula="max over one-to-one matchings pi of mean_i |corr(a_i, b_pi(i))|",
        reference="Li et al., Convergent learning, ICLR 2016; scipy.optimize.linear_sum_assignment",
        prepare=_prepare,
        pair=_matched_pair,
        permute=_permute,
        value_range=(-1.0, 1.0),
        help="Averages over min(F_A, F_B) matched pairs; --details reports the matching as [i, j, corr].",
    )
)
