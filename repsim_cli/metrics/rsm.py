"""Measures built on the inputs' similarity structure: distance correlation, RSM norm difference,
eigenspace overlap and GULP.

- ``dcor``: distance correlation (Szekely, Rizzo & Bakirov 2007) of the two Euclidean distance
  matrices, or its bias-corrected square (Szekely & Rizzo 2014). N x N by nature.
- ``rsm_diff``: ||S_X - S_Y|| of the two N x N representational similarity matrices (ReSi's
  ``RSMNormDifference``). The linear RSM is done in feature space (no N x N).
- ``eos``: eigenspace overlap score (May et al. 2019) = ||U_X^T U_Y||_F^2 / max(F_A, F_B).
- ``gulp``: distance between the ridge-regression predictors of the two representations
  (Boix-Adsera et al. 2022), in feature space.

Two of them end in a difference of large terms (||XX^T||^2 + ||YY^T||^2 - 2 ||X^T Y||^2 and GULP's
T1 + T2 - 2 T3): when the difference is small next to the terms, it is recomputed without
cancellation from one thin QR of [A, B] (see :func:`psd_difference`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import as_float64, center, prescaled, rank_tolerance, scaled_center
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register

#: below this fraction of (T1 + T2), a difference T1 + T2 - 2 T3 is recomputed without cancellation
_CANCELLATION = 1e-3


def psd_difference(a: np.ndarray, b: np.ndarray, norm: str = "fro") -> float:
    """||A A^T - B B^T|| (Frobenius or spectral) without forming N x N matrices or cancelling.

    With [A, B] = Q R (thin QR, Q orthonormal), A A^T - B B^T = Q (R_A R_A^T - R_B R_B^T) Q^T, whose
    norms are those of the small (F_A + F_B)-sized middle matrix (spectral: its largest |eigenvalue|).
    """
    if np.array_equal(a, b):
        return 0.0
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise RepsimError("rsm_diff: the similarity matrices overflow float64 at this magnitude of activations")
    r = np.asarray(np.linalg.qr(np.concatenate([a, b], axis=1), mode="r"))
    ra, rb = r[:, : a.shape[1]], r[:, a.shape[1] :]
    m = ra @ ra.T - rb @ rb.T
    if norm == "fro":
        return float(np.linalg.norm(m))
    return float(np.abs(np.linalg.eigvalsh(m)).max(initial=0.0))


def spectral_norm_symmetric(m: np.ndarray, dense_below: int = 1500) -> float:
    """Largest |eigenvalue| of a symmetric matrix = its spectral norm (= numpy.linalg.norm(m, 2)).

    Dense ``eigvalsh`` for small matrices; Lanczos (``scipy.sparse.linalg.eigsh``, k=1, tol=0, i.e.
    to machine precision) above ``dense_below`` rows, O(N^2) per iteration instead of O(N^3).
    """
    n = m.shape[0]
    if n == 0:
        return 0.0
    if not np.isfinite(m).all():
        raise RepsimError("rsm_diff: the similarity matrices overflow float64 at this magnitude of activations")
    if n < dense_below:
        return float(np.abs(np.linalg.eigvalsh(m)).max())
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    v0 = np.random.default_rng(0).standard_normal(n)  # fixed start vector: deterministic result
    try:
        vals = eigsh(m, k=1, which="LM", tol=0.0, v0=v0, return_eigenvectors=False)
    except ArpackNoConvergence:  # pathological spectra: pay for the dense route rather than guess
        return float(np.abs(np.linalg.eigvalsh(m)).max())
    return float(np.abs(vals).max())


# ---------------------------------------------------------------------------- dcor


@dataclass
class DistanceState:
    """Double-centred (biased) or U-centred (unbiased) Euclidean distance matrix and its self term."""

    k: np.ndarray
    self_dot: float


def _block_rows(n: int, budget: int = 2**21) -> int:
    """Rows per block so that a block of an N x N matrix holds ~``budget`` doubles (16 MiB)."""
    return max(1, min(n, budget // max(n, 1)))


def euclidean_distances(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N x N Euclidean distances between rows (exactly symmetric, zero diagonal), and their row sums.

    Computed on column-centred float64 data (distances are translation invariant; centring keeps
    their digits), by row blocks of the upper triangle: block i gets one GEMM against the rows >= its
    start (half the flops of a full product), the element-wise steps (d^2 = |x_i|^2 + |x_j|^2 - 2 x_i.x_j,
    clipped at 0, square root) run while the block is in cache, and the block is mirrored below.
    """
    z = center(x)
    n = z.shape[0]
    sq = np.einsum("ij,ij->i", z, z)
    d = np.empty((n, n))
    sums = np.zeros(n)
    block = _block_rows(n)
    for start in range(0, n, block):
        stop = min(n, start + block)
        b = stop - start
        blk = z[start:stop] @ z[start:].T
        blk *= -2.0
        blk += sq[start:stop, None]
        blk += sq[None, start:]
        np.maximum(blk, 0.0, out=blk)
        np.sqrt(blk, out=blk)
        tile = np.triu(blk[:, :b], 1)
        blk[:, :b] = tile + tile.T  # the diagonal tile: exactly symmetric, zero diagonal
        d[start:stop, start:] = blk
        d[stop:, start:stop] = blk[:, b:].T
        sums[start:stop] += blk.sum(axis=1)
        sums[stop:] += blk[:, b:].sum(axis=0)
    return d, sums


