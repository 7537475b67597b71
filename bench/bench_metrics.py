"""Benchmark of the metric catalog against this machine's own floor, measured in the same run.

For each size (N inputs x F features, two synthetic float32 layers) and each metric, prints the
time of ``metric.compute(a, b)`` (float32 in, everything from centering on), the floor and the
ratio. Floors are float64 BLAS/LAPACK calls timed right beside the metric:

- linear CKA / HSIC: the three products it needs, A^T B, A^T A and B^T B (2 N F_A F_B + 2 N F_A^2 +
  2 N F_B^2 flops), each timed directly. Target: ratio <= 1.5 at the two larger sizes.
- CCA family (cca, svcca, pwcca, lr): one thin QR per side (numpy.linalg.qr). Target: <= 3.
- other feature-space metrics: the cross product A^T B (no target, for scale).
- N x N metrics (rsa, RBF CKA, knn): the two N x N Gram products A A^T and B B^T; skipped at the
  largest size (they would need 8 N^2 bytes = 19 GiB per matrix at N=50000).

Peak memory of linear CKA is measured in a fresh subprocess per size (VmHWM after the call minus
VmRSS with the float32 inputs loaded, the high-water mark reset via /proc/self/clear_refs), and
compared with 2x the two inputs in float64.

Run: python bench/bench_metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _floor import best_of, blas_info  # noqa: E402

from repsim_cli.metrics import parse_metric  # noqa: E402

FULL_SIZES = [(2000, 256), (10000, 512), (50000, 768)]
QUICK_SIZES = [(400, 32), (1000, 64)]
FEATURE_METRICS = [
    "cka",
    "cka:debiased=true",
    "hsic",
    "cca",
    "svcca",
    "pwcca",
    "lr",
    "procrustes",
    "meanmax",
    "matched",
]
GRAM_METRICS = ["cka:kernel=rbf", "rsa", "knn"]
LINEAR = {"cka", "cka:debiased=true", "hsic"}
CCA_FAMILY = {"cca", "svcca", "pwcca", "lr"}


def make_pair(n: int, f: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two related float32 layers (B = A W + noise), generated without float64 temporaries."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, f), dtype=np.float32)
    w = (rng.standard_normal((f, f), dtype=np.float32) / np.float32(np.sqrt(f))).astype(np.float32)
    b = a @ w
    b += rng.standard_normal((n, f), dtype=np.float32)
    return a, b


def floor_fns(a: np.ndarray, b: np.ndarray) -> dict[str, list]:
    """The float64 calls each floor consists of (timed right after each metric, so a busy machine
    slows the metric and its floor alike)."""
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    return {
        "linear": [lambda: a64.T @ b64, lambda: a64.T @ a64, lambda: b64.T @ b64],
        "qr": [lambda: np.linalg.qr(a64), lambda: np.linalg.qr(b64)],
        "cross": [lambda: a64.T @ b64],
        "gram": [lambda: a64 @ a64.T, lambda: b64 @ b64.T],
    }


def floor_for(spec: str) -> tuple[str, str]:
    if spec in LINEAR:
        return "linear", "3 GEMMs"
    if spec in CCA_FAMILY:
        return "qr", "QR/side"
    if spec in GRAM_METRICS:
        return "gram", "2 Grams"
    return "cross", "A^T B"


def target_for(spec: str, n: int, sizes: list[tuple[int, int]]) -> str:
    large = n >= 10000
    if spec in ("cka", "cka:debiased=true"):
        return "<= 1.5" if large else "-"
    if spec in CCA_FAMILY:
        return "<= 3"
    return "-"


_MEM_CODE = """
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from bench_metrics import make_pair
from repsim_cli.metrics import parse_metric

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

a, b = make_pair({n}, {f})
m = parse_metric({spec!r})
m.compute(a[:50], b[:50])  # import-time and first-call allocations out of the way
# ru_maxrss would include the parent's RSS at fork time (Linux keeps it across exec): use VmHWM,
# reset to the current RSS by writing 5 to clear_refs
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
before = status("VmRSS")
m.compute(a, b)
after = status("VmHWM")
print(json.dumps({{"before": before, "after": after}}))
"""


def peak_memory(n: int, f: int, spec: str) -> dict[str, float]:
    here = Path(__file__).resolve().parent
    code = _MEM_CODE.format(root=str(here.parent), bench=str(here), n=n, f=f, spec=spec)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    inputs64 = 8.0 * n * 2 * f
    inputs32 = 4.0 * n * 2 * f
    extra = max(0.0, rec["after"] - rec["before"])
    return {"extra_mib": extra / 2**20, "ratio": (inputs32 + extra) / (2.0 * inputs64)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--sizes", default=None, help="comma-separated NxF sizes, e.g. 50000x768 (default: the standard three)")
    parser.add_argument("--metrics", default=None, help="semicolon-separated metric specs to run (default: all)")
    parser.add_argument("--repeat", type=int, default=None, help="timing repeats (default 3, 1 at the largest size)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads (e.g. 1 on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)  # memory subprocesses
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    chosen = None if args.metrics is None else [m.strip() for m in args.metrics.split(";")]
    largest = max(n for n, _ in sizes)

    print(f"# repsim metrics benchmark, {datetime.date.today().isoformat()}")
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, {blas_info()}")
    print(f"BLAS threads: {args.threads or 'default'}; load average at start: {os.getloadavg()[0]:.1f}")
    print()
    print("| N | F | metric | time (s) | floor (s) | floor is | ratio | target |")
    print("|---:|---:|---|---:|---:|---|---:|---|")
    skipped = []
    for n, f in sizes:
        a, b = make_pair(n, f)
        big = n >= 50000
        repeat = args.repeat or (1 if big else 3)
        fns = floor_fns(a, b)
        specs = FEATURE_METRICS + ([] if big else GRAM_METRICS)
        if chosen is not None:
            specs = [m for m in specs if m in chosen]
        if big:
            skipped.append(f"N={n}: {', '.join(GRAM_METRICS)} skipped (N x N, {8 * n * n / 2**30:.0f} GiB per matrix)")
        for spec in specs:
            bound = parse_metric(spec)
            reps = 1 if (spec in GRAM_METRICS and n >= 10000 and not args.repeat) else repeat  # keep the run short
            t = best_of(lambda: bound.compute(a, b), reps)
            key, kind = floor_for(spec)
            floor = sum(best_of(fn, reps) for fn in fns[key])
            print(f"| {n} | {f} | {spec} | {t:.3f} | {floor:.3f} | {kind} | {t / floor:.2f} | {target_for(spec, n, sizes)} |", flush=True)
        del a, b, fns
    print()
    for line in skipped:
        print(f"- {line}")
    print()
    print("Peak memory of linear CKA (fresh subprocess; float32 inputs + peak RSS increase during the call,")
    print("relative to 2x the two inputs in float64; target <= 1):")
    print()
    print("| N | F | metric | peak increase (MiB) | (inputs + increase) / (2 x inputs in float64) |")
    print("|---:|---:|---|---:|---:|")
    for n, f in sizes:
        for spec in ("cka", "cka:debiased=true"):
            if chosen is not None and spec not in chosen:
                continue
            mem = peak_memory(n, f, spec)
            print(f"| {n} | {f} | {spec} | {mem['extra_mib']:.0f} | {mem['ratio']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
