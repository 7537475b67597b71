"""``repsim capture``: write activation (and gradient) files from a PyTorch or Hugging Face model.

torch / transformers / safetensors are optional extras (``pip install 'repsim-cli[torch]'`` or
``'repsim-cli[hf]'``) and are imported only when a capture runs.

Library use (a notebook)::

    from repsim_cli.capture import capture
    res = capture(model, x, "acts.h5", layers=["features.*"], grads="loss", targets=y)
"""

from repsim_cli.capture.core import CaptureResult, capture
from repsim_cli.capture.layers import TOKEN_MODES, pool_tokens
from repsim_cli.capture.project import (
    cosine_error_bound,
    cosine_error_sd,
    project,
    projection_matrix,
)

__all__ = [
    "CaptureResult", "capture", "TOKEN_MODES", "pool_tokens",
    "cosine_error_bound", "cosine_error_sd", "project", "projection_matrix",
]
