"""Streaming linear CKA: layers larger than memory, never held whole.

Two routes (the engine picks the one that keeps less memory): row blocks into F x F moments
(below), or column blocks into N x N Gram matrices (:func:`streamed_centered_gram`, for layers
much wider than N).

Accumulates, over row blocks of the two layers read side by side, the shifted moments

    S_x = sum_i (x_i - c),  S_xx = sum_i (x_i - c)(x_i - c)^T,  S_xy = sum_i (x_i - c)(y_i - e)^T

with shifts c, e = the first block's column means (so the final centering
X_c^T Y_c = S_xy - S_x S_y^T / n suffers no cancellation even with large offsets), plus the
per-row quantities the unbiased HSIC needs. The result equals the in-memory
:func:`repsim_cli.metrics.linear_cka` to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.io.layers import LayerRef, iter_row_blocks, to_matrix
from repsim_cli.metrics._linalg import power_of_two_scale


@dataclass
class _SideMoments:
    """Shifted running moments of one side."""

    shift: np.ndarray
    s: np.ndarray  # sum of shifted rows
    ss: np.ndarray  # sum of shifted outer products (F x F)
    p: float = 0.0  # sum of squared shifted row norms p_i
    pp: float = 0.0  # sum of p_i^2
    px: np.ndarray = field(default=None)  # type: ignore[arg-type]  # sum of p_i * shifted row

    @classmethod
    def start(cls, first: np.ndarray) -> _SideMoments:
        f = first.shape[1]
        return cls(first.mean(axis=0), np.zeros(f), np.zeros((f, f)), px=np.zeros(f))

    def add(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xt = block - self.shift
        p = np.einsum("ij,ij->i", xt, xt)
        self.s += xt.sum(axis=0)
        self.ss += xt.T @ xt
        self.p += float(p.sum())
        self.pp += float(p @ p)
        self.px += p @ xt
        return xt, p


@dataclass
class StreamedHSIC:
    """Centered second moments of two layers and their unbiased-HSIC row terms."""

    n: int
    cross: float  # ||Xc^T Yc||_F^2
    self_a: float
    self_b: float
    sq_dot: float  # sum_i ||xc_i||^2 ||yc_i||^2
    sq_aa: float  # sum_i ||xc_i||^4
    sq_bb: float
    trace_a: float
    trace_b: float

    def cka(self, debiased: bool = False) -> float:
        """Linear CKA (biased, or debiased with the unbiased HSIC of Song et al. 2012)."""
        from repsim_cli.metrics.cka import _ratio

        if not debiased:
            return float(_ratio(self.cross, self.self_a, self.self_b, False))
        cross = _unbiased(self.cross, self.sq_dot, self.trace_a, self.trace_b, self.n)
        sa = _unbiased(self.self_a, self.sq_aa, self.trace_a, self.trace_a, self.n)
        sb = _unbiased(self.self_b, self.sq_bb, self.trace_b, self.trace_b, self.n)
        return float(_ratio(cross, sa, sb, True))


def _unbiased(dot: float, sq_dot: float, tr_a: float, tr_b: float, n: int) -> float:
    """n(n-3) HSIC_u = dot - n/(n-2) sum_i |x_i|^2 |y_i|^2 + tr K tr L / ((n-1)(n-2)) (centered data)."""
    return dot - n / (n - 2.0) * sq_dot + tr_a * tr_b / ((n - 1.0) * (n - 2.0))


def _paired_blocks(a: LayerRef, b: LayerRef, pool: str, channel_axis: int, block_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Row blocks of both layers, aligned (the smaller block size of the two drives both)."""
    row_a = max(1, int(np.prod(a.shape[1:]))) * 8
    row_b = max(1, int(np.prod(b.shape[1:]))) * 8
    rows = max(1, block_bytes // (row_a + row_b))
    bytes_a = rows * int(np.prod(a.shape[1:])) * a.dtype.itemsize
    bytes_b = rows * int(np.prod(b.shape[1:])) * b.dtype.itemsize
    start = 0
    for blk_a, blk_b in zip(iter_row_blocks(a, max(bytes_a, 1)), iter_row_blocks(b, max(bytes_b, 1))):
        xa = to_matrix(blk_a, pool, a.feature_axis(channel_axis), a.label)
        xb = to_matrix(blk_b, pool, b.feature_axis(channel_axis), b.label)
        for x, ref in ((xa, a), (xb, b)):
            if not np.isfinite(x).all():
                raise RepsimError(f"{ref.label} (shape {ref.shape}): {nonfinite_where(x, row0=start)}")
        start += xa.shape[0]
        yield xa, xb


def nonfinite_where(x: np.ndarray, row0: int = 0, col0: int = 0) -> str:
    """'NaN values, first at row R, column C' for a block whose first cell is (row0, col0) of the layer."""
    bad = ~np.isfinite(x)
    r, c = (int(v[0]) for v in np.nonzero(bad))
    kind = "NaN" if np.isnan(x[r, c]) else "infinite"
    return (f"{int(bad.sum())} NaN or infinite values in this block, the first ({kind}) at row {row0 + r}, "
            f"column {col0 + c} (0-based) of the N x F matrix")


def streamed_hsic(
    a: LayerRef,
    b: LayerRef,
    pool: str = "none",
    channel_axis: int = 1,
    block_bytes: int = 128 * 2**20,
    progress: Callable[[int], None] | None = None,
) -> StreamedHSIC:
    """One pass over two same-N layers; memory O(F_A^2 + F_B^2 + F_A F_B + one block)."""
    if a.n_samples != b.n_samples:
        raise RepsimError(f"{a.label} has N={a.n_samples} but {b.label} has N={b.n_samples}")
    ma = mb = None
    s_ab: np.ndarray | None = None
    pq = 0.0
    p_y = q_x = None
    n = 0
    scale_a = scale_b = 1.0
    for xa, xb in _paired_blocks(a, b, pool, channel_axis, block_bytes):
        if ma is None:  # exact power-of-two rescaling from the first block: no overflow at 1e300, no underflow at 1e-300
            scale_a, scale_b = power_of_two_scale(xa), power_of_two_scale(xb)
        xa, xb = xa * (1.0 / scale_a), xb * (1.0 / scale_b)
        if ma is None:
            ma, mb = _SideMoments.start(xa), _SideMoments.start(xb)
            s_ab = np.zeros((xa.shape[1], xb.shape[1]))
            p_y, q_x = np.zeros(xb.shape[1]), np.zeros(xa.shape[1])
        assert ma is not None and mb is not None and p_y is not None and q_x is not None
        xt, p = ma.add(xa)
        yt, q = mb.add(xb)
        s_ab += xt.T @ yt
        pq += float(p @ q)
        p_y += p @ yt
        q_x += q @ xt
        n += xa.shape[0]
        if progress:
            progress(xa.shape[0])
    assert ma is not None and mb is not None and s_ab is not None
    if n < 4:
        raise RepsimError(f"{a.label}: N={n} inputs, streaming CKA needs at least 4")
    d, e = ma.s / n, mb.s / n  # mean - shift
    cov_a = ma.ss - np.outer(ma.s, d)
    cov_b = mb.ss - np.outer(mb.s, e)
    cov_ab = s_ab - np.outer(ma.s, e)
    # centered squared row norms: a_i = p_i - 2 xt_i.d + |d|^2 (and b_i likewise); their sums:
    assert p_y is not None and q_x is not None
    dd, ee = float(d @ d), float(e @ e)
    trace_a = ma.p - n * dd
    trace_b = mb.p - n * ee
    sq_dot = (
        pq - 2 * float(p_y @ e) + ee * ma.p - 2 * float(q_x @ d) + 4 * float(d @ s_ab @ e)
        - 2 * ee * float(ma.s @ d) + dd * mb.p - 2 * dd * float(mb.s @ e) + n * dd * ee
    )
    sq_aa = ma.pp - 4 * float(ma.px @ d) + 2 * dd * ma.p + 4 * float(d @ ma.ss @ d) - 4 * dd * float(ma.s @ d) + n * dd * dd
    sq_bb = mb.pp - 4 * float(mb.px @ e) + 2 * ee * mb.p + 4 * float(e @ mb.ss @ e) - 4 * ee * float(mb.s @ e) + n * ee * ee
    return StreamedHSIC(
        n=n,
        cross=float(np.vdot(cov_ab, cov_ab)),
        self_a=float(np.vdot(cov_a, cov_a)),
        self_b=float(np.vdot(cov_b, cov_b)),
        sq_dot=sq_dot,
        sq_aa=sq_aa,
        sq_bb=sq_bb,
        trace_a=trace_a,
        trace_b=trace_b,
    )


# --------------------------------------------------------------------------- Gram route (F >> N)


def iter_feature_blocks(
    ref: LayerRef, pool: str = "none", channel_axis: int = 1, block_bytes: int = 128 * 2**20
) -> Iterator[np.ndarray]:
    """The layer's N x F matrix (flattened, or mean-pooled) as float64 blocks of whole columns.

    Blocks run along the stored array's axis 1 when flattening (so a block of N x b x H x W is
    exactly the flattened columns of those b channels), or along the channel axis with
    ``pool='mean'``; each block holds all N rows, so it can be centered exactly on its own.
    """
    from repsim_cli.io.arrays import iter_axis_blocks
    from repsim_cli.io.layers import _channel_axis

    shape = ref.shape
    ndim = len(shape)
    axis = _channel_axis(ndim, ref.feature_axis(channel_axis), ref.label, shape) if (pool == "mean" and ndim > 2) else 1
    per_index = max(1, int(np.prod(shape)) // max(1, shape[axis])) * 8
    step = max(1, block_bytes // per_index)
    for slab in iter_axis_blocks(ref.file, ref.kind, ref.name, shape, axis, step):
        if pool == "mean" and ndim > 2:
            others = tuple(a for a in range(1, ndim) if a != axis)
            yield np.asarray(np.mean(slab, axis=others, dtype=np.float64))
        else:
            yield slab.reshape(shape[0], -1).astype(np.float64)


def streamed_centered_gram(
    ref: LayerRef,
    pool: str = "none",
    channel_axis: int = 1,
    block_bytes: int = 128 * 2**20,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Xc Xc^T (N x N) accumulated over column blocks, each block centered exactly (two passes)."""
    n = ref.n_samples
    gram = np.zeros((n, n))
    scale = None
    col0 = 0
    for block in iter_feature_blocks(ref, pool, channel_axis, block_bytes):
        if not np.isfinite(block).all():
            raise RepsimError(f"{ref.label} (shape {ref.shape}): {nonfinite_where(block, col0=col0)}")
        col0 += block.shape[1]
        if scale is None:  # exact power of two from the first block: CKA ignores it, products neither over- nor underflow
            scale = power_of_two_scale(block)
        block *= 1.0 / scale
        block -= block.mean(axis=0)
        block -= block.mean(axis=0)
        gram += block @ block.T
        if progress:
            progress(block.shape[1])
    return gram


def gram_cka(ka: np.ndarray, kb: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA from two centered Gram matrices (debiased: U-centered, Song et al. 2012)."""
    from repsim_cli.metrics.cka import _ratio, u_center_gram

    if debiased:
        ka, kb = u_center_gram(ka.copy()), u_center_gram(kb.copy())
    return float(_ratio(float(np.vdot(ka, kb)), float(np.vdot(ka, ka)), float(np.vdot(kb, kb)), debiased))
