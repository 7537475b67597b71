"""One reader for every array file format: metadata without data, then whole, rows or blocks.

Every command reads arrays through this module, so a format is added once (:func:`register_format`)
and then works for activation layers, gradient files, index files and streaming alike.

- :func:`list_arrays` -- names, shapes, dtypes and chunking of every array, plus the file's
  attributes, without reading data;
- :func:`open_array` -- a context manager giving an object that slices like a NumPy array
  (an ``h5py.Dataset``, a read-only memory map, ...), so callers read only what they slice;
- :func:`read_array`, :func:`iter_row_blocks`, :func:`iter_axis_blocks` -- the three ways
  data is read: whole (or some rows), consecutive row blocks, consecutive slabs along an axis.

Built-in formats: HDF5 (``.h5``, ``.hdf5``), ``.npy`` and ``.npz``. Nothing here executes code
from a file: NumPy files are read with ``allow_pickle=False`` and object arrays are refused.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from repsim_cli.errors import RepsimError

#: HDF5 chunk cache while reading (bytes): a whole row of chunks fits for typical layers
RDCC_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ArrayInfo:
    """Metadata of one stored array (no data read)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[int, ...] | None = None
    #: another name of the same stored array (an HDF5 hard link listed earlier), or None
    alias_of: str | None = None
    #: why reading it would give wrong data ('' if nothing is known to be wrong), e.g. a virtual
    #: dataset whose source file is missing or a dataset with no stored data
    problem: str = ""


Lister = Callable[[str], "tuple[list[ArrayInfo], dict[str, Any]]"]
Opener = Callable[[str, str], Any]  # (path, name) -> context manager yielding a sliceable array


@dataclass(frozen=True)
class ArrayFormat:
    """How to list and open the arrays of one file format."""

    kind: str
    suffixes: tuple[str, ...]
    lister: Lister
    opener: Opener
    #: rows can be sliced without reading the whole array (False for compressed members)
    sliceable: bool = True
    #: the "file" is a directory (e.g. a zarr directory store)
    directory: bool = False


FORMATS: dict[str, ArrayFormat] = {}


def register_format(fmt: ArrayFormat) -> ArrayFormat:
    """Add a file format (later formats: zarr, .pt, .safetensors) to every command at once."""
    FORMATS[fmt.kind] = fmt
    return fmt


def suffixes() -> tuple[str, ...]:
    """Every file extension some registered format reads."""
    return tuple(s for fmt in FORMATS.values() for s in fmt.suffixes)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded integers numerically (``layers/2`` < ``layers/10``)."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def file_kind(path: str) -> str:
    """The registered format of ``path``, from its extension."""
    name = str(path).rstrip("/").lower()
    for fmt in FORMATS.values():
        if any(name.endswith(s) for s in fmt.suffixes):
            return fmt.kind
    suffix = Path(name).suffix
    raise RepsimError(f"{path}: unknown file extension {suffix or '(none)'!r}; expected one of {', '.join(suffixes())}")


