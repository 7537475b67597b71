# ruff: noqa: I001  (import order = the order `repsim --help` lists the subcommands)
"""The ``repsim`` command line: parses arguments, calls the library, renders results.

Each subcommand lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import sys
from typing import Sequence

import typer

from repsim_cli.cli._app import app, error

try:  # typer >= 0.25 vendors click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer depends on click
    from click.exceptions import ClickException, UsageError  # type: ignore[assignment]

# Importing registers the subcommands, in the order ``repsim --help`` lists them.
from repsim_cli.cli import compare as _compare  # noqa: F401,E402
from repsim_cli.cli import heatmap as _heatmap  # noqa: F401,E402
from repsim_cli.cli import test_cmd as _test  # noqa: F401,E402
from repsim_cli.cli import inputsim as _inputsim  # noqa: F401,E402
from repsim_cli.cli import inspect_cmd as _inspect  # noqa: F401,E402
from repsim_cli.cli import metrics_cmd as _metrics  # noqa: F401,E402
from repsim_cli.cli import capture as _capture  # noqa: F401,E402


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``repsim`` and ``python -m repsim_cli``).

    Usage errors (unknown option, missing argument, a value of the wrong type) are one line on
    stderr and exit code 2, like every other bad input.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        rv = app(args=args, prog_name="repsim", standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `repsim` / `repsim CMD`: show the help
            exc.show()
            sys.exit(2)
        command = exc.ctx.command_path if exc.ctx is not None else "repsim"
        error(f"{exc.format_message()} (see `{command} --help`)")
        sys.exit(2)
    except ClickException as exc:
        error(exc.format_message())
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        error("interrupted")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


__all__ = ["app", "main"]