def centre_distances(d: np.ndarray, sums: np.ndarray, unbiased: bool) -> float:
    """Double-centre (A_ij = d_ij - r_i/n - r_j/n + S/n^2) or U-centre (Szekely & Rizzo 2014: zero
    diagonal, d_ij - r_i/(n-2) - r_j/(n-2) + S/((n-1)(n-2))) in place, by row blocks; returns <A, A>."""
    n = d.shape[0]
    c, c2 = (n - 2.0, n - 1.0) if unbiased else (float(n), float(n))
    m = sums / c - sums.sum() / (2.0 * c * c2)  # A_ij = d_ij - m_i - m_j
    self_dot = 0.0
    block = _block_rows(n)
    for start in range(0, n, block):
        stop = min(n, start + block)
        blk = d[start:stop]
        blk -= m[start:stop, None]
        blk -= m[None, :]
        if unbiased:
            rows = np.arange(stop - start)
            blk[rows, start + rows] = 0.0
        self_dot += float(np.vdot(blk, blk))
    return self_dot


def _dcor_prepare(x: np.ndarray, params: Mapping[str, Any]) -> DistanceState:
    n = x.shape[0]
    if n < (4 if params["unbiased"] else 2):
        raise RepsimError(f"dcor{':unbiased=true' if params['unbiased'] else ''} needs N >= {4 if params['unbiased'] else 2} inputs, got N={n}")
    d, sums = euclidean_distances(prescaled(x))  # x / s (exact power of two): dcor ignores scale, no overflow
    self_dot = centre_distances(d, sums, params["unbiased"])
    return DistanceState(d, self_dot)


def _dcor_permute(prep: DistanceState, perm: np.ndarray, params: Mapping[str, Any]) -> DistanceState:
    return DistanceState(prep.k[np.ix_(perm, perm)], prep.self_dot)


def _dcor_pair(a: DistanceState, b: DistanceState, params: Mapping[str, Any]) -> MetricResult:
    if not (a.self_dot > 0.0 and b.self_dot > 0.0):
        side = "A" if not a.self_dot > 0.0 else "B"
        what = "the unbiased distance variance" if params["unbiased"] else "the distance variance"
        raise RepsimError(f"dcor is undefined: {what} of side {side} is <= 0 (all inputs identical, or too few inputs)")
    ratio = float(np.vdot(a.k, b.k)) / np.sqrt(a.self_dot) / np.sqrt(b.self_dot)
    if params["unbiased"]:
        return MetricResult(float(np.clip(ratio, -1.0, 1.0)))
    return MetricResult(float(np.sqrt(min(max(ratio, 0.0), 1.0))))


