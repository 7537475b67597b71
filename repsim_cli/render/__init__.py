"""Rendering results for people and programs: tables, JSON/CSV, terminal heatmaps, images, files.

- :mod:`repsim_cli.render.tables` -- JSON envelopes, CSV/TSV, number formatting;
- :mod:`repsim_cli.render.terminal` -- rich tables and the terminal heatmap;
- :mod:`repsim_cli.render.images` -- matplotlib heatmaps (matplotlib imported only there);
- :mod:`repsim_cli.render.output` -- atomic output files that never overwrite an input.
"""

from repsim_cli.render.output import atomic_output, check_not_input, check_output_path, write_atomic
from repsim_cli.render.tables import (
    CORE_COLUMNS,
    FORMATS,
    choose_format,
    flatten_record,
    fmt_value,
    format_params,
    render_text,
    to_delimited,
    to_json,
)
from repsim_cli.results import envelope

__all__ = [
    "CORE_COLUMNS",
    "FORMATS",
    "atomic_output",
    "check_not_input",
    "check_output_path",
    "choose_format",
    "envelope",
    "flatten_record",
    "fmt_value",
    "format_params",
    "render_text",
    "to_delimited",
    "to_json",
    "write_atomic",
]
