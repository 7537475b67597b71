"""The typer application object and options shared by the subcommands."""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import warnings
from typing import Any, Callable, TypeVar

import typer

from repsim_cli import __version__
from repsim_cli.errors import RepsimError, RepsimWarning
from repsim_cli.render.tables import escape_text

app = typer.Typer(
    name="repsim",
    help=(
        "How similar are two neural-network representations? Compare saved activations "
        "(HDF5, .npy, .npz, zarr, .pt, .safetensors; N inputs x features per layer) with CKA, CCA, "
        "Procrustes and shape metrics, RSA, neighbourhood measures and honest baselines, against exact "
        "chance levels, permutation and bootstrap nulls; stream files larger than memory or run on a dask "
        "cluster; capture activations from PyTorch / Hugging Face models. Everything is also a Python "
        "API: import repsim_cli as rs.\n\n"
        "Exit codes: 0 ok, 1 a --fail-* gate was crossed, 2 bad input or usage, 130 interrupted "
        "(129 / 143 on SIGHUP / SIGTERM)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
)

F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        typer.echo(f"repsim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """repsim: representation similarity from activation files."""


#: per-run state of the diagnostics: ``--quiet`` and the number of warnings it held back
_DIAGNOSTICS = {"quiet": False, "held": 0}
#: the exit code of an interrupted run (Ctrl-C, SIGTERM, SIGHUP), for the entry point to exit at once
INTERRUPTED: dict[str, int | None] = {"code": None}


def _stderr_line(line: str) -> None:
    """Write one line to stderr; a failure (stderr closed, full, a broken pipe) is ignored.

    Diagnostics never decide the exit code: that is what the result says.
    """
    try:
        stream = sys.stderr
        if stream is None:
            return
        stream.write(line + "\n")
        stream.flush()
    except Exception:  # noqa: BLE001 - printing a diagnostic must never change the outcome
        pass


def error(message: str) -> None:
    """One line on stderr (plain text: messages may contain brackets; control characters escaped)."""
    _stderr_line(f"repsim: error: {escape_text(message)}")


def warning(message: str) -> None:
    """``repsim: warning: ...`` on stderr, or counted for the summary line under ``--quiet``."""
    if _DIAGNOSTICS["quiet"]:
        _DIAGNOSTICS["held"] += 1
        return
    _stderr_line(f"repsim: warning: {escape_text(message)}")


def info(message: str) -> None:
    _stderr_line(escape_text(message))


def begin_diagnostics(quiet: bool) -> None:
    """Start a command: ``quiet`` holds warnings back (see :func:`end_diagnostics`)."""
    _DIAGNOSTICS.update(quiet=bool(quiet), held=0)


def end_diagnostics() -> None:
    """Under ``--quiet``, one line summarising the warnings held back (none: nothing)."""
    held = _DIAGNOSTICS["held"]
    if _DIAGNOSTICS["quiet"] and held:
        noun = "warning" if held == 1 else "warnings"
        _stderr_line(f"repsim: {held} {noun} (run without --quiet to see them)")
    _DIAGNOSTICS.update(quiet=False, held=0)


#: library parameter names -> the command-line flags that set them (the library's messages speak
#: of parameters, e.g. "ci must lie in (0, 1)"; the CLI shows its own flags: "--ci must ...")
PARAM_FLAGS = {
    "max_samples": "--max-samples", "channel_axis": "--channel-axis", "max_gram": "--max-gram",
    "max_memory": "--max-memory", "block_size": "--block-size", "kernel_dtype": "--kernel-dtype",
    "multi_output": "--multi-output", "drop_zero": "--drop-zero", "top_k": "--top-k",
    "fail_below": "--fail-below", "fail_above": "--fail-above", "fail_sanity_below": "--fail-sanity-below",
    "fail_p_below": "--fail-p-below", "fail_p_above": "--fail-p-above", "n_resamples": "-B",
    "samples": "--samples", "pool": "--pool", "stream": "--stream", "permutations": "--permutations",
    "bootstrap": "--bootstrap", "alpha": "--alpha", "rcond": "--rcond", "threshold": "--threshold",
    "seed": "--seed", "jobs": "--jobs", "ci": "--ci", "ci_method": "--ci-method", "format": "--format", "null": "--null",
    "chance": "--chance",
    "block_rows": "--block-rows", "shuffle_rows": "--shuffle-rows",
    "progress": "--progress", "quiet": "--quiet", "kernel_out": "--kernel-out", "data_out": "--data-out",
}
_UNDERSCORED = re.compile(r"(?<![\w.:=-])(" + "|".join(k for k in PARAM_FLAGS if "_" in k) + r")\b")
_PLAIN = re.compile(
    r"(?:(?<=^)|(?<=: )|(?<=; )|(?<=, )|(?<=use )|(?<=raise )|(?<=with )|(?<=pass )|(?<=fewer )|(?<=combined with )|(?<=or ))("
    + "|".join(k for k in PARAM_FLAGS if "_" not in k)
    + r")(?= (?:must|cannot|and|or|is|reads|supports|would|mean|\d|R\b))"
)


#: library phrases that are whole flags on the command line
LITERAL_FLAGS = {"stream=True": "--stream", "constant=False": "--no-constant"}


def to_flags(message: str) -> str:
    """A library message with parameter names replaced by this CLI's flags."""
    for phrase, flag in LITERAL_FLAGS.items():
        message = message.replace(phrase, flag)
    message = _UNDERSCORED.sub(lambda m: PARAM_FLAGS[m.group(1)], message)
    return _PLAIN.sub(lambda m: PARAM_FLAGS[m.group(1)], message)


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    warning(to_flags(str(message)))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that temporaries are cleaned as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"terminated by {name}")
        self.signum = signum
        self.exit_code = 128 + signum


def flag_of(param: str) -> str:
    """The command-line flag of a parameter (``max_memory`` -> ``--max-memory``)."""
    return PARAM_FLAGS.get(param, "--" + param.replace("_", "-"))


def check_not_nan(options: dict[str, Any]) -> None:
    """A NaN option value (``--ci nan``, ``--vmin nan``) is a usage error, whatever the command."""
    for name, value in options.items():
        if isinstance(value, float) and math.isnan(value):
            raise RepsimError(f"{flag_of(name)} must be a number, got nan")


def memory_advice(options: dict[str, Any]) -> str:
    """What the running command offers to use less memory (only options it has)."""
    offers = [text for name, text in (
        ("max_samples", "--max-samples M (a random subset of the rows)"), ("pool", "--pool mean (N-D layers)"),
        ("stream", "--stream (linear CKA)"), ("block_size", "a smaller --block-size"),
        ("max_memory", "a smaller --max-memory"),
    ) if name in options]
    return ("use " + ", or ".join(offers)) if offers else "use smaller inputs"


def handle_errors(fn: F) -> F:
    """Turn bad input into one line and exit 2, Ctrl-C into exit 130; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        begin_diagnostics(bool(kwargs.get("quiet")))
        try:
            return _run_command(fn, args, kwargs)
        finally:
            end_diagnostics()

    return wrapper  # type: ignore[return-value]


def _run_command(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Run a subcommand: bad input -> one line and exit 2; Ctrl-C/SIGTERM/SIGHUP -> 128 + signal."""
    try:
        check_not_nan(kwargs)
        with warnings.catch_warnings():  # library warnings -> "repsim: warning: ..." lines
            warnings.simplefilter("always", RepsimWarning)
            warnings.showwarning = _show_warning
            return fn(*args, **kwargs)
    except RepsimError as exc:
        error(to_flags(str(exc)))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP turned into it by the entry point
        error(str(exc) if isinstance(exc, Terminated) else "interrupted")
        code = int(getattr(exc, "exit_code", 130))
        INTERRUPTED["code"] = code
        raise typer.Exit(code) from None
    except MemoryError:
        error("out of memory; " + memory_advice(kwargs))
        raise typer.Exit(2) from None
    except BrokenPipeError:
        raise typer.Exit(0) from None
    except OSError as exc:  # a file problem the loaders did not anticipate: still one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        error(f"{where}{exc.strerror or exc}")
        raise typer.Exit(2) from None
    except Exception as exc:  # a case nobody anticipated: one line, not exit 1 (the CI-gate code)
        if os.environ.get("REPSIM_DEBUG") or type(exc).__module__.split(".")[0] in ("typer", "click"):
            raise  # typer's own exits and usage errors
        error(f"unexpected {type(exc).__name__}: {exc} (set REPSIM_DEBUG=1 for a traceback, and please report it)")
        raise typer.Exit(2) from None
