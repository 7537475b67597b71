"""``.pt`` / ``.pth`` and ``.safetensors`` activation files, registered with the single reader.

* ``.pt`` / ``.pth``: a tensor (one layer named after the file stem) or a dict of tensors (one
  layer per key; nested dicts give ``outer/inner`` names), read with
  ``torch.load(weights_only=True, mmap=True)``: never unpickling code. A ``layer_order`` entry
  holding a list of names orders the layers like the HDF5 attribute.
* ``.safetensors``: one layer per tensor, sliced on disk (rows are read, not the file); string
  metadata become file attributes (a ``layer_order`` metadata value may be a JSON list).

torch / safetensors are imported only when such a file is opened; without them the error
names the extra to install. bfloat16 tensors are returned as float32.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.io.arrays import ArrayFormat, ArrayInfo, register_format

_ST_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "float32", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16", "U32": "uint32", "U64": "uint64", "BOOL": "bool",
}


def _torch(path: str) -> Any:
    try:
        import torch
    except ImportError:
        raise RepsimError(f"{path}: reading .pt files needs PyTorch: pip install 'repsim-cli[torch]'") from None
    return torch


def _safe_open(path: str) -> Any:
    try:
        from safetensors import safe_open
    except ImportError:
        raise RepsimError(f"{path}: reading .safetensors files needs safetensors: pip install 'repsim-cli[torch]'") from None
    return safe_open


# --------------------------------------------------------------------------- .pt


def _load_pt(path: str) -> Any:
    torch = _torch(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) serialization cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise RepsimError(f"{path}: holds objects other than tensors; refused (weights_only=True never unpickles code)") from None
        raise


def _tensors(obj: Any, path: str, prefix: str = "") -> dict[str, Any]:
    torch = _torch(path)
    if isinstance(obj, torch.Tensor):
        return {prefix.rstrip("/") or Path(path).stem: obj}
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key, val in obj.items():
            if isinstance(val, (torch.Tensor, dict)):
                out.update(_tensors(val, path, f"{prefix}{key}/"))
    return out


def _np_dtype(t: Any) -> np.dtype:
    name = str(t.dtype).replace("torch.", "")
    return np.dtype("float32" if name == "bfloat16" else name)


def _list_pt(path: str) -> tuple[list[ArrayInfo], dict[str, Any]]:
    obj = _load_pt(path)
    tensors = _tensors(obj, path)
    if not tensors:
        raise RepsimError(f"{path}: expected a tensor or a dict of tensors, found {type(obj).__name__} with none")
    infos = [ArrayInfo(n, tuple(int(s) for s in t.shape), _np_dtype(t)) for n, t in tensors.items()]
    attrs: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("layer_order"), (list, tuple)):
        attrs["layer_order"] = [str(n) for n in obj["layer_order"]]
    return infos, attrs


@contextmanager
def _open_pt(path: str, name: str) -> Iterator[Any]:
    t = _tensors(_load_pt(path), path)[name]
    yield t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()


# --------------------------------------------------------------------------- .safetensors


def _list_safetensors(path: str) -> tuple[list[ArrayInfo], dict[str, Any]]:
    with _safe_open(path)(path, framework="numpy") as f:
        infos = []
        for key in f.keys():
            sl = f.get_slice(key)
            infos.append(ArrayInfo(key, tuple(int(s) for s in sl.get_shape()), np.dtype(_ST_DTYPES.get(sl.get_dtype(), "float64"))))
        meta = dict(f.metadata() or {})
    attrs: dict[str, Any] = {k: v for k, v in meta.items() if k != "layer_order"}
    if "layer_order" in meta:
        val = meta["layer_order"]
        try:
            attrs["layer_order"] = json.loads(val) if val.lstrip().startswith("[") else [s for s in val.split(",") if s]
        except ValueError:
            raise RepsimError(f"{path}: metadata layer_order is not a JSON list of names: {val[:80]!r}") from None
    return infos, attrs


class _SafeSlice:
    """A safetensors tensor that slices like a NumPy array (rows read on demand)."""

    def __init__(self, handle: Any, name: str, bf16: bool):
        self._h, self._name, self._bf16 = handle, name, bf16
        self._sl = handle.get_slice(name)
        self.shape = tuple(int(s) for s in self._sl.get_shape())
        self.ndim = len(self.shape)

    def _np(self, t: Any) -> np.ndarray:
        return t.float().numpy() if self._bf16 else np.asarray(t)

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, tuple) and not index or index is Ellipsis:
            return self._np(self._h.get_tensor(self._name))
        if isinstance(index, (np.ndarray, list)):  # row indices: read their range once, then pick
            rows = np.asarray(index)
            if rows.size == 0:
                return self._np(self._sl[0:0])
            lo, hi = int(rows.min()), int(rows.max()) + 1
            return self._np(self._sl[lo:hi])[rows - lo]
        return self._np(self._sl[index])


@contextmanager
def _open_safetensors(path: str, name: str) -> Iterator[Any]:
    safe_open = _safe_open(path)
    with safe_open(path, framework="numpy") as f:
        bf16 = f.get_slice(name).get_dtype() == "BF16"
    if bf16:
        _torch(path)
    with safe_open(path, framework="pt" if bf16 else "numpy") as f:
        yield _SafeSlice(f, name, bf16)


register_format(ArrayFormat("pt", (".pt", ".pth"), _list_pt, _open_pt))
register_format(ArrayFormat("safetensors", (".safetensors",), _list_safetensors, _open_safetensors))
