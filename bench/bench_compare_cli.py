"""`repsim compare` end to end on two 10000 x 512 float32 layers (linear CKA), vs its GEMM floor.

Times the real command in a subprocess (Python start-up, imports, reading both HDF5 files, the
float64 cast, centering, the metric, JSON output), best of --repeat runs, and in the same run the
floor: the three float64 products linear CKA needs (A^T A, B^T B, A^T B). Also times the metric
alone in-process and `--stream`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _floor import best_of, blas_info  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--f", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    n, f, repeat = (500, 32, 2) if args.quick else (args.n, args.f, args.repeat)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, f)).astype(np.float32)
    y = (x @ rng.standard_normal((f, f)).astype(np.float32) * 0.05 + rng.standard_normal((n, f)).astype(np.float32))
    from repsim_cli.metrics import linear_cka

    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "a.h5"), os.path.join(tmp, "b.h5")
        with h5py.File(a, "w") as fa, h5py.File(b, "w") as fb:
            fa["layer"], fb["layer"] = x, y
        cmd = [sys.executable, "-m", "repsim_cli", "compare", a, b, "-m", "cka", "-f", "json"]

        def run(args: list[str]) -> float:
            t0 = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            return time.perf_counter() - t0

        startup = min(run([sys.executable, "-m", "repsim_cli", "--version"]) for _ in range(repeat))
        end_to_end = min(run(cmd) for _ in range(repeat))
        streamed = min(run(cmd + ["--stream"]) for _ in range(repeat))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    floor = best_of(lambda: (x64.T @ x64, y64.T @ y64, x64.T @ y64), repeat)
    metric = best_of(lambda: linear_cka(x, y), repeat)
    print(f"# `repsim compare` end to end: two {n} x {f} float32 HDF5 layers, linear CKA")
    print(f"BLAS: {blas_info()}; best of {repeat}\n")
    print("| what | time (s) | ratio to floor |")
    print("|---|---:|---:|")
    print(f"| floor: A^T A + B^T B + A^T B in float64 | {floor:.3f} | 1.00 |")
    print(f"| `linear_cka(x, y)` in-process (cast, center, 3 products) | {metric:.3f} | {metric / floor:.2f} |")
    print(f"| `repsim --version` (Python start-up + imports) | {startup:.3f} | |")
    print(f"| `repsim compare a.h5 b.h5 -m cka -f json` | {end_to_end:.3f} | {end_to_end / floor:.2f} |")
    print(f"| same with `--stream` (row blocks, O(F^2) memory) | {streamed:.3f} | {streamed / floor:.2f} |")
    print(f"\ncommand minus start-up: {end_to_end - startup:.3f} s ({(end_to_end - startup) / floor:.2f} x floor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
