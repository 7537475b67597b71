"""Alignment-based measures: generalized shape metrics, permutation Procrustes, aligned cosine, soft matching.

Notation: Xc, Yc column-centred float64 data (N x F_A, N x F_B); "zero-pad" pads the narrower side with
zero columns. Every measure here depends on a side only through quantities that survive a right
multiplication by a matrix with orthonormal columns (shape, aligned cosine) or through its columns
(permutation Procrustes, soft matching). The first kind is therefore computed on Z = U S (N x rank) when
F > N, so its cost follows min(N, F); the second kind needs the neurons themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import left_svd, prescaled, rank_tolerance, scaled_center
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register

_EPS = np.finfo(np.float64).eps
#: below this squared distance (relative to its scale) the closed form loses digits to cancellation,
#: so the distance is recomputed as the norm of the aligned residual
_NEAR = 1e-6


def _centered(x: np.ndarray, name: str) -> np.ndarray:
    """Column-centered float64 data, divided by an exact power of two when its magnitude would
    over- or underflow (1e300, 1e-300; :func:`~repsim_cli.metrics._linalg.scaled_center`); a layer
    constant up to rounding, relative to its own magnitude, is an error."""
    centered = scaled_center(x)
    if centered.constant:
        n, f = centered.xc.shape
        raise RepsimError(f"{name}: a {n} x {f} layer is constant after centering (rank 0); it cannot be compared")
    return centered.xc


def _pad_to(z: np.ndarray, width: int) -> np.ndarray:
    if z.shape[1] == width:
        return z
    out = np.zeros((z.shape[0], width))
    out[:, : z.shape[1]] = z
    return out


def _reduced(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U_r, s_r) of the thin SVD of ``xc`` with numpy's matrix_rank rule (as in ``cca``)."""
    u, s = left_svd(xc)  # F > N: through the N x N factor of a thin QR of Xc^T, O(N^2 F)
    r = int(np.count_nonzero(s > rank_tolerance(s, xc.shape)))
    return u[:, :r], s[:r]


# ---------------------------------------------------------------------------- shape


@dataclass
class Whitened:
    """X~ = z @ w up to a right factor with orthonormal columns (w None: the identity); fro2 = ||X~||_F^2."""

    z: np.ndarray
    w: np.ndarray | None
    fro2: float
    features: int

    def explicit(self) -> np.ndarray:
        return self.z if self.w is None else self.z @ self.w


def _whiten_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Whitened:
    """Partial whitening X~ = Xc (alpha I + (1 - alpha) Xc^T Xc / N)^(-1/2).

    Default route (0 < alpha, F <= N): the F x F Gram's eigendecomposition gives the whitening matrix W
    (no SVD of the N x F data); eigenvalues within the Gram's rounding (<= l_max max(N, F) eps) count as
    zero. The thin SVD Xc = U S V^T (X~ = U diag(s / sqrt(alpha + (1 - alpha) s^2 / N)) V^T, kept as
    Z = U diag(...), N x rank, ``cca``'s rank rule) is used for F > N, for alpha = 0 (pseudo-inverse), and
    when alpha N is so small next to that rounding that the Gram could not resolve the result to ~1e-8.
    """
    alpha = float(params["alpha"])
    xc = _centered(x, "shape")
    n, f = xc.shape
    if alpha == 1.0 and f <= n:
        return Whitened(xc, None, float(np.vdot(xc, xc)), f)
    if alpha > 0.0 and f <= n:
        lam, v = np.linalg.eigh(xc.T @ xc)
        tol = float(lam[-1]) * max(n, f) * _EPS
        if alpha * n >= 1e8 * tol:
            keep = lam > tol
            g = np.where(keep, 1.0 / np.sqrt(alpha + (1.0 - alpha) * np.clip(lam, 0.0, None) / n), 0.0)
            return Whitened(xc, (v * g) @ v.T, float(np.sum(np.where(keep, lam, 0.0) * g * g)), f)
    u, s = _reduced(xc)
    gain = s / np.sqrt(alpha + (1.0 - alpha) * s * s / n)
    return Whitened(u * gain, None, float(np.sum(gain * gain)), f)


