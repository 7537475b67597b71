"""Benchmark of ``repsim capture``: activation and per-example gradient throughput on CPU.

Models (built here, nothing downloaded): the small CNN of docs/examples/train_small_cnn.py on
16 x 16 images (P = 9,604 parameters) and a tiny random GPT-2 (2 layers, d = 64, T = 32,
saved with save_pretrained and loaded through ``hf:DIR``) on token ids.

Floors, measured in the same run: a plain batched forward pass of the same model on the same
inputs (no hooks, no pooling, no file) for activations, and one batched forward + backward of
the summed loss (the gradient of the batch, not per example) for gradients. Ratios are
capture time / floor. Rates count inputs per second of the capture's own pass (model loading
and hashing excluded; they are reported separately).

Run: ``python bench/bench_capture12.py`` (about a minute) or ``--quick`` (seconds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _floor import best_of, blas_info


def cnn_case(n: int, batch: int, tmp: Path, repeat: int) -> list[tuple]:
    import torch

    sys.path.insert(0, str(HERE.parent / "docs" / "examples"))
    from train_small_cnn import make_cnn, make_images

    from repsim_cli.capture import capture

    torch.manual_seed(0)
    model = make_cnn().eval()
    x, y = make_images(n, np.random.default_rng(0))
    xt = torch.from_numpy(x)

    def forward() -> None:
        with torch.no_grad():
            for s in range(0, n, batch):
                model(xt[s : s + batch])

    def batch_backward() -> None:
        yt = torch.from_numpy(y)
        for s in range(0, n, batch):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[s : s + batch]), yt[s : s + batch], reduction="sum").backward()

    rows = []
    floor_f = best_of(forward, repeat)
    runs = [capture(model, x, str(tmp / "a.h5"), batch_size=batch) for _ in range(repeat)]
    t = min(r.activation_seconds for r in runs)
    rows.append(("small CNN: activations, all 10 leaf layers", n, t, floor_f, "plain batched forward"))
    floor_b = best_of(batch_backward, repeat)
    t0 = time.perf_counter()
    import torch._dynamo

    rows.append(("one-time: torch.func's lazy import of torch._dynamo (first --grads call in a process)", 0, time.perf_counter() - t0, float("nan"), ""))
    for k in (None, 1024):
        runs = [capture(model, x, str(tmp / "g.h5"), layers=["fc2"], grads="loss", targets=y, grad_project=k, batch_size=batch) for _ in range(repeat)]
        t = min(r.grad_seconds for r in runs)
        label = f"small CNN: per-example grads (P = 9,604){'' if k is None else f', --grad-project {k}'} [{runs[0].grad_mode}]"
        rows.append((label, n, t, floor_b, "batched forward + backward"))
    return rows


def transformer_case(n: int, batch: int, tmp: Path, repeat: int) -> tuple[list[tuple], float]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, GPT2Config, GPT2Model
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    from repsim_cli.capture import capture

    cfg = GPT2Config(vocab_size=500, n_embd=64, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    GPT2Model(cfg).save_pretrained(tmp / "gpt2")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 500, (n, 32))
    mask = np.ones_like(ids)
    lengths = rng.integers(8, 33, n)
    mask[np.arange(32)[None, :] >= lengths[:, None]] = 0  # right padding, 8..32 real tokens
    model = AutoModel.from_pretrained(tmp / "gpt2").eval()
    it, mt = torch.from_numpy(ids), torch.from_numpy(mask)

    def forward() -> None:
        with torch.no_grad():
            for s in range(0, n, batch):
                model(input_ids=it[s : s + batch], attention_mask=mt[s : s + batch], output_hidden_states=True)

    floor = best_of(forward, repeat)
    t_total = []
    rows = []
    for tokens in ("mean", "last"):
        runs = [capture(f"hf:{tmp / 'gpt2'}", ids, str(tmp / "h.h5"), attention_mask=mask, tokens=tokens, batch_size=batch) for _ in range(repeat)]
        rows.append((f"tiny GPT-2 (2 x d64, T=32): 3 hidden states, --tokens {tokens}", n, min(r.activation_seconds for r in runs), floor, "plain batched forward"))
        t_total += [r.seconds - r.activation_seconds for r in runs]
    return rows, min(t_total)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    n_cnn, n_tf, repeat = (128, 64, 1) if args.quick else (2000, 1000, 2)
    tmp = Path(tempfile.mkdtemp(prefix="repsim-bench-capture-", dir="/tmp"))
    try:
        rows = cnn_case(n_cnn, args.batch, tmp, repeat)
        tf_rows, overhead = transformer_case(n_tf, args.batch, tmp, repeat)
        rows += tf_rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"## capture: CPU, torch {torch.__version__}, 1 torch thread, batch {args.batch}, best of {repeat}\n")
    print(f"BLAS: {blas_info()}\n")
    print("| case | N | time (s) | inputs/s | floor (s) | ratio to floor | floor |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, n, t, floor, what in rows:
        if not n:
            print(f"| {label} | | {t:.2f} | | | | |")
            continue
        print(f"| {label} | {n} | {t:.2f} | {n / t:,.0f} | {floor:.2f} | {t / floor:.2f} | {what} |")
    print(f"\nhf: model loading + input hashing + file rename (outside the rates): {overhead:.2f} s; temporary folder removed: {not tmp.exists()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
