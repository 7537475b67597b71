"""Centered kernel alignment (Kornblith et al., ICML 2019) and HSIC.

Linear CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) on column-centered data. It is
computed in feature space (F x F products) when N > F and from N x N Gram matrices otherwise:
the same number either way. The debiased variant replaces HSIC by the unbiased estimator of
Song et al. (2012), again in feature space when N > F (Kornblith's
``_debiased_dot_product_similarity_helper``).

The RBF kernel K_ij = exp(-||x_i - x_j||^2 / (2 s^2)) builds N x N Gram matrices. Its bandwidth
is relative to the data: ``median=all`` uses s^2 = sigma^2 * median of the N x N matrix of squared
distances including its zero diagonal (Kornblith's published ``gram_rbf``); ``median=pairs`` uses
s = sigma * median of the N(N-1)/2 distances between distinct inputs. Biased HSIC uses the
double-centered Gram H K H, debiased HSIC the U-centered Gram (Szekely & Rizzo 2014), whose inner
product divided by n(n-3) is exactly the unbiased estimator of Song et al. (2012).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import scaled_center
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register


@dataclass
class LinearState:
    """Per-side work for linear CKA/HSIC, invariant under row permutations except ``xc``/``gram``/``sq``."""

    xc: np.ndarray  # centered data, N x F
    gram: np.ndarray | None  # centered Gram Xc Xc^T (N x N), only when F > N
    sq: np.ndarray  # squared row norms of xc (= diag of the Gram), N
    self_dot: float  # ||Xc^T Xc||_F^2 = tr(K K)
    trace: float  # tr(K) = ||Xc||_F^2
    #: the data were divided by this power of two before centering (overflow/underflow safety):
    #: every field above is of x / scale; scale-invariant CKA never needs it, HSIC multiplies it back
    scale: float = 1.0

    @property
    def n(self) -> int:
        return self.xc.shape[0]


def prepare_linear(x: np.ndarray) -> LinearState:
    """Center ``x / scale`` and precompute what every pair needs (F x F, or N x N when F > N).

    A layer that is constant up to rounding (relative to its own magnitude) gets exact zeros,
    so CKA reports rank 0 and HSIC is 0, at any scale (1e-300 as 1e300).
    """
    centered = scaled_center(x)
    xc, scale = centered.xc, centered.scale
    n, f = xc.shape
    if centered.constant:
        xc[:] = 0.0
    sq = np.einsum("ij,ij->i", xc, xc)
    if f > n:
        gram = xc @ xc.T
        self_dot = float(np.vdot(gram, gram))
    else:
        gram = None
        cov = xc.T @ xc
        self_dot = float(np.vdot(cov, cov))
    return LinearState(xc, gram, sq, self_dot, float(sq.sum()), scale)


def permute_linear(state: LinearState, perm: np.ndarray) -> LinearState:
    """State of ``x[perm]``: only row-indexed parts move, the self terms are unchanged."""
    gram = None if state.gram is None else state.gram[np.ix_(perm, perm)]
    return LinearState(state.xc[perm], gram, state.sq[perm], state.self_dot, state.trace, state.scale)


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
    return CKA.bind(debiased=debiased).value_of(x, y)


@dataclass
class GramState:
    """Per-side work for kernel CKA/HSIC in Gram form: the (U-)centered N x N kernel matrix."""

    k: np.ndarray  # H K H (biased) or the U-centered K (debiased), symmetric N x N
    self_dot: float  # <k, k>, the (scaled) self-HSIC
    bandwidth: float  # s, the RBF bandwidth actually used

    @property
    def n(self) -> int:
        return self.k.shape[0]


def squared_distances(xc: np.ndarray) -> np.ndarray:
    """N x N matrix of squared Euclidean distances between rows (exact zeros on the diagonal, >= 0)."""
    sq = np.einsum("ij,ij->i", xc, xc)
    d2 = xc @ xc.T
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def rbf_gram(x: np.ndarray, sigma: float = 0.4, median: str = "all") -> tuple[np.ndarray, float]:
    """Gaussian kernel matrix K_ij = exp(-d_ij^2 / (2 s^2)) and its bandwidth s.

    ``median='all'``: s^2 = sigma^2 * median over all N^2 entries of the squared-distance matrix,
    zero diagonal included (Kornblith et al. 2019, ``gram_rbf(x, threshold=sigma)``).
    ``median='pairs'``: s = sigma * median of the N(N-1)/2 distances d_ij, i < j.
    Distances are computed on column-centered float64 data (they are translation invariant).
    """
    centered = scaled_center(x)  # distances of x / scale: no overflow at 1e300, no underflow at 1e-300
    xc, scale = centered.xc, centered.scale
    n = xc.shape[0]
    d2 = squared_distances(xc)
    if median == "all":
        med2 = float(np.median(d2))
    elif median == "pairs":
        iu = np.triu_indices(n, 1)
        med2 = float(np.median(np.sqrt(d2[iu]))) ** 2
    else:
        raise RepsimError(f"cka/hsic: median must be all or pairs, got {median!r}")
    if not med2 > 0.0:
        raise RepsimError(
            f"RBF kernel undefined for this {xc.shape[0]} x {xc.shape[1]} layer: the median "
            f"{'squared ' if median == 'all' else ''}distance between inputs is 0 (most rows are identical); "
            "use kernel=linear" + (" or median=pairs" if median == "all" else "")
        )
    s2 = sigma * sigma * med2
    if not (s2 > 0.0 and np.isfinite(1.0 / (2.0 * s2)) and np.isfinite(s2)):
        raise RepsimError(
            f"cka/hsic: sigma={sigma:g} makes the RBF bandwidth s^2 = sigma^2 * {med2:.3g} "
            f"{'underflow to 0' if not s2 * 1e300 > 0 or not np.isfinite(1.0 / (2.0 * s2)) else 'overflow'}; "
            "sigma is a fraction of the median distance: use a value such as 0.1 to 2"
        )
    d2 *= -1.0 / (2.0 * s2)
    np.exp(d2, out=d2)
    _check_rbf_informative(d2, sigma)
    return d2, float(np.sqrt(s2)) * scale


def _check_rbf_informative(k: np.ndarray, sigma: float) -> None:
    """An RBF Gram with every off-diagonal entry 0 (sigma far too small) or 1 (far too large) says nothing."""
    n = k.shape[0]
    if n < 2:
        return
    off = k[~np.eye(n, dtype=bool)]
    if not off.any():
        raise RepsimError(
            f"cka/hsic: sigma={sigma:g} is so small that every off-diagonal RBF kernel value underflows to 0 "
            "(the kernel is the identity whatever the data); use a value such as 0.1 to 2"
        )
    if np.all(off == 1.0):
        raise RepsimError(
            f"cka/hsic: sigma={sigma:g} is so large that every RBF kernel value is 1 (the kernel is constant); "
            "use a value such as 0.1 to 2"
        )


def u_center_gram(k: np.ndarray) -> np.ndarray:
    """U-centered Gram (Szekely & Rizzo 2014; Kornblith's ``center_gram(unbiased=True)``), in place.

    K~ = K with zero diagonal; U_ij = K~_ij - r_i/(n-2) - r_j/(n-2) + S/((n-1)(n-2)) off the
    diagonal (r = row sums, S = total), 0 on it. Then <U(K), U(L)> / (n(n-3)) = HSIC_u of Song
    et al. (2012).
    """
    n = k.shape[0]
    np.fill_diagonal(k, 0.0)
    means = k.sum(axis=0) / (n - 2.0)
    means -= means.sum() / (2.0 * (n - 1.0))
    k -= means[:, None]
    k -= means[None, :]
    np.fill_diagonal(k, 0.0)
    return k


def double_center_gram(k: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11^T/n, in place (K symmetric)."""
    means = k.mean(axis=0)
    k -= means[None, :]
    k -= k.mean(axis=1)[:, None]
    return k


def prepare_rbf(x: np.ndarray, sigma: float, median: str, debiased: bool) -> GramState:
    """RBF Gram, centered (biased) or U-centered (debiased), with its self inner product."""
    k, bw = rbf_gram(x, sigma, median)
    k = u_center_gram(k) if debiased else double_center_gram(k)
    return GramState(k, float(np.vdot(k, k)), bw)


def permute_gram(state: GramState, perm: np.ndarray) -> GramState:
    """State of ``x[perm]``: (U-)centering commutes with a simultaneous row/column permutation."""
    return GramState(state.k[np.ix_(perm, perm)], state.self_dot, state.bandwidth)


def _check_n(n: int, debiased: bool) -> None:
    if debiased and n < 4:
        raise RepsimError(f"debiased CKA/HSIC needs N >= 4 inputs, got N={n}")


def _check_adjusted(params: Mapping[str, Any]) -> None:
    if params.get("adjusted") and params["debiased"]:
        raise RepsimError(
            "cka: adjusted=true and debiased=true cannot be combined: the exact chance level covers the biased "
            "estimator only (debiased CKA's null mean is already ~ 0)"
        )


def _kernel_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Any:
    _check_adjusted(params)
    if params.get("minibatch", 0):
        return prepare_minibatch(x, params)
    _check_n(x.shape[0], params["debiased"])
    if params["kernel"] == "linear":
        return prepare_linear(x)
    return prepare_rbf(x, params["sigma"], params["median"], params["debiased"])


def _kernel_permute(prep: Any, perm: np.ndarray, params: Mapping[str, Any]) -> Any:
    if isinstance(prep, MinibatchState):  # the batches change with the row order: re-prepare
        return prepare_minibatch(prep.x[perm], params)
    if isinstance(prep, GramState):
        return permute_gram(prep, perm)
    return permute_linear(prep, perm)


def hsic_terms(a: Any, b: Any, debiased: bool) -> tuple[float, float, float]:
    """(cross, self_a, self_b) HSIC numerators sharing one scale: multiply by :func:`hsic_scale`."""
    if isinstance(a, LinearState) and isinstance(b, LinearState):
        return linear_hsic_terms(a, b, debiased)
    if isinstance(a, GramState) and isinstance(b, GramState):
        return float(np.vdot(a.k, b.k)), a.self_dot, b.self_dot
    raise TypeError("both sides must be prepared with the same kernel")


def hsic_scale(n: int, debiased: bool) -> float:
    """1/(n-1)^2 for biased HSIC = tr(KHLH)/(n-1)^2, 1/(n(n-3)) for HSIC_u."""
    return 1.0 / (n * (n - 3.0)) if debiased else 1.0 / (n - 1.0) ** 2


def centred_trace(state: Any) -> float:
    """tr K~ of a biased prepared side: ||Xc||_F^2 (linear) or the trace of H K H (RBF)."""
    return state.trace if isinstance(state, LinearState) else float(np.trace(state.k))


def cka_chance_mean(a: Any, b: Any) -> float:
    """E0 = tr(K~) tr(L~) / ((n-1) ||K~||_F ||L~||_F): the mean of biased CKA over all n! row
    permutations of one side (Kazi-Aoual et al. 1995; Josse, Pages & Husson 2008)."""
    n = a.n
    return centred_trace(a) * centred_trace(b) / ((n - 1.0) * np.sqrt(a.self_dot) * np.sqrt(b.self_dot))


def adjusted_cka(value: float, e0: float) -> float:
    """(CKA - E0) / (1 - E0): 0 at chance, 1 at identity, like the adjusted Rand index."""
    if not 1.0 - e0 > 1e-12:
        raise RepsimError(
            "adjusted CKA is undefined: every row permutation gives CKA = 1 (both centred kernels are "
            "isotropic, e.g. N <= 2, or F >= N-1 with whitened data)"
        )
    return (value - e0) / (1.0 - e0)


def _cka_pair(a: Any, b: Any, params: Mapping[str, Any]) -> MetricResult:
    if isinstance(a, MinibatchState):
        return minibatch_pair(a, b)
    debiased = params["debiased"]
    _check_adjusted(params)
    cross, self_a, self_b = hsic_terms(a, b, debiased)
    details = {"bandwidth_a": a.bandwidth, "bandwidth_b": b.bandwidth} if isinstance(a, GramState) else {}
    value = float(_ratio(cross, self_a, self_b, debiased))
    if params.get("adjusted"):
        e0 = float(cka_chance_mean(a, b))
        details.update(raw=value, chance_mean=e0)
        value = adjusted_cka(value, e0)
    return MetricResult(value, details)


def _hsic_pair(a: Any, b: Any, params: Mapping[str, Any]) -> MetricResult:
    debiased = params["debiased"]
    cross, _, _ = hsic_terms(a, b, debiased)
    details = {"bandwidth_a": a.bandwidth, "bandwidth_b": b.bandwidth} if isinstance(a, GramState) else {}
    value = cross * hsic_scale(a.n, debiased)
    if isinstance(a, LinearState):  # linear HSIC scales as c^2 d^2: put the prescaling back, last
        with np.errstate(over="ignore"):  # an overflow is reported as a non-finite value by BoundMetric.pair
            value = float(np.ldexp(value, 2 * (int(np.log2(a.scale)) + int(np.log2(b.scale)))))  # exact
    return MetricResult(float(value), details)


# ---------------------------------------------------------------------------- minibatch CKA


@dataclass
class MinibatchState:
    """Per-side work for minibatch CKA: one prepared state (unbiased HSIC) per batch of B rows."""

    x: np.ndarray  # the float64 rows as given, before any shuffle (permutation nulls re-batch them)
    batches: list[Any]  # LinearState or GramState (U-centred) per batch
    rows: int  # B (or N when N < B)
    dropped: int  # N mod B trailing rows not used


def prepare_minibatch(x: np.ndarray, params: Mapping[str, Any]) -> MinibatchState:
    """Split the rows into consecutive batches of B = ``minibatch`` rows; a remainder < B is dropped."""
    size = int(params["minibatch"])
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if size < 4:
        raise RepsimError(f"cka: minibatch={size} rows; the unbiased HSIC of a minibatch needs at least 4 (or 0: full batch)")
    _check_n(n, True)
    given = x
    if params.get("shuffle", -1) >= 0:  # seeded row order (the same on both sides: rows stay paired)
        x = x[shuffled_order(n, int(params["shuffle"]))]
    rows = min(size, n)
    count = n // rows
    batches: list[Any] = []
    for i in range(count):
        xb = x[i * rows : (i + 1) * rows]
        if params["kernel"] == "linear":
            batches.append(prepare_linear(xb))
        else:
            batches.append(prepare_rbf(xb, params["sigma"], params["median"], True))
    return MinibatchState(given, batches, rows, n - count * rows)


def shuffled_order(n: int, seed: int) -> np.ndarray:
    """The row order of ``cka:minibatch=B,shuffle=SEED``: a seeded permutation of range(n)."""
    return np.random.default_rng(seed).permutation(n)


def minibatch_pair(a: MinibatchState, b: MinibatchState) -> MetricResult:
    """mean_i HSIC_u(K_i, L_i) / sqrt(mean_i HSIC_u(K_i, K_i) mean_i HSIC_u(L_i, L_i)) over batches i."""
    terms = np.array([hsic_terms(sa, sb, True) for sa, sb in zip(a.batches, b.batches)]) * hsic_scale(a.rows, True)
    cross, self_a, self_b = terms.mean(axis=0)
    details: dict[str, Any] = {"minibatches": len(a.batches), "batch_rows": a.rows}
    warnings = []
    if a.dropped:
        details["dropped_rows"] = a.dropped
        warnings.append(
            f"minibatch CKA: the last {a.dropped} of {a.x.shape[0]} rows do not fill a batch of {a.rows} and are not used"
        )
    return MetricResult(float(_ratio(float(cross), float(self_a), float(self_b), True)), details, warnings)


def minibatch_cka(x: np.ndarray, y: np.ndarray, batch: int, kernel: str = "linear", sigma: float = 0.4, median: str = "all") -> float:
    """Minibatch CKA (Nguyen, Raghu & Kornblith, ICLR 2021): unbiased HSIC averaged over batches.

    With consecutive batches of B rows (X_i, Y_i), i = 1..k = floor(N/B):
    CKA_mb = mean_i HSIC_u(K_i, L_i) / sqrt(mean_i HSIC_u(K_i, K_i) * mean_i HSIC_u(L_i, L_i)),
    HSIC_u the unbiased estimator of Song et al. (2012); the three averages are taken separately,
    then combined. An estimate of a *different* quantity from full-batch CKA (a ratio of expected
    HSICs on samples of B inputs; for RBF the bandwidth is also per batch); it equals full-batch
    debiased CKA when B >= N and approaches it as B grows.
    """
    return CKA.bind(minibatch=batch, kernel=kernel, sigma=sigma, median=median).value_of(x, y)


def rbf_cka(x: np.ndarray, y: np.ndarray, sigma: float = 0.4, median: str = "all", debiased: bool = False) -> float:
    """RBF CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with Gaussian kernels.

    K_ij = exp(-||x_i - x_j||^2 / (2 s^2)), bandwidth s from the median distance (see
    :func:`rbf_gram`). Kornblith, Norouzi, Lee & Hinton, ICML 2019. ``debiased=True`` uses HSIC_u
    (Song et al. 2012). Builds N x N matrices.
    """
    return CKA.bind(kernel="rbf", sigma=sigma, median=median, debiased=debiased).value_of(x, y)


def hsic(
    x: np.ndarray, y: np.ndarray, kernel: str = "linear", sigma: float = 0.4, median: str = "all", debiased: bool = False
) -> float:
    """Hilbert-Schmidt independence criterion between two representations.

    Biased (Gretton et al. 2005): HSIC = tr(K H L H) / (n-1)^2, H = I - 11^T/n; for the linear kernel
    this is ||Yc^T Xc||_F^2 / (n-1)^2. Debiased (Song et al., JMLR 2012, eq. 5):
    HSIC_u = [tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3)),
    K~ = K with zeroed diagonal; can be negative. Not scale invariant for the linear kernel.
    """
    return HSIC.bind(kernel=kernel, sigma=sigma, median=median, debiased=debiased).value_of(x, y)


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

ADJUSTED = Param(
    "adjusted",
    bool,
    False,
    "chance-adjusted (CKA - E0)/(1 - E0), E0 the exact mean over row permutations; 0 at chance; not with debiased",
    (True, False),
)

MINIBATCH = Param(
    "minibatch",
    int,
    0,
    "rows per minibatch for minibatch CKA (Nguyen et al. 2021; unbiased HSIC averaged over batches; "
    "estimates a different quantity than full-batch CKA); 0: full batch",
    minimum=0,
)

SHUFFLE = Param(
    "shuffle",
    int,
    -1,
    "with minibatch: seed of a row shuffle before batching (--shuffle-rows sets it to --seed); -1: consecutive rows",
    minimum=-1,
)

CKA = register(
    Metric(
        name="cka",
        summary="centered kernel alignment (linear or RBF, optionally debiased, chance-adjusted or minibatch)",
        params=KERNEL_PARAMS + (ADJUSTED, MINIBATCH, SHUFFLE),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation", "translation"}),
        min_n=lambda p: 4 if (p["debiased"] or p["minibatch"]) else (3 if p["adjusted"] else 2),
        formula="HSIC(K,L) / sqrt(HSIC(K,K) HSIC(L,L)); linear: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F); "
        "adjusted: (CKA - E0)/(1 - E0), E0 = tr K~ tr L~ / ((n-1) ||K~||_F ||L~||_F)",
        reference="Kornblith et al., Similarity of Neural Network Representations Revisited, ICML 2019; "
        "minibatch: Nguyen, Raghu & Kornblith, Do wide and deep networks learn the same things?, ICLR 2021",
        prepare=_kernel_prepare,
        pair=_cka_pair,
        permute=_kernel_permute,
        distinct_rows=lambda p: p["debiased"] or p["minibatch"] > 0,
        gram=lambda p: p["kernel"] == "rbf" and p["minibatch"] == 0,
        help=(
            "minibatch=B (>= 4): the minibatch CKA of Nguyen, Raghu & Kornblith (ICLR 2021), unbiased HSIC "
            "averaged over consecutive batches of B rows (cross and self terms separately); it always uses the "
            "unbiased estimator, keeps memory at B x B for kernel=rbf, estimates a different quantity than "
            "full-batch CKA and approaches full-batch debiased CKA as B grows; a trailing partial batch is dropped. "
            "Linear CKA never builds an N x N matrix when N > F (F x F products instead). "
            "kernel=rbf builds N x N Gram matrices (8*N^2 bytes each; refused above --max-gram). "
            "Debiased CKA (range [-1, 1]) can be slightly negative for unrelated representations; it is "
            "reported as is, never clamped. adjusted=true reports (CKA - E0)/(1 - E0) with E0 the exact mean of "
            "CKA over all row permutations of one side (its chance level, which can be high for few effective "
            "dimensions): 0 at chance, 1 at identity, negative below chance; same invariances as CKA. Not with "
            "debiased=true, whose null mean is already ~ 0."
        ),
        value_range=(0.0, 1.0),
        value_range_for=lambda p: (-float("inf"), 1.0) if p["adjusted"] else (0.0, 1.0),
        check_params=_check_adjusted,
    )
)

HSIC = register(
    Metric(
        name="hsic",
        summary="raw Hilbert-Schmidt independence criterion (linear or RBF, optionally debiased)",
        params=KERNEL_PARAMS,
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "permutation", "translation"}),
        # the RBF bandwidth is relative to the median distance, so scaling cancels
        extra_invariances=lambda p: frozenset({"isotropic_scaling"}) if p["kernel"] == "rbf" else frozenset(),
        min_n=lambda p: 4 if p["debiased"] else 2,
        formula="biased: tr(K H L H)/(n-1)^2 (linear: ||Yc^T Xc||_F^2/(n-1)^2); debiased: HSIC_u (Song et al. 2012)",
        reference="Gretton et al., Measuring statistical dependence with Hilbert-Schmidt norms, ALT 2005; "
        "Song et al., Feature selection via dependence maximization, JMLR 2012",
        prepare=_kernel_prepare,
        pair=_hsic_pair,
        permute=_kernel_permute,
        distinct_rows=lambda p: p["debiased"],
        gram=lambda p: p["kernel"] == "rbf",
        help=(
            "The unnormalized numerator of CKA. With the linear kernel it scales as c^2 d^2 when the sides "
            "are scaled by c and d (not scale invariant; compare values only across equally scaled layers). "
            "Debiased HSIC can be negative. kernel=rbf builds N x N matrices (8*N^2 bytes each)."
        ),
        value_range=(0.0, float("inf")),
    )
)
