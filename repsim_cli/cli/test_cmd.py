"""``repsim test``: do two (or more) groups of runs differ more than runs within a group?

The question people ask about training methods: with seeds A1, A2 of method A and B1, B2 of
method B, is mean(sim(A1,A2), sim(B1,B2)) different from the between-method similarities?
Parsing and rendering live here; the statistic and its nulls are :func:`repsim_cli.stats.group_test`.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np
import typer
from typer.core import TyperCommand

from repsim_cli.cli._app import app, handle_errors, warning
from repsim_cli.cli.common import (
    ChannelAxisOpt,
    FormatOpt,
    MaxGramOpt,
    MaxSamplesOpt,
    OutputOpt,
    PoolOpt,
    SamplesOpt,
    SeedOpt,
    emit,
    input_files,
    load_options,
    progress_bar,
)
from repsim_cli.engines.compare import LayerCache, LoadOptions, base_record
from repsim_cli.errors import RepsimError
from repsim_cli.io.layers import LayerRef, select_layers, split_selector
from repsim_cli.metrics import BoundMetric, parse_metric
from repsim_cli.render import envelope, fmt_value

_GROUPS_KEY = "repsim.test.groups"


def split_group_args(args: Sequence[str]) -> tuple[list[tuple[str, list[str]]], list[str], list[str]]:
    """Pull ``--group NAME FILE FILE ...`` blocks out of argv (click cannot take a variable count).

    Accepted forms: ``--group NAME FILE FILE...`` (files up to the next token starting with
    ``-``), ``--group=NAME FILE...``, ``--group NAME=FILE,FILE`` and ``--group=NAME=FILE,FILE``.
    Returns (groups in order, the other arguments, problems found).
    """
    groups: list[tuple[str, list[str]]] = []
    rest: list[str] = []
    problems: list[str] = []
    i = 0
    args = list(args)
    while i < len(args):
        tok = args[i]
        if tok == "--":
            rest.extend(args[i:])
            break
        if tok != "--group" and not tok.startswith("--group="):
            rest.append(tok)
            i += 1
            continue
        if tok == "--group":
            if i + 1 >= len(args) or args[i + 1].startswith("-"):
                problems.append("--group needs a NAME followed by its files: --group NAME FILE FILE [FILE ...]")
                i += 1
                continue
            name = args[i + 1]
            i += 2
        else:
            name = tok[len("--group="):]
            i += 1
        files: list[str] = []
        while i < len(args) and not (args[i].startswith("-") and args[i] != "-"):
            files.append(args[i])
            i += 1
        if not files and "=" in name:
            name, _, listed = name.partition("=")
            files = [f for f in listed.split(",") if f]
        if not name:
            problems.append("--group needs a non-empty NAME: --group NAME FILE FILE [FILE ...]")
            continue
        groups.append((name, files))
    return groups, rest, problems


class GroupCommand(TyperCommand):
    """A typer command that reads ``--group NAME FILE FILE ...`` blocks before click parses the rest."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        groups, rest, problems = split_group_args(args)
        ctx.meta[_GROUPS_KEY] = (groups, problems)
        return super().parse_args(ctx, rest)


EPILOG = """
**Examples**

* `repsim test --group mlp sample_data/mlp_seed0.h5 sample_data/mlp_seed1.h5 sample_data/mlp_seed2.h5 --group wide sample_data/wide_seed0.h5 sample_data/wide_seed1.h5`

* `repsim test --group A a1.h5 a2.h5 --group B b1.h5 b2.h5 --null bootstrap -B 1000 --seed 7 -f json`

* `repsim test --group A=a1.h5,a2.h5,a3.h5 --group B=b1.h5,b2.h5,b3.h5 -m cka:debiased=true --layer 'layers/3'`

**Reading it.** statistic = mean(within-group pairs, pooled) - mean(between-group pairs), sign
flipped for distances: > 0 means runs of one group resemble each other more than runs of
different groups. `--null labels` (default) exchanges group labels among the runs (sizes fixed):
all distinct splits are enumerated when there are at most -B of them (p = share of splits
with a statistic >= the observed one), otherwise -B random relabellings. With 2 + 2 runs there
are only 3 splits, so p >= 1/3 whatever the data -- the output says so; train more seeds.
`--null bootstrap` resamples the inputs (the same rows for every run) and reports the
statistic's percentile interval and the fraction of resamples with statistic <= 0: stability
over inputs for these runs, not over seeds. Debiased estimators (`debiased=true`) use the
distinct rows of each resample only (duplicated rows would read as dependence).
"""

