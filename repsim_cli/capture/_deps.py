"""Lazy imports of the optional extras (torch, transformers, safetensors) with one-line errors.

Nothing outside :mod:`repsim_cli.capture` and the ``.pt`` / ``.safetensors`` readers imports
these packages, and only when a capture (or such a file) is actually used.
"""

from __future__ import annotations

import os
from typing import Any

from repsim_cli.errors import RepsimError


def require_torch() -> Any:
    """The ``torch`` module, or a RepsimError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise RepsimError("repsim capture needs PyTorch: pip install 'repsim-cli[torch]'") from None
    return torch


def require_transformers(local: bool = True) -> Any:
    """The ``transformers`` module (quiet, offline when ``local``), or a RepsimError."""
    if local:  # a local directory must never trigger a download or a hub request
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    require_torch()
    try:
        import transformers
    except ImportError:
        raise RepsimError("hf: models need Hugging Face transformers: pip install 'repsim-cli[hf]'") from None
    try:  # no progress bars or info lines from transformers on our stderr
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover - older/newer logging API
        pass
    return transformers


def require_safetensors() -> Any:
    """The ``safetensors`` module, or a RepsimError saying how to install it."""
    try:
        import safetensors
        import safetensors.torch
    except ImportError:
        raise RepsimError(".safetensors files need safetensors and PyTorch: pip install 'repsim-cli[torch]'") from None
    return safetensors
