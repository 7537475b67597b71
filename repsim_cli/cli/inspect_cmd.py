"""``repsim inspect FILE...``: what is in an activation file, without loading its data."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from repsim_cli.cli._app import app, handle_errors
from repsim_cli.cli.common import ChannelAxisOpt, FormatOpt, OutputOpt, PoolOpt, emit, input_files
from repsim_cli.io.layers import open_activation_file, pooled_shape, split_selector
from repsim_cli.render import envelope

EPILOG = """
**Examples**

* `repsim inspect sample_data/mlp_seed0.h5`

* `repsim inspect run.h5 --pool mean -f json` (shapes after mean pooling of N-D layers)

* `repsim inspect run.h5 --no-constant` (metadata only: no data is read)
"""


@app.command(epilog=EPILOG)
@handle_errors
def inspect(
    files: List[str] = typer.Argument(..., metavar="FILE", help="Activation files (.h5/.hdf5, .npy, .npz)."),
    fmt: Optional[str] = FormatOpt,
    output: Optional[str] = OutputOpt,
    constant: bool = typer.Option(
        True,
        "--constant/--no-constant",
        help="Count constant (dead) columns per layer, streaming the data in row blocks; --no-constant reads metadata only.",
    ),
    pool: str = PoolOpt,
    channel_axis: int = ChannelAxisOpt,
) -> None:
    """List each file's layers (shape, dtype, N, features after flattening/pooling, constant columns) and other arrays.

    Layers are never loaded whole: constant columns are counted in row blocks of bounded
    size, and --no-constant reads metadata only.
    """
    from repsim_cli.io.layers import count_constant_columns_streaming

    docs = []
    records = []
    for arg in files:
        path, _ = split_selector(arg)
        af = open_activation_file(path)
        datasets = []
        for info in af.datasets:
            entry: dict[str, Any] = {
                "name": info.name,
                "shape": list(info.shape),
                "dtype": str(info.dtype),
                "is_layer": info.is_layer,
            }
            if info.is_layer:
                shape = pooled_shape(info.shape, pool, channel_axis, f"{path}:{info.name}")
                entry["n_samples"] = info.n_samples
                entry["features"] = int(shape[1])
                entry["matrix_shape"] = list(shape)
                if constant:
                    ref = next(r for r in af.layers if r.name == info.name)
                    entry["constant_columns"] = count_constant_columns_streaming(ref, pool, channel_axis)
            else:
                entry["reason"] = info.reason
            datasets.append(entry)
            records.append({"file": path, **entry})
        docs.append(
            {
                "file": path,
                "format": af.kind,
                "layers": [ref.name for ref in af.layers],
                "datasets": datasets,
                "attrs": af.attrs,
            }
        )
    doc = envelope("inspect", None, files=docs)
    emit(doc, records, fmt, output, input_files(files), lambda: _tables(docs, constant))


def _tables(docs: list[dict[str, Any]], constant: bool) -> Any:
    from rich.console import Group
    from rich.table import Table

    parts = []
    for d in docs:
        table = Table(title=f"{d['file']} ({d['format']})", title_justify="left")
        for col in ("dataset", "layer", "shape", "dtype", "N", "features"):
            table.add_column(col, justify="right" if col in ("N", "features") else "left")
        if constant:
            table.add_column("constant cols", justify="right")
        order = {name: i for i, name in enumerate(d["layers"])}
        for e in sorted(d["datasets"], key=lambda e: (not e["is_layer"], order.get(e["name"], 0))):
            row = [
                e["name"],
                f"#{order[e['name']] + 1}" if e["is_layer"] else f"no: {e['reason']}",
                "x".join(str(s) for s in e["shape"]) or "scalar",
                e["dtype"],
                str(e.get("n_samples", "")),
                str(e.get("features", "")),
            ]
            if constant:
                row.append(str(e.get("constant_columns", "")))
            table.add_row(*row)
        parts.append(table)
        if d["attrs"]:
            attrs = "; ".join(f"{k}={v}" for k, v in d["attrs"].items())
            parts.append(f"attributes: {attrs}\n")
    return Group(*parts)
