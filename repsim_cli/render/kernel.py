"""The kernel file of ``inputsim --kernel-out``: /kernel (Q x M), /query_index, /reference_index."""

from __future__ import annotations

from typing import Any, Sequence

from repsim_cli.errors import RepsimError
from repsim_cli.render.output import atomic_output


def check_kernel_dtype(dtype: str) -> None:
    if dtype not in ("float32", "float64"):
        raise RepsimError(f"kernel_dtype must be float32 or float64, got {dtype!r}")


def kernel_attributes(result: Any, body: dict[str, Any], rcond: float | None, seed: int) -> dict[str, Any]:
    """Provenance attributes of the /kernel dataset."""
    form = result.form
    return {
        "formula": "trace: tr(K^C)/d" if form == "trace" else "rotation: 0.5*sqrt(|K^C|_F^2 + 2 det K^C)",
        "grads": body["grads"], "reference": body["reference"], "multi_output": form,
        "rcond": rcond if rcond is not None else "none", "P": result.p, "d": result.d,
        "block_size": result.block_size, "seed": seed, "paper": "Charpiat et al., NeurIPS 2019",
    }


def write_kernel_h5(path: str, result: Any, dtype: str, attrs: dict[str, Any], protected: Sequence[str] = ()) -> None:
    """Write ``/kernel`` (Q x M), ``/query_index`` and ``/reference_index`` atomically.

    A temporary file in the target folder is written, then ``os.replace``-d onto ``path``;
    ``path`` must not be an input file.
    """
    import h5py

    if result.kernel is None:
        raise RepsimError("internal error: no kernel to write")
    check_kernel_dtype(dtype)
    with atomic_output(path, protected, suffix=".h5.tmp") as tmp:
        k = result.kernel
        with h5py.File(tmp, "w") as f:
            chunks = (min(k.shape[0], 256), min(k.shape[1], 256))
            ds = f.create_dataset("kernel", data=k.astype(dtype), chunks=chunks)
            for key, val in attrs.items():
                ds.attrs[key] = "" if val is None else val
            f.create_dataset("query_index", data=result.query_index)
            f.create_dataset("reference_index", data=result.reference_index)
