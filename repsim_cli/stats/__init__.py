"""Statistics on top of the metrics: nulls of one comparison and the across-seeds group test.

- :mod:`repsim_cli.stats.nulls` -- permutation p-values and bootstrap intervals of one pair;
- :mod:`repsim_cli.stats.group` -- the group test, with the label-exchange and bootstrap nulls.

Pure functions, no printing; every random choice is seeded through ``SeedSequence``.
"""

from repsim_cli.stats.group import (
    GroupStat,
    GroupTestResult,
    bootstrap_group_null,
    count_splits,
    enumerate_splits,
    group_statistics,
    group_test,
    label_exchange_null,
    pair_index,
    pairwise_matrix,
    recommend_sizes,
)
from repsim_cli.stats.nulls import (
    BOOT_STREAM,
    LABEL_STREAM,
    BootstrapResult,
    PermutationResult,
    _Job,
    bootstrap_interval,
    bootstrap_rows,
    debiased,
    holm,
    needs_distinct_rows,
    percentile_interval,
    permutation_indices,
    permutation_null,
    permutation_pvalue,
)

__all__ = [
    "BOOT_STREAM",
    "LABEL_STREAM",
    "BootstrapResult",
    "_Job",
    "GroupStat",
    "GroupTestResult",
    "PermutationResult",
    "bootstrap_group_null",
    "bootstrap_interval",
    "bootstrap_rows",
    "count_splits",
    "debiased",
    "enumerate_splits",
    "group_statistics",
    "group_test",
    "holm",
    "label_exchange_null",
    "needs_distinct_rows",
    "pair_index",
    "pairwise_matrix",
    "percentile_interval",
    "permutation_indices",
    "permutation_null",
    "permutation_pvalue",
    "recommend_sizes",
]
