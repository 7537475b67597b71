"""``capture``: run a model on inputs and write its activations (and gradients) as an HDF5 file."""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from repsim_cli import __version__
from repsim_cli.capture._deps import require_torch
from repsim_cli.capture.grads import GradComputer, parse_output, select_params
from repsim_cli.capture.layers import (
    TOKEN_MODES,
    LayerSpec,
    default_layers,
    pick_tensor,
    pool_tokens,
    resolve_layers,
    to_numpy32,
)
from repsim_cli.capture.models import (
    LoadedModel,
    load_model,
    load_tokenizer,
    sha256_file,
)
from repsim_cli.capture.project import cosine_error_sd
from repsim_cli.capture.sources import (
    Source,
    from_array,
    open_source,
    read_text,
    read_vector,
    split_input,
)
from repsim_cli.capture.writer import H5Writer, h5_attr
from repsim_cli.errors import RepsimError, warn

Progress = Callable[[int], None]
#: --grad-project: gradient rows buffered before one projection call (bytes of float32 B x P)
PROJECT_BUFFER_BYTES = 256 * 2**20


@dataclass
class CaptureResult:
    """What was written: the file, its layers (name -> shape) and gradient dataset."""

    path: str
    n: int
    layers: dict[str, tuple[int, ...]]
    grads: str | None = None
    grads_shape: tuple[int, ...] | None = None
    grad_mode: str | None = None  # vmap | loop
    seconds: float = 0.0  # everything, including loading the model
    activation_seconds: float = 0.0  # the forward passes (and writing them)
    grad_seconds: float = 0.0  # the gradient pass (and projection, writing)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    """Everything the two passes share."""

    lm: LoadedModel
    src: Source
    mask: np.ndarray | None  # N x T attention mask for token inputs
    tokens: str
    batch: int
    device: str
    token_inputs: bool

    @property
    def torch(self) -> Any:
        return require_torch()


def capture(
    model: Any,
    inputs: Any = None,
    out: str = "capture.h5",
    *,
    layers: Sequence[str] | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    tokens: str = "mean",
    grads: str | None = None,
    targets: Any = None,
    grad_params: Sequence[str] | None = None,
    grad_project: int | None = None,
    seed: int = 0,
    weights: str | None = None,
    revision: str | None = None,
    text: str | None = None,
    max_length: int | None = None,
    attention_mask: Any = None,
    labels: Any = None,
    progress: Progress | None = None,
) -> CaptureResult:
    """Run ``model`` on ``inputs`` and write the chosen layers (and per-example gradients) to ``out``.

    ``model``: an ``nn.Module`` or a spec (``package.module:factory``, ``file.py:factory``, a
    ``.pt2`` / TorchScript file, ``hf:DIR_OR_NAME``); ``inputs``: ``FILE[:KEY]`` (.npy, .npz,
    .h5, .pt, .safetensors) or an array/tensor, N x ...; ``text``: a file of one input per line
    for ``hf:`` models. ``layers`` are globs over ``named_modules()`` names (``NAME.0`` /
    ``NAME.key`` select from tuple/dict outputs). Token outputs (N x T x D) are pooled by
    ``tokens`` over real tokens only (see :mod:`repsim_cli.capture.layers`). ``grads``
    (``true_logit`` | ``loss`` | INDEX) adds ``/grads/<grads>``, N x P (or N x K with
    ``grad_project``), see :mod:`repsim_cli.capture.grads`. The model runs in eval mode under
    ``torch.no_grad()`` with ``torch.manual_seed(seed)``; the file is written to a temporary
    file and renamed at the end, and never overwrites an input.
    """
    from repsim_cli.render import atomic_output, check_output_path

    torch = require_torch()
    t0 = time.perf_counter()
    _check_args(batch_size, tokens, grads, targets, grad_project, text, inputs, max_length)
    protected = [p for p in (_file(inputs), text, _file(targets), _file(labels), _file(attention_mask), weights,
                             model if isinstance(model, str) and os.path.isfile(model) else None) if p]
    check_output_path(out, protected)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    lm = load_model(model, weights, revision, device)
    run = _open_inputs(lm, inputs, text, max_length, attention_mask, tokens, batch_size, device)
    try:
        n = run.src.n
        if n < 1:
            raise RepsimError(f"{run.src.label}: no inputs (N = 0)")
        n_hidden = _n_hidden(lm)
        specs = resolve_layers(lm.module, layers, lm.hookable, n_hidden, lm.kind) if layers else default_layers(lm.module, lm.hookable, n_hidden)
        y = read_vector(targets, n, "--targets") if targets is not None else None
        lab = read_vector(labels, n, "--labels") if labels is not None else None
        with atomic_output(out, protected, suffix=".h5.tmp") as tmp:
            import h5py

            with h5py.File(tmp, "w") as f:
                w = H5Writer(f, n, batch_size)
                t1 = time.perf_counter()
                shapes = _activation_pass(run, specs, w, progress)
                res = CaptureResult(out, n, shapes, activation_seconds=time.perf_counter() - t1)
                if grads is not None:
                    _warm_functorch()
                    t1 = time.perf_counter()
                    _grad_pass(run, grads, y, grad_params, grad_project, seed, w, res, progress)
                    res.grad_seconds = time.perf_counter() - t1
                _extras(f, run, y, lab)
                res.attrs = _provenance(lm, run, inputs, text, specs, tokens, seed, batch_size, device)
                for k, v in res.attrs.items():
                    f.attrs[k] = v
    finally:
        run.src.close()
    res.seconds = time.perf_counter() - t0
    return res


