"""Canonical correlation analysis and its relatives: CCA, SVCCA, PWCCA, linear-regression R^2.

Every index here starts from Q_X, an orthonormal basis (N x r) of the column space of the
column-centered float64 data, with numpy's ``matrix_rank`` rule (singular values >
s_1 * max(N, F) * eps), so dead and duplicated units drop out. The canonical correlations are the
singular values of Q_Y^T Q_X (Bjorck & Golub 1973), min(r_X, r_Y) of them, clipped to [0, 1].

All of these are invariant to invertible linear maps (or nearly so), which makes them
meaningless when a side has F >= N - 1 features: its centered column space is then the whole
(N-1)-dimensional space of centered vectors and every canonical correlation is 1 (Kornblith et al.
2019, Theorem 1). They are computed anyway, with a warning in the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import left_svd, rank_tolerance, scaled_center
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register


@dataclass
class Basis:
    """Per-side state: orthonormal basis of the centered column space and what pairs need."""

    q: np.ndarray  # N x r, orthonormal columns spanning col(Xc)
    s: np.ndarray  # singular values of Xc (all of them, descending)
    proj: np.ndarray | None  # Q^T Xc (r x F): PWCCA weights; invariant under row permutations
    xc: np.ndarray | None  # centered data (lr targets)
    total: float  # ||Xc||_F^2
    features: int

    @property
    def n(self) -> int:
        return self.q.shape[0]

    @property
    def rank(self) -> int:
        return self.q.shape[1]


def _svd_basis(x: np.ndarray, keep_proj: bool = False, keep_xc: bool = False) -> Basis:
    """Center ``x / scale`` in float64 (exact power-of-two rescaling: no overflow at 1e300, no
    underflow at 1e-300), thin SVD, keep the numerically nonzero directions (rank rule).

    When F > N the SVD is of the N x N factor of a thin QR of Xc^T (same U and s, O(N^2 F)),
    so wide layers cost what min(N, F) implies. Singular values are of x / scale.
    """
    centered = scaled_center(x)
    xc = centered.xc
    n, f = xc.shape
    # a constant layer leaves only rounding residue after centering (relative to its own scale)
    if centered.constant:
        raise RepsimError(
            f"a {n} x {f} layer has rank 0 after centering (every column is constant): "
            "canonical correlations are undefined"
        )
    u, s = left_svd(xc)
    # centering removes one direction exactly: rank <= N - 1 even where large offsets leave a rounding
    # residue just above the rank rule's tolerance (float32 data near 1e4 with N <= F)
    r = min(int(np.count_nonzero(s > rank_tolerance(s, xc.shape))), n - 1)
    q = np.ascontiguousarray(u[:, :r])
    proj = q.T @ xc if keep_proj else None  # = S_r V_r^T
    return Basis(q, s, proj, xc if keep_xc else None, float(np.sum(s * s)), f)


def canonical_correlations(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """Singular values of Qa^T Qb (descending), clipped to [0, 1]."""
    rho = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.clip(rho, 0.0, 1.0)


def _degenerate_warnings(n: int, fa: int, fb: int, name: str) -> list[str]:
    if max(fa, fb) >= n - 1:
        return [
            f"{name} is meaningless here: a side has F={max(fa, fb)} >= N-1={n - 1} features, so at full rank its "
            "centered column space is every centered N-vector and every canonical correlation is 1 "
            "(Kornblith et al. 2019, Theorem 1); use cka, reduce F with pool, or use more inputs "
            "(raise max_samples if you subsampled)"
        ]
    return []


def _stat(rho: np.ndarray, stat: str) -> float:
    return float(np.mean(rho * rho)) if stat == "r2" else float(np.mean(rho))


# ---------------------------------------------------------------------------- cca


def _cca_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Basis:
    return _svd_basis(x)


def _permute_basis(prep: Basis, perm: np.ndarray, params: Mapping[str, Any]) -> Basis:
    """State of ``x[perm]``: basis rows (and centered data rows) move; Q^T Xc and spectra do not."""
    return Basis(prep.q[perm], prep.s, prep.proj, None if prep.xc is None else prep.xc[perm], prep.total, prep.features)


def _cca_pair(a: Basis, b: Basis, params: Mapping[str, Any]) -> MetricResult:
    rho = canonical_correlations(a.q, b.q)
    details = {"rank_a": a.rank, "rank_b": b.rank}
    return MetricResult(_stat(rho, params["stat"]), details, _degenerate_warnings(a.n, a.features, b.features, "cca"))


def cca(x: np.ndarray, y: np.ndarray, stat: str = "mean_rho") -> float:
    """Mean canonical correlation (``stat='mean_rho'``) or R^2_CCA = mean rho^2 (``stat='r2'``).

    rho = singular values of Q_Y^T Q_X, Q = orthonormal basis of the centered column space
    (Hotelling 1936; Bjorck & Golub 1973); R^2_CCA as in Kornblith et al. 2019, Table 1.
    """
    return CCA.bind(stat=stat).value_of(x, y)


STAT = Param("stat", str, "mean_rho", "mean_rho: mean canonical correlation; r2: mean squared (R^2_CCA)", ("mean_rho", "r2"))

CCA = register(
    Metric(
        name="cca",
        summary="mean canonical correlation (or R^2_CCA) between the centered column spaces",
        params=(STAT,),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "invertible_linear", "permutation", "translation"}),
        min_n=3,
        formula="rho = svd(Q_Y^T Q_X); mean_rho = mean rho, r2 = mean rho^2 (min(r_X, r_Y) values)",
        reference="Hotelling, Relations between two sets of variates, Biometrika 1936; Kornblith et al., ICML 2019 (R^2_CCA)",
        prepare=_cca_prepare,
        pair=_cca_pair,
        permute=_permute_basis,
        help=(
            "Invariant to any invertible linear map, hence meaningless when F >= N-1 (all rho = 1; "
            "a warning says so). Dead and duplicated units drop out by the matrix_rank rule."
        ),
    )
)

# ---------------------------------------------------------------------------- svcca


def kept_components(s: np.ndarray, rank: int, var: float) -> int:
    """Smallest k with sum_{i<=k} s_i^2 >= var * sum_i s_i^2 (at most the rank)."""
    energy = np.cumsum(s[:rank] ** 2)
    target = var * energy[-1] * (1.0 - 1e-12)  # var=1 keeps every nonzero direction despite rounding
    return int(min(rank, np.searchsorted(energy, target, side="left") + 1))


@dataclass
class Reduced:
    basis: Basis
    k: int


def _svcca_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Reduced:
    b = _svd_basis(x)
    k = kept_components(b.s, b.rank, params["var"])
    return Reduced(Basis(b.q[:, :k].copy(), b.s, None, None, b.total, b.features), k)


def _svcca_permute(prep: Reduced, perm: np.ndarray, params: Mapping[str, Any]) -> Reduced:
    return Reduced(_permute_basis(prep.basis, perm, params), prep.k)


def _svcca_pair(a: Reduced, b: Reduced, params: Mapping[str, Any]) -> MetricResult:
    rho = canonical_correlations(a.basis.q, b.basis.q)
    warnings = _degenerate_warnings(a.basis.n, a.basis.features, b.basis.features, "svcca")
    if max(a.k, b.k) >= a.basis.n - 1:
        warnings.append(f"svcca kept k={max(a.k, b.k)} >= N-1 directions: every canonical correlation is 1")
    return MetricResult(_stat(rho, params["stat"]), {"k_a": a.k, "k_b": b.k}, warnings)


def svcca(x: np.ndarray, y: np.ndarray, var: float = 0.99, stat: str = "mean_rho") -> float:
    """SVCCA (Raghu, Gilmer, Yosinski & Sohl-Dickstein, NeurIPS 2017).

    Keep the top k left singular directions of each centered side, k the smallest with
    sum_{i<=k} s_i^2 >= var * sum s_i^2, then CCA of the reduced sides: rho = svd(U_kY^T U_kX).
    """
    return SVCCA.bind(var=var, stat=stat).value_of(x, y)


SVCCA = register(
    Metric(
        name="svcca",
        summary="CCA after keeping the top singular directions explaining a fraction var of the variance",
        params=(
            Param("var", float, 0.99, "fraction of variance (sum of s_i^2) the kept directions explain", minimum=0.0, maximum=1.0, exclusive_minimum=True),
            STAT,
        ),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation", "translation"}),
        min_n=3,
        formula="k = min{k: sum_{i<=k} s_i^2 >= var sum s_i^2} per side; cca(U_k S_k of X, U_k S_k of Y)",
        reference="Raghu et al., SVCCA, NeurIPS 2017",
        prepare=_svcca_prepare,
        pair=_svcca_pair,
        permute=_svcca_permute,
        help=(
            "The kept k of each side is reported in JSON details (k_a, k_b). Not invariant to invertible "
            "linear maps (they change which directions explain the variance). Meaningless when F >= N-1."
        ),
    )
)

# ---------------------------------------------------------------------------- pwcca


def _pwcca_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Basis:
    return _svd_basis(x, keep_proj=True)


def pwcca_weights(q_side: np.ndarray, u: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """alpha_i = sum_j |<h_i, x_j>|, h_i = Q u_i, over the centered columns x_j (= |U^T Q^T Xc| row sums)."""
    return np.abs(u.T @ proj).sum(axis=1)


def _pwcca_pair(a: Basis, b: Basis, params: Mapping[str, Any]) -> MetricResult:
    first, other = (a, b) if params["weights"] == "a" else (b, a)
    u, rho, _ = np.linalg.svd(first.q.T @ other.q, full_matrices=False)
    rho = np.clip(rho, 0.0, 1.0)
    assert first.proj is not None
    alpha = pwcca_weights(first.q, u, first.proj)
    value, warnings = pwcca_value(alpha, rho, a.n, a.features, b.features)
    return MetricResult(value, {"rank_a": a.rank, "rank_b": b.rank}, warnings)


def pwcca_value(alpha: np.ndarray, rho: np.ndarray, n: int, fa: int, fb: int) -> tuple[float, list[str]]:
    """sum alpha_i rho_i / sum alpha_i, with the degenerate-regime and tied-at-1 caveats (both routes)."""
    value = float(np.dot(alpha, rho) / alpha.sum())
    warnings = _degenerate_warnings(n, fa, fb, "pwcca")
    tied = int(np.count_nonzero(rho > 1.0 - 1e-10))
    if tied >= 2:
        warnings.append(
            f"pwcca: {tied} canonical correlations are tied at 1 (the two sides share a {tied}-dimensional subspace); "
            "within a tied subspace the canonical variates, hence the weights, depend on an arbitrary basis, so the "
            "value is not unique (typically to ~1e-3)"
        )
    return value, warnings


def pwcca(x: np.ndarray, y: np.ndarray, weights: str = "a") -> float:
    """Projection-weighted CCA (Morcos, Raghu & Bengio, NeurIPS 2018), as in Kornblith et al. 2019, Table 1.

    With Q_X^T Q_Y = U diag(rho) V^T, canonical variates h_i = Q_X u_i and weights
    alpha_i = sum_j |<h_i, x_j>| over the centered columns of X: pwcca = sum alpha_i rho_i / sum alpha_i.
    ``weights='b'`` takes the weights from Y instead. Not symmetric.
    """
    return PWCCA.bind(weights=weights).value_of(x, y)


PWCCA = register(
    Metric(
        name="pwcca",
        summary="canonical correlations weighted by how much of one side's activity each variate accounts for",
        params=(Param("weights", str, "a", "side whose centered columns weight the canonical variates: a (first argument) or b", ("a", "b")),),
        higher_is_similar=True,
        symmetric=False,
        invariances=frozenset({"isotropic_scaling", "permutation", "translation"}),
        min_n=3,
        formula="sum_i alpha_i rho_i / sum_i alpha_i, alpha_i = sum_j |<Q_X u_i, x_j>|",
        reference="Morcos et al., Insights on representational similarity in neural networks with canonical correlation, NeurIPS 2018",
        prepare=_pwcca_prepare,
        pair=_pwcca_pair,
        permute=_permute_basis,
        help=(
            "Not symmetric: pwcca(A, B) weights by A's columns (weights=a), pwcca(B, A) by B's. The weights "
            "depend on A's neuron basis, so it is not invariant to rotations of the weighting side. "
            "Meaningless when F >= N-1."
        ),
    )
)

# ---------------------------------------------------------------------------- lr


def _lr_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Basis:
    return _svd_basis(x, keep_xc=True)


def _lr_pair(a: Basis, b: Basis, params: Mapping[str, Any]) -> MetricResult:
    source, target = (a, b) if params["predict"] == "b" else (b, a)
    m = source.q.T @ target.xc
    value = float(np.vdot(m, m) / target.total)
    return MetricResult(min(value, 1.0), {}, _degenerate_warnings(a.n, a.features, b.features, "lr"))


def linear_regression_r2(x: np.ndarray, y: np.ndarray, predict: str = "b") -> float:
    """R^2 of the least-squares fit (with intercept) of one side from the other.

    ``predict='b'``: 1 - min_W ||Yc - Xc W||_F^2 / ||Yc||_F^2 = ||Q_X^T Yc||_F^2 / ||Yc||_F^2.
    ``predict='a'`` fits X from Y: Kornblith et al. 2019's R^2_LR (Table 1).
    """
    return LR.bind(predict=predict).value_of(x, y)


LR = register(
    Metric(
        name="lr",
        summary="linear-regression R^2 (with intercept) of one side predicted from the other",
        params=(Param("predict", str, "b", "side that is predicted: b (fit B from A, default) or a (Kornblith's R^2_LR)", ("a", "b")),),
        higher_is_similar=True,
        symmetric=False,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation", "translation"}),
        min_n=3,
        formula="predict=b: ||Q_A^T B_c||_F^2 / ||B_c||_F^2 = 1 - min_W ||B_c - A_c W||_F^2 / ||B_c||_F^2",
        reference="Kornblith et al., Similarity of Neural Network Representations Revisited, ICML 2019 (R^2_LR)",
        prepare=_lr_prepare,
        pair=_lr_pair,
        permute=_permute_basis,
        help=(
            "Not symmetric. Invariant to invertible linear maps of the predictor side only. "
            "Meaningless when the predictor has F >= N-1 (R^2 = 1)."
        ),
    )
)
