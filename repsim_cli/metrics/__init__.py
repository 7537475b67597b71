"""Similarity indexes between two N x F representations, and the registry describing them.

Every metric is a pure function on arrays (e.g. :func:`linear_cka`) and a registry entry
(:data:`REGISTRY`) that the CLI, engines, docs and tests are generated from.
"""

from repsim_cli.metrics.registry import (
    INVARIANCES,
    REGISTRY,
    BoundMetric,
    Metric,
    MetricResult,
    Param,
    get_metric,
    parse_metric,
    register,
)

# Importing the modules registers their metrics, in this (documentation) order.
from repsim_cli.metrics.correlation import correlation_matrix, matched_correlation, meanmax  # noqa: E402
from repsim_cli.metrics.cka import linear_cka  # noqa: E402

__all__ = [
    "INVARIANCES",
    "REGISTRY",
    "BoundMetric",
    "Metric",
    "MetricResult",
    "Param",
    "get_metric",
    "parse_metric",
    "register",
    "correlation_matrix",
    "linear_cka",
    "matched_correlation",
    "meanmax",
]
