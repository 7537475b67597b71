"""Exact permutation moments of CKA/HSIC against full enumeration, the N x N route, the published
variance formula, and permutation p-values; the chance-adjusted CKA."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats as sps
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import chance, parse_metric
from repsim_cli.metrics._linalg import center
from repsim_cli.metrics.chance import (
    chance_level,
    cka_permutation_moments,
    hsic_permutation_moments,
    kernel_invariants,
    permutation_moments,
)
from repsim_cli.metrics.cka import (
    GramState,
    cka_chance_mean,
    double_center_gram,
    prepare_linear,
)
from repsim_cli.stats import permutation_null

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def enumerate_null(spec: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The metric for every one of the n! row permutations of y (the exact permutation null)."""
    bound = parse_metric(spec)
    pa, pb = bound.prepare(x), bound.prepare(y)
    n = x.shape[0]
    # the registry's permute fast path equals re-preparing y[perm] (tests/test_invariances.py checks it)
    return np.array([bound.pair(pa, bound.permute(pb, np.array(p))).value for p in itertools.permutations(range(n))])


def datasets(n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(n)
    ties_x = rng.integers(0, 3, size=(n, 3)).astype(float)
    ties_x[1] = ties_x[0]  # a duplicated row
    ties_y = rng.integers(0, 2, size=(n, 2)).astype(float)
    ties_y[:, 1] += 1.0
    const = rng.standard_normal((n, 4))
    const[:, 2] = 7.5  # constant column
    return {
        "gaussian": (rng.standard_normal((n, 3)), rng.standard_normal((n, 2))),
        "skewed": (rng.standard_normal((n, 2)) ** 2, np.exp(rng.standard_normal((n, 4)))),
        "ties": (ties_x, ties_y),
        "constant_column": (const, rng.standard_normal((n, 3)) + 1e3),
        "f_gt_n": (rng.standard_normal((n, n + 3)), rng.standard_normal((n, 2 * n))),
        "related": (rng.standard_normal((n, 3)), None),
    }


CASES = [(n, name, kernel, stat) for n in (6, 7) for name in datasets(n) for kernel in ("linear", "rbf") for stat in ("cka", "hsic")]


@pytest.mark.parametrize("n,name,kernel,stat", CASES, ids=[f"n{n}-{d}-{k}-{s}" for n, d, k, s in CASES])
def test_exact_moments_equal_full_enumeration(n, name, kernel, stat):
    x, y = datasets(n)[name]
    if y is None:
        y = x @ np.random.default_rng(1).standard_normal((3, 2)) + 0.3 * np.random.default_rng(2).standard_normal((n, 2))
    spec = f"{stat}:kernel={kernel}"
    null = enumerate_null(spec, x, y)
    func = cka_permutation_moments if stat == "cka" else hsic_permutation_moments
    got = func(x, y, kernel=kernel)
    # CKA lies in [0, 1]: absolute errors; HSIC is rescaled by its largest null value
    s = 1.0 if stat == "cka" else float(np.abs(null).max())
    null = null / s
    mean = null.mean()
    var = null.var()
    mu3 = np.mean((null - mean) ** 3)
    assert record(f"{stat}_mean", got.mean / s, mean) <= 1e-12
    assert record(f"{stat}_variance", got.std**2 / s**2, var) <= 1e-12
    assert record(f"{stat}_third", got.std**3 * (got.skew or 0.0) / s**3, mu3) <= 1e-12
    assert got.value == pytest.approx(parse_metric(spec).compute(x, y).value, abs=1e-14)


def test_blocked_gram_pass_does_not_depend_on_the_block(monkeypatch):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((23, 4)) ** 2, rng.standard_normal((23, 3))
    wide = rng.standard_normal((23, 40))  # F > N: the N x N route of the linear kernel
    cases = [(x, y, "linear"), (x, y, "rbf"), (wide, y, "linear")]
    want = [cka_permutation_moments(a, b, kernel=k) for a, b, k in cases]
    for block in (1, 5, 7, 23):
        monkeypatch.setattr(chance, "_BLOCK", block)
        for (a, b, k), w in zip(cases, want):
            got = cka_permutation_moments(a, b, kernel=k)
            assert got.skew == pytest.approx(w.skew, rel=1e-12, abs=1e-14)


def gram_state_of(x: np.ndarray) -> GramState:
    xc = center(x)
    k = double_center_gram(xc @ xc.T)
    return GramState(k, float(np.vdot(k, k)), 0.0)


@pytest.mark.parametrize("seed", range(4))
def test_feature_space_route_equals_the_n_by_n_route(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 90))
    x = rng.standard_normal((n, int(rng.integers(2, 12)))) ** 2 + 1e3  # offset: centring must be exact
    y = np.tanh((x[:, :2] - 1e3) @ rng.standard_normal((2, 5)) + rng.standard_normal((n, 5)))
    lin_a, lin_b = prepare_linear(x), prepare_linear(y)
    assert lin_a.gram is None and lin_b.gram is None
    fa, fb = kernel_invariants(lin_a), kernel_invariants(lin_b)
    ga, gb = kernel_invariants(gram_state_of(x)), kernel_invariants(gram_state_of(y))
    for key in fa.shifted:
        scale = max(abs(ga.shifted[key]), ga.shifted["T2"] ** (len(key) / 2 if key != "T" else 0.5), 1.0)
        assert record("feature_vs_gram_invariant", fa.shifted[key] / scale, ga.shifted[key] / scale) <= 1e-12, key
    mf, mg = permutation_moments(fa, fb), permutation_moments(ga, gb)
    for got, want in ((mf.mean, mg.mean), (mf.variance, mg.variance), (mf.third, mg.third)):
        assert record("feature_vs_gram_moment_rel", got / want, 1.0) <= 1e-12
    # the mean formula on explicit N x N kernels
    k, l = ga, gb
    e0 = k.trace * l.trace / ((n - 1) * k.fro * l.fro)
    assert record("mean_formula", cka_chance_mean(lin_a, lin_b), e0) <= 1e-12
    assert cka_permutation_moments(x, y).mean == pytest.approx(e0, abs=1e-12)


