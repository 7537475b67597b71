"""Writing outputs safely: atomic replace, never onto an input file, clear errors."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterable, Iterator

from repsim_cli.errors import RepsimError


@contextlib.contextmanager
def atomic_output(path: str, protected: Iterable[str] = (), suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed onto ``path``.

    Refuses to overwrite any of ``protected`` (the user's input files) or a directory. On any
    failure, including Ctrl-C, the temporary file is removed and ``path`` is left as it was.
    Operating-system errors (no such folder, permission denied, disk full) become one-line
    :class:`RepsimError` s naming the path.
    """
    folder = check_output_path(path, protected)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".repsim-", suffix=suffix, dir=folder)
    except OSError as exc:
        raise RepsimError(f"{path}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise RepsimError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str, data: str | bytes, protected: Iterable[str] = ()) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; see :func:`atomic_output`."""
    with atomic_output(path, protected) as tmp:
        if isinstance(data, bytes):
            with open(tmp, "wb") as fh:
                fh.write(data)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(path: str, protected: Iterable[str] = ()) -> str:
    """Refuse an output path that is an input file, a directory, or in a missing folder; return its folder.

    Commands call it before computing, so a bad ``-o`` fails at once, not after the work.
    """
    check_not_input(path, protected)
    if os.path.isdir(path):
        raise RepsimError(f"{path}: is a directory; give a file name for the output")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise RepsimError(f"{path}: output folder {folder} does not exist")
    return folder


def check_not_input(path: str, protected: Iterable[str]) -> None:
    """Raise if ``path`` is one of the input files (never overwrite what the user gave us)."""
    target = os.path.realpath(path)
    for p in protected:
        if os.path.realpath(p) == target:
            raise RepsimError(f"{path}: refusing to overwrite an input file; choose another output path")
