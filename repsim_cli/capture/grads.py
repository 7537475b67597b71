"""Per-example parameter gradients for ``repsim inputsim`` (Charpiat et al., NeurIPS 2019).

For each input x_n with target y_n, the scalar s_n is one of

* ``true_logit``: f(x_n)[y_n];
* ``loss``: cross-entropy -log softmax(f(x_n))[y_n];
* ``INDEX``: f(x_n)[INDEX] (one output unit, no targets needed);

and the row written is grad_theta s_n, the selected parameters flattened in C order and
concatenated in ``named_parameters()`` order (optionally projected to K columns, see
:mod:`repsim_cli.capture.project`). The batch is computed with ``torch.func``:
``vmap(grad(s), in_dims=(None, 0, 0))`` over ``functional_call``; models where that fails fall
back to one ``torch.autograd.grad`` call per input (with a warning).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from repsim_cli.errors import RepsimError, warn

GRAD_OUTPUTS = ("true_logit", "loss")


def parse_output(output: str) -> tuple[str, int | None]:
    """``true_logit`` | ``loss`` | a non-negative integer INDEX -> (dataset name, index or None)."""
    if output in GRAD_OUTPUTS:
        return output, None
    try:
        idx = int(output)
    except ValueError:
        raise RepsimError(f"--grads must be true_logit, loss or an output INDEX (integer >= 0), got {output!r}") from None
    if idx < 0:
        raise RepsimError(f"--grads INDEX must be >= 0, got {idx}")
    return str(idx), idx


@dataclass
class ParamPlan:
    """The selected parameters: names, shapes and column offsets in a gradient row."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    offsets: list[int] = field(default_factory=list)  # len(names) + 1, last = P

    @property
    def p(self) -> int:
        return self.offsets[-1]


def select_params(model: Any, globs: Sequence[str] | None) -> ParamPlan:
    """Parameters matching any glob (all when ``globs`` is empty), in ``named_parameters()`` order."""
    params = list(model.named_parameters())
    if not params:
        raise RepsimError("--grads: the model has no parameters")
    names = [n for n, _ in params]
    if globs:
        for g in globs:
            if not any(fnmatch.fnmatchcase(n, g) for n in names):
                shown = ", ".join(names[:80]) + (f", ... ({len(names)} in all)" if len(names) > 80 else "")
                raise RepsimError(f"--grad-params {g!r} matches no parameter; parameters: {shown}")
        params = [(n, p) for n, p in params if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    shapes = [tuple(int(s) for s in p.shape) for _, p in params]
    offsets = [0]
    for s in shapes:
        offsets.append(offsets[-1] + int(np.prod(s, dtype=np.int64)))
    return ParamPlan([n for n, _ in params], shapes, offsets)


def scalar_of(logits: Any, y: Any, output: str, index: int | None) -> Any:
    """The scalar s of one example from its logits (C,) and target y."""
    import torch

    if index is not None:
        return logits[index]
    if output == "true_logit":
        return logits.gather(0, y.reshape(1)).squeeze(0)
    return torch.nn.functional.cross_entropy(logits.unsqueeze(0), y.reshape(1))


class GradComputer:
    """Computes B x P gradient rows for batches; vmap first, per-example loop after a failure."""

    def __init__(self, model: Any, plan: ParamPlan, output: str, index: int | None, call: Callable[[Any, Any], Any]):
        self.model, self.plan, self.output, self.index = model, plan, output, index
        self.call = call  # (module, batch x) -> logits tensor B x C
        self.mode = "vmap"
        named = dict(model.named_parameters())
        self._sel = {n: named[n].detach() for n in plan.names}
        self._rest = {n: p.detach() for n, p in named.items() if n not in self._sel}
        self._rest.update({n: b.detach() for n, b in model.named_buffers()})

    def __call__(self, x: Any, y: Any) -> Any:
        if self.mode == "vmap":
            try:
                return self._vmap(x, y)
            except RepsimError:
                raise
            except Exception as exc:
                self.mode = "loop"
                first = (str(exc).strip().splitlines() or [""])[0]
                warn(f"--grads: torch.func.vmap failed on this model ({type(exc).__name__}: {first[:200]}); "
                     "falling back to a slower per-example loop")
        return self._loop(x, y)

    def _vmap(self, x: Any, y: Any) -> Any:
        import torch
        from torch.func import functional_call, grad, vmap

        def s(params: dict, xi: Any, yi: Any) -> Any:
            logits = self.call(lambda inp: functional_call(self.model, (params, self._rest), (inp,)), xi.unsqueeze(0))
            return scalar_of(logits[0], yi, self.output, self.index)

        g = vmap(grad(s), in_dims=(None, 0, 0))(self._sel, x, y)
        return torch.cat([g[n].reshape(x.shape[0], -1) for n in self.plan.names], dim=1)

    def _loop(self, x: Any, y: Any) -> Any:
        import torch

        named = dict(self.model.named_parameters())
        sel = [named[n] for n in self.plan.names]
        flags = [p.requires_grad for p in sel]
        for p in sel:
            p.requires_grad_(True)
        rows = []
        try:
            for i in range(x.shape[0]):
                with torch.enable_grad():
                    logits = self.call(self.model, x[i : i + 1])
                    val = scalar_of(logits[0], y[i], self.output, self.index)
                    gs = torch.autograd.grad(val, sel, allow_unused=True)
                rows.append(torch.cat([(torch.zeros_like(p) if gi is None else gi).reshape(-1) for gi, p in zip(gs, sel)]))
        finally:
            for p, f in zip(sel, flags):
                p.requires_grad_(f)
        return torch.stack(rows)
