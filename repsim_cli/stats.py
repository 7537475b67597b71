"""Statistics: permutation nulls, bootstrap intervals and the across-seeds group test.

Pure functions, no printing. Every random choice comes from ``numpy.random.Generator``
seeded by the caller's ``seed`` through ``SeedSequence`` children, never global state:

- permutation ``k`` of a null is drawn from ``SeedSequence(seed, spawn_key=(k,))`` (the k-th
  child of ``SeedSequence(seed).spawn``), so it is the same whatever the number of
  permutations or the way the work is split over ``jobs`` processes;
- bootstrap resample ``k`` uses ``SeedSequence(seed, spawn_key=(BOOT_STREAM, k))``;
- Monte Carlo relabellings of the group test use ``SeedSequence(seed, spawn_key=(LABEL_STREAM,))``.

References: permutation p-values with the observed value counted, (1 + #)/(B + 1), Phipson &
Smyth, "Permutation p-values should never be zero", SAGMB 2010; percentile bootstrap, Efron &
Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13.
"""

from __future__ import annotations

import itertools
import math
import signal
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from repsim_cli.errors import RepsimError

Progress = Callable[[int], None]

#: spawn-key prefixes separating the random streams drawn from one user seed
BOOT_STREAM = 0x626F6F74  # "boot"
LABEL_STREAM = 0x6C61626C  # "labl"
#: permutations / resamples per unit of work (progress granularity, process chunks)
_CHUNK = 8
#: relabellings evaluated at once by the group test (bounds memory: chunk x pairs floats)
_LABEL_CHUNK = 8192


# --------------------------------------------------------------------------- seeds and draws


