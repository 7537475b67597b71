"""Engines for the moment route: row blocks read once, summarized, merged (streamed or on dask).

Every metric with a moment route (``BoundMetric.streamable``) is computed from one
:class:`~repsim_cli.metrics.moments.Moments` summary of the layers it compares: the layers' row
blocks are read side by side (memory: the F x F summary plus one block), summarized in float64 and
merged exactly (Chan, Golub & LeVeque 1979). Three ways to get the summary:

- :func:`stream_moments`: one process, blocks in order;
- :func:`repsim_cli.engines.dask.dask_moments`: one task per block on a dask.distributed cluster;
  each task opens the file itself and reads only its rows (so the path must be visible to the
  workers), partial summaries are tree-reduced on the cluster;
- in memory: :func:`repsim_cli.metrics.moments.moments_of`.

A grid (``heatmap``) summarizes all its layers at once -- one symmetric product of the
concatenated blocks per block -- and slices every cell's pair out of it (:meth:`Moments.select`).
Minibatch CKA (``cka:minibatch=B``) has its own mergeable sums (:class:`MinibatchSums`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics.moments import Moments

#: target size of one row block of all layers together, in float64 bytes
BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Source:
    """What a worker needs to read a layer's rows: picklable, no open file handles."""

    file: str
    name: str
    kind: str
    shape: tuple[int, ...]
    label: str
    pool: str = "none"
    channel_axis: int = 1

    @classmethod
    def of(cls, ref: Any, pool: str = "none", channel_axis: int = 1) -> Source:
        return cls(ref.file, ref.name, ref.kind, tuple(ref.shape), ref.label, pool, channel_axis)

    @property
    def n(self) -> int:
        return int(self.shape[0])

    @property
    def features(self) -> int:
        from repsim_cli.io.layers import pooled_shape

        return int(np.prod(pooled_shape(self.shape, self.pool, self.channel_axis, self.label)[1:]))


