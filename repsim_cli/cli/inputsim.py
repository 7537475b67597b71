"""``repsim inputsim GRADS``: which inputs the network itself treats as similar (gradient cosine)."""

from __future__ import annotations

import numpy as np
import typer

from repsim_cli import api
from repsim_cli.cli._app import app, handle_errors, info
from repsim_cli.cli.common import FormatOpt, OutputOpt, ProgressOpt, QuietOpt, SeedOpt, check_outputs, emit, input_files
from repsim_cli.errors import RepsimError
from repsim_cli.render import check_output_path
from repsim_cli.render.kernel import check_kernel_dtype, kernel_attributes, write_kernel_h5
from repsim_cli.render.terminal import inputsim_row, inputsim_table

EPILOG = """
**Examples**

* `repsim inputsim sample_data/grads.h5 --query 0,1,2 --top-k 5 --train sample_data/grads.h5:train_grads`

* `repsim inputsim sample_data/grads.h5 --top-k 5 --threshold 0.5 --alpha 2 -f json -o sim.json`

* `repsim inputsim test.h5:grads --reference train.h5:grads --top-k 10` (neighbours in another set; no self to exclude)

* `repsim inputsim jac.h5 --multi-output rotation --rcond 1e-8 --kernel-out K.h5`

Kernel (Charpiat et al., NeurIPS 2019): k(x, x') = cos(grad f(x), grad f(x')) in [-1, 1].
"""


def parse_query(query: str | None, query_file: str | None) -> np.ndarray | list[int] | None:
    """``--query I,J,...`` or ``--query-file idx.npy`` -> 0-based indices (None = all rows)."""
    if query is not None and query_file is not None:
        raise RepsimError("--query and --query-file cannot be combined")
    if query is not None:
        try:
            idx = [int(t) for t in query.replace(" ", "").split(",") if t != ""]
        except ValueError:
            raise RepsimError(f"--query expects comma-separated 0-based integers, got {query!r}") from None
        if not idx:
            raise RepsimError("--query is empty")
        return idx  # Python ints: the library checks the range (beyond int64 too)
    if query_file is not None:
        from repsim_cli.io.layers import read_index_file

        return read_index_file(query_file, "query indices")
    return None


@app.command(epilog=EPILOG)
@handle_errors
def inputsim(
    grads: str = typer.Argument(..., help="Per-example gradients: FILE or FILE:DATASET, N x P (or N x d x P Jacobians)."),
    reference: str | None = typer.Option(None, "--reference", help=(
        "Reference set FILE[:DATASET] (default: GRADS itself). Another set has no 'self' to exclude."
    )),
    query: str | None = typer.Option(None, "--query", help="Comma-separated 0-based rows of GRADS to report (default: all)."),
    query_file: str | None = typer.Option(None, "--query-file", help=".npy file of 0-based query rows."),
    top_k: int | None = typer.Option(None, "--top-k", help="Report the K nearest neighbours (largest kernel; ties: lower index)."),
    threshold: float | None = typer.Option(None, "--threshold", help="Hard density: #{x' : k(x, x') >= tau}, tau in [0, 1]."),
    alpha: float | None = typer.Option(None, "--alpha", help="Positive-only density: sum over k > 0 of k^alpha (alpha > 0)."),
    include_self: bool = typer.Option(False, "--include-self", help="Count x itself in densities and neighbours (default: excluded)."),
    drop_zero: bool = typer.Option(False, "--drop-zero", help="Drop zero-gradient rows (listed on stderr) instead of failing."),
    multi_output: str = typer.Option("trace", "--multi-output", help="d > 1 outputs: trace = tr K^C / d; rotation (d = 2) = 1/2 sqrt(|K^C|_F^2 + 2 det K^C)."),
    rcond: float | None = typer.Option(None, "--rcond", help="Pseudo-inverse square root of singular K(x, x): eigenvalues <= R * max are dropped."),
    train: str | None = typer.Option(None, "--train", help="Training gradients FILE[:DATASET]: adds reliability = sum_i g(x).g(x_i) / |g(x)|^2."),
    kernel_out: str | None = typer.Option(None, "--kernel-out", help="Write the Q x M kernel as /kernel to this HDF5 file (atomic, chunked)."),
    kernel_dtype: str = typer.Option("float32", "--kernel-dtype", help="float32 | float64 for --kernel-out."),
    block_size: int | None = typer.Option(None, "--block-size", help="Parameters (columns) per block (default ~64 MiB; rounded to the HDF5 chunk width)."),
    fmt: str | None = FormatOpt,
    output: str | None = OutputOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
    progress: str = ProgressOpt,
) -> None:
    """Input similarity from the network's perspective (Charpiat et al., NeurIPS 2019).

    From per-example parameter gradients, the kernel k(x, x') = cos(grad f(x), grad f(x')),
    each input's soft density (sum of k over the reference set), optional hard/alpha
    densities, nearest neighbours, and reliability against training gradients. The data is
    streamed in column blocks; N x P is never held in memory.
    """
    protected = input_files([grads, reference, train, query_file])
    check_outputs(fmt, output, protected, {"--kernel-out": kernel_out})
    if kernel_out is not None:
        check_output_path(kernel_out, protected, regular_only=True)
        check_kernel_dtype(kernel_dtype)
    sim = api.inputsim(
        grads, reference=reference, query=parse_query(query, query_file), top_k=top_k, threshold=threshold,
        alpha=alpha, include_self=include_self, drop_zero=drop_zero, multi_output=multi_output, rcond=rcond,
        train=train, keep_kernel=kernel_out is not None, block_size=block_size, seed=seed, progress=progress,
    )
    if kernel_out is not None:
        attrs = kernel_attributes(sim.result, sim.body, rcond, seed)
        write_kernel_h5(kernel_out, sim.result, kernel_dtype, attrs, protected)
        info(f"repsim: wrote {sim.kernel.shape[0]} x {sim.kernel.shape[1]} kernel ({kernel_dtype}) to {kernel_out}:kernel")
    records = sim.to_dicts()
    emit(sim.to_dict(), [inputsim_row(r) for r in records], fmt, output, protected,
         lambda: inputsim_table(records, sim.summary, seed))
