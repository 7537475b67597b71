"""Activation files -> validated float64 arrays with names.

A *layer* is a numeric dataset with at least two dimensions whose first axis indexes the
N inputs. Supported files:

- HDF5 (``.h5``, ``.hdf5``): if the root attribute ``layer_order`` (a list of dataset paths)
  exists it names the layers and their order; otherwise every numeric dataset with ndim >= 2
  is a layer, in natural sort order (``layers/2`` before ``layers/10``).
- ``.npy``: one layer named after the file stem.
- ``.npz``: one layer per array, named by key.

Nothing here executes code from a file (``allow_pickle=False``) and metadata is read without
loading data (``inspect`` is lazy). Data is returned as float64 whatever the stored dtype.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.io.arrays import (
    check_exists,
    file_kind,
    hdf5_link_problem,
    is_numeric,
    list_arrays,
    read_array,
    suffixes,
)
from repsim_cli.io.arrays import iter_row_blocks as _iter_array_rows
from repsim_cli.io.budget import check_allocation

POOL_CHOICES = ("none", "mean", "tokens", "last", "first")
#: pools that read an N x T x D layer's token axis and the file's ``attention_mask``
TOKEN_POOLS = ("tokens", "last", "first")
#: letters of an ``axes`` attribute (e.g. "N,T,D", "N,C,H,W") naming the feature axis kept by pooling
FEATURE_AXES = ("D", "C", "F")
#: the most ``describe_file`` (inspect) reads at once: an array that must be read whole (a
#: compressed .npz member) above this is refused with advice instead of being inflated
INSPECT_READ_BYTES = 512 * 2**20


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of one array in a file (no data loaded)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    is_layer: bool
    reason: str = ""  # why it is not a layer
    problem: str = ""  # why reading it would give invented data (see repsim_cli.io.arrays.hdf5_problem)

    @property
    def n_samples(self) -> int:
        return int(self.shape[0]) if self.shape else 0


@dataclass(frozen=True)
class LayerRef:
    """A layer in a file, identified but not loaded."""

    file: str  # the path as the user gave it
    name: str  # dataset name without a leading slash
    shape: tuple[int, ...]
    dtype: np.dtype
    kind: str  # a registered format of repsim_cli.io.arrays: "hdf5", "npy", "npz", "memory", ...
    #: how results name the layer when it is not FILE:NAME (in-memory arrays: "A", "B:layer1")
    display: str | None = None
    #: the dataset's ``axes`` attribute when it has one (``repsim capture --tokens all`` writes "N,T,D")
    axes: str | None = None

    @property
    def label(self) -> str:
        return self.display if self.display is not None else f"{self.file}:{self.name}"

    @property
    def n_samples(self) -> int:
        return int(self.shape[0])

    def features(self, pool: str = "none", channel_axis: int = 1) -> int:
        """Number of columns after flattening (``pool='none'``) or mean pooling."""
        return int(np.prod(pooled_shape(self.shape, pool, self.feature_axis(channel_axis), self.label)[1:]))

    def feature_axis(self, channel_axis: int = 1) -> int:
        """The axis pooling keeps: the ``D``/``C``/``F`` of the file's ``axes`` attribute, else ``channel_axis``."""
        return axis_from_attr(self.axes, len(self.shape)) if self.axes else channel_axis


def axis_from_attr(axes: str, ndim: int) -> int:
    """Index of the feature axis named by an ``axes`` attribute such as ``"N,T,D"``."""
    names = [a.strip().upper() for a in axes.split(",")]
    hits = [i for i, a in enumerate(names) if a in FEATURE_AXES]
    if len(names) != ndim or not hits or names[0] != "N":
        raise RepsimError(f"axes attribute {axes!r} does not describe an array with {ndim} axes (first N, one of D/C/F)")
    return hits[-1]


@dataclass
class ActivationFile:
    """An opened activation file: its layers (in order), other datasets and attributes."""

    path: str
    kind: str
    layers: list[LayerRef]
    datasets: list[DatasetInfo]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Layer:
    """A loaded layer: float64 N x F data plus where it came from."""

    ref: LayerRef
    data: np.ndarray
    warnings: list[str] = field(default_factory=list)
    #: pool tokens: the input (sequence) each row came from, so resampling moves whole sequences
    groups: np.ndarray | None = None

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def name(self) -> str:
        return self.ref.name


