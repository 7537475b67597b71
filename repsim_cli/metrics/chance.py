"""Chance level of kernel CKA and HSIC without permutations: exact permutation moments.

With K~ = H K H and L~ = H L H the centred kernel matrices of the two sides, biased HSIC and CKA
are functions of T(pi) = tr(K~ P L~ P^T) = sum_ij K~_ij L~_pi(i)pi(j). Under a uniformly random
permutation pi of one side's rows (all n! equally likely) the first three moments of T are
exact functions of a few permutation-invariant traces of each kernel (Kazi-Aoual, Hitier,
Sabatier & Lebreton, "Refined approximations to permutation tests for multivariate inference",
CSDA 1995; Josse, Pages & Husson, "Testing the significance of the RV coefficient", CSDA 2008;
linear CKA is the RV coefficient of the centred data, Robert & Escoufier 1976):

    E[CKA] = E0 = tr(K~) tr(L~) / ((n-1) ||K~||_F ||L~||_F)

and the variance and third moment follow from the same derivation, which we do by computer
instead of transcribing the published (long) formulas:

* E[prod_e L~_pi(i_e)pi(j_e)] over m factors depends only on the equality pattern p of the 2m
  indices: it is S_L(p) / (n)_|p|, with S(p) the sum over *distinct* index values with pattern p
  and (n)_k the falling factorial. So E[T^m] = sum_p S_K(p) S_L(p) / (n)_|p| over the set
  partitions p of the 2m index slots (Bell(6) = 203 for m = 3).
* S(p) = sum_{q >= p} mu(p, q) U(q) (Moebius inversion on the partition lattice), U(q) the
  unrestricted sum, i.e. a contraction of the kernel along the multigraph of q. For a symmetric,
  doubly centred matrix every contraction with a degree-1 vertex is 0 and the rest are products
  of eight invariants: T = tr K, T2 = tr K^2, S2 = sum K_ii^2, T3 = tr K^3, U = sum K_ij^3,
  S3 = sum K_ii^3, R = sum_i K_ii (K^2)_ii, B = sum_ij K_ii K_ij K_jj (Kazi-Aoual's invariants).

Central moments come without cancellation: T - E[T] equals T computed with L~ replaced by the
shifted kernel L' = L~ - c H, c = tr(L~)/(n-1) (H is permutation invariant and tr(K~ H) = tr K~),
and tr L' = 0, so the raw moments of the shifted problem *are* the central moments.

The p-value uses a Pearson type III distribution with the exact mean, variance and skewness
(Josse et al. 2008); the chance-adjusted CKA is (CKA - E0) / (1 - E0), 0 at chance and 1 at
identity, like the adjusted Rand index.

Linear kernels are handled in feature space (F x F products and row norms), never N x N, except
the third moment, whose invariant U = sum_ij (x_i . x_j)^3 has no feature-space form cheaper than
the Gram itself: it is accumulated over blocks of the Gram (O(N^2 F) time, O(block x N) memory).
Only the biased estimators are covered: the null mean of debiased HSIC/CKA is already ~ 0.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics.cka import (
    CKA,
    HSIC,
    GramState,
    LinearState,
    _ratio,
    adjusted_cka,
    hsic_scale,
    hsic_terms,
    prepare_linear,
    prepare_rbf,
)

#: the eight Kazi-Aoual invariants of a symmetric doubly centred matrix
INVARIANT_NAMES = ("T", "T2", "S2", "T3", "U", "S3", "R", "B")
#: rows of the Gram accumulated at once in the feature-space third moment (memory: block x N floats)
_BLOCK = 1024


# --------------------------------------------------------------------------- the combinatorics (once)


def _set_partitions(size: int) -> Iterator[tuple[int, ...]]:
    """Every set partition of ``range(size)`` as a restricted growth string (block label per slot)."""

    def grow(prefix: list[int], top: int) -> Iterator[tuple[int, ...]]:
        if len(prefix) == size:
            yield tuple(prefix)
            return
        for label in range(top + 2):
            yield from grow(prefix + [label], max(top, label))

    yield from grow([], -1)


def _component_name(nodes: set[int], edges: list[tuple[int, int]]) -> str | None:
    """The invariant an unrestricted contraction along one connected multigraph equals."""
    loops = sum(1 for u, v in edges if u == v)
    degree = {v: 0 for v in nodes}
    for u, v in edges:
        degree[u] += 1
        degree[v] += 1
    if min(degree.values()) == 1:  # an index in one factor only: a row sum of a centred matrix
        return None
    key = (len(nodes), loops, tuple(sorted(degree.values())))
    names = {
        (1, 1, (2,)): "T",
        (1, 2, (4,)): "S2",
        (2, 0, (2, 2)): "T2",
        (1, 3, (6,)): "S3",
        (2, 0, (3, 3)): "U",
        (2, 1, (2, 4)): "R",
        (2, 2, (3, 3)): "B",
        (3, 0, (2, 2, 2)): "T3",
    }
    if key not in names:  # pragma: no cover - impossible for <= 3 factors
        raise AssertionError(f"unclassified contraction {key}")
    return names[key]


def _monomial(labels: tuple[int, ...]) -> tuple[str, ...] | None:
    """The product of invariants the contraction with slot labels ``labels`` equals (None: 0)."""
    edges = [(labels[2 * e], labels[2 * e + 1]) for e in range(len(labels) // 2)]
    parent = {v: v for v in labels}

    def find(v: int) -> int:
        while parent[v] != v:
            v = parent[v]
        return v

    for u, v in edges:
        parent[find(u)] = find(v)
    names = []
    for root in {find(v) for v in labels}:
        nodes = {v for v in labels if find(v) == root}
        name = _component_name(nodes, [(u, v) for u, v in edges if find(u) == root])
        if name is None:
            return None
        names.append(name)
    return tuple(sorted(names))


def _moebius(sizes: list[int]) -> int:
    """mu(p, q) on the partition lattice: prod over blocks of q of (-1)^(s-1) (s-1)!."""
    return math.prod((-1) ** (s - 1) * math.factorial(s - 1) for s in sizes)


@functools.cache
def moment_tables(m: int) -> tuple[tuple[tuple[str, ...], ...], dict[int, np.ndarray]]:
    """Monomials and integer matrices M_k with E[T^m] = sum_k a^T M_k b / (n)_k.

    ``a``/``b`` are the monomials of each side's invariants; k runs over the number of distinct
    index values (blocks of the pattern p). M_k = sum_{|p| = k} v_p v_p^T with
    v_p = sum_{q >= p} mu(p, q) e_monomial(q).
    """
    rows: list[tuple[int, dict[tuple[str, ...], int]]] = []
    monomials: set[tuple[str, ...]] = set()
    for p in _set_partitions(2 * m):
        k = max(p) + 1
        vec: dict[tuple[str, ...], int] = {}
        for q in _set_partitions(k):  # coarsenings of p: partitions of its k blocks
            mono = _monomial(tuple(q[b] for b in p))
            if mono is None:
                continue
            sizes = [q.count(label) for label in range(max(q) + 1)]
            vec[mono] = vec.get(mono, 0) + _moebius(sizes)
        vec = {key: val for key, val in vec.items() if val}
        monomials.update(vec)
        rows.append((k, vec))
    order = tuple(sorted(monomials, key=lambda mo: (len(mo), mo)))
    index = {mo: i for i, mo in enumerate(order)}
    tables: dict[int, np.ndarray] = {}
    for k, vec in rows:
        v = np.zeros(len(order), dtype=np.int64)
        for mo, val in vec.items():
            v[index[mo]] = val
        tables[k] = tables.get(k, np.zeros((len(order), len(order)), dtype=np.int64)) + np.outer(v, v)
    return order, tables


@functools.lru_cache(maxsize=256)
def _coefficients(m: int, n: int) -> np.ndarray:
    """C(n) = sum_{k <= n} M_k / (n)_k, summed exactly in rationals, then rounded once."""
    order, tables = moment_tables(m)
    total = [[Fraction(0)] * len(order) for _ in order]
    for k, table in tables.items():
        if k > n:
            continue  # patterns with more distinct indices than rows do not occur
        falling = math.prod(range(n - k + 1, n + 1))
        for i, j in itertools.product(range(len(order)), repeat=2):
            if table[i, j]:
                total[i][j] += Fraction(int(table[i, j]), falling)
    return np.array([[float(x) for x in row] for row in total])


def _monomial_values(order: tuple[tuple[str, ...], ...], inv: dict[str, float]) -> np.ndarray:
    return np.array([math.prod(inv[name] for name in mono) for mono in order])


def raw_moment(m: int, inv_a: dict[str, float], inv_b: dict[str, float], n: int) -> float:
    """E[T^m], T = sum_ij A_ij B_pi(i)pi(j), pi uniform over all n! permutations (m <= 3)."""
    order, _ = moment_tables(m)
    a = _monomial_values(order, inv_a)
    b = _monomial_values(order, inv_b)
    return float(a @ _coefficients(m, n) @ b)


# --------------------------------------------------------------------------- invariants of one side


@dataclass(frozen=True)
class KernelInvariants:
    """What the permutation moments need from one side, computed once per layer.

    ``trace`` = tr K~ and ``fro`` = ||K~||_F of the centred kernel; ``shifted`` holds the
    invariants of K' = K~ - c H, c = tr K~ / (n - 1) (so ``shifted['T'] == 0``): T2 and S2
    always, T3, U, S3, R and B only when ``third`` (what the third moment needs).
    """

    n: int
    trace: float
    fro: float
    shifted: dict[str, float]

    @property
    def third(self) -> bool:
        return "U" in self.shifted


def _shift(n: int, trace: float) -> tuple[float, float]:
    """c = tr K~ / (n-1) and the diagonal of H, h = 1 - 1/n."""
    return trace / (n - 1.0), 1.0 - 1.0 / n


def _gram_invariants(k: np.ndarray, self_dot: float, third: bool) -> KernelInvariants:
    """Invariants from the N x N centred kernel K~ (RBF, or linear with F > N)."""
    n = k.shape[0]
    trace = float(np.trace(k))
    c, h = _shift(n, trace)
    d = np.diag(k) - c * h
    inv = {"T": 0.0, "T2": max(self_dot - c * trace, 0.0), "S2": float(d @ d)}
    if third:
        w = k + c / n  # K' = K~ - c H: H = I - 11^T/n (one N x N copy; the rest in row blocks)
        w[np.diag_indices(n)] -= c
        rowsq = np.einsum("ij,ij->i", w, w)  # (K'^2)_ii
        t3 = u = 0.0
        for s in range(0, n, _BLOCK):
            rows = w[s : s + _BLOCK]
            t3 += float(np.vdot(rows @ w, rows))
            u += float(np.sum(rows * rows * rows))
        inv["T2"] = float(rowsq.sum())
        inv.update(T3=t3, U=u, S3=float(np.sum(d**3)), R=float(d @ rowsq), B=float(d @ (w @ d)))
    return KernelInvariants(n, trace, math.sqrt(max(self_dot, 0.0)), inv)


def _blocked_gram_terms(xc: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    """U' = sum_ij W'_ij^3 and the row sums (W'^2)_ii of W' = Xc Xc^T - c H, in row blocks.

    Only blocks on or above the diagonal are formed (N^2 F / 2 multiply-adds, block x N memory).
    """
    n = xc.shape[0]
    u = 0.0
    rowsq = np.zeros(n)
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        g = xc[s:e] @ xc[s:].T
        g += c / n
        g[np.arange(e - s), np.arange(e - s)] -= c
        g2 = g * g
        rowsq[s:e] += g2.sum(axis=1)
        rowsq[e:] += g2[:, e - s :].sum(axis=0)
        g2 *= g
        u += float(g2[:, : e - s].sum()) + 2.0 * float(g2[:, e - s :].sum())
    return u, rowsq


def _linear_invariants(state: LinearState, third: bool) -> KernelInvariants:
    """Invariants of the linear kernel K~ = Xc Xc^T in feature space.

    tr K~ = ||Xc||_F^2, ||K~||_F^2 = ||Xc^T Xc||_F^2, K~_ii = ||x_i||^2, tr K~^3 = tr (Xc^T Xc)^3,
    d^T K~ d = ||Xc^T d||^2. With C = Xc^T Xc and c, h from the shift:
    tr K'^2 = tr K~^2 - c tr K~, tr K'^3 = tr C^3 - 3c tr C^2 + 3c^2 tr C - c^3 (n-1),
    B' = d'^T K~ d' - c (||d'||^2 - (1^T d')^2 / n), d' = diag K'. U' and (K'^2)_ii need the Gram
    entries: :func:`_blocked_gram_terms`.
    """
    if state.gram is not None:
        return _gram_invariants(state.gram, state.self_dot, third)
    n, trace, t2 = state.n, state.trace, state.self_dot
    c, h = _shift(n, trace)
    d = state.sq - c * h
    inv = {"T": 0.0, "T2": max(t2 - c * trace, 0.0), "S2": float(d @ d)}
    if third:
        xc = state.xc
        cov = xc.T @ xc
        v = xc.T @ d
        u, rowsq = _blocked_gram_terms(xc, c)
        inv.update(
            T3=float(np.vdot(cov @ cov, cov)) - 3.0 * c * t2 + 3.0 * c * c * trace - c**3 * (n - 1.0),
            U=u,
            S3=float(np.sum(d**3)),
            R=float(d @ rowsq),
            B=float(v @ v) - c * (float(d @ d) - float(d.sum()) ** 2 / n),
        )
    return KernelInvariants(n, trace, math.sqrt(max(t2, 0.0)), inv)


def kernel_invariants(state: LinearState | GramState, third: bool = True) -> KernelInvariants:
    """The permutation-invariant traces of one prepared side (biased CKA/HSIC states only).

    Linear states (F <= N) stay in feature space; the third moment's U costs O(N^2 F) there.
    RBF states use their N x N centred kernel; the third moment costs one N x N product (in row
    blocks) and one N x N copy.
    """
    if isinstance(state, LinearState):
        return _linear_invariants(state, third)
    if isinstance(state, GramState):
        return _gram_invariants(state.k, state.self_dot, third)
    raise TypeError(f"expected a LinearState or GramState, got {type(state).__name__}")


# --------------------------------------------------------------------------- moments and the chance level


@dataclass(frozen=True)
class PermutationMoments:
    """Exact moments of T = tr(K~ P L~ P^T) over all n! row permutations P."""

    mean: float
    variance: float
    third: float | None  # third central moment


def permutation_moments(a: KernelInvariants, b: KernelInvariants) -> PermutationMoments:
    """E[T], Var[T] and E[(T - E T)^3] of T = sum_ij K~_ij L~_pi(i)pi(j), pi uniform (exact)."""
    if a.n != b.n:
        raise RepsimError(f"the two sides index different numbers of inputs: N={a.n} and N={b.n}")
    n = a.n
    mean = a.trace * b.trace / (n - 1.0)
    var = max(raw_moment(2, a.shifted, b.shifted, n), 0.0)
    third = raw_moment(3, a.shifted, b.shifted, n) if a.third and b.third else None
    return PermutationMoments(mean, var, third)


@dataclass(frozen=True)
class ChanceLevel:
    """Exact permutation null of one CKA/HSIC value and what follows from it.

    ``mean``, ``std``, ``skew``: exact moments over all n! row permutations of one side;
    ``z`` = (value - mean) / std; ``p_value``: upper tail of a Pearson type III distribution
    with these three moments (normal when skew is None or ~0), never below 1/n! (the smallest
    exact permutation p-value; it underflows to 0 for n > 170); ``adjusted`` = (CKA - E0) /
    (1 - E0) for CKA (None for HSIC).
    """

    statistic: str
    value: float
    mean: float
    std: float
    skew: float | None
    z: float | None
    p_value: float
    adjusted: float | None
    n: int

    def as_record(self) -> dict[str, Any]:
        return {
            "null_mean_exact": self.mean,
            "null_std_exact": self.std,
            "null_skew_exact": self.skew,
            "z_exact": self.z,
            "p_moments": self.p_value,
            "adjusted": self.adjusted,
        }


def pearson3_sf(x: float, mean: float, std: float, skew: float | None) -> float:
    """P(X >= x) for a Pearson type III distribution with this mean, std and skewness.

    Josse, Pages & Husson (2008) approximate the permutation distribution of RV this way.
    ``skew`` None or |skew| < 1e-8: the normal distribution (the Pearson III limit).
    """
    z = (x - mean) / std
    if skew is None or abs(skew) < 1e-8:
        from scipy import stats as sps  # imported here, not at start-up

        return float(sps.norm.sf(z))
    from scipy import stats as sps

    return float(sps.pearson3.sf(z, skew))


def chance_from_invariants(
    a: KernelInvariants, b: KernelInvariants, value: float, statistic: str = "cka"
) -> ChanceLevel:
    """The chance level of an observed CKA (``statistic='cka'``) or biased HSIC (``'hsic'``)."""
    n = a.n
    if n < 2:
        raise RepsimError(f"a chance level needs N >= 2 inputs, got N={n}")
    if statistic == "cka":
        if a.fro <= 0 or b.fro <= 0:
            raise RepsimError("CKA is undefined: a side has rank 0 (every column is constant)")
        scale = 1.0 / (a.fro * b.fro)
    elif statistic == "hsic":
        scale = 1.0 / (n - 1.0) ** 2
    else:
        raise RepsimError(f"exact chance levels exist for cka and hsic only, not {statistic!r}")
    mom = permutation_moments(a, b)
    mean = float(mom.mean * scale)
    std = math.sqrt(mom.variance) * scale
    if not std > 1e-12 * max(abs(mean), abs(value), 1e-300):
        skew = z = None
        p = 1.0  # every permutation gives the same value: the observed one is typical
    else:
        skew = None if mom.third is None else mom.third * scale**3 / std**3
        z = float((value - mean) / std)
        # the exact permutation p-value is at least 1/n! (the identity permutation counts)
        p = max(pearson3_sf(value, mean, std, skew), math.exp(-math.lgamma(n + 1.0)))
    adjusted = float(adjusted_cka(value, mean)) if statistic == "cka" else None
    return ChanceLevel(statistic, float(value), mean, std, skew, z, p, adjusted, n)


def _check_biased(params: Any) -> None:
    if params.get("debiased"):
        raise RepsimError(
            "exact chance levels cover the biased estimators only: debiased CKA/HSIC already have a null "
            "mean of ~0 (use a permutation null for their p-value, or drop debiased=true)"
        )


def chance_level(metric: Any, prep_a: Any, prep_b: Any, value: float | None = None, third: bool = True) -> ChanceLevel:
    """Exact chance level for a bound ``cka``/``hsic`` metric and its prepared states.

    ``value``: the observed raw CKA/HSIC (computed when None). ``third=False`` skips the third
    moment (the p-value is then normal): for linear kernels with F < N the third moment is the
    only part that costs more than the value itself.
    """
    if metric.name not in ("cka", "hsic"):
        raise RepsimError(f"exact chance levels exist for cka and hsic only, not {metric.name}")
    _check_biased(metric.params)
    if prep_a.n != prep_b.n:
        raise RepsimError(f"the two sides index different numbers of inputs: N={prep_a.n} and N={prep_b.n}")
    if value is None:
        cross, sa, sb = hsic_terms(prep_a, prep_b, False)
        value = _ratio(cross, sa, sb, False) if metric.name == "cka" else cross * hsic_scale(prep_a.n, False)
    return chance_from_invariants(kernel_invariants(prep_a, third), kernel_invariants(prep_b, third), value, metric.name)


def _prepare(x: np.ndarray, kernel: str, sigma: float, median: str) -> LinearState | GramState:
    if kernel == "linear":
        return prepare_linear(x)
    if kernel == "rbf":
        return prepare_rbf(x, sigma, median, False)
    raise RepsimError(f"kernel must be linear or rbf, got {kernel!r}")


def cka_permutation_moments(
    x: np.ndarray, y: np.ndarray, kernel: str = "linear", sigma: float = 0.4, median: str = "all", third: bool = True
) -> ChanceLevel:
    """CKA(x, y) with its exact permutation mean E0, std, skewness, z, Pearson III p and adjusted value.

    E0 = tr(K~) tr(L~) / ((n-1) ||K~||_F ||L~||_F) (Kazi-Aoual et al. 1995; Josse et al. 2008).
    """
    bound = CKA.bind(kernel=kernel, sigma=sigma, median=median)
    a, b = _prepare(x, kernel, sigma, median), _prepare(y, kernel, sigma, median)
    return chance_level(bound, a, b, third=third)


def hsic_permutation_moments(
    x: np.ndarray, y: np.ndarray, kernel: str = "linear", sigma: float = 0.4, median: str = "all", third: bool = True
) -> ChanceLevel:
    """Biased HSIC(x, y) with its exact permutation mean tr(K~) tr(L~) / (n-1)^3, std, skew, z, p."""
    bound = HSIC.bind(kernel=kernel, sigma=sigma, median=median)
    a, b = _prepare(x, kernel, sigma, median), _prepare(y, kernel, sigma, median)
    return chance_level(bound, a, b, third=third)


@dataclass
class ChanceGrid:
    """Exact chance levels of a layer x layer grid (R x C arrays; NaN where no value was given)."""

    mean: np.ndarray  # E0 (CKA) or the HSIC null mean
    std: np.ndarray
    skew: np.ndarray  # NaN when the third moment was skipped or the null has no spread
    z: np.ndarray
    p_value: np.ndarray
    adjusted: np.ndarray  # NaN for HSIC


def chance_grid(
    metric: Any, row_states: list[Any], col_states: list[Any], values: np.ndarray, third: bool = True
) -> ChanceGrid:
    """Chance levels for every cell of a grid of raw CKA/HSIC ``values`` (R x C).

    Each side's invariants are computed once per distinct prepared state (the O(N^2 F) third-moment
    pass for linear kernels runs once per layer, not once per cell); cells are O(1) afterwards.
    """
    if metric.name not in ("cka", "hsic"):
        raise RepsimError(f"exact chance levels exist for cka and hsic only, not {metric.name}")
    _check_biased(metric.params)
    cache: dict[int, KernelInvariants] = {}

    def inv(state: Any) -> KernelInvariants:
        if id(state) not in cache:
            cache[id(state)] = kernel_invariants(state, third)
        return cache[id(state)]

    shape = (len(row_states), len(col_states))
    out = {k: np.full(shape, np.nan) for k in ("mean", "std", "skew", "z", "p_value", "adjusted")}
    for i, rs in enumerate(row_states):
        for j, cs in enumerate(col_states):
            if not np.isfinite(values[i, j]):
                continue
            level = chance_from_invariants(inv(rs), inv(cs), float(values[i, j]), metric.name)
            for key, grid in out.items():
                v = getattr(level, key)
                grid[i, j] = np.nan if v is None else v
    return ChanceGrid(**out)


#: record keys added by ``chance=True`` (compare records, heatmap cells)
CHANCE_KEYS = ("null_mean_exact", "null_std_exact", "null_skew_exact", "z_exact", "p_moments", "adjusted")


def supports_chance(metric: Any) -> bool:
    """Whether a bound metric has an exact chance level (biased cka/hsic, linear or RBF)."""
    return metric.name in ("cka", "hsic") and not metric.params.get("debiased", False)


def unsupported_note(metric: Any) -> str:
    """Why ``metric`` has no exact chance level (the warning ``chance=True`` gives for it)."""
    if metric.name in ("cka", "hsic"):
        return (
            f"{metric.spec}: no exact chance level for debiased estimators (their null mean is already ~ 0); "
            "use permutations for a p-value"
        )
    return f"{metric.spec}: exact chance levels exist for cka and hsic only; use permutations for a p-value"


def chance_fields(metric: Any, prep_a: Any, prep_b: Any, result: Any, third: bool = True) -> dict[str, Any]:
    """The :data:`CHANCE_KEYS` of one compare record (all None when the metric has none).

    ``result`` is the metric's :class:`MetricResult`; for ``cka:adjusted=true`` its raw CKA
    (``details['raw']``) is the observed value.
    """
    if not supports_chance(metric):
        return dict.fromkeys(CHANCE_KEYS)
    raw = float(result.details.get("raw", result.value)) if result.details else float(result.value)
    return chance_level(metric, prep_a, prep_b, raw, third=third).as_record()
