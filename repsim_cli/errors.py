"""Errors and warnings that reach the user as one line, never a traceback."""

from __future__ import annotations

import warnings


class RepsimError(Exception):
    """Bad input or usage. The CLI prints ``repsim: error: <message>`` and exits with code 2."""

    exit_code = 2


class RepsimWarning(UserWarning):
    """A result is computed but deserves a caveat (dead units, degenerate regime, ...)."""


def warn(message: str) -> None:
    """Emit a :class:`RepsimWarning` (library callers see it through :mod:`warnings`)."""
    warnings.warn(message, RepsimWarning, stacklevel=3)
