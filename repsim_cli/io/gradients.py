"""Gradient files for ``inputsim``: N x P (scalar output) or N x d x P (d outputs) datasets.

Gradient datasets are read through the same single reader as activation layers
(:mod:`repsim_cli.io.arrays`), in column blocks aligned to the file's chunking, so N x P is
never held in float64.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.io.arrays import ArrayInfo, file_kind, is_numeric, list_arrays, open_array, read_array
from repsim_cli.io.layers import LayerRef, split_selector

#: default size of one float64 column block of all rows (bytes)
DEFAULT_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class GradRef(LayerRef):
    """A gradient dataset (N x P, or N x d x P): a :class:`LayerRef` plus its chunking, not loaded."""

    chunks: tuple[int, ...] | None = None

    @property
    def n(self) -> int:
        return int(self.shape[0])

    @property
    def d(self) -> int:
        return int(self.shape[1]) if len(self.shape) == 3 else 1

    @property
    def p(self) -> int:
        return int(self.shape[-1])

    def same_dataset(self, other: GradRef) -> bool:
        return os.path.realpath(self.file) == os.path.realpath(other.file) and self.name == other.name


def _list_arrays(path: str) -> list[tuple[str, tuple[int, ...], np.dtype, tuple[int, ...] | None]]:
    """(name, shape, dtype, chunks) of every array in the file, without loading data."""
    infos: list[ArrayInfo] = list_arrays(path)[0]
    return [(i.name, i.shape, i.dtype, i.chunks) for i in infos]


def resolve_gradients(arg: str, role: str = "GRADS") -> GradRef:
    """``FILE[:DATASET]`` -> :class:`GradRef`.

    Without ``:DATASET``: the single numeric dataset with ndim >= 2, else (HDF5/npz) the one
    named ``grads``, else an error listing the datasets. The dataset must be N x P or N x d x P.
    """
    path, pattern = split_selector(arg)
    kind = file_kind(path)
    arrays = _list_arrays(path)
    listing = ", ".join(f"{n} {s} {d}" for n, s, d, _ in arrays) or "(none)"
    if pattern is not None:
        name = pattern.lstrip("/")
        hits = [a for a in arrays if a[0] == name]
        if not hits:
            raise RepsimError(f"{path}: {role} dataset {name!r} not found; datasets in the file: {listing}")
        chosen = hits[0]
    else:
        eligible = [a for a in arrays if len(a[1]) >= 2 and is_numeric(a[2])]
        if len(eligible) == 1:
            chosen = eligible[0]
        elif any(a[0] == "grads" for a in eligible):
            chosen = next(a for a in eligible if a[0] == "grads")
        elif not eligible and len(arrays) == 1:
            chosen = arrays[0]  # validated below (ndim 1 -> clear error)
        else:
            raise RepsimError(
                f"{path}: cannot tell which dataset holds the {role} gradients "
                f"({len(eligible)} candidates with ndim >= 2); name one as {path}:DATASET. Datasets: {listing}"
            )
    name, shape, dtype, chunks = chosen
    ref = GradRef(path, name, shape, np.dtype(dtype), kind, chunks=tuple(chunks) if chunks else None)
    return validate_gradients(ref, role)


def find_labels(ref: GradRef) -> np.ndarray | None:
    """Labels of ``ref``'s rows: dataset ``<prefix>labels`` for ``<prefix>grads``, else ``labels``.

    Only a 1-D array of length N counts; returns None when there is none.
    """
    if ref.kind == "npy":
        return None
    candidates = []
    base = ref.name.rsplit("/", 1)
    leaf = base[-1]
    folder = base[0] + "/" if len(base) == 2 else ""
    if leaf.endswith("grads"):
        candidates.append(folder + leaf[: -len("grads")] + "labels")
    candidates += [folder + "labels", "labels"]
    try:
        arrays = {a[0]: a for a in _list_arrays(ref.file)}
        for cand in dict.fromkeys(candidates):
            if cand in arrays and arrays[cand][1] == (ref.n,):
                return read_array(ref.file, ref.kind, cand)
    except Exception as exc:
        raise RepsimError(f"{ref.file}: cannot read labels ({type(exc).__name__}: {exc})") from exc
    return None


class _Reader:
    """Column-block reader of one gradient dataset; blocks come back as float64 N x d x b."""

    def __init__(self, ref: GradRef):
        self.ref = ref
        self._cm: Any = None
        self._arr: Any = None

    def __enter__(self) -> _Reader:
        self._cm = open_array(self.ref.file, self.ref.kind, self.ref.name)
        self._arr = self._cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = None
        self._arr = None

    def read(self, c0: int, c1: int) -> np.ndarray:
        try:
            raw = self._arr[..., c0:c1]
        except Exception as exc:
            raise RepsimError(f"{self.ref.label}: cannot read columns {c0}..{c1 - 1} ({type(exc).__name__}: {exc})") from exc
        out = np.asarray(raw, dtype=np.float64)
        return out.reshape(self.ref.n, self.ref.d, c1 - c0)


def column_blocks(ref: GradRef, block_size: int | None = None) -> list[tuple[int, int]]:
    """Column ranges [c0, c1) covering 0..P-1, aligned to the dataset's chunk width when chunked.

    ``block_size`` (columns) defaults to ~64 MiB of float64 for all N*d rows; it is rounded
    down to a multiple of the chunk width (at least one chunk) so every chunk is read once.
    """
    p = ref.p
    rows = max(1, ref.n * ref.d)
    if block_size is None:
        block_size = max(1, DEFAULT_BLOCK_BYTES // (8 * rows))
    if block_size < 1:
        raise RepsimError(f"block_size must be >= 1, got {block_size}")
    if ref.chunks:
        cw = int(ref.chunks[-1])
        block_size = max(cw, (block_size // cw) * cw)
    block_size = min(block_size, p)
    return [(c0, min(p, c0 + block_size)) for c0 in range(0, p, block_size)]




def validate_gradients(ref: GradRef, role: str = "GRADS") -> GradRef:
    """Numeric, N x P or N x d x P, with parameters and inputs."""
    where = f"{ref.label} (shape {ref.shape}, dtype {ref.dtype})"
    if not is_numeric(ref.dtype):
        raise RepsimError(f"{where}: {role} gradients must be numeric")
    if len(ref.shape) not in (2, 3):
        raise RepsimError(f"{where}: {role} gradients must be N x P (scalar output) or N x d x P (d outputs), got ndim {len(ref.shape)}")
    if ref.p == 0 or ref.d == 0:
        raise RepsimError(f"{where}: zero parameters")
    if ref.n < 1:
        raise RepsimError(f"{where}: no inputs")
    return ref
