"""Errors and warnings that reach the user as one line, never a traceback."""

from __future__ import annotations

import warnings


class RepsimError(ValueError):
    """Bad input or usage, with a one-line message naming what is wrong.

    The library raises it (a :class:`ValueError`, so ``except ValueError`` catches it too); the
    CLI prints ``repsim: error: <message>`` with parameter names mapped to its flags and exits 2.
    """

    exit_code = 2


class RepsimWarning(UserWarning):
    """A result is computed but deserves a caveat (dead units, F >= N, tied canonical correlations, ...).

    Filter them like any warning: ``warnings.simplefilter("ignore", rs.RepsimWarning)``.
    """


def warn(message: str, stacklevel: int = 3) -> None:
    """Emit a :class:`RepsimWarning` (library callers see it through :mod:`warnings`)."""
    warnings.warn(message, RepsimWarning, stacklevel=stacklevel)
