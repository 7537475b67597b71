"""CKA and HSIC against independent routes: Gram form, brute-force U-statistics, Kornblith's values."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import get_metric, hsic, linear_cka, parse_metric, rbf_cka

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


# ------------------------------------------------------------------ independent routes (N x N, textbook)


def centering(n: int) -> np.ndarray:
    return np.eye(n) - np.ones((n, n)) / n


def hsic_biased_ref(k: np.ndarray, l: np.ndarray) -> float:
    """tr(K H L H) / (n-1)^2 with an explicit centering matrix H."""
    n = k.shape[0]
    h = centering(n)
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def hsic_u_eq5(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. 2012, eq. (5), in matrix form on the zero-diagonal matrices K~, L~."""
    n = k.shape[0]
    kt = k.copy()
    lt = l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    tr = float(np.trace(kt @ lt))
    one_kl_one = float(np.ones(n) @ kt @ lt @ np.ones(n))
    return (tr + kt.sum() * lt.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * one_kl_one) / (n * (n - 3))


def hsic_u_statistic(k: np.ndarray, l: np.ndarray) -> float:
    """The U-statistic definition: mean over ordered distinct (i, j, q, r) of
    k_ij l_ij + k_ij l_qr - 2 k_ij l_iq (Song et al. 2012, Theorem 2). O(N^4)."""
    n = k.shape[0]
    total = 0.0
    count = 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2.0 * k[i, j] * l[i, q]
        count += 1
    return total / count


def gram_c(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=0)
    return xc @ xc.T


def hsic_u_exact(x: np.ndarray, y: np.ndarray) -> Fraction:
    """Eq. (5) in exact rational arithmetic on the float inputs (no rounding at all)."""
    n = len(x)
    xs = [[Fraction(v) for v in row] for row in x]
    ys = [[Fraction(v) for v in row] for row in y]
    k = [[sum(a * b for a, b in zip(xs[i], xs[j])) if i != j else Fraction(0) for j in range(n)] for i in range(n)]
    l = [[sum(a * b for a, b in zip(ys[i], ys[j])) if i != j else Fraction(0) for j in range(n)] for i in range(n)]
    tr = sum(k[i][j] * l[j][i] for i in range(n) for j in range(n))
    one_k_one, one_l_one = sum(map(sum, k)), sum(map(sum, l))
    one_kl_one = sum(k[i][j] * l[j][q] for i in range(n) for j in range(n) for q in range(n))
    return (tr + one_k_one * one_l_one / ((n - 1) * (n - 2)) - Fraction(2, n - 2) * one_kl_one) / (n * (n - 3))


def cka_from_grams(k, l, hsic_fn):
    return hsic_fn(k, l) / np.sqrt(hsic_fn(k, k) * hsic_fn(l, l))


def rbf_ref(x: np.ndarray, sigma: float, median: str) -> np.ndarray:
    d2 = cdist(x, x, "sqeuclidean")
    if median == "all":
        s2 = sigma**2 * np.median(d2)
    else:
        d = cdist(x, x)
        s2 = (sigma * np.median(d[np.triu_indices(len(x), 1)])) ** 2
    return np.exp(-d2 / (2 * s2))


def pair(seed: int, n: int, fa: int, fb: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) + 3.0
    y = x[:, : min(fa, fb)] @ rng.standard_normal((min(fa, fb), fb)) + rng.standard_normal((n, fb))
    return x, y


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("shape", [(40, 5, 7), (12, 30, 25), (15, 30, 6), (15, 6, 30)], ids=["N>F", "F>N", "FA>N>=FB", "FB>N>=FA"])
@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_feature_form_equals_gram_form(shape, debiased):
    n, fa, fb = shape
    for seed in range(3):
        x, y = pair(seed, n, fa, fb)
        # biased: uncentered Grams (H centers them); debiased: eq. (5) on centered Grams (it is
        # invariant to centering, but uncentered Grams lose digits to cancellation in the reference)
        k, l = (gram_c(x), gram_c(y)) if debiased else (x @ x.T, y @ y.T)
        want = cka_from_grams(k, l, hsic_u_eq5 if debiased else hsic_biased_ref)
        got = linear_cka(x, y, debiased=debiased)
        assert record("cka linear" + (" debiased" if debiased else ""), got, want) <= 1e-12


