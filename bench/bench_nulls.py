"""Benchmark: permutation null of linear CKA (fast path) vs a naive full recompute vs the floor.

For each size, 200 permutations of B's rows (``repsim_cli.stats.permutation_null``):

- fast: the registry fast path -- both sides prepared once, then per permutation B's centered
  rows are reordered and one F x F cross product ||Xc^T Yc[perm]||_F^2 is computed;
- naive: ``linear_cka(x, y[perm])`` from scratch for every permutation (centering both sides,
  both self terms and the cross product), the same permutations;
- floor: 200 x one float64 cross product Xc^T Yc (distinct N x F operands, a general GEMM, not
  the half-cost SYRK of X^T X), measured in the same run -- the work no exact method for
  arbitrary permutations can avoid.

The three are timed interleaved, in blocks of 20 permutations, so a shared machine's load
drifts equally over all of them.

Run: ``python bench/bench_nulls.py`` (about 1.5 minutes) or ``--quick`` (seconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _floor import best_of, blas_info, gflops  # noqa: E402

from repsim_cli import stats  # noqa: E402
from repsim_cli.metrics import parse_metric  # noqa: E402

FULL = [(2000, 256), (10000, 512)]
QUICK = [(500, 64), (1000, 128)]


def data(n: int, f: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, f))
    y = x @ rng.standard_normal((f, f)) / np.sqrt(f) + rng.standard_normal((n, f))
    return x, y


def one_size(n: int, f: int, permutations: int, block: int = 20) -> dict[str, float]:
    """Fast path, naive recompute and floor, interleaved block by block (same machine load).

    The machine is shared, so the three are timed in alternation on blocks of ``block``
    permutations (the same permutations for fast and naive) and summed; the one-time
    preparation of both sides is added to the fast path.
    """
    cka = parse_metric("cka")
    x, y = data(n, f)
    perms = stats.permutation_indices(n, permutations, seed=0)
    t0 = time.perf_counter()
    job = stats._Job(cka, x, y)
    job.prep_a, job.prep_b  # noqa: B018 -- prepare both sides once (part of the fast path)
    t_prepare = time.perf_counter() - t0
    xc, yc = job.prep_a.xc, job.prep_b.xc
    fast_null, naive_null = [], []
    t_fast = t_prepare
    t_naive = t_floor = 0.0
    for start in range(0, permutations, block):
        stop = min(permutations, start + block)
        t0 = time.perf_counter()
        fast_null.append(job.permutations(0, start, stop))
        t1 = time.perf_counter()
        naive_null += [cka.compute(x, y[p]).value for p in perms[start:stop]]
        t2 = time.perf_counter()
        for _ in range(stop - start):
            xc.T @ yc
        t3 = time.perf_counter()
        t_fast += t1 - t0
        t_naive += t2 - t1
        t_floor += t3 - t2
    end_to_end = best_of(lambda: stats.permutation_null(cka, x, y, permutations, seed=0), 1)
    diff = float(np.max(np.abs(np.concatenate(fast_null) - np.asarray(naive_null))))
    return {
        "n": n,
        "f": f,
        "B": permutations,
        "fast": t_fast,
        "end_to_end": end_to_end,
        "naive": t_naive,
        "floor": t_floor,
        "speedup": t_naive / t_fast,
        "floor_ratio": t_fast / t_floor,
        "gflops": gflops(n, f, f, t_floor / permutations),
        "max_diff": diff,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 50 permutations (smoke run)")
    args = parser.parse_args(argv)
    sizes, permutations = (QUICK, 50) if args.quick else (FULL, 200)
    print(f"## Nulls: {permutations} permutations of linear CKA\n")
    print(f"BLAS: {blas_info()}\n")
    print("| N | F | permutations | fast path (s) | naive recompute (s) | speed-up vs naive | floor: B cross products (s) | fast / floor | cross GFLOP/s | permutation_null end to end (s) | max abs diff fast vs naive |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for n, f in sizes:
        r = one_size(n, f, permutations)
        print(
            f"| {r['n']} | {r['f']} | {r['B']} | {r['fast']:.3f} | {r['naive']:.3f} | {r['speedup']:.1f}x | "
            f"{r['floor']:.3f} | {r['floor_ratio']:.2f}x | {r['gflops']:.1f} | {r['end_to_end']:.3f} | {r['max_diff']:.1e} |",
            flush=True,
        )
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
