"""Which outputs to capture (globs over ``named_modules()``), how to pick a tensor from a tuple or
dict output, and token pooling with an attention mask.

Token pooling of an N x T x D output with mask m (1 = real token, 0 = padding):

* ``mean``: sum_t m[n,t] h[n,t,:] / sum_t m[n,t]   (padding never enters the mean);
* ``last``: h[n, t_last(n)] with t_last the last t where m[n,t] = 1 (right or left padding);
* ``first``: h[n, t_first(n)] with t_first the first t where m[n,t] = 1;
* ``all``: N x T x D kept, padding positions set to 0; the mask is stored as ``attention_mask``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from repsim_cli.errors import RepsimError

TOKEN_MODES = ("mean", "last", "first", "all")
OUTPUT = "output"  # pseudo-name of the model's own output
HIDDEN = "hidden_states"  # hf: the hidden_states tuple, stored as hidden_states/00, /01, ...
_MAX_LISTED = 80


@dataclass(frozen=True)
class LayerSpec:
    """One dataset to write: from a module's output (or the model output, or a hidden state)."""

    name: str  # dataset name in the output file
    module: str  # module name in named_modules(); "" for the model output
    selector: str | None = None  # tuple index or dict key
    hidden_index: int | None = None  # hf hidden_states[i]


def available_names(model: Any, hookable: bool, n_hidden: int | None) -> list[str]:
    """Names a --layers glob can match: modules (when hookable), 'output', hidden_states/NN."""
    names = [n for n, _ in model.named_modules() if n] if hookable else []
    names.append(OUTPUT)
    if n_hidden:
        names += [hidden_name(i) for i in range(n_hidden)]
    return names


def hidden_name(i: int) -> str:
    return f"{HIDDEN}/{i:02d}"


def default_layers(model: Any, hookable: bool, n_hidden: int | None) -> list[LayerSpec]:
    """hf: every hidden state; hookable models: every leaf module; otherwise the model output."""
    if n_hidden:
        return [LayerSpec(hidden_name(i), "", None, i) for i in range(n_hidden)]
    if hookable:
        leaves = [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]
        if leaves:
            return [LayerSpec(n, n) for n in leaves]
    return [LayerSpec(OUTPUT, "")]


def resolve_layers(model: Any, patterns: Sequence[str], hookable: bool, n_hidden: int | None, kind: str = "") -> list[LayerSpec]:
    """Globs -> layer specs in model order; a glob that matches nothing is an error listing the names.

    ``NAME.0`` / ``NAME.key`` select element 0 / key ``key`` of a tuple or dict output when
    ``NAME.0`` itself is not a module name.
    """
    names = available_names(model, hookable, n_hidden)
    order = {n: i for i, n in enumerate(names)}
    chosen: dict[str, tuple[int, LayerSpec]] = {}
    for pat in patterns:
        if not pat:
            raise RepsimError("--layers: empty pattern")
        hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if hits:
            for n in hits:
                chosen.setdefault(n, (order[n], _spec(n)))
            continue
        parts = pat.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # longest module prefix, the rest selects inside the output
            base, sel = ".".join(parts[:cut]), ".".join(parts[cut:])
            bases = [n for n in names if fnmatch.fnmatchcase(n, base) and not n.startswith(HIDDEN)]
            if bases and all(parts[cut:]):
                for n in bases:
                    spec = LayerSpec(f"{n}.{sel}", "" if n == OUTPUT else n, sel)
                    chosen.setdefault(spec.name, (order[n], spec))
                break
        else:
            raise RepsimError(_no_match(pat, names, hookable, kind))
    return [spec for _, spec in sorted(chosen.values(), key=lambda t: t[0])]


def _spec(name: str) -> LayerSpec:
    if name == OUTPUT:
        return LayerSpec(OUTPUT, "")
    if name.startswith(HIDDEN + "/"):
        return LayerSpec(name, "", None, int(name.split("/")[1]))
    return LayerSpec(name, name)


def _no_match(pat: str, names: list[str], hookable: bool, kind: str) -> str:
    shown = ", ".join(names[:_MAX_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")
    extra = "" if hookable else (
        f" (a {kind} model runs no forward hooks: only its output can be captured; "
        "export it with torch.export to a .pt2 file to reach inner layers)"
    )
    return f"--layers {pat!r} matches no module{extra}; available names: {shown}"


def pick_tensor(out: Any, selector: str | None, where: str) -> Any:
    """The tensor in a module output: itself, the first tensor of a tuple/dict, or ``out[selector]``.

    A dotted selector (``1.sq``) is applied one step at a time (``out[1]["sq"]``).
    """
    if selector is not None and "." in selector:
        for step in selector.split(".")[:-1]:
            out = _pick_one(out, step, where)
        selector = selector.split(".")[-1]
    if selector is None:
        found = _first_tensor(out)
        if found is None:
            raise RepsimError(f"{where}: the output ({type(out).__name__}) contains no tensor")
        return found
    return _pick_one(out, selector, where, final=True)


def _pick_one(out: Any, selector: str, where: str, final: bool = False) -> Any:
    import torch

    if isinstance(out, Mapping):
        if selector in out:
            val = out[selector]
        elif selector.isdigit() and int(selector) < len(out):
            val = list(out.values())[int(selector)]
        else:
            raise RepsimError(f"{where}: the output has no key {selector!r}; keys: {', '.join(map(str, out.keys()))}")
    elif isinstance(out, (tuple, list)):
        if hasattr(out, "_fields") and selector in out._fields:  # namedtuple
            val = getattr(out, selector)
        elif selector.isdigit() and int(selector) < len(out):
            val = out[int(selector)]
        else:
            raise RepsimError(f"{where}: the output is a {type(out).__name__} of length {len(out)}; {selector!r} is not an index in it")
    else:
        raise RepsimError(f"{where}: selector {selector!r} needs a tuple or dict output, got {type(out).__name__}")
    if not final:
        return val
    val = _first_tensor(val) if not isinstance(val, torch.Tensor) else val
    if val is None:
        raise RepsimError(f"{where}: element {selector!r} of the output is not a tensor")
    return val


def _first_tensor(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        for item in obj:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def pool_tokens(h: Any, mask: Any, mode: str) -> Any:
    """Pool a B x T x D tensor over its real tokens (``mask`` B x T, 1 = real); float64 result.

    See the module docstring for the formulas. ``all`` returns B x T x D with padding set to 0.
    """
    import torch

    if mode not in TOKEN_MODES:
        raise RepsimError(f"--tokens must be one of {', '.join(TOKEN_MODES)}, got {mode!r}")
    m = (mask != 0).to(torch.float64)
    h64 = h.detach().to(torch.float64)
    if mode == "all":
        return h64 * m[:, :, None]
    count = m.sum(dim=1)
    if bool((count == 0).any()):
        raise RepsimError("an input has no real token (its attention mask is all 0)")
    if mode == "mean":
        return (h64 * m[:, :, None]).sum(dim=1) / count[:, None]
    t = m.shape[1]
    if mode == "first":
        idx = torch.argmax(m, dim=1)  # first maximal value = first real token
    else:
        idx = (t - 1) - torch.argmax(torch.flip(m, dims=[1]), dim=1)
    return h64[torch.arange(h64.shape[0]), idx]


def to_numpy32(t: Any) -> np.ndarray:
    """A detached CPU float32 numpy copy (never a view the model may overwrite in place)."""
    import torch

    return t.detach().to(device="cpu", dtype=torch.float32).numpy().copy()
