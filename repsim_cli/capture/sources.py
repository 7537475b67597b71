"""Model inputs read in row batches: ``.npy``, ``.npz:KEY``, ``.h5:DATASET``, ``.pt[:KEY]``,
``.safetensors[:KEY]`` (any format of the single reader :mod:`repsim_cli.io.arrays`), in-memory
arrays, and text files tokenized by the model's tokenizer.

HDF5 datasets, ``.npy`` files (memory-mapped) and ``.safetensors`` tensors are sliced one
batch at a time, so the inputs are never all in memory; ``.npz`` members are read whole and
``.pt`` files memory-mapped. Nothing here unpickles code (``allow_pickle=False``,
``weights_only=True``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from repsim_cli.errors import RepsimError


def split_input(arg: str) -> tuple[str, str | None]:
    """``FILE[:KEY]`` -> (file, key or None); the file part must end in a registered extension."""
    from repsim_cli.io.arrays import suffixes

    if os.path.exists(arg):
        return arg, None
    lowered = arg.lower()
    cuts = [lowered.find(s + ":") + len(s) for s in suffixes() if lowered.find(s + ":") >= 0]
    if not cuts:
        return arg, None
    cut = min(cuts)
    return arg[:cut], arg[cut + 1 :] or None


@dataclass
class Source:
    """N x ... rows that can be read by batch; ``label`` names them in messages."""

    label: str
    shape: tuple[int, ...]
    dtype: np.dtype
    path: str | None = None
    _get: Any = None  # (start, stop) -> np.ndarray
    _close: Any = None

    @property
    def n(self) -> int:
        return int(self.shape[0])

    def batch(self, start: int, stop: int) -> np.ndarray:
        try:
            return np.asarray(self._get(start, stop))
        except RepsimError:
            raise
        except Exception as exc:
            raise RepsimError(f"{self.label}: cannot read rows {start}..{stop - 1} ({type(exc).__name__}: {exc})") from None

    def read_all(self) -> np.ndarray:
        return self.batch(0, self.n)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


def from_array(arr: Any, label: str = "inputs") -> Source:
    """A Source over an in-memory numpy array or torch tensor."""
    if hasattr(arr, "detach"):  # torch tensor
        arr = arr.detach().cpu()
        if str(arr.dtype) == "torch.bfloat16":
            arr = arr.float()
        arr = arr.numpy()
    a = np.asarray(arr)
    if a.dtype.hasobject:
        raise RepsimError(f"{label}: object arrays are not numeric inputs")
    if a.ndim < 1:
        raise RepsimError(f"{label}: expected N x ... rows, got a scalar")
    return Source(label, tuple(int(s) for s in a.shape), a.dtype, None, lambda s, e: a[s:e])


def open_source(arg: Any, what: str = "--inputs") -> Source:
    """Open ``FILE[:KEY]`` (or wrap an array) as a batched :class:`Source`.

    Files are read through the single reader :mod:`repsim_cli.io.arrays` (every registered
    format: HDF5, .npy, .npz, .pt, .safetensors, ...), one batch of rows at a time.
    """
    if not isinstance(arg, (str, os.PathLike)):
        return from_array(arg, what)
    from repsim_cli.io.arrays import file_kind, list_arrays, open_array

    path, key = split_input(os.fspath(arg))
    if not os.path.exists(path):
        raise RepsimError(f"{what} {path}: no such file")
    kind = file_kind(path)
    arrays, _ = list_arrays(path)
    infos = {a.name: a for a in arrays}
    name = _pick(list(infos), key.lstrip("/") if key else None, path, what)
    info = infos[name]
    if len(info.shape) < 1:
        raise RepsimError(f"{what} {path}:{name}: a scalar, expected N x ... rows")
    if info.dtype.hasobject:
        raise RepsimError(f"{what} {path}:{name}: object arrays are not numeric inputs")
    cm = open_array(path, kind, name)
    arr = cm.__enter__()
    label = f"{what} {path}" + (f":{name}" if len(infos) > 1 or key else "")
    return Source(label, tuple(int(s) for s in info.shape), np.dtype(info.dtype), path,
                  lambda s, e: np.asarray(arr[s:e]), lambda: cm.__exit__(None, None, None))


def _pick(keys: list[str], key: str | None, path: str, what: str) -> str:
    if key is not None:
        if key not in keys:
            raise RepsimError(f"{what} {path}: no array {key!r}; arrays in the file: {', '.join(keys) or '(none)'}")
        return key
    if len(keys) != 1:
        raise RepsimError(f"{what} {path}: {len(keys)} arrays ({', '.join(keys) or 'none'}); name one as {path}:KEY")
    return keys[0]


def read_vector(arg: Any, n: int, what: str, ndim: int = 1) -> np.ndarray:
    """A whole small array (targets, labels, attention mask) checked to have N rows and ``ndim`` dims."""
    src = open_source(arg, what)
    try:
        arr = src.read_all()
    finally:
        src.close()
    if arr.ndim != ndim or arr.shape[0] != n:
        want = "N" if ndim == 1 else "N x T"
        raise RepsimError(f"{src.label}: expected {want} with N={n} (the number of inputs), got shape {arr.shape}")
    return arr


def read_text(path: str, tokenizer: Any, max_length: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One input per line -> token ids and attention mask (N x T, padded to the longest line).

    Empty lines are refused (they would shift every later row against the labels).
    """
    if not os.path.isfile(path):
        raise RepsimError(f"--text {path}: no such file")
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    empty = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if empty:
        raise RepsimError(f"--text {path}: line {empty[0]} is empty ({len(empty)} empty lines); one input per line")
    if not lines:
        raise RepsimError(f"--text {path}: no lines")
    if max_length is not None and max_length < 1:
        raise RepsimError(f"--max-length must be >= 1, got {max_length}")
    enc = tokenizer(lines, padding="longest", truncation=max_length is not None, max_length=max_length, return_tensors="np")
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    mask = np.asarray(enc["attention_mask"], dtype=np.int64)
    bad = np.flatnonzero(mask.sum(axis=1) == 0)
    if bad.size:
        raise RepsimError(f"--text {path}: line {bad[0] + 1} has no tokens after tokenization")
    return ids, mask