@pytest.mark.parametrize("n", [5, 6, 7])
def test_hsic_u_matches_u_statistic_bruteforce(n):
    x, y = pair(n, n, 3, 4)
    k, l = x @ x.T, y @ y.T
    want = hsic_u_statistic(k, l)
    assert hsic_u_eq5(k, l) == pytest.approx(want, rel=1e-10, abs=1e-12)  # the two textbook forms agree
    got = hsic(x, y, debiased=True)
    assert record("hsic linear debiased", got, want) <= 1e-10 * max(1.0, abs(want))
    kr, lr = rbf_ref(x, 0.4, "all"), rbf_ref(y, 0.4, "all")
    want_rbf = hsic_u_statistic(kr, lr)
    got_rbf = hsic(x, y, kernel="rbf", debiased=True)
    assert record("hsic rbf debiased", got_rbf, want_rbf) <= 1e-12


@pytest.mark.parametrize("n,fa,fb", [(4, 1, 1), (5, 2, 3), (6, 3, 2)])
def test_debiased_matches_exact_rational_arithmetic(n, fa, fb):
    for seed in range(3):
        x, y = pair(seed + 233, n, fa, fb)
        want_h = hsic_u_exact(x, y)
        got_h = hsic(x, y, debiased=True)
        assert record("hsic linear debiased (exact)", got_h, float(want_h)) <= 1e-12 * max(1.0, abs(float(want_h)))
        want = float(want_h) / math.sqrt(float(hsic_u_exact(x, x)) * float(hsic_u_exact(y, y)))
        assert record("cka linear debiased (exact)", linear_cka(x, y, debiased=True), want) <= 1e-12


@pytest.mark.parametrize("shape", [(30, 4, 6), (10, 20, 3)])
def test_hsic_biased_matches_trace_formula(shape):
    x, y = pair(1, *shape)
    want = hsic_biased_ref(x @ x.T, y @ y.T)
    assert record("hsic linear", hsic(x, y), want) <= 1e-12 * max(1.0, abs(want))
    want_rbf = hsic_biased_ref(rbf_ref(x, 0.7, "pairs"), rbf_ref(y, 0.7, "pairs"))
    got = hsic(x, y, kernel="rbf", sigma=0.7, median="pairs")
    assert record("hsic rbf", got, want_rbf) <= 1e-14


def test_hsic_is_not_scale_invariant():
    x, y = pair(2, 30, 4, 5)
    assert hsic(2.0 * x, 3.0 * y) == pytest.approx(36.0 * hsic(x, y), rel=1e-12)


@pytest.mark.parametrize("median", ["all", "pairs"])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("sigma", [0.4, 0.8])
def test_rbf_cka_matches_explicit_gram(median, debiased, sigma):
    x, y = pair(5, 25, 4, 6)
    fn = hsic_u_eq5 if debiased else hsic_biased_ref
    want = cka_from_grams(rbf_ref(x, sigma, median), rbf_ref(y, sigma, median), fn)
    got = rbf_cka(x, y, sigma=sigma, median=median, debiased=debiased)
    assert record("cka rbf" + (" debiased" if debiased else ""), got, want) <= 1e-12


def kornblith_example():
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = x + np.random.randn(100, 10)
    return x, y


def test_kornblith_golden_values():
    """Published in Kornblith's CKA notebook (rounded to 5 decimals)."""
    x, y = kornblith_example()
    assert linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert rbf_cka(x, y, sigma=0.5) == pytest.approx(0.65483, abs=5e-6)
    assert linear_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)


def test_rbf_bandwidth_reported_and_pairs_differs_from_all():
    x, y = kornblith_example()
    r = parse_metric("cka:kernel=rbf").compute(x, y)
    d2 = cdist(x, x, "sqeuclidean")
    assert r.details["bandwidth_a"] == pytest.approx(0.4 * np.sqrt(np.median(d2)), rel=1e-12)
    assert rbf_cka(x, y, median="pairs") != pytest.approx(rbf_cka(x, y, median="all"), abs=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 14), fa=st.integers(1, 20), fb=st.integers(1, 20))
