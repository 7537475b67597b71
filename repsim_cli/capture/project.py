"""Seeded random projection of per-example gradients (Johnson-Lindenstrauss, Achlioptas 2003).

``g -> g R`` with R a P x K matrix of independent signs +-1/sqrt(K). R is never held: it is
generated in blocks of :data:`BLOCK_ROWS` rows, block b from ``numpy.random.PCG64([seed, b])``
(one bit per sign), so it depends only on (seed, K) -- not on the batch size, the device or P
beyond its first P rows -- and any block can be regenerated alone.

Expected error of cosines (u, v unit gradients, c = u.v, c_K the cosine after projection):

* typical: c_K is unbiased to O(1/K) with standard deviation about (1 - c^2)/sqrt(K) <= 1/sqrt(K)
  (K = 1024: +-0.031 for orthogonal gradients, less for similar ones) -- :func:`cosine_error_sd`;
* worst case over all pairs of N inputs, with probability >= 1 - delta:
  |c_K - c| <= 2 eps / (1 - eps) with eps = sqrt(6 ln(2 N^2 / delta) / K), valid for eps <= 1/2
  (Achlioptas' tail bound P(| |Rx|^2 - |x|^2 | > eps |x|^2) <= 2 exp(-K eps^2 / 6), a union over
  the N^2 vectors u_i and u_i +- u_j, and polarization) -- :func:`cosine_error_bound`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from repsim_cli.errors import RepsimError

#: rows of R generated at once (each block is BLOCK_ROWS x K signs)
BLOCK_ROWS = 4096


def projection_block(seed: int, k: int, block: int) -> np.ndarray:
    """Rows [block*BLOCK_ROWS, (block+1)*BLOCK_ROWS) of R as float32 (+-1/sqrt(k))."""
    rng = np.random.Generator(np.random.PCG64([int(seed), int(block)]))
    nbits = BLOCK_ROWS * k
    raw = np.frombuffer(rng.bytes((nbits + 7) // 8), dtype=np.uint8)
    # one table lookup per byte -> its 8 signs (bit 1 -> +1/sqrt(K), 0 -> -1/sqrt(K), MSB first)
    return _sign_table(k)[raw].reshape(-1)[:nbits].reshape(BLOCK_ROWS, k)


_TABLES: dict[int, np.ndarray] = {}


def _sign_table(k: int) -> np.ndarray:
    """256 x 8 float32: the signs encoded by each byte value, scaled by 1/sqrt(k)."""
    if k not in _TABLES:
        bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)
        _TABLES[k] = (2.0 * bits - 1.0).astype(np.float32) / np.float32(math.sqrt(k))
    return _TABLES[k]


def projection_matrix(p: int, k: int, seed: int) -> np.ndarray:
    """The whole P x K matrix R (for tests and small P only; capture never builds it)."""
    blocks = [projection_block(seed, k, b) for b in range((p + BLOCK_ROWS - 1) // BLOCK_ROWS)]
    return np.concatenate(blocks, axis=0)[:p]


def project(g: Any, k: int, seed: int) -> Any:
    """B x P gradients (numpy array or torch tensor) -> B x K = g R, accumulated in float64.

    Memory: one BLOCK_ROWS x K block of R at a time plus the B x K result.
    """
    if k < 1:
        raise RepsimError(f"--grad-project must be >= 1, got {k}")
    is_torch = hasattr(g, "detach")
    acc: Any
    if is_torch:
        import torch

        acc = torch.zeros((g.shape[0], k), dtype=torch.float64, device=g.device)
    else:
        acc = np.zeros((g.shape[0], k), dtype=np.float64)
    p = g.shape[1]
    for b in range((p + BLOCK_ROWS - 1) // BLOCK_ROWS):
        c0, c1 = b * BLOCK_ROWS, min(p, (b + 1) * BLOCK_ROWS)
        r = projection_block(seed, k, b)[: c1 - c0]
        if is_torch:
            acc += (g[:, c0:c1].to(torch.float32) @ torch.from_numpy(r).to(g.device)).to(torch.float64)
        else:
            acc += np.asarray(g[:, c0:c1], dtype=np.float32) @ r
    return acc


def cosine_error_sd(k: int, cosine: float = 0.0) -> float:
    """Approximate standard deviation of a projected cosine: (1 - c^2) / sqrt(K)."""
    return (1.0 - cosine**2) / math.sqrt(k)


def cosine_error_bound(n: int, k: int, delta: float = 0.01) -> float:
    """Bound on max |c_K - c| over all pairs of ``n`` inputs, holding with probability >= 1 - delta.

    ``2 eps / (1 - eps)``, eps = sqrt(6 ln(2 n^2 / delta) / K); ``inf`` when eps > 1/2 (K too small
    for the bound to say anything).
    """
    eps = math.sqrt(6.0 * math.log(2.0 * max(n, 2) ** 2 / delta) / k)
    return math.inf if eps > 0.5 else 2.0 * eps / (1.0 - eps)
