"""Deprecated location, kept for one release: use :mod:`repsim_cli.engines.compare`."""

import warnings as _warnings

import repsim_cli.engines.compare as _m_engines_compare

_warnings.warn("repsim_cli.engine moved to repsim_cli.engines.compare; the old path goes away in the next release", DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_m_engines_compare).items() if not k.startswith("__")})
