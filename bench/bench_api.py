"""Call overhead of the Python API: ``rs.compare(x, y)`` against ``rs.metrics.linear_cka(x, y)``.

Both compute the same linear CKA of two in-memory arrays; ``rs.compare`` also wraps the arrays as
read-only in-memory layers, validates them (finite values, constant columns), builds a Record and
issues warnings. The overhead is reported in milliseconds and as a ratio, at 500 x 128 (where
fixed costs show most) and 10000 x 512 (where they vanish).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _floor import best_of, blas_info  # noqa: E402

import repsim_cli as rs  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes = [(500, 128)] if args.quick else [(500, 128), (10000, 512)]
    repeat = 5 if args.quick else 30
    warnings.simplefilter("ignore", rs.RepsimWarning)
    print("# Python API call overhead: rs.compare vs rs.metrics.linear_cka (same arrays, same value)")
    print(f"BLAS: {blas_info()}; best of {repeat}\n")
    print("| N x F | linear_cka (ms) | rs.compare (ms) | overhead (ms) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for n, f in sizes:
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((n, f)), rng.standard_normal((n, f))
        assert rs.compare(x, y).value == rs.metrics.linear_cka(x, y)
        reps = repeat if n * f <= 500 * 128 else max(3, repeat // 10)
        t_pure = best_of(lambda: rs.metrics.linear_cka(x, y), reps)
        t_api = best_of(lambda: rs.compare(x, y), reps)
        print(f"| {n} x {f} | {1e3 * t_pure:.2f} | {1e3 * t_api:.2f} | {1e3 * (t_api - t_pure):.2f} | {t_api / t_pure:.2f} |")


if __name__ == "__main__":
    main()
