"""Deprecated location, kept for one release: use :mod:`repsim_cli.engines.inputsim`."""

import warnings as _warnings

import repsim_cli.engines.inputsim as _m_engines_inputsim
import repsim_cli.io.gradients as _m_io_gradients

_warnings.warn("repsim_cli.inputsim moved to repsim_cli.engines.inputsim; the old path goes away in the next release", DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_m_engines_inputsim).items() if not k.startswith("__")})
globals().update({k: v for k, v in vars(_m_io_gradients).items() if not k.startswith("__")})
