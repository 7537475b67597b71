"""Statistics of one representation, compared: magnitude, concentricity and uniformity differences.

Each side is summarized by one number computed on its RAW rows (these statistics measure where the
representation sits, so they do not centre), and the measure is the absolute difference of the two
numbers -- ReSi's ``MagnitudeDifference``, ``ConcentricityDifference`` and ``UniformityDifference``
(Klabunde et al., ICLR 2025). They are distances (0 = same statistic), cheap and coarse: two very
different representations can share a statistic. They ignore which input is which, so a permutation
null is degenerate (every permuted value equals the observed one: p = 1); compare them against other
layers or models instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import center, power_of_two_scale
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register

REFERENCE = (
    "Klabunde, Wald, Schumacher, Strohmaier & Lemmerich, ReSi: A Comprehensive Benchmark for Representational "
    "Similarity Measures, ICLR 2025 (ReSi {cls})"
)


@dataclass
class Statistic:
    """One number per side; a permutation of the inputs leaves it unchanged."""

    value: float
    warnings: list[str] = field(default_factory=list)


def _keep(prep: Statistic, perm: np.ndarray, params: Mapping[str, Any]) -> Statistic:
    return prep


def _difference(a: Statistic, b: Statistic, params: Mapping[str, Any]) -> MetricResult:
    return MetricResult(abs(a.value - b.value), {"a": a.value, "b": b.value}, a.warnings + b.warnings)


def _row_blocks(x: np.ndarray, rows: int = 512) -> Iterator[np.ndarray]:
    """float64 copies of consecutive row blocks of ``x`` (no full float64 copy of a float32 input)."""
    for start in range(0, x.shape[0], rows):
        yield np.asarray(x[start : start + rows], dtype=np.float64)


def mean_row(x: np.ndarray) -> np.ndarray:
    """Column means in float64; a second pass adds the mean of the residuals, which removes the
    rounding error of the first (large common offsets keep their digits). Row blocks: memory O(block F)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D N x F array, got shape {x.shape}")
    n = x.shape[0]
    m = sum((blk.sum(axis=0) for blk in _row_blocks(x)), np.zeros(x.shape[1])) / n
    return m + sum(((blk - m).sum(axis=0) for blk in _row_blocks(x)), np.zeros(x.shape[1])) / n


# ---------------------------------------------------------------------------- magnitude


def magnitude(x: np.ndarray) -> float:
    """||mean_i x_i||_2, the length of the mean row."""
    return float(np.linalg.norm(mean_row(x)))


def magnitude_difference(x: np.ndarray, y: np.ndarray) -> float:
    """| ||mean X|| - ||mean Y|| | on raw rows (ReSi ``MagnitudeDifference``)."""
    return MAGNITUDE.bind().value_of(x, y)


MAGNITUDE = register(
    Metric(
        name="magnitude",
        summary="difference of the lengths of the two mean rows (raw, not centred)",
        params=(),
        higher_is_similar=False,
        symmetric=True,
        invariances=frozenset({"orthogonal", "permutation"}),
        min_n=1,
        formula="| ||mean_i a_i||_2 - ||mean_i b_i||_2 |",
        reference=REFERENCE.format(cls="MagnitudeDifference"),
        prepare=lambda x, p: Statistic(magnitude(x)),
        pair=_difference,
        permute=_keep,
        help="Raw rows on purpose (it measures location): not translation or scale invariant; in the data's units. "
        "Ignores the pairing of inputs (a permutation null gives p = 1).",
        value_range=(0.0, float("inf")),
    )
)

# ---------------------------------------------------------------------------- concentricity


def concentricity(x: np.ndarray) -> Statistic:
    """mean_i cos(x_i, mean X) on raw rows; a zero row (or a zero mean) counts as cosine 0."""
    x = np.asarray(x)
    inv = 1.0 / power_of_two_scale(x)  # cosines ignore scale: rows times an exact power of two, no overflow
    mu = mean_row(x) * inv
    mu_norm = float(np.linalg.norm(mu))
    if mu_norm == 0.0:
        return Statistic(0.0, ["concentricity: the mean row is exactly zero; every cosine counts as 0"])
    direction = mu / mu_norm
    total, zeros = 0.0, 0
    for blk in _row_blocks(x):
        blk = blk * inv
        norms = np.sqrt(np.einsum("ij,ij->i", blk, blk))
        zero = norms == 0.0
        zeros += int(zero.sum())
        norms[zero] = 1.0
        total += float(((blk @ direction) / norms).sum())
    warnings = [f"concentricity: {zeros} zero row(s) count as cosine 0"] if zeros else []
    return Statistic(total / x.shape[0], warnings)