def _check_seed(seed: int) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise RepsimError(f"--seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _permutation(n: int, seed: int, k: int) -> np.ndarray:
    """The k-th permutation of ``range(n)`` for ``seed`` (child k of ``SeedSequence(seed)``)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,))).permutation(n)


def permutation_indices(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` independent row permutations of ``range(n)`` (count x n), reproducible from ``seed``.

    Each permutation comes from its own child of ``SeedSequence(seed)``, so the k-th
    permutation is the same whatever ``count`` is and however the work is split across jobs.
    """
    out = np.empty((count, n), dtype=np.int64)
    for k in range(count):
        out[k] = _permutation(n, seed, k)
    return out


def bootstrap_rows(n: int, seed: int, k: int, unique: bool = False) -> np.ndarray:
    """Rows of bootstrap resample ``k``: ``n`` draws with replacement from ``range(n)``.

    ``unique=True`` keeps each drawn row once (sorted): the "unique-rows" bootstrap used for
    estimators with a bias correction, which would otherwise read duplicated rows as extra
    dependence between the two sides.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(BOOT_STREAM, k)))
    rows = rng.integers(0, n, size=n)
    return np.unique(rows) if unique else rows


def permutation_pvalue(observed: float, null: np.ndarray, higher_is_similar: bool = True) -> float:
    """(1 + #{null >= observed}) / (B + 1) for similarities (<= for distances); never 0.

    A tiny relative tolerance counts null values equal to ``observed`` up to rounding as ties.
    """
    null = np.asarray(null, dtype=np.float64)
    tol = 1e-12 * max(1.0, abs(observed))
    hits = np.count_nonzero(null >= observed - tol) if higher_is_similar else np.count_nonzero(null <= observed + tol)
    return float((1 + hits) / (null.size + 1))


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (same shape as the input; family = all entries)."""
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ravel()
    m = flat.size
    order = np.argsort(flat, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * flat[idx]))
        adjusted[idx] = running
    return adjusted.reshape(p.shape)


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def debiased(metric: Any) -> bool:
    """Whether a bound metric uses a bias-corrected (U-statistic) estimator."""
    return bool(getattr(metric, "params", {}).get("debiased", False))


def needs_distinct_rows(metric: Any) -> bool:
    """Whether duplicated inputs bias the metric, so bootstrap resamples keep distinct rows only.

    True for bias-corrected estimators and for indexes the registry marks ``distinct_rows``
    (k-NN overlap, RSA: a duplicated input is a zero-distance pair in both representations).
    """
    return bool(getattr(metric, "distinct_rows", False)) or debiased(metric)


# --------------------------------------------------------------------------- work units (in-process or in workers)


class _Job:
    """What one process needs to evaluate permutations or bootstrap resamples of one pair."""

    def __init__(self, metric: Any, x: np.ndarray, y: np.ndarray, prep_a: Any = None, prep_b: Any = None, fast: bool = True):
        self.metric = metric
        self.x = x
        self.y = y
        self.fast = fast and metric.metric.permute is not None
        self._prep_a = prep_a
        self._prep_b = prep_b

    @property
    def prep_a(self) -> Any:
        if self._prep_a is None:
            self._prep_a = self.metric.prepare(self.x)
        return self._prep_a

    @property
    def prep_b(self) -> Any:
        if self._prep_b is None:
            self._prep_b = self.metric.prepare(self.y)
        return self._prep_b

    def permutations(self, seed: int, start: int, stop: int) -> np.ndarray:
        """Null values for permutations ``start..stop-1``: A fixed, B's rows shuffled.

        Fast path: ``metric.permute(prep_b, perm)`` reorders B's prepared state (for linear CKA
        the self terms are reused and only the cross product is recomputed); otherwise B is
        prepared again from ``y[perm]``. A's prepared state is reused either way.
        """
        n = self.x.shape[0]
        out = np.empty(stop - start)
        for i, k in enumerate(range(start, stop)):
            perm = _permutation(n, seed, k)
            if self.fast:
                permuted = self.metric.permute(self.prep_b, perm)
            else:
                permuted = self.metric.prepare(self.y[perm])
            out[i] = self.metric.pair(self.prep_a, permuted).value
        return out

    def bootstrap(self, seed: int, start: int, stop: int, unique: bool) -> tuple[np.ndarray, list[str]]:
        """Values on resamples ``start..stop-1`` (NaN where the metric is undefined, with the reason)."""
        n = self.x.shape[0]
        out = np.empty(stop - start)
        errors: list[str] = []
        for i, k in enumerate(range(start, stop)):
            rows = bootstrap_rows(n, seed, k, unique)
            try:
                out[i] = self.metric.compute(self.x[rows], self.y[rows]).value
            except RepsimError as exc:
                out[i] = np.nan
                errors.append(str(exc))
        return out, errors


_WORKER: dict[str, _Job] = {}


def _worker_init(name: str, params: Mapping[str, Any], x: np.ndarray, y: np.ndarray, fast: bool) -> None:
    """Worker process: ignore Ctrl-C (the parent handles it) and rebuild the metric by name."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from repsim_cli.metrics import get_metric

    _WORKER["job"] = _Job(get_metric(name).bind(**dict(params)), x, y, fast=fast)


def _worker_call(method: str, *args: Any) -> Any:
    return getattr(_WORKER["job"], method)(*args)


def _chunks(total: int, jobs: int) -> list[tuple[int, int]]:
    size = _CHUNK if jobs <= 1 else max(1, min(64, math.ceil(total / (4 * jobs))))
    return [(s, min(total, s + size)) for s in range(0, total, size)]


def _run(
    job: _Job, method: str, tasks: list[tuple[Any, ...]], sizes: list[int], jobs: int, progress: Progress | None
) -> list[Any]:
    """Run ``job.method(*task)`` for every task, in-process or over ``jobs`` worker processes.

    Results come back in task order whatever the completion order, so they do not depend on
    ``jobs``. Ctrl-C (or any error) terminates the workers before propagating.
    """
    if jobs <= 1 or len(tasks) <= 1:
        results = []
        for task, size in zip(tasks, sizes):
            results.append(getattr(job, method)(*task))
            if progress:
                progress(size)
        return results
    executor = ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)),
        initializer=_worker_init,
        initargs=(job.metric.name, dict(job.metric.params), job.x, job.y, job.fast),
    )
    try:
        futures = {executor.submit(_worker_call, method, *task): i for i, task in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if progress:
                progress(sizes[i])
        executor.shutdown(wait=True)
        return results
    except BrokenProcessPool:
        _terminate(executor)
        raise RepsimError("a worker process died (out of memory?); try fewer --jobs") from None
    except BaseException:
        _terminate(executor)
        raise


def _terminate(executor: ProcessPoolExecutor) -> None:
    for proc in list((getattr(executor, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()
    executor.shutdown(wait=False, cancel_futures=True)


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise RepsimError(f"expected two N x F arrays, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise RepsimError(f"the two sides index different numbers of inputs: N={x.shape[0]} and N={y.shape[0]}")


# --------------------------------------------------------------------------- permutation null


@dataclass
class PermutationResult:
    """A permutation null of one comparison.

    ``null[k]`` is the metric with B's rows shuffled by permutation k. The p-value is
    (1 + #{null >= observed}) / (B + 1) for similarities (<= for distances), never 0; ``z`` is
    (observed - mean(null)) / std(null) (ddof=1), ``None`` when the null has no spread.
    """

    observed: float
    null: np.ndarray
    p_value: float
    higher_is_similar: bool
    seed: int
    warnings: list[str] = field(default_factory=list)

    @property
    def permutations(self) -> int:
        return int(self.null.size)

    @property
    def null_mean(self) -> float:
        return float(np.mean(self.null))

    @property
    def null_std(self) -> float:
        return float(np.std(self.null, ddof=1)) if self.null.size > 1 else 0.0

    @property
    def z(self) -> float | None:
        sd = self.null_std
        if not sd > 1e-12 * max(1.0, abs(self.null_mean)):
            return None
        return _finite_or_none((self.observed - self.null_mean) / sd)

    def as_record(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value,
            "null_mean": _finite_or_none(self.null_mean),
            "null_std": _finite_or_none(self.null_std),
            "permutations": self.permutations,
            "z": self.z,
        }


def permutation_null(
    metric: Any,
    x: np.ndarray,
    y: np.ndarray,
    n_permutations: int,
    seed: int = 0,
    prep_a: Any = None,
    prep_b: Any = None,
    observed: float | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
    fast: bool = True,
) -> PermutationResult:
    """Permutation null of ``metric(x, y)``: shuffle the rows of ``y`` relative to ``x``.

    Breaking the row correspondence keeps each side's own structure (the self terms) and
    destroys only what links the two sides, so under "no shared structure" the observed value
    is one more draw from the null. Permutation k is :func:`permutation_indices` row k.

    Cost: with a registry ``permute`` (``fast=True``) each permutation reorders B's prepared
    state and computes one ``pair`` -- for linear CKA one F_A x F_B cross product (or an N x N
    inner product of Grams when F > N); the self terms are computed once. Metrics without it
    re-prepare B from ``y[perm]`` (A's state is reused), in ``jobs`` worker processes.
    The numbers do not depend on ``jobs``.
    """
    seed = _check_seed(seed)
    if n_permutations < 1:
        raise RepsimError(f"--permutations must be >= 1, got {n_permutations}")
    if jobs < 1:
        raise RepsimError(f"--jobs must be >= 1, got {jobs}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    _check_pair(x, y)
    job = _Job(metric, x, y, prep_a, prep_b, fast)
    if observed is None:
        observed = float(metric.pair(job.prep_a, job.prep_b).value)
    chunks = _chunks(n_permutations, jobs)
    parts = _run(job, "permutations", [(seed, s, e) for s, e in chunks], [e - s for s, e in chunks], jobs, progress)
    null = np.concatenate(parts)
    result = PermutationResult(
        float(observed), null, permutation_pvalue(observed, null, metric.higher_is_similar), metric.higher_is_similar, seed
    )
    if result.z is None:
        result.warnings.append(
            f"{metric.spec}: the permutation null has no spread (all {null.size} values equal "
            f"{result.null_mean:.6g}); z-score undefined"
        )
    if 1.0 / (n_permutations + 1) > 0.05:
        result.warnings.append(
            f"with {n_permutations} permutations the smallest possible p-value is 1/{n_permutations + 1} "
            f"= {1.0 / (n_permutations + 1):.3g}; use --permutations 99 or more"
        )
    return result


# --------------------------------------------------------------------------- bootstrap interval


@dataclass
class BootstrapResult:
    """Interval of one comparison: percentile or BCa bootstrap (same resampled rows on both sides),
    or the delete-one jackknife normal interval (``ci_method``; see :mod:`repsim_cli.intervals`)."""

    values: np.ndarray  # finite bootstrap values, resample order (jackknife: the N delete-one values)
    ci: float
    ci_low: float
    ci_high: float
    requested: int
    unique_rows: bool
    seed: int
    warnings: list[str] = field(default_factory=list)
    ci_method: str = "percentile"
    se: float | None = None  # jackknife standard error (jackknife and bca)

    @property
    def bootstrap(self) -> int:
        return 0 if self.ci_method == "jackknife" else int(self.values.size)

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "ci_method": self.ci_method,
            "bootstrap": self.bootstrap,
            "ci": self.ci,
            "bootstrap_rows": None if self.ci_method == "jackknife" else ("unique" if self.unique_rows else "all"),
        }
        if self.se is not None:
            rec["jackknife_se"] = _finite_or_none(self.se)
        return rec


def percentile_interval(values: np.ndarray, ci: float) -> tuple[float, float]:
    """The (1-ci)/2 and (1+ci)/2 quantiles (numpy's default linear interpolation)."""
    lo, hi = np.quantile(np.asarray(values, dtype=np.float64), [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    return float(lo), float(hi)


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise RepsimError(f"--ci must lie in (0, 1), got {ci}")


def _tail_warning(count: int, ci: float, what: str) -> list[str]:
    tail = count * (1.0 - ci) / 2.0
    if tail < 5:
        return [f"each end of the {ci:g} interval rests on {tail:.3g} of {count} {what}; use more resamples"]
    return []


def bootstrap_interval(
    metric: Any,
    x: np.ndarray,
    y: np.ndarray,
    n_boot: int,
    ci: float = 0.95,
    seed: int = 0,
    jobs: int = 1,
    progress: Progress | None = None,
    unique_rows: bool | None = None,
    observed: float | None = None,
    ci_method: str | None = None,
) -> BootstrapResult:
    """Interval of ``metric(x, y)``: percentile or BCa bootstrap, or the delete-one jackknife.

    ``ci_method`` (:data:`repsim_cli.intervals.CI_METHODS`; None: :func:`~repsim_cli.intervals.
    default_ci_method`, i.e. ``jackknife`` for the indexes resampled with duplicated rows, whose
    value shifts with the number of distinct inputs, ``percentile`` for the others). ``jackknife``
    draws no bootstrap resample: estimate +- z se from N delete-one values (downdates for moment
    metrics, see :mod:`repsim_cli.intervals`). ``bca`` uses the B resamples and the jackknife's
    acceleration. The rest of this docstring describes the bootstrap resamples.

    Each resample draws N rows with replacement (:func:`bootstrap_rows`, child seed per
    resample) and uses the *same* rows on both sides, so the pairing of inputs is kept; the
    interval is the (1-ci)/2 and (1+ci)/2 quantiles of the B values (Efron & Tibshirani 1993).

    Estimators with a bias correction (``debiased=true``: unbiased HSIC, Song et al. 2012)
    assume the N rows are distinct draws: a duplicated row is an identical pair that the
    correction counts as dependence, biasing the value upward. For them (``unique_rows=None``
    decides from the metric's ``debiased`` parameter) each resample keeps its distinct rows
    only (~63% of N): the interval is honest about the estimator, somewhat wider than for N
    rows; a warning says so. Resamples where the metric is undefined are skipped, with a warning.
    """
    seed = _check_seed(seed)
    _check_ci(ci)
    if n_boot < 2:
        raise RepsimError(f"--bootstrap must be >= 2, got {n_boot}")
    if jobs < 1:
        raise RepsimError(f"--jobs must be >= 1, got {jobs}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    _check_pair(x, y)
    unique = needs_distinct_rows(metric) if unique_rows is None else bool(unique_rows)
    from repsim_cli import intervals

    method = intervals.default_ci_method(metric, unique) if ci_method is None else intervals.check_ci_method(ci_method)
    if method == "jackknife":
        lo, hi, jk, notes = intervals.jackknife_interval(metric, x, y, ci, observed)
        if progress:
            progress(n_boot)
        return BootstrapResult(jk.values, ci, lo, hi, n_boot, unique, seed, notes, "jackknife", jk.se)
    job = _Job(metric, x, y)
    chunks = _chunks(n_boot, jobs)
    parts = _run(job, "bootstrap", [(seed, s, e, unique) for s, e in chunks], [e - s for s, e in chunks], jobs, progress)
    values = np.concatenate([p[0] for p in parts])
    errors = [e for p in parts for e in p[1]]
    finite = values[np.isfinite(values)]
    warnings: list[str] = []
    if unique:
        why = "bias-corrected estimator" if debiased(metric) else "duplicated inputs would be zero-distance pairs"
        warnings.append(
            f"{metric.spec}: {why} -- each bootstrap resample keeps its distinct rows only "
            "(~63% of N; duplicated rows would read as dependence), so the interval is somewhat wider than for N rows"
        )
    if errors:
        first = Counter(errors).most_common(1)[0][0]
        warnings.append(f"{metric.spec}: {len(errors)} of {n_boot} bootstrap resamples were undefined and skipped ({first})")
    if finite.size < 2:
        raise RepsimError(f"{metric.spec}: the bootstrap failed: only {finite.size} of {n_boot} resamples gave a value")
    se = None
    if method == "bca":
        if observed is None:
            observed = float(metric.compute(x, y).value)
        jk = intervals.jackknife(metric, x, y, observed)
        lo, hi, notes = intervals.bca_interval(finite, observed, jk.acceleration, ci)
        se = jk.se
        warnings += notes + ([intervals.recompute_note(metric, jk.values.size)] if jk.route == "recompute" else [])
    else:
        lo, hi = percentile_interval(finite, ci)
    warnings += _tail_warning(finite.size, ci, "bootstrap values")
    tol = 1e-12 * max(1.0, abs(observed)) if observed is not None else 0.0
    if method == "percentile" and observed is not None and not lo - tol <= observed <= hi + tol:
        warnings.append(
            f"{metric.spec}: the observed value {observed:.4g} lies outside its {ci:g} bootstrap interval "
            f"[{lo:.4g}, {hi:.4g}]: this index depends on how many distinct inputs there are (a resample holds "
            "~63% of them), so resampled values are shifted; read the interval's width, not its location, or use "
            "ci_method=jackknife (an interval around the estimate)"
        )
    return BootstrapResult(finite, ci, lo, hi, n_boot, unique, seed, warnings, method, se)


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

    ``null='labels'``: exchange group labels among runs, sizes fixed. If the number of distinct
    splits (:func:`count_splits`) is <= ``n_resamples`` all are enumerated and
    p = #{splits with statistic >= observed} / splits (the observed split included, so
    p >= 1/splits = ``min_p_value``); otherwise ``n_resamples`` random relabellings give
    p = (1 + #{>= observed}) / (B + 1). Valid when runs are exchangeable under "no group
    difference" (e.g. independent seeds).

    ``null='bootstrap'``: ``recompute(rows)`` returns the L x R x R values on the given input
    rows (the same rows for every run); ``n_resamples`` resamples of ``n_rows`` rows with
    replacement (distinct rows only if ``unique_rows``) give the statistic's percentile
    interval and the fraction of resamples with statistic <= 0. It measures how stable the
    difference is across inputs for *these* runs, not across seeds.
    """
    seed = _check_seed(seed)
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
        raise RepsimError(f"-B must be >= 1, got {n_resamples}")
    i, j = pair_index(r)
    values = sims[:, i, j]  # L x P
    if not np.all(np.isfinite(values)):
        raise RepsimError("the pairwise values between runs contain NaN or infinite entries")
    stat, within, between = group_statistics(values, codes[None], higher_is_similar)
    obs_layers, obs_comb = stat[0], float(stat[0].mean())
    splits = count_splits(sizes)
    multi = values.shape[0] > 1
    warnings: list[str] = []

    if null == "labels":
        exact = splits <= n_resamples
        if exact:
            draws = enumerate_splits(sizes)
            null_stat = np.concatenate(
                [group_statistics(values, draws[s : s + _LABEL_CHUNK], higher_is_similar)[0]
                 for s in range(0, draws.shape[0], _LABEL_CHUNK)]
            )  # S x L
        else:
            # each chunk of relabellings: every row an independent uniform shuffle of the labels
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(LABEL_STREAM,)))
            parts = []
            for s in range(0, n_resamples, _LABEL_CHUNK):
                count = min(_LABEL_CHUNK, n_resamples - s)
                draws = rng.permuted(np.tile(codes, (count, 1)), axis=1)
                parts.append(group_statistics(values, draws, higher_is_similar)[0])
            null_stat = np.concatenate(parts)
        if progress:
            progress(n_resamples)
        null_comb = null_stat.mean(axis=1)
        min_p = 1.0 / splits if exact else max(1.0 / splits, 1.0 / (n_resamples + 1))

        def pval(obs: float, nul: np.ndarray) -> float:
            tol = 1e-12 * max(1.0, abs(obs))
            hits = int(np.count_nonzero(nul >= obs - tol))
            return hits / nul.size if exact else (1 + hits) / (nul.size + 1)

        def make(obs: float, w: float, b: float, nul: np.ndarray) -> GroupStat:
            m, s = _summ(nul)
            return GroupStat(float(obs), float(w), float(b), m, s, p_value=pval(obs, nul))

        layers = [make(obs_layers[l], within[0, l], between[0, l], null_stat[:, l]) for l in range(values.shape[0])]
        combined = make(obs_comb, within[0].mean(), between[0].mean(), null_comb) if multi else None
        note = None
        if min_p > 0.05:
            rec_sizes, rec_splits = recommend_sizes(sizes)
            note = (
                f"only {splits} distinct ways to split these {r} runs into groups of sizes "
                f"{'+'.join(map(str, sizes))}, so the smallest p-value this test can give is {min_p:.3g}: it cannot "
                f"reach 0.05 whatever the data. Train more seeds: {'+'.join(map(str, rec_sizes))} runs give "
                f"{rec_splits} splits (smallest p {1.0 / rec_splits:.3g}); or use --null bootstrap for the input-sampling "
                f"stability of the difference between these particular runs."
            )
        return GroupTestResult(
            "labels", layers, combined, splits, min_p, exact, int(null_stat.shape[0]), seed, None, note, warnings
        )

    if null != "bootstrap":
        raise RepsimError(f"--null must be labels or bootstrap, got {null!r}")
    if recompute is None or n_rows is None:
        raise ValueError("the bootstrap null needs recompute(rows) and n_rows")
    _check_ci(ci)
    if n_resamples < 2:
        raise RepsimError(f"-B must be >= 2 for the bootstrap null, got {n_resamples}")
    boot = np.full((n_resamples, values.shape[0]), np.nan)
    errors: list[str] = []
    for k in range(n_resamples):
        rows = bootstrap_rows(n_rows, seed, k, unique_rows)
        try:
            resampled = np.asarray(recompute(rows), dtype=np.float64)
            if resampled.ndim == 2:
                resampled = resampled[None]
            boot[k] = group_statistics(resampled[:, i, j], codes[None], higher_is_similar)[0][0]
        except RepsimError as exc:
            errors.append(str(exc))
        if progress:
            progress(1)
    ok = np.all(np.isfinite(boot), axis=1)
    if errors or not ok.all():
        first = Counter(errors).most_common(1)[0][0] if errors else "non-finite values"
        warnings.append(f"{int((~ok).sum())} of {n_resamples} bootstrap resamples were undefined and skipped ({first})")
    boot = boot[ok]
    if boot.shape[0] < 2:
        raise RepsimError(f"the bootstrap failed: only {boot.shape[0]} of {n_resamples} resamples gave values")
    if unique_rows:
        warnings.append(
            "bias-corrected estimator: each bootstrap resample keeps its distinct rows only (~63% of N), "
            "so the interval is somewhat wider than for N rows"
        )
    warnings += _tail_warning(boot.shape[0], ci, "bootstrap resamples")

    def make_b(obs: float, w: float, b: float, nul: np.ndarray) -> GroupStat:
        m, s = _summ(nul)
        lo, hi = percentile_interval(nul, ci)
        return GroupStat(
            float(obs), float(w), float(b), m, s, ci_low=lo, ci_high=hi,
            fraction_le_zero=float(np.count_nonzero(nul <= 0.0) / nul.size),
        )

    layers = [make_b(obs_layers[l], within[0, l], between[0, l], boot[:, l]) for l in range(values.shape[0])]
    combined = make_b(obs_comb, within[0].mean(), between[0].mean(), boot.mean(axis=1)) if multi else None
    min_p = 1.0 / splits
    note = None
    if min_p > 0.05:
        note = (
            f"with {r} runs a label-exchange test has only {splits} splits (smallest p {min_p:.3g}); this bootstrap "
            "interval reflects variation over inputs for these particular runs, not over training seeds"
        )
    return GroupTestResult(
        "bootstrap", layers, combined, splits, min_p, False, int(boot.shape[0]), seed, ci, note, warnings
    )


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