def _warm_functorch() -> None:
    """torch.func imports torch._dynamo at its first call (seconds, once per process): do it before timing."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # pragma: no cover - only a timing nicety
        pass


def _file(arg: Any) -> str | None:
    return split_input(os.fspath(arg))[0] if isinstance(arg, (str, os.PathLike)) else None


def _check_args(batch: int, tokens: str, grads: str | None, targets: Any, k: int | None, text: Any, inputs: Any, max_length: Any) -> None:
    if batch < 1:
        raise RepsimError(f"--batch-size must be >= 1, got {batch}")
    if tokens not in TOKEN_MODES:
        raise RepsimError(f"--tokens must be one of {', '.join(TOKEN_MODES)}, got {tokens!r}")
    if grads is not None:
        name, idx = parse_output(grads)
        if idx is None and targets is None:
            raise RepsimError(f"--grads {grads} needs --targets y.npy (the class of each input)")
    if k is not None and (grads is None or k < 1):
        raise RepsimError("--grad-project K needs --grads and K >= 1")
    if (text is None) == (inputs is None):
        raise RepsimError("give exactly one of --inputs FILE and --text FILE.txt")
    if max_length is not None and text is None:
        raise RepsimError("--max-length applies to --text only")


def _n_hidden(lm: LoadedModel) -> int | None:
    if lm.kind != "hf":
        return None
    n = getattr(lm.module.config, "num_hidden_layers", None)
    return int(n) + 1 if n is not None else None


def _open_inputs(lm: LoadedModel, inputs: Any, text: str | None, max_length: int | None, mask_arg: Any,
                 tokens: str, batch: int, device: str) -> _Run:
    if text is not None:
        if lm.kind != "hf":
            raise RepsimError("--text needs an hf: model (its tokenizer turns lines into token ids)")
        if mask_arg is not None:
            raise RepsimError("--attention-mask comes from the tokenizer with --text; give it only with --inputs ids.npy")
        ids, text_mask = read_text(text, load_tokenizer(lm), max_length)
        return _Run(lm, from_array(ids, f"--text {text}"), text_mask, tokens, batch, device, True)
    src = open_source(inputs)
    integer = np.issubdtype(src.dtype, np.integer)
    if lm.kind == "hf" and not (integer and len(src.shape) == 2):
        src.close()
        raise RepsimError(f"{src.label}: an hf: model needs N x T integer token ids, got shape {src.shape} dtype {src.dtype}")
    mask: np.ndarray | None = None
    if mask_arg is not None:
        if len(src.shape) != 2:
            src.close()
            raise RepsimError(f"--attention-mask needs N x T token inputs, but {src.label} has shape {src.shape}")
        mask = read_vector(mask_arg, src.n, "--attention-mask", ndim=2)
        if mask.shape != src.shape:
            src.close()
            raise RepsimError(f"--attention-mask has shape {mask.shape} but the inputs have shape {src.shape}")
        if np.any((mask != 0) & (mask != 1)):
            src.close()
            raise RepsimError("--attention-mask must hold 0 (padding) and 1 (real token) only")
    token_inputs = lm.kind == "hf" or mask is not None or (integer and len(src.shape) == 2)
    if token_inputs and mask is None:
        mask = np.ones(src.shape[:2], dtype=np.int64)  # no mask given: every token is real
    return _Run(lm, src, mask, tokens, batch, device, token_inputs)


def _to_tensor(run: _Run, arr: np.ndarray) -> Any:
    torch = run.torch
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        t = torch.from_numpy(np.array(arr, dtype=np.int64))
    else:
        t = torch.from_numpy(np.array(arr)).to(_float_dtype(run.lm.module))
    return t.to(run.device)


def _float_dtype(module: Any) -> Any:
    torch = require_torch()
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _batches(run: _Run) -> Any:
    """(start, stop, x, mask) per batch; torch.export programs get the last batch padded to full size."""
    n, b = run.src.n, run.batch
    for start in range(0, n, b):
        stop = min(n, start + b)
        arr = run.src.batch(start, stop)
        m = run.mask[start:stop] if run.mask is not None else None
        if run.lm.static_batch and stop - start < b and n > b:
            pad = b - (stop - start)
            arr = np.concatenate([arr, np.repeat(arr[-1:], pad, axis=0)])
            m = None if m is None else np.concatenate([m, np.repeat(m[-1:], pad, axis=0)])
        mt = None if m is None else run.torch.from_numpy(np.ascontiguousarray(m, dtype=np.int64)).to(run.device)
        yield start, stop, _to_tensor(run, arr), mt


def _forward(run: _Run, x: Any, mask: Any, hidden: bool) -> Any:
    try:
        if run.lm.kind == "hf":
            return run.lm.module(input_ids=x, attention_mask=mask, output_hidden_states=hidden)
        return run.lm.module(x)
    except RepsimError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise RepsimError(
            f"{run.lm.spec}: the forward pass failed on a batch of shape {tuple(x.shape)} ({x.dtype}) from "
            f"{run.src.label} ({type(exc).__name__}: {first[:300]})"
        ) from None


def _store(run: _Run, spec: LayerSpec, t: Any, mask: Any, rows: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Pool a captured tensor (token outputs) and return float32 rows plus dataset attributes."""
    attrs: dict[str, Any] = {"source": spec.module or ("hidden_states" if spec.hidden_index is not None else "output")}
    if spec.selector is not None:
        attrs["selector"] = spec.selector
    if spec.hidden_index is not None:
        attrs["hidden_state_index"] = spec.hidden_index
    t = t[:rows]
    if t.ndim < 2:
        t = t.reshape(t.shape[0], 1)
    if run.token_inputs and t.ndim == 3 and mask is not None and t.shape[1] == mask.shape[1]:
        attrs["tokens"] = run.tokens
        if run.tokens == "all":
            attrs["axes"] = "N,T,D"
        return to_numpy32(pool_tokens(t, mask[:rows], run.tokens)), attrs
    return to_numpy32(t), attrs


