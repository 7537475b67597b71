"""``repsim heatmap A [B]``: every layer of A against every layer of B (or of A), reusing work."""

from __future__ import annotations

import os
from typing import Any, Sequence

import typer

from repsim_cli import api, gates
from repsim_cli.cli._app import app, handle_errors, info, to_flags, warning
from repsim_cli.cli._scale_opts import BlockRowsOpt, EngineOpt, SchedulerOpt, ShuffleRowsOpt, StreamOpt, WorkersOpt
from repsim_cli.cli.common import (
    ChannelAxisOpt,
    FormatOpt,
    MaxGramOpt,
    MaxSamplesOpt,
    PoolOpt,
    ProgressOpt,
    QuietOpt,
    SamplesOpt,
    SeedOpt,
    emit,
    format_text,
    input_files,
    one_metric,
)
from repsim_cli.errors import RepsimError
from repsim_cli.io.layers import split_selector
from repsim_cli.metrics import parse_metric
from repsim_cli.render import FORMATS, check_distinct_outputs, check_output_path, write_atomic
from repsim_cli.render.output import STDOUT
from repsim_cli.render.terminal import GRID_WIDTH, grid_table, shorten, viridis_hex  # noqa: F401 (re-exported)

DATA_EXTENSIONS = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "table"}

EPILOG = """
**Examples**

* `repsim heatmap sample_data/mlp_seed0.h5 sample_data/mlp_seed1.h5` (terminal grid + sanity check)

* `repsim heatmap sample_data/mlp_seed0.h5 sample_data/mlp_seed1.h5 -o grid.png --annotate` (image; the grid still prints)

* `repsim heatmap sample_data/mlp_seed0.h5` (A against itself: one triangle, diagonal = 1)

* `repsim heatmap a.h5:blocks/* b.h5:blocks/* -m cka:kernel=rbf --max-samples 2000 -o grid.pdf --data-out grid.csv`

* `repsim heatmap a.h5 b.h5 --permutations 999 --seed 7 -f json` (p-values, Holm over the grid)

**Outputs.** `-o FILE.png|.svg|.pdf` writes the image and still prints the grid to stdout in
`--format` (default table); `-o FILE.json|.csv|.tsv|.txt` writes that data instead of printing;
`--data-out FILE.json|.csv|.tsv` writes data in addition. JSON: the records of `compare` (one per
cell) plus `rows`, `cols`, `matrix`, `sanity_check`, and `p_values`/`p_holm`/`significant` with
`--permutations`. CSV/TSV: one record per cell, so `compare` and `heatmap` outputs concatenate.
"""


@app.command(epilog=EPILOG)
@handle_errors
def heatmap(
    a: str = typer.Argument(..., help="Rows: FILE or FILE:LAYER (name or glob); all layers of FILE by default."),
    b: str | None = typer.Argument(None, help="Columns: FILE or FILE:LAYER. Omitted: A against itself."),
    metric: list[str] = typer.Option(["cka"], "--metric", "-m", help="METRIC[:key=value,...] (one); see `repsim metrics`."),
    output: str | None = typer.Option(
        None, "--output", "-o",
        help="Image (.png/.svg/.pdf; the grid still prints to stdout) or data (.json/.csv/.tsv/.txt, instead of stdout); atomic, never an input file.",
    ),
    fmt: str | None = FormatOpt,
    data_out: str | None = typer.Option(None, "--data-out", help="Also write the data to FILE (.json/.csv/.tsv/.txt, by extension)."),
    annotate: bool = typer.Option(False, "--annotate", help="Write the values in the image's cells."),
    vmin: float | None = typer.Option(None, "--vmin", help="Colour scale minimum (default: smallest value in the grid)."),
    vmax: float | None = typer.Option(None, "--vmax", help="Colour scale maximum (default: largest value in the grid)."),
    permutations: int = typer.Option(0, "--permutations", help="Permutation p-value per cell: one shared, seeded set of row permutations; Holm over the grid."),
    alpha: float = typer.Option(0.05, "--alpha", help="Cells with Holm-adjusted p > alpha are marked (table) and hatched (image)."),
    fail_sanity_below: float | None = typer.Option(None, "--fail-sanity-below", help=(
        "Exit 1 (after writing) if the sanity check's fraction of correct rows is below FRACTION (needs the same number of layers on both sides)."
    )),
    chance: bool = typer.Option(
        False, "--chance",
        help="cka/hsic (biased): the exact chance level E0 of every cell and p_moments from the exact permutation "
        "moments (JSON: chance.null_mean_exact, ...); cells whose Holm-adjusted p_moments > alpha are marked ~.",
    ),
    max_memory: str | None = typer.Option(
        None, "--max-memory",
        help="Memory budget (GiB, or 512M / 4G; default: a quarter of physical RAM). Above it a metric with a moment route "
        "streams (one pass over the rows for the whole grid); other grids are refused.",
    ),
    stream: bool | None = StreamOpt,
    engine: str = EngineOpt,
    scheduler: str | None = SchedulerOpt,
    workers: int | None = WorkersOpt,
    block_rows: int | None = BlockRowsOpt,
    shuffle_rows: bool = ShuffleRowsOpt,
    seed: int = SeedOpt,
    max_samples: int | None = MaxSamplesOpt,
    samples: str | None = SamplesOpt,
    pool: str = PoolOpt,
    channel_axis: int = ChannelAxisOpt,
    max_gram: int = MaxGramOpt,
    quiet: bool = QuietOpt,
    progress: str = ProgressOpt,
) -> None:
    """Layer x layer grid of one metric: rows = A's layers, columns = B's (or A's) layers.

    Each layer is loaded and prepared once and each cell is one cross term; against itself a
    symmetric metric computes one triangle and sets the diagonal to its identity value. With the
    same number of layers on both sides, the footer reports the sanity check of Kornblith et al.
    (2019): in how many rows the same-index layer is strictly the most similar.
    """
    from repsim_cli.render.images import image_format

    spec = one_metric(metric, "heatmap")
    parse_metric(spec)  # a bad -m fails before the outputs are looked at
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise RepsimError(f"--vmin must be below --vmax, got {vmin} and {vmax}")
    protected = input_files([a, b, samples])
    plan = _plan_outputs(output, fmt, data_out, protected, image_format)
    if annotate and plan["image"] is None:
        warning("--annotate only applies to an image (-o FILE.png/.svg/.pdf)")
    if plan["image"] is not None:
        from repsim_cli.render.images import _pyplot

        _pyplot()  # fail now, not after the computation, if matplotlib is missing
    gates.check_fraction("fail_sanity_below", fail_sanity_below)
    grid = api.heatmap(
        a, b, spec, permutations=permutations, alpha=alpha, seed=seed, max_samples=max_samples, samples=samples,
        pool=pool, channel_axis=channel_axis, max_gram=max_gram, max_memory=max_memory, image=plan["image"] is not None,
        progress=progress, stream=stream, engine=engine, scheduler=scheduler, workers=workers,
        block_rows=block_rows, shuffle_rows=shuffle_rows, chance=chance,
    )
    _write_outputs(grid, plan, [split_selector(x)[0] for x in (a, b) if x is not None], protected, annotate, vmin, vmax)
    crossed = gates.sanity_crossed(grid.sanity_check, fail_sanity_below)
    for line in crossed:
        info(f"repsim: threshold crossed: {to_flags(line)}")
    if crossed:
        raise typer.Exit(1)


