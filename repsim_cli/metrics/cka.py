"""Centered kernel alignment (Kornblith et al., ICML 2019) and HSIC.

Linear CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) on column-centered data. It is
computed in feature space (F x F products) when N > F and from N x N Gram matrices otherwise:
the same number either way. The debiased variant replaces HSIC by the unbiased estimator of
Song et al. (2012), again in feature space when N > F (Kornblith's
``_debiased_dot_product_similarity_helper``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import center
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register


@dataclass
class LinearState:
    """Per-side work for linear CKA/HSIC, invariant under row permutations except ``xc``/``gram``/``sq``."""

    xc: np.ndarray  # centered data, N x F
    gram: np.ndarray | None  # centered Gram Xc Xc^T (N x N), only when F > N
    sq: np.ndarray  # squared row norms of xc (= diag of the Gram), N
    self_dot: float  # ||Xc^T Xc||_F^2 = tr(K K)
    trace: float  # tr(K) = ||Xc||_F^2

    @property
    def n(self) -> int:
        return self.xc.shape[0]


def prepare_linear(x: np.ndarray) -> LinearState:
    """Center ``x`` and precompute what every pair needs (F x F, or N x N when F > N)."""
    xc = center(x)
    n, f = xc.shape
    sq = np.einsum("ij,ij->i", xc, xc)
    if f > n:
        gram = xc @ xc.T
        self_dot = float(np.vdot(gram, gram))
    else:
        gram = None
        cov = xc.T @ xc
        self_dot = float(np.vdot(cov, cov))
    return LinearState(xc, gram, sq, self_dot, float(sq.sum()))


def permute_linear(state: LinearState, perm: np.ndarray) -> LinearState:
    """State of ``x[perm]``: only row-indexed parts move, the self terms are unchanged."""
    gram = None if state.gram is None else state.gram[np.ix_(perm, perm)]
    return LinearState(state.xc[perm], gram, state.sq[perm], state.self_dot, state.trace)


def cross_dot(a: LinearState, b: LinearState) -> float:
    """||Xc^T Yc||_F^2 = tr(K L): one F_A x F_B product, or an N x N inner product of Grams."""
    if a.gram is not None and b.gram is not None:
        return float(np.vdot(a.gram, b.gram))
    if a.gram is not None:  # F_A > N >= F_B: tr(K Yc Yc^T) costs N^2 F_B instead of N F_A F_B
        return float(np.vdot(a.gram @ b.xc, b.xc))
    if b.gram is not None:
        return float(np.vdot(b.gram @ a.xc, a.xc))
    c = a.xc.T @ b.xc
    return float(np.vdot(c, c))


def _unbiased_scaled(dot: float, sq_a: np.ndarray, sq_b: np.ndarray, tr_a: float, tr_b: float, n: int) -> float:
    """n(n-3) * HSIC_u for linear kernels on centered data (Song et al. 2012).

    With K~ the Gram with zeroed diagonal: tr(K~L~) = dot - sq_a.sq_b, 1^T K~ 1 = -tr K and
    1^T K~ L~ 1 = sq_a.sq_b (because Xc^T 1 = 0), so
    n(n-3) HSIC_u = dot - n/(n-2) sq_a.sq_b + tr K tr L / ((n-1)(n-2)).
    """
    return dot - n / (n - 2.0) * float(sq_a @ sq_b) + tr_a * tr_b / ((n - 1.0) * (n - 2.0))


def linear_hsic_terms(a: LinearState, b: LinearState, debiased: bool) -> tuple[float, float, float]:
    """(cross, self_a, self_b) HSIC numerators, all scaled by the same constant."""
    dot = cross_dot(a, b)
    if not debiased:
        return dot, a.self_dot, b.self_dot
    n = a.n
    return (
        _unbiased_scaled(dot, a.sq, b.sq, a.trace, b.trace, n),
        _unbiased_scaled(a.self_dot, a.sq, a.sq, a.trace, a.trace, n),
        _unbiased_scaled(b.self_dot, b.sq, b.sq, b.trace, b.trace, n),
    )


def _ratio(cross: float, self_a: float, self_b: float, debiased: bool) -> float:
    if self_a <= 0 or self_b <= 0:
        which = "A" if self_a <= 0 else "B"
        if not debiased:
            raise RepsimError(f"CKA is undefined: side {which} has rank 0 (every column is constant)")
        raise RepsimError(
            f"debiased CKA is undefined: the unbiased self-HSIC of side {which} is {min(self_a, self_b):.3g} <= 0 "
            "(too few inputs or a rank-0 layer); use cka without debiased=true"
        )
    return cross / np.sqrt(self_a) / np.sqrt(self_b)


def linear_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F).

    Kornblith, Norouzi, Lee & Hinton, "Similarity of Neural Network Representations
    Revisited", ICML 2019. ``debiased=True`` uses the unbiased HSIC estimator (Song et al.
    2012); it needs N >= 4 and can be negative.
    """
    return CKA.bind(debiased=debiased).compute(x, y).value


def _check_n(n: int, debiased: bool) -> None:
    if debiased and n < 4:
        raise RepsimError(f"debiased CKA/HSIC needs N >= 4 inputs, got N={n}")


def _cka_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Any:
    _check_n(x.shape[0], params["debiased"])
    if params["kernel"] == "linear":
        return prepare_linear(x)
    raise RepsimError("cka:kernel=rbf is not implemented yet")


def _cka_permute(prep: Any, perm: np.ndarray, params: Mapping[str, Any]) -> Any:
    return permute_linear(prep, perm)


def _cka_pair(a: Any, b: Any, params: Mapping[str, Any]) -> MetricResult:
    debiased = params["debiased"]
    cross, self_a, self_b = linear_hsic_terms(a, b, debiased)
    return MetricResult(float(_ratio(cross, self_a, self_b, debiased)))


KERNEL_PARAMS = (
    Param("kernel", str, "linear", "linear or rbf (Gaussian, N x N)", ("linear", "rbf")),
    Param("sigma", float, 0.4, "RBF bandwidth as a fraction of the median distance", minimum=0.0, exclusive_minimum=True),
    Param(
        "median",
        str,
        "all",
        "all: sigma^2 = sigma^2 * median of all N^2 squared distances incl. the zero diagonal (Kornblith's code); "
        "pairs: sigma * median of the N(N-1)/2 distances",
        ("all", "pairs"),
    ),
    Param("debiased", bool, False, "unbiased HSIC estimator (Song et al. 2012); needs N >= 4; may be negative", (True, False)),
)

CKA = register(
    Metric(
        name="cka",
        summary="centered kernel alignment (linear or RBF, optionally debiased)",
        params=KERNEL_PARAMS,
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation", "translation"}),
        min_n=lambda p: 4 if p["debiased"] else 2,
        formula="HSIC(K,L) / sqrt(HSIC(K,K) HSIC(L,L)); linear: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)",
        reference="Kornblith et al., Similarity of Neural Network Representations Revisited, ICML 2019",
        prepare=_cka_prepare,
        pair=_cka_pair,
        permute=_cka_permute,
        gram=lambda p: p["kernel"] == "rbf",
        help=(
            "Linear CKA never builds an N x N matrix when N > F (F x F products instead). "
            "Debiased CKA can be slightly negative for unrelated representations."
        ),
        value_range=(0.0, 1.0),
    )
)
