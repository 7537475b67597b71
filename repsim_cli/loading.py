"""Deprecated location, kept for one release: use :mod:`repsim_cli.io.layers`."""

import warnings as _warnings

import repsim_cli.io.layers as _m_io_layers

_warnings.warn("repsim_cli.loading moved to repsim_cli.io.layers; the old path goes away in the next release", DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_m_io_layers).items() if not k.startswith("__")})
