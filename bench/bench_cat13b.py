"""Benchmark of the rank-based RSA comparators and the neighbourhood measures (issue 13, cat13b).

For each size (two synthetic float32 layers, as in bench_metrics.py) prints the time of
``metric.compute(a, b)`` and its floor, measured right beside it in the same run:

- rsa (spearman, rho_a: ranking the N(N-1)/2 dissimilarities): numpy.argsort of the two RDM vectors,
  once each (the sort the ranking cannot avoid). Target for spearman: ratio <= 1.5.
- rsa (kendall_a, cosine, pearson): the same argsort floor, for scale (kendall_a is O(M log M)).
- knn (every stat) and cknna: the GEMM floor of their dominant product, the two N x N Gram
  products A A^T and B B^T (the neighbour search computes them in row blocks).

Run: python bench/bench_cat13b.py [--quick] [--sizes 2000x256,10000x512] [--threads 1]
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
QUICK_SIZES = [(300, 32)]
RSA_SPECS = ["rsa", "rsa:compare=rho_a", "rsa:compare=kendall_a", "rsa:compare=cosine", "rsa:compare=pearson"]
NEIGHBOUR_SPECS = [
    "knn",
    "knn:stat=jaccard",
    "knn:stat=rank",
    "knn:stat=joint",
    "knn:stat=second_order",
    "knn:stat=cycle",
    "knn:neighbours=euclidean",
    "cknna",
]


def rdm_vectors(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two correlation-RDM upper triangles (float64), built outside the timed floor."""
    rsa_mod = sys.modules["repsim_cli.metrics.rsa"]
    return tuple(rsa_mod.upper_triangle(rsa_mod.rdm(x.astype(np.float64), "correlation")) for x in (a, b))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--sizes", default=None, help="comma-separated NxF sizes (default 2000x256,10000x512)")
    parser.add_argument("--metrics", default=None, help="semicolon-separated metric specs to run (default: all)")
    parser.add_argument("--repeat", type=int, default=None, help="timing repeats (default 3, 1 at N >= 10000)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads (e.g. 1 on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    chosen = None if args.metrics is None else [m.strip() for m in args.metrics.split(";")]

    print(f"# repsim rank-RSA and neighbourhood benchmark (cat13b), {datetime.date.today().isoformat()}")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, {blas_info()}")
    print(f"BLAS threads: {args.threads or 'default'}; load average at start: {os.getloadavg()[0]:.1f}")
    print()
    print("| N | F | metric | time (s) | floor (s) | floor is | ratio | target |")
    print("|---:|---:|---|---:|---:|---|---:|---|")
    for n, f in sizes:
        a, b = make_pair(n, f)
        repeat = args.repeat or (1 if n >= 10000 else 3)
        va, vb = rdm_vectors(a, b)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        floors = {
            "argsort": (lambda va=va, vb=vb: (np.argsort(va), np.argsort(vb)), "argsort x2"),
            "gram": (lambda a64=a64, b64=b64: (a64 @ a64.T, b64 @ b64.T), "2 Grams"),
        }
        for spec in RSA_SPECS + NEIGHBOUR_SPECS:
            if chosen is not None and spec not in chosen:
                continue
            bound = parse_metric(spec)
            t = best_of(lambda bound=bound, a=a, b=b: bound.compute(a, b), repeat)
            fn, kind = floors["argsort" if spec.startswith("rsa") else "gram"]
            floor = best_of(fn, repeat)
            target = "<= 1.5" if spec == "rsa" else "-"
            print(f"| {n} | {f} | {spec} | {t:.3f} | {floor:.3f} | {kind} | {t / floor:.2f} | {target} |", flush=True)
        del floors
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
