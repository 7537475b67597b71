"""Progress on stderr: a rich bar on a terminal, periodic lines elsewhere, an estimate for long work.

Modes (the CLI's ``--progress``, the library's ``progress=``):

- ``"auto"``: a rich bar when stderr is a terminal; otherwise (CI logs, ``2> log``) one line
  about every 10 s with done/total and an ETA, only for work that lasts longer than that;
- ``"always"``: a bar on a terminal; otherwise a line at the start and then every 10 s;
- ``"never"`` / ``False``: nothing; ``True``: a rich bar (the library's historical meaning).

In every mode but ``never``, work whose projected duration (measured on its first steps)
exceeds a minute gets one line first: ``repsim: compare: about 3 min for 2000 steps``.
Printing never decides the outcome: a failure to write to stderr is ignored.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, Iterator, TextIO

from repsim_cli.errors import RepsimError

MODES = ("auto", "always", "never")
#: seconds between two progress lines when stderr is not a terminal
LINE_INTERVAL = 10.0
#: work projected to last longer than this (seconds) is announced with an estimate line
ESTIMATE_ABOVE = 60.0
#: the projection is made once this much time has passed (seconds)
ESTIMATE_AFTER = 2.0


def progress_mode(value: bool | str | None) -> str:
    """Normalise ``progress=``: ``"auto"``, ``"always"``, ``"never"``, or ``"bar"`` (``True``)."""
    if value is None or value is False:
        return "never"
    if value is True:
        return "bar"
    if isinstance(value, str) and value in MODES:
        return value
    raise RepsimError(f"progress must be one of {', '.join(MODES)} (or a bool), got {value!r}")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


def fmt_duration(seconds: float) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 05 min``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class LineProgress:
    """Progress as plain lines (for logs): ``repsim: compare: 120/2000 (6%), 1 min 02 s elapsed, ETA 15 min``.

    ``first_line``: print a line at once (mode ``always``); otherwise the first line comes after
    ``interval`` seconds, so short work prints nothing. ``announce``: print the estimate line for
    long work. ``clock`` and ``stream`` are injectable for tests.
    """

    def __init__(
        self, description: str, total: int, *, stream: TextIO | None = None, interval: float = LINE_INTERVAL,
        lines: bool = True, first_line: bool = False, announce: bool = True, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description, self.total, self.done = description, total, 0
        self.stream, self.interval, self.lines, self.announce = stream, interval, lines, announce
        self.clock = clock
        self.start = self.last = clock()
        self.estimated = self.printed = False
        self.first: tuple[float, int] | None = None
        if first_line and lines:
            self._say(f"repsim: {description}: 0/{total}")
            self.printed = True

    def _say(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            if stream is not None:
                stream.write(line + "\n")
                stream.flush()
        except Exception:  # noqa: BLE001 - a diagnostic never changes the outcome
            pass

    def advance(self, k: int = 1) -> None:
        self.done = min(self.total, self.done + k)
        now = self.clock()
        elapsed = now - self.start
        eta = elapsed * (self.total - self.done) / self.done if self.done else None
        if self.first is None:  # the rate is measured from the first finished step (setup excluded)
            self.first = (now, self.done)
        elif self.announce and not self.estimated and now - self.first[0] >= ESTIMATE_AFTER:
            self.estimated = True
            rate = (self.done - self.first[1]) / (now - self.first[0])
            total_time = elapsed + (self.total - self.done) / rate if rate > 0 else 0.0
            if total_time > ESTIMATE_ABOVE:
                self._say(f"repsim: {self.description}: about {fmt_duration(total_time)} in all for {self.total} steps "
                          "(estimated from the first ones)")
        if self.lines and now - self.last >= self.interval and self.done < self.total:
            self.last, self.printed = now, True
            pct = 100.0 * self.done / self.total if self.total else 100.0
            tail = f", ETA {fmt_duration(eta)}" if eta is not None else ""
            self._say(f"repsim: {self.description}: {self.done}/{self.total} ({pct:.0f}%), "
                      f"{fmt_duration(elapsed)} elapsed{tail}")

    def finish(self) -> None:
        if self.lines and self.printed and self.done >= self.total:  # lines were printed: close them
            self._say(f"repsim: {self.description}: {self.total}/{self.total} done in {fmt_duration(self.clock() - self.start)}")


@contextlib.contextmanager
def progress(description: str, total: int, enabled: bool | str = True) -> Iterator[Callable[[int], None] | None]:
    """Progress on stderr for ``total`` steps; yields ``advance(k)`` or None (mode ``never``).

    ``enabled``: a mode (see the module docstring) or a bool.
    """
    mode = progress_mode(enabled)
    if total <= 0 or mode == "never":
        yield None
        return
    if mode == "bar" or _isatty(sys.stderr):
        with _rich_bar(description, total) as bar_advance:
            timer = LineProgress(description, total, lines=False)

            def advance(k: int = 1) -> None:
                bar_advance(k)
                timer.advance(k)

            yield advance
        return
    lines = LineProgress(description, total, first_line=mode == "always")
    yield lines.advance
    lines.finish()


@contextlib.contextmanager
def _rich_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(k: int = 1) -> None:
            bar.advance(task, k)

        yield advance
