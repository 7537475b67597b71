"""Incremental HDF5 writing: float32 datasets created at the first batch, filled batch by batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from repsim_cli.errors import RepsimError

#: target bytes of one HDF5 chunk
CHUNK_BYTES = 2**20


def chunk_shape(shape: tuple[int, ...], batch: int, itemsize: int = 4) -> tuple[int, ...]:
    """Chunks of whole rows (at most one batch, about 1 MiB); N x P matrices get column blocks too.

    N x P gradient matrices are chunked (rows, cols) with ``rows <= batch`` so a batch write
    touches whole chunks and ``repsim inputsim`` can read column blocks.
    """
    n = shape[0]
    rest = shape[1:]
    row_bytes = max(1, int(np.prod(rest, dtype=np.int64)) * itemsize)
    rows = max(1, min(n, batch, CHUNK_BYTES // row_bytes if row_bytes <= CHUNK_BYTES else 1))
    if len(rest) == 1 and row_bytes * rows > CHUNK_BYTES:
        cols = max(1, min(rest[0], CHUNK_BYTES // (itemsize * rows)))
        return (rows, cols)
    return (rows, *rest)


def h5_attr(value: Any) -> Any:
    """A value HDF5 can store as an attribute (lists of str as variable-length UTF-8)."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        import h5py

        return np.array(value, dtype=h5py.string_dtype())
    return value


class H5Writer:
    """Writes row batches of named datasets into an open ``h5py.File``."""

    def __init__(self, f: Any, n: int, batch: int):
        self.f, self.n, self.batch = f, n, batch
        self.shapes: dict[str, tuple[int, ...]] = {}

    def write(self, name: str, start: int, block: np.ndarray, attrs: dict[str, Any] | None = None) -> None:
        """Rows ``start .. start + len(block)`` of dataset ``name`` (created as float32 N x ... on first use)."""
        rest = tuple(int(s) for s in block.shape[1:])
        if name not in self.shapes:
            shape = (self.n, *rest)
            if name in self.f:
                raise RepsimError(f"two captured outputs would both be stored as {name!r}")
            ds = self.f.create_dataset(name, shape=shape, dtype=np.float32, chunks=chunk_shape(shape, self.batch))
            for k, v in (attrs or {}).items():
                ds.attrs[k] = h5_attr(v)
            self.shapes[name] = shape
        elif self.shapes[name][1:] != rest:
            raise RepsimError(
                f"{name}: rows {start}.. have shape {rest} per input but earlier rows had {self.shapes[name][1:]}; "
                "a layer must have the same shape for every input (pad variable-length inputs to one length)"
            )
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1))[0])
            raise RepsimError(f"{name}: the model produced NaN or infinite values (first at input {bad})")
        self.f[name][start : start + block.shape[0]] = block
