"""``repsim metrics``: the registry, as a table or JSON."""

from __future__ import annotations

from typing import Any, Optional


from repsim_cli.cli._app import app, handle_errors
from repsim_cli.cli.common import FormatOpt, OutputOpt, emit
from repsim_cli.metrics import INVARIANCES, REGISTRY, Metric
from repsim_cli.metrics.markdown import invariances_text, kind_text, symmetric_text
from repsim_cli.render import envelope

EPILOG = """
**Examples**

* `repsim metrics` (table)

* `repsim metrics -f json` (machine-readable: parameters, invariances, references)
"""


def describe(metric: Metric) -> dict[str, Any]:
    """Registry entry as plain data (used by ``repsim metrics`` and the README table)."""
    bound = metric.bind()
    return {
        "name": metric.name,
        "summary": metric.summary,
        "params": [
            {
                "name": p.name,
                "type": p.type.__name__,
                "default": p.default,
                "choices": list(p.choices) if p.choices is not None else None,
                "minimum": p.minimum,
                "maximum": p.maximum,
                "help": p.help,
            }
            for p in metric.params
        ],
        # with the default parameters; "kind", "symmetry" and "invariance_notes" say how parameters change them
        "higher_is_similar": bound.higher_is_similar,
        "symmetric": bound.symmetric,
        "invariances": [i for i in INVARIANCES if i in bound.invariances],
        "min_n": bound.min_n,
        "kind": kind_text(metric).replace("`", ""),
        "symmetry": symmetric_text(metric).replace("`", ""),
        "invariance_notes": invariances_text(metric).replace("`", ""),
        "value_range": list(bound.value_range),
        "builds_n_by_n": bool(bound.gram),
        # computable from merged first and second moments (--stream, --engine dask), with the default parameters
        "streamable": bound.streamable,
        "streamable_note": _streamable_note(metric),
        "formula": metric.formula,
        "reference": metric.reference,
        "help": metric.help,
    }


@app.command(epilog=EPILOG)
@handle_errors
def metrics(
    fmt: Optional[str] = FormatOpt,
    output: Optional[str] = OutputOpt,
) -> None:
    """List every metric: parameters, similarity or distance, symmetry, invariances, minimum N, formula, reference."""
    entries = [describe(m) for m in REGISTRY.values()]
    doc = envelope("metrics", None, metrics=entries, invariances=INVARIANCES)
    records = [
        {**e, "params": {p["name"]: p["default"] for p in e["params"]}, "invariances": e["invariances"]}
        for e in entries
    ]
    emit(doc, records, fmt, output, [], lambda: _table(entries))


def _table(entries: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(show_lines=True, width=132)
    for col, ratio in (("metric", 3), ("parameters (default)", 4), ("kind", 3), ("invariant to", 3), ("min N", 1), ("formula / reference", 5)):
        table.add_column(col, ratio=ratio, overflow="fold")
    for e in entries:
        params = "\n".join(
            f"{p['name']}=" + ("|".join(_fmt(c) for c in p["choices"]) if p["choices"] else p["type"]) + f" ({_fmt(p['default'])})"
            for p in e["params"]
        )
        kind = f"{e['kind']}\nsymmetric: {e['symmetry']}\nstreams: {e['streamable_note']}"
        table.add_row(
            f"{e['name']}\n{e['summary']}",
            params or "-",
            kind,
            e["invariance_notes"],
            str(e["min_n"]),
            f"{e['formula']}\n{e['reference']}",
        )
    return table


def _streamable_note(metric: Metric) -> str:
    """``yes``, ``no``, or ``yes, except with ...`` (the parameter values without a moment route)."""
    from repsim_cli.metrics.markdown import _variants

    if not metric.bind().streamable:
        return "no"
    off = [f"{k}={_fmt(x)}" for v in _variants(metric) if not metric.bind(**v).streamable for k, x in v.items()]
    if any(p.name == "minibatch" for p in metric.params):
        off.append("minibatch>0")
    return "yes, except with " + ", ".join(off) if off else "yes"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
