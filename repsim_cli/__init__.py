"""repsim: how similar are two neural-network representations?

Library entry points:

- :mod:`repsim_cli.loading` -- activation files to validated float64 arrays with names.
- :mod:`repsim_cli.metrics` -- similarity indexes (pure functions) and their registry.
- :mod:`repsim_cli.stats` -- permutation / bootstrap nulls and the across-seeds test.
"""

__version__ = "0.1.0"
