"""Deprecated location, kept for one release: use :mod:`repsim_cli.engines.streaming`."""

import warnings as _warnings

import repsim_cli.engines.streaming as _m_engines_streaming

_warnings.warn("repsim_cli.streaming moved to repsim_cli.engines.streaming; the old path goes away in the next release", DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_m_engines_streaming).items() if not k.startswith("__")})