def _plan_outputs(output: str | None, fmt: str | None, data_out: str | None, protected: Sequence[str], image_format: Any) -> dict[str, Any]:
    """Where each output goes (image, data file, extra data file, stdout), checked before any work."""
    if fmt is not None and fmt not in FORMATS:
        raise RepsimError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    plan: dict[str, Any] = {"image": None, "image_kind": None, "data": None, "data_kind": None,
                            "stdout_kind": fmt or "table", "extra": None, "extra_kind": None}
    if output is not None:
        check_output_path(output, protected)
        plan["image_kind"] = image_format(output) if output != STDOUT else None
        if output == STDOUT:  # -o -: data on stdout, in --format (default table)
            plan.update(stdout_kind=fmt or "table")
        elif plan["image_kind"] is not None:
            plan["image"] = output
        else:
            ext = os.path.splitext(output)[1].lower()
            if fmt is None and ext not in DATA_EXTENSIONS:
                raise RepsimError(
                    f"-o {output}: unknown extension {ext or '(none)'!r}; use .png/.svg/.pdf for an image "
                    "or .json/.csv/.tsv/.txt for data"
                )
            plan.update(data=output, data_kind=fmt or DATA_EXTENSIONS[ext], stdout_kind=None)
    if data_out is not None:
        check_output_path(data_out, protected)
        ext = os.path.splitext(data_out)[1].lower()
        if ext not in DATA_EXTENSIONS:
            raise RepsimError(f"--data-out {data_out}: extension must be one of {', '.join(DATA_EXTENSIONS)}, got {ext or '(none)'!r}")
        check_distinct_outputs({"-o": output, "--data-out": data_out})
        plan.update(extra=data_out, extra_kind=DATA_EXTENSIONS[ext])
    return plan


def _write_outputs(grid: Any, plan: dict[str, Any], files: Sequence[str], protected: Sequence[str],
                   annotate: bool, vmin: float | None, vmax: float | None) -> None:
    result = grid.result
    doc = grid.to_dict()
    table = lambda: grid_table(result, files, vmin, vmax)  # noqa: E731
    if plan["image"] is not None:
        from repsim_cli.render.images import render_heatmap

        data = render_heatmap(result, plan["image_kind"], files, annotate=annotate, vmin=vmin, vmax=vmax)
        write_atomic(plan["image"], data, protected)
        info(f"repsim: wrote {plan['image']} ({len(result.row_labels)} x {len(result.col_labels)} {result.metric.spec})")
    if plan["extra"] is not None:
        write_atomic(plan["extra"], format_text(plan["extra_kind"], doc, result.records, table, width=GRID_WIDTH), protected)
        info(f"repsim: wrote {plan['extra']}")
    if plan["data"] is not None:
        emit(doc, result.records, plan["data_kind"], plan["data"], protected, table)
        info(f"repsim: wrote {plan['data']}")
    elif plan["stdout_kind"] is not None:
        emit(doc, result.records, plan["stdout_kind"], None, protected, table)
