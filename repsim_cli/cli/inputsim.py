"""``repsim inputsim GRADS``: which inputs the network itself treats as similar (gradient cosine)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import typer

from repsim_cli.cli._app import app, handle_errors, info, warning
from repsim_cli.cli.common import FormatOpt, OutputOpt, SeedOpt, emit, input_files, progress_bar
from repsim_cli.errors import RepsimError
from repsim_cli.engines.inputsim import (
    MULTI_OUTPUT_FORMS,
    attach_labels,
    count_steps,
    find_labels,
    input_similarity,
    iter_records,
    needs_gram,
    resolve_gradients,
    write_kernel_h5,
)
from repsim_cli.render import envelope, fmt_value

EPILOG = """
**Examples**

* `repsim inputsim sample_data/grads.h5 --query 0,1,2 --top-k 5 --train sample_data/grads.h5:train_grads`

* `repsim inputsim sample_data/grads.h5 --top-k 5 --threshold 0.5 --alpha 2 -f json -o sim.json`

* `repsim inputsim test.h5:grads --reference train.h5:grads --top-k 10` (neighbours in another set; no self to exclude)

* `repsim inputsim jac.h5 --multi-output rotation --rcond 1e-8 --kernel-out K.h5`

Kernel (Charpiat et al., NeurIPS 2019): k(x, x') = cos(grad f(x), grad f(x')) in [-1, 1].
"""


def parse_query(query: Optional[str], query_file: Optional[str]) -> Optional[np.ndarray]:
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
        return np.asarray(idx, dtype=np.int64)
    if query_file is not None:
        from repsim_cli.io.layers import read_index_file

        return read_index_file(query_file, "query indices")
    return None


@app.command(epilog=EPILOG)
@handle_errors
def inputsim(
    grads: str = typer.Argument(..., help="Per-example gradients: FILE or FILE:DATASET, N x P (or N x d x P Jacobians)."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference set FILE[:DATASET] (default: GRADS itself). Another set has no 'self' to exclude."),
    query: Optional[str] = typer.Option(None, "--query", help="Comma-separated 0-based rows of GRADS to report (default: all)."),
    query_file: Optional[str] = typer.Option(None, "--query-file", help=".npy file of 0-based query rows."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Report the K nearest neighbours (largest kernel; ties: lower index)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Hard density: #{x' : k(x, x') >= tau}, tau in [0, 1]."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Positive-only density: sum over k > 0 of k^alpha (alpha > 0)."),
    include_self: bool = typer.Option(False, "--include-self", help="Count x itself in densities and neighbours (default: excluded)."),
    drop_zero: bool = typer.Option(False, "--drop-zero", help="Drop zero-gradient rows (listed on stderr) instead of failing."),
    multi_output: str = typer.Option("trace", "--multi-output", help="d > 1 outputs: trace = tr K^C / d; rotation (d = 2) = 1/2 sqrt(|K^C|_F^2 + 2 det K^C)."),
    rcond: Optional[float] = typer.Option(None, "--rcond", help="Pseudo-inverse square root of singular K(x, x): eigenvalues <= R * max are dropped."),
    train: Optional[str] = typer.Option(None, "--train", help="Training gradients FILE[:DATASET]: adds reliability = sum_i g(x).g(x_i) / |g(x)|^2."),
    kernel_out: Optional[str] = typer.Option(None, "--kernel-out", help="Write the Q x M kernel as /kernel to this HDF5 file (atomic, chunked)."),
    kernel_dtype: str = typer.Option("float32", "--kernel-dtype", help="float32 | float64 for --kernel-out."),
    block_size: Optional[int] = typer.Option(None, "--block-size", help="Parameters (columns) per block (default ~64 MiB; rounded to the HDF5 chunk width)."),
    fmt: Optional[str] = FormatOpt,
    output: Optional[str] = OutputOpt,
    seed: int = SeedOpt,
) -> None:
    """Input similarity from the network's perspective (Charpiat et al., NeurIPS 2019).

    From per-example parameter gradients, the kernel k(x, x') = cos(grad f(x), grad f(x')),
    each input's soft density (sum of k over the reference set), optional hard/alpha
    densities, nearest neighbours, and reliability against training gradients. The data is
    streamed in column blocks; N x P is never held in memory.
    """
    if multi_output not in MULTI_OUTPUT_FORMS:
        raise RepsimError(f"--multi-output must be one of {', '.join(MULTI_OUTPUT_FORMS)}, got {multi_output!r}")
    if kernel_dtype not in ("float32", "float64"):
        raise RepsimError(f"--kernel-dtype must be float32 or float64, got {kernel_dtype!r}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise RepsimError(f"--threshold must lie in [0, 1], got {threshold}")
    if alpha is not None and not alpha > 0:
        raise RepsimError(f"--alpha must be > 0, got {alpha}")
    protected = input_files([grads, reference, train, query_file])
    from repsim_cli.render import check_output_path

    for target in (kernel_out, output):  # refuse before any work is done
        if target is not None:
            check_output_path(target, protected)
    qidx = parse_query(query, query_file)
    g = resolve_gradients(grads, "GRADS")
    ref = resolve_gradients(reference, "reference") if reference is not None else None
    tr = resolve_gradients(train, "train") if train is not None else None
    gram = needs_gram(top_k, threshold, alpha, kernel_out is not None, multi_output)
    with progress_bar("inputsim", count_steps(g, block_size, gram)) as progress:
        result = input_similarity(
            g, ref, qidx, top_k=top_k, threshold=threshold, alpha=alpha, include_self=include_self,
            drop_zero=drop_zero, form=multi_output, rcond=rcond, train=tr, block_size=block_size,
            keep_kernel=kernel_out is not None, progress=progress,
        )
    ref_eff = ref if ref is not None else g
    qlab = find_labels(g)
    rlab = qlab if result.same_set else find_labels(ref_eff)
    attach_labels(result, qlab, rlab)
    warnings = list(result.warnings)
    for role, rows in result.dropped.items():
        warnings.append(f"dropped {len(rows)} zero-gradient {role} rows (0-based): {', '.join(map(str, rows))}")
    if qlab is not None and top_k is not None and rlab is None:
        warnings.append(f"{ref_eff.label}: no labels found, so no same-label neighbour fraction")
    for w in warnings:
        warning(w)
    if kernel_out is not None:
        attrs = {
            "formula": "trace: tr(K^C)/d" if multi_output == "trace" else "rotation: 0.5*sqrt(|K^C|_F^2 + 2 det K^C)",
            "grads": g.label, "reference": ref_eff.label, "multi_output": multi_output,
            "rcond": rcond if rcond is not None else "none", "P": g.p, "d": g.d,
            "block_size": result.block_size, "seed": seed, "paper": "Charpiat et al., NeurIPS 2019",
        }
        write_kernel_h5(kernel_out, result, kernel_dtype, attrs, protected)
        info(f"repsim: wrote {result.kernel.shape[0]} x {result.kernel.shape[1]} kernel ({kernel_dtype}) to {kernel_out}:kernel")
    records = list(iter_records(result))
    summary = summarize(result, g, ref_eff)
    doc = envelope(
        "inputsim", seed, grads=g.label, reference=ref_eff.label, train=tr.label if tr else None,
        params={"top_k": top_k, "threshold": threshold, "alpha": alpha, "include_self": include_self,
                "drop_zero": drop_zero, "multi_output": multi_output, "rcond": rcond, "block_size": result.block_size},
        summary=summary, warnings=warnings, results=records,
    )
    flat = [_flat(r) for r in records]
    emit(doc, flat, fmt, output, protected, lambda: inputsim_table(records, summary, seed))


def summarize(result: Any, g: Any, ref: Any) -> dict[str, Any]:
    """N, M, P, d, what 'self' means, block plan and the mean same-label neighbour fraction."""
    s: dict[str, Any] = {
        "N": result.n, "queries": int(result.query_index.size), "M": result.m, "P": result.p, "d": result.d,
        "multi_output": result.form if result.d > 1 else None,
        "self_excluded": result.self_excluded,
        "self": ("reference is the query set; x itself " + ("excluded" if result.self_excluded else "included"))
        if result.same_set else "reference is another dataset; no self to exclude",
        "mean_density_soft": float(np.mean(result.density_soft)),
        "block_size": result.block_size, "blocks": result.n_blocks, "passes": result.passes,
    }
    if result.reliability is not None:
        s["mean_reliability"] = float(np.mean(result.reliability))
    if result.same_label_fraction is not None:
        s["mean_same_label_fraction"] = float(np.mean(result.same_label_fraction))
    if result.dropped:
        s["dropped"] = result.dropped
    return s


def _flat(rec: dict[str, Any]) -> dict[str, Any]:
    """CSV row: neighbours as 'i:k' pairs and a separate index list."""
    out = dict(rec)
    if "neighbors" in out:
        nb = out.pop("neighbors")
        out["neighbors"] = " ".join(f"{n['index']}:{n['kernel']!r}" for n in nb)
        if nb and "label" in nb[0]:
            out["neighbor_labels"] = " ".join(str(n["label"]) for n in nb)
    out["warnings"] = []
    return out


def inputsim_table(records: Sequence[dict[str, Any]], summary: dict[str, Any], seed: int) -> Any:
    """A rich table, one row per input; neighbours as ``index(label) kernel``."""
    from rich.table import Table

    cols = [("input", "index")]
    if any("label" in r for r in records):
        cols.append(("label", "label"))
    cols.append(("soft density", "density_soft"))
    for title, key in (("hard", "density_hard"), ("alpha", "density_alpha"), ("reliability", "reliability"), ("same label", "same_label_fraction")):
        if any(key in r for r in records):
            cols.append((title, key))
    caption = (
        f"N={summary['N']} M={summary['M']} P={summary['P']} d={summary['d']}; {summary['self']}; seed {seed}"
        + (f"; mean same-label fraction {summary['mean_same_label_fraction']:.4f}" if "mean_same_label_fraction" in summary else "")
    )
    table = Table(caption=caption, caption_justify="left")
    for title, _ in cols:
        table.add_column(title, justify="right")
    has_nb = any("neighbors" in r for r in records)
    if has_nb:
        table.add_column("neighbours: index(label) kernel", justify="left")
    for r in records:
        row = [fmt_value(r.get(key)) for _, key in cols]
        if has_nb:
            row.append("  ".join(
                f"{n['index']}" + (f"({n['label']})" if "label" in n else "") + f" {n['kernel']:.3f}" for n in r.get("neighbors", [])
            ))
        table.add_row(*row)
    return table