def concentricity_difference(x: np.ndarray, y: np.ndarray) -> float:
    """| mean_i cos(x_i, mean X) - mean_i cos(y_i, mean Y) | on raw rows (ReSi ``ConcentricityDifference``)."""
    return CONCENTRICITY.bind().value_of(x, y)


CONCENTRICITY = register(
    Metric(
        name="concentricity",
        summary="difference of the mean cosine between each row and the mean row (raw, not centred)",
        params=(),
        higher_is_similar=False,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation"}),
        min_n=1,
        formula="| mean_i cos(a_i, mean A) - mean_i cos(b_i, mean B) |",
        reference=REFERENCE.format(cls="ConcentricityDifference"),
        prepare=lambda x, p: concentricity(x),
        pair=_difference,
        permute=_keep,
        help="Raw rows on purpose: centred data would have a zero mean row. Zero rows count as cosine 0 (as "
        "scikit-learn's cosine, which ReSi uses), with a warning. Ignores the pairing of inputs (a permutation "
        "null gives p = 1).",
        value_range=(0.0, 2.0),
    )
)

# ---------------------------------------------------------------------------- uniformity


def _block_rows(n: int, budget_bytes: int = 64 * 2**20) -> int:
    return max(1, min(n, budget_bytes // (8 * max(n, 1))))


def _log_sum_exp(v: np.ndarray) -> float:
    top = float(v.max(initial=-np.inf))
    if top == -np.inf:
        return -np.inf
    return top + float(np.log(np.exp(v - top).sum()))


def uniformity(x: np.ndarray, t: float = 2.0) -> float:
    """log mean_{i,j} exp(-t ||x_i - x_j||^2) over all N^2 ordered pairs, the diagonal included.

    Wang & Isola, ICML 2020 (as ReSi computes it, on the rows as given). Squared distances on
    column-centred float64 data (distances are translation invariant, and centring keeps their
    digits), in row blocks of the upper triangle only (block i against rows >= its start; the
    off-diagonal part counts twice), combined by log-sum-exp: memory O(block N), never N x N.
    """
    z = center(x)
    n = z.shape[0]
    sq = np.einsum("ij,ij->i", z, z)
    total = -np.inf
    block = min(_block_rows(n), max(256, -(-n // 8)))  # >= 8 blocks on large N: the triangle saves ~44%
    for start in range(0, n, block):
        stop = min(n, start + block)
        d2 = z[start:stop] @ z[start:].T
        d2 *= -2.0
        d2 += sq[start:stop, None]
        d2 += sq[None, start:]
        np.maximum(d2, 0.0, out=d2)
        rows = np.arange(stop - start)
        d2[rows, rows] = 0.0
        d2 *= -t
        total = np.logaddexp(total, _log_sum_exp(d2[:, : stop - start]))  # the diagonal tile, once
        total = np.logaddexp(total, np.log(2.0) + _log_sum_exp(d2[:, stop - start :]))  # the rest, twice
    return float(total - 2.0 * np.log(n))


def uniformity_difference(x: np.ndarray, y: np.ndarray, t: float = 2.0) -> float:
    """| uniformity(X) - uniformity(Y) | (ReSi ``UniformityDifference``)."""
    return UNIFORMITY.bind(t=t).value_of(x, y)


def _uniformity_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Statistic:
    if x.shape[0] < 1:
        raise RepsimError("uniformity needs at least one input")
    return Statistic(uniformity(x, params["t"]))


UNIFORMITY = register(
    Metric(
        name="uniformity",
        summary="difference of the log mean Gaussian potential between all pairs of inputs",
        params=(Param("t", float, 2.0, "Gaussian potential scale t in exp(-t ||x_i - x_j||^2)", minimum=0.0, exclusive_minimum=True),),
        higher_is_similar=False,
        symmetric=True,
        invariances=frozenset({"orthogonal", "permutation", "translation"}),
        min_n=2,
        formula="| log mean_ij exp(-t||a_i - a_j||^2) - log mean_ij exp(-t||b_i - b_j||^2) |, diagonal included",
        reference="Wang & Isola, Understanding Contrastive Representation Learning through Alignment and Uniformity "
        "on the Hypersphere, ICML 2020; " + REFERENCE.format(cls="UniformityDifference"),
        prepare=_uniformity_prepare,
        pair=_difference,
        permute=_keep,
        gram=False,
        help=(
            "O(N^2 F) time in row blocks (memory O(block*N), never N x N, so --max-gram does not apply). Each "
            "side's value lies in [-log N, 0]. Defined by Wang & Isola for unit-norm features; like ReSi, repsim "
            "applies it to the rows as given, so the value depends on the data's scale (with large distances only "
            "the diagonal survives and it saturates at -log N). Ignores the pairing of inputs (a permutation null "
            "gives p = 1)."
        ),
        value_range=(0.0, float("inf")),
    )
)