def _activation_pass(run: _Run, specs: list[LayerSpec], w: H5Writer, progress: Progress | None) -> dict[str, tuple[int, ...]]:
    module = run.lm.module
    hooked = {s.module for s in specs if s.module}
    seen: dict[str, Any] = {}
    calls: dict[str, int] = {}
    warned: set[str] = set()
    handles = []
    mods = dict(module.named_modules())
    for name in hooked:
        def hook(_m: Any, _i: Any, o: Any, name: str = name) -> None:
            seen[name] = o if not hasattr(o, "detach") else o.detach().clone()
            calls[name] = calls.get(name, 0) + 1
        handles.append(mods[name].register_forward_hook(hook))
    need_hidden = any(s.hidden_index is not None for s in specs)
    try:
        with run.torch.no_grad():
            for start, stop, x, mask in _batches(run):
                seen.clear()
                calls.clear()
                out = _forward(run, x, mask, need_hidden)
                for spec in specs:
                    t = _select(run, spec, out, seen)
                    if calls.get(spec.module, 1) > 1 and spec.module not in warned:
                        warned.add(spec.module)
                        warn(f"module {spec.module} runs {calls[spec.module]} times per forward pass; the last call is stored")
                    arr, attrs = _store(run, spec, t, mask, stop - start)
                    w.write(spec.name, start, arr, attrs)
                if progress is not None:
                    progress(stop - start)
    finally:
        for h in handles:
            h.remove()
    return {s.name: w.shapes[s.name] for s in specs}