def josse_variance(x: np.ndarray, y: np.ndarray) -> float:
    """Var(RV) of Josse, Pages & Husson (2008, eq. 3; Kazi-Aoual et al. 1995), from explicit Grams."""
    n = x.shape[0]

    def beta_tau(w: np.ndarray) -> tuple[float, float]:
        t, t2, s2 = np.trace(w), np.sum(w * w), np.sum(np.diag(w) ** 2)
        beta = t * t / t2
        tau = (n - 1) / ((n - 3) * (n - 1 - beta)) * (n * (n + 1) * s2 / t2 - (n - 1) * (beta + 2))
        return beta, tau

    (bx, tx), (by, ty) = beta_tau(center(x) @ center(x).T), beta_tau(center(y) @ center(y).T)
    return 2 * (n - 1 - bx) * (n - 1 - by) / ((n + 1) * (n - 1) ** 2 * (n - 2)) * (1 + (n - 3) / (2 * n * (n - 1)) * tx * ty)


@pytest.mark.parametrize("n", [9, 40, 250])
def test_variance_equals_the_published_rv_formula(n):
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal((n, 3)) ** 2, rng.standard_normal((n, 6))
    got = cka_permutation_moments(x, y, third=False)
    assert got.skew is None
    assert record("josse_variance_rel", got.std**2 / josse_variance(x, y), 1.0) <= 1e-12