def distance_correlation(x: np.ndarray, y: np.ndarray, unbiased: bool = False) -> float:
    """Distance correlation between the inputs' arrangements in two representations.

    A_ij = ||x_i - x_j|| double-centred, B likewise, dCov^2(A, B) = mean(A o B) and
    dCor = sqrt(dCov^2(A, B) / sqrt(dCov^2(A, A) dCov^2(B, B))) (Szekely, Rizzo & Bakirov, Ann.
    Statist. 2007). ``unbiased=True``: the bias-corrected dCor^2 of Szekely & Rizzo (J. Multivar.
    Anal. 2014) from U-centred distance matrices -- an estimate of dCor^2 (no square root) that can
    be slightly negative. Builds N x N matrices.
    """
    return DCOR.bind(unbiased=unbiased).value_of(x, y)


DCOR = register(
    Metric(
        name="dcor",
        summary="distance correlation of the two Euclidean distance matrices",
        params=(
            Param(
                "unbiased",
                bool,
                False,
                "false: dCor (V-statistic, = ReSi); true: bias-corrected dCor^2 (U-centred, no square root, may be < 0)",
                (True, False),
            ),
        ),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation", "translation"}),
        min_n=lambda p: 4 if p["unbiased"] else 2,
        formula="A = HDH (D_ij = ||x_i - x_j||), dCov^2(A,B) = mean(A o B); dCor = sqrt(dCov^2(A,B) / sqrt(dCov^2(A,A) dCov^2(B,B)))",
        reference="Szekely, Rizzo & Bakirov, Measuring and testing dependence by correlation of distances, Ann. Statist. 2007; "
        "Szekely & Rizzo, Partial distance correlation with methods for dissimilarities, Ann. Statist. 2014",
        prepare=_dcor_prepare,
        pair=_dcor_pair,
        permute=_dcor_permute,
        gram=True,
        # the U-statistic reads an input drawn twice as dependence; the V-statistic is a plain functional
        distinct_rows=lambda p: p["unbiased"],
        help=(
            "N x N by nature (8*N^2 bytes per side; refused above --max-gram). unbiased=false equals ReSi's "
            "DistanceCorrelation and dcor.distance_correlation; unbiased=true equals dcor.u_distance_correlation_sqr: "
            "it estimates dCor^2 (not dCor) and can be slightly negative for unrelated representations (reported "
            "as is). Distances are translation and rotation invariant and the ratio cancels scale (ReSi's flag "
            "saying dCor is not scale invariant is wrong)."
        ),
        value_range=(0.0, 1.0),
        value_range_for=lambda p: (-1.0, 1.0) if p["unbiased"] else (0.0, 1.0),
    )
)

# ---------------------------------------------------------------------------- rsm_diff


@dataclass
class RSMState:
    """Either the N x N similarity/distance matrix (``s``) or the data of a linear RSM (``x``)."""

    s: np.ndarray | None
    x: np.ndarray | None
    self_dot: float  # ||X^T X||_F^2 = ||X X^T||_F^2 (linear only)


def rsm_matrix(x: np.ndarray, rsm: str, center_columns: bool = True) -> np.ndarray:
    """N x N RSM: Euclidean distances, cosine similarities of rows, or the linear Gram X X^T.

    Cosine: a zero row has similarity 0 with every other row and 1 with itself (as scikit-learn's
    ``pairwise_distances(metric='cosine')``, which ReSi uses).
    """
    if rsm == "euclidean":
        return euclidean_distances(x)[0]
    if rsm == "cosine":  # cosines ignore scale: x / s (exact power of two) neither overflows nor underflows
        z = prescaled(x, center_columns)
    else:
        z = center(x) if center_columns else np.array(as_float64(x), copy=True)
    if rsm == "cosine":
        norms = np.linalg.norm(z, axis=1)
        norms[norms == 0.0] = 1.0
        z /= norms[:, None]
        s = z @ z.T
        np.fill_diagonal(s, 1.0)
        return s
    if rsm == "linear":
        return z @ z.T
    raise RepsimError(f"rsm_diff: rsm must be euclidean, cosine or linear, got {rsm!r}")


