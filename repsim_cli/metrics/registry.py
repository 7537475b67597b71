"""One registry describing every similarity index.

Each :class:`Metric` entry says what the index is (formula, reference), how it behaves
(similarity or distance, symmetric, invariances, minimum N) and how to compute it in two
steps that engines can reuse:

- ``prepare(x, params)``: per-side work on one float64 N x F array (centering, second moments,
  an orthonormal basis, a Gram matrix...). Done once per layer in a grid.
- ``pair(prep_a, prep_b, params) -> MetricResult``: the cross term for one pair.
- ``permute(prep, perm, params)`` (optional): the prepared state of ``x[perm]`` without
  recomputing it -- the fast path for permutation nulls.
- ``from_moments(moments, params) -> MetricResult`` (optional, with ``moments_when(params)``
  saying for which parameter values): the index from merged first and second moments of a pair
  (:class:`repsim_cli.metrics.moments.Moments`), the route of the streamed and dask engines.

The CLI's ``-m name:key=value,...`` parsing, ``repsim metrics``, the README's metric table and
the invariance property tests are all generated from this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from repsim_cli.errors import RepsimError, warn

#: Transformations an index may be invariant to (applied to one side's N x F matrix).
INVARIANCES: dict[str, str] = {
    "orthogonal": "X -> X Q, Q orthogonal (rotations and reflections of feature space)",
    "isotropic_scaling": "X -> c X, c > 0",
    "invertible_linear": "X -> X A, A invertible",
    "permutation": "X -> X P, P a permutation of the columns (neuron order)",
    "translation": "X -> X + 1 b^T (a constant offset per feature)",
}


@dataclass(frozen=True)
class Param:
    """A metric parameter as written on the command line (``name:key=value``)."""

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    exclusive_minimum: bool = False

    def parse(self, text: str, metric: str) -> Any:
        """Convert the text of ``key=value`` to a validated value."""
        value: Any
        try:
            if self.type is bool:
                lowered = text.strip().lower()
                if lowered in ("true", "1", "yes", "on"):
                    value = True
                elif lowered in ("false", "0", "no", "off"):
                    value = False
                else:
                    raise ValueError(text)
            elif self.type is int:
                value = int(text)
            elif self.type is float:
                value = float(text)
                if not np.isfinite(value):
                    raise ValueError(text)
            else:
                value = text.strip()
        except ValueError:
            raise RepsimError(
                f"metric {metric}: parameter {self.name}={text!r} is not a valid {self.type.__name__}"
            ) from None
        return self.check(value, metric)

    def check(self, value: Any, metric: str) -> Any:
        if self.choices is not None and value not in self.choices:
            allowed = "|".join(_fmt(c) for c in self.choices)
            raise RepsimError(f"metric {metric}: parameter {self.name} must be one of {allowed}, got {_fmt(value)}")
        if self.minimum is not None:
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                op = ">" if self.exclusive_minimum else ">="
                raise RepsimError(f"metric {metric}: parameter {self.name} must be {op} {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise RepsimError(f"metric {metric}: parameter {self.name} must be <= {self.maximum}, got {value}")
        return value

    def describe(self) -> str:
        if self.choices is not None:
            kind = "|".join(_fmt(c) for c in self.choices)
        else:
            kind = self.type.__name__
            if self.minimum is not None or self.maximum is not None:
                lo = "" if self.minimum is None else f"{'>' if self.exclusive_minimum else '>='}{self.minimum}"
                hi = "" if self.maximum is None else f"<={self.maximum}"
                kind += f" {lo}{',' if lo and hi else ''}{hi}"
        return f"{self.name}={kind} (default {_fmt(self.default)})"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class MetricResult:
    """The value of one comparison, plus optional details (e.g. kept components) and caveats."""

    value: float
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


Prepare = Callable[[np.ndarray, Mapping[str, Any]], Any]
Pair = Callable[[Any, Any, Mapping[str, Any]], MetricResult]
Permute = Callable[[Any, np.ndarray, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Metric:
    """A registry entry: everything the CLI, engines, docs and tests need to know."""

    name: str
    summary: str
    params: tuple[Param, ...]
    higher_is_similar: bool
    symmetric: bool | Callable[[Mapping[str, Any]], bool]
    invariances: frozenset[str]
    min_n: int | Callable[[Mapping[str, Any]], int]
    formula: str
    reference: str
    prepare: Prepare
    pair: Pair
    permute: Permute | None = None
    help: str = ""
    #: builds N x N matrices: memory ~ 8 N^2 bytes per side; refused above --max-gram
    gram: bool | Callable[[Mapping[str, Any]], bool] = False
    #: range of values, for range checks and colour scales
    value_range: tuple[float, float] = (0.0, 1.0)
    #: invariances that hold only for some parameter values (added to ``invariances``, which
    #: lists those holding for every parameter value), e.g. knn:center=true adds translation
    extra_invariances: Callable[[Mapping[str, Any]], frozenset[str]] | None = None
    #: when the direction/range depend on a parameter (procrustes:stat=distance): overrides of
    #: ``higher_is_similar`` / ``value_range`` (which then describe the default parameters)
    #: duplicated inputs bias the index (U-statistics read an identical pair as dependence; k-NN and
    #: RDMs see zero-distance pairs): bootstrap resamples then keep their distinct rows only
    distinct_rows: bool | Callable[[Mapping[str, Any]], bool] = False
    higher_is_similar_for: Callable[[Mapping[str, Any]], bool] | None = None
    value_range_for: Callable[[Mapping[str, Any]], tuple[float, float]] | None = None
    #: raises RepsimError for parameter values that are valid one by one but not together
    #: (cka:adjusted=true,debiased=true); called by bind and parse_metric
    check_params: Callable[[Mapping[str, Any]], None] | None = None
    #: the index from merged moments of a pair (n, means, centred second moments, row-norm terms):
    #: ``from_moments(moments, params)``; attached by :mod:`repsim_cli.metrics.moments`
    from_moments: Callable[[Any, Mapping[str, Any]], MetricResult] | None = None
    #: parameter values for which ``from_moments`` applies (None: all of them)
    moments_when: Callable[[Mapping[str, Any]], bool] | None = None
    #: parameter values (beyond the ``choices`` of str/bool parameters, found automatically) whose
    #: direction, symmetry, invariances or minimum N the docs should state, e.g. ({"alpha": 0.0},)
    doc_variants: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.invariances) - set(INVARIANCES)
        if unknown:
            raise ValueError(f"{self.name}: unknown invariances {sorted(unknown)}")

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        valid = ", ".join(p.name for p in self.params) or "(none)"
        raise RepsimError(f"metric {self.name}: unknown parameter {name!r}; valid parameters: {valid}")

    def bind(self, **params: Any) -> BoundMetric:
        """Fill defaults and validate parameters given as Python values."""
        values = {p.name: p.default for p in self.params}
        for key, value in params.items():
            values[key] = self.param(key).check(value, self.name)
        if self.check_params is not None:
            self.check_params(values)
        return BoundMetric(self, values)


@dataclass(frozen=True)
class BoundMetric:
    """A metric with its parameters fixed: ``prepare``/``pair``/``permute``/``compute``."""

    metric: Metric
    params: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.metric.name

    @property
    def spec(self) -> str:
        """``name:key=value,...`` listing only non-default parameters."""
        extra = [f"{p.name}={_fmt(self.params[p.name])}" for p in self.metric.params if self.params[p.name] != p.default]
        return self.name + (":" + ",".join(extra) if extra else "")

    @property
    def higher_is_similar(self) -> bool:
        f = self.metric.higher_is_similar_for
        return bool(f(self.params)) if f is not None else self.metric.higher_is_similar

    @property
    def value_range(self) -> tuple[float, float]:
        f = self.metric.value_range_for
        return tuple(f(self.params)) if f is not None else self.metric.value_range  # type: ignore[return-value]

    @property
    def symmetric(self) -> bool:
        s = self.metric.symmetric
        return bool(s(self.params) if callable(s) else s)

    @property
    def invariances(self) -> frozenset[str]:
        """Invariances that hold with these parameter values."""
        extra = self.metric.extra_invariances
        found = frozenset(self.metric.invariances) | (frozenset(extra(self.params)) if extra else frozenset())
        unknown = found - set(INVARIANCES)
        if unknown:
            raise ValueError(f"{self.name}: unknown invariances {sorted(unknown)}")
        return found

    @property
    def distinct_rows(self) -> bool:
        d = self.metric.distinct_rows
        return bool(d(self.params) if callable(d) else d)

    @property
    def min_n(self) -> int:
        m = self.metric.min_n
        return int(m(self.params) if callable(m) else m)

    @property
    def gram(self) -> bool:
        g = self.metric.gram
        return bool(g(self.params) if callable(g) else g)

    @property
    def streamable(self) -> bool:
        """True when the index is a function of the pair's first and second moments (streamed/dask engines)."""
        if self.metric.from_moments is None:
            return False
        when = self.metric.moments_when
        return when is None or bool(when(self.params))

    def from_moments(self, moments: Any) -> MetricResult:
        """The index from merged :class:`~repsim_cli.metrics.moments.Moments` of a pair (two layers: a, b)."""
        if not self.streamable:
            raise RepsimError(f"metric {self.spec} has no moment route (it needs more than the first and second moments)")
        if moments.n < self.min_n:
            raise RepsimError(f"N={moments.n} inputs, metric {self.spec} needs at least {self.min_n}")
        return self.metric.from_moments(moments, self.params)  # type: ignore[misc]

    def prepare(self, x: np.ndarray) -> Any:
        return self.metric.prepare(x, self.params)

    def pair(self, prep_a: Any, prep_b: Any) -> MetricResult:
        """The index for two prepared sides; a non-finite value is a RepsimError naming the metric."""
        result = self.metric.pair(prep_a, prep_b, self.params)
        if not np.isfinite(result.value):
            raise RepsimError(
                f"metric {self.spec}: the value is {result.value} (not finite): the computation overflowed "
                "or divided by zero"
            )
        return result

    def permute(self, prep: Any, perm: np.ndarray, x: np.ndarray | None = None) -> Any:
        """Prepared state of ``x[perm]``: the fast path if the metric has one, else re-prepare ``x``."""
        if self.metric.permute is not None:
            return self.metric.permute(prep, perm, self.params)
        if x is None:
            raise ValueError(f"{self.name} has no permutation fast path; pass the raw data")
        return self.prepare(x[perm])

    def compute(self, x: np.ndarray, y: np.ndarray) -> MetricResult:
        """The index between two N x F arrays (float64 is used internally)."""
        return self.pair(self.prepare(x), self.prepare(y))

    def value_of(self, x: np.ndarray, y: np.ndarray) -> float:
        """The value alone, its caveats issued as :class:`~repsim_cli.errors.RepsimWarning` s."""
        result = self.compute(x, y)
        for message in result.warnings:
            warn(message, stacklevel=4)
        return float(result.value)


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.name in REGISTRY:
        raise ValueError(f"metric {metric.name!r} registered twice")
    REGISTRY[metric.name] = metric
    return metric