# --------------------------------------------------------------------------- file access


def _layer_problem(shape: tuple[int, ...], dtype: np.dtype) -> str:
    """Why an array cannot be a layer ('' if it can)."""
    if not is_numeric(dtype):
        return f"dtype {dtype} is not numeric"
    if len(shape) < 2:
        return f"ndim {len(shape)} < 2 (a layer is N inputs x features)"
    return ""


def open_activation_file(path: str) -> ActivationFile:
    """Read the metadata of an activation file: layers, other datasets, attributes. Lazy.

    If the file has a ``layer_order`` attribute (HDF5 root attribute) it names the layers and
    their order; otherwise every numeric array with ndim >= 2 is a layer, in the file's order.
    A second name of one stored array (an HDF5 hard link) is a layer only when ``layer_order``
    or a selector names it. An array that would be a layer but would read invented data (a
    virtual dataset with a missing source, unallocated storage) is an error naming the array.
    """
    kind = file_kind(path)
    arrays, attrs = list_arrays(path)
    infos = {a.name: _dataset_info(a) for a in arrays}
    order = attrs.get("layer_order")
    if order is None:
        names = [n for n, i in infos.items() if i.is_layer]
        datasets = list(infos.values())
    else:
        names = [str(n).lstrip("/") for n in (order if isinstance(order, list) else [order])]
        for n in names:
            if n not in infos:
                link = hdf5_link_problem(path, n) if kind == "hdf5" else ""
                raise RepsimError(f"{path}: root attribute layer_order names {n!r}, which "
                                  + (link if link else "is not a dataset in the file"))
            if _layer_problem(infos[n].shape, infos[n].dtype):
                raise RepsimError(f"{path}: layer {n!r} (shape {infos[n].shape}): {infos[n].reason}")
        chosen = set(names)
        datasets = [
            DatasetInfo(i.name, i.shape, i.dtype, i.name in chosen,
                        "" if i.name in chosen else (_own_problem(i) or "not in layer_order"), i.problem)
            for i in infos.values()
        ]
    for n in names:
        if infos[n].problem:
            raise RepsimError(f"{path}: dataset {n!r} {infos[n].problem}")
    axes = _axes_attrs(path, kind, [n for n in names if len(infos[n].shape) >= 3])
    layers = [LayerRef(path, n, infos[n].shape, infos[n].dtype, kind, axes=axes.get(n)) for n in names]
    return ActivationFile(path, kind, layers, datasets, attrs)


def _axes_attrs(path: str, kind: str, names: list[str]) -> dict[str, str]:
    """The ``axes`` attribute of each named HDF5 dataset that has one (other formats have none)."""
    if kind != "hdf5" or not names:
        return {}
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for n in names:
            val = f[n].attrs.get("axes")
            if val is not None:
                out[n] = val.decode() if isinstance(val, bytes) else str(val)
    return out


def _dataset_info(a: Any) -> DatasetInfo:
    """A listed array as a DatasetInfo: a layer unless its shape/dtype say no, or it is another name of an earlier one."""
    reason = _layer_problem(a.shape, a.dtype)
    if not reason and a.alias_of is not None:
        reason = f"another name (hard link) of {a.alias_of!r}"
    return DatasetInfo(a.name, a.shape, a.dtype, not reason, reason, a.problem)


def _own_problem(info: DatasetInfo) -> str:
    return info.reason if info.reason and not info.reason.startswith("another name") else ""


# --------------------------------------------------------------------------- selectors


def split_selector(arg: str) -> tuple[str, str | None]:
    """Split ``FILE[:LAYER]`` into the file path and the layer pattern (or None).

    The file part must end in a known extension, so paths containing ``:`` still work.
    """
    if os.path.exists(arg):
        return arg, None
    lowered = arg.lower()
    best = None
    for suffix in suffixes():
        start = 0
        while (idx := lowered.find(suffix + ":", start)) >= 0:
            cut = idx + len(suffix)
            if best is None or cut < best:
                best = cut
            start = idx + 1
    if best is None:
        return arg, None
    return arg[:best], arg[best + 1 :]


