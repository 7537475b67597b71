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


def scaled_center(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Column-centered float64 copy of ``x / s`` and the factor ``s`` (a power of two).

    The data are divided by :func:`power_of_two_scale` *before* centering, so neither the mean
    (a sum of N values) nor any later product (squares, Gram entries, covariances) can overflow
    at 1e300 or underflow at 1e-300; scale-invariant indexes then never need ``s``, and scale-
    dependent ones (linear HSIC) multiply it back at the very end. Centering is the two-pass
    :func:`center` (float64 before subtracting, the second pass removes the first's rounding).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D N x F array, got shape {x.shape}")
    s = power_of_two_scale(x)
    xc = np.multiply(x, 1.0 / s, dtype=np.float64)  # exact: 1/s is a power of two
    mean = xc.mean(axis=0)
    xc -= mean
    xc -= xc.mean(axis=0)
    return xc, s


def prescaled(x: np.ndarray, center_columns: bool = True) -> np.ndarray:
    """float64 copy of ``x / s`` (s from :func:`power_of_two_scale`), column-centered by default.

    For indexes that are invariant to scaling each side (their value never needs ``s``).
    """
    if center_columns:
        return scaled_center(x)[0]
    x = np.asarray(x)
    return np.multiply(x, 1.0 / power_of_two_scale(x), dtype=np.float64)


def is_constant(xc: np.ndarray, norm: float | None = None) -> bool:
    """Whether data prepared by :func:`scaled_center` (raw max|x/s| < 1) are constant up to rounding.

    Centering a constant column of magnitude <= 1 leaves residue of a few eps per entry; the
    test ||Xc||_F <= N * eps * sqrt(F) is relative to the data's scale (here 1), never absolute.
    """
    if xc.size == 0:
        return True
    n, f = xc.shape
    norm = float(np.linalg.norm(xc)) if norm is None else norm
    return not norm > n * _EPS * np.sqrt(f)


def wide_factor(xc: np.ndarray) -> np.ndarray:
    """N x N lower-triangular L with L L^T = Xc Xc^T, for F > N (wide layers).

    From a thin QR of Xc^T (F x N): Xc^T = Q R, so Xc = R^T Q^T and Xc Xc^T = R^T R. Costs
    2 N^2 F flops (blocked Householder), instead of an SVD of the N x F matrix; every
    quantity that depends on Xc only through its Gram matrix (left singular vectors, singular
    values, Procrustes, canonical correlations) can be computed from L.
    """
    r = np.linalg.qr(xc.T, mode="r")  # N x N
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
