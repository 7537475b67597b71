"""Writing outputs safely: atomic replace of regular files, direct writes to devices, checked writes.

- A regular file (or a new path) is written to a temporary file in its folder, flushed, and
  ``os.replace``-d onto the path: a failure leaves the old file as it was and no debris.
- A character device, FIFO or socket (``/dev/null``, a symlink to one, ``/dev/stdout``,
  ``/proc/self/fd/1``) is written directly: replacing it would destroy the device entry (as
  root) and never reach the reader. ``-`` means standard output.
- Every write is flushed and checked: a full disk (ENOSPC), a file-size limit (EFBIG) or any
  other failed write is a one-line :class:`RepsimError`, never a truncated file and exit 0.
- Two outputs of one command never name the same file (:func:`check_distinct_outputs`), and an
  output never names an input file (:func:`check_not_input`).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import tempfile
from typing import BinaryIO, Iterable, Iterator

from repsim_cli.errors import RepsimError

#: ``-o -``: standard output
STDOUT = "-"
#: paths that name an already open file descriptor (never replaced, always written in place)
_FD_PATH = re.compile(r"^/(?:proc/(?:self|thread-self|\d+)/fd/\d+|dev/fd/\d+|dev/std(?:in|out|err))$")


def is_direct(path: str) -> bool:
    """True if ``path`` must be written in place: ``-``, a device/FIFO/socket, or a file-descriptor path.

    Symlinks are followed (a link to ``/dev/null`` is a device); a path that does not exist
    yet, or a regular file, gets an atomic replace instead.
    """
    if path == STDOUT:
        return True
    if _names_fd(path):
        return True
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def _names_fd(path: str) -> bool:
    """Whether ``path`` or any symlink on its way names ``/dev/stdout``, ``/proc/self/fd/N`` and the like."""
    current = os.path.abspath(path)
    for _ in range(40):
        if _FD_PATH.match(current):
            return True
        if not os.path.islink(current):
            return False
        target = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return False


def describe_target(path: str) -> str:
    """``standard output``, ``a character device`` ... for messages."""
    if path == STDOUT:
        return "standard output"
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a file descriptor"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a file descriptor"


@contextlib.contextmanager
def atomic_output(path: str, protected: Iterable[str] = (), suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed onto ``path``.

    For writers that need a real, seekable file (HDF5): a device, FIFO or ``-`` is refused with
    a clear message (use :func:`write_atomic` for bytes or text, which writes those in place).
    Refuses to overwrite any of ``protected`` (the user's input files) or a directory. On any
    failure, including Ctrl-C, SIGTERM and SIGHUP (the CLI turns them into exceptions), the
    temporary file is removed and ``path`` is left as it was. Operating-system errors (no such
    folder, permission denied, disk full, file too large) become one-line :class:`RepsimError` s.
    """
    folder = check_output_path(path, protected, regular_only=True)
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
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_atomic(path: str, data: str | bytes, protected: Iterable[str] = ()) -> None:
    """Write ``data`` (text as UTF-8) to ``path``: atomically for a regular file, in place otherwise.

    ``-`` is standard output; devices, FIFOs and ``/dev/stdout``-like paths are written directly
    (never replaced). Every write is flushed and checked (see :func:`write_checked`).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if path == STDOUT:
        write_stdout(payload)
        return
    check_output_path(path, protected)
    if is_direct(path):
        with contextlib.suppress(Exception):
            sys.stdout.flush()  # what was printed before comes first (``-o /dev/stdout``)
        try:
            with open(path, "ab", buffering=0) as fh:
                write_checked(fh, payload, path)
        except OSError as exc:
            raise RepsimError(f"{path}: cannot write ({exc.strerror or exc})") from None
        return
    with atomic_output(path, protected) as tmp:
        with open(tmp, "wb") as fh:
            write_checked(fh, payload, path)


def write_checked(fh: BinaryIO, payload: bytes, name: str) -> None:
    """Write all of ``payload`` to ``fh`` and flush; a short or failed write raises :class:`RepsimError`.

    Catches what a plain ``write`` may hide: a partial write at a file-size limit (EFBIG, with
    SIGXFSZ ignored), a full disk (ENOSPC, e.g. ``/dev/full``).
    """
    view = memoryview(payload)
    try:
        while view:
            n = fh.write(view)
            if n is None:  # non-blocking stream that would block: try again
                continue
            if n == 0:
                raise OSError(28, "no space left on device")
            view = view[n:]
        fh.flush()
    except OSError as exc:
        raise RepsimError(f"{name}: write failed ({exc.strerror or exc}); the output is incomplete") from None


def write_stdout(data: str | bytes) -> None:
    """Write ``data`` to standard output, flushed and checked (exit 2 on a failed write).

    A closed pipe (``| head``) is not an error: :class:`BrokenPipeError` propagates for the
    CLI to end quietly.
    """
    stream = sys.stdout
    if stream is None:
        raise RepsimError("standard output is closed; give -o FILE")
    encoding = getattr(stream, "encoding", None) or "utf-8"
    payload = data.encode(encoding, errors="replace") if isinstance(data, str) else data  # text: as print would
    try:
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text-only stream (tests capture stdout like this)
            stream.write(data if isinstance(data, str) else data.decode(encoding, errors="replace"))
            stream.flush()
            return
        view = memoryview(payload)
        while view:
            n = buffer.write(view)
            if n is None:
                continue
            if n == 0:
                raise OSError(28, "no space left on device")
            view = view[n:]
        buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise RepsimError(f"standard output: write failed ({exc.strerror or exc}); the output is incomplete") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(path: str, protected: Iterable[str] = (), regular_only: bool = False) -> str:
    """Refuse an output path that is an input file, a directory, or in a missing folder; return its folder.

    ``-`` (standard output), devices and FIFOs are accepted (they are written in place) unless
    ``regular_only`` (for formats such as HDF5 that need a seekable regular file). Commands
    call it before computing, so a bad ``-o`` fails at once, not after the work.
    """
    if path == "":
        raise RepsimError("the output path is empty; give a file name or - for standard output")
    if regular_only and is_direct(path):
        raise RepsimError(
            f"{path}: is {describe_target(path)}; this output (HDF5) needs a regular file path, "
            "since it is written with seeks"
        )
    if path == STDOUT:
        return os.getcwd()
    check_not_input(path, protected)
    if os.path.isdir(path):
        raise RepsimError(f"{path}: is a directory; give a file name for the output")
    folder = os.path.dirname(os.path.abspath(path))
    if is_direct(path):
        return folder
    if not os.path.isdir(folder):
        raise RepsimError(f"{path}: output folder {folder} does not exist")
    return folder


def same_file(p: str, q: str) -> bool:
    """Whether two paths name one file: equal real paths, or (both existing) the same inode (hard links)."""
    if os.path.realpath(p) == os.path.realpath(q):
        return True
    try:
        return os.path.samefile(p, q)
    except OSError:
        return False


def check_not_input(path: str, protected: Iterable[str]) -> None:
    """Raise if ``path`` is one of the input files (never overwrite what the user gave us).

    Compares real paths and, when both exist, inodes (a hard link to an input is that input).
    """
    if path == STDOUT:
        return
    for p in protected:
        if p and p != STDOUT and same_file(p, path):
            raise RepsimError(f"{path}: refusing to overwrite an input file; choose another output path")


def check_distinct_outputs(outputs: dict[str, str | None]) -> None:
    """Refuse two outputs of one command that resolve to the same file.

    ``outputs`` maps a name for messages (a flag such as ``--kernel-out``, or a parameter name)
    to a path (None: not requested). Standard output and devices may be shared (two writes to
    ``/dev/null`` lose nothing); regular files and new paths may not, whether they are the same
    string, reach each other by symlinks, or are hard links of one file.
    """
    named = [(k, v) for k, v in outputs.items() if v is not None and not is_direct(v)]
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1:]:
            if same_file(a, b):
                raise RepsimError(f"{name_a} and {name_b} name the same file {b}; choose two paths")