def _whiten_permute(prep: Whitened, perm: np.ndarray, params: Mapping[str, Any]) -> Whitened:
    return Whitened(prep.z[perm], prep.w, prep.fro2, prep.features)


def _cross(a: Whitened, b: Whitened) -> np.ndarray:
    """X~_a^T X~_b (up to the orthonormal right factors, which change no singular value)."""
    m = a.z.T @ b.z
    if a.w is not None:
        m = a.w.T @ m
    if b.w is not None:
        m = m @ b.w
    return m


def _aligned_residual(a: Whitened, b: Whitened, m: np.ndarray, scale_a: float, scale_b: float) -> float:
    """min_R ||X~_a / scale_a - X~_b R / scale_b||_F over square orthogonal R (zero-padded)."""
    width = max(m.shape)
    u, _, vt = np.linalg.svd(_pad_to(_pad_to(m, width).T, width).T)  # m = U S V^T, R = V U^T
    xa = _pad_to(a.explicit(), width) / scale_a
    xb = _pad_to(b.explicit(), width) / scale_b
    return float(np.linalg.norm(xa - xb @ (vt.T @ u.T)))


def _shape_pair(a: Whitened, b: Whitened, params: Mapping[str, Any]) -> MetricResult:
    m = _cross(a, b)
    nuc = float(np.linalg.svd(m, compute_uv=False).sum())
    n = a.z.shape[0]
    if params["form"] == "angular":
        c = nuc / np.sqrt(a.fro2 * b.fro2)
        if 2.0 - 2.0 * c > _NEAR * 2.0:
            value = float(np.arccos(min(c, 1.0)))
        else:
            d = _aligned_residual(a, b, m, np.sqrt(a.fro2), np.sqrt(b.fro2))
            value = 2.0 * float(np.arcsin(min(d / 2.0, 1.0)))
    else:
        d2 = a.fro2 + b.fro2 - 2.0 * nuc
        if d2 > _NEAR * (a.fro2 + b.fro2):
            value = float(np.sqrt(d2 / n))
        else:
            value = _aligned_residual(a, b, m, 1.0, 1.0) / np.sqrt(n)
    warnings = []
    if params["alpha"] == 0.0 and max(a.features, b.features) >= n - 1:
        warnings.append(
            f"shape:alpha=0 is meaningless here: a side has F={max(a.features, b.features)} >= N-1={n - 1} features, "
            "so whitening maps every full-rank layer to the same shape (as for cca)"
        )
    return MetricResult(value, {"nuclear_norm": nuc}, warnings)


def shape_distance(x: np.ndarray, y: np.ndarray, alpha: float = 1.0, form: str = "angular") -> float:
    """Generalized shape metric (Williams, Kunz, Kornblith & Linderman, NeurIPS 2021).

    X~ = Xc (alpha I + (1 - alpha) Xc^T Xc / N)^(-1/2) (pseudo-inverse square root), zero-padded;
    angular = arccos(||X~^T Y~||_* / (||X~||_F ||Y~||_F)),
    euclidean = sqrt(max(0, ||X~||_F^2 + ||Y~||_F^2 - 2 ||X~^T Y~||_*) / N).
    alpha = 1: Procrustes on centred data; alpha = 0: the CCA-based metric.
    """
    return SHAPE.bind(alpha=alpha, form=form).value_of(x, y)


def _shape_invariances(p: Mapping[str, Any]) -> frozenset[str]:
    if p["alpha"] == 0.0:
        return frozenset({"invertible_linear", "isotropic_scaling"})
    if p["alpha"] == 1.0 and p["form"] == "angular":
        return frozenset({"isotropic_scaling"})
    return frozenset()


