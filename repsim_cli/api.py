"""The Python API: every command is one call here, on arrays, tensors, mappings or files.

``import repsim_cli as rs`` and call :func:`compare`, :func:`heatmap`, :func:`test`,
:func:`inputsim` or :func:`inspect`. The command line is a thin skin over these functions: the
same inputs give the same records, warnings and errors. Errors raise
:class:`~repsim_cli.errors.RepsimError` (a ``ValueError``) with the message the CLI prints;
caveats are issued as :class:`~repsim_cli.errors.RepsimWarning` s; nothing prints to stdout,
and progress (on stderr) appears only with ``progress=True`` (a rich bar) or ``"auto"`` /
``"always"`` (a bar on a terminal, periodic lines elsewhere; see :mod:`repsim_cli.render.progress`).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence, Union

import numpy as np

from repsim_cli.engines import compare as compare_engine
from repsim_cli.engines import grid as grid_engine
from repsim_cli.engines import group as group_engine
from repsim_cli.engines import inputsim as inputsim_engine
from repsim_cli.engines.compare import LoadOptions
from repsim_cli.engines.moments import apply_shuffle_rows, heatmap_with_moments, parse_bytes
from repsim_cli.errors import RepsimError, warn
from repsim_cli.io.budget import advice_scope, budget_scope
from repsim_cli.io.gradients import GradRef, find_labels, resolve_gradients, validate_gradients
from repsim_cli.io.layers import describe_file, split_selector
from repsim_cli.io.sources import MemoryScope, Source, as_array
from repsim_cli.metrics import BoundMetric, parse_metric
from repsim_cli.render.progress import progress as progress_bar
from repsim_cli.render.progress import progress_mode
from repsim_cli.results import Grid, InputSimilarity, Record, Results, TestResult

MetricSpec = Union[str, BoundMetric]  # noqa: UP007 (a runtime alias)
#: a sequence of row indices, or an .npy file holding them
Samples = Union[str, "os.PathLike[str]", Sequence[int], np.ndarray, None]


def _bind(metric: MetricSpec) -> BoundMetric:
    if isinstance(metric, BoundMetric):
        return metric
    if isinstance(metric, str):
        return parse_metric(metric)
    raise TypeError(f"metric: expected a spec string such as 'cka:debiased=true' or a bound metric from rs.metrics, got {type(metric).__name__}")


def _bind_all(metrics: MetricSpec | Sequence[MetricSpec]) -> list[BoundMetric]:
    if isinstance(metrics, (str, BoundMetric)):
        return [_bind(metrics)]
    if not isinstance(metrics, Sequence) or not metrics:
        raise TypeError("metrics: expected a spec string, a bound metric, or a non-empty list of them")
    return [_bind(m) for m in metrics]


def _side_name(source: Any, side: str) -> str:
    """How errors and documents name a side: its file, or A / B."""
    return split_selector(os.fspath(source))[0] if isinstance(source, (str, os.PathLike)) else side


def _options(seed: int, max_samples: int | None, samples: Samples, pool: str, channel_axis: int, max_gram: int) -> LoadOptions:
    if isinstance(samples, os.PathLike):
        samples = os.fspath(samples)
    if samples is not None and not isinstance(samples, str):
        samples = np.asarray(samples)
    return LoadOptions(max_samples, seed, samples, pool, channel_axis, max_gram)


def _memory_advice(refs: Sequence[Any], stream: bool = False) -> str:
    """What to do when a layer does not fit (only the options this call has and that would help)."""
    parts = ["use max_samples M (a random subset of the rows)"]
    if any(len(r.shape) > 2 for r in refs):
        parts.append("pool mean (average N-D layers over every axis but one)")
    if stream:
        parts.append("stream=True (linear CKA read in row blocks, never whole)")
    return ", or ".join(parts)


def _check_token_rows(pool: str, resampling: Any) -> None:
    """pool tokens makes each real token a row: shuffling single tokens would break the null.

    (compare's permutations and bootstrap move whole sequences, see stats.nulls.cluster_permutation
    and cluster_rows; heatmap's shared permutations and test's bootstrap null do not yet.)
    """
    if pool == "tokens" and resampling:
        raise RepsimError(
            "pool tokens works with compare's permutations and bootstrap (whole sequences move) but not yet with "
            "heatmap permutations or the test bootstrap null; use pool mean, last or first there"
        )


def _issue(warnings: Sequence[str]) -> None:
    for message in dict.fromkeys(warnings):
        warn(message, stacklevel=4)


def compare(
    a: Source,
    b: Source,
    metrics: MetricSpec | Sequence[MetricSpec] = "cka",
    *,
    permutations: int = 0,
    bootstrap: int = 0,
    ci: float = 0.95,
    ci_method: str | None = None,
    seed: int = 0,
    max_samples: int | None = None,
    samples: Samples = None,
    pool: str = "none",
    channel_axis: int = 1,
    stream: bool | None = None,
    progress: bool | str = False,
    details: bool = False,
    jobs: int = 1,
    max_gram: int = 20000,
    chance: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    block_rows: int | None = None,
    max_memory: int | str | None = None,
    shuffle_rows: bool = False,
) -> Results:
    """Similarity of two representations, layer by layer (``repsim compare``).

    ``a``, ``b``: an N x F array (or N-D with ``pool``), anything with ``__array__``, a CPU
    ``torch.Tensor``, a ``FILE`` / ``FILE:LAYER`` path, or a mapping name -> array (several
    layers, paired by name like two files' layers). ``metrics``: a spec such as
    ``"cka:debiased=true"``, a bound metric (``rs.metrics.get_metric("cka").bind()``), or a list.
    ``permutations`` adds a permutation p-value (B's rows shuffled), ``bootstrap`` an interval
    at level ``ci``. ``ci_method``: ``percentile`` (bootstrap quantiles), ``bca`` (Efron's
    bias-corrected and accelerated) or ``jackknife`` (estimate +- z * delete-one jackknife
    standard error; needs no ``bootstrap``); default None: ``jackknife`` for the indexes whose
    bootstrap values shift with the number of distinct inputs (cka, procrustes, the CCA family,
    ...) and ``percentile`` for the others; each record's ``ci_method`` says which. ``seed``
    fixes every random choice (subsets, permutations, resamples) whatever ``jobs``. ``stream`` reads files in row blocks into merged first and second
    moments (every metric with a moment route, see ``repsim metrics``; default: automatic when the
    layers would not fit in ``max_memory``, bytes or ``"4G"``, default a quarter of RAM), in blocks
    of ``block_rows`` rows. ``engine="dask"`` computes the blocks on a dask cluster: ``scheduler``
    (``"tcp://HOST:PORT"``) or a new local cluster of ``workers`` processes; the files must be
    readable by the workers at the same path. ``shuffle_rows``: minibatch CKA (``cka:minibatch=B``)
    batches the rows in a seeded random order (``seed``) instead of consecutively.
    ``chance`` adds, for cka and biased hsic, the exact mean, std and skewness of the metric over
    all row permutations of B (``null_mean_exact``, ``null_std_exact``, ``null_skew_exact``),
    ``z_exact``, the Pearson III ``p_moments`` and the chance-adjusted ``adjusted`` =
    (CKA - E0) / (1 - E0) (None, with a warning, for other metrics; see
    :mod:`repsim_cli.metrics.chance`).

    ``progress``: ``False`` (default), ``True`` (a rich bar), or ``"auto"`` / ``"always"`` /
    ``"never"`` as the CLI's ``--progress``.

    Returns :class:`~repsim_cli.results.Results` (``.value`` for a single record).

    >>> import numpy as np, repsim_cli as rs
    >>> x = np.random.default_rng(0).standard_normal((100, 8))
    >>> round(rs.compare(x, x @ np.linalg.qr(np.random.default_rng(1).standard_normal((8, 8)))[0]).value, 12)
    1.0
    """
    progress_mode(progress)
    bound = apply_shuffle_rows(_bind_all(metrics), shuffle_rows, seed)
    options = _options(seed, max_samples, samples, pool, channel_axis, max_gram)
    with MemoryScope() as mem:
        a_refs, b_refs = mem.layer_refs(a, "A"), mem.layer_refs(b, "B")
        a_name, b_name = _side_name(a, "A"), _side_name(b, "B")
        a_arg = os.fspath(a) if isinstance(a, (str, os.PathLike)) else None
        b_arg = os.fspath(b) if isinstance(b, (str, os.PathLike)) else None
        pairs, notes = compare_engine.pair_refs(a_refs, b_refs, a_name, b_name, a_arg, b_arg)
        _issue(notes)
        total = compare_engine.count_steps(pairs, bound, permutations, bootstrap)
        streams = all(m.name == "cka" and m.params.get("kernel") == "linear" for m in bound) and not (permutations or bootstrap)
        advice = _memory_advice([*a_refs, *b_refs], streams and max_samples is None and samples is None)
        with progress_bar("compare", total, enabled=progress) as advance, advice_scope(advice):
            records = compare_engine.compare_layers(
                pairs, bound, options, details=details, permutations=permutations, bootstrap=bootstrap,
                ci=ci, jobs=jobs, stream=stream, progress=advance, engine=engine, scheduler=scheduler,
                workers=workers, block_rows=block_rows, max_memory=parse_bytes(max_memory), chance=chance, ci_method=ci_method,
            )
    _issue([w for r in records for w in r["warnings"]])
    return Results([Record.from_dict(r) for r in records], seed)


def heatmap(
    a: Source,
    b: Source | None = None,
    metric: MetricSpec = "cka",
    *,
    permutations: int = 0,
    alpha: float = 0.05,
    seed: int = 0,
    max_samples: int | None = None,
    samples: Samples = None,
    pool: str = "none",
    channel_axis: int = 1,
    max_gram: int = 20000,
    max_memory: float | str | None = None,
    image: bool = False,
    progress: bool | str = False,
    chance: bool = False,
    stream: bool | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    block_rows: int | None = None,
    shuffle_rows: bool = False,
) -> Grid:
    """Layer x layer grid of one metric (``repsim heatmap``): rows = A's layers, columns = B's.

    ``a``, ``b``: files (all layers, or ``FILE:GLOB``), mappings name -> array, or lists of
    arrays (layers in order); ``b=None`` compares A's layers with each other (one triangle for
    a symmetric metric). Each layer is loaded and prepared once. With the same number of layers
    on both sides, :attr:`Grid.sanity_check` reports Kornblith et al.'s (2019) check: in how
    many rows the same-index layer is strictly the most similar. ``permutations``: a p-value
    per cell from one shared, seeded set of row permutations, Holm-adjusted over the grid.
    ``image=True``: the grid will be drawn, so refuse it before computing when it is too large
    to draw (``render.images.check_image_grid``: layers per side, pixels).
    ``chance`` (cka, biased hsic): the exact chance level E0 of every cell and its Pearson III
    p-value from the exact permutation moments (:attr:`Grid.chance_mean`, :attr:`Grid.p_moments`,
    :attr:`Grid.above_chance`: Holm-adjusted ``p_moments`` <= ``alpha``).
    ``max_memory`` (GiB, or ``"512M"``; default a quarter of RAM): above it a metric with a moment
    route streams -- ONE pass over the rows of every layer updates the summary of the whole grid
    (``stream=True`` forces it; ``engine``, ``scheduler``, ``workers``, ``block_rows`` as in
    :func:`compare`) -- and other metrics are refused.

    Returns :class:`~repsim_cli.results.Grid` (``.values``, ``.rows``, ``.cols``, ``.plot()``).

    >>> import numpy as np, repsim_cli as rs
    >>> x = np.random.default_rng(0).standard_normal((200, 16))
    >>> grid = rs.heatmap({"in": x, "out": np.tanh(x @ x.T[:, :16])})
    >>> grid.values.shape, float(grid.values[0, 0])
    ((2, 2), 1.0)
    """
    progress_mode(progress)
    bound = apply_shuffle_rows([_bind(metric)], shuffle_rows, seed)[0]
    _check_token_rows(pool, permutations)
    budget = parse_bytes(max_memory) or compare_engine.physical_memory_bytes() // 4
    if chance and stream:
        raise RepsimError("chance needs every layer in memory; it cannot be combined with stream")
    options = _options(seed, max_samples, samples, pool, channel_axis, max_gram)
    with MemoryScope() as mem:
        row_refs = mem.layer_refs(a, "A")
        col_refs = None if b is None else mem.layer_refs(b, "B")
        if image:
            from repsim_cli.render.images import check_image_grid

            check_image_grid(len(row_refs), len(row_refs if col_refs is None else col_refs))
        cells = grid_engine.count_cells(len(row_refs), None if col_refs is None else len(col_refs), bound)
        tested = grid_engine.count_tested(len(row_refs), None if col_refs is None else len(col_refs), bound)
        advice = _memory_advice([*row_refs, *(col_refs or [])]) + ", or fewer layers (FILE:GLOB)"
        with progress_bar("heatmap", cells + permutations * tested, enabled=progress) as advance, \
                advice_scope(advice), budget_scope(budget):
            result = None if chance else heatmap_with_moments(
                row_refs, col_refs, bound, options, permutations=permutations, stream=stream, engine=engine,
                scheduler=scheduler, workers=workers, block_rows=block_rows, max_memory=budget, progress=advance,
            )
            if result is None:
                result = grid_engine.compute_grid(
                    row_refs, col_refs, bound, options, permutations=permutations, alpha=alpha,
                    max_memory_gib=budget / 2**30, progress=advance, chance=chance,
                )
    _issue([*(w for r in result.records for w in r["warnings"]), *result.warnings])
    files = [_side_name(s, "") for s in (a, b) if isinstance(s, (str, os.PathLike))]
    name = lambda s, side: (os.fspath(s) if isinstance(s, (str, os.PathLike)) else side)  # noqa: E731
    return Grid(result, name(a, "A"), None if b is None else name(b, "B"), files)


def test(
    groups: Mapping[str, Sequence[Source]] | Sequence[tuple[str, Sequence[Source]]],
    metric: MetricSpec = "cka",
    *,
    null: str = "labels",
    n_resamples: int = 999,
    ci: float = 0.95,
    seed: int = 0,
    layer: str | None = None,
    max_samples: int | None = None,
    samples: Samples = None,
    pool: str = "none",
    channel_axis: int = 1,
    max_gram: int = 20000,
    progress: bool | str = False,
) -> TestResult:
    """Do groups of runs (e.g. seeds of two training methods) differ more than runs within a group?

    ``groups``: group name -> runs, each run a file (``FILE`` or ``FILE:LAYER``) or a mapping
    name -> array (its layers). Every pair of runs is compared on the layers all runs share
    (``layer``: a name or glob to restrict them); the statistic is mean within-group similarity
    minus mean between-group similarity (sign flipped for distances), per layer and averaged.
    ``null='labels'`` exchanges group labels among runs (exact enumeration when there are at
    most ``n_resamples`` distinct splits); ``null='bootstrap'`` resamples inputs (``ci`` interval).

    Returns :class:`~repsim_cli.results.TestResult` (``.statistic``, ``.p_value``, ``.to_dict()``).

    >>> import numpy as np, repsim_cli as rs
    >>> rng = np.random.default_rng(0)
    >>> base = {"A": rng.standard_normal((100, 8)), "B": rng.standard_normal((100, 8))}
    >>> runs = {m: [{"h": base[m] + 0.3 * rng.standard_normal((100, 8))} for _ in range(3)] for m in base}
    >>> result = rs.test(runs)
    >>> result.statistic > 0, result.p_value  # 10 splits of 3 + 3 runs: the smallest p is 0.1
    (True, 0.1)
    """
    progress_mode(progress)
    bound = _bind(metric)
    if null not in ("labels", "bootstrap"):
        raise RepsimError(f"null must be labels or bootstrap, got {null!r}")
    if n_resamples < 1:
        raise RepsimError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < ci < 1:
        raise RepsimError(f"ci must lie in (0, 1), got {ci}")
    _check_token_rows(pool, null == "bootstrap")  # the label-exchange null moves whole runs: fine
    items = list(groups.items()) if isinstance(groups, Mapping) else [(str(g), list(rs)) for g, rs in groups]
    options = _options(seed, max_samples, samples, pool, channel_axis, max_gram)
    with MemoryScope() as mem:

        def resolve(run: Any, label: str) -> list[Any]:
            if isinstance(run, (str, os.PathLike)):
                return group_engine.file_run_layers(os.fspath(run), layer)
            return group_engine.filter_layers(mem.layer_refs(run, label), layer, label)

        with progress_bar("test", n_resamples, enabled=progress) as advance, \
                advice_scope("use max_samples M (a random subset of the rows), or pool mean for N-D layers"):
            result = group_engine.group_test_runs(items, resolve, bound, options, null, n_resamples, ci, advance)
    _issue(result.warnings)
    return result


test.__test__ = False  # type: ignore[attr-defined]  # a library function, not a pytest test


def _gradients(mem: MemoryScope, source: Any, role: str) -> GradRef:
    if isinstance(source, (str, os.PathLike)):
        return resolve_gradients(os.fspath(source), role)
    arr = as_array(source, role)
    ref = mem.add(arr, role, role)
    return validate_gradients(GradRef(ref.file, ref.name, ref.shape, ref.dtype, "memory", display=role), role)


def inputsim(
    grads: Any,
    *,
    reference: Any = None,
    query: Sequence[int] | np.ndarray | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    alpha: float | None = None,
    include_self: bool = False,
    drop_zero: bool = False,
    multi_output: str = "trace",
    rcond: float | None = None,
    train: Any = None,
    labels: Sequence[Any] | np.ndarray | None = None,
    reference_labels: Sequence[Any] | np.ndarray | None = None,
    keep_kernel: bool = False,
    block_size: int | None = None,
    seed: int = 0,
    progress: bool | str = False,
) -> InputSimilarity:
    """Input similarity from the network's perspective (Charpiat et al., NeurIPS 2019; ``repsim inputsim``).

    ``grads``: per-example parameter gradients, an N x P (or N x d x P Jacobian) array or a
    ``FILE`` / ``FILE:DATASET``. The kernel k(x, x') = g(x).g(x') / (|g(x)| |g(x')|) against
    ``reference`` (default: ``grads`` itself, x excluded unless ``include_self``); the soft
    density sum_x' k(x, x'), and optionally the hard density #{k >= threshold}, the positive
    density sum_{k > 0} k^alpha, the ``top_k`` neighbours, and reliability against ``train``
    gradients. ``labels`` (default: a ``labels`` dataset in the file) give each neighbour list's
    same-label fraction. ``keep_kernel`` keeps the Q x M kernel in ``.kernel``.

    Returns :class:`~repsim_cli.results.InputSimilarity` (``.density_soft``, ``.neighbor_index``, ...).

    >>> import numpy as np, repsim_cli as rs
    >>> g = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> rs.inputsim(g, top_k=1).neighbor_index.ravel().tolist()
    [1, 0, 1]
    """
    progress_mode(progress)
    with MemoryScope() as mem:
        g = _gradients(mem, grads, "GRADS")
        ref = _gradients(mem, reference, "reference") if reference is not None else None
        tr = _gradients(mem, train, "train") if train is not None else None
        gram = inputsim_engine.needs_gram(top_k, threshold, alpha, keep_kernel, multi_output)
        with progress_bar("inputsim", inputsim_engine.count_steps(g, block_size, gram), enabled=progress) as advance:
            result = inputsim_engine.input_similarity(
                g, ref, query, top_k=top_k, threshold=threshold, alpha=alpha, include_self=include_self,
                drop_zero=drop_zero, form=multi_output, rcond=rcond, train=tr, block_size=block_size,
                keep_kernel=keep_kernel, progress=advance,
            )
        ref_eff = ref if ref is not None else g
        rlab: np.ndarray | None
        qlab = np.asarray(labels) if labels is not None else (find_labels(g) if g.kind != "memory" else None)
        if reference_labels is not None:
            rlab = np.asarray(reference_labels)
        else:
            rlab = qlab if result.same_set else (find_labels(ref_eff) if ref_eff.kind != "memory" else None)
        params = {"top_k": top_k, "threshold": threshold, "alpha": alpha, "include_self": include_self,
                  "drop_zero": drop_zero, "multi_output": multi_output, "rcond": rcond}
        body = inputsim_engine.inputsim_document(result, g, ref_eff, tr, params, qlab, rlab)
    _issue(body["warnings"])
    return InputSimilarity(result, body, seed)


def inspect(path: str | os.PathLike[str], *, constant: bool = True, pool: str = "none", channel_axis: int = 1) -> list[dict[str, Any]]:
    """What a file holds (``repsim inspect``): one description per array, layers first-class.

    Each: ``name``, ``shape``, ``dtype``, ``is_layer`` (else ``reason``); layers also
    ``n_samples``, ``features`` (after flattening or ``pool``), ``matrix_shape`` and, with
    ``constant``, ``constant_columns`` (counted in row blocks). ``FILE:LAYER`` restricts to the
    selected layers. Nothing is loaded whole.

    >>> import repsim_cli as rs
    >>> [(d["name"], d["shape"]) for d in rs.inspect("sample_data/mlp_seed0.h5:layers/3", constant=False)]
    [('layers/3', [500, 64])]
    """
    doc = describe_file(os.fspath(path), constant, pool, channel_axis)
    return [{"file": doc["file"], **entry} for entry in doc["datasets"]]
