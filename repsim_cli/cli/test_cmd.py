"""``repsim test``: do two (or more) groups of runs differ more than runs within a group?

The question people ask about training methods: with seeds A1, A2 of method A and B1, B2 of
method B, is mean(sim(A1,A2), sim(B1,B2)) different from the between-method similarities?
Parsing and rendering live here; the engine is :func:`repsim_cli.api.test`, the statistic and its nulls
:mod:`repsim_cli.stats.group`.
"""

from __future__ import annotations

from typing import Any, Sequence

import typer
from typer.core import TyperCommand

from repsim_cli import api, gates
from repsim_cli.cli._app import app, handle_errors, info, to_flags
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
    one_metric,
)
from repsim_cli.errors import RepsimError
from repsim_cli.render.terminal import group_test_table

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

* `repsim test --group mlp sample_data/mlp_seed0.h5 sample_data/mlp_seed1.h5 sample_data/mlp_seed2.h5 \\
  --group wide sample_data/wide_seed0.h5 sample_data/wide_seed1.h5`

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
    group: list[str] | None = typer.Option(None, "--group", metavar="NAME FILE FILE...", help=GROUP_HELP),
    metric: list[str] = typer.Option(["cka"], "--metric", "-m", help="METRIC[:key=value,...] (one). See `repsim metrics`."),
    layer: str | None = typer.Option(
        None, "--layer", help="Layer name or glob present in every run (default: every layer shared by all runs)."
    ),
    null: str = typer.Option("labels", "--null", help="labels (exchange group labels among runs) | bootstrap (resample inputs)."),
    n_resamples: int = typer.Option(
        999, "-B", "--resamples", help="labels: enumerate all splits if there are at most B, else B random relabellings; bootstrap: B resamples."
    ),
    ci: float = typer.Option(0.95, "--ci", help="Interval level of --null bootstrap."),
    fail_p_below: float | None = typer.Option(
        None, "--fail-p-below", help="Exit 1 (after printing) if the combined p-value is below P (e.g. a difference that must not exist)."
    ),
    fail_p_above: float | None = typer.Option(
        None, "--fail-p-above", help="Exit 1 (after printing) if the combined p-value is above P (e.g. a difference that must be significant)."
    ),
    seed: int = SeedOpt,
    fmt: str | None = FormatOpt,
    output: str | None = OutputOpt,
    max_samples: int | None = MaxSamplesOpt,
    samples: str | None = SamplesOpt,
    pool: str = PoolOpt,
    channel_axis: int = ChannelAxisOpt,
    max_gram: int = MaxGramOpt,
    quiet: bool = QuietOpt,
    progress: str = ProgressOpt,
) -> None:
    """Do groups of runs (e.g. seeds of two training methods) differ more than runs within a group?

    Every pair of runs is compared on same-named layers; the statistic is the mean within-group
    similarity minus the mean between-group similarity, per layer and averaged over layers.
    """
    spec = one_metric(metric, "test")
    groups, problems = ctx.meta.get(_GROUPS_KEY, ([], []))
    if problems:
        raise RepsimError(problems[0])
    if group:  # only reachable if the pre-parser was bypassed
        raise RepsimError("--group needs a NAME followed by its files: --group NAME FILE FILE [FILE ...]")
    protected = input_files([f for _, files in groups for f in files] + [samples])
    check_outputs(fmt, output, protected)
    gates.check_fraction("fail_p_below", fail_p_below)
    gates.check_fraction("fail_p_above", fail_p_above)
    result = api.test(
        groups, spec, null=null, n_resamples=n_resamples, ci=ci, seed=seed, layer=layer, max_samples=max_samples,
        samples=samples, pool=pool, channel_axis=channel_axis, max_gram=max_gram, progress=progress,
    )
    doc = result.to_dict()
    emit(doc, result.rows, fmt, output, protected, lambda: group_test_table(doc))
    crossed = gates.p_crossed(result.p_value, fail_p_below, fail_p_above)
    for line in crossed:
        info(f"repsim: threshold crossed: {to_flags(line)}")
    if crossed:
        raise typer.Exit(1)
