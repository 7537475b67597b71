"""The ``repsim`` command line: parses arguments, calls the library, renders results.

Each subcommand lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from repsim_cli.cli._app import app, error

# Importing registers the subcommands, in the order ``repsim --help`` lists them.
from repsim_cli.cli import compare as _compare  # noqa: F401,E402
from repsim_cli.cli import heatmap as _heatmap  # noqa: F401,E402
from repsim_cli.cli import test_cmd as _test  # noqa: F401,E402
from repsim_cli.cli import inputsim as _inputsim  # noqa: F401,E402
from repsim_cli.cli import inspect_cmd as _inspect  # noqa: F401,E402
from repsim_cli.cli import metrics_cmd as _metrics  # noqa: F401,E402


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console entry point (``repsim`` and ``python -m repsim_cli``)."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="repsim")
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(130)


__all__ = ["app", "main"]
