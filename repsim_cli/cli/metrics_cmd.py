"""``repsim metrics``: the registry, as a table or JSON."""

from __future__ import annotations

from repsim_cli.cli._app import app, handle_errors
from repsim_cli.cli.common import FormatOpt, OutputOpt, emit
from repsim_cli.metrics import INVARIANCES, REGISTRY
from repsim_cli.metrics.markdown import describe
from repsim_cli.render import envelope
from repsim_cli.render.terminal import metrics_table

EPILOG = """
**Examples**

* `repsim metrics` (table)

* `repsim metrics -f json` (machine-readable: parameters, invariances, references)
"""


@app.command(epilog=EPILOG)
@handle_errors
def metrics(
    fmt: str | None = FormatOpt,
    output: str | None = OutputOpt,
) -> None:
    """List every metric: parameters, similarity or distance, symmetry, invariances, minimum N, formula, reference."""
    entries = [describe(m) for m in REGISTRY.values()]
    doc = envelope("metrics", None, metrics=entries, invariances=INVARIANCES)
    records = [
        {**e, "params": {p["name"]: p["default"] for p in e["params"]}, "invariances": e["invariances"]}
        for e in entries
    ]
    emit(doc, records, fmt, output, [], lambda: metrics_table(entries))