def _rsm_prepare(x: np.ndarray, params: Mapping[str, Any]) -> RSMState:
    if params["rsm"] != "linear":
        return RSMState(rsm_matrix(x, params["rsm"], params["center"]), None, 0.0)
    z = center(x) if params["center"] else np.array(as_float64(x), copy=True)
    if params["norm"] == "fro" and z.shape[1] <= z.shape[0]:
        cov = z.T @ z
        return RSMState(None, z, float(np.vdot(cov, cov)))
    return RSMState(None, z, 0.0)


def _rsm_permute(prep: RSMState, perm: np.ndarray, params: Mapping[str, Any]) -> RSMState:
    if prep.s is not None:
        return RSMState(prep.s[np.ix_(perm, perm)], None, 0.0)
    return RSMState(None, prep.x[perm], prep.self_dot)  # type: ignore[index]


def linear_rsm_distance(a: np.ndarray, b: np.ndarray, self_a: float | None = None, self_b: float | None = None) -> float:
    """||A A^T - B B^T||_F in feature space: ||A^T A||^2 + ||B^T B||^2 - 2 ||A^T B||^2 (all F x F).

    Falls back to the cancellation-free :func:`psd_difference` when the difference is below 1e-3 of
    the sum (where the subtraction would lose more than ~1e-13 relative accuracy) or when F > N.
    """
    n = a.shape[0]
    if max(a.shape[1], b.shape[1]) > n:
        return psd_difference(a, b)
    if self_a is None:
        self_a = float(np.sum((a.T @ a) ** 2))
    if self_b is None:
        self_b = float(np.sum((b.T @ b) ** 2))
    c = a.T @ b
    d2 = self_a + self_b - 2.0 * float(np.vdot(c, c))
    if d2 <= _CANCELLATION * (self_a + self_b):
        return psd_difference(a, b)
    return float(np.sqrt(d2))


def _rsm_pair(a: RSMState, b: RSMState, params: Mapping[str, Any]) -> MetricResult:
    if a.s is not None and b.s is not None:
        if params["norm"] == "spectral":
            return MetricResult(spectral_norm_symmetric(a.s - b.s))
        total = 0.0  # Frobenius by row blocks: no N x N temporary
        block = _block_rows(a.s.shape[0])
        for start in range(0, a.s.shape[0], block):
            diff = a.s[start : start + block] - b.s[start : start + block]
            total += float(np.vdot(diff, diff))
        return MetricResult(float(np.sqrt(total)))
    assert a.x is not None and b.x is not None
    if params["norm"] == "spectral":
        return MetricResult(psd_difference(a.x, b.x, "spectral"))
    self_a = a.self_dot if a.self_dot > 0 else None
    self_b = b.self_dot if b.self_dot > 0 else None
    return MetricResult(linear_rsm_distance(a.x, b.x, self_a, self_b))


def rsm_norm_difference(x: np.ndarray, y: np.ndarray, rsm: str = "euclidean", norm: str = "fro", center: bool = True) -> float:
    """||S_X - S_Y|| for the N x N representational similarity matrices of two representations.

    S = Euclidean distances between rows, cosine similarities of rows or the linear Gram X_c X_c^T;
    ``norm='fro'`` (Frobenius, the definition in Klabunde et al.'s survey) or ``'spectral'`` (what
    ReSi's ``RSMNormDifference`` code computes). A distance, not scale invariant except for cosine.
    """
    return RSM_DIFF.bind(rsm=rsm, norm=norm, center=center).value_of(x, y)


def _rsm_invariances(p: Mapping[str, Any]) -> frozenset[str]:
    extra = set()
    if p["rsm"] == "cosine":
        extra.add("isotropic_scaling")
    if p["rsm"] == "euclidean" or p["center"]:
        extra.add("translation")
    return frozenset(extra)


