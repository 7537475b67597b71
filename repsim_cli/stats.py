"""Statistics: permutation nulls, bootstrap intervals and the across-seeds group test.

Pure functions, no printing. Every random choice comes from ``numpy.random.Generator``
seeded by the caller's ``seed`` (child seeds spawned with ``SeedSequence``), never global state.
"""

from __future__ import annotations

import numpy as np


def permutation_indices(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` independent row permutations of ``range(n)`` (count x n), reproducible from ``seed``.

    Each permutation comes from its own child of ``SeedSequence(seed)``, so the k-th
    permutation is the same whatever ``count`` is and however the work is split across jobs.
    """
    children = np.random.SeedSequence(seed).spawn(count)
    out = np.empty((count, n), dtype=np.int64)
    for k, child in enumerate(children):
        out[k] = np.random.default_rng(child).permutation(n)
    return out


def permutation_pvalue(observed: float, null: np.ndarray, higher_is_similar: bool = True) -> float:
    """(1 + #{null >= observed}) / (B + 1) for similarities (<= for distances); never 0.

    A tiny relative tolerance counts null values equal to ``observed`` up to rounding as ties.
    """
    null = np.asarray(null, dtype=np.float64)
    tol = 1e-12 * max(1.0, abs(observed))
    hits = np.count_nonzero(null >= observed - tol) if higher_is_similar else np.count_nonzero(null <= observed + tol)
    return float((1 + hits) / (null.size + 1))


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (same shape as the input; family = all entries)."""
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ravel()
    m = flat.size
    order = np.argsort(flat, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * flat[idx]))
        adjusted[idx] = running
    return adjusted.reshape(p.shape)