def _select(run: _Run, spec: LayerSpec, out: Any, seen: dict[str, Any]) -> Any:
    if spec.hidden_index is not None:
        hs = getattr(out, "hidden_states", None)
        if hs is None or spec.hidden_index >= len(hs):
            raise RepsimError(f"{run.lm.spec}: the model returned no hidden_states[{spec.hidden_index}]")
        return hs[spec.hidden_index]
    if not spec.module:
        return pick_tensor(out, spec.selector, f"{run.lm.spec} output")
    if spec.module not in seen:
        raise RepsimError(f"module {spec.module} did not run in the forward pass, so there is nothing to capture")
    return pick_tensor(seen[spec.module], spec.selector, f"module {spec.module}")


def _grad_pass(run: _Run, grads: str, y: np.ndarray | None, globs: Sequence[str] | None, k: int | None, seed: int,
               w: H5Writer, res: CaptureResult, progress: Progress | None) -> None:
    torch = run.torch
    if run.lm.kind == "hf":
        raise RepsimError("--grads needs a model whose output is N x C logits; hf: models load with AutoModel "
                          "(hidden states, no logits): wrap yours in a factory returning logits")
    name, index = parse_output(grads)
    plan = select_params(run.lm.module, globs)
    comp = GradComputer(run.lm.module, plan, name, index, _logits_call(run, index))
    if run.lm.kind == "torchscript":
        comp.mode = "loop"  # functional_call cannot swap the parameters of a ScriptModule
    yt = np.zeros(run.src.n, dtype=np.int64) if y is None else _targets(y)
    dsname = f"grads/{name}"
    sink = _GradSink(w, dsname, _grad_attrs(grads, name, plan, k, seed), k, seed, plan.p)
    for start, stop, x, _ in _batches(run):
        rows = stop - start
        sink.add(start, comp(x[:rows], torch.from_numpy(yt[start:stop]).to(run.device)))
        if progress is not None:
            progress(rows)
    sink.flush()
    res.grads, res.grads_shape, res.grad_mode = dsname, w.shapes[dsname], comp.mode


