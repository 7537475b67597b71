"""In-memory inputs for the Python API: arrays, tensors and mappings of them, read like files.

An in-memory array is registered under a token in a process-local store and described by a
:class:`~repsim_cli.io.layers.LayerRef` of kind ``"memory"``, so every engine (compare, grid,
group test, streaming) reads it through the single reader exactly as it reads a file. The
store holds read-only views: nothing the user passed is modified, and an accidental in-place
write would raise instead of changing the caller's data.

Accepted sources (:func:`layer_refs`):

- a ``FILE`` / ``FILE:LAYER`` string or an :class:`os.PathLike` -- the layers it selects;
- a NumPy array, anything with ``__array__``, or a CPU ``torch.Tensor`` (converted with
  ``.detach().cpu().numpy()`` without importing torch) -- one layer;
- a mapping name -> array -- one layer per key, in the mapping's order (paired by name like two
  files' layers); a list or tuple of arrays -- layers named ``0``, ``1``, ...
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any, Iterator, Mapping, Sequence, Union

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.io.arrays import ArrayFormat, register_format
from repsim_cli.io.layers import LayerRef, select_layers

#: what the API accepts for one side of a comparison
Source = Union[str, "os.PathLike[str]", np.ndarray, Any, Mapping[str, Any], Sequence[Any]]

ACCEPTED = (
    "a NumPy array (N x F, or N-D with pool), an object with __array__ (e.g. a CPU torch.Tensor), "
    "a FILE or FILE:LAYER path, a mapping name -> array, or a list of arrays"
)

_STORE: dict[str, np.ndarray] = {}
_COUNTER = itertools.count()


def _read_only(arr: np.ndarray) -> np.ndarray:
    view: np.ndarray = arr.view()
    view.flags.writeable = False
    return view


@contextlib.contextmanager
def _open_memory(token: str, name: str) -> Iterator[np.ndarray]:
    try:
        yield _STORE[token]
    except KeyError:
        raise RepsimError(f"in-memory array {name!r} is no longer available (used outside its API call)") from None


register_format(ArrayFormat("memory", (), lambda path: ([], {}), _open_memory))


def is_tensor(obj: Any) -> bool:
    """A torch tensor, recognised without importing torch."""
    return type(obj).__module__.split(".")[0] == "torch" and hasattr(obj, "detach") and hasattr(obj, "numpy")


def as_array(obj: Any, what: str) -> np.ndarray:
    """``obj`` as a NumPy array without copying when it already is one; TypeError for other types."""
    if isinstance(obj, np.ndarray):
        arr = obj
    elif is_tensor(obj):
        t = obj.detach().cpu()
        if str(getattr(t, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        arr = t.numpy()
    elif hasattr(obj, "__array__"):
        arr = np.asarray(obj)
    else:
        raise TypeError(f"{what}: expected {ACCEPTED}; got {type(obj).__name__}")
    if arr.dtype.hasobject:
        raise TypeError(f"{what}: object arrays are not activations (dtype {arr.dtype}); pass a numeric array")
    return arr


def _is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def _is_array_like(obj: Any) -> bool:
    return isinstance(obj, np.ndarray) or is_tensor(obj) or hasattr(obj, "__array__")


class MemoryScope:
    """Registers in-memory arrays for the duration of one API call (``with MemoryScope() as m``)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def __enter__(self) -> MemoryScope:
        return self

    def __exit__(self, *exc: Any) -> None:
        for token in self.tokens:
            _STORE.pop(token, None)

    def add(self, arr: np.ndarray, name: str, display: str) -> LayerRef:
        token = f"<memory {next(_COUNTER)}>"
        _STORE[token] = _read_only(arr)
        self.tokens.append(token)
        return LayerRef(token, name, tuple(int(s) for s in arr.shape), arr.dtype, "memory", display)

    def layer_refs(self, source: Source, side: str) -> list[LayerRef]:
        """The layers one source names (see the module docstring); ``side`` names it in labels."""
        if _is_path(source):
            return select_layers(os.fspath(source))  # type: ignore[arg-type]
        if isinstance(source, Mapping):
            if not source:
                raise RepsimError(f"{side}: the mapping of layers is empty")
            return [self.add(as_array(v, f"{side}[{k!r}]"), str(k), f"{side}:{k}") for k, v in source.items()]
        if isinstance(source, (list, tuple)) and source and all(_is_array_like(v) for v in source):
            arrays = [as_array(v, f"{side}[{i}]") for i, v in enumerate(source)]
            if all(a.ndim >= 2 for a in arrays):
                return [self.add(a, str(i), f"{side}:{i}") for i, a in enumerate(arrays)]
        arr = as_array(source, side)
        return [self.add(arr, side, side)]