RSM_DIFF = register(
    Metric(
        name="rsm_diff",
        summary="norm of the difference of the two N x N representational similarity matrices (a distance)",
        params=(
            Param("rsm", str, "euclidean", "euclidean distances, cosine similarities of rows, or linear X_c X_c^T", ("euclidean", "cosine", "linear")),
            Param("norm", str, "fro", "fro: Frobenius (the paper); spectral: largest singular value (ReSi's code)", ("fro", "spectral")),
            Param("center", bool, True, "column-centre before cosine/linear RSMs (false: raw rows, as ReSi)", (True, False)),
        ),
        higher_is_similar=False,
        symmetric=True,
        invariances=frozenset({"orthogonal", "permutation"}),
        extra_invariances=_rsm_invariances,
        min_n=2,
        formula="||S_A - S_B||_F (or spectral); S = Euclidean distance, cosine of rows or X_c X_c^T (linear: "
        "||X^T X||^2 + ||Y^T Y||^2 - 2||X^T Y||^2 in feature space)",
        reference="Klabunde, Schumacher, Strohmaier & Lemmerich, Similarity of Neural Network Models: A Survey of "
        "Functional and Representational Measures, ACM Comput. Surv. 2025 (ReSi RSMNormDifference)",
        prepare=_rsm_prepare,
        pair=_rsm_pair,
        permute=_rsm_permute,
        gram=lambda p: p["rsm"] != "linear",
        help=(
            "A distance (0 = same RSM), in the units of the data (cosine: unitless): compare it only between "
            "equally scaled layers. norm=spectral reproduces ReSi's code, which takes np.linalg.norm(S_A - S_B, "
            "ord=2) of the full matrices (the spectral norm, although its comment says the vector 2-norm; the "
            "survey defines the Frobenius norm). rsm=euclidean/cosine build N x N matrices (refused above "
            "--max-gram); the spectral norm of an N x N difference uses Lanczos above N=1500. rsm=linear never "
            "builds N x N: ||X X^T - Y Y^T|| comes from F x F products, or a thin QR of [X, Y] when the "
            "difference is small (no cancellation). ReSi's cosine variant is rsm=cosine,center=false."
        ),
        value_range=(0.0, float("inf")),
    )
)

# ---------------------------------------------------------------------------- eos


@dataclass
class SpanState:
    q: np.ndarray  # N x r orthonormal basis of the column space
    f: int  # number of columns (features)

    @property
    def rank(self) -> int:
        return self.q.shape[1]


def _eos_prepare(x: np.ndarray, params: Mapping[str, Any]) -> SpanState:
    z = prescaled(x, params["center"])  # spans ignore scale: x / s, an exact power of two
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    r = int(np.count_nonzero(s > rank_tolerance(s, z.shape)))
    if r == 0:
        raise RepsimError(f"eos: a {z.shape[0]} x {z.shape[1]} layer has rank 0{' after centering' if params['center'] else ''}")
    return SpanState(np.ascontiguousarray(u[:, :r]), z.shape[1])


def _eos_permute(prep: SpanState, perm: np.ndarray, params: Mapping[str, Any]) -> SpanState:
    return SpanState(prep.q[perm], prep.f)


def _eos_pair(a: SpanState, b: SpanState, params: Mapping[str, Any]) -> MetricResult:
    c = a.q.T @ b.q
    overlap = float(np.vdot(c, c))
    by_rank = params["denominator"] == "rank"
    denom = max(a.rank, b.rank) if by_rank else max(a.f, b.f)
    warnings = []
    if not by_rank and (a.rank < a.f or b.rank < b.f):
        warnings.append(
            f"eos: rank {a.rank} of {a.f} features (A), {b.rank} of {b.f} (B): dividing by max(F_A, F_B) = {denom}, "
            "identical representations score below 1; denominator=rank divides by max(rank_A, rank_B)"
        )
    return MetricResult(min(overlap / denom, 1.0), {"rank_a": a.rank, "rank_b": b.rank}, warnings)


