"""zarr directory stores (``.zarr``, format v2 or v3) for the single reader (:mod:`repsim_cli.io.arrays`).

Arrays are layers (ndim >= 2, numeric); groups nest (``run.zarr:blocks/3``); a ``layer_order``
attribute on the root group names the layers and their order, as in HDF5; otherwise every layer
in natural sort order. Reading is lazy: the lister reads metadata only, and the opener yields the
``zarr.Array``, which reads only the chunks a slice touches. zarr is an optional extra
(``pip install 'repsim-cli[dask]'``); it is imported only when a ``.zarr`` store is opened.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.io.arrays import ArrayFormat, ArrayInfo, decode_attr, natural_key, register_format


def zarr_module() -> Any:
    """The zarr package, or one clear line naming the extra to install."""
    try:
        import zarr
    except ImportError:
        raise RepsimError("reading .zarr stores needs zarr: pip install 'repsim-cli[dask]'") from None
    return zarr


def _group(path: str) -> Any:
    return zarr_module().open_group(str(path).rstrip("/"), mode="r")


def _list_zarr(path: str) -> tuple[list[ArrayInfo], dict[str, Any]]:
    group = _group(path)
    infos = []
    for name, obj in group.members(max_depth=None):
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            chunks = getattr(obj, "chunks", None)
            infos.append(
                ArrayInfo(name, tuple(int(s) for s in obj.shape), np.dtype(obj.dtype), tuple(chunks) if chunks else None)
            )
    infos.sort(key=lambda i: natural_key(i.name))
    attrs = {k: decode_attr(v) for k, v in dict(group.attrs).items()}
    if isinstance(attrs.get("layer_order"), list):
        attrs["layer_order"] = [str(n).strip("/") for n in attrs["layer_order"]]
    return infos, attrs


@contextmanager
def _open_zarr(path: str, name: str) -> Iterator[Any]:
    yield _group(path)[name]


register_format(ArrayFormat("zarr", (".zarr",), _list_zarr, _open_zarr, directory=True))
