"""Numerical building blocks shared by the metrics (float64 throughout)."""

from __future__ import annotations

from dataclasses import dataclass

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


# ---------------------------------------------------------------------------- scale-safe preparation

_EPS = float(np.finfo(np.float64).eps)


def power_of_two_scale(x: np.ndarray) -> float:
    """2^e with max|x| / 2^e in [0.5, 1): dividing by it is exact (no rounding) and brings any
    finite data, 1e-300 or 1e300, to order one. 1.0 for an all-zero array; RepsimError if
    ``x`` holds NaN or infinities."""
    if x.size == 0:
        return 1.0
    top = max(float(np.max(x)), -float(np.min(x)))  # two reads, no |x| temporary; NaN propagates
    if not np.isfinite(top):
        from repsim_cli.errors import RepsimError

        raise RepsimError("the activations contain NaN or infinite values")
    if top == 0.0:
        return 1.0
    _, exponent = np.frexp(top)
    return float(np.ldexp(1.0, int(exponent)))


@dataclass
class Centered:
    """Column-centered float64 data divided by an exact power of two (see :func:`scaled_center`)."""

    xc: np.ndarray  # (x - column means) / scale
    scale: float  # a power of two (1.0 for ordinary data)
    norm: float  # ||xc||_F
    constant: bool  # every column constant up to rounding, relative to the data's own magnitude


#: ||xc||_F is kept within [2^-240, 2^240], so 4th powers (CKA's ||Xc^T Xc||_F^2) stay normal floats
_LOW, _HIGH = 2.0**-240, 2.0**240


def scaled_center(x: np.ndarray) -> Centered:
    """Center ``x`` in float64 and, only when needed, divide it by an exact power of two.

    Ordinary activations cost the floor's passes (column means, one subtracting copy, a
    second mean, the norm): the second centering pass is applied only when the first left a
    residual mean above 1e-13 of the typical entry (large offsets, e.g. 1e4 +- 1 in float32),
    since a residual mean changes second moments only at second order. When ||Xc||_F leaves
    [2^-240, 2^240] (activations of magnitude 1e300 or 1e-300) the data are divided by a power
    of two -- exact, so no index that is invariant to scaling changes -- and neither squares,
    Gram entries, covariances nor their squares can overflow or underflow; scale-dependent
    indexes (linear HSIC) multiply ``scale`` back at the very end. ``constant`` is relative:
    ||Xc||_F <= N eps sqrt(F) max|column mean|, the residue centering leaves on constant columns.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D N x F array, got shape {x.shape}")
    n, f = x.shape
    scale = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x.mean(axis=0, dtype=np.float64)
    if not np.all(np.isfinite(mean)):  # NaN/inf inputs, or a sum of N values near 1e308
        scale = power_of_two_scale(x)  # raises on NaN/inf
        x = np.multiply(x, 1.0 / scale, dtype=np.float64)
        mean = x.mean(axis=0)
    xc = np.subtract(x, mean, dtype=np.float64)
    mean2 = xc.mean(axis=0)
    with np.errstate(over="ignore", under="ignore"):
        norm = float(np.linalg.norm(xc))
    if not _LOW <= norm <= _HIGH or np.max(np.abs(mean2), initial=0.0) > 1e-13 * norm / np.sqrt(max(n * f, 1)):
        xc -= mean2
        if not 2.0**-450 < norm < np.inf:  # squares may have under/overflowed: rescale by max |entry| first
            s = power_of_two_scale(xc)
            xc *= 1.0 / s
            scale *= s
        with np.errstate(over="ignore", under="ignore"):
            norm = float(np.linalg.norm(xc))
        if norm > 0.0 and not _LOW <= norm <= _HIGH:
            s = float(np.ldexp(1.0, int(np.frexp(norm)[1])))
            xc *= 1.0 / s
            scale *= s
            norm = float(np.linalg.norm(xc))
    top_mean = float(np.max(np.abs(mean), initial=0.0)) / scale
    constant = not norm > n * _EPS * np.sqrt(f) * top_mean if top_mean > 0.0 else not norm > 0.0
    return Centered(xc, scale, norm, constant)


def prescaled(x: np.ndarray, center_columns: bool = True) -> np.ndarray:
    """float64 copy of ``x / s`` (s from :func:`power_of_two_scale`), column-centered by default.

    For indexes that are invariant to scaling each side (their value never needs ``s``).
    """
    if center_columns:
        return scaled_center(x).xc
    x = np.asarray(x)
    return np.multiply(x, 1.0 / power_of_two_scale(x), dtype=np.float64)


def wide_factor(xc: np.ndarray) -> np.ndarray:
    """N x N lower-triangular L with L L^T = Xc Xc^T, for F > N (wide layers).

    From a thin QR of Xc^T (F x N): Xc^T = Q R, so Xc = R^T Q^T and Xc Xc^T = R^T R. Costs
    2 N^2 F flops (blocked Householder), instead of an SVD of the N x F matrix; every
    quantity that depends on Xc only through its Gram matrix (left singular vectors, singular
    values, Procrustes, canonical correlations) can be computed from L.
    """
    r = np.asarray(np.linalg.qr(xc.T, mode="r"))  # N x N (mode "r" returns R only)
    return np.ascontiguousarray(r.T)


def left_svd(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U, s): left singular vectors (N x min(N, F)) and singular values of ``xc``.

    When F > N the SVD is of the N x N factor of :func:`wide_factor` (same U and s), so the cost
    follows min(N, F): O(N^2 F) instead of LAPACK's wide SVD.
    """
    n, f = xc.shape
    if f > n:
        u, s, _ = np.linalg.svd(wide_factor(xc), full_matrices=False)
        return u, s
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return u, s
