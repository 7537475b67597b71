"""``repsim capture MODEL --inputs X -o OUT.h5``: write activation (and gradient) files from a model."""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

import typer

from repsim_cli.cli._app import app, handle_errors, info
from repsim_cli.errors import RepsimError

EPILOG = """
**Examples**

* `repsim capture docs/examples/train_small_cnn.py:make_cnn --weights cnn_seed0.pt --inputs images.npy -o cnn0.h5 --labels y.npy`

* `repsim capture mypkg.models:resnet --inputs data.h5:images --layers 'layer*' --layers fc --batch-size 128 -o acts.h5`

* `repsim capture hf:./tiny-bert --text sentences.txt --max-length 32 --tokens last -o bert.h5`

* `repsim capture model.pt2 --inputs x.npy --grads loss --targets y.npy --grad-params 'fc.*' --grad-project 1024 -o g.h5`
  then `repsim inputsim g.h5:grads/loss --top-k 5`

Token pooling (N x T x D outputs, mask m): mean = sum_t m h / sum_t m; last / first = the last / first real
token (right or left padding); all = N x T x D with padding zeroed, mask stored as `attention_mask`.

Projection error (--grad-project K): a projected cosine has standard deviation about (1 - cos^2)/sqrt(K)
(K = 1024: +-0.031 for orthogonal gradients); over all pairs of N inputs, with probability 0.99,
|error| <= 2e/(1-e), e = sqrt(6 ln(200 N^2)/K) (Johnson-Lindenstrauss, Achlioptas 2003).
"""


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None] | None]:
    """Inputs done and inputs/s on stderr when it is a terminal; silent otherwise."""
    if total <= 0 or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:,.0f} inputs/s" if task.speed else "")

    with Progress(TextColumn("capture"), BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("capture", total=total)

        def advance(k: int = 1) -> None:
            bar.advance(task, k)

        yield advance


def _count(inputs: str | None, text: str | None) -> int:
    """Number of inputs (for the progress bar), cheaply; 0 when unknown."""
    try:
        if text is not None:
            with open(text, encoding="utf-8") as fh:
                return sum(1 for _ in fh)
        from repsim_cli.capture.sources import open_source

        src = open_source(inputs)
        n = src.n
        src.close()
        return n
    except Exception:
        return 0


def _rate(n: int, seconds: float) -> str:
    return f"{seconds:.2f} s, {n / seconds:,.0f} inputs/s" if seconds > 0 else "0 s"


@app.command(epilog=EPILOG)
@handle_errors
def capture(
    model: str = typer.Argument(..., help="package.module:factory | file.py:factory | model.pt2 (torch.export) | TorchScript file | hf:DIR_OR_NAME."),
    inputs: str | None = typer.Option(None, "--inputs", help=(
        "N x ... inputs: .npy, .npz:KEY, .h5:DATASET (read by batch), .pt[:KEY], "
        ".safetensors[:KEY]; token ids N x T for hf: models."
    )),
    output: str = typer.Option(..., "--output", "-o", help="HDF5 file to write (atomically; never an input file)."),
    layers: list[str] | None = typer.Option(None, "--layers", help=(
        "Glob over named_modules() names (repeatable); NAME.0 / NAME.key pick from tuple/dict outputs; "
        "'output' = the model output. Default: every leaf module; hf: hidden_states/00, /01, ..."
    )),
    batch_size: int = typer.Option(64, "--batch-size", help="Inputs per forward pass (memory: one batch plus the model)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | mps."),
    tokens: str = typer.Option("mean", "--tokens", help="N x T x D outputs: mean | last | first over real tokens (mask), or all (keep N x T x D)."),
    grads: str | None = typer.Option(None, "--grads", help=(
        "Per-example gradients of true_logit | loss | INDEX, written "
        "as /grads/<OUTPUT> (N x P) for `repsim inputsim`."
    )),
    targets: str | None = typer.Option(None, "--targets", help="N integer classes (.npy ...) for --grads true_logit / loss."),
    grad_params: list[str] | None = typer.Option(None, "--grad-params", help="Glob over named_parameters() (repeatable): gradients of these only."),
    grad_project: int | None = typer.Option(None, "--grad-project", help=(
        "Project gradients to K columns (seeded Rademacher / sqrt(K), "
        "never held as P x K); see the error note below."
    )),
    seed: int = typer.Option(0, "--seed", min=0, help="torch.manual_seed and projection seed; echoed in the file."),
    weights: str | None = typer.Option(None, "--weights", help="State dict for a factory MODEL (torch.load weights_only=True)."),
    revision: str | None = typer.Option(None, "--revision", help="hf: model revision (branch, tag or commit)."),
    text: str | None = typer.Option(None, "--text", help="hf: one input per line, tokenized by the model's tokenizer."),
    max_length: int | None = typer.Option(None, "--max-length", help="--text: truncate to this many tokens."),
    attention_mask: str | None = typer.Option(None, "--attention-mask", help="N x T mask (1 = token, 0 = padding) for token-id --inputs."),
    labels: str | None = typer.Option(None, "--labels", help="N labels copied to /labels (used by inputsim and test)."),
) -> None:
    """Run a PyTorch / Hugging Face model on inputs and write its activations (and per-example
    gradients) in the layout every repsim command reads: one float32 dataset per layer, root
    attribute layer_order, provenance (model, weights and input SHA-256, versions, seed, date).
    The model runs in eval mode under torch.no_grad(); batches are written as they come.
    """
    from repsim_cli.capture import capture as run_capture

    grand = _count(inputs, text) * (2 if grads else 1)
    with _progress(grand) as progress:
        res = run_capture(
            model, inputs, output, layers=layers or None, batch_size=batch_size, device=device, tokens=tokens,
            grads=grads, targets=targets, grad_params=grad_params or None, grad_project=grad_project, seed=seed,
            weights=weights, revision=revision, text=text, max_length=max_length, attention_mask=attention_mask,
            labels=labels, progress=progress,
        )
    desc = ", ".join(f"{k} {'x'.join(map(str, v[1:]))}" for k, v in res.layers.items())
    info(f"repsim: wrote {len(res.layers)} layer{'s' if len(res.layers) != 1 else ''} of N={res.n} inputs to {res.path} "
         f"({_rate(res.n, res.activation_seconds)}; {res.seconds:.1f} s in all): {desc}")
    if res.grads is not None and res.grads_shape is not None:
        info(f"repsim: gradients {res.path}:{res.grads} shape {res.grads_shape[0]} x {res.grads_shape[1]} "
             f"({res.grad_mode}, {_rate(res.n, res.grad_seconds)})")
    if res.n == 0:  # pragma: no cover - capture refuses N = 0
        raise RepsimError("no inputs")
