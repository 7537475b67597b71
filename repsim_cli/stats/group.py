"""The across-seeds group test: do runs of one method resemble each other more than runs of another?

Pure functions, no printing. Two nulls, each its own function:

- :func:`label_exchange_null`: exchange group labels among runs (group sizes fixed), enumerated
  exactly when the number of distinct splits is small, else Monte Carlo relabellings drawn from
  ``SeedSequence(seed, spawn_key=(LABEL_STREAM,))``;
- :func:`bootstrap_group_null`: resample inputs (rows) with replacement, the same rows for every
  run, from ``SeedSequence(seed, spawn_key=(BOOT_STREAM, k))``.

:func:`group_test` validates the inputs, computes the statistic and dispatches to one of them.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.stats.nulls import (
    LABEL_STREAM,
    Progress,
    _check_ci,
    _check_seed,
    _finite_or_none,
    _tail_warning,
    bootstrap_rows,
    percentile_interval,
)

#: relabellings evaluated at once by the group test (bounds memory: chunk x pairs floats)
_LABEL_CHUNK = 8192


# --------------------------------------------------------------------------- group test: splits


def count_splits(sizes: Sequence[int]) -> int:
    """Number of distinct partitions of sum(sizes) runs into unlabeled groups of these sizes.

    R! / (prod_g n_g! * prod_s m_s!), where m_s is how many groups have size s: groups of equal
    size are interchangeable (swapping their labels gives the same within/between pairs).
    2 + 2 runs: 3 splits; 3 + 2: 10; 3 + 3: 10; 4 + 4: 35.
    """
    total = math.factorial(sum(sizes))
    for s in sizes:
        total //= math.factorial(s)
    for m in Counter(sizes).values():
        total //= math.factorial(m)
    return total


def enumerate_splits(sizes: Sequence[int]) -> np.ndarray:
    """All distinct partitions as label arrays (splits x R; label g marks a block of size sizes[g]).

    Canonical form: groups are filled in order of size, and blocks of equal size appear in
    increasing order of their smallest run, so each partition is listed exactly once.
    """
    order = sorted(range(len(sizes)), key=lambda g: (sizes[g], g))
    r = int(sum(sizes))
    out: list[np.ndarray] = []
    labels = np.empty(r, dtype=np.int64)

    def fill(pos: int, remaining: tuple[int, ...], prev_min: int, prev_size: int) -> None:
        if pos == len(order):
            out.append(labels.copy())
            return
        g = order[pos]
        s = sizes[g]
        for combo in itertools.combinations(remaining, s):
            if s == prev_size and combo[0] < prev_min:
                continue
            labels[list(combo)] = g
            rest = tuple(i for i in remaining if i not in combo)
            fill(pos + 1, rest, combo[0], s)

    fill(0, tuple(range(r)), -1, -1)
    return np.array(out, dtype=np.int64).reshape(len(out), r)


def _codes(labels: Sequence[Hashable]) -> tuple[np.ndarray, list[int]]:
    """Integer group codes in order of first appearance, and the group sizes."""
    seen: dict[Hashable, int] = {}
    codes = np.array([seen.setdefault(lab, len(seen)) for lab in labels], dtype=np.int64)
    sizes = [int(np.count_nonzero(codes == g)) for g in range(len(seen))]
    return codes, sizes


def recommend_sizes(sizes: Sequence[int], target: float = 0.05) -> tuple[list[int], int]:
    """Smallest equal increase of every group so that 1/splits <= target (and that split count)."""
    extra = 0
    while True:
        bigger = [s + extra for s in sizes]
        splits = count_splits(bigger)
        if 1.0 / splits <= target or extra > 50:
            return bigger, splits
        extra += 1


# --------------------------------------------------------------------------- group test: statistic


def pair_index(r: int) -> tuple[np.ndarray, np.ndarray]:
    """Run indices (i, j), i < j, of every unordered pair of ``r`` runs (numpy triu order)."""
    return np.triu_indices(r, 1)


def group_statistics(
    values: np.ndarray, labels: np.ndarray, higher_is_similar: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(statistic, within mean, between mean) for each labelling and layer.

    ``values``: L x P pair values (pairs in :func:`pair_index` order); ``labels``: S x R group
    codes. within = mean of pairs whose runs share a label (pooled across groups), between =
    mean of the other pairs, statistic = within - between for similarities and
    between - within for distances, so a positive statistic always means "groups differ".
    Returns three S x L arrays.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    labels = np.atleast_2d(labels)
    i, j = pair_index(labels.shape[1])
    same = (labels[:, i] == labels[:, j]).astype(np.float64)  # S x P
    n_within = same.sum(axis=1, keepdims=True)
    n_between = same.shape[1] - n_within
    if np.any(n_within == 0) or np.any(n_between == 0):
        raise RepsimError("the group statistic needs at least one within-group and one between-group pair")
    within = same @ values.T / n_within
    between = (1.0 - same) @ values.T / n_between
    sign = 1.0 if higher_is_similar else -1.0
    return sign * (within - between), within, between


@dataclass
class GroupStat:
    """The group statistic of one layer (or of the layer mean) and its null summary."""

    statistic: float
    within_mean: float
    between_mean: float
    null_mean: float | None
    null_std: float | None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    fraction_le_zero: float | None = None

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "statistic": self.statistic,
            "within_mean": self.within_mean,
            "between_mean": self.between_mean,
            "null_mean": _finite_or_none(self.null_mean),
            "null_std": _finite_or_none(self.null_std),
        }
        if self.p_value is not None:
            rec["p_value"] = self.p_value
        if self.ci_low is not None:
            rec.update(ci_low=self.ci_low, ci_high=self.ci_high, fraction_le_zero=self.fraction_le_zero)
        return rec


@dataclass
class GroupTestResult:
    """Result of :func:`group_test`: one :class:`GroupStat` per layer, plus their mean when L > 1."""

    null: str
    layers: list[GroupStat]
    combined: GroupStat | None
    splits: int
    min_p_value: float
    exact: bool
    resamples: int  # relabellings (labels: = splits when exact) or bootstrap resamples
    seed: int
    ci: float | None = None
    note: str | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Test-level fields shared by every layer's record."""
        rec: dict[str, Any] = {
            "null": self.null,
            "splits": self.splits,
            "min_p_value": self.min_p_value,
            "exact": self.exact,
            "resamples": self.resamples,
        }
        if self.ci is not None:
            rec["ci"] = self.ci
        rec["note"] = self.note
        return rec


