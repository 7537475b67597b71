"""Shared benchmark helpers: the machine's own floor, measured in the same run.

Absolute seconds on a shared 2-core machine are noise; every benchmark reports its time as a
ratio to a floor measured right beside it (the GEMMs the computation cannot avoid).
"""

from __future__ import annotations

import gc
import resource
import time
from typing import Callable

import numpy as np


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Minimum wall time over ``repeat`` calls (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_seconds(n: int, fa: int, fb: int, repeat: int = 3, seed: int = 0) -> float:
    """Time of one float64 product (fa x n) @ (n x fb) on this machine, now."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, fa))
    b = a if fa == fb else rng.standard_normal((n, fb))
    return best_of(lambda: a.T @ b, repeat)


def gflops(n: int, fa: int, fb: int, seconds: float) -> float:
    return 2.0 * n * fa * fb / seconds / 1e9


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        infos = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} threads={i.get('num_threads')}" for i in threadpool_info() if i.get("user_api") == "blas"]
        return "; ".join(infos) or "unknown BLAS"
    except Exception:  # threadpoolctl is optional
        return "unknown BLAS (install threadpoolctl to see)"