SHAPE = register(
    Metric(
        name="shape",
        summary="generalized shape metric: distance after partial whitening and the best rotation (a true metric)",
        params=(
            Param(
                "alpha", float, 1.0,
                "partial whitening: 1 = none (Procrustes on centred data), 0 = full whitening (CCA-based)",
                minimum=0.0, maximum=1.0,
            ),
            Param(
                "form", str, "angular",
                "angular: arccos of the aligned correlation, in [0, pi/2]; euclidean: aligned residual / sqrt(N)",
                ("angular", "euclidean"),
            ),
        ),
        higher_is_similar=False,
        symmetric=True,
        invariances=frozenset({"orthogonal", "permutation", "translation"}),
        extra_invariances=_shape_invariances,
        doc_variants=({"alpha": 0.5}, {"alpha": 0.0}),
        min_n=2,
        formula=(
            "X~ = Xc (a I + (1-a) Xc^T Xc/N)^(-1/2) (zero-padded); angular = arccos(||X~^T Y~||_* / (||X~||_F ||Y~||_F)); "
            "euclidean = sqrt(max(0, ||X~||_F^2 + ||Y~||_F^2 - 2 ||X~^T Y~||_*) / N)"
        ),
        reference="Williams, Kunz, Kornblith & Linderman, Generalized shape metrics on neural representations, NeurIPS 2021",
        prepare=_whiten_prepare,
        pair=_shape_pair,
        permute=_whiten_permute,
        help=(
            "A distance (0 = same shape) satisfying the triangle inequality. Invariant to rotations, neuron "
            "permutations and translation for every alpha; also to isotropic scaling with alpha=0, or with "
            "alpha=1 and form=angular; alpha=0 adds every invertible linear map (meaningless when F >= N-1). "
            "netrep's LinearMetric interpolates the whitening matrix's eigenvalues instead "
            "(alpha + (1-alpha) lambda^-1/2, rescaled to keep the variance) and its euclidean form has no 1/sqrt(N); "
            "both agree with this definition at alpha=0 and alpha=1 (angular)."
        ),
        value_range=(0.0, float(np.pi / 2)),
        value_range_for=lambda p: (0.0, float(np.pi / 2)) if p["form"] == "angular" else (0.0, float("inf")),
    )
)

# ---------------------------------------------------------------------------- procrustes:align=permutation


def permutation_terms(za: np.ndarray, zb: np.ndarray) -> tuple[float, float, float]:
    """(sim, dist, angle) for normalized centred sides X^, Y^ (N x F_A, N x F_B, not reduced).

    The best column permutation P of the zero-padded Y^ (Hungarian algorithm: scipy's
    ``linear_sum_assignment`` on X^^T Y^, maximizing): sim = <X^, Y^ P> (the matched inner products),
    dist = ||X^ - Y^ P||_F and angle = arccos(sim) = 2 atan2(||X^ - Y^ P||, ||X^ + Y^ P||), both from the
    columns themselves, so they keep their digits near 0 and near the maximum (no cancellation).
    Unmatched columns of the wider side face zero padding and count with their full norm.
    """
    m = za.T @ zb
    from scipy.optimize import linear_sum_assignment  # imported here: scipy.optimize costs ~0.4 s at start-up

    rows, cols = linear_sum_assignment(m, maximize=True)
    sim = float(m[rows, cols].sum())
    # rows come back sorted: with F_A <= F_B every column of X^ is matched and needs no gather
    xa = za if len(rows) == za.shape[1] else za[:, rows]
    minus2 = float(np.sum((xa - zb[:, cols]) ** 2)) + _unmatched(za, rows) + _unmatched(zb, cols)
    # ||X^ + Y^ P||^2 = 4 - ||X^ - Y^ P||^2 for unit-norm sides: explicit only where that cancels
    plus2 = 4.0 - minus2
    if minus2 > 2.0:
        plus2 = float(np.sum((xa + zb[:, cols]) ** 2)) + _unmatched(za, rows) + _unmatched(zb, cols)
    dist = float(np.sqrt(minus2))
    return min(max(sim, -1.0), 1.0), dist, 2.0 * float(np.arctan2(dist, np.sqrt(max(plus2, 0.0))))


def _unmatched(z: np.ndarray, used: np.ndarray) -> float:
    """Squared norm of the columns the matching left unused (they face zero padding)."""
    if len(used) == z.shape[1]:
        return 0.0
    return float(np.sum(z[:, np.setdiff1d(np.arange(z.shape[1]), used)] ** 2))


def permutation_pair(za: np.ndarray, zb: np.ndarray, stat: str) -> MetricResult:
    """``procrustes:align=permutation`` for one pair (ReSi's PermutationProcrustes, netrep's PermutationMetric)."""
    sim, dist, angle = permutation_terms(za, zb)
    value = {"similarity": sim, "distance": dist, "angle": angle}[stat]
    return MetricResult(value, {"matched_inner_product": sim} if stat != "similarity" else {})


