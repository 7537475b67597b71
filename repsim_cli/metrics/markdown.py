"""The README's metric table, generated from the registry.

``python -m repsim_cli.metrics.markdown`` prints it.
"""

from __future__ import annotations

from typing import Any

from repsim_cli.metrics.registry import INVARIANCES, REGISTRY, Metric

_SHORT = {
    "orthogonal": "orthogonal",
    "isotropic_scaling": "scaling",
    "invertible_linear": "invertible linear",
    "permutation": "permutation",
    "translation": "translation",
}


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _params(metric: Metric) -> str:
    parts = []
    for p in metric.params:
        kind = "\\|".join(_fmt(c) for c in p.choices) if p.choices is not None else p.type.__name__
        parts.append(f"`{p.name}={_fmt(p.default)}` ({kind})")
    return "<br>".join(parts) or "-"


def _variants(metric: Metric) -> list[dict[str, Any]]:
    """Parameter values that change direction, symmetry, invariances or minimum N."""
    out = []
    for p in metric.params:
        for choice in p.choices or ():
            if choice != p.default:
                out.append({p.name: choice})
    return out + [dict(v) for v in metric.doc_variants]


def kind_text(metric: Metric) -> str:
    base = metric.bind()
    text = "similarity" if base.higher_is_similar else "distance"
    flips = [v for v in _variants(metric) if metric.bind(**v).higher_is_similar != base.higher_is_similar]
    if flips:
        other = "distance" if base.higher_is_similar else "similarity"
        text += "; " + other + " with " + ", ".join(f"`{k}={_fmt(x)}`" for v in flips for k, x in v.items())
    return text


def symmetric_text(metric: Metric) -> str:
    base = metric.bind()
    text = "yes" if base.symmetric else "no"
    flips = [v for v in _variants(metric) if metric.bind(**v).symmetric != base.symmetric]
    if flips:
        text += " (" + ("no" if base.symmetric else "yes") + " with " + ", ".join(
            f"`{k}={_fmt(x)}`" for v in flips for k, x in v.items()
        ) + ")"
    return text


def invariances_text(metric: Metric) -> str:
    base = metric.bind().invariances
    names = [_SHORT[i] for i in INVARIANCES if i in base]
    text = ", ".join(names) or "none"
    for v in _variants(metric):
        extra = metric.bind(**v).invariances - base
        lost = base - metric.bind(**v).invariances
        with_v = " with " + ", ".join(f"`{k}={_fmt(x)}`" for k, x in v.items())
        if extra:
            text += "; + " + ", ".join(_SHORT[i] for i in INVARIANCES if i in extra) + with_v
        if lost:
            text += "; not " + ", ".join(_SHORT[i] for i in INVARIANCES if i in lost) + with_v
    return text


def streamable_text(metric: Metric) -> str:
    """``yes``, ``no``, or ``yes, except with ...`` (the parameter values without a moment route)."""
    if not metric.bind().streamable:
        return "no"
    off = [f"{k}={_fmt(x)}" for v in _variants(metric) if not metric.bind(**v).streamable for k, x in v.items()]
    if any(p.name == "minibatch" for p in metric.params):
        off.append("minibatch>0")
    return "yes, except with " + ", ".join(off) if off else "yes"


def min_n_text(metric: Metric) -> str:
    base = metric.bind().min_n
    text = str(base)
    for v in _variants(metric):
        m = metric.bind(**v).min_n
        if m != base:
            text += f" ({m} with " + ", ".join(f"`{k}={_fmt(x)}`" for k, x in v.items()) + ")"
    if metric.name == "knn":
        text = "k+1"
    return text


def metrics_markdown_table() -> str:
    """Markdown table of every registered metric: name, parameters with defaults, similarity or
    distance, symmetric, invariances, minimum N and reference."""
    lines = [
        "| metric | parameters (default) | kind | symmetric | invariant to | min N | reference |",
        "|---|---|---|---|---|---|---|",
    ]
    for metric in REGISTRY.values():
        if metric.bind().gram:
            nn = " (N x N)"
        else:
            grams = [v for v in _variants(metric) if metric.bind(**v).gram]
            nn = (" (N x N with " + ", ".join(f"`{k}={_fmt(x)}`" for v in grams for k, x in v.items()) + ")") if grams else ""
        lines.append(
            f"| `{metric.name}`{nn} | {_params(metric)} | {kind_text(metric)} | {symmetric_text(metric)} | "
            f"{invariances_text(metric)} | {min_n_text(metric)} | {metric.reference} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    import repsim_cli.metrics  # noqa: F401  (registers every metric)

    print(metrics_markdown_table(), end="")


if __name__ == "__main__":
    main()


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
        # computable from merged first and second moments (streamed / dask engines), default parameters
        "streamable": bound.streamable,
        "streamable_note": streamable_text(metric),
        "formula": metric.formula,
        "reference": metric.reference,
        "help": metric.help,
    }
