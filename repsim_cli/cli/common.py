"""Options and output plumbing shared by the subcommands (parsing and rendering only)."""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import typer

from repsim_cli.engines.compare import LoadOptions
from repsim_cli.errors import RepsimError
from repsim_cli.io.layers import split_selector
from repsim_cli.render import (
    check_distinct_outputs,
    check_output_path,
    choose_format,
    render_text,
    to_delimited,
    to_json,
    write_atomic,
    write_stdout,
)
from repsim_cli.render.encoding import fit_encoding
from repsim_cli.render.output import STDOUT
from repsim_cli.render.progress import progress

# ---- option declarations reused by several commands (same names, same help everywhere)
FormatOpt = typer.Option(None, "--format", "-f", help="table | json | csv | tsv (default: from -o's extension, else table).")
OutputOpt = typer.Option(None, "--output", "-o", help=(
    "Write the output to FILE instead of stdout: atomically for a regular file, in place for a device or FIFO "
    "(/dev/null, /dev/stdout); - is stdout. Never overwrites an input file."
))
QuietOpt = typer.Option(False, "--quiet", "-q", help="Summarise warnings in one line on stderr (the JSON output keeps them all).")
ProgressOpt = typer.Option("auto", "--progress", help=(
    "auto | always | never. auto: a bar on a terminal; otherwise one line about every 10 s (done/total, ETA) "
    "for work that lasts longer than that."
))
SeedOpt = typer.Option(0, "--seed", min=0, help="Seed (>= 0) for every random choice (subsets, permutations, bootstrap); echoed in the output.")
MaxSamplesOpt = typer.Option(None, "--max-samples", help="Use a random subset of M inputs (rows), the same rows on every side (seeded by --seed).")
SamplesOpt = typer.Option(None, "--samples", help=".npy file of 0-based row indices to use on every side.")
PoolOpt = typer.Option("none", "--pool", help=(
    "N-D layers (N x C x H x W, N x T x D): none = flatten to N x (rest); "
    "mean = average every axis but N and --channel-axis (a layer whose `axes` attribute says e.g. N,T,D keeps D); "
    "N x T x D tokens, padding dropped by the file's attention_mask: tokens = one row per real token "
    "(compare's --permutations/--bootstrap move whole inputs), last / first = the last / first real token of each input."
))
ChannelAxisOpt = typer.Option(1, "--channel-axis", help="Axis kept by --pool mean (default 1: channels of N x C x H x W).")
MaxGramOpt = typer.Option(20000, "--max-gram", help="Refuse metrics that build N x N matrices (rbf cka, rsa, knn) above this many inputs.")


def one_metric(metrics: Sequence[str], command: str) -> str:
    """The single ``-m`` of a one-metric command; two are a usage error (click would keep the last)."""
    if len(metrics) != 1:
        raise RepsimError(
            f"{command} takes one --metric, got {len(metrics)} ({', '.join(metrics)}); run it once per metric"
            + (" or use `repsim compare` with several -m" if command == "heatmap" else "")
        )
    return metrics[0]


def load_options(
    max_samples: int | None, seed: int, samples: str | None, pool: str, channel_axis: int, max_gram: int = 20000
) -> LoadOptions:
    return LoadOptions(max_samples, seed, samples, pool, channel_axis, max_gram)


def check_outputs(
    fmt: str | None, output: str | None, protected: Sequence[str], others: dict[str, str | None] | None = None
) -> None:
    """Validate ``--format``, ``-o`` and the command's other outputs before any work.

    ``others`` maps flags (``--kernel-out``) to paths: none may name the same file as another
    output or an input (never compute for minutes, then refuse or overwrite).
    """
    choose_format(fmt, None if output == STDOUT else output)
    if output is not None:
        check_output_path(output, protected)
    check_distinct_outputs({"-o": output, **(others or {})})


def input_files(args: Sequence[str | None]) -> list[str]:
    """The file part of every selector argument (protected from being overwritten)."""
    return [split_selector(a)[0] for a in args if a]


def emit(
    doc: dict[str, Any],
    records: Sequence[dict[str, Any]],
    fmt: str | None,
    output: str | None,
    protected: Sequence[str],
    table: Callable[[], Any],
) -> None:
    """Print or atomically write ``doc`` (json), ``records`` (csv/tsv) or ``table()`` (a rich renderable)."""
    if output == STDOUT:
        output = None
    kind = choose_format(fmt, output)
    if output is not None:
        check_output_path(output, protected)
    if kind == "table" and output is None and sys.stdout.isatty():
        from rich.console import Console

        console = Console(markup=False)  # names in cells are text, never rich markup
        with console.capture() as captured:  # then written in the terminal's encoding
            console.print(table())
        text = captured.get()
    else:
        text = format_text(kind, doc, records, table)
    if output is None:
        write_stdout(fit_encoding(text, getattr(sys.stdout, "encoding", None)))
    else:
        write_atomic(output, text, protected)


def format_text(
    kind: str,
    doc: dict[str, Any],
    records: Sequence[dict[str, Any]],
    table: Callable[[], Any],
    width: int | None = None,
) -> str:
    """``doc`` as JSON, ``records`` as CSV/TSV (with the seed), or ``table()`` as plain text."""
    if kind == "json":
        return to_json(doc)
    if kind in ("csv", "tsv"):
        return to_delimited(records, "," if kind == "csv" else "\t", doc.get("seed"))
    return render_text(table(), width=width)


def progress_bar(description: str, total: int) -> Any:
    """Progress on stderr in ``auto`` mode (see :mod:`repsim_cli.render.progress`)."""
    return progress(description, total, enabled="auto")
