"""``repsim heatmap A [B]``: every layer of A against every layer of B (or of A), reusing work."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import typer

from repsim_cli.cli._app import app, handle_errors, info, warning
from repsim_cli.cli.common import (
    ChannelAxisOpt,
    FormatOpt,
    MaxGramOpt,
    MaxSamplesOpt,
    PoolOpt,
    SamplesOpt,
    SeedOpt,
    emit,
    format_text,
    input_files,
    load_options,
    progress_bar,
)
from repsim_cli.errors import RepsimError
from repsim_cli.io.layers import select_layers, split_selector
from repsim_cli.metrics import parse_metric
from repsim_cli.render import FORMATS, check_output_path, envelope, write_atomic

DATA_EXTENSIONS = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "table"}
#: the terminal grid is laid out for this many columns (12 layers fit)
GRID_WIDTH = 80

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
    b: Optional[str] = typer.Argument(None, help="Columns: FILE or FILE:LAYER. Omitted: A against itself."),
    metric: str = typer.Option("cka", "--metric", "-m", help="METRIC[:key=value,...] (one); see `repsim metrics`."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o",
        help="Image (.png/.svg/.pdf; the grid still prints to stdout) or data (.json/.csv/.tsv/.txt, instead of stdout); atomic, never an input file.",
    ),
    fmt: Optional[str] = FormatOpt,
    data_out: Optional[str] = typer.Option(None, "--data-out", help="Also write the data to FILE (.json/.csv/.tsv/.txt, by extension)."),
    annotate: bool = typer.Option(False, "--annotate", help="Write the values in the image's cells."),
    vmin: Optional[float] = typer.Option(None, "--vmin", help="Colour scale minimum (default: smallest value in the grid)."),
    vmax: Optional[float] = typer.Option(None, "--vmax", help="Colour scale maximum (default: largest value in the grid)."),
    permutations: int = typer.Option(0, "--permutations", help="Permutation p-value per cell: one shared, seeded set of row permutations; Holm over the grid."),
    alpha: float = typer.Option(0.05, "--alpha", help="Cells with Holm-adjusted p > alpha are marked (table) and hatched (image)."),
    max_memory: float = typer.Option(8.0, "--max-memory", help="Refuse grids whose per-layer states (data, N x N matrices) need more than this many GiB."),
    seed: int = SeedOpt,
    max_samples: Optional[int] = MaxSamplesOpt,
    samples: Optional[str] = SamplesOpt,
    pool: str = PoolOpt,
    channel_axis: int = ChannelAxisOpt,
    max_gram: int = MaxGramOpt,
) -> None:
    """Layer x layer grid of one metric: rows = A's layers, columns = B's (or A's) layers.

    Each layer is loaded and prepared once and each cell is one cross term; against itself a
    symmetric metric computes one triangle and sets the diagonal to its identity value. With the
    same number of layers on both sides, the footer reports the sanity check of Kornblith et al.
    (2019): in how many rows the same-index layer is strictly the most similar.
    """
    from repsim_cli.engines import grid as gridmod
    from repsim_cli.render.images import image_format

    bound = parse_metric(metric)
    if permutations < 0:
        raise RepsimError(f"--permutations must be >= 0, got {permutations}")
    if not 0 < alpha < 1:
        raise RepsimError(f"--alpha must lie in (0, 1), got {alpha}")
    if max_memory <= 0:
        raise RepsimError(f"--max-memory must be > 0 GiB, got {max_memory}")
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise RepsimError(f"--vmin must be below --vmax, got {vmin} and {vmax}")
    if fmt is not None and fmt not in FORMATS:
        raise RepsimError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    protected = input_files([a, b, samples])

    # where each output goes, decided (and checked) before any work
    image_path = image_kind = None
    data_path, data_kind = None, None
    stdout_kind: Optional[str] = fmt or "table"
    if output is not None:
        check_output_path(output, protected)
        image_kind = image_format(output)
        if image_kind is not None:
            image_path = output
        else:
            ext = os.path.splitext(output)[1].lower()
            if fmt is None and ext not in DATA_EXTENSIONS:
                raise RepsimError(
                    f"-o {output}: unknown extension {ext or '(none)'!r}; use .png/.svg/.pdf for an image "
                    "or .json/.csv/.tsv/.txt for data"
                )
            data_path, data_kind, stdout_kind = output, fmt or DATA_EXTENSIONS[ext], None
    extra_kind = None
    if data_out is not None:
        check_output_path(data_out, protected)
        ext = os.path.splitext(data_out)[1].lower()
        if ext not in DATA_EXTENSIONS:
            raise RepsimError(f"--data-out {data_out}: extension must be one of {', '.join(DATA_EXTENSIONS)}, got {ext or '(none)'!r}")
        if output is not None and os.path.realpath(output) == os.path.realpath(data_out):
            raise RepsimError(f"-o and --data-out name the same file {data_out}")
        extra_kind = DATA_EXTENSIONS[ext]
    if annotate and image_path is None:
        warning("--annotate only applies to an image (-o FILE.png/.svg/.pdf)")
    if image_path is not None:
        from repsim_cli.render.images import _pyplot

        _pyplot()  # fail now, not after the computation, if matplotlib is missing

    options = load_options(max_samples, seed, samples, pool, channel_axis, max_gram)
    row_refs = select_layers(a)
    col_refs = None if b is None else select_layers(b)
    cells = gridmod.count_cells(len(row_refs), None if col_refs is None else len(col_refs), bound)
    tested = _tested_cells(len(row_refs), None if col_refs is None else len(col_refs), bound)
    with progress_bar("heatmap", cells + permutations * tested) as progress:
        result = gridmod.compute_grid(
            row_refs, col_refs, bound, options, permutations=permutations, alpha=alpha,
            max_memory_gib=max_memory, progress=progress,
        )
    for w in dict.fromkeys([*(w for r in result.records for w in r["warnings"]), *result.warnings]):
        warning(w)

    files = [split_selector(a)[0]] + ([split_selector(b)[0]] if b is not None else [])
    doc = envelope("heatmap", seed, a=a, b=b, **result.document())
    table = lambda: grid_table(result, files, vmin, vmax)  # noqa: E731

    if image_path is not None:
        from repsim_cli.render.images import render_heatmap

        data = render_heatmap(result, image_kind, files, annotate=annotate, vmin=vmin, vmax=vmax)
        write_atomic(image_path, data, protected)
        info(f"repsim: wrote {image_path} ({len(result.row_labels)} x {len(result.col_labels)} {bound.spec})")
    if data_out is not None:
        write_atomic(data_out, format_text(extra_kind, doc, result.records, table, width=GRID_WIDTH), protected)
        info(f"repsim: wrote {data_out}")
    if data_path is not None:
        emit(doc, result.records, data_kind, data_path, protected, table)
        info(f"repsim: wrote {data_path}")
    elif stdout_kind is not None:
        emit(doc, result.records, stdout_kind, None, protected, table)


def _tested_cells(r: int, c: Optional[int], metric: Any) -> int:
    if c is not None:
        return r * c
    return r * (r - 1) // (2 if metric.symmetric else 1)


# --------------------------------------------------------------------------- terminal grid

#: viridis at 0, 0.1, ..., 1 (matplotlib's table), interpolated linearly for terminal colours
_VIRIDIS = (
    (0x44, 0x01, 0x54), (0x48, 0x24, 0x75), (0x41, 0x44, 0x87), (0x35, 0x5F, 0x8D), (0x2A, 0x78, 0x8E),
    (0x21, 0x91, 0x8C), (0x22, 0xA8, 0x84), (0x44, 0xBF, 0x70), (0x7A, 0xD1, 0x51), (0xBD, 0xDF, 0x26),
    (0xFD, 0xE7, 0x25),
)


def viridis_hex(t: float) -> str:
    """``#rrggbb`` of viridis at ``t`` in [0, 1] (clipped)."""
    t = min(1.0, max(0.0, float(t))) * (len(_VIRIDIS) - 1)
    k = min(int(t), len(_VIRIDIS) - 2)
    f = t - k
    rgb = [round(lo + f * (hi - lo)) for lo, hi in zip(_VIRIDIS[k], _VIRIDIS[k + 1])]
    return "#" + "".join(f"{v:02x}" for v in rgb)


def shorten(label: str, width: int) -> str:
    """Keep the distinguishing end: ``layers/05`` in 8 columns is ``…yers/05``."""
    if len(label) <= width:
        return label
    return "…" + label[-(width - 1):] if width > 1 else label[-width:]


def _fmt(v: float, decimals: int) -> str:
    """``decimals`` < 0: |decimals| digits without the leading zero (``.86``), for wide grids."""
    if abs(v) >= 100:
        return f"{v:.3g}"
    text = f"{v:.{abs(decimals)}f}"
    if decimals < 0:  # compact: three characters for values in (-10, 10), e.g. .86, 1.0, 2.5
        if text.startswith(("0.", "-0.")):
            return text.replace("0.", ".", 1)
        return f"{v:.{abs(decimals) - 1}f}" if abs(v) < 10 else f"{v:.0f}"
    return text


def grid_table(result: Any, files: Sequence[str], vmin: Optional[float] = None, vmax: Optional[float] = None) -> Any:
    """The grid as rich text: coloured cells (viridis background), shortened labels, legend and footer.

    Laid out for 80 columns: with 12 layers the labels take 8 characters and each cell 6.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    import numpy as np

    m = result.matrix
    r, c = m.shape
    lo = float(np.nanmin(m)) if vmin is None else vmin
    hi = float(np.nanmax(m)) if vmax is None else vmax
    span = hi - lo if hi > lo else 1.0
    similar = result.metric.higher_is_similar
    markers = (1 if result.sanity is not None else 0) + (1 if result.permutations else 0)
    label_w = min(max(len(n) for n in result.row_names), 14)
    decimals = -2
    for d in (4, 3, 2, -2):
        width = max(len(_fmt(v, d)) for v in m.ravel())
        if max(8, label_w) + c * (1 + width + markers) <= GRID_WIDTH:
            decimals = d
            break
    vw = max(len(_fmt(v, decimals)) for v in m.ravel())
    if label_w + c * (1 + vw + markers) > GRID_WIDTH:
        label_w = max(8, GRID_WIDTH - c * (1 + vw + markers))
    cell_w = vw + markers
    # column headers may be wider than the values when there is room
    room = (GRID_WIDTH - label_w) // c - 1
    cell_w = max(cell_w, min(max(len(n) for n in result.col_names), room))

    table = Table(box=None, padding=(0, 0), show_edge=False, pad_edge=False)
    table.add_column("", justify="left", no_wrap=True, min_width=label_w, max_width=label_w)
    for name in result.col_names:
        table.add_column(" " + shorten(name, cell_w), justify="right", no_wrap=True, min_width=cell_w + 1)
    for i in range(r):
        row: list[Any] = [Text(shorten(result.row_names[i], label_w))]
        for j in range(c):
            v = float(m[i, j])
            t = (v - lo) / span if similar else (hi - v) / span
            bg = viridis_hex(t)
            fg = "black" if t > 0.55 else "white"
            mark = ""
            if result.sanity is not None:
                mark += "*" if result.sanity.best[i] == j else " "
            if result.permutations:
                tested = result.tested[i, j]
                mark += "·" if tested and not result.significant[i, j] else " "
            cell = Text(" ")
            cell.append((_fmt(v, decimals).rjust(vw) + mark).rjust(cell_w), style=f"{fg} on {bg}")
            row.append(cell)
        table.add_row(*row)

    names = " vs ".join(files) if len(files) > 1 else (f"{files[0]} vs itself" if files else "")
    if len(result.metric.spec) + 2 + len(names) > GRID_WIDTH and len(files) > 1:  # long paths: one per line
        names = f"{files[0]}\n  vs {files[1]}"
    head = Text(f"{result.metric.spec}: {names}\nrows = A, columns = {'B' if len(files) > 1 else 'A'}; N={result.n_samples}, seed {result.seed}")
    legend = Text("scale ")
    for k in range(10):
        legend.append("█", style=viridis_hex(k / 9))
    dark, bright = (lo, hi) if similar else (hi, lo)
    legend.append(f" {_fmt(dark, 4)} (dark) to {_fmt(bright, 4)} (bright = {'more' if similar else 'less'} ")
    legend.append("similar)" if similar else "distant, i.e. more similar)")
    footer = [legend]
    if result.self_comparison:
        from repsim_cli.engines.grid import identity_value

        ident = identity_value(result.metric)
        if ident is not None:
            footer.append(Text(f"diagonal = {ident:g} (a layer with itself, not computed)"))
    if result.sanity is not None:
        s = result.sanity
        footer.append(Text("* = most similar column of each row (sanity check, Kornblith et al. 2019)"))
        footer.append(Text(
            f"sanity check: same-index layer strictly most similar in {s.correct}/{s.rows} rows "
            f"({s.fraction:.0%})"
        ))
    if result.permutations:
        n_sig = int(result.significant[result.tested].sum()) if result.tested.any() else 0
        n_test = int(result.tested.sum())
        footer.append(Text(f"· = not significant: Holm-adjusted permutation p > {result.alpha:g}"))
        footer.append(Text(
            f"{n_sig}/{n_test} tested cells significant ({result.permutations} permutations, seed {result.seed})"
        ))
    return Group(head, table, *footer)
