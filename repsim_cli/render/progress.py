"""Progress on stderr (rich), for the CLI on a terminal and for ``progress=True`` in the library."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator


@contextlib.contextmanager
def progress(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr (``enabled``); yields ``advance(k)`` or None (no output at all)."""
    if total <= 0 or not enabled:
        yield None
        return
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