def select_layers(arg: str, file: ActivationFile | None = None) -> list[LayerRef]:
    """Layers named by ``FILE`` (all layers) or ``FILE:LAYER`` (name or glob)."""
    path, pattern = split_selector(arg)
    af = file or open_activation_file(path)
    if pattern is None:
        if not af.layers:
            raise RepsimError(f"{path}: no layers found (a layer is a numeric dataset with ndim >= 2)" + _list_datasets(af))
        return list(af.layers)
    pattern = pattern.lstrip("/")
    if not pattern:
        raise RepsimError(f"{arg}: empty layer selector after ':'")
    by_name = {ref.name: ref for ref in af.layers}
    if pattern in by_name:
        return [by_name[pattern]]
    if any(ch in pattern for ch in "*?["):
        hits = [ref for ref in af.layers if fnmatch.fnmatchcase(ref.name, pattern)]
        if hits:
            return hits
    # A dataset that exists but is not a layer by layer_order can still be named explicitly.
    for info in af.datasets:
        if info.name == pattern:
            if info.problem:
                raise RepsimError(f"{path}: dataset {info.name!r} {info.problem}")
            if info.reason and info.reason != "not in layer_order" and not info.reason.startswith("another name"):
                raise RepsimError(f"{path}: {info.name!r} (shape {info.shape}, dtype {info.dtype}) is not a layer: {info.reason}")
            return [LayerRef(path, info.name, info.shape, info.dtype, af.kind)]
    link = hdf5_link_problem(path, pattern) if af.kind == "hdf5" else ""
    if link:
        raise RepsimError(f"{path}: {pattern!r} {link}")
    raise RepsimError(f"{path}: selector {pattern!r} matches no layer; available layers: {_names(af)}")


def _names(af: ActivationFile) -> str:
    return ", ".join(ref.name for ref in af.layers) or "(none)"


def _list_datasets(af: ActivationFile) -> str:
    if not af.datasets:
        return "; the file contains no arrays"
    return "; arrays in the file: " + ", ".join(f"{i.name} {i.shape} {i.dtype} ({i.reason})" for i in af.datasets)


# --------------------------------------------------------------------------- shapes, rows


def pooled_shape(shape: tuple[int, ...], pool: str, channel_axis: int, label: str = "") -> tuple[int, ...]:
    """Shape after ``pool``: flatten keeps N x prod(rest); mean keeps N x C."""
    if pool not in POOL_CHOICES:
        raise RepsimError(f"pool must be one of {', '.join(POOL_CHOICES)}, got {pool!r}")
    if len(shape) <= 2:
        return tuple(shape)
    if pool == "none":
        return (shape[0], int(np.prod(shape[1:])))
    if pool in TOKEN_POOLS:
        _check_token_shape(shape, pool, label)
    axis = _channel_axis(len(shape), channel_axis, label, shape)
    return (shape[0], shape[axis])


def _check_token_shape(shape: tuple[int, ...], pool: str, label: str) -> None:
    if len(shape) != 3:
        raise RepsimError(f"{label}: pool {pool} needs an N x T x D layer (tokens), got shape {shape}")


def _channel_axis(ndim: int, channel_axis: int, label: str, shape: tuple[int, ...]) -> int:
    axis = channel_axis + ndim if channel_axis < 0 else channel_axis
    if not 1 <= axis < ndim:
        raise RepsimError(
            f"{label}: channel_axis {channel_axis} is not a feature axis of shape {shape} (axis 0 indexes inputs)"
        )
    return axis


def to_matrix(arr: np.ndarray, pool: str, channel_axis: int, label: str) -> np.ndarray:
    """N-D activations -> float64 N x F (C-order flatten, or mean over all axes but N and channel)."""
    if arr.ndim > 2 and pool in TOKEN_POOLS:
        raise RepsimError(f"{label}: pool {pool} reads the attention mask and is not available when streaming; drop stream")
    if arr.ndim > 2 and pool == "mean":
        axis = _channel_axis(arr.ndim, channel_axis, label, arr.shape)
        others = tuple(a for a in range(1, arr.ndim) if a != axis)
        return np.asarray(np.mean(arr, axis=others, dtype=np.float64))
    out = np.asarray(arr, dtype=np.float64)
    return out.reshape(out.shape[0], -1)


def read_index_file(path: str, what: str = "row indices") -> np.ndarray:
    """A non-empty 1-D integer ``.npy`` array (``samples``, ``--query-file``), as int64."""
    check_exists(path)
    try:
        idx = np.asarray(np.load(path, allow_pickle=False))
    except Exception as exc:
        raise RepsimError(f"{path}: cannot read {what} as .npy ({exc})") from exc
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or idx.size == 0:
        raise RepsimError(
            f"{path}: expected a non-empty 1-D integer array of {what}, got shape {idx.shape} dtype {idx.dtype}"
        )
    return idx.astype(np.int64)


