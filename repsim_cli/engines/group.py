"""The across-seeds group test on runs (files or in-memory layers): load once, compare all pairs, test.

Math lives in :mod:`repsim_cli.stats.group`; this engine selects the layers every run shares,
loads each (run, layer) once, computes the R x R pairwise values per layer and calls
:func:`repsim_cli.stats.group.group_test`, returning a :class:`repsim_cli.results.TestResult`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from repsim_cli import stats
from repsim_cli.engines.compare import LayerCache, LoadOptions, base_record, pair_named
from repsim_cli.errors import RepsimError, warn
from repsim_cli.io.layers import LayerRef, select_layers, split_selector
from repsim_cli.metrics import BoundMetric
from repsim_cli.results import TestResult

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Run:
    """One trained network: its group, how results name it, and its layers (not loaded)."""

    group: str
    label: str
    layers: list[LayerRef]


def file_run_layers(arg: str, layer: str | None) -> list[LayerRef]:
    """The layers of a run given as ``FILE`` or ``FILE:LAYER``, restricted to ``layer`` if given."""
    path, sel = split_selector(arg)
    if layer is not None and sel is not None:
        raise RepsimError(f"{arg}: give the layer either with layer= or as FILE:LAYER, not both")
    return select_layers(f"{path}:{layer}" if layer is not None else arg)


def filter_layers(refs: Sequence[LayerRef], layer: str | None, label: str) -> list[LayerRef]:
    """In-memory runs: the layers whose name equals or matches the glob ``layer``."""
    if layer is None:
        return list(refs)
    hits = [r for r in refs if r.name == layer or fnmatch.fnmatchcase(r.name, layer)]
    if not hits:
        raise RepsimError(f"{label}: layer {layer!r} matches no layer; available: {', '.join(r.name for r in refs)}")
    return hits


def check_groups(groups: Sequence[tuple[str, Sequence[str]]]) -> None:
    """At least 2 groups, distinct names, at least 2 runs each, no run in two groups."""
    if len(groups) < 2:
        got = ", ".join(n for n, _ in groups) or "none"
        raise RepsimError(
            f"the group test needs at least 2 groups (NAME and its runs), got {len(groups)} ({got})"
        )
    seen_names: set[str] = set()
    seen_files: dict[str, str] = {}
    for name, files in groups:
        if name in seen_names:
            raise RepsimError(f"group name {name!r} is given twice")
        seen_names.add(name)
        if len(files) < 2:
            raise RepsimError(
                f"group {name} has {len(files)} run{'s' if len(files) != 1 else ''} ({', '.join(files) or 'none'}); "
                "every group needs at least 2 runs (e.g. 2 seeds) so that within-group similarity is defined"
            )
        for f in files:
            if f in seen_files:
                raise RepsimError(f"{f} is given twice (in groups {seen_files[f]} and {name}); each run belongs to one group")
            seen_files[f] = name


def shared_layers(runs: Sequence[Run]) -> tuple[list[str], list[list[LayerRef]]]:
    """Layer names every run has (in the first run's order) and each run's refs to them; warns on the rest."""
    names = [r.name for r in runs[0].layers]
    shared = [n for n in names if all(any(r.name == n for r in run.layers) for run in runs)]
    if not shared:
        listing = "; ".join(f"{run.label}: {', '.join(r.name for r in run.layers)}" for run in runs)
        raise RepsimError(f"no layer name is shared by every run ({listing}); select a layer with layer=")
    skipped = sorted({r.name for run in runs for r in run.layers} - set(shared))
    if skipped:
        warn(f"comparing the {len(shared)} layers present in every run; skipped (missing somewhere): {', '.join(skipped)}")
    refs = [[next(r for r in run.layers if r.name == n) for n in shared] for run in runs]
    return shared, refs


def _pairwise_values(
    runs: Sequence[Run], refs: Sequence[Sequence[LayerRef]], cache: LayerCache, metric: BoundMetric, progress: Progress | None
) -> tuple[np.ndarray, list[tuple[list[dict[str, Any]], list[dict[str, Any]]]], list[list[str]], list[list[np.ndarray]]]:
    """L x R x R values (upper triangle), each layer's within/between pair records, warnings and data."""
    n_runs, n_layers = len(runs), len(refs[0])
    ii, jj = stats.pair_index(n_runs)
    sims = np.full((n_layers, n_runs, n_runs), np.nan)
    pairs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
    layer_warnings: list[list[str]] = []
    data: list[list[np.ndarray]] = []
    for l in range(n_layers):
        layers = [cache.layer(refs[r][l]) for r in range(n_runs)]
        preps = [cache.prepared(refs[r][l], metric) for r in range(n_runs)]
        data.append([lay.data for lay in layers])
        within: list[dict[str, Any]] = []
        between: list[dict[str, Any]] = []
        layer_warnings.append([])
        for a, b in zip(ii, jj):
            result = pair_named(metric, preps[a], preps[b], layers[a].label, layers[b].label)
            sims[l, a, b] = result.value
            rec = {"group_a": runs[a].group, "group_b": runs[b].group, **base_record(layers[a], layers[b], metric, result)}
            (within if runs[a].group == runs[b].group else between).append(rec)
            layer_warnings[l] += rec["warnings"]
            if progress:
                progress(1)
        pairs.append((within, between))
    return sims, pairs, layer_warnings, data


def group_test_runs(
    groups: Sequence[tuple[str, Sequence[Any]]],
    resolve: Callable[[Any, str], list[LayerRef]],
    metric: BoundMetric,
    options: LoadOptions,
    null: str = "labels",
    n_resamples: int = 999,
    ci: float = 0.95,
    progress: Progress | None = None,
) -> TestResult:
    """The group test on runs: ``groups`` = [(name, [run, ...]), ...], ``resolve(run, label)`` -> its layers.

    A run given as a path is labelled by it; any other run as ``NAME[i]``. Every (run, layer)
    is loaded once, all pairs are computed per shared layer, then the group test runs.
    """
    labelled = [(g, [(run_label(r, g, i), r) for i, r in enumerate(rs)]) for g, rs in groups]
    check_groups([(g, [label for label, _ in rs]) for g, rs in labelled])
    runs = [Run(g, label, resolve(r, label)) for g, rs in labelled for label, r in rs]
    layer_names, refs = shared_layers(runs)
    cache = LayerCache.for_refs([r for rs in refs for r in rs], options, min_samples=metric.min_n)
    sims, pairs, layer_warnings, data = _pairwise_values(runs, refs, cache, metric, progress)

    def recompute(rows: np.ndarray) -> np.ndarray:
        return np.stack([stats.pairwise_matrix(metric, runs_data, rows) for runs_data in data])

    n_rows = data[0][0].shape[0]
    result = stats.group_test(
        sims, [run.group for run in runs], metric.higher_is_similar, null=null, n_resamples=n_resamples,
        seed=options.seed, recompute=recompute if null == "bootstrap" else None, n_rows=n_rows,
        unique_rows=stats.needs_distinct_rows(metric), ci=ci, progress=progress,
    )
    body, rows = _test_document(runs, layer_names, metric, result, pairs, layer_warnings, n_rows)
    return TestResult(body, rows, options.seed)


def run_label(run: Any, group: str, index: int) -> str:
    """How results name a run: its path, or ``GROUP[i]`` for in-memory runs."""
    import os

    return os.fspath(run) if isinstance(run, (str, os.PathLike)) else f"{group}[{index}]"


def count_steps(n_runs: int, n_layers: int, n_resamples: int) -> int:
    """Progress steps of :func:`group_test_runs` (pairs per layer, then resamples)."""
    return n_layers * n_runs * (n_runs - 1) // 2 + n_resamples


def _grouped(runs: Sequence[Run]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run.label)
    return list(groups.items())


def _test_document(
    runs: Sequence[Run], layer_names: Sequence[str], metric: BoundMetric, result: Any,
    pairs: Sequence[tuple[list[dict[str, Any]], list[dict[str, Any]]]], layer_warnings: Sequence[list[str]], n_rows: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The JSON body (per-layer results with their pairs, combined) and the flat CSV rows."""
    summary = result.summary()
    common = {"metric": metric.name, "params": dict(metric.params)}
    results, rows = [], []
    for l, name in enumerate(layer_names):
        within, between = pairs[l]
        stat = result.layers[l].as_record()
        own = list(dict.fromkeys(layer_warnings[l] + result.warnings))
        results.append({"layer": name, **common, "within": within, "between": between, **stat, **summary, "n_samples": n_rows, "warnings": own})
        counts = {"n_within": len(within), "n_between": len(between), "n_samples": n_rows}
        rows.append({"layer": name, **common, **stat, **_row_summary(summary), **counts, "warnings": own})
    warnings = list(dict.fromkeys([w for ws in layer_warnings for w in ws] + result.warnings))
    combined = None
    if result.combined is not None:
        stat = result.combined.as_record()
        combined = {"layer": "combined", "layers": list(layer_names), **common, **stat, **summary, "warnings": warnings}
        last: dict[str, int | None] = {"n_within": None, "n_between": None, "n_samples": n_rows}
        rows.append({"layer": "combined", **common, **stat, **_row_summary(summary), **last, "warnings": warnings})
    body = {
        "metric": metric.name, "params": dict(metric.params), "null": result.null,
        "groups": dict(_grouped(runs)), "layers": list(layer_names),
        "statistic": (result.combined or result.layers[0]).statistic, "splits": result.splits,
        "min_p_value": result.min_p_value, "exact": result.exact, "resamples": result.resamples,
        "note": result.note, "results": results, "combined": combined, "warnings": warnings,
    }
    return body, rows


def _row_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "note"}