def check_exists(path: str, directory_ok: bool = False) -> None:
    """A clear error for a missing path, a directory where a file is expected, or a file that is
    not a regular file (a FIFO, a device, a socket: reading them could block forever)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise RepsimError(f"{path}: no such file") from None
    except PermissionError:
        raise RepsimError(f"{path}: permission denied") from None
    except OSError as exc:
        raise RepsimError(f"{path}: cannot access ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        if not directory_ok:
            raise RepsimError(f"{path}: is a directory, expected an activation file")
        return
    if not stat.S_ISREG(mode):
        what = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise RepsimError(f"{path}: is {what}, not a regular file; save the arrays to a file and pass that")
    if not os.access(path, os.R_OK):
        raise RepsimError(f"{path}: permission denied")


def is_numeric(dtype: np.dtype) -> bool:
    return bool(np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == np.bool_)


def decode_attr(value: Any) -> Any:
    """An attribute value as plain Python (bytes -> str, arrays -> lists)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in ("S", "O", "U"):
            return [decode_attr(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def list_arrays(path: str) -> tuple[list[ArrayInfo], dict[str, Any]]:
    """Every array in the file (in the format's natural order) and the file's attributes. Lazy."""
    fmt = FORMATS[file_kind(path)]
    check_exists(path, directory_ok=fmt.directory)
    try:
        return fmt.lister(path)
    except RepsimError:
        raise
    except Exception as exc:  # corrupt / truncated / not the format its name says
        raise RepsimError(f"{path}: cannot read as {fmt.kind.upper()} file ({type(exc).__name__}: {exc})") from exc


@contextmanager
def open_array(path: str, kind: str, name: str) -> Iterator[Any]:
    """Open one array for slicing; errors while opening name the file and the array."""
    try:
        cm = FORMATS[kind].opener(path, name)
        arr = cm.__enter__()
    except RepsimError:
        raise
    except Exception as exc:
        raise RepsimError(f"{path}: cannot open {name!r} ({type(exc).__name__}: {exc})") from exc
    try:
        yield arr
    finally:
        cm.__exit__(None, None, None)


def take_rows(arr: Any, rows: np.ndarray) -> np.ndarray:
    """``arr[rows]`` for any sliceable array: sorted unique reads, then the requested order."""
    uniq, inverse = np.unique(rows, return_inverse=True)
    return np.asarray(arr[uniq])[inverse.reshape(-1)]


def read_array(path: str, kind: str, name: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Read one array (optionally only some rows) in its stored dtype."""
    try:
        with open_array(path, kind, name) as arr:
            return np.asarray(arr[()] if rows is None else take_rows(arr, rows))
    except RepsimError:
        raise
    except Exception as exc:
        raise RepsimError(f"{path}: cannot read {name!r} ({type(exc).__name__}: {exc})") from exc


def rows_per_block(shape: tuple[int, ...], itemsize: int, block_bytes: int) -> int:
    row_bytes = max(1, int(np.prod(shape[1:])) * itemsize)
    return max(1, block_bytes // row_bytes)


def iter_row_blocks(path: str, kind: str, name: str, shape: tuple[int, ...], itemsize: int,
                    block_bytes: int = 64 * 2**20, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Rows ``start:stop`` of one array in consecutive blocks of about ``block_bytes`` (bounded memory)."""
    step = rows_per_block(shape, itemsize, block_bytes)
    stop = int(shape[0]) if stop is None else stop
    try:
        with open_array(path, kind, name) as arr:
            for s in range(start, stop, step):
                yield np.asarray(arr[s : min(stop, s + step)])
    except RepsimError:
        raise
    except Exception as exc:
        raise RepsimError(f"{path}:{name}: cannot read ({type(exc).__name__}: {exc})") from exc


def iter_axis_blocks(path: str, kind: str, name: str, shape: tuple[int, ...], axis: int, step: int) -> Iterator[np.ndarray]:
    """Slabs of ``step`` indices along ``axis`` (all rows each), e.g. column blocks of N x P gradients."""
    try:
        with open_array(path, kind, name) as arr:
            for c0 in range(0, shape[axis], step):
                index = (slice(None),) * axis + (slice(c0, min(shape[axis], c0 + step)),)
                yield np.asarray(arr[index])
    except RepsimError:
        raise
    except Exception as exc:
        raise RepsimError(f"{path}:{name}: cannot read ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- HDF5


def _list_hdf5(path: str) -> tuple[list[ArrayInfo], dict[str, Any]]:
    """Every dataset under every name it has (hard links, soft links, resolvable external links).

    ``visititems`` visits each object once, so a dataset with two hard-linked names would be
    listed under one of them only; here every name is listed, later names as ``alias_of`` the first.
    """
    import h5py

    infos: list[ArrayInfo] = []
    with h5py.File(path, "r") as f:
        attrs = {k: decode_attr(v) for k, v in f.attrs.items()}
        first_name: dict[Any, str] = {}  # in natural order, so the first name is the same on every run
        for name, obj in sorted(_hdf5_datasets(f), key=lambda item: natural_key(item[0])):
            key = (obj.file.filename, h5py.h5o.get_info(obj.id).addr)
            shape = tuple(int(s) for s in (obj.shape or ()))
            infos.append(ArrayInfo(name, shape, obj.dtype, tuple(obj.chunks) if obj.chunks else None,
                                   alias_of=first_name.get(key), problem=hdf5_problem(path, obj)))
            first_name.setdefault(key, name)
    return infos, attrs


def _hdf5_datasets(f: Any) -> Iterator[tuple[str, Any]]:
    """(name, dataset) for every link path that leads to a dataset (each group entered once)."""
    import h5py

    seen_groups: set[Any] = set()
    stack: list[tuple[str, Any]] = [("", f)]
    while stack:
        prefix, group = stack.pop()
        gkey = (group.file.filename, h5py.h5o.get_info(group.id).addr)
        if gkey in seen_groups:
            continue
        seen_groups.add(gkey)
        for key in group:
            name = f"{prefix}{key}"
            try:
                obj = group[key]
            except (KeyError, OSError):  # a dangling soft or external link: nothing to read
                continue
            if isinstance(obj, h5py.Dataset):
                yield name, obj
            elif isinstance(obj, h5py.Group):
                stack.append((name + "/", obj))


def hdf5_link_problem(path: str, name: str) -> str:
    """Why ``name`` in HDF5 file ``path`` is not a readable dataset when it is a link ('' if not a link)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            link = f.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                return f"is an external link to {link.filename}:{link.path}, which cannot be opened (missing file or dataset?)"
            if isinstance(link, h5py.SoftLink):
                return f"is a soft link to {link.path}, which does not exist"
    except (OSError, KeyError, ValueError):
        return ""
    return ""


def hdf5_problem(path: str, ds: Any) -> str:
    """Why reading dataset ``ds`` of ``path`` would return invented data ('' if nothing is wrong).

    - a virtual dataset whose source file (or source dataset) is missing reads as fill values
      there: name the source and the rows it maps (relative source names are resolved against
      the virtual file's folder, then the working directory, as HDF5 does);
    - a dataset with a non-empty shape but no stored data (unallocated storage) reads as fill
      values everywhere, and a huge declared shape would stream them for minutes.
    """
    size = int(np.prod(ds.shape)) if ds.shape else 1
    if size == 0:
        return ""
    if ds.is_virtual:
        return _virtual_problem(path, ds)
    stored = int(ds.id.get_storage_size())
    declared = size * ds.dtype.itemsize
    if stored == 0:
        return (f"declares shape {tuple(ds.shape)} ({declared / 2**20:.4g} MiB) but has no stored data "
                "(unallocated storage: every value would read as the fill value)")
    filtered = ds.id.get_create_plist().get_nfilters() > 0
    if not filtered and stored < declared // 2:
        return (f"declares shape {tuple(ds.shape)} ({declared / 2**20:.4g} MiB) but stores only "
                f"{stored / 2**20:.4g} MiB (chunks never written would read as the fill value)")
    return ""


def _virtual_problem(path: str, ds: Any) -> str:
    import h5py

    folder = os.path.dirname(os.path.abspath(path))
    for vmap in ds.virtual_sources():
        src = vmap.file_name
        if "%" in src:  # printf-style source patterns: not resolvable here
            continue
        rows = _vds_rows(vmap.vspace)
        if src == ".":
            target = os.path.abspath(path)
        else:
            cands = [src] if os.path.isabs(src) else [os.path.join(folder, src), os.path.abspath(src)]
            target = next((c for c in cands if os.path.isfile(c)), "")
            if not target:
                return (f"is a virtual dataset whose source file {src!r} (rows {rows}) is missing; "
                        "HDF5 would read fill values there. Put the source file next to the virtual file")
        if target != os.path.abspath(path):
            try:
                with h5py.File(target, "r") as sf:
                    ok = isinstance(sf.get(vmap.dset_name), h5py.Dataset)
            except OSError:
                return f"is a virtual dataset whose source file {src!r} (rows {rows}) cannot be opened as HDF5"
            if not ok:
                return f"is a virtual dataset whose source {src!r}:{vmap.dset_name} (rows {rows}) has no such dataset"
    return ""


def _vds_rows(space: Any) -> str:
    try:
        start, end = space.get_select_bounds()
        return f"{int(start[0])}..{int(end[0])}"
    except Exception:  # an unusual selection: the rows are not essential to the message
        return "?"


@contextmanager
def _open_hdf5(path: str, name: str) -> Iterator[Any]:
    import h5py

    with h5py.File(path, "r", rdcc_nbytes=RDCC_BYTES) as f:
        ds = f[name]
        problem = hdf5_problem(path, ds) if isinstance(ds, h5py.Dataset) else ""
        if problem:
            raise RepsimError(f"{path}: dataset {name!r} {problem}")
        yield ds


# --------------------------------------------------------------------------- NumPy


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _list_npy(path: str) -> tuple[list[ArrayInfo], dict[str, Any]]:
    with open(path, "rb") as fh:  # the header only: no data is read
        shape, dtype = _npy_header(fh)
    if dtype.hasobject:
        raise RepsimError(f"{path}: object (pickled) arrays are refused: loading them could execute code")
    return [ArrayInfo(Path(path).stem, shape, dtype)], {}


@contextmanager
def _open_npy(path: str, name: str) -> Iterator[Any]:
    yield np.load(path, mmap_mode="r", allow_pickle=False)


def _list_npz(path: str) -> tuple[list[ArrayInfo], dict[str, Any]]:
    infos = []
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            if member.endswith(".npy"):
                with zf.open(member) as fh:
                    shape, dtype = _npy_header(fh)
                infos.append(ArrayInfo(member[: -len(".npy")], shape, dtype))
    return infos, {}


#: a compressed member that inflates more than this many times, to more than NPZ_BOMB_BYTES, is refused
NPZ_BOMB_RATIO = 200
NPZ_BOMB_BYTES = 256 * 2**20
NPZ_ADVICE = "members of an .npz are inflated whole: save the array as .npy (memory-mapped, read in row blocks) or HDF5"


@contextmanager
def _open_npz(path: str, name: str) -> Iterator[Any]:
    from repsim_cli.io.budget import check_allocation, current_advice

    with zipfile.ZipFile(path) as zf, zf.open(name + ".npy") as fh:  # the header only
        shape, dtype = _npy_header(fh)
        stored = zf.getinfo(name + ".npy").compress_size
    inflated = int(np.prod(shape)) * dtype.itemsize
    if inflated > NPZ_BOMB_BYTES and inflated > NPZ_BOMB_RATIO * max(1, stored):
        raise RepsimError(
            f"{path}:{name} (shape {shape}, dtype {dtype}) inflates {inflated / max(1, stored):.0f}-fold, from "
            f"{stored / 2**20:.3g} MiB to {inflated / 2**30:.3g} GiB (a decompression bomb, or a nearly constant "
            f"array); refused. If it is genuine, {NPZ_ADVICE.split(': ', 1)[1]}"
        )
    check_allocation(f"{path}:{name} (shape {shape}, dtype {dtype})", inflated, f"{NPZ_ADVICE}; or {current_advice()}")
    with np.load(path, allow_pickle=False) as z:  # compressed members are read whole
        yield z[name]


register_format(ArrayFormat("hdf5", (".h5", ".hdf5"), _list_hdf5, _open_hdf5))
register_format(ArrayFormat("npy", (".npy",), _list_npy, _open_npy))
register_format(ArrayFormat("npz", (".npz",), _list_npz, _open_npz, sliceable=False))

# Optional formats in their own modules (their packages are imported only when such a file is opened).
from repsim_cli.io import torch_formats as _torch_formats  # noqa: E402,F401
from repsim_cli.io import zarr_format  # noqa: E402,F401
