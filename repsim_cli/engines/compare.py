"""Engines: which layers to compare, loading them once, and computing records with reused work.

Math lives in :mod:`repsim_cli.metrics` and :mod:`repsim_cli.stats`; this module decides what
to compute and in which order, loads each layer once, prepares each (layer, metric) once and
turns results into records. It never prints; progress is reported through a callback.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.io.layers import (
    TOKEN_POOLS,
    Layer,
    LayerRef,
    check_same_n,
    choose_rows,
    has_token_axis,
    load_layer,
    select_layers,
    split_selector,
)
from repsim_cli.metrics import BoundMetric, MetricResult
from repsim_cli.results import make_record

Progress = Callable[[int], None]


@dataclass(frozen=True)
class LoadOptions:
    """How to turn stored arrays into N x F matrices (shared by every side of a command)."""

    max_samples: int | None = None
    seed: int = 0
    samples: str | np.ndarray | None = None  # an .npy file of row indices, or the indices
    pool: str = "none"
    channel_axis: int = 1
    max_gram: int = 20000


def pair_layers(a_arg: str, b_arg: str) -> tuple[list[tuple[LayerRef, LayerRef]], list[str]]:
    """The layer pairs ``compare A B`` means for two ``FILE[:LAYER]`` selectors (see :func:`pair_refs`)."""
    return pair_refs(select_layers(a_arg), select_layers(b_arg), split_selector(a_arg)[0], split_selector(b_arg)[0], a_arg, b_arg)


def pair_refs(
    a_refs: Sequence[LayerRef], b_refs: Sequence[LayerRef], a_name: str = "A", b_name: str = "B",
    a_arg: str | None = None, b_arg: str | None = None,
) -> tuple[list[tuple[LayerRef, LayerRef]], list[str]]:
    """The layer pairs two sides mean, and notes naming layers left unpaired.

    One layer each: that pair. Otherwise same-named layers, in A's order; no shared names
    is an error listing both sides (a full grid is ``heatmap``).
    """
    a_arg, b_arg = a_arg or a_name, b_arg or b_name
    if len(a_refs) == 1 and len(b_refs) == 1:
        return [(a_refs[0], b_refs[0])], []
    if len(a_refs) == 1 or len(b_refs) == 1:
        return _pair_one_with_many(a_refs, b_refs, a_arg, b_arg), []
    b_by_name = {r.name: r for r in b_refs}
    pairs = [(a, b_by_name[a.name]) for a in a_refs if a.name in b_by_name]
    if not pairs:
        raise RepsimError(
            f"no layer names shared between {a_name} ({', '.join(r.name for r in a_refs)}) "
            f"and {b_name} ({', '.join(r.name for r in b_refs)}); "
            "select layers with FILE:LAYER or use heatmap for a layer x layer grid"
        )
    only_a = [r.name for r in a_refs if r.name not in b_by_name]
    paired = {a.name for a, _ in pairs}
    only_b = [r.name for r in b_refs if r.name not in paired]
    notes = []
    if only_a or only_b:  # nothing is skipped silently
        sides = (("A", only_a), ("B", only_b))
        notes.append(
            f"comparing the {len(pairs)} layers present on both sides; "
            + "; ".join(f"only in {side}: {', '.join(names)}" for side, names in sides if names)
        )
    return pairs, notes


def _pair_one_with_many(a_refs: Sequence[LayerRef], b_refs: Sequence[LayerRef], a_arg: str, b_arg: str) -> list[tuple[LayerRef, LayerRef]]:
    """One layer on one side, several on the other: the same-named one, else an error."""
    one, many = (a_arg, b_arg) if len(a_refs) == 1 else (b_arg, a_arg)
    many_refs = b_refs if len(a_refs) == 1 else a_refs
    single = a_refs if len(a_refs) == 1 else b_refs
    shared = [r for r in many_refs if r.name == single[0].name]
    if shared:
        return [(single[0], shared[0])] if len(a_refs) == 1 else [(shared[0], single[0])]
    raise RepsimError(
        f"{one} selects one layer but {many} selects {len(many_refs)} ({', '.join(r.name for r in many_refs)}); "
        f"select one layer on each side with FILE:LAYER, or use heatmap for a grid"
    )


@dataclass
class LayerCache:
    """Loads each layer once and prepares each (layer, metric) once."""

    options: LoadOptions
    rows: np.ndarray | None = None
    min_samples: int = 2
    _layers: dict[tuple[str, str], Layer] = field(default_factory=dict)
    _prepared: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    @classmethod
    def for_refs(cls, refs: Sequence[LayerRef], options: LoadOptions, min_samples: int = 2) -> LayerCache:
        n = check_same_n(refs)
        rows = choose_rows(n, options.max_samples, options.seed, options.samples)
        return cls(options, rows, min_samples)

    @property
    def n_samples(self) -> int | None:
        return None if self.rows is None else len(self.rows)

    def layer(self, ref: LayerRef) -> Layer:
        key = (ref.file, ref.name)
        if key not in self._layers:
            self._layers[key] = load_layer(
                ref, self.rows, self.options.pool, self.options.channel_axis, self.min_samples
            )
        return self._layers[key]

    def prepared(self, ref: LayerRef, metric: BoundMetric) -> Any:
        key = (ref.file, ref.name, metric.spec)
        if key not in self._prepared:
            data = self.layer(ref).data
            check_gram(metric, data.shape[0], self.options.max_gram, ref.label)
            try:
                self._prepared[key] = metric.prepare(data)
            except RepsimError as exc:  # say which layer: the metric only saw an array
                raise RepsimError(f"{ref.label} (shape {ref.shape}), metric {metric.spec}: {exc}") from None
        return self._prepared[key]

    def release(self, ref: LayerRef) -> None:
        """Drop a layer and its prepared states (bounded memory over long lists of pairs)."""
        self._layers.pop((ref.file, ref.name), None)
        for key in [k for k in self._prepared if k[:2] == (ref.file, ref.name)]:
            del self._prepared[key]


def check_gram(metric: BoundMetric, n: int, max_gram: int, label: str) -> None:
    """Refuse N x N metrics above ``max_gram`` inputs, saying how much memory they would need."""
    if metric.gram and n > max_gram:
        size = 8.0 * n * n
        human = f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"
        raise RepsimError(
            f"{label}: metric {metric.spec} builds N x N matrices; N={n} needs about {human} per matrix, "
            f"above max_gram {max_gram}; use max_samples or raise max_gram"
        )


def base_record(
    a: Layer, b: Layer, metric: BoundMetric, result: MetricResult, details: bool = False
) -> dict[str, Any]:
    """The record of one computed pair (see :func:`repsim_cli.results.make_record`)."""
    shown = None
    if result.details:
        shown = result.details if details else {k: v for k, v in result.details.items() if not isinstance(v, list)}
    return make_record(
        a.label, b.label, metric, result.value, a.data.shape[0], a.data.shape[1], b.data.shape[1],
        shape_a=list(a.ref.shape) if a.ref.shape != a.data.shape else None,
        shape_b=list(b.ref.shape) if b.ref.shape != b.data.shape else None,
        details=shown or None,
        warnings=[*a.warnings, *b.warnings, *result.warnings],
    )


def compare_pairs(
    pairs: Sequence[tuple[LayerRef, LayerRef]],
    metrics: Sequence[BoundMetric],
    options: LoadOptions,
    details: bool = False,
    permutations: int = 0,
    bootstrap: int = 0,
    ci: float = 0.95,
    jobs: int = 1,
    progress: Progress | None = None,
    chance: bool = False,
    ci_method: str | None = None,
) -> list[dict[str, Any]]:
    """Records for every (pair, metric), in pair order then metric order.

    ``chance``: add the exact permutation moments of cka/hsic (``metrics.chance.CHANCE_KEYS``;
    None, with a warning, for other metrics), from the prepared states the value used.
    An interval is added when ``bootstrap`` > 0 or ``ci_method='jackknife'`` (which draws no
    resample); ``ci_method`` None picks each metric's default (:mod:`repsim_cli.stats.intervals`).
    """
    from repsim_cli import stats
    from repsim_cli.metrics.chance import chance_fields, supports_chance, unsupported_note

    refs = [r for pair in pairs for r in pair]
    cache = LayerCache.for_refs(refs, options, min_samples=max(m.min_n for m in metrics))
    records = []
    for a_ref, b_ref in pairs:
        a, b = cache.layer(a_ref), cache.layer(b_ref)
        for metric in metrics:
            prep_a, prep_b = cache.prepared(a_ref, metric), cache.prepared(b_ref, metric)
            result = pair_named(metric, prep_a, prep_b, a.label, b.label)
            record = base_record(a, b, metric, result, details)
            if chance:
                record.update(chance_fields(metric, prep_a, prep_b, result))
                if not supports_chance(metric):
                    record["warnings"] = list(dict.fromkeys([*record["warnings"], unsupported_note(metric)]))
            if permutations or bootstrap:
                _check_same_groups(a, b)
            if permutations:
                null = stats.permutation_null(  # pool tokens: whole sequences move, among equal lengths (groups)
                    metric, a.data, b.data, permutations, seed=options.seed, prep_a=prep_a, prep_b=prep_b,
                    observed=result.value, jobs=jobs, progress=progress, groups=a.groups,
                )
                record.update(null.as_record())
                record["warnings"] = list(dict.fromkeys([*record["warnings"], *null.warnings]))
            if bootstrap or ci_method == "jackknife":
                boot = stats.bootstrap_interval(  # pool tokens: whole sequences are resampled (groups)
                    metric, a.data, b.data, bootstrap, ci=ci, seed=options.seed, jobs=jobs, progress=progress,
                    observed=result.value, groups=a.groups, ci_method=ci_method,
                )
                record.update(boot.as_record())
                record["warnings"] = list(dict.fromkeys([*record["warnings"], *boot.warnings]))
            records.append(record)
            if progress and not (permutations or bootstrap):
                progress(1)
        cache.release(a_ref)
        cache.release(b_ref)
    return records


def _check_same_groups(a: Layer, b: Layer) -> None:
    """pool tokens: both sides must come from the same sequences (same attention_mask) to resample them."""
    if (a.groups is not None or b.groups is not None) and not (
        a.groups is not None and b.groups is not None and np.array_equal(a.groups, b.groups)
    ):
        raise RepsimError(f"{a.label} vs {b.label}: pool tokens needs the same attention_mask on both sides to resample sequences")


def physical_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        return 8 * 2**30


def in_memory_bytes(a: LayerRef, b: LayerRef, options: LoadOptions) -> int:
    """Rough peak of the in-memory path: both layers in float64, plus a centered copy of each."""
    n = a.n_samples
    return 16 * n * (a.features(options.pool, options.channel_axis) + b.features(options.pool, options.channel_axis))


def stream_route(a: LayerRef, b: LayerRef, options: LoadOptions) -> tuple[str, int]:
    """How one pair streams, and the memory that route keeps.

    ``features``: row blocks, the F x F second moments (O(F_A^2 + F_B^2 + F_A F_B)).
    ``gram``: column blocks, each centered exactly, accumulated into the two N x N Gram matrices
    (O(N^2)) -- the route for layers much wider than N (flattened conv maps).
    """
    fa, fb = a.features(options.pool, options.channel_axis), b.features(options.pool, options.channel_axis)
    n = a.n_samples
    moments = 8 * (fa * fa + fb * fb + fa * fb)
    grams = 8 * 3 * n * n  # two Grams and one U-centered copy
    return ("gram", grams) if grams < moments else ("features", moments)


def should_stream(
    pairs: Sequence[tuple[LayerRef, LayerRef]],
    metrics: Sequence[BoundMetric],
    options: LoadOptions,
    nulls: bool,
    stream: bool | None,
) -> bool:
    """Stream when asked, or automatically when a pair would not fit in half the RAM in memory.

    Only linear CKA streams (see :func:`stream_route`); nulls and row subsets need the data in memory.
    """
    masked = options.pool in TOKEN_POOLS or (options.pool == "mean" and any(has_token_axis(r) for p in pairs for r in p))
    streamable = all(m.name == "cka" and m.params["kernel"] == "linear" and not m.params["adjusted"] for m in metrics) and not masked
    subset = options.max_samples is not None or options.samples is not None
    keeps = max(stream_route(a, b, options)[1] for a, b in pairs)
    if stream:
        if keeps > physical_memory_bytes() // 2:
            raise RepsimError(
                f"stream would keep {keeps / 2**30:.1f} GiB of F x F moments or N x N Gram matrices; "
                "reduce F with pool mean (conv maps) or N with max_samples (without stream)"
            )
        if not streamable:
            other = ", ".join(
                m.spec for m in metrics if not (m.name == "cka" and m.params["kernel"] == "linear" and not m.params["adjusted"])
            )
            raise RepsimError(f"stream supports linear cka only (cka, cka:debiased=true), not {other}")
        if nulls or subset:
            raise RepsimError(
                "stream reads every row once; it cannot be combined with nulls (permutations/bootstrap/chance) "
                "or a row subset (max_samples/samples)"
            )
        return True
    if stream is False or not streamable or nulls or subset or keeps > physical_memory_bytes() // 4:
        return False
    return max(in_memory_bytes(a, b, options) for a, b in pairs) > physical_memory_bytes() // 2


def compare_streamed(
    pairs: Sequence[tuple[LayerRef, LayerRef]],
    metrics: Sequence[BoundMetric],
    options: LoadOptions,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Linear CKA records computed by streaming each pair (see :mod:`repsim_cli.streaming`)."""
    from repsim_cli.engines.streaming import gram_cka, streamed_centered_gram, streamed_hsic

    if check_same_n([r for pair in pairs for r in pair]) < 4:
        raise RepsimError(f"streaming CKA needs at least 4 inputs, got N={pairs[0][0].n_samples}")
    records = []
    for a, b in pairs:
        route, _ = stream_route(a, b, options)
        if route == "features":
            moments = streamed_hsic(a, b, options.pool, options.channel_axis)
            value = moments.cka
        else:
            ka = streamed_centered_gram(a, options.pool, options.channel_axis)
            kb = streamed_centered_gram(b, options.pool, options.channel_axis)
            value = functools.partial(gram_cka, ka, kb)
        for metric in metrics:
            try:
                v = value(metric.params["debiased"])
            except RepsimError as exc:
                raise RepsimError(f"{a.label} vs {b.label}, metric {metric.spec} (streamed by {route}): {exc}") from None
            if not np.isfinite(v):
                raise RepsimError(
                    f"{a.label} vs {b.label}, metric {metric.spec} (streamed by {route}): the value is {v} (not finite): the streamed "
                    "moments overflowed or divided by zero"
                )
            records.append(make_record(
                a.label, b.label, metric, v, a.n_samples,
                a.features(options.pool, options.channel_axis), b.features(options.pool, options.channel_axis),
                details={"streamed": route},
            ))
            if progress:
                progress(1)
    return records


