"""Deprecated location, kept for one release: use :mod:`repsim_cli.engines.grid`."""

import warnings as _warnings

import repsim_cli.engines.grid as _m_engines_grid

_warnings.warn("repsim_cli.grid moved to repsim_cli.engines.grid; the old path goes away in the next release", DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_m_engines_grid).items() if not k.startswith("__")})