def eigenspace_overlap(x: np.ndarray, y: np.ndarray, center: bool = True, denominator: str = "features") -> float:
    """Eigenspace overlap score ||U_X^T U_Y||_F^2 / max(F_A, F_B).

    U = left singular vectors of the nonzero singular values (numpy ``matrix_rank`` tolerance; thin
    SVD). May, Zhang, Dao & Re, "On the Downstream Performance of Compressed Word Embeddings",
    NeurIPS 2019. ``center=False`` uses the raw rows (ReSi); ``denominator='rank'`` divides by
    max(rank_X, rank_Y) instead.
    """
    return EOS.bind(center=center, denominator=denominator).value_of(x, y)


EOS = register(
    Metric(
        name="eos",
        summary="eigenspace overlap: how much the two column spaces (input-space subspaces) overlap",
        params=(
            Param("center", bool, True, "column-centre first (false: raw rows, as ReSi)", (True, False)),
            Param(
                "denominator",
                str,
                "features",
                "features: max(F_A, F_B) (paper, ReSi); rank: max(rank_A, rank_B), so rank-deficient layers can reach 1",
                ("features", "rank"),
            ),
        ),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "invertible_linear", "permutation"}),
        extra_invariances=lambda p: frozenset({"translation"}) if p["center"] else frozenset(),
        min_n=2,
        formula="||U_A^T U_B||_F^2 / max(F_A, F_B), U = left singular vectors of the nonzero singular values",
        reference="May, Zhang, Dao & Re, On the Downstream Performance of Compressed Word Embeddings, NeurIPS 2019",
        prepare=_eos_prepare,
        pair=_eos_pair,
        permute=_eos_permute,
        help=(
            "Thin SVD per side (rank by numpy's matrix_rank tolerance), one r_A x r_B product per pair, never N x N "
            "(unless F >= N, where the basis itself is N x N). With the default denominator a rank-deficient layer "
            "(dead units, F >= N) cannot reach 1 even against itself (a warning says so). center=false reproduces "
            "ReSi's EigenspaceOverlapScore (raw rows)."
        ),
    )
)

# ---------------------------------------------------------------------------- gulp


@dataclass
class RidgeState:
    """Z = U_r diag(sqrt(w)) with w = e/(e + lambda), e the covariance eigenvalues: H = Z Z^T is the
    ridge hat matrix X (X^T X + N lambda I)^+ X^T of the normalized data, and t = tr(H^2) = sum w^2."""

    z: np.ndarray
    t: float


def _gulp_prepare(x: np.ndarray, params: Mapping[str, Any]) -> RidgeState:
    """lambda = 0: thin SVD, U_r with numpy's rank rule (weights 1). lambda > 0: the eigendecomposition of
    the F x F covariance (N x N Gram when F > N), Z = X V (N (e + lambda))^(-1/2): the weights
    e/(e + lambda) damp exactly the directions an eigensolver resolves poorly, so this is as accurate as
    the SVD and ~3x cheaper."""
    centered = scaled_center(x)  # x / s at extreme magnitudes (exact power of two); normalized below anyway
    xc, norm = centered.xc, centered.norm
    n, f = xc.shape
    if centered.constant or not norm > 0.0:
        raise RepsimError(f"gulp: a {n} x {f} layer is constant after centering (rank 0)")
    xc *= np.sqrt(n) / norm  # ||X||_F^2 = N, the authors' normalization
    lam = params["lambda"]
    if lam == 0:
        u, s, _ = np.linalg.svd(xc, full_matrices=False)
        r = int(np.count_nonzero(s > rank_tolerance(s, xc.shape)))
        return RidgeState(np.ascontiguousarray(u[:, :r]), float(r))
    if f <= n:
        e, v = np.linalg.eigh(xc.T @ xc / n)  # covariance eigenpairs
        e = np.maximum(e, 0.0)
        z = xc @ (v / np.sqrt(n * (e + lam)))
    else:
        e, u = np.linalg.eigh(xc @ xc.T / n)  # same nonzero eigenvalues; u = left singular vectors
        e = np.maximum(e, 0.0)
        z = u * np.sqrt(e / (e + lam))
    w = e / (e + lam)
    return RidgeState(np.ascontiguousarray(z), float(np.sum(w * w)))