def pair_named(metric: BoundMetric, prep_a: Any, prep_b: Any, a_label: str, b_label: str, where: str = "") -> Any:
    """``metric.pair`` whose errors (rank 0, NaN, ...) name both layers, the metric and where (e.g. a permutation)."""
    try:
        return metric.pair(prep_a, prep_b)
    except RepsimError as exc:
        raise RepsimError(f"{a_label} vs {b_label}, metric {metric.spec}{where}: {exc}") from None


def thresholds_crossed(
    records: Sequence[dict[str, Any]], fail_below: Any = None, fail_above: Any = None
) -> list[str]:
    """Human-readable list of records that cross a CI gate (empty if none); see :mod:`repsim_cli.gates`."""
    from repsim_cli import gates

    return gates.crossed(gates.parse_gates(fail_below, fail_above), records)


def compare_layers(
    pairs: Sequence[tuple[LayerRef, LayerRef]],
    metrics: Sequence[BoundMetric],
    options: LoadOptions,
    *,
    details: bool = False,
    permutations: int = 0,
    bootstrap: int = 0,
    ci: float = 0.95,
    jobs: int = 1,
    stream: bool | None = None,
    progress: Progress | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    block_rows: int | None = None,
    max_memory: int | None = None,
    chance: bool = False,
    ci_method: str | None = None,
) -> list[dict[str, Any]]:
    """Records for every (pair, metric): streamed when asked or when the layers would not fit, else in memory.

    Streaming (row blocks into merged moments, :mod:`repsim_cli.engines.moments`) runs locally or,
    with ``engine="dask"``, on a dask cluster (``scheduler`` or a new LocalCluster of ``workers``).
    ``chance``: exact permutation moments of cka/hsic in each record (needs the data in memory).
    """
    from repsim_cli.stats.intervals import check_ci_method

    if ci_method is not None:
        check_ci_method(ci_method)
        if ci_method != "jackknife" and bootstrap < 2:
            raise RepsimError(f"ci_method={ci_method} resamples the inputs; use bootstrap 2 or more (got {bootstrap}), or ci_method=jackknife")
    if permutations < 0 or bootstrap < 0:
        raise RepsimError(f"permutations and bootstrap must be >= 0, got {permutations} and {bootstrap}")
    if not 0 < ci < 1:
        raise RepsimError(f"ci must lie in (0, 1), got {ci}")
    if jobs < 1:
        raise RepsimError(f"jobs must be >= 1, got {jobs}")
    if not metrics:
        raise RepsimError("no metric given")
    if chance:
        from repsim_cli.metrics.chance import supports_chance

        if not any(supports_chance(m) for m in metrics):
            raise RepsimError(
                "chance is available for cka and hsic (biased estimators) only, not "
                + ", ".join(m.spec for m in metrics) + "; use permutations or a cka/hsic metric"
            )
        if stream:
            raise RepsimError("chance needs the data in memory; it cannot be combined with stream")
    from repsim_cli.engines.moments import compare_with_moments

    streamed = None if chance else compare_with_moments(
        pairs, metrics, options, nulls=bool(permutations or bootstrap or ci_method), stream=stream, engine=engine,
        scheduler=scheduler, workers=workers, block_rows=block_rows, max_memory=max_memory, details=details,
        progress=progress,
    )
    if streamed is not None:
        return streamed
    return compare_pairs(
        pairs, metrics, options, details=details, permutations=permutations, bootstrap=bootstrap,
        ci=ci, jobs=jobs, progress=progress, chance=chance, ci_method=ci_method,
    )


def count_steps(pairs: Sequence[Any], metrics: Sequence[BoundMetric], permutations: int, bootstrap: int) -> int:
    """Progress steps of :func:`compare_layers`."""
    return len(pairs) * len(metrics) * max(1, permutations + bootstrap)
