"""CI gates: conditions on results that make a run fail (the CLI exits 1 when one is crossed).

A gate is ``SPEC=THRESHOLD`` or a bare ``THRESHOLD``:

- ``0.9`` -- every record (today's meaning of ``--fail-below 0.9``); applied as a lower bound to a
  distance metric it is probably a mistake, so :func:`check_gates` warns;
- ``cka=0.9`` -- only records of metric ``cka`` (every parameter setting);
- ``procrustes:stat=distance=0.3`` -- only records whose metric has these parameters (the last
  ``=`` separates the threshold; the rest is a metric spec as ``-m`` takes it).

A gate never passes on a non-finite value: NaN or infinity crosses every gate that applies to it.
A NaN threshold is an error. Gates are parsed and checked against the requested metrics before
any computation (a gate naming a metric that is not computed would silently never fail).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from repsim_cli.errors import RepsimError, warn
from repsim_cli.metrics import BoundMetric, parse_metric

BELOW, ABOVE = "below", "above"


@dataclass(frozen=True)
class Gate:
    """Fail when a matching record's value is below (``op='below'``) or above ``threshold``."""

    op: str
    threshold: float
    metric: BoundMetric | None = None  # None: every record
    given: tuple[str, ...] = ()  # the parameters the spec names (only these must match)
    text: str = ""

    @property
    def param(self) -> str:
        return f"fail_{self.op}"

    def applies_to(self, name: str, params: Mapping[str, Any] | None = None) -> bool:
        """Does the gate apply to metric ``name`` with ``params`` (a record's ``metric`` and ``params``)?"""
        if self.metric is None:
            return True
        params = params or {}
        return name == self.metric.name and all(_same(params.get(k), self.metric.params[k]) for k in self.given)

    def crossed(self, value: Any) -> bool:
        """True when the value fails the gate; a missing or non-finite value always fails."""
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return True
        return value < self.threshold if self.op == BELOW else value > self.threshold


def _same(a: Any, b: Any) -> bool:
    return a == b or str(a).lower() == str(b).lower()


def parse_threshold(text: str | float, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise RepsimError(f"{what}: expected a number, got {text!r}") from None
    if math.isnan(value):
        raise RepsimError(f"{what}: the threshold is NaN; a gate needs a number")
    return value


def parse_gate(text: str | float, op: str) -> Gate:
    """``0.9``, ``cka=0.9`` or ``procrustes:stat=distance=0.3`` -> :class:`Gate`."""
    if op not in (BELOW, ABOVE):
        raise RepsimError(f"gate op must be {BELOW} or {ABOVE}, got {op!r}")
    what = f"fail_{op} {text}"
    if isinstance(text, (int, float)) or "=" not in str(text):
        return Gate(op, parse_threshold(text, what), text=str(text))
    spec, _, threshold = str(text).rpartition("=")
    if not spec.strip():
        raise RepsimError(f"{what}: expected METRIC[:key=value,...]=THRESHOLD or a bare number")
    metric = parse_metric(spec)
    given = tuple(part.partition("=")[0].strip() for part in spec.partition(":")[2].split(",") if part.strip())
    return Gate(op, parse_threshold(threshold, what), metric, given, str(text))


def parse_gates(below: Iterable[str | float] | str | float | None = None,
                above: Iterable[str | float] | str | float | None = None) -> list[Gate]:
    """Gates from repeatable ``fail_below`` / ``fail_above`` values (None or [] for none)."""

    def items(v: Any) -> list[Any]:
        return [] if v is None else ([v] if isinstance(v, (str, int, float)) else list(v))

    return [parse_gate(t, BELOW) for t in items(below)] + [parse_gate(t, ABOVE) for t in items(above)]


def check_gates(gates: Sequence[Gate], metrics: Sequence[BoundMetric]) -> None:
    """Before computing: every named gate must match a requested metric; a bare lower bound on a
    distance (lower = more similar) earns a warning."""
    specs = [m.spec for m in metrics]
    for gate in gates:
        if gate.metric is not None and not any(gate.applies_to(m.name, m.params) for m in metrics):
            raise RepsimError(
                f"{gate.param} {gate.text}: no requested metric matches {gate.metric.spec!r} "
                f"(metrics: {', '.join(specs)}); the gate could never fail"
            )
        if gate.metric is None and gate.op == BELOW:
            distances = [m.spec for m in metrics if not m.higher_is_similar]
            if distances:
                warn(f"fail_below {gate.text} also applies to the distance {', '.join(distances)} (lower = more similar); "
                     f"name the metric it is meant for, e.g. fail_below {metrics[0].name}={gate.text}")


def crossed(gates: Sequence[Gate], records: Sequence[dict[str, Any]]) -> list[str]:
    """One line per (record, gate) that fails: ``A vs B metric=value < fail_below threshold``."""
    out = []
    for r in records:
        for gate in gates:
            if not gate.applies_to(str(r.get("metric", "")), r.get("params")):
                continue
            v = r.get("value")
            if gate.crossed(v):
                sign = "<" if gate.op == BELOW else ">"
                shown = "missing" if v is None else f"{v:.6g}"
                why = "" if isinstance(v, (int, float)) and math.isfinite(v) else " (not finite: a gate never passes)"
                params = r.get("params") or {}
                named = ",".join(f"{k}={params[k]}" for k in gate.given if k in params)
                label = f"{r.get('metric')}:{named}" if named else r.get("metric")
                out.append(f"{r.get('a')} vs {r.get('b')} {label}={shown}{why} {sign} {gate.param} {gate.text}")
    return out


def check_fraction(param: str, value: float | None) -> None:
    """A gate threshold that is a fraction or probability must lie in [0, 1] (NaN is an error)."""
    if value is not None and (math.isnan(value) or not 0 <= value <= 1):
        raise RepsimError(f"{param} must lie in [0, 1], got {value}")


def sanity_crossed(sanity: dict[str, Any] | None, fraction: float | None) -> list[str]:
    """``heatmap``'s gate on Kornblith et al.'s sanity check: fail when the fraction of rows whose
    same-index layer is the most similar is below ``fraction``."""
    check_fraction("fail_sanity_below", fraction)
    if fraction is None:
        return []
    if sanity is None:
        raise RepsimError("fail_sanity_below needs the sanity check, which needs the same number of layers on both sides")
    got = sanity.get("fraction")
    if got is None or not math.isfinite(got) or got < fraction:
        return [f"sanity check {sanity.get('correct')}/{sanity.get('rows')} rows = {got} < fail_sanity_below {fraction:g}"]
    return []


def p_crossed(p_value: float | None, below: float | None = None, above: float | None = None) -> list[str]:
    """``test``'s gates on the combined p-value: fail when p < ``below`` or p > ``above``
    (a missing or NaN p-value fails any gate given)."""
    check_fraction("fail_p_below", below)
    check_fraction("fail_p_above", above)
    out = []
    bad = p_value is None or not math.isfinite(p_value)
    if below is not None and (bad or p_value < below):  # type: ignore[operator]
        out.append(f"combined p-value {p_value} < fail_p_below {below:g}")
    if above is not None and (bad or p_value > above):  # type: ignore[operator]
        out.append(f"combined p-value {p_value} > fail_p_above {above:g}")
    return out