GROUP_HELP = (
    "A group of runs: `--group NAME FILE FILE [FILE ...]` (files up to the next option), or "
    "`--group NAME=FILE,FILE,...`. Give it once per group (>= 2 groups, >= 2 runs each). "
    "FILE may be FILE:LAYER."
)


@app.command(
    "test",
    cls=GroupCommand,
    epilog=EPILOG,
    options_metavar="--group NAME FILE FILE... --group NAME FILE FILE... [OPTIONS]",
)
@handle_errors
def group_test_command(
    ctx: typer.Context,
    group: Optional[List[str]] = typer.Option(None, "--group", metavar="NAME FILE FILE...", help=GROUP_HELP),
    metric: str = typer.Option("cka", "--metric", "-m", help="METRIC[:key=value,...] (one). See `repsim metrics`."),
    layer: Optional[str] = typer.Option(
        None, "--layer", help="Layer name or glob present in every run (default: every layer shared by all runs)."
    ),
    null: str = typer.Option("labels", "--null", help="labels (exchange group labels among runs) | bootstrap (resample inputs)."),
    n_resamples: int = typer.Option(
        999, "-B", "--resamples", help="labels: enumerate all splits if there are at most B, else B random relabellings; bootstrap: B resamples."
    ),
    ci: float = typer.Option(0.95, "--ci", help="Interval level of --null bootstrap."),
    seed: int = SeedOpt,
    fmt: Optional[str] = FormatOpt,
    output: Optional[str] = OutputOpt,
    max_samples: Optional[int] = MaxSamplesOpt,
    samples: Optional[str] = SamplesOpt,
    pool: str = PoolOpt,
    channel_axis: int = ChannelAxisOpt,
    max_gram: int = MaxGramOpt,
) -> None:
    """Do groups of runs (e.g. seeds of two training methods) differ more than runs within a group?

    Every pair of runs is compared on same-named layers; the statistic is the mean within-group
    similarity minus the mean between-group similarity, per layer and averaged over layers.
    """
    groups, problems = ctx.meta.get(_GROUPS_KEY, ([], []))
    if problems:
        raise RepsimError(problems[0])
    if group:  # only reachable if the pre-parser was bypassed
        raise RepsimError("--group needs a NAME followed by its files: --group NAME FILE FILE [FILE ...]")
    if null not in ("labels", "bootstrap"):
        raise RepsimError(f"--null must be labels or bootstrap, got {null!r}")
    if n_resamples < 1:
        raise RepsimError(f"-B must be >= 1, got {n_resamples}")
    if not 0 < ci < 1:
        raise RepsimError(f"--ci must lie in (0, 1), got {ci}")
    bound = parse_metric(metric)
    _check_groups(groups)
    options = load_options(max_samples, seed, samples, pool, channel_axis, max_gram)
    runs = [(name, f) for name, files in groups for f in files]
    layer_names, refs = _select(runs, layer)
    cache = LayerCache.for_refs([r for rs in refs for r in rs], options, min_samples=bound.min_n)
    doc, rows = run_group_test(groups, runs, layer_names, refs, cache, options, bound, null, n_resamples, ci)
    for w in doc["warnings"]:
        warning(w)
    protected = input_files([f for _, f in runs] + [samples])
    emit(doc, rows, fmt, output, protected, lambda: group_test_table(doc))


