"""zarr directory stores (``.zarr``, format v2 or v3) read like HDF5 files.

Arrays are layers (ndim >= 2, numeric); groups nest (``run.zarr:blocks/3``); a ``layer_order``
attribute on the root group names the layers and their order, as in HDF5; otherwise every layer
in natural sort order. Reading is lazy: metadata only here, rows on demand. zarr is an optional
extra (``pip install 'repsim-cli[dask]'``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repsim_cli.errors import RepsimError


def zarr_module() -> Any:
    try:
        import zarr
    except ImportError:
        raise RepsimError("reading .zarr stores needs zarr: pip install 'repsim-cli[dask]'") from None
    return zarr


def open_group(path: str) -> Any:
    zarr = zarr_module()
    try:
        return zarr.open_group(path, mode="r")
    except Exception as exc:
        raise RepsimError(f"{path}: cannot read as a zarr store ({type(exc).__name__}: {exc})") from exc


def open_zarr(path: str) -> Any:
    """The store's :class:`~repsim_cli.loading.ActivationFile` (layers, other arrays, root attributes)."""
    from repsim_cli.loading import ActivationFile, DatasetInfo, LayerRef, _decode, _layer_problem, natural_key

    group = open_group(path)
    infos: dict[str, DatasetInfo] = {}
    for name, obj in group.members(max_depth=None):
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            shape = tuple(int(s) for s in obj.shape)
            dtype = np.dtype(obj.dtype)
            problem = _layer_problem(shape, dtype)
            infos[name] = DatasetInfo(name, shape, dtype, not problem, problem)
    attrs = {k: _decode(v) for k, v in dict(group.attrs).items()}
    order = attrs.get("layer_order")
    if order is not None:
        names = [str(n).strip("/") for n in (order if isinstance(order, list) else [order])]
        for n in names:
            if n not in infos:
                raise RepsimError(f"{path}: root attribute layer_order names {n!r}, which is not an array in the store")
            if not infos[n].is_layer:
                raise RepsimError(f"{path}: layer {n!r} (shape {infos[n].shape}): {infos[n].reason}")
        chosen = set(names)
        datasets = [
            DatasetInfo(i.name, i.shape, i.dtype, i.name in chosen, i.reason or ("" if i.name in chosen else "not in layer_order"))
            for i in infos.values()
        ]
    else:
        names = sorted((n for n, i in infos.items() if i.is_layer), key=natural_key)
        datasets = list(infos.values())
    datasets.sort(key=lambda i: natural_key(i.name))
    layers = [LayerRef(path, n, infos[n].shape, infos[n].dtype, "zarr") for n in names]
    return ActivationFile(path, "zarr", layers, datasets, attrs)


def read_zarr(path: str, name: str, rows: np.ndarray | slice | None = None) -> np.ndarray:
    """One array (or some of its rows) in its stored dtype; only the chunks holding them are read."""
    arr = open_group(path)[name]
    if rows is None:
        return np.asarray(arr[...])
    if isinstance(rows, slice):
        return np.asarray(arr[rows])
    uniq, inverse = np.unique(np.asarray(rows), return_inverse=True)
    return np.asarray(arr.get_orthogonal_selection((uniq,)))[inverse]
