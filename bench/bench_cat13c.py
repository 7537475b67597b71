"""Benchmark of the RSM-based and statistics measures (issue 13: dcor, rsm_diff, eos, gulp, magnitude,
concentricity, uniformity) against this machine's floor, measured in the same run.

For each size (two synthetic float32 N x F layers) and each measure: the time of
``metric.compute(a, b)`` and its ratio to the GEMM floor of its dominant product, timed right beside it:

- N x N measures (dcor, rsm_diff on distances/cosines, uniformity): the two N x N Gram products A A^T
  and B B^T (every pairwise-distance matrix costs one of them);
- rsm_diff:rsm=linear: A^T A, B^T B and A^T B (the feature-space identity);
- eos, gulp: A^T A and B^T B (an eigendecomposition route would need them); their real floor is one
  thin SVD per side (numpy.linalg.svd), reported as a second ratio;
- magnitude, concentricity: one matrix-vector product per side (A v, B v).

Run: python bench/bench_cat13c.py [--quick] [--sizes 2000x256,10000x512] [--threads 1]
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

from _floor import best_of, blas_info

from repsim_cli.metrics import parse_metric

FULL_SIZES = [(2000, 256), (10000, 512)]
QUICK_SIZES = [(300, 32)]
SPECS = {
    "dcor": "gram",
    "dcor:unbiased=true": "gram",
    "rsm_diff": "gram",
    "rsm_diff:norm=spectral": "gram",
    "rsm_diff:rsm=cosine": "gram",
    "rsm_diff:rsm=linear": "linear",
    "rsm_diff:rsm=linear,norm=spectral": "linear",
    "eos": "cov",
    "gulp": "cov",
    "gulp:lambda=0.1": "cov",
    "magnitude": "gemv",
    "concentricity": "gemv",
    "uniformity": "gram",
}
FLOOR_NAMES = {"gram": "A A^T + B B^T", "linear": "3 F x F GEMMs", "cov": "A^T A + B^T B", "gemv": "A v + B v"}


def make_pair(n: int, f: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two related float32 layers (B = A W + noise), scaled so uniformity's potentials are not all 0."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, f), dtype=np.float32) / np.float32(np.sqrt(f))
    w = (rng.standard_normal((f, f), dtype=np.float32) / np.float32(np.sqrt(f))).astype(np.float32)
    b = a @ w
    b += rng.standard_normal((n, f), dtype=np.float32) / np.float32(np.sqrt(f))
    return a, b


def floor_fns(a: np.ndarray, b: np.ndarray) -> dict[str, list]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    va, vb = np.ones(a.shape[1]), np.ones(b.shape[1])
    return {
        "gram": [lambda: a64 @ a64.T, lambda: b64 @ b64.T],
        "linear": [lambda: a64.T @ a64, lambda: b64.T @ b64, lambda: a64.T @ b64],
        "cov": [lambda: a64.T @ a64, lambda: b64.T @ b64],
        "gemv": [lambda: a64 @ va, lambda: b64 @ vb],
        "svd": [lambda: np.linalg.svd(a64, full_matrices=False), lambda: np.linalg.svd(b64, full_matrices=False)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--sizes", default=None, help="comma-separated NxF sizes (default 2000x256,10000x512)")
    parser.add_argument("--metrics", default=None, help="semicolon-separated metric specs (default: all)")
    parser.add_argument("--repeat", type=int, default=None, help="timing repeats (default 3, 1 at N >= 10000)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads")
    args = parser.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]  # type: ignore[misc]
    specs = list(SPECS) if args.metrics is None else [m.strip() for m in args.metrics.split(";")]

    print(f"# repsim RSM/statistics measures benchmark, {datetime.date.today().isoformat()}")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, {blas_info()}")
    print(f"BLAS threads: {args.threads or 'default'}; load average at start: {os.getloadavg()[0]:.1f}")
    print()
    print("| N | F | metric | time (s) | GEMM floor (s) | floor is | ratio | ratio to thin SVD/side |")
    print("|---:|---:|---|---:|---:|---|---:|---:|")
    for n, f in sizes:
        a, b = make_pair(n, f)
        fns = floor_fns(a, b)
        repeat = args.repeat or (1 if n >= 10000 or args.quick else 3)
        for spec in specs:
            bound = parse_metric(spec)
            t = best_of(lambda bound=bound, a=a, b=b: bound.compute(a, b), repeat)
            key = SPECS.get(spec, "gram" if bound.gram else "cov")
            floor = sum(best_of(fn, repeat) for fn in fns[key])
            svd = f"{t / sum(best_of(fn, repeat) for fn in fns['svd']):.2f}" if key == "cov" else "-"
            print(f"| {n} | {f} | {spec} | {t:.3f} | {floor:.4f} | {FLOOR_NAMES[key]} | {t / floor:.2f} | {svd} |", flush=True)
        del a, b, fns
    return 0


if __name__ == "__main__":
    sys.exit(main())
