# ruff: noqa: I001  (import order = registration order = documentation order)
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
from repsim_cli.metrics.cka import hsic, linear_cka, rbf_cka  # noqa: E402
from repsim_cli.metrics.cca import cca, linear_regression_r2, pwcca, svcca  # noqa: E402
from repsim_cli.metrics.shape import procrustes  # noqa: E402
from repsim_cli.metrics.rsa import kendall_tau_a, mutual_knn, rsa  # noqa: E402  (registers rsa, then knn and cknna)

# isort: split
# the catalog additions of issue 13 register after the metrics above (the registry's order is the docs' order)
from repsim_cli.metrics.alignment import aligned_cosine, shape_distance, soft_match_distance  # noqa: E402
from repsim_cli.metrics.neighbours import cknna, knn_similarity  # noqa: E402
from repsim_cli.metrics.predictivity import ridge_r2  # noqa: E402
from repsim_cli.metrics.rsm import distance_correlation, eigenspace_overlap, gulp_distance, rsm_norm_difference  # noqa: E402
from repsim_cli.metrics.statistics import concentricity_difference, magnitude_difference, uniformity_difference  # noqa: E402

# isort: split
# last: attaches the moment routes (streamed / dask engines) to the registered metrics
from repsim_cli.metrics.moments import Moments, merge_all  # noqa: E402

__all__ = [
    "INVARIANCES",
    "REGISTRY",
    "Moments",
    "merge_all",
    "BoundMetric",
    "Metric",
    "MetricResult",
    "Param",
    "get_metric",
    "parse_metric",
    "register",
    "aligned_cosine",
    "cca",
    "cknna",
    "concentricity_difference",
    "distance_correlation",
    "eigenspace_overlap",
    "gulp_distance",
    "magnitude_difference",
    "rsm_norm_difference",
    "uniformity_difference",
    "correlation_matrix",
    "hsic",
    "kendall_tau_a",
    "knn_similarity",
    "linear_cka",
    "linear_regression_r2",
    "matched_correlation",
    "meanmax",
    "mutual_knn",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "ridge_r2",
    "rsa",
    "shape_distance",
    "soft_match_distance",
    "svcca",
]
