"""Nulls of one comparison: permutation p-values and bootstrap intervals.

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

import math
import os
import signal
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from repsim_cli.errors import RepsimError

Progress = Callable[[int], None]

#: spawn-key prefixes separating the random streams drawn from one user seed
BOOT_STREAM = 0x626F6F74  # "boot"
LABEL_STREAM = 0x6C61626C  # "labl"
JACK_STREAM = 0x6A61636B  # "jack": the grouped jackknife's partition
#: permutations / resamples per unit of work (progress granularity, process chunks)
_CHUNK = 8
#: relabellings evaluated at once by the group test (bounds memory: chunk x pairs floats)
_LABEL_CHUNK = 8192


# --------------------------------------------------------------------------- seeds and draws


def _check_seed(seed: int) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise RepsimError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _permutation(n: int, seed: int, k: int) -> np.ndarray:
    """The k-th permutation of ``range(n)`` for ``seed`` (child k of ``SeedSequence(seed)``)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,))).permutation(n)


def cluster_permutation(groups: np.ndarray, seed: int, k: int) -> np.ndarray:
    """Row permutation k that moves whole clusters, each only among clusters of its own size.

    ``groups``: a cluster id per row, clusters contiguous (the token rows of one sequence). The
    clusters of each size L are permuted among themselves by the k-th permutation of the G
    cluster indices restricted to that size, and row j of cluster c goes to row j of cluster
    pi(c): all tokens of one sequence move together, token order kept. Clusters of a size that
    occurs once stay in place (a stratified permutation: valid under exchangeability of
    same-length sequences).
    """
    ids, starts, counts = np.unique(groups, return_index=True, return_counts=True)
    order = _permutation(ids.size, seed, k)
    target = np.arange(ids.size)
    for size in np.unique(counts):
        members = np.flatnonzero(counts == size)
        if members.size > 1:
            ranked = order[np.isin(order, members)]  # members in the order of the k-th permutation
            target[members] = ranked
    return np.concatenate([np.arange(starts[t], starts[t] + counts[t]) for t in target])


def distinct_cluster_permutations(groups: np.ndarray) -> float:
    """How many distinct permutations :func:`cluster_permutation` can produce (prod of size-class factorials)."""
    _, counts = np.unique(groups, return_counts=True)
    _, per_size = np.unique(counts, return_counts=True)
    return float(np.prod([math.factorial(int(c)) for c in per_size], dtype=np.float64))