def _logits_call(run: _Run, index: int | None) -> Callable[[Any, Any], Any]:
    """(module, x) -> N x C logits, checked (the first tensor of the model output)."""

    def call(mod: Any, x: Any) -> Any:
        logits = pick_tensor(mod(x), None, f"{run.lm.spec} output")
        if logits.ndim != 2:
            raise RepsimError(f"--grads needs a model output of shape N x C (logits); {run.lm.spec} returns shape {tuple(logits.shape)}")
        if index is not None and index >= logits.shape[1]:
            raise RepsimError(f"--grads {index}: the model has only {logits.shape[1]} outputs")
        return logits

    return call


def _grad_attrs(grads: str, name: str, plan: Any, k: int | None, seed: int) -> dict[str, Any]:
    formulas = {"true_logit": "grad_theta f(x)[y]", "loss": "grad_theta cross_entropy(f(x), y)"}
    attrs: dict[str, Any] = {
        "output": grads, "param_names": plan.names, "param_shapes": ["x".join(map(str, s)) or "scalar" for s in plan.shapes],
        "param_offsets": plan.offsets, "P": plan.p, "formula": formulas.get(name, f"grad_theta f(x)[{name}]"),
    }
    if k is not None:
        attrs.update({"projection": "rademacher +-1/sqrt(K), blocks of 4096 rows from PCG64([seed, block])",
                      "projection_seed": seed, "projection_dim": k, "projection_cosine_error_sd": cosine_error_sd(k)})
    return attrs


class _GradSink:
    """Writes gradient rows; with a projection, buffers rows up to PROJECT_BUFFER_BYTES so that R
    (regenerated per projection call) is generated once per buffer, not once per batch."""

    def __init__(self, w: H5Writer, name: str, attrs: dict[str, Any], k: int | None, seed: int, p: int):
        self.w, self.name, self.attrs, self.k, self.seed = w, name, attrs, k, seed
        self.limit = max(1, PROJECT_BUFFER_BYTES // (4 * p))
        self.buf: list[Any] = []
        self.start = 0

    def add(self, start: int, g: Any) -> None:
        if self.k is None:
            self.w.write(self.name, start, to_numpy32(g), self.attrs)
            return
        self.buf.append(g)
        if sum(b.shape[0] for b in self.buf) >= self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.buf or self.k is None:
            return
        from repsim_cli.capture.project import project

        g = require_torch().cat(self.buf) if len(self.buf) > 1 else self.buf[0]
        self.w.write(self.name, self.start, to_numpy32(project(g, self.k, self.seed)), self.attrs)
        self.start += g.shape[0]
        self.buf = []


def _targets(y: np.ndarray) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            return y.astype(np.int64)
        raise RepsimError(f"--targets must be integer class indices, got dtype {y.dtype}")
    if y.min() < 0:
        raise RepsimError(f"--targets must be >= 0, found {y.min()}")
    return y.astype(np.int64)


def _extras(f: Any, run: _Run, y: np.ndarray | None, labels: np.ndarray | None) -> None:
    if labels is not None:
        f.create_dataset("labels", data=labels)
    if y is not None:
        f.create_dataset("targets", data=y)
    if run.tokens == "all" and run.mask is not None:
        f.create_dataset("attention_mask", data=run.mask.astype(np.int8))


def _provenance(lm: LoadedModel, run: _Run, inputs: Any, text: str | None, specs: list[LayerSpec], tokens: str,
                seed: int, batch: int, device: str) -> dict[str, Any]:
    import h5py

    attrs: dict[str, Any] = {
        "layer_order": np.array([s.name for s in specs], dtype=h5py.string_dtype()),
        "generator": "repsim capture", "repsim_version": __version__, "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "batch_size": batch, "device": device, "n_inputs": run.src.n,
        "tokens": tokens if run.token_inputs else "n/a (no token axis)",
    }
    for k, v in lm.provenance.items():
        attrs[k] = h5_attr(v)
    path = text if text is not None else _file(inputs)
    attrs["inputs"] = run.src.label.split(" ", 1)[-1] if path else "in-memory array"
    if path:
        attrs["inputs_sha256"] = sha256_file(path)
    return attrs