# ---------------------------------------------------------------------------- aligned cosine


@dataclass
class Rows:
    """Rows of one side (Z with Z Z^T = X X^T: the data, or U S of its thin SVD when F > N) and their norms."""

    z: np.ndarray
    norms: np.ndarray
    zero: np.ndarray  # rows treated as zero


def _rows_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Rows:
    if np.ndim(x) != 2:
        raise ValueError(f"expected a 2-D N x F array, got shape {np.shape(x)}")
    if params["center"]:  # x / s with s an exact power of two (no overflow at 1e300, no underflow at 1e-300)
        centered = scaled_center(x)
        xc, raw_scale = centered.xc, (float(np.max(np.abs(x))) if x.size else 0.0) / centered.scale
    else:
        xc = prescaled(x, False)
        raw_scale = float(np.max(np.abs(xc))) if xc.size else 0.0
    n, f = xc.shape
    norms = np.sqrt(np.einsum("ij,ij->i", xc, xc))
    zero = norms <= 16.0 * _EPS * raw_scale * np.sqrt(f)
    if zero.all():
        where = " after centering" if params["center"] else ""
        raise RepsimError(f"aligned_cosine: every row of a {n} x {f} layer is zero{where}; cosines are undefined")
    if f > n:
        u, s = _reduced(xc)
        xc = u * s
    return Rows(xc, norms, zero)


def _rows_permute(prep: Rows, perm: np.ndarray, params: Mapping[str, Any]) -> Rows:
    return Rows(prep.z[perm], prep.norms[perm], prep.zero[perm])


def _aligned_cosine_pair(a: Rows, b: Rows, params: Mapping[str, Any]) -> MetricResult:
    width = max(a.z.shape[1], b.z.shape[1])
    m = _pad_to(_pad_to(a.z.T @ b.z, width).T, width).T  # X^T Y, zero-padded to width x width
    u, _, vt = np.linalg.svd(m)
    q = (u @ vt)[: a.z.shape[1], : b.z.shape[1]]  # argmin_Q ||X Q - Y||_F, the columns Y sees
    dots = np.einsum("ij,ij->i", a.z @ q, b.z)
    keep = ~(a.zero | b.zero)
    n, left = len(keep), int(np.count_nonzero(~keep))
    if left == n:
        raise RepsimError("aligned_cosine: every input has a zero row on one side or the other; cosines are undefined")
    value = float(np.mean(dots[keep] / (a.norms[keep] * b.norms[keep])))
    warnings = []
    if left:
        warnings.append(f"aligned_cosine: {left} of {n} inputs have a zero row on one side; they were left out of the mean")
    return MetricResult(value, {"rows_used": n - left}, warnings)


def aligned_cosine(x: np.ndarray, y: np.ndarray, center: bool = True) -> float:
    """Mean cosine between corresponding rows after the best rotation (Hamilton, Leskovec & Jurafsky 2016).

    Q = argmin_{Q orthogonal} ||X Q - Y||_F (zero-padded; Q = U V^T from X^T Y = U S V^T), value =
    mean_i cos(x_i Q, y_i) over inputs whose rows are nonzero on both sides (the others are left out
    with a warning). ``center=False`` uses the raw rows, as ReSi's AlignedCosineSimilarity does.
    """
    return ALIGNED_COSINE.bind(center=center).value_of(x, y)


ALIGNED_COSINE = register(
    Metric(
        name="aligned_cosine",
        summary="mean cosine between corresponding rows after the best orthogonal alignment",
        params=(
            Param(
                "center", bool, True,
                "centre the columns first (default); false uses the raw rows, as ReSi's AlignedCosineSimilarity",
                (True, False),
            ),
        ),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation"}),
        extra_invariances=lambda p: frozenset({"translation"}) if p["center"] else frozenset(),
        min_n=2,
        formula="Q = argmin_Q ||X Q - Y||_F (Q orthogonal, zero-padded); mean_i <x_i Q, y_i> / (||x_i|| ||y_i||)",
        reference="Hamilton, Leskovec & Jurafsky, Diachronic word embeddings reveal statistical laws of semantic change, ACL 2016",
        prepare=_rows_prepare,
        pair=_aligned_cosine_pair,
        permute=_rows_permute,
        help=(
            "Inputs whose row is zero on either side are left out with a warning; all-zero is an error. "
            "center=false reproduces ReSi (raw rows). Not invariant to translation without centring."
        ),
        value_range=(-1.0, 1.0),
    )
)

