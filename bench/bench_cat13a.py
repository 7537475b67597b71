"""Benchmark of the alignment and predictivity measures (shape, procrustes:align=permutation,
aligned_cosine, soft_match, ridge) against this machine's own floor, measured in the same run.

For each size (N inputs x F features, two synthetic float32 layers from bench_metrics.make_pair) and
each measure, prints the time of ``metric.compute(a, b)`` (float32 in, everything from centring on),
the GEMM floor of its dominant product, timed right beside it, and the ratio:

- A^T B (one float64 cross product): shape with alpha=1 (then one min(F_A, F_B)-sized SVD),
  procrustes:align=permutation (then the Hungarian algorithm), aligned_cosine (then the rotation
  X Q, a second product of the same size), soft_match (then exact OT, POT's network simplex).
- 3 GEMMs (A^T B, A^T A, B^T B): shape with 0 < alpha < 1 (per-side Gram, its eigendecomposition,
  the whitened cross product).
- QR/side (numpy.linalg.qr of each side): shape with alpha=0, which needs an orthonormal basis with
  cca's rank rule (a thin SVD per side, like cca; floor as in bench_metrics for the CCA family).
- A^T A + A^T B: ridge (the per-fold Gram and cross products; then one F x F eigendecomposition per
  fold, and folds^2 of them for alpha=auto's nested cross-validation).

soft_match is not capped at these sizes: exact OT between 512 + 512 neurons takes well under a
second (network simplex; its worst case grows like F^3, so F in the thousands would be slow).

Run: python bench/bench_cat13a.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _floor import best_of, blas_info  # noqa: E402
from bench_metrics import make_pair  # noqa: E402

from repsim_cli.metrics import parse_metric  # noqa: E402

FULL_SIZES = [(2000, 256), (10000, 512)]
QUICK_SIZES = [(400, 32), (1000, 64)]
SPECS = {
    "shape": "cross",
    "shape:form=euclidean": "cross",
    "shape:alpha=0.5": "linear",
    "shape:alpha=0": "qr",
    "procrustes:align=permutation": "cross",
    "aligned_cosine": "cross",
    "soft_match": "cross",
    "ridge:alpha=1.0": "ridge",
    "ridge": "ridge",
}
KIND = {"cross": "A^T B", "linear": "3 GEMMs", "qr": "QR/side", "ridge": "A^T A + A^T B"}


def floor_fns(a: np.ndarray, b: np.ndarray) -> dict[str, list]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return {
        "cross": [lambda: a64.T @ b64],
        "linear": [lambda: a64.T @ b64, lambda: a64.T @ a64, lambda: b64.T @ b64],
        "qr": [lambda: np.linalg.qr(a64), lambda: np.linalg.qr(b64)],
        "ridge": [lambda: a64.T @ a64, lambda: a64.T @ b64],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--repeat", type=int, default=None, help="timing repeats (default 3, 1 at N >= 10000)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads (e.g. 1 on a busy machine)")
    parser.add_argument("--metrics", default=None, help="semicolon-separated subset of the specs")
    args = parser.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    chosen = list(SPECS) if args.metrics is None else [m.strip() for m in args.metrics.split(";")]
    print(f"# repsim alignment/predictivity benchmark, {datetime.date.today().isoformat()}")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, {blas_info()}")
    print(f"BLAS threads: {args.threads or 'default'}; load average at start: {os.getloadavg()[0]:.1f}")
    print()
    print("| N | F | metric | value | time (s) | floor (s) | floor is | ratio |")
    print("|---:|---:|---|---:|---:|---:|---|---:|")
    for n, f in sizes:
        a, b = make_pair(n, f)
        fns = floor_fns(a, b)
        repeat = args.repeat or (1 if n >= 10000 or args.quick else 3)
        for spec in chosen:
            bound = parse_metric(spec)
            value = bound.compute(a, b).value
            t = best_of(lambda bound=bound, a=a, b=b: bound.compute(a, b), repeat)
            key = SPECS[spec]
            floor = sum(best_of(fn, repeat) for fn in fns[key])
            print(f"| {n} | {f} | {spec} | {value:.4f} | {t:.3f} | {floor:.3f} | {KIND[key]} | {t / floor:.1f} |", flush=True)
        del a, b, fns
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
