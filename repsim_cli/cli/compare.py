"""``repsim compare A B``: similarity of two representations, layer by layer."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import typer

from repsim_cli.cli._app import app, handle_errors, info, warning
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
from repsim_cli.engines.compare import compare_pairs, compare_streamed, pair_layers, should_stream, thresholds_crossed
from repsim_cli.errors import RepsimError
from repsim_cli.metrics import parse_metric
from repsim_cli.render import envelope, fmt_value

EPILOG = """
**Examples**

* `repsim compare sample_data/mlp_seed0.h5 sample_data/mlp_seed1.h5` (same-named layers, linear CKA)

* `repsim compare a.h5:layers/3 b.npy -m cka -m matched:corr=spearman -m meanmax`

* `repsim compare a.h5 b.h5 -m cka:debiased=true --permutations 999 --bootstrap 1000 --seed 7 -f json`

* `repsim compare a.h5 b.h5 -m cka --fail-below 0.8` (CI gate: exit 1 if any value < 0.8)

Metrics and their parameters: `repsim metrics`.
"""


@app.command(epilog=EPILOG)
@handle_errors
def compare(
    a: str = typer.Argument(..., metavar="A", help="FILE or FILE:LAYER (name or glob, e.g. run.h5:layers/0*)."),
    b: str = typer.Argument(..., metavar="B", help="FILE or FILE:LAYER."),
    metric: List[str] = typer.Option(
        ["cka"], "--metric", "-m", help="METRIC[:key=value,...]; repeatable. See `repsim metrics`."
    ),
    fmt: Optional[str] = FormatOpt,
    output: Optional[str] = OutputOpt,
    details: bool = typer.Option(False, "--details", help="Include per-metric details (e.g. the neuron matching of `matched`)."),
    fail_below: Optional[float] = typer.Option(None, "--fail-below", help="Exit 1 (after printing) if any value is below X."),
    fail_above: Optional[float] = typer.Option(None, "--fail-above", help="Exit 1 (after printing) if any value is above X (for distances)."),
    permutations: int = typer.Option(0, "--permutations", help="Permutation null: shuffle B's rows B times; adds p_value, null_mean, null_std, z."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap B resamples of the inputs (same rows on both sides); adds ci_low, ci_high (percentile). Debiased estimators (debiased=true) keep only the distinct rows of each resample, since duplicated rows would read as dependence."),
    ci: float = typer.Option(0.95, "--ci", help="Bootstrap interval level."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes for --permutations/--bootstrap (most useful for metrics without a fast path; results do not depend on it)."),
    seed: int = SeedOpt,
    max_samples: Optional[int] = MaxSamplesOpt,
    samples: Optional[str] = SamplesOpt,
    pool: str = PoolOpt,
    channel_axis: int = ChannelAxisOpt,
    max_gram: int = MaxGramOpt,
    stream: Optional[bool] = typer.Option(
        None,
        "--stream/--no-stream",
        help="Linear CKA only: never hold a layer in memory (row blocks into F x F moments, or column blocks into "
        "N x N Grams for layers wider than N). Default: automatic when the layers would not fit in half the RAM.",
    ),
) -> None:
    """Compare two representations: A and B are files or FILE:LAYER selectors.

    One layer on each side: that pair. Two multi-layer files: each layer of A with the
    same-named layer of B, in A's order. Results come in A's layer order, then in -m order.
    """
    metrics = [parse_metric(m) for m in metric]
    if permutations < 0 or bootstrap < 0:
        raise RepsimError("--permutations and --bootstrap must be >= 0")
    if not 0 < ci < 1:
        raise RepsimError(f"--ci must lie in (0, 1), got {ci}")
    if jobs < 1:
        raise RepsimError(f"--jobs must be >= 1, got {jobs}")
    options = load_options(max_samples, seed, samples, pool, channel_axis, max_gram)
    pairs, notes = pair_layers(a, b)
    for note in notes:
        warning(note)
    total = len(pairs) * len(metrics) * max(1, permutations + bootstrap)
    if should_stream(pairs, metrics, options, bool(permutations or bootstrap), stream):
        with progress_bar("compare (streaming)", len(pairs) * len(metrics)) as progress:
            records = compare_streamed(pairs, metrics, options, progress=progress)
    else:
        with progress_bar("compare", total) as progress:
            records = compare_pairs(
                pairs, metrics, options, details=details, permutations=permutations, bootstrap=bootstrap,
                ci=ci, jobs=jobs, progress=progress,
            )
    for w in dict.fromkeys(w for r in records for w in r["warnings"]):
        warning(w)
    doc = envelope("compare", seed, results=records)
    emit(doc, records, fmt, output, input_files([a, b, samples]), lambda: compare_table(records, seed))
    crossed = thresholds_crossed(records, fail_below, fail_above)
    for line in crossed:
        info(f"repsim: threshold crossed: {line}")
    if crossed:
        raise typer.Exit(1)


def compare_table(records: Sequence[dict[str, Any]], seed: int) -> Any:
    """A rich table of compare records (extra columns appear only when present).

    When every record shares the same A file and the same B file, the files go in the title
    and the rows show layer names only.
    """
    from rich.table import Table

    from repsim_cli.io.layers import split_selector

    files_a = {split_selector(r["a"])[0] for r in records}
    files_b = {split_selector(r["b"])[0] for r in records}
    short = len(files_a) == 1 and len(files_b) == 1
    title = f"A = {files_a.pop()}   B = {files_b.pop()}" if short else None
    table = Table(caption=f"seed {seed}", caption_justify="left")
    for col in ("A", "B", "metric", "value", "N", "F_A", "F_B"):
        table.add_column(col, justify="right" if col in ("value", "N", "F_A", "F_B") else "left")
    extras = [k for k in ("p_value", "z", "ci_low", "ci_high") if any(k in r for r in records)]
    for k in extras:
        table.add_column(k, justify="right")
    for r in records:
        a, b = (split_selector(r["a"])[1], split_selector(r["b"])[1]) if short else (r["a"], r["b"])
        row = [a, b, r["metric"] + _nondefault(r), fmt_value(r["value"]), str(r["n_samples"]), str(r["features_a"]), str(r["features_b"])]
        row += [fmt_value(r.get(k)) for k in extras]
        table.add_row(*row)
    if title is None:
        return table
    from rich.console import Group
    from rich.text import Text

    return Group(Text(title), table)


def _nondefault(record: dict[str, Any]) -> str:
    from repsim_cli.metrics import get_metric

    m = get_metric(record["metric"])
    bound = m.bind(**record["params"])
    return bound.spec[len(m.name):]
