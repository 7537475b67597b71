# ruff: noqa: I001  (import order = the order `repsim --help` lists the subcommands)
"""The ``repsim`` command line: parses arguments, calls the library, renders results.

Each subcommand lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import signal
import sys
from typing import Any, Sequence

import typer

from repsim_cli.cli._app import INTERRUPTED, Terminated, app, error

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
    install_signal_handlers()
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
    except (KeyboardInterrupt, typer.Abort) as exc:
        error(str(exc) if isinstance(exc, Terminated) else "interrupted")
        _exit_now(getattr(exc, "exit_code", 130))
    if INTERRUPTED["code"] is not None:
        _exit_now(INTERRUPTED["code"])
    sys.exit(_flushed(rv if isinstance(rv, int) else 0))


def _exit_now(code: int) -> None:
    """Exit an interrupted run at once: temporaries are already removed and workers stopped.

    ``os._exit`` skips the interpreter's exit handlers, which would join the worker pool's
    management threads; after a signal those can wait forever on a pool torn down mid-call.
    """
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
    os._exit(code)


def _flushed(code: int) -> int:
    """``code``, or 2 if what is still buffered for stdout cannot be written (a full disk, a size limit)."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        return code
    except OSError as exc:
        error(f"standard output: write failed ({exc.strerror or exc}); the output is incomplete")
        return 2
    return code


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP end a run like Ctrl-C (temporaries removed, workers stopped), exit 128 + signal.

    A signal the caller chose to ignore (``nohup`` ignores SIGHUP) stays ignored. SIGXFSZ (a
    file-size limit, ``ulimit -f``) is ignored so that the write fails with EFBIG and is reported
    as one line instead of killing the process mid-write.
    """
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _terminate)
        if hasattr(signal, "SIGXFSZ"):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except ValueError:  # not the main thread (main() called from a thread): leave signals alone
        pass


__all__ = ["app", "main"]