# ---------------------------------------------------------------------------- soft matching


@dataclass
class Columns:
    """X^ = Xc / ||Xc||_F (N x F, the neuron tuning vectors) and its squared column norms."""

    xh: np.ndarray
    sq: np.ndarray


def _columns_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Columns:
    xc = _centered(x, "soft_match")
    xc /= np.linalg.norm(xc)
    return Columns(xc, np.einsum("ij,ij->j", xc, xc))


def _columns_permute(prep: Columns, perm: np.ndarray, params: Mapping[str, Any]) -> Columns:
    return Columns(prep.xh[perm], prep.sq)


def _ot_plan(cost: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Exact optimal transport plan between uniform marginals (POT's network simplex, ``ot.emd``)."""
    try:
        import ot
    except ImportError:
        raise RepsimError("soft_match needs the POT optimal-transport solver: pip install 'repsim-cli[catalog]'") from None
    fa, fb = cost.shape
    a, b = np.full(fa, 1.0 / fa), np.full(fb, 1.0 / fb)
    plan, log = ot.emd(a, b, np.ascontiguousarray(cost), numItermax=max(100_000, 50 * fa * fb), log=True)
    notes = [] if log.get("warning") is None else [f"soft_match: the OT solver reports: {log['warning']}"]
    return plan, notes


def _soft_match_pair(a: Columns, b: Columns, params: Mapping[str, Any]) -> MetricResult:
    cost = a.sq[:, None] + b.sq[None, :] - 2.0 * (a.xh.T @ b.xh)
    plan, notes = _ot_plan(np.clip(cost, 0.0, None))
    rows, cols = np.nonzero(plan > 0)
    # the optimal cost on the plan's support (<= F_A + F_B - 1 pairs), from the columns themselves:
    # exact for identical inputs, where the expanded cost above rounds to +-1e-17
    sq = np.einsum("ij,ij->j", a.xh[:, rows] - b.xh[:, cols], a.xh[:, rows] - b.xh[:, cols])
    value = float(np.sqrt(max(float(plan[rows, cols] @ sq), 0.0)))
    return MetricResult(value, {"plan_support": int(len(rows))}, notes)


def soft_match_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Soft matching distance (Khosla & Williams 2023): optimal transport between the neurons.

    X^ = Xc / ||Xc||_F; with the columns x^_i, y^_j as points, uniform masses 1/F_A and 1/F_B and
    squared Euclidean cost, value = sqrt(min_P sum_ij P_ij ||x^_i - y^_j||^2) (exact, POT's ``ot.emd``).
    With F_A = F_B = F an optimal plan is a permutation / F, so the value equals
    ``procrustes:align=permutation,stat=distance`` divided by sqrt(F).
    """
    return SOFT_MATCH.bind().value_of(x, y)


SOFT_MATCH = register(
    Metric(
        name="soft_match",
        summary="optimal-transport distance between the two sets of neurons (soft permutation matching)",
        params=(),
        higher_is_similar=False,
        symmetric=True,
        invariances=frozenset({"isotropic_scaling", "permutation", "translation"}),
        min_n=2,
        formula="X^ = Xc/||Xc||_F; sqrt(min_{P in U(1/F_A, 1/F_B)} sum_ij P_ij ||x^_i - y^_j||^2) over columns",
        reference="Khosla & Williams, Soft matching distance: a metric on neural representations that captures single-neuron tuning, UniReps 2023",
        prepare=_columns_prepare,
        pair=_soft_match_pair,
        permute=_columns_permute,
        help=(
            "Needs the optional POT solver (pip install 'repsim-cli[catalog]'). With F_A = F_B = F it equals "
            "procrustes:align=permutation,stat=distance / sqrt(F). Values scale like 1/sqrt(F); at most "
            "1/sqrt(F_A) + 1/sqrt(F_B). Exact OT costs about F^3; fine up to F of a few thousand."
        ),
        value_range=(0.0, 2.0),
    )
)
