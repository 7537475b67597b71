"""repsim: how similar are two neural-network representations?

``import repsim_cli as rs`` -- every command is one call, on arrays, tensors, mappings or files:

- :func:`compare` -- similarity of two representations, layer by layer -> :class:`Results`;
- :func:`heatmap` -- a layer x layer grid of one metric -> :class:`Grid` (``.plot()``);
- :func:`test` -- do groups of runs differ more than runs within a group? -> :class:`TestResult`;
- :func:`inputsim` -- the network's own view of input similarity -> :class:`InputSimilarity`;
- :func:`inspect` -- what a file holds.

:mod:`repsim_cli.metrics` holds the pure functions (``rs.metrics.linear_cka(x, y)``, ...) and the
registry. Errors are :class:`RepsimError` (a ``ValueError``), caveats :class:`RepsimWarning`.

The package reads as its data path: :mod:`~repsim_cli.io` -> :mod:`~repsim_cli.metrics` ->
:mod:`~repsim_cli.stats` -> :mod:`~repsim_cli.engines` -> :mod:`~repsim_cli.results` ->
:mod:`~repsim_cli.render` -> :mod:`~repsim_cli.cli`.
"""

__version__ = "0.2.0"

from repsim_cli import metrics  # noqa: E402
from repsim_cli.api import compare, heatmap, inputsim, inspect, test  # noqa: E402
from repsim_cli.errors import RepsimError, RepsimWarning  # noqa: E402
from repsim_cli.results import Grid, InputSimilarity, Record, Results, TestResult  # noqa: E402

__all__ = [
    "Grid",
    "InputSimilarity",
    "Record",
    "RepsimError",
    "RepsimWarning",
    "Results",
    "TestResult",
    "__version__",
    "compare",
    "heatmap",
    "inputsim",
    "inspect",
    "metrics",
    "test",
]