def permutation_indices(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` independent row permutations of ``range(n)`` (count x n), reproducible from ``seed``.

    Each permutation comes from its own child of ``SeedSequence(seed)``, so the k-th
    permutation is the same whatever ``count`` is and however the work is split across jobs.
    """
    out = np.empty((count, n), dtype=np.int64)
    for k in range(count):
        out[k] = _permutation(n, seed, k)
    return out


def iter_permutations(n: int, count: int, seed: int) -> Iterator[np.ndarray]:
    """The rows of :func:`permutation_indices` one at a time (memory O(n), not count x n); same permutations."""
    for k in range(count):
        yield _permutation(n, seed, k)


def bootstrap_rows(n: int, seed: int, k: int, unique: bool = False) -> np.ndarray:
    """Rows of bootstrap resample ``k``: ``n`` draws with replacement from ``range(n)``.

    ``unique=True`` keeps each drawn row once (sorted): the "unique-rows" bootstrap used for
    estimators with a bias correction, which would otherwise read duplicated rows as extra
    dependence between the two sides.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(BOOT_STREAM, k)))
    rows = rng.integers(0, n, size=n)
    return np.unique(rows) if unique else rows


def cluster_rows(groups: np.ndarray, seed: int, k: int, unique: bool = False) -> np.ndarray:
    """Rows of cluster-bootstrap resample ``k``: G clusters drawn with replacement, all rows of each.

    ``groups`` holds a cluster id per row with each cluster's rows contiguous (token rows of one
    sequence); clusters are drawn by :func:`bootstrap_rows` over range(G), so the same seed gives
    the same draw of clusters.
    """
    ids, starts, counts = np.unique(groups, return_index=True, return_counts=True)
    clusters = bootstrap_rows(ids.size, seed, k, unique)
    return np.concatenate([np.arange(starts[c], starts[c] + counts[c]) for c in clusters])


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

    def permutations(self, seed: int, start: int, stop: int, groups: np.ndarray | None = None) -> np.ndarray:
        """Null values for permutations ``start..stop-1``: A fixed, B's rows shuffled.

        Fast path: ``metric.permute(prep_b, perm)`` reorders B's prepared state (for linear CKA
        the self terms are reused and only the cross product is recomputed); otherwise B is
        prepared again from ``y[perm]``. A's prepared state is reused either way.
        """
        n = self.x.shape[0]
        out = np.empty(stop - start)
        for i, k in enumerate(range(start, stop)):
            perm = _permutation(n, seed, k) if groups is None else cluster_permutation(groups, seed, k)
            if self.fast:
                permuted = self.metric.permute(self.prep_b, perm)
            else:
                permuted = self.metric.prepare(self.y[perm])
            out[i] = self.metric.pair(self.prep_a, permuted).value
        return out

    def bootstrap(self, seed: int, start: int, stop: int, unique: bool, groups: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
        """Values on resamples ``start..stop-1`` (NaN where the metric is undefined, with the reason).

        ``groups`` (one cluster id per row, clusters contiguous): whole clusters are resampled
        (e.g. all tokens of one sequence with ``pool tokens``), see :func:`cluster_rows`.
        """
        n = self.x.shape[0]
        out = np.empty(stop - start)
        errors: list[str] = []
        for i, k in enumerate(range(start, stop)):
            rows = bootstrap_rows(n, seed, k, unique) if groups is None else cluster_rows(groups, seed, k, unique)
            try:
                out[i] = self.metric.compute(self.x[rows], self.y[rows]).value
            except RepsimError as exc:
                out[i] = np.nan
                errors.append(str(exc))
        return out, errors


_WORKER: dict[str, _Job] = {}


def _worker_init(
    name: str, params: Mapping[str, Any], x: np.ndarray, y: np.ndarray, fast: bool, parent: int | None = None
) -> None:
    """Worker process: ignore Ctrl-C (the parent handles it), die with the parent, rebuild the metric by name."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # not the parent's cleanup handlers: just end
        signal.signal(sig, signal.SIG_DFL)
    die_with_parent(parent)
    from repsim_cli.metrics import get_metric

    _WORKER["job"] = _Job(get_metric(name).bind(**dict(params)), x, y, fast=fast)


def die_with_parent(parent: int | None) -> None:
    """End this worker process when ``parent`` ends, even by SIGKILL (no orphans under PID 1).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. Everywhere, as a fallback (and for a parent
    that died before the prctl call): a daemon thread that exits when ``getppid()`` changes.
    """
    import threading

    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="repsim-parent-watch", daemon=True).start()


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
    results: list[Any]
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
        initargs=(job.metric.name, dict(job.metric.params), job.x, job.y, job.fast, os.getpid()),
    )
    try:
        futures = {executor.submit(_worker_call, method, *task): i for i, task in enumerate(tasks)}
        results = [None] * len(tasks)
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if progress:
                progress(sizes[i])
        executor.shutdown(wait=True)
        return results
    except BrokenProcessPool:
        _terminate(executor)
        raise RepsimError("a worker process died (out of memory?); try fewer jobs") from None
    except BaseException:
        _terminate(executor)
        raise


def _terminate(executor: ProcessPoolExecutor) -> None:
    """Stop every worker now (Ctrl-C, SIGTERM, an error), including one started but not yet registered."""
    import multiprocessing

    procs = list((getattr(executor, "_processes", None) or {}).values())
    procs += [p for p in multiprocessing.active_children() if p not in procs]
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=2)
        if proc.is_alive():
            proc.kill()
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
    groups: np.ndarray | None = None,
) -> PermutationResult:
    """Permutation null of ``metric(x, y)``: shuffle the rows of ``y`` relative to ``x``.

    Breaking the row correspondence keeps each side's own structure (the self terms) and
    destroys only what links the two sides, so under "no shared structure" the observed value
    is one more draw from the null. Permutation k is :func:`permutation_indices` row k.

    Cost: with a registry ``permute`` (``fast=True``) each permutation reorders B's prepared
    state and computes one ``pair`` -- for linear CKA one F_A x F_B cross product (or an N x N
    inner product of Grams when F > N); the self terms are computed once. Metrics without it
    re-prepare B from ``y[perm]`` (A's state is reused), in ``jobs`` worker processes.
    The numbers do not depend on ``jobs``. ``groups`` (a cluster id per row, clusters
    contiguous): whole clusters are permuted among clusters of the same size
    (:func:`cluster_permutation`), e.g. sequences of equal length under ``pool tokens``.
    """
    seed = _check_seed(seed)
    if n_permutations < 1:
        raise RepsimError(f"permutations must be >= 1, got {n_permutations}")
    if jobs < 1:
        raise RepsimError(f"jobs must be >= 1, got {jobs}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    _check_pair(x, y)
    job = _Job(metric, x, y, prep_a, prep_b, fast)
    if observed is None:
        observed = float(metric.pair(job.prep_a, job.prep_b).value)
    chunks = _chunks(n_permutations, jobs)
    if groups is not None and len(groups) != x.shape[0]:
        raise RepsimError(f"groups has {len(groups)} entries for {x.shape[0]} rows")
    parts = _run(job, "permutations", [(seed, s, e, groups) for s, e in chunks], [e - s for s, e in chunks], jobs, progress)
    null = np.concatenate(parts)
    result = PermutationResult(
        float(observed), null, permutation_pvalue(observed, null, metric.higher_is_similar), metric.higher_is_similar, seed
    )
    if result.z is None:
        result.warnings.append(
            f"{metric.spec}: the permutation null has no spread (all {null.size} values equal "
            f"{result.null_mean:.6g}); z-score undefined"
        )
    if groups is not None and distinct_cluster_permutations(groups) < 2 * n_permutations:
        result.warnings.append(
            f"{metric.spec}: sequences are permuted only among sequences of equal length; these lengths allow "
            f"{distinct_cluster_permutations(groups):.0f} distinct permutations for {n_permutations} drawn, so the null repeats itself"
        )
    if 1.0 / (n_permutations + 1) > 0.05:
        result.warnings.append(
            f"with {n_permutations} permutations the smallest possible p-value is 1/{n_permutations + 1} "
            f"= {1.0 / (n_permutations + 1):.3g}; use permutations 99 or more"
        )
    return result


# --------------------------------------------------------------------------- bootstrap interval


@dataclass
class BootstrapResult:
    """Interval of one comparison: percentile or BCa bootstrap (same resampled rows on both sides),
    or the delete-one jackknife normal interval (``ci_method``; see :mod:`repsim_cli.stats.intervals`)."""

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
        raise RepsimError(f"ci must lie in (0, 1), got {ci}")


def _tail_warning(count: int, ci: float, what: str) -> list[str]:
    tail = count * (1.0 - ci) / 2.0
    if tail < 5:
        return [f"each end of the {ci:g} interval rests on {tail:.3g} of {count} {what}; use more resamples"]
    return []


def _interval_method(metric: Any, unique: bool, ci_method: str | None, groups: np.ndarray | None, n_boot: int, jobs: int) -> str:
    """The interval method to use (checked): the metric's default unless given; rows grouped into
    sequences never take the jackknife (deleting one token of a sequence is not a resample)."""
    from repsim_cli.stats import intervals

    method = intervals.default_ci_method(metric, unique) if ci_method is None else intervals.check_ci_method(ci_method)
    if groups is not None and method == "jackknife":
        if ci_method == "jackknife":
            raise RepsimError("ci_method=jackknife deletes single rows; with rows grouped into sequences (pool tokens) use percentile or bca")
        method = "percentile"  # the cluster bootstrap resamples whole sequences
    if n_boot < 2 and method != "jackknife":
        raise RepsimError(f"ci_method={method} resamples the inputs; use bootstrap 2 or more (got {n_boot}), or ci_method=jackknife")
    if jobs < 1:
        raise RepsimError(f"jobs must be >= 1, got {jobs}")
    return method


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
    groups: np.ndarray | None = None,
    ci_method: str | None = None,
) -> BootstrapResult:
    """Interval of ``metric(x, y)``: percentile or BCa bootstrap, or the delete-one jackknife.

    ``ci_method`` (:data:`repsim_cli.stats.intervals.CI_METHODS`; None: :func:`~repsim_cli.stats.intervals.
    default_ci_method`, i.e. ``jackknife`` for the indexes resampled with duplicated rows, whose
    value shifts with the number of distinct inputs, ``percentile`` for the others). ``jackknife``
    draws no bootstrap resample: estimate +- z se from N delete-one values (downdates for moment
    metrics, see :mod:`repsim_cli.stats.intervals`). ``bca`` uses the B resamples and the jackknife's
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
    ``groups`` (a cluster id per row, clusters contiguous) resamples whole clusters instead of
    rows (cluster bootstrap): the tokens of one sequence move together under ``pool tokens``.
    """
    from repsim_cli.stats import intervals

    seed = _check_seed(seed)
    _check_ci(ci)
    unique = needs_distinct_rows(metric) if unique_rows is None else bool(unique_rows)
    method = _interval_method(metric, unique, ci_method, groups, n_boot, jobs)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    _check_pair(x, y)
    if method == "jackknife":
        lo, hi, jk, notes = intervals.jackknife_interval(metric, x, y, ci, observed, seed)
        if progress and n_boot:
            progress(n_boot)
        return BootstrapResult(jk.values, ci, lo, hi, n_boot, unique, seed, notes, "jackknife", jk.se)
    job = _Job(metric, x, y)
    chunks = _chunks(n_boot, jobs)
    if groups is not None and len(groups) != x.shape[0]:
        raise RepsimError(f"groups has {len(groups)} entries for {x.shape[0]} rows")
    parts = _run(job, "bootstrap", [(seed, s, e, unique, groups) for s, e in chunks], [e - s for s, e in chunks], jobs, progress)
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
        jk = intervals.jackknife(metric, x, y, observed, seed=seed)
        lo, hi, notes = intervals.bca_interval(finite, observed, jk.acceleration, ci)
        se = jk.se
        warnings += notes + ([intervals.recompute_note(metric, jk, x.shape[0])] if jk.route != "downdate" else [])
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
