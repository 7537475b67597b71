"""Rendering: result records -> rich tables, JSON, CSV/TSV; atomic output files.

A *record* is a flat-ish dict (``a``, ``b``, ``metric``, ``params``, ``value``, ``n_samples``,
``features_a``, ``features_b``, ``warnings`` and optional statistics). Every command's JSON
output is one envelope ``{"repsim_version", "command", "seed", ...}``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Sequence

from repsim_cli.errors import RepsimError
from repsim_cli.results import dumps, jsonable

FORMATS = ("table", "json", "csv", "tsv")
_EXTENSIONS = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "table"}
#: leading CSV columns, in this order; other keys follow in order of first appearance
CORE_COLUMNS = ("a", "b", "metric", "params", "value", "n_samples", "features_a", "features_b")


#: C0 controls (tab and newline included), DEL, C1 controls, and the bidirectional overrides
#: and isolates that reorder what a terminal shows (Trojan Source)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_text(text: str) -> str:
    r"""``text`` safe to print on a terminal: control characters and escape sequences made visible.

    Dataset names and attributes are untrusted: ``\x1b]0;title\x07`` would retitle the window,
    ``\x1b[2J`` clear the screen, a newline start a fake ``repsim: error:`` line. Each control
    character (C0 including tab and newline, DEL, C1, and bidi overrides) becomes ``\n``,
    ``\t``, ``\r``, ``\xNN`` or ``\uNNNN``; printable Unicode is kept. JSON output does not
    need this (``json.dumps`` escapes), CSV uses :func:`csv_safe` instead.
    """
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), _hex(m.group())), text)


def _hex(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_deep(value: Any) -> Any:
    """:func:`escape_text` applied to every string in nested dicts, lists and tuples (keys included)."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return {escape_deep(k): escape_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(escape_deep(v) for v in value) if isinstance(value, list) else tuple(escape_deep(v) for v in value)
    return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: str) -> str:
    """Quote a CSV/TSV cell that a spreadsheet would run as a formula (OWASP: prefix ``'``).

    Cells starting with ``=``, ``+``, ``-``, ``@``, tab or CR get a leading single quote, unless
    the cell is a number (``-0.5``, ``-inf``, ``1e-3`` stay numbers).
    """
    if not cell.startswith(_FORMULA_START):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell


def choose_format(fmt: str | None, output: str | None) -> str:
    """``format`` if given, else inferred from ``-o``'s extension, else ``table``."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise RepsimError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    if output is not None:
        return _EXTENSIONS.get(Path(output).suffix.lower(), "table")
    return "table"


def to_json(doc: dict[str, Any]) -> str:
    """A JSON document as every command prints it (see :func:`repsim_cli.results.dumps`)."""
    return dumps(doc)


def format_params(params: dict[str, Any]) -> str:
    """``k=v;k=v`` (booleans as true/false), for CSV cells and table columns."""
    return ";".join(f"{k}={_cell(v)}" for k, v in params.items())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return format_params(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return " | ".join(value)
        return json.dumps(jsonable(value), separators=(",", ":"))
    return str(value)


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: nested dicts become ``key.sub`` columns; lists become JSON / ' | '-joined text."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and key != "params":
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def to_delimited(records: Sequence[dict[str, Any]], sep: str, seed: int | None = None) -> str:
    """Records as CSV (``sep=','``) or TSV, one row per record, with a header.

    ``seed`` (the command's ``--seed``) is echoed in a ``seed`` column of every row.
    """
    rows = [flatten_record(r) for r in records]
    if seed is not None:
        rows = [{**r, "seed": seed} for r in rows]
    columns = [c for c in CORE_COLUMNS if any(c in r for r in rows)]
    for row in rows:
        for key in row:
            if key not in columns and key != "warnings":
                columns.append(key)
    columns.append("warnings")
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
    writer.writerow([csv_safe(c) for c in columns])
    for row in rows:
        writer.writerow([csv_safe(_cell(row.get(c))) for c in columns])
    return buf.getvalue()


def fmt_value(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}f}"
    return str(value)


def render_text(renderable: Any, width: int | None = None) -> str:
    """Render a rich object to plain text with colour codes only when asked by the console."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width or 200, force_terminal=False, color_system=None, highlight=False,
                      markup=False)  # names in cells are text, never rich markup
    console.print(renderable)
    return buf.getvalue()