def test_rank_one_sides_have_the_squared_correlation_null_mean():
    """Linear CKA of two single columns is r^2; over permutations E[r^2] = 1/(n-1) exactly."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 1)), rng.exponential(size=(30, 1))
    got = cka_permutation_moments(x, y)
    assert got.mean == pytest.approx(1 / 29, abs=1e-15)
    assert got.value == pytest.approx(np.corrcoef(x[:, 0], y[:, 0])[0, 1] ** 2, abs=1e-12)
    assert got.skew > 1.5  # r^2 is strongly right-skewed: the Pearson III matters


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 6), fa=st.integers(1, 8), fb=st.integers(1, 8))
def test_hypothesis_enumeration_for_random_shapes(seed, n, fa, fb):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa))
    y = np.round(rng.standard_normal((n, fb)), 1)
    if np.ptp(center(x)) < 1e-9 or np.ptp(center(y)) < 1e-9:
        return
    null = enumerate_null("cka", x, y)
    got = cka_permutation_moments(x, y)
    assert abs(got.mean - null.mean()) <= 1e-12
    assert abs(got.std**2 - null.var()) <= 1e-12
    assert abs(got.std**3 * (got.skew or 0.0) - np.mean((null - null.mean()) ** 3)) <= 1e-12


# ------------------------------------------------------------------------------------ calibration


def test_p_moments_is_uniform_on_independent_data():
    ps = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((25, 2)) ** 2  # skewed, few dimensions: a skewed null
        y = rng.exponential(size=(25, 3))
        ps.append(cka_permutation_moments(x, y).p_value)
    ks = sps.kstest(ps, "uniform")
    WORST["ks_pvalue_min"] = min(WORST.get("ks_pvalue_min", 1.0), ks.pvalue)
    assert ks.pvalue > 0.01, ks
    # not vacuous: a real effect is far from uniform
    effect = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((25, 2))
        effect.append(cka_permutation_moments(x, x[:, :1] + rng.standard_normal((25, 1))).p_value)
    assert sps.kstest(effect, "uniform").pvalue < 1e-6


def calibration_examples() -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for kernel in ("linear", "rbf"):
        found = 0
        for seed in range(60):
            rng = np.random.default_rng(1000 + seed)
            x = rng.standard_normal((30, 3)) ** 2
            y = 0.25 * x[:, :1] + rng.standard_normal((30, 2))
            p = cka_permutation_moments(x, y, kernel=kernel).p_value
            if 0.01 <= p <= 0.5:
                out.append((kernel, x, y))
                found += 1
            if found == 4:
                break
    return out


def test_p_moments_matches_a_9999_permutation_p_value():
    examples = calibration_examples()
    assert len(examples) == 8
    for kernel, x, y in examples:
        bound = parse_metric(f"cka:kernel={kernel}")
        exact = cka_permutation_moments(x, y, kernel=kernel)
        perm = permutation_null(bound, x, y, 9999, seed=7)
        assert 0.01 <= perm.p_value <= 0.5
        assert record("p_moments_vs_perm", exact.p_value, perm.p_value) <= 0.02, (kernel, exact.p_value, perm.p_value)
        # the exact moments agree with the sample moments of the 9,999 permutations
        assert exact.mean == pytest.approx(perm.null_mean, abs=4 * exact.std / np.sqrt(9999))


# ------------------------------------------------------------------------------------ adjusted CKA and errors


def test_adjusted_cka_is_the_chance_corrected_value():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 3))
    for kernel in ("linear", "rbf"):
        raw = parse_metric(f"cka:kernel={kernel}").compute(x, y)
        adj = parse_metric(f"cka:kernel={kernel},adjusted=true").compute(x, y)
        cl = cka_permutation_moments(x, y, kernel=kernel)
        assert adj.value == pytest.approx((raw.value - cl.mean) / (1 - cl.mean), abs=1e-14)
        assert adj.value == pytest.approx(cl.adjusted, abs=1e-14)
        assert adj.details["raw"] == pytest.approx(raw.value, abs=1e-15)
        assert parse_metric(f"cka:kernel={kernel},adjusted=true").compute(x, x).value == pytest.approx(1.0, abs=1e-12)
    # the mean of adjusted CKA over all permutations is exactly 0
    small_x, small_y = x[:6], y[:6]
    assert enumerate_null("cka:adjusted=true", small_x, small_y).mean() == pytest.approx(0.0, abs=1e-14)
    bound = parse_metric("cka:adjusted=true")
    assert bound.value_range == (-float("inf"), 1.0)
    assert bound.invariances == parse_metric("cka").invariances
    assert bound.min_n == 3


def test_refusals_are_clear_repsim_errors():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    with pytest.raises(RepsimError, match="adjusted=true and debiased=true"):
        parse_metric("cka:adjusted=true,debiased=true").compute(x, y)
    for spec in ("cka:debiased=true", "hsic:debiased=true"):
        bound = parse_metric(spec)
        with pytest.raises(RepsimError, match="null mean of ~0"):
            chance_level(bound, bound.prepare(x), bound.prepare(y))
    bound = parse_metric("cca")
    with pytest.raises(RepsimError, match="cka and hsic only"):
        chance_level(bound, bound.prepare(x), bound.prepare(y))
    with pytest.raises(RepsimError, match="adjusted CKA is undefined"):
        parse_metric("cka:adjusted=true").compute(x[:2], y[:2])
    with pytest.raises(RepsimError, match="different numbers of inputs"):
        cka_permutation_moments(x, y[:9])
    with pytest.raises(RepsimError, match="rank 0"):
        cka_permutation_moments(np.ones((10, 2)), y)


def test_constant_null_gives_p_one_and_no_z():
    """N = 2: every permutation gives CKA = 1; nothing to test."""
    x, y = np.array([[0.0, 1.0], [1.0, 3.0]]), np.array([[2.0], [5.0]])
    got = hsic_permutation_moments(x, y)
    assert got.std == 0.0 or got.z is None
    assert got.p_value == 1.0 and got.z is None and got.skew is None


def test_record_keys():
    rng = np.random.default_rng(0)
    rec = cka_permutation_moments(rng.standard_normal((12, 2)), rng.standard_normal((12, 2))).as_record()
    assert set(rec) == {"null_mean_exact", "null_std_exact", "null_skew_exact", "z_exact", "p_moments", "adjusted"}
    assert all(isinstance(v, float) for v in rec.values())


def test_report_worst_disagreements(capsys):
    """Prints the worst disagreements gathered above (pytest -s shows them; the closing note quotes them)."""
    with capsys.disabled():
        for key, value in sorted(WORST.items()):
            print(f"\n  chance {key}: {value:.3g}", end="")


def test_chance_grid_equals_cell_by_cell_levels():
    from repsim_cli.metrics.chance import chance_grid

    rng = np.random.default_rng(4)
    for spec in ("cka", "hsic:kernel=rbf"):
        bound = parse_metric(spec)
        states = [bound.prepare(rng.standard_normal((20, f)) ** 2) for f in (1, 3, 25)]
        values = np.array([[bound.pair(a, b).value for b in states] for a in states])
        values[0, 2] = np.nan  # a cell not computed stays NaN
        grid = chance_grid(bound, states, states, values)
        for i, j in itertools.product(range(3), repeat=2):
            if (i, j) == (0, 2):
                assert np.isnan(grid.mean[i, j]) and np.isnan(grid.p_value[i, j])
                continue
            cell = chance_level(bound, states[i], states[j], values[i, j])
            assert grid.mean[i, j] == cell.mean and grid.p_value[i, j] == cell.p_value
            assert grid.z[i, j] == cell.z and (np.isnan(grid.adjusted[i, j]) if spec != "cka" else grid.adjusted[i, j] == cell.adjusted)