def read_row_range(file: str, kind: str, name: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of one stored array, in its stored dtype (through the single reader)."""
    from repsim_cli.io.arrays import iter_row_blocks

    blocks = list(iter_row_blocks(file, kind, name, (stop - start, 1), 1, block_bytes=2**62, start=start, stop=stop))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def row_chunk(file: str, kind: str, name: str) -> int | None:
    """Rows per stored chunk (HDF5/zarr chunked arrays), else None."""
    from repsim_cli.io.arrays import list_arrays

    if kind == "memory":
        return None
    try:
        infos, _ = list_arrays(file)
    except RepsimError:
        return None
    chunks = next((i.chunks for i in infos if i.name == name), None)
    return int(chunks[0]) if chunks else None


def read_rows(src: Source, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of a layer as a float64 N x F matrix (pooled/flattened), checked finite."""
    from repsim_cli.io.layers import to_matrix

    block = read_row_range(src.file, src.kind, src.name, start, stop)
    mat = to_matrix(block, src.pool, src.channel_axis, src.label)
    if not np.isfinite(mat).all():
        raise RepsimError(f"{src.label} (shape {src.shape}): NaN or infinite values in the data")
    return mat


def read_selected_rows(src: Source, rows: np.ndarray) -> np.ndarray:
    """Some rows of a layer, in the order given (read sorted, then reordered), as a float64 matrix, checked finite."""
    from repsim_cli.io.arrays import read_array
    from repsim_cli.io.layers import to_matrix

    mat = to_matrix(read_array(src.file, src.kind, src.name, rows), src.pool, src.channel_axis, src.label)
    if not np.isfinite(mat).all():
        raise RepsimError(f"{src.label} (shape {src.shape}): NaN or infinite values in the data")
    return mat


def block_moments(sources: Sequence[Source], start: int, stop: int, buffer: np.ndarray | None = None) -> Moments:
    """Summary of rows [start, stop) of every layer (the unit of work of every engine).

    The layers' rows are cast straight into one float64 block [X_1 ... X_k] (``buffer`` is reused
    across blocks when given); a NaN or infinity anywhere makes its column's mean non-finite, which
    is checked once per block instead of scanning the data again.
    """
    from repsim_cli.io.layers import to_matrix

    splits = tuple(int(c) for c in np.cumsum([0, *(s.features for s in sources)]))
    rows = stop - start
    if buffer is not None and buffer.shape[0] >= rows and buffer.shape[1] == splits[-1]:
        z = buffer[:rows]
    else:
        z = np.empty((rows, splits[-1]))
    for s, lo, hi in zip(sources, splits[:-1], splits[1:]):
        raw = read_row_range(s.file, s.kind, s.name, start, stop)
        if raw.ndim > 2 and s.pool == "mean":
            z[:, lo:hi] = to_matrix(raw, s.pool, s.channel_axis, s.label)
        else:
            z[:, lo:hi] = raw.reshape(rows, -1)  # casts to float64 in the copy
    moments = Moments.from_concatenated(z, splits)
    if not np.isfinite(moments.mean).all():
        bad = int(np.searchsorted(splits, int(np.flatnonzero(~np.isfinite(moments.mean))[0]), side="right")) - 1
        src = sources[bad]
        raise RepsimError(f"{src.label} (shape {src.shape}): NaN or infinite values in the data (rows {start}:{stop})")
    return moments


def row_blocks(n: int, block_rows: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) ranges of ``block_rows`` rows (the last one may be shorter)."""
    step = max(1, int(block_rows))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def default_block_rows(sources: Sequence[Source], target_bytes: int = BLOCK_BYTES) -> int:
    """About ``target_bytes`` of float64 rows of all layers, rounded to the stored chunking if any."""
    per_row = 8 * max(1, sum(s.features for s in sources))
    rows = max(1, target_bytes // per_row)
    chunk = max((row_chunk(s.file, s.kind, s.name) or 1) for s in sources)
    if chunk > 1 and rows >= chunk:
        rows -= rows % chunk
    return int(rows)


def _check_sources(sources: Sequence[Source]) -> int:
    ns = {s.n for s in sources}
    if len(ns) != 1:
        raise RepsimError("layers index different numbers of inputs: " + ", ".join(f"{s.label} N={s.n}" for s in sources))
    return ns.pop()


def stream_moments(
    sources: Sequence[Source], block_rows: int | None = None, progress: Callable[[int], None] | None = None
) -> Moments:
    """One sequential pass over the rows; memory O((sum F)^2 + one block)."""
    n = _check_sources(sources)
    total: Moments | None = None
    blocks = row_blocks(n, block_rows or default_block_rows(sources))
    buffer = np.empty((blocks[0][1] - blocks[0][0], sum(s.features for s in sources))) if blocks else None
    for start, stop in blocks:
        part = block_moments(sources, start, stop, buffer)
        total = part if total is None else total.merge(part)
        if progress:
            progress(stop - start)
    if total is None:
        raise RepsimError(f"{sources[0].label}: no rows to read")
    return total


# ------------------------------------------------------------------------------ minibatch CKA


@dataclass
class MinibatchSums:
    """Sums over whole minibatches of the three unbiased HSICs (Nguyen et al. 2021): merged by addition."""

    batches: int = 0
    cross: float = 0.0
    self_a: float = 0.0
    self_b: float = 0.0

    def merge(self, other: MinibatchSums) -> MinibatchSums:
        return MinibatchSums(
            self.batches + other.batches, self.cross + other.cross, self.self_a + other.self_a, self.self_b + other.self_b
        )

    def value(self) -> float:
        from repsim_cli.metrics.cka import _ratio

        if not self.batches:
            raise RepsimError("minibatch CKA: no complete minibatch")
        return float(_ratio(self.cross / self.batches, self.self_a / self.batches, self.self_b / self.batches, True))


def minibatch_sums(sources: Sequence[Source], start: int, stop: int, params: Mapping[str, Any]) -> MinibatchSums:
    """Sums over the complete minibatches of B rows inside rows [start, stop) (start a multiple of B)."""
    from repsim_cli.metrics.cka import _kernel_prepare, hsic_scale, hsic_terms

    size = int(params["minibatch"])
    full = {**params, "minibatch": 0, "debiased": True}
    if params.get("shuffle", -1) >= 0:  # positions start:stop of the seeded row order
        from repsim_cli.metrics.cka import shuffled_order

        rows = shuffled_order(sources[0].n, int(params["shuffle"]))[start:stop]
        x, y = (read_selected_rows(s, rows) for s in sources)
    else:
        x, y = (read_rows(s, start, stop) for s in sources)
    out = MinibatchSums()
    for b0 in range(0, (stop - start) // size * size, size):
        pa, pb = _kernel_prepare(x[b0 : b0 + size], full), _kernel_prepare(y[b0 : b0 + size], full)
        c, sa, sb = (t * hsic_scale(size, True) for t in hsic_terms(pa, pb, True))
        out = out.merge(MinibatchSums(1, c, sa, sb))
    return out


def minibatch_blocks(n: int, size: int, block_rows: int | None) -> list[tuple[int, int]]:
    """Row ranges made of whole minibatches (the trailing partial batch is dropped, as in memory)."""
    per = max(1, (block_rows or size) // size) * size
    usable = n // size * size if n >= size else 0
    return [(a, min(usable, a + per)) for a in range(0, usable, per)]


# ------------------------------------------------------------------------------ records


def summary_bytes(features: Sequence[int], block_rows: int) -> int:
    """Peak memory of a pass: ~3 copies of the (sum F)^2 summary (merge temporaries) and two blocks."""
    total = int(sum(features))
    return 8 * (3 * total * total + 2 * block_rows * total)


class MomentRunner:
    """Computes summaries with one engine: ``stream`` (sequential) or ``dask`` (a client)."""

    def __init__(self, engine: str = "stream", client: Any = None, block_rows: int | None = None) -> None:
        if engine not in ("stream", "dask"):
            raise RepsimError(f"--engine must be memory, stream or dask, got {engine!r}")
        self.engine, self.client, self.block_rows = engine, client, block_rows

    def moments(self, sources: Sequence[Source], progress: Callable[[int], None] | None = None) -> Moments:
        if self.engine == "dask":
            from repsim_cli.engines.dask import dask_moments

            return dask_moments(sources, self.client, self.block_rows)
        return stream_moments(sources, self.block_rows, progress)

    def minibatch(self, sources: Sequence[Source], params: Mapping[str, Any]) -> MinibatchSums:
        n = _check_sources(sources)
        size = min(int(params["minibatch"]), n)
        if size < 4:
            raise RepsimError(f"cka: minibatch={params['minibatch']} rows; the unbiased HSIC of a minibatch needs at least 4")
        p = {**params, "minibatch": size}
        blocks = minibatch_blocks(n, size, self.block_rows or max(size, default_block_rows(sources)))
        if self.engine == "dask":
            from repsim_cli.engines.dask import tree_reduce

            futures = [self.client.submit(minibatch_sums, list(sources), a, b, p, pure=False, retries=2) for a, b in blocks]
            return tree_reduce(self.client, futures, MinibatchSums.merge).result()
        total = MinibatchSums()
        for a, b in blocks:
            total = total.merge(minibatch_sums(sources, a, b, p))
        return total


def moment_result(metric: Any, moments: Moments | None, sums: MinibatchSums | None, n: int) -> Any:
    """The metric's result from a pair's summary (or its minibatch sums)."""
    from repsim_cli.metrics.registry import MetricResult

    if metric.name == "cka" and metric.params.get("minibatch"):
        assert sums is not None
        size = min(int(metric.params["minibatch"]), n)
        dropped = n - sums.batches * size
        details: dict[str, Any] = {"minibatches": sums.batches, "batch_rows": size}
        warnings = []
        if dropped:
            details["dropped_rows"] = dropped
            warnings.append(f"minibatch CKA: the last {dropped} of {n} rows do not fill a batch of {size} and are not used")
        return MetricResult(sums.value(), details, warnings)
    assert moments is not None
    return metric.from_moments(moments)


def is_moment_metric(metric: Any) -> bool:
    """True when an engine can compute the metric from row blocks (moments, or minibatch CKA sums)."""
    return bool(metric.streamable or (metric.name == "cka" and metric.params.get("minibatch")))


def pair_record(a: Source, b: Source, metric: Any, result: Any, engine: str, details: bool = False) -> dict[str, Any]:
    """The compare/heatmap record (:func:`repsim_cli.results.make_record`) of a pair computed from row blocks."""
    from repsim_cli.results import make_record

    shown = result.details if details else {k: v for k, v in result.details.items() if not isinstance(v, list)}
    extra: dict[str, Any] = {}
    for key, src in (("shape_a", a), ("shape_b", b)):
        if len(src.shape) > 2:
            extra[key] = list(src.shape)
    return make_record(
        a.label, b.label, metric, result.value, a.n, a.features, b.features,
        **extra, details={**shown, "streamed": "features", "engine": engine}, warnings=result.warnings,
    )


def compare_moments(
    pairs: Sequence[tuple[Source, Source]],
    metrics: Sequence[Any],
    runner: MomentRunner,
    details: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Records of every moment metric for every pair; each pair's rows are read once (plus once per minibatch spec)."""
    records = []
    for a, b in pairs:
        n = _check_sources([a, b])
        moments = runner.moments([a, b]) if any(m.streamable for m in metrics) else None
        for metric in metrics:
            sums = runner.minibatch([a, b], metric.params) if not metric.streamable else None
            try:
                result = moment_result(metric, moments, sums, n)
            except RepsimError as exc:
                raise RepsimError(f"{a.label} vs {b.label}, metric {metric.spec}: {exc}") from None
            records.append(pair_record(a, b, metric, result, runner.engine, details))
            if progress:
                progress(1)
    return records


def grid_moments(rows: Sequence[Source], cols: Sequence[Source], runner: MomentRunner) -> tuple[Moments, list[int], list[int]]:
    """One summary of every distinct layer of a grid (one pass), and each row/column layer's index in it."""
    distinct: list[Source] = []
    index: dict[tuple[str, str], int] = {}
    for s in [*rows, *cols]:
        key = (s.file, s.name)
        if key not in index:
            index[key] = len(distinct)
            distinct.append(s)
    moments = runner.moments(distinct)
    return moments, [index[(s.file, s.name)] for s in rows], [index[(s.file, s.name)] for s in cols]


# ------------------------------------------------------------------------------ planning


STREAMABLE_TEXT = (
    "cka and hsic with kernel=linear, cka:minibatch=B, cca, svcca, pwcca, lr, procrustes, "
    "meanmax and matched with corr=pearson"
)


def parse_bytes(text: str | float | None) -> int | None:
    """A memory size: ``4G``, ``512M``, ``1.5GiB``, ``300K``; a bare number is GiB (``8`` = 8 GiB). None stays None."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        value = float(text) * 2**30
    else:
        s = str(text).strip().upper().removesuffix("IB").removesuffix("B")
        scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(s[-1:], 2**30)
        try:
            value = float(s[:-1] if s[-1:] in ("K", "M", "G", "T") else s) * scale
        except ValueError:
            raise RepsimError(f"max_memory: cannot read {text!r} as a size (e.g. 4G, 512M; a bare number is GiB)") from None
    if not value > 0:
        raise RepsimError(f"max_memory must be > 0, got {text!r}")
    return max(1, int(value))


def default_max_memory() -> int:
    """A quarter of physical RAM."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 4
    except (ValueError, OSError, AttributeError):
        return 2 * 2**30


def refuse_unstreamable(metrics: Sequence[Any], why: str) -> None:
    """One clear line naming the metrics that cannot stream and those that can."""
    bad = [m.spec for m in metrics if not is_moment_metric(m)]
    if bad:
        raise RepsimError(
            f"{why} cannot compute {', '.join(bad)} from row blocks (it needs more than first and second moments); "
            f"metrics that can: {STREAMABLE_TEXT}; or subsample in memory with max_samples "
            "(e.g. kernel CKA), or use cka:minibatch=B"
        )


def choose_engine(
    in_memory_bytes: int,
    summary_bytes_: int,
    metrics: Sequence[Any],
    *,
    stream: bool | None,
    engine: str,
    nulls: bool,
    subset: bool,
    max_memory: int,
) -> str:
    """``memory``, ``stream`` or ``dask``: forced by --stream / --engine dask, else automatic.

    Automatic: stream when the in-memory path would need more than ``max_memory`` and every
    metric has a moment route, without nulls or row subsets, and the summaries fit.
    """
    if engine not in ("local", "dask"):
        raise RepsimError(f"--engine must be local or dask, got {engine!r}")
    forced = bool(stream) or engine == "dask"
    if forced:
        why = "engine='dask'" if engine == "dask" else "stream"
        if stream is False:
            raise RepsimError("engine='dask' streams row blocks; it cannot be combined with stream=False")
        refuse_unstreamable(metrics, why)
        if nulls or subset:
            raise RepsimError(
                f"{why} reads every row once; it cannot be combined with nulls (permutations/bootstrap) "
                "or a row subset (max_samples/samples)"
            )
        if summary_bytes_ > max_memory:
            raise RepsimError(
                f"{why} would keep {summary_bytes_ / 2**30:.2f} GiB of F x F moments, more than max_memory "
                f"{max_memory / 2**30:.2f} GiB; reduce F with pool mean (conv maps), compare fewer layers at once, "
                "or raise max_memory"
            )
        return engine if engine == "dask" else "stream"
    if stream is False or nulls or subset or in_memory_bytes <= max_memory:
        return "memory"
    if any(not is_moment_metric(m) for m in metrics) or summary_bytes_ > max_memory:
        from repsim_cli.errors import warn

        bad = [m.spec for m in metrics if not is_moment_metric(m)]
        why = f"{', '.join(bad)} cannot stream" if bad else "the F x F moments would not fit either"
        warn(
            f"the layers need about {in_memory_bytes / 2**30:.2f} GiB in memory, above max_memory "
            f"{max_memory / 2**30:.2f} GiB, but {why}: computing in memory (max_samples subsamples)"
        )
        return "memory"
    return "stream"


# ------------------------------------------------------------------------------ heatmap


def stream_grid(
    row_refs: Sequence[Any],
    col_refs: Sequence[Any] | None,
    metric: Any,
    pool: str,
    channel_axis: int,
    runner: MomentRunner,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """A :class:`repsim_cli.grid.GridResult` from ONE pass over the rows of every distinct layer.

    The grid engine (:func:`repsim_cli.grid.grid_from_layers`) runs unchanged on stand-in layers
    (shape only, no data) with a metric whose ``prepare`` is the layer's index in the grid
    summary and whose ``pair`` slices that pair's summary (:meth:`Moments.select`). Minibatch CKA
    reads each cell's pair instead (its sums are per pair).
    """
    import dataclasses

    from repsim_cli.engines.grid import grid_from_layers
    from repsim_cli.io.layers import Layer
    from repsim_cli.metrics.registry import BoundMetric

    refuse_unstreamable([metric], "heatmap streaming")
    rows = [Source.of(r, pool, channel_axis) for r in row_refs]
    cols = None if col_refs is None else [Source.of(r, pool, channel_axis) for r in col_refs]
    everything = rows + (cols or [])
    n = _check_sources(everything)
    by_label = {s.label: s for s in everything}
    if metric.streamable:
        summary, _, _ = grid_moments(everything, [], runner)
        index = {s.label: i for i, s in enumerate(dict.fromkeys(everything))}

        def pair(ia: Any, ib: Any, params: Mapping[str, Any]) -> Any:
            return metric.metric.from_moments(summary.select(ia, ib), params)

        prepare: Callable[[Any], Any] = lambda layer: index[layer.label]  # noqa: E731
    else:

        def pair(ia: Any, ib: Any, params: Mapping[str, Any]) -> Any:
            sums = runner.minibatch([by_label[ia], by_label[ib]], params)
            return moment_result(metric, None, sums, n)

        prepare = lambda layer: layer.label  # noqa: E731
    bound = BoundMetric(dataclasses.replace(metric.metric, pair=pair), metric.params)

    def stand_in(ref: Any) -> Any:
        f = Source.of(ref, pool, channel_axis).features
        return Layer(ref, np.broadcast_to(np.zeros((), dtype=np.float64), (n, f)))

    row_layers = [stand_in(r) for r in row_refs]
    col_layers = None if col_refs is None else [stand_in(r) for r in col_refs]
    result = grid_from_layers(row_layers, col_layers, bound, prepare=prepare, progress=progress)
    result.metric = metric
    for record in result.records:
        record["details"] = {**record.get("details", {}), "streamed": "features", "engine": runner.engine}
    return result


# ------------------------------------------------------------------------------ compare entry


def _linear_cka_only(metrics: Sequence[Any]) -> bool:
    return all(m.name == "cka" and m.params["kernel"] == "linear" and not m.params.get("minibatch") for m in metrics)


def auto_block_rows(features: int, n: int, max_memory: int, block_rows: int | None) -> int:
    """``block_rows`` if given, else ~64 MiB of float64 rows, at most an eighth of ``max_memory``, at most N."""
    if block_rows is not None:
        if block_rows < 1:
            raise RepsimError(f"block_rows must be >= 1, got {block_rows}")
        return int(block_rows)
    per_row = 8 * max(1, features)
    return int(max(1, min(n, BLOCK_BYTES // per_row, (max_memory // 8) // per_row)))


def compare_with_moments(
    pairs: Sequence[tuple[Any, Any]],
    metrics: Sequence[Any],
    options: Any,
    *,
    nulls: bool,
    stream: bool | None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    block_rows: int | None = None,
    max_memory: int | None = None,
    details: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]] | None:
    """Records from row blocks when streaming is asked for or needed (see :func:`choose_engine`), else None.

    Linear CKA alone on the local engine keeps its dedicated streamed route
    (:func:`repsim_cli.engines.compare.compare_streamed`, which also has the N x N Gram route for
    layers wider than N); every other set of moment metrics goes through the summaries.
    """
    from repsim_cli.engines import compare as ce

    max_memory = max_memory or ce.physical_memory_bytes() // 4
    if block_rows is not None and block_rows < 1:
        raise RepsimError(f"block_rows must be >= 1, got {block_rows}")
    subset = options.max_samples is not None or options.samples is not None
    in_memory = max(ce.in_memory_bytes(a, b, options) for a, b in pairs)
    feats = [(a.features(options.pool, options.channel_axis), b.features(options.pool, options.channel_axis)) for a, b in pairs]
    n = pairs[0][0].n_samples
    if _linear_cka_only(metrics) and engine == "local":
        keep = max(ce.stream_route(a, b, options)[1] for a, b in pairs)
    else:
        keep = max(summary_bytes(f, auto_block_rows(sum(f), n, max_memory, block_rows)) for f in feats)
    mode = choose_engine(
        in_memory, keep, metrics, stream=stream, engine=engine, nulls=nulls, subset=subset, max_memory=max_memory
    )
    if mode == "memory":
        return None
    if ce.check_same_n([r for pair in pairs for r in pair]) < max(m.min_n for m in metrics):
        raise RepsimError(f"N={n} inputs, {', '.join(m.spec for m in metrics)} needs at least {max(m.min_n for m in metrics)}")
    if mode == "stream" and _linear_cka_only(metrics):
        return ce.compare_streamed(pairs, metrics, options, progress=progress)
    sources = [(Source.of(a, options.pool, options.channel_axis), Source.of(b, options.pool, options.channel_axis)) for a, b in pairs]
    rows = auto_block_rows(max(sum(f) for f in feats), n, max_memory, block_rows)
    if mode == "dask":
        from repsim_cli.engines.dask import connect, require_files

        require_files([s for pair in sources for s in pair])
        client, cluster = connect(scheduler, workers)
        try:
            return compare_moments(sources, metrics, MomentRunner("dask", client, rows), details, progress)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return compare_moments(sources, metrics, MomentRunner("stream", None, rows), details, progress)


# ------------------------------------------------------------------------------ heatmap entry


def heatmap_with_moments(
    row_refs: Sequence[Any],
    col_refs: Sequence[Any] | None,
    metric: Any,
    options: Any,
    *,
    permutations: int,
    stream: bool | None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    block_rows: int | None = None,
    max_memory: int,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """A streamed :class:`~repsim_cli.engines.grid.GridResult` (one pass for the whole grid) when asked or needed, else None."""
    from repsim_cli.engines.grid import estimate_memory

    refs = list(row_refs) + list(col_refs or [])
    distinct = list({(r.file, r.name): r for r in refs}.values())
    feats = [r.features(options.pool, options.channel_axis) for r in distinct]
    n = distinct[0].n_samples
    subset = options.max_samples is not None or options.samples is not None
    rows = auto_block_rows(sum(feats), n, max_memory, block_rows)
    mode = choose_engine(
        estimate_memory(n, feats, metric), summary_bytes(feats, rows), [metric], stream=stream, engine=engine,
        nulls=bool(permutations), subset=subset, max_memory=max_memory,
    )
    if mode == "memory":
        return None
    if n < metric.min_n:
        raise RepsimError(f"N={n} inputs, metric {metric.spec} needs at least {metric.min_n}")
    if mode == "dask":
        from repsim_cli.engines.dask import connect, require_files

        require_files([Source.of(r, options.pool, options.channel_axis) for r in distinct])
        client, cluster = connect(scheduler, workers)
        try:
            runner = MomentRunner("dask", client, rows)
            return stream_grid(row_refs, col_refs, metric, options.pool, options.channel_axis, runner, progress)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    runner = MomentRunner("stream", None, rows)
    return stream_grid(row_refs, col_refs, metric, options.pool, options.channel_axis, runner, progress)


def apply_shuffle_rows(metrics: Sequence[Any], shuffle_rows: bool, seed: int) -> list[Any]:
    """``shuffle_rows``: minibatch CKA batches rows in a seeded order (``shuffle=seed``); other metrics unchanged."""
    if not shuffle_rows:
        return list(metrics)
    out, hit = [], False
    for m in metrics:
        if m.name == "cka" and m.params.get("minibatch") and m.params.get("shuffle", -1) < 0:
            m = m.metric.bind(**{**m.params, "shuffle": int(seed)})
            hit = True
        out.append(m)
    if not hit:
        from repsim_cli.errors import warn

        warn("shuffle_rows only changes minibatch CKA (cka:minibatch=B); no such metric was given")
    return out
