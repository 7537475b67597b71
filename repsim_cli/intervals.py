"""Moved to :mod:`repsim_cli.stats.intervals` (re-exported here)."""

from repsim_cli.stats.intervals import *  # noqa: F401,F403
from repsim_cli.stats.intervals import CI_METHODS, Jackknife, bca_interval, default_ci_method, jackknife  # noqa: F401
