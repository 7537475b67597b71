"""Rendering: result records -> rich tables, JSON, CSV/TSV; atomic output files.

A *record* is a flat-ish dict (``a``, ``b``, ``metric``, ``params``, ``value``, ``n_samples``,
``features_a``, ``features_b``, ``warnings`` and optional statistics). Every command's JSON
output is one envelope ``{"repsim_version", "command", "seed", ...}``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

from repsim_cli.errors import RepsimError
from repsim_cli.results import dumps, jsonable

FORMATS = ("table", "json", "csv", "tsv")
_EXTENSIONS = {".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "table"}
#: leading CSV columns, in this order; other keys follow in order of first appearance
CORE_COLUMNS = ("a", "b", "metric", "params", "value", "n_samples", "features_a", "features_b")


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
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
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
    console = Console(file=buf, width=width or 200, force_terminal=False, color_system=None, highlight=False)
    console.print(renderable)
    return buf.getvalue()