def _summ(null: np.ndarray) -> tuple[float, float]:
    """Mean and sd (ddof=1) of a null; a mean that is zero up to rounding is reported as 0."""
    mean = float(np.mean(null))
    if abs(mean) <= 1e-12 * max(1.0, float(np.max(np.abs(null)))):
        mean = 0.0
    return mean, float(np.std(null, ddof=1)) if null.size > 1 else 0.0


def _check_group_inputs(sims: np.ndarray, labels: Sequence[Hashable], n_resamples: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Validated L x P pair values (upper triangle), group codes and group sizes."""
    sims = np.asarray(sims, dtype=np.float64)
    if sims.ndim == 2:
        sims = sims[None]
    if sims.ndim != 3 or sims.shape[1] != sims.shape[2]:
        raise RepsimError(f"sims must be R x R or L x R x R, got shape {sims.shape}")
    codes, sizes = _codes(labels)
    r = codes.size
    if sims.shape[1] != r:
        raise RepsimError(f"{r} labels for {sims.shape[1]} runs")
    if len(sizes) < 2:
        raise RepsimError(f"the group test needs at least 2 groups, got {len(sizes)}")
    if min(sizes) < 2:
        raise RepsimError(f"every group needs at least 2 runs (group sizes: {sizes})")
    if n_resamples < 1:
        raise RepsimError(f"n_resamples must be >= 1, got {n_resamples}")
    i, j = pair_index(r)
    values = sims[:, i, j]  # L x P
    if not np.all(np.isfinite(values)):
        raise RepsimError("the pairwise values between runs contain NaN or infinite entries")
    return values, codes, sizes


def group_test(
    sims: np.ndarray,
    labels: Sequence[Hashable],
    higher_is_similar: bool = True,
    null: str = "labels",
    n_resamples: int = 999,
    seed: int = 0,
    recompute: Callable[[np.ndarray], np.ndarray] | None = None,
    n_rows: int | None = None,
    unique_rows: bool = False,
    ci: float = 0.95,
    progress: Progress | None = None,
) -> GroupTestResult:
    """Is similarity between groups of runs lower than within groups (e.g. seeds of two methods)?

    ``sims``: R x R or L x R x R pairwise values between the R runs (per layer L; only the
    upper triangle i < j is read, so an asymmetric metric is read as metric(run_i, run_j)).
    ``labels``: the group of each run. Statistic (:func:`group_statistics`): mean of the
    within-group pairs pooled across groups minus the mean of the between-group pairs
    (sign flipped for distances: positive = groups differ). With several layers the combined
    statistic is the mean of the per-layer statistics, and its null uses the same
    relabellings/resamples.

    ``null='labels'``: :func:`label_exchange_null`. ``null='bootstrap'``:
    :func:`bootstrap_group_null` with ``recompute(rows)`` returning the L x R x R values on
    the given input rows and ``n_rows`` the number of inputs.
    """
    seed = _check_seed(seed)
    values, codes, sizes = _check_group_inputs(sims, labels, n_resamples)
    if null == "labels":
        return label_exchange_null(values, codes, sizes, higher_is_similar, n_resamples, seed, progress)
    if null != "bootstrap":
        raise RepsimError(f"null must be labels or bootstrap, got {null!r}")
    if recompute is None or n_rows is None:
        raise ValueError("the bootstrap null needs recompute(rows) and n_rows")
    return bootstrap_group_null(
        values, codes, sizes, higher_is_similar, recompute, n_rows, n_resamples, seed, unique_rows, ci, progress
    )


def _relabelled_statistics(
    values: np.ndarray, codes: np.ndarray, sizes: list[int], higher_is_similar: bool, n_resamples: int, seed: int
) -> tuple[np.ndarray, bool]:
    """S x L statistics under every split (exact, when there are <= n_resamples) or random relabellings."""
    if count_splits(sizes) <= n_resamples:
        draws = enumerate_splits(sizes)
        parts = [group_statistics(values, draws[s : s + _LABEL_CHUNK], higher_is_similar)[0]
                 for s in range(0, draws.shape[0], _LABEL_CHUNK)]
        return np.concatenate(parts), True
    # each chunk of relabellings: every row an independent uniform shuffle of the labels
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(LABEL_STREAM,)))
    parts = []
    for s in range(0, n_resamples, _LABEL_CHUNK):
        count = min(_LABEL_CHUNK, n_resamples - s)
        draws = rng.permuted(np.tile(codes, (count, 1)), axis=1)
        parts.append(group_statistics(values, draws, higher_is_similar)[0])
    return np.concatenate(parts), False


def _few_splits_note(sizes: list[int], splits: int, min_p: float) -> str | None:
    if min_p <= 0.05:
        return None
    rec_sizes, rec_splits = recommend_sizes(sizes)
    return (
        f"only {splits} distinct ways to split these {sum(sizes)} runs into groups of sizes "
        f"{'+'.join(map(str, sizes))}, so the smallest p-value this test can give is {min_p:.3g}: it cannot "
        f"reach 0.05 whatever the data. Train more seeds: {'+'.join(map(str, rec_sizes))} runs give "
        f"{rec_splits} splits (smallest p {1.0 / rec_splits:.3g}); or use the bootstrap null for the input-sampling "
        f"stability of the difference between these particular runs."
    )


def label_exchange_null(
    values: np.ndarray,
    codes: np.ndarray,
    sizes: list[int],
    higher_is_similar: bool = True,
    n_resamples: int = 999,
    seed: int = 0,
    progress: Progress | None = None,
) -> GroupTestResult:
    """Label-exchange null of the group statistic (``values``: L x P pair values).

    If the number of distinct splits (:func:`count_splits`) is <= ``n_resamples`` all are
    enumerated and p = #{splits with statistic >= observed} / splits (the observed split
    included, so p >= 1/splits = ``min_p_value``); otherwise ``n_resamples`` random
    relabellings give p = (1 + #{>= observed}) / (B + 1). Valid when runs are exchangeable
    under "no group difference" (e.g. independent seeds).
    """
    stat, within, between = group_statistics(values, codes[None], higher_is_similar)
    null_stat, exact = _relabelled_statistics(values, codes, sizes, higher_is_similar, n_resamples, seed)
    if progress:
        progress(n_resamples)
    splits = count_splits(sizes)
    min_p = 1.0 / splits if exact else max(1.0 / splits, 1.0 / (n_resamples + 1))

    def make(obs: float, w: float, b: float, nul: np.ndarray) -> GroupStat:
        tol = 1e-12 * max(1.0, abs(obs))
        hits = int(np.count_nonzero(nul >= obs - tol))
        m, s = _summ(nul)
        p = hits / nul.size if exact else (1 + hits) / (nul.size + 1)
        return GroupStat(float(obs), float(w), float(b), m, s, p_value=p)

    layers = [make(stat[0, l], within[0, l], between[0, l], null_stat[:, l]) for l in range(values.shape[0])]
    combined = None
    if values.shape[0] > 1:
        combined = make(float(stat[0].mean()), within[0].mean(), between[0].mean(), null_stat.mean(axis=1))
    note = _few_splits_note(sizes, splits, min_p)
    return GroupTestResult("labels", layers, combined, splits, min_p, exact, int(null_stat.shape[0]), seed, None, note, [])


def _bootstrap_statistics(
    values_of: Callable[[np.ndarray], np.ndarray], codes: np.ndarray, higher_is_similar: bool,
    n_rows: int, n_resamples: int, seed: int, unique_rows: bool, progress: Progress | None,
) -> tuple[np.ndarray, list[str]]:
    """B x L bootstrap statistics (undefined resamples skipped, with a warning)."""
    i, j = pair_index(codes.size)
    boot = np.full((n_resamples, 0), np.nan)
    rows_out: list[np.ndarray | None] = []
    errors: list[str] = []
    for k in range(n_resamples):
        rows = bootstrap_rows(n_rows, seed, k, unique_rows)
        try:
            resampled = np.asarray(values_of(rows), dtype=np.float64)
            if resampled.ndim == 2:
                resampled = resampled[None]
            rows_out.append(group_statistics(resampled[:, i, j], codes[None], higher_is_similar)[0][0])
        except RepsimError as exc:
            errors.append(str(exc))
            rows_out.append(None)
        if progress:
            progress(1)
    width = next((len(r) for r in rows_out if r is not None), 0)
    boot = np.array([r if r is not None else np.full(width, np.nan) for r in rows_out]).reshape(n_resamples, width)
    ok = np.all(np.isfinite(boot), axis=1)
    warnings: list[str] = []
    if errors or not ok.all():
        first = Counter(errors).most_common(1)[0][0] if errors else "non-finite values"
        warnings.append(f"{int((~ok).sum())} of {n_resamples} bootstrap resamples were undefined and skipped ({first})")
    return boot[ok], warnings


def bootstrap_group_null(
    values: np.ndarray,
    codes: np.ndarray,
    sizes: list[int],
    higher_is_similar: bool,
    recompute: Callable[[np.ndarray], np.ndarray],
    n_rows: int,
    n_resamples: int = 999,
    seed: int = 0,
    unique_rows: bool = False,
    ci: float = 0.95,
    progress: Progress | None = None,
) -> GroupTestResult:
    """Bootstrap over inputs of the group statistic: percentile interval and fraction <= 0.

    ``recompute(rows)`` returns the L x R x R values on the given rows (the same rows for every
    run); ``n_resamples`` resamples of ``n_rows`` rows with replacement (distinct rows only if
    ``unique_rows``). It measures how stable the difference is across inputs for *these* runs,
    not across seeds.
    """
    _check_ci(ci)
    if n_resamples < 2:
        raise RepsimError(f"n_resamples must be >= 2 for the bootstrap null, got {n_resamples}")
    stat, within, between = group_statistics(values, codes[None], higher_is_similar)
    boot, warnings = _bootstrap_statistics(recompute, codes, higher_is_similar, n_rows, n_resamples, seed, unique_rows, progress)
    if boot.shape[0] < 2:
        raise RepsimError(f"the bootstrap failed: only {boot.shape[0]} of {n_resamples} resamples gave values")
    if unique_rows:
        warnings.append(
            "bias-corrected estimator: each bootstrap resample keeps its distinct rows only (~63% of N), "
            "so the interval is somewhat wider than for N rows"
        )
    warnings += _tail_warning(boot.shape[0], ci, "bootstrap resamples")

    def make(obs: float, w: float, b: float, nul: np.ndarray) -> GroupStat:
        m, s = _summ(nul)
        lo, hi = percentile_interval(nul, ci)
        return GroupStat(float(obs), float(w), float(b), m, s, ci_low=lo, ci_high=hi,
                         fraction_le_zero=float(np.count_nonzero(nul <= 0.0) / nul.size))

    layers = [make(stat[0, l], within[0, l], between[0, l], boot[:, l]) for l in range(values.shape[0])]
    combined = None
    if values.shape[0] > 1:
        combined = make(float(stat[0].mean()), within[0].mean(), between[0].mean(), boot.mean(axis=1))
    splits = count_splits(sizes)
    min_p = 1.0 / splits
    note = None
    if min_p > 0.05:
        note = (
            f"with {sum(sizes)} runs a label-exchange test has only {splits} splits (smallest p {min_p:.3g}); this bootstrap "
            "interval reflects variation over inputs for these particular runs, not over training seeds"
        )
    return GroupTestResult("bootstrap", layers, combined, splits, min_p, False, int(boot.shape[0]), seed, ci, note, warnings)


# --------------------------------------------------------------------------- pairwise values between runs


def pairwise_matrix(metric: Any, runs: Sequence[np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
    """R x R values metric(run_i, run_j) for i < j (upper triangle; NaN elsewhere).

    Each run is prepared once (on ``rows`` if given), then every pair is one ``pair`` call --
    for linear CKA one cross product per pair.
    """
    preps = [metric.prepare(x if rows is None else x[rows]) for x in runs]
    r = len(preps)
    out = np.full((r, r), np.nan)
    for a, b in zip(*pair_index(r)):
        out[a, b] = metric.pair(preps[a], preps[b]).value
    return out