def _check_groups(groups: Sequence[tuple[str, list[str]]]) -> None:
    if len(groups) < 2:
        got = ", ".join(n for n, _ in groups) or "none"
        raise RepsimError(
            f"repsim test needs at least 2 groups (--group NAME FILE FILE ...), got {len(groups)} ({got})"
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


def _select(runs: Sequence[tuple[str, str]], layer: Optional[str]) -> tuple[list[str], list[list[LayerRef]]]:
    """Layer names compared (shared by every run, in the first run's order) and each run's refs."""
    per_run: list[list[LayerRef]] = []
    for _, arg in runs:
        path, sel = split_selector(arg)
        if layer is not None and sel is not None:
            raise RepsimError(f"{arg}: give the layer either with --layer or as FILE:LAYER, not both")
        per_run.append(select_layers(f"{path}:{layer}" if layer is not None else arg))
    names = [r.name for r in per_run[0]]
    shared = [n for n in names if all(any(r.name == n for r in refs) for refs in per_run)]
    if not shared:
        listing = "; ".join(f"{arg}: {', '.join(r.name for r in refs)}" for (_, arg), refs in zip(runs, per_run))
        raise RepsimError(f"no layer name is shared by every run ({listing}); select layers with --layer")
    skipped = sorted({r.name for refs in per_run for r in refs} - set(shared))
    if skipped:
        warning(f"comparing the {len(shared)} layers present in every run; skipped (missing somewhere): {', '.join(skipped)}")
    refs = [[next(r for r in rs if r.name == n) for n in shared] for rs in per_run]
    return shared, refs


def run_group_test(
    groups: Sequence[tuple[str, list[str]]],
    runs: Sequence[tuple[str, str]],
    layer_names: Sequence[str],
    refs: Sequence[Sequence[LayerRef]],
    cache: LayerCache,
    options: LoadOptions,
    metric: BoundMetric,
    null: str,
    n_resamples: int,
    ci: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load every (run, layer) once, compute all pairs, run the group test; (JSON doc, CSV rows)."""
    from repsim_cli import stats

    n_runs, n_layers = len(runs), len(layer_names)
    labels = [name for name, _ in runs]
    ii, jj = stats.pair_index(n_runs)
    sims = np.full((n_layers, n_runs, n_runs), np.nan)
    per_layer_pairs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
    layer_warnings: list[list[str]] = []
    total = n_layers * len(ii) + n_resamples
    with progress_bar("test", total) as progress:
        data: list[list[np.ndarray]] = []
        for l in range(n_layers):
            layers = [cache.layer(refs[r][l]) for r in range(n_runs)]
            preps = [cache.prepared(refs[r][l], metric) for r in range(n_runs)]
            data.append([lay.data for lay in layers])
            within, between = [], []
            layer_warnings.append([])
            for a, b in zip(ii, jj):
                result = metric.pair(preps[a], preps[b])
                sims[l, a, b] = result.value
                rec = base_record(layers[a], layers[b], metric, result)
                rec = {"group_a": labels[a], "group_b": labels[b], **rec}
                (within if labels[a] == labels[b] else between).append(rec)
                layer_warnings[l] += rec["warnings"]
                if progress:
                    progress(1)
            per_layer_pairs.append((within, between))
        unique = stats.needs_distinct_rows(metric)

        def recompute(rows: np.ndarray) -> np.ndarray:
            return np.stack([stats.pairwise_matrix(metric, runs_data, rows) for runs_data in data])

        n_rows = data[0][0].shape[0]
        result = stats.group_test(
            sims, labels, metric.higher_is_similar, null=null, n_resamples=n_resamples, seed=options.seed,
            recompute=recompute if null == "bootstrap" else None, n_rows=n_rows, unique_rows=unique, ci=ci,
            progress=progress,
        )
    warnings = [w for ws in layer_warnings for w in ws] + result.warnings
    summary = result.summary()
    common = {"metric": metric.name, "params": dict(metric.params)}
    results = []
    rows = []
    for l, name in enumerate(layer_names):
        within, between = per_layer_pairs[l]
        stat = result.layers[l].as_record()
        own = list(dict.fromkeys(layer_warnings[l] + result.warnings))
        rec = {"layer": name, **common, "within": within, "between": between, **stat, **summary, "n_samples": n_rows, "warnings": own}
        results.append(rec)
        rows.append({"layer": name, **common, **stat, **_row_summary(summary), "n_within": len(within), "n_between": len(between), "n_samples": n_rows, "warnings": own})
    combined = None
    if result.combined is not None:
        stat = result.combined.as_record()
        combined = {"layer": "combined", "layers": list(layer_names), **common, **stat, **summary}
    warnings = list(dict.fromkeys(warnings))
    if combined is not None:
        combined["warnings"] = warnings
        rows.append({"layer": "combined", **common, **result.combined.as_record(), **_row_summary(summary), "n_within": None, "n_between": None, "n_samples": n_rows, "warnings": warnings})
    doc = envelope(
        "test",
        options.seed,
        metric=metric.name,
        params=dict(metric.params),
        null=null,
        groups={name: list(files) for name, files in groups},
        layers=list(layer_names),
        statistic=(result.combined or result.layers[0]).statistic,
        splits=result.splits,
        min_p_value=result.min_p_value,
        exact=result.exact,
        resamples=result.resamples,
        note=result.note,
        results=results,
        combined=combined,
        warnings=warnings,
    )
    return doc, rows


def _row_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "note"}


def group_test_table(doc: dict[str, Any]) -> Any:
    """Rich rendering: every pair per layer, then the per-layer (and combined) test."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from repsim_cli.cli.compare import _nondefault

    results = doc["results"]
    spec = doc["metric"] + _nondefault({"metric": doc["metric"], "params": doc["params"]})
    pairs = Table(title=f"pairwise {spec}", title_justify="left")
    for col, just in (("layer", "left"), ("pair", "left"), ("run A", "left"), ("run B", "left"), ("value", "right")):
        pairs.add_column(col, justify=just)
    for r in results:
        for kind, recs in (("within", r["within"]), ("between", r["between"])):
            for p in recs:
                label = f"within {p['group_a']}" if kind == "within" else f"between {p['group_a']}-{p['group_b']}"
                pairs.add_row(r["layer"], label, split_selector(p["a"])[0], split_selector(p["b"])[0], fmt_value(p["value"]))
        if r is not results[-1]:
            pairs.add_section()

    bootstrap = doc["null"] == "bootstrap"
    summary = Table(title=f"within - between ({'bootstrap' if bootstrap else 'label-exchange'} null)", title_justify="left")
    cols = ["layer", "within", "between", "statistic", "null mean", "null sd"]
    cols += ["ci_low", "ci_high", "P(stat<=0)"] if bootstrap else ["p_value"]
    for c in cols:
        summary.add_column(c, justify="left" if c == "layer" else "right")
    shown = results + ([doc["combined"]] if doc["combined"] else [])
    for r in shown:
        row = [r["layer"] if r["layer"] != "combined" else "combined (mean)", fmt_value(r["within_mean"]),
               fmt_value(r["between_mean"]), fmt_value(r["statistic"]), fmt_value(r["null_mean"]), fmt_value(r["null_std"])]
        row += [fmt_value(r.get("ci_low")), fmt_value(r.get("ci_high")), fmt_value(r.get("fraction_le_zero"))] if bootstrap else [fmt_value(r.get("p_value"))]
        summary.add_row(*row)
    groups = "; ".join(f"{name}: {len(files)} runs" for name, files in doc["groups"].items())
    if bootstrap:
        how = f"{doc['resamples']} bootstrap resamples of the inputs, {doc['results'][0]['ci']:g} percentile interval"
    elif doc["exact"]:
        how = f"all {doc['splits']} distinct splits enumerated (exact); smallest possible p = {doc['min_p_value']:.4g}"
    else:
        how = f"{doc['resamples']} random relabellings of {doc['splits']} possible splits; smallest possible p = {doc['min_p_value']:.4g}"
    lines = [f"{groups}. {how}. seed {doc['seed']}"]
    if doc["note"]:
        lines.append(f"Note: {doc['note']}")
    return Group(pairs, Text(""), summary, Text("\n".join(lines)))
