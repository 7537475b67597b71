"""``repsim compare A B``: similarity of two representations, layer by layer."""

from __future__ import annotations

import typer

from repsim_cli import api, gates
from repsim_cli.cli._app import app, handle_errors, info, to_flags
from repsim_cli.cli._scale_opts import BlockRowsOpt, EngineOpt, MaxMemoryOpt, SchedulerOpt, ShuffleRowsOpt, StreamOpt, WorkersOpt
from repsim_cli.cli.common import (
    ChannelAxisOpt,
    FormatOpt,
    MaxGramOpt,
    MaxSamplesOpt,
    OutputOpt,
    PoolOpt,
    ProgressOpt,
    QuietOpt,
    SamplesOpt,
    SeedOpt,
    check_outputs,
    emit,
    input_files,
)
from repsim_cli.metrics import parse_metric
from repsim_cli.render.terminal import compare_table

EPILOG = """
**Examples**

* `repsim compare sample_data/mlp_seed0.h5 sample_data/mlp_seed1.h5` (same-named layers, linear CKA)

* `repsim compare a.h5:layers/3 b.npy -m cka -m matched:corr=spearman -m meanmax`

* `repsim compare a.h5 b.h5 -m cka:debiased=true --permutations 999 --bootstrap 1000 --seed 7 -f json`

* `repsim compare a.h5 b.h5 -m cka --fail-below 0.8` (CI gate: exit 1 if any value < 0.8)

* `repsim compare a.h5 b.h5 -m cka -m procrustes:stat=distance --fail-below cka=0.9 --fail-above procrustes:stat=distance=0.3`

* `repsim compare big_a.h5 big_b.h5 -m cka -m cca --stream --block-rows 65536` (files larger than RAM: one pass)

* `repsim compare big_a.zarr big_b.zarr -m cka --engine dask --scheduler tcp://10.0.0.5:8786` (files visible to the workers)

Metrics and their parameters: `repsim metrics`.
"""


@app.command(epilog=EPILOG)
@handle_errors
def compare(
    a: str = typer.Argument(..., metavar="A", help="FILE or FILE:LAYER (name or glob, e.g. run.h5:layers/0*)."),
    b: str = typer.Argument(..., metavar="B", help="FILE or FILE:LAYER."),
    metric: list[str] = typer.Option(
        ["cka"], "--metric", "-m", help="METRIC[:key=value,...]; repeatable. See `repsim metrics`."
    ),
    fmt: str | None = FormatOpt,
    output: str | None = OutputOpt,
    details: bool = typer.Option(False, "--details", help="Include per-metric details (e.g. the neuron matching of `matched`)."),
    fail_below: list[str] | None = typer.Option(None, "--fail-below", help=(
        "Exit 1 (after printing) if a value is below X: `X` (every record) or `METRIC[:key=value,...]=X` "
        "(that metric only, e.g. `cka=0.9`); repeatable. NaN values always fail."
    )),
    fail_above: list[str] | None = typer.Option(None, "--fail-above", help=(
        "Exit 1 (after printing) if a value is above X (for distances): `X` or `METRIC[:key=value,...]=X`, "
        "e.g. `procrustes:stat=distance=0.3`; repeatable."
    )),
    permutations: int = typer.Option(0, "--permutations", help="Permutation null: shuffle B's rows B times; adds p_value, null_mean, null_std, z."),
    chance: bool = typer.Option(
        False, "--chance",
        help="cka/hsic (biased): the exact mean, std and skewness over all row permutations, without permuting; adds "
        "null_mean_exact (E0), null_std_exact, null_skew_exact, z_exact, p_moments (Pearson III) and adjusted = "
        "(CKA - E0)/(1 - E0). Other metrics: a warning and empty fields.",
    ),
    bootstrap: int = typer.Option(0, "--bootstrap", help=(
        "Bootstrap B resamples of the inputs (same rows on both sides); adds ci_low, ci_high and ci_method (see --ci-method). "
        "Debiased estimators (debiased=true) keep only the distinct rows of each resample, since duplicated rows would read as dependence."
    )),
    ci: float = typer.Option(0.95, "--ci", help="Interval level."),
    ci_method: str | None = typer.Option(None, "--ci-method", help=(
        "percentile|bca|jackknife. jackknife: estimate +- z * delete-one jackknife standard error (an interval "
        "around the estimate; needs no --bootstrap); bca: Efron's bias-corrected and accelerated bootstrap; "
        "percentile: bootstrap quantiles. Default: jackknife for the indexes whose bootstrap values shift with "
        "the number of distinct inputs (cka, procrustes, the CCA family, ...), percentile for the others (rsa, knn)."
    )),
    jobs: int = typer.Option(1, "--jobs", "-j", help=(
        "Worker processes for --permutations/--bootstrap "
        "(most useful for metrics without a fast path; results do not depend on it)."
    )),
    seed: int = SeedOpt,
    max_samples: int | None = MaxSamplesOpt,
    samples: str | None = SamplesOpt,
    pool: str = PoolOpt,
    channel_axis: int = ChannelAxisOpt,
    max_gram: int = MaxGramOpt,
    stream: bool | None = StreamOpt,
    engine: str = EngineOpt,
    scheduler: str | None = SchedulerOpt,
    workers: int | None = WorkersOpt,
    block_rows: int | None = BlockRowsOpt,
    shuffle_rows: bool = ShuffleRowsOpt,
    max_memory: str | None = MaxMemoryOpt,
    quiet: bool = QuietOpt,
    progress: str = ProgressOpt,
) -> None:
    """Compare two representations: A and B are files or FILE:LAYER selectors.

    One layer on each side: that pair. Two multi-layer files: each layer of A with the
    same-named layer of B, in A's order. Results come in A's layer order, then in -m order.
    """
    protected = input_files([a, b, samples])
    check_outputs(fmt, output, protected)
    gate_list = gates.parse_gates(fail_below, fail_above)
    gates.check_gates(gate_list, [parse_metric(m) for m in metric])
    results = api.compare(
        a, b, list(metric), permutations=permutations, bootstrap=bootstrap, ci=ci, ci_method=ci_method, seed=seed,
        max_samples=max_samples, samples=samples, pool=pool, channel_axis=channel_axis, stream=stream,
        progress=progress, details=details, jobs=jobs, max_gram=max_gram, engine=engine,
        scheduler=scheduler, workers=workers, block_rows=block_rows, max_memory=max_memory, shuffle_rows=shuffle_rows, chance=chance,
    )
    records = results.to_dicts()
    emit(results.to_dict(), records, fmt, output, protected, lambda: compare_table(records, seed))
    crossed = gates.crossed(gate_list, records)
    for line in crossed:
        info(f"repsim: threshold crossed: {to_flags(line)}")
    if crossed:
        raise typer.Exit(1)