def test_cka_properties(seed, n, fa, fb):
    x, y = pair(seed, n, fa, fb)
    for debiased in (False, True):
        v = linear_cka(x, y, debiased=debiased)
        assert np.isfinite(v)
        assert (-1 - 1e-12 if debiased else -1e-12) <= v <= 1 + 1e-12
        assert v == pytest.approx(linear_cka(y, x, debiased=debiased), abs=1e-12)
        assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
        want = cka_from_grams(gram_c(x), gram_c(y), hsic_u_eq5 if debiased else hsic_biased_ref) if n <= 8 else None
        if want is not None:
            assert record("cka linear (hypothesis)", v, want) <= 1e-10


def test_debiased_can_be_negative_and_is_not_clamped():
    values = [linear_cka(*pair(s, 8, 3, 3)[:1], np.random.default_rng(s + 99).standard_normal((8, 3)), debiased=True) for s in range(20)]
    assert min(values) < 0


def test_debiased_needs_four_inputs():
    x = np.random.default_rng(0).standard_normal((3, 2))
    with pytest.raises(RepsimError, match="N >= 4"):
        linear_cka(x, x, debiased=True)


def test_rank_zero_side_is_an_error():
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(RepsimError, match="rank 0"):
        linear_cka(x, np.full((10, 4), 2.5))


def test_rbf_with_identical_rows_is_an_error():
    x = np.zeros((10, 3))
    x[0] = 1.0
    with pytest.raises(RepsimError, match="median"):
        rbf_cka(x, np.random.default_rng(0).standard_normal((10, 3)))


@pytest.mark.parametrize("spec", ["cka:kernel=rbf", "cka:kernel=rbf,debiased=true", "hsic:kernel=rbf,debiased=true", "hsic", "cka:debiased=true"])
def test_permutation_fast_path(spec):
    bound = parse_metric(spec)
    x, y = pair(3, 20, 4, 25)
    perm = np.random.default_rng(0).permutation(20)
    fast = bound.pair(bound.permute(bound.prepare(x), perm), bound.prepare(y)).value
    slow = bound.compute(x[perm], y).value
    assert fast == pytest.approx(slow, abs=1e-12)


def test_float32_offset_cka():
    """Values near 1e4 with unit variance stored in float32: same as float64 on the stored values."""
    rng = np.random.default_rng(4)
    x32 = (1e4 + rng.standard_normal((200, 16))).astype(np.float32)
    y32 = (1e4 + rng.standard_normal((200, 16)) + x32[:, :1] - 1e4).astype(np.float32)
    x64, y64 = x32.astype(np.float64) - 1e4, y32.astype(np.float64) - 1e4  # exact in float64
    for debiased in (False, True):
        hsic_fn = hsic_u_eq5 if debiased else hsic_biased_ref
        want = cka_from_grams(gram_c(x64), gram_c(y64), hsic_fn)
        got = linear_cka(x32, y32, debiased=debiased)
        assert record("cka float32 offset", got, want) <= 1e-9
    want_rbf = cka_from_grams(rbf_ref(x64, 0.4, "all"), rbf_ref(y64, 0.4, "all"), hsic_biased_ref)
    assert record("cka rbf float32 offset", rbf_cka(x32, y32), want_rbf) <= 1e-9


def test_metric_entries():
    assert get_metric("hsic").bind().invariances == {"orthogonal", "permutation", "translation"}
    assert "isotropic_scaling" in get_metric("hsic").bind(kernel="rbf").invariances
    assert get_metric("cka").bind(kernel="rbf").gram and not get_metric("cka").bind().gram


def test_report_worst_disagreements():
    """Prints the worst disagreement per route (run with -s); runs last in this module."""
    for name, err in sorted(WORST.items()):
        print(f"worst |repsim - independent| {name}: {err:.2e}")
