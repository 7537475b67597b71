"""Numerical building blocks shared by the metrics (float64 throughout)."""

from __future__ import annotations

import numpy as np


def as_float64(x: np.ndarray) -> np.ndarray:
    """A float64 2-D view/copy of ``x`` (never centers in the stored precision)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D N x F array, got shape {x.shape}")
    return x


def center(x: np.ndarray) -> np.ndarray:
    """Column-centered float64 copy of ``x``.

    Casts to float64 *before* centering and subtracts the mean twice (the second pass removes
    the rounding error of the first), so activations with a large common offset (e.g. values
    near 1e4 with unit variance, stored in float32) keep all their precision.
    """
    xc = np.array(x, dtype=np.float64, copy=True)
    if xc.ndim != 2:
        raise ValueError(f"expected a 2-D N x F array, got shape {xc.shape}")
    xc -= xc.mean(axis=0)
    xc -= xc.mean(axis=0)
    return xc


def center_gram(k: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11^T/n (double centering), in place on a float64 copy."""
    k = np.array(k, dtype=np.float64, copy=True)
    k -= k.mean(axis=0, keepdims=True)
    k -= k.mean(axis=1, keepdims=True)
    return k


def rank_tolerance(s: np.ndarray, shape: tuple[int, int]) -> float:
    """numpy's ``matrix_rank`` threshold: s_max * max(N, F) * eps."""
    if s.size == 0:
        return 0.0
    return float(s.max() * max(shape) * np.finfo(np.float64).eps)


def orthonormal_basis(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q (N x r) spanning the column space of centered ``xc``, and its singular values.

    r follows ``numpy.linalg.matrix_rank`` (singular values > s1 * max(N, F) * eps), so dead
    and duplicated units drop out.
    """
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    r = int(np.count_nonzero(s > rank_tolerance(s, xc.shape)))
    return u[:, :r], s
