"""``repsim inspect FILE...``: what is in an activation file, without loading its data."""

from __future__ import annotations

import typer

from repsim_cli.cli._app import app, handle_errors
from repsim_cli.cli.common import ChannelAxisOpt, FormatOpt, OutputOpt, PoolOpt, QuietOpt, check_outputs, emit, input_files
from repsim_cli.io.layers import describe_file
from repsim_cli.render import envelope
from repsim_cli.render.terminal import inspect_table

EPILOG = """
**Examples**

* `repsim inspect sample_data/mlp_seed0.h5`

* `repsim inspect run.h5 --pool mean -f json` (shapes after mean pooling of N-D layers)

* `repsim inspect run.h5 --no-constant` (metadata only: no data is read)
"""


@app.command(epilog=EPILOG)
@handle_errors
def inspect(
    files: list[str] = typer.Argument(..., metavar="FILE", help="Activation files (.h5/.hdf5, .npy, .npz)."),
    fmt: str | None = FormatOpt,
    output: str | None = OutputOpt,
    constant: bool = typer.Option(
        True,
        "--constant/--no-constant",
        help="Count constant (dead) columns per layer, streaming the data in row blocks; --no-constant reads metadata only.",
    ),
    pool: str = PoolOpt,
    channel_axis: int = ChannelAxisOpt,
    quiet: bool = QuietOpt,
) -> None:
    """List each file's layers (shape, dtype, N, features after flattening/pooling, constant columns) and other arrays.

    Layers are never loaded whole: constant columns are counted in row blocks of bounded
    size, and --no-constant reads metadata only.
    """
    check_outputs(fmt, output, input_files(files))
    docs = [describe_file(arg, constant, pool, channel_axis) for arg in files]
    records = [{"file": d["file"], **entry} for d in docs for entry in d["datasets"]]
    doc = envelope("inspect", None, files=docs)
    emit(doc, records, fmt, output, input_files(files), lambda: inspect_table(docs, constant))
