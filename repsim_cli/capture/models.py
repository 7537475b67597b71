"""MODEL specs -> an ``nn.Module`` in eval mode on a device, plus what the capture needs to know.

A spec is one of:

* an ``nn.Module`` object (library callers);
* ``package.module:factory`` (or ``path/to/file.py:factory``): ``factory()`` must return an
  ``nn.Module``; ``--weights state.pt`` is then loaded with ``torch.load(weights_only=True)``;
* a ``torch.export`` program (``.pt2``), unflattened so that its submodules can be hooked;
* a TorchScript file (any other existing file): only its output can be captured (TorchScript
  modules do not run Python forward hooks);
* ``hf:DIR_OR_NAME``: ``transformers.AutoModel.from_pretrained`` (a local directory works
  offline; ``revision`` passes through).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repsim_cli.capture._deps import require_torch, require_transformers
from repsim_cli.errors import RepsimError

DEVICES = ("cpu", "cuda", "mps")
#: files of which at least one must sit beside a local hf: model for --text
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model", "sentencepiece.bpe.model")


@dataclass
class LoadedModel:
    """A model ready to run: the module, how it was made, and its provenance."""

    module: Any
    kind: str  # module | factory | export | torchscript | hf
    spec: str
    hf_name: str | None = None
    static_batch: bool = False  # torch.export programs are usually exported with a fixed batch size
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def hookable(self) -> bool:
        return self.kind != "torchscript"


def sha256_file(path: str, block: int = 2**22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def check_device(device: str) -> None:
    """Refuse a device that is unknown or not available on this machine."""
    torch = require_torch()
    if device not in DEVICES:
        raise RepsimError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RepsimError("--device cuda: no CUDA device is available to this PyTorch build")
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RepsimError("--device mps: the Apple MPS backend is not available here")


def load_model(spec: Any, weights: str | None = None, revision: str | None = None, device: str = "cpu") -> LoadedModel:
    """Build the model named by ``spec`` (see the module docstring), in eval mode on ``device``."""
    torch = require_torch()
    check_device(device)
    if isinstance(spec, torch.nn.Module):
        lm = LoadedModel(spec, "module", type(spec).__name__)
    elif not isinstance(spec, str) or not spec:
        raise RepsimError(f"MODEL must be a module path 'package.module:factory', a model file or 'hf:NAME', got {spec!r}")
    elif spec.startswith("hf:"):
        lm = _load_hf(spec, revision)
    elif os.path.isfile(spec):
        with warnings.catch_warnings():  # torch.jit.load / export.load deprecation chatter is not the user's business
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            lm = _load_file(spec)
    elif ":" in spec:
        lm = _load_factory(spec)
    else:
        raise RepsimError(
            f"MODEL {spec!r}: no such file, and not 'package.module:factory' or 'hf:DIR_OR_NAME'"
        )
    if weights is not None:
        if lm.kind not in ("factory", "module"):
            raise RepsimError(f"--weights applies to a factory MODEL (package.module:factory), not to a {lm.kind} model")
        _load_weights(lm, weights)
    if revision is not None and lm.kind != "hf":
        raise RepsimError("--revision applies to hf: models only")
    try:
        lm.module.to(device)
    except Exception as exc:
        raise RepsimError(f"{lm.spec}: cannot move the model to {device} ({type(exc).__name__}: {exc})") from None
    _eval(lm.module)
    lm.provenance.update({"model": lm.spec, "model_kind": lm.kind, "torch_version": str(torch.__version__)})
    return lm


def _eval(module: Any) -> None:
    try:
        module.eval()
    except Exception:  # some exported modules refuse .eval(); they were traced in eval mode
        pass


def _load_factory(spec: str) -> LoadedModel:
    torch = require_torch()
    mod_part, _, attr = spec.rpartition(":")
    if not mod_part or not attr:
        raise RepsimError(f"MODEL {spec!r}: expected 'package.module:factory'")
    module = _import(mod_part, spec)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RepsimError(f"MODEL {spec!r}: {mod_part} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, torch.nn.Module):
        model = obj
    elif callable(obj):
        try:
            model = obj()
        except Exception as exc:
            raise RepsimError(f"MODEL {spec!r}: calling {attr}() failed ({type(exc).__name__}: {exc})") from None
    else:
        raise RepsimError(f"MODEL {spec!r}: {attr} is a {type(obj).__name__}, not a factory")
    if not isinstance(model, torch.nn.Module):
        raise RepsimError(f"MODEL {spec!r}: {attr}() returned a {type(model).__name__}, not a torch.nn.Module")
    return LoadedModel(model, "factory", spec)


def _import(mod_part: str, spec: str) -> Any:
    if mod_part.endswith(".py"):
        if not os.path.isfile(mod_part):
            raise RepsimError(f"MODEL {spec!r}: {mod_part}: no such file")
        name = "_repsim_model_" + Path(mod_part).stem
        ispec = importlib.util.spec_from_file_location(name, mod_part)
        module = importlib.util.module_from_spec(ispec)  # type: ignore[arg-type]
        sys.modules[name] = module
        try:
            ispec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:
            raise RepsimError(f"MODEL {spec!r}: importing {mod_part} failed ({type(exc).__name__}: {exc})") from None
        return module
    if os.getcwd() not in sys.path:  # `repsim capture mymodels:make` finds mymodels.py in the current folder
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(mod_part)
    except ImportError as exc:
        raise RepsimError(f"MODEL {spec!r}: cannot import {mod_part} ({exc})") from None
    except Exception as exc:
        raise RepsimError(f"MODEL {spec!r}: importing {mod_part} failed ({type(exc).__name__}: {exc})") from None


def _load_weights(lm: LoadedModel, weights: str) -> None:
    torch = require_torch()
    if not os.path.isfile(weights):
        raise RepsimError(f"--weights {weights}: no such file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise RepsimError(f"--weights {weights}: cannot read as a torch state dict with weights_only=True ({type(exc).__name__}: {first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise RepsimError(f"--weights {weights}: expected a state dict (name -> tensor), got {type(state).__name__}")
    try:
        lm.module.load_state_dict(state, strict=True)
    except Exception as exc:
        msg = " ".join(str(exc).split())
        raise RepsimError(f"--weights {weights} does not fit {lm.spec}: {msg[:400]}") from None
    lm.provenance.update({"weights": weights, "weights_sha256": sha256_file(weights)})


def _load_file(path: str) -> LoadedModel:
    torch = require_torch()
    sha = sha256_file(path)
    if path.lower().endswith(".pt2"):
        try:
            ep = torch.export.load(path)
            module = torch.export.unflatten(ep)  # keeps the submodule tree, so hooks can be attached
        except Exception as exc:
            raise RepsimError(f"MODEL {path}: cannot load as a torch.export program ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        return LoadedModel(module, "export", path, static_batch=True, provenance={"model_sha256": sha})
    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as exc:
        raise RepsimError(
            f"MODEL {path}: not a TorchScript file ({type(exc).__name__}); a state dict needs "
            "MODEL=package.module:factory --weights FILE, an exported program the .pt2 extension"
        ) from None
    return LoadedModel(module, "torchscript", path, provenance={"model_sha256": sha})


def _load_hf(spec: str, revision: str | None) -> LoadedModel:
    name = spec[3:]
    if not name:
        raise RepsimError("MODEL 'hf:' needs a directory or a model name after the colon")
    local = os.path.isdir(name)
    transformers = require_transformers(local)
    kwargs = {} if revision is None else {"revision": revision}
    try:
        model = transformers.AutoModel.from_pretrained(name, **kwargs)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise RepsimError(f"MODEL {spec}: cannot load with transformers.AutoModel ({type(exc).__name__}: {first})") from None
    prov: dict[str, Any] = {"transformers_version": str(transformers.__version__)}
    if revision is not None:
        prov["revision"] = revision
    if local:
        files = sorted(p for p in os.listdir(name) if p.endswith((".safetensors", ".bin", ".pt")))
        if files:
            prov["weights_sha256"] = [f"{f}:{sha256_file(os.path.join(name, f))}" for f in files]
    return LoadedModel(model, "hf", spec, hf_name=name, provenance=prov)


def load_tokenizer(lm: LoadedModel) -> Any:
    """The model's own tokenizer (a pad token is borrowed from EOS when it has none)."""
    folder = lm.hf_name or ""
    local = os.path.isdir(folder)
    transformers = require_transformers(local)
    if local and not any(os.path.exists(os.path.join(folder, f)) for f in TOKENIZER_FILES):
        # recent transformers silently build an EMPTY tokenizer (every word -> [UNK]) from config.json alone
        raise RepsimError(
            f"MODEL {lm.spec}: no tokenizer found for --text (none of {', '.join(TOKENIZER_FILES)} in {lm.hf_name}); "
            "save one beside the model (tokenizer.save_pretrained) or pass token ids with --inputs ids.npy [--attention-mask mask.npy]"
        )
    try:
        tok = transformers.AutoTokenizer.from_pretrained(lm.hf_name)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise RepsimError(
            f"MODEL {lm.spec}: no tokenizer found for --text ({type(exc).__name__}: {first[:200]}); "
            "save one beside the model or pass token ids with --inputs ids.npy [--attention-mask mask.npy]"
        ) from None
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise RepsimError(f"MODEL {lm.spec}: the tokenizer has neither a pad nor an EOS token, so --text cannot pad a batch")
        tok.pad_token = tok.eos_token
    return tok
