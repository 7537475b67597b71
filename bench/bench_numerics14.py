"""Benchmark for issue 14's numerics: procrustes against its floor, and wide layers (F > N).

1. ``procrustes`` (stat=similarity, float64 inputs) at N=2000 F=256 and N=10000 F=512, as a ratio
   to its floor measured in the same run: a direct NumPy transcription (center each side, one
   X^T Y product, singular values of that F x F matrix, two norms). Target: <= 1.2. The previous
   route (full SVD with vectors plus the residual product) is timed beside it.
2. Wide layers (F > N): procrustes and cca through the N x N factor of a thin QR of Xc^T
   (cost O(N^2 F)) against the previous route (an SVD of the N x F data), and against linear
   CKA's Gram route for scale.

Run: python bench/bench_numerics14.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _floor import best_of, blas_info  # noqa: E402

from repsim_cli.metrics import parse_metric  # noqa: E402

FULL = [(2000, 256), (10000, 512)]
QUICK = [(400, 32), (1000, 64)]
WIDE_FULL = [(500, 16384), (1000, 16384)]
WIDE_QUICK = [(100, 2000)]


def floor(a: np.ndarray, b: np.ndarray) -> float:
    """Direct transcription of Procrustes similarity: the work that cannot be avoided."""
    xc = a - a.mean(axis=0)
    yc = b - b.mean(axis=0)
    s = np.linalg.svd(xc.T @ yc, compute_uv=False)
    return float(s.sum() / (np.linalg.norm(xc) * np.linalg.norm(yc)))


def previous_route(a: np.ndarray, b: np.ndarray) -> float:
    """The route before issue 14 (two-pass centering, normalization, full SVD, residual)."""
    out = []
    for x in (a, b):
        xc = np.array(x, dtype=np.float64)
        xc -= xc.mean(axis=0)
        xc -= xc.mean(axis=0)
        xc /= np.linalg.norm(xc)
        out.append(xc)
    za, zb = out
    u, s, vt = np.linalg.svd(zb.T @ za)
    np.linalg.norm(za - zb @ (u @ vt))
    return float(s.sum())


def pair(n: int, f: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, f))
    return a, a @ (rng.standard_normal((f, f)) / np.sqrt(f)) + rng.standard_normal((n, f))


def old_svd(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return u, s


def old_factor(xc: np.ndarray) -> np.ndarray:
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return u * s


def bench_procrustes(sizes: list[tuple[int, int]], repeat: int) -> None:
    m = parse_metric("procrustes")
    print("| N | F | procrustes s | floor s | ratio | previous route s | previous / floor |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, f in sizes:
        a, b = pair(n, f)
        assert abs(m.compute(a, b).value - floor(a, b)) < 1e-10
        t = best_of(lambda: m.compute(a, b), repeat)
        t0 = best_of(lambda: floor(a, b), repeat)
        tp = best_of(lambda: previous_route(a, b), repeat)
        print(f"| {n} | {f} | {t:.3f} | {t0:.3f} | {t / t0:.2f} | {tp:.3f} | {tp / t0:.2f} |", flush=True)


def bench_wide(sizes: list[tuple[int, int]]) -> None:
    cca_mod = importlib.import_module("repsim_cli.metrics.cca")
    shape_mod = importlib.import_module("repsim_cli.metrics.shape")
    print("\n| N | F | metric | now s | previous route s | speed-up | linear cka s (Gram route) |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n, f in sizes:
        a, b = pair(n, 64)
        rng = np.random.default_rng(1)
        a = a @ rng.standard_normal((64, f))
        b = b @ rng.standard_normal((64, f)) + 0.1 * rng.standard_normal((n, f))
        cka = parse_metric("cka")
        tc = best_of(lambda: cka.compute(a, b), 1)
        for spec in ("procrustes", "cca"):
            m = parse_metric(spec)
            new = m.compute(a, b).value
            t = best_of(lambda: m.compute(a, b), 1)
            saved = cca_mod.left_svd, shape_mod.wide_factor
            cca_mod.left_svd, shape_mod.wide_factor = old_svd, old_factor
            try:
                old = m.compute(a, b).value
                told = best_of(lambda: m.compute(a, b), 1)
            finally:
                cca_mod.left_svd, shape_mod.wide_factor = saved
            assert abs(new - old) < 1e-10, (spec, new, old)
            print(f"| {n} | {f} | {spec} | {t:.2f} | {told:.2f} | {told / t:.1f}x | {tc:.2f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(f"BLAS: {blas_info()}")
    bench_procrustes(QUICK if args.quick else FULL, 3 if args.quick else 5)
    bench_wide(WIDE_QUICK if args.quick else WIDE_FULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