def attach_moments(
    name: str,
    fn: Callable[[Any, Mapping[str, Any]], MetricResult],
    when: Callable[[Mapping[str, Any]], bool] | None = None,
) -> None:
    """Give a registered metric its moment route (set once, at import of ``metrics.moments``).

    The moment functions live in :mod:`repsim_cli.metrics.moments`, which imports the metric
    modules for their shared helpers; attaching afterwards keeps the imports one-way.
    """
    metric = REGISTRY[name]
    object.__setattr__(metric, "from_moments", fn)  # frozen dataclass: one-time wiring
    object.__setattr__(metric, "moments_when", when)


def get_metric(name: str) -> Metric:
    try:
        return REGISTRY[name]
    except KeyError:
        raise RepsimError(f"unknown metric {name!r}; valid metrics: {', '.join(REGISTRY)}") from None


def parse_metric(text: str) -> BoundMetric:
    """Parse ``name`` or ``name:key=value,key=value`` into a :class:`BoundMetric`."""
    name, _, rest = text.strip().partition(":")
    metric = get_metric(name.strip())
    values = {p.name: p.default for p in metric.params}
    seen = set()
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise RepsimError(
                    f"metric {metric.name}: expected key=value in {text!r}; valid parameters: "
                    + (", ".join(p.describe() for p in metric.params) or "(none)")
                )
            if key in seen:
                raise RepsimError(f"metric {metric.name}: parameter {key} given twice in {text!r}")
            seen.add(key)
            try:
                param = metric.param(key)
            except RepsimError as exc:
                valid = ", ".join(p.describe() for p in metric.params) or "(none)"
                raise RepsimError(f"metric {metric.name}: unknown parameter {key!r}; valid: {valid}") from exc
            values[key] = param.parse(value, metric.name)
    if metric.check_params is not None:
        metric.check_params(values)
    return BoundMetric(metric, values)