def choose_rows(
    n: int,
    max_samples: int | None = None,
    seed: int = 0,
    samples_file: str | np.ndarray | Sequence[int] | None = None,
) -> np.ndarray | None:
    """Row indices to use on every side: explicit (``samples``: an .npy file or indices), a seeded random subset, or all."""
    if samples_file is not None:
        return _explicit_rows(n, samples_file, max_samples)
    if max_samples is None:
        return None
    if max_samples < 2:
        raise RepsimError(f"max_samples must be at least 2, got {max_samples}")
    if max_samples > n:
        raise RepsimError(f"max_samples {max_samples} is larger than the number of inputs N={n}")
    if max_samples == n:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_samples, replace=False))


def _explicit_rows(n: int, samples: str | np.ndarray | Sequence[int], max_samples: int | None) -> np.ndarray:
    if isinstance(samples, (str, os.PathLike)):
        what = str(samples)
        idx = read_index_file(what, "row indices")
    else:
        what = "samples"
        idx = np.asarray(samples)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise RepsimError(f"samples must be a non-empty 1-D array of integer row indices, got shape {idx.shape} dtype {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n:
        raise RepsimError(f"{what}: row indices must lie in [0, {n - 1}], found {idx.min()}..{idx.max()}")
    if idx.size < 2:
        raise RepsimError(f"{what}: need at least 2 row indices, got {idx.size}")
    if max_samples is not None:
        raise RepsimError("samples and max_samples cannot be combined")
    if np.unique(idx).size < idx.size:
        from repsim_cli.errors import warn

        warn(f"{what}: {idx.size - np.unique(idx).size} row indices are repeated; repeated inputs count twice")
    return idx.astype(np.int64)


# --------------------------------------------------------------------------- loading + validation


def load_layer(
    ref: LayerRef,
    rows: np.ndarray | None = None,
    pool: str = "none",
    channel_axis: int = 1,
    min_samples: int = 2,
) -> Layer:
    """Load and validate one layer as float64 N x F.

    Raises :class:`RepsimError` naming file, layer and shape on NaN/Inf, zero features, or too
    few inputs. Constant ("dead") columns are returned with a warning.
    """
    where = f"{ref.label} (shape {ref.shape}, dtype {ref.dtype})"
    if not is_numeric(ref.dtype):
        raise RepsimError(f"{where}: dtype is not numeric")
    if len(ref.shape) < 2:
        raise RepsimError(f"{where}: a layer needs ndim >= 2 (N inputs x features), got ndim {len(ref.shape)}")
    if int(np.prod(ref.shape[1:])) == 0:
        raise RepsimError(f"{where}: zero features")
    n_used = ref.n_samples if rows is None else len(rows)
    if n_used < min_samples:
        raise RepsimError(f"{where}: N={n_used} inputs, need at least {min_samples}")
    check_allocation(where, load_bytes(ref, rows, pool, channel_axis), _load_advice(ref))
    raw = read_array(ref.file, ref.kind, ref.name, rows)
    warnings = []
    groups = None
    if (pool in TOKEN_POOLS and raw.ndim > 2) or (pool == "mean" and has_token_axis(ref)):
        mask = token_mask(ref, rows)
        data, note = pool_token_layer(raw, mask, pool, ref.label)
        warnings.append(note)
        if pool == "tokens":
            counts = np.full(raw.shape[0], raw.shape[1]) if mask is None else mask.sum(axis=1)
            groups = np.repeat(np.arange(raw.shape[0]), counts)
    else:
        data = to_matrix(raw, pool, ref.feature_axis(channel_axis), ref.label)
    del raw
    _check_finite(data, where)
    dead = count_constant_columns(data)
    if dead:
        warnings.append(f"{ref.label}: {dead} of {data.shape[1]} columns are constant (dead units)")
    return Layer(ref, data, warnings, groups)


def has_token_axis(ref: LayerRef) -> bool:
    """The layer's ``axes`` attribute is N,T,D: pool mean averages real tokens only (masked)."""
    if not ref.axes or len(ref.shape) != 3:
        return False
    names = [a.strip().upper() for a in ref.axes.split(",")]
    return len(names) == 3 and names[1] == "T"


def token_mask(ref: LayerRef, rows: np.ndarray | None = None) -> np.ndarray | None:
    """The file's ``attention_mask`` (N x T, 1 = real token) for ``ref``'s rows, or None."""
    if ref.kind == "memory":
        return None
    arrays, _ = list_arrays(ref.file)
    info = next((a for a in arrays if a.name == "attention_mask"), None)
    if info is None:
        return None
    if tuple(info.shape) != tuple(ref.shape[:2]):
        raise RepsimError(f"{ref.file}: attention_mask has shape {info.shape} but {ref.name} is {ref.shape} (N x T x D)")
    return np.asarray(read_array(ref.file, ref.kind, "attention_mask", rows)) != 0


def pool_token_layer(arr: np.ndarray, mask: np.ndarray | None, pool: str, label: str) -> tuple[np.ndarray, str]:
    """N x T x D -> float64 rows by the real tokens of ``mask`` (all tokens when None).

    ``tokens``: every real token is a row (sequence order, then token order); ``last`` /
    ``first``: the last / first real token of each sequence; ``mean``: the mean of its real tokens. Returns the matrix and a note
    saying how many rows and sequences were used.
    """
    _check_token_shape(arr.shape, pool, label)
    n, t, _ = arr.shape
    m = np.ones((n, t), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    empty = np.flatnonzero(~m.any(axis=1))
    if empty.size:
        raise RepsimError(f"{label}: {empty.size} sequences have no real token in attention_mask (first: {_preview(empty)})")
    src = "attention_mask" if mask is not None else "no attention_mask: every token counts"
    if pool == "mean":  # sum over real tokens / their number
        w = m.astype(np.float64)
        out = np.einsum("nt,ntd->nd", w, np.asarray(arr, dtype=np.float64)) / w.sum(axis=1, keepdims=True)
        return out, f"{label}: pool mean averaged the real tokens of each of {n} sequences over the token axis ({src})"
    if pool == "tokens":
        out = np.asarray(arr[m], dtype=np.float64)
        return out, f"{label}: pool tokens used {out.shape[0]} token rows from {n} sequences ({src})"
    idx = np.argmax(m, axis=1) if pool == "first" else (t - 1) - np.argmax(m[:, ::-1], axis=1)
    return np.asarray(arr[np.arange(n), idx], dtype=np.float64), f"{label}: pool {pool} used the {pool} real token of each of {n} sequences ({src})"


def _load_advice(ref: LayerRef) -> str | None:
    from repsim_cli.io.arrays import FORMATS, NPZ_ADVICE
    from repsim_cli.io.budget import current_advice

    fmt = FORMATS.get(ref.kind)
    return f"{NPZ_ADVICE}; or {current_advice()}" if fmt is not None and not fmt.sliceable else None


def load_bytes(ref: LayerRef, rows: np.ndarray | None, pool: str = "none", channel_axis: int = 1) -> int:
    """Bytes :func:`load_layer` allocates: the rows read in the stored dtype (a compressed ``.npz``
    member is inflated whole) plus the float64 N x F matrix (0 for an in-memory float64 array)."""
    from repsim_cli.io.arrays import FORMATS

    per_row = int(np.prod(ref.shape[1:]))
    n_used = ref.n_samples if rows is None else len(rows)
    fmt = FORMATS.get(ref.kind)
    read_rows = ref.n_samples if fmt is not None and not fmt.sliceable else n_used
    raw = 0 if ref.kind == "memory" else read_rows * per_row * ref.dtype.itemsize
    f_out = per_row if pool in TOKEN_POOLS else ref.features(pool, channel_axis)  # tokens: up to N*T rows of D
    same = ref.kind == "memory" and ref.dtype == np.float64 and rows is None and (pool == "none" or len(ref.shape) <= 2)
    return raw + (0 if same else n_used * f_out * 8)


def _check_finite(data: np.ndarray, where: str) -> None:
    finite = np.isfinite(data)
    if finite.all():
        return
    bad = ~finite
    n_nan = int(np.isnan(data).sum())
    n_inf = int(bad.sum()) - n_nan
    rows = np.flatnonzero(bad.any(axis=1))
    cols = np.flatnonzero(bad.any(axis=0))
    raise RepsimError(
        f"{where}: {n_nan} NaN and {n_inf} infinite values in {rows.size} rows "
        f"(first: {_preview(rows)}) and {cols.size} columns (first: {_preview(cols)})"
    )


def _preview(idx: np.ndarray, k: int = 5) -> str:
    head = ", ".join(str(int(i)) for i in idx[:k])
    return head + (", ..." if idx.size > k else "")


def count_constant_columns(data: np.ndarray) -> int:
    """Columns whose values are all equal (zero variance)."""
    if data.shape[0] == 0:
        return 0
    return int(np.count_nonzero(np.all(data == data[:1], axis=0)))


def iter_row_blocks(ref: LayerRef, block_bytes: int = 64 * 2**20) -> Iterator[np.ndarray]:
    """The stored array of a layer in consecutive row blocks of about ``block_bytes`` (bounded memory)."""
    return _iter_array_rows(ref.file, ref.kind, ref.name, ref.shape, ref.dtype.itemsize, block_bytes)


def count_constant_columns_streaming(ref: LayerRef, pool: str = "none", channel_axis: int = 1) -> int:
    """Constant columns of a layer, reading it in row blocks (memory bounded by one block)."""
    if pool in TOKEN_POOLS or (pool == "mean" and has_token_axis(ref)):  # needs the attention mask: whole layer
        return count_constant_columns(load_layer(ref, pool=pool, channel_axis=channel_axis, min_samples=1).data)
    channel_axis = ref.feature_axis(channel_axis)
    first: np.ndarray | None = None
    constant: np.ndarray | None = None
    for block in iter_row_blocks(ref):
        mat = to_matrix(block, pool, channel_axis, ref.label)
        if first is None:
            first = mat[0].copy()
            constant = np.ones(mat.shape[1], dtype=bool)
        constant &= np.all((mat == first) | (np.isnan(mat) & np.isnan(first)), axis=0)
    return 0 if constant is None else int(np.count_nonzero(constant))


def check_same_n(refs: Sequence[LayerRef]) -> int:
    """All layers must index the same N inputs; returns N."""
    ns = {ref.n_samples for ref in refs}
    if len(ns) > 1:
        detail = ", ".join(f"{ref.label} has N={ref.n_samples} (shape {ref.shape})" for ref in refs)
        raise RepsimError(f"layers index different numbers of inputs: {detail}")
    return ns.pop()


def describe_file(arg: str, constant: bool = True, pool: str = "none", channel_axis: int = 1) -> dict[str, Any]:
    """What ``inspect`` reports for ``FILE`` (every array) or ``FILE:LAYER`` (the selected layers).

    Each array: name, shape, dtype, whether it is a layer (and why not); layers also get N, the
    features after flattening/pooling and, with ``constant``, the number of constant columns
    counted in row blocks (never loading a layer whole).
    """
    from repsim_cli.io.budget import advice_scope, budget_scope

    # constant columns are counted in row blocks: a format read whole (.npz) may use this much
    with advice_scope("list it without reading data (constant=False)"), budget_scope(INSPECT_READ_BYTES):
        return _describe_file(arg, constant, pool, channel_axis)


def _describe_file(arg: str, constant: bool, pool: str, channel_axis: int) -> dict[str, Any]:
    path, pattern = split_selector(arg)
    af = open_activation_file(path)
    chosen = None if pattern is None else {r.name for r in select_layers(arg, af)}
    datasets = []
    for info in af.datasets:
        if chosen is not None and info.name not in chosen:
            continue
        entry: dict[str, Any] = {"name": info.name, "shape": list(info.shape), "dtype": str(info.dtype), "is_layer": info.is_layer}
        if info.is_layer or (chosen is not None):
            ref = next((r for r in af.layers if r.name == info.name), None) or LayerRef(path, info.name, info.shape, info.dtype, af.kind)
            shape = pooled_shape(info.shape, pool, ref.feature_axis(channel_axis), f"{path}:{info.name}")
            entry.update(is_layer=True, n_samples=info.n_samples, features=int(shape[1]), matrix_shape=list(shape))
            if constant:
                entry["constant_columns"] = count_constant_columns_streaming(ref, pool, channel_axis)
        else:
            entry["reason"] = info.reason
        datasets.append(entry)
    layers = [r.name for r in af.layers if chosen is None or r.name in chosen]
    return {"file": path, "format": af.kind, "layers": layers, "datasets": datasets, "attrs": af.attrs}
