"""Deprecated location, kept for one release: use :mod:`repsim_cli.render.images`."""

import warnings as _warnings

import repsim_cli.render.images as _m_render_images

_warnings.warn("repsim_cli.plotting moved to repsim_cli.render.images; the old path goes away in the next release", DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_m_render_images).items() if not k.startswith("__")})
