"""Memory budget: estimate what a read will allocate and refuse it before allocating.

The budget is the smallest of: the innermost :func:`budget_scope` (e.g. ``heatmap``'s ``max_memory``;
``inspect`` reads in blocks, so a few hundred MiB), the environment variable ``REPSIM_MAX_MEMORY``
(GiB), and 90% of the memory the operating system reports as available (``MemAvailable`` in
/proc/meminfo, or physical memory elsewhere).

What to do about a refusal depends on the call: :func:`advice_scope` sets the advice that the
refusals of the current call print (``api.compare`` advises ``max_samples``, ``pool`` only for
N-D layers, ``stream`` only where the metric streams), so the library keeps the check in one
place and every command still gives advice that fits it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from repsim_cli.errors import RepsimError

_BUDGET: ContextVar[int | None] = ContextVar("repsim_memory_budget", default=None)
_ADVICE: ContextVar[str] = ContextVar("repsim_memory_advice", default="use a subset of the inputs (max_samples)")


def available_memory() -> int:
    """Bytes the OS reports as available now (MemAvailable), else physical memory, else 8 GiB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def memory_budget() -> int:
    """The number of bytes one read may allocate (see the module docstring): the smallest of
    the innermost :func:`budget_scope`, ``REPSIM_MAX_MEMORY`` and 90% of the available memory."""
    scoped = _BUDGET.get()
    base = _base_budget()
    return base if scoped is None else min(scoped, base)


def _base_budget() -> int:
    env = os.environ.get("REPSIM_MAX_MEMORY")
    if env:
        try:
            gib = float(env)
        except ValueError:
            raise RepsimError(f"REPSIM_MAX_MEMORY must be a number of GiB, got {env!r}") from None
        if not gib > 0:
            raise RepsimError(f"REPSIM_MAX_MEMORY must be > 0 GiB, got {env!r}")
        return int(gib * 2**30)
    return int(0.9 * available_memory())


@contextmanager
def budget_scope(max_bytes: int | None) -> Iterator[None]:
    """Within this block, :func:`memory_budget` is ``max_bytes`` (None: unchanged)."""
    token = _BUDGET.set(max_bytes) if max_bytes is not None else None
    try:
        yield
    finally:
        if token is not None:
            _BUDGET.reset(token)


@contextmanager
def advice_scope(advice: str) -> Iterator[None]:
    """Within this block, memory refusals end with ``advice`` (parameter names; the CLI shows flags)."""
    token = _ADVICE.set(advice)
    try:
        yield
    finally:
        _ADVICE.reset(token)


def current_advice() -> str:
    return _ADVICE.get()


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_allocation(what: str, need: int, advice: str | None = None) -> None:
    """Refuse (RepsimError) if ``need`` bytes exceed the budget: ``what`` names the file and array."""
    budget = memory_budget()
    if need > budget:
        raise RepsimError(
            f"{what}: reading it needs about {gib(need)}, above the memory budget of {gib(budget)} "
            f"(available memory, or REPSIM_MAX_MEMORY); {advice or current_advice()}"
        )