def _gulp_permute(prep: RidgeState, perm: np.ndarray, params: Mapping[str, Any]) -> RidgeState:
    return RidgeState(prep.z[perm], prep.t)


def gulp_squared(a: RidgeState, b: RidgeState) -> float:
    """d^2 = T1 + T2 - 2 T3 = ||H_A - H_B||_F^2, T3 = ||Z_A^T Z_B||_F^2 (an r_A x r_B product)."""
    c = a.z.T @ b.z
    d2 = a.t + b.t - 2.0 * float(np.vdot(c, c))
    if d2 <= _CANCELLATION * (a.t + b.t):
        return psd_difference(a.z, b.z) ** 2
    return d2


def _gulp_pair(a: RidgeState, b: RidgeState, params: Mapping[str, Any]) -> MetricResult:
    d2 = max(gulp_squared(a, b), 0.0)
    return MetricResult(d2 if params["squared"] else float(np.sqrt(d2)))


def gulp_distance(x: np.ndarray, y: np.ndarray, lam: float = 0.0, squared: bool = False) -> float:
    """GULP distance between the best (ridge-regularized) linear predictors from two representations.

    Each side centred and scaled to ||X||_F^2 = N; with covariance eigenpairs (e_i, v_i) and
    (Sigma + lam I)^-1 (pseudo-inverse at lam = 0): d^2 = T1 + T2 - 2 T3, T1 = sum (e_i/(e_i + lam))^2,
    T3 = tr(Sigma_A^-lam Sigma_AB Sigma_B^-lam Sigma_BA) -- equivalently ||H_A - H_B||_F^2 for the ridge hat
    matrices H = X (X^T X + N lam I)^+ X^T. Returns sqrt(max(0, d^2)), or d^2 when ``squared``
    (ReSi returns d^2). Boix-Adsera, Lawrence, Stepaniants & Rigollet, "GULP: a prediction-based
    metric between representations", NeurIPS 2022.
    """
    return GULP.bind(**{"lambda": lam, "squared": squared}).value_of(x, y)


GULP = register(
    Metric(
        name="gulp",
        summary="distance between the ridge-regression predictors the two representations support",
        params=(
            Param("lambda", float, 0.0, "ridge penalty on the covariance scale (0: pseudo-inverse, invertible-linear invariant)", minimum=0.0),
            Param("squared", bool, False, "report d^2 (as ReSi's Gulp) instead of d", (True, False)),
        ),
        higher_is_similar=False,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation", "translation"}),
        extra_invariances=lambda p: frozenset({"invertible_linear"}) if p["lambda"] == 0 else frozenset(),
        min_n=2,
        formula="X centred, ||X||_F^2 = N; d^2 = T1 + T2 - 2 T3, T1 = sum (e/(e+lambda))^2, "
        "T3 = tr((S_A+lambda)^-1 S_AB (S_B+lambda)^-1 S_BA) = ||H_A - H_B||_F^2 (ridge hat matrices); value sqrt(d^2)",
        reference="Boix-Adsera, Lawrence, Stepaniants & Rigollet, GULP: a prediction-based metric between representations, NeurIPS 2022",
        prepare=_gulp_prepare,
        pair=_gulp_pair,
        permute=_gulp_permute,
        help=(
            "A distance (0 = same predictors), at most sqrt(rank_A + rank_B). Thin SVD per side, one r_A x r_B "
            "product per pair, never N x N. lambda=0 uses the pseudo-inverse with numpy's matrix_rank tolerance; "
            "the authors' code (and ReSi) invert every covariance eigenvalue > 0, so for rank-deficient layers "
            "(F >= N, duplicated units) they count rounding-noise directions as signal and differ from this. "
            "squared=true gives d^2, what ReSi's Gulp returns."
        ),
        value_range=(0.0, float("inf")),
    )
)
