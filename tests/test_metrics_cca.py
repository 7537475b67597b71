"""CCA family against independent routes: covariance-based CCA, lstsq, explicit PWCCA and SVCCA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import cca, linear_regression_r2, parse_metric, pwcca, svcca

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def inv_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(w)) @ v.T


def cov_cca(x: np.ndarray, y: np.ndarray, centered: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """rho = singular values of Sxx^{-1/2} Sxy Syy^{-1/2} (textbook CCA); also the X-side weights."""
    if centered:
        x = x - x.mean(axis=0)
        y = y - y.mean(axis=0)
    n = x.shape[0]
    sxx, syy, sxy = x.T @ x / (n - 1), y.T @ y / (n - 1), x.T @ y / (n - 1)
    m = inv_sqrt(sxx) @ sxy @ inv_sqrt(syy)
    u, rho, _ = np.linalg.svd(m, full_matrices=False)
    return rho, inv_sqrt(sxx) @ u  # canonical weight vectors a_i (columns)


def pair(seed: int, n: int, fa: int, fb: int, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) @ rng.standard_normal((fa, fa)) + 2.0
    y = x[:, : min(fa, fb)] @ rng.standard_normal((min(fa, fb), fb)) + noise * rng.standard_normal((n, fb)) - 1.0
    return x, y


@pytest.mark.parametrize("shape", [(50, 4, 6), (40, 7, 3), (30, 5, 5)])
def test_cca_matches_covariance_route(shape):
    for seed in range(4):
        x, y = pair(seed, *shape)
        rho, _ = cov_cca(x, y)
        assert record("cca mean_rho", cca(x, y), rho.mean()) <= 1e-12
        assert record("cca r2", cca(x, y, stat="r2"), np.mean(rho**2)) <= 1e-12


def kornblith_example():
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = x + np.random.randn(100, 10)
    return x, y


def test_kornblith_r2_cca_golden_values():
    x, y = kornblith_example()
    assert cca(x, y, stat="r2") == pytest.approx(0.54540, abs=5e-6)  # centered, what repsim computes
    rho_uncentered, _ = cov_cca(x, y, centered=False)  # independent route on the raw (uncentered) data
    assert np.mean(rho_uncentered**2) == pytest.approx(0.54312, abs=5e-6)
    rho, _ = cov_cca(x, y)
    assert record("cca r2 (Kornblith)", cca(x, y, stat="r2"), np.mean(rho**2)) <= 1e-12


@pytest.mark.parametrize("shape", [(60, 5, 3), (40, 3, 6), (50, 4, 4)])
def test_lr_matches_lstsq(shape):
    for seed in range(3):
        x, y = pair(seed, *shape)
        for predict, (src, dst) in (("b", (x, y)), ("a", (y, x))):
            design = np.column_stack([np.ones(len(src)), src])
            coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
            resid = dst - design @ coef
            dc = dst - dst.mean(axis=0)
            want = 1.0 - np.sum(resid**2) / np.sum(dc**2)
            assert record("lr", linear_regression_r2(x, y, predict=predict), want) <= 1e-12


def pwcca_ref(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019 Table 1 via covariance CCA: h_i = Xc a_i / ||Xc a_i||, alpha_i = sum_j |<h_i, x_j>|."""
    xc = x - x.mean(axis=0)
    rho, a = cov_cca(x, y)
    h = xc @ a
    h /= np.linalg.norm(h, axis=0)
    alpha = np.abs(h.T @ xc).sum(axis=1)
    return float(alpha @ rho / alpha.sum())


@pytest.mark.parametrize("shape", [(60, 5, 3), (50, 3, 6), (40, 4, 4)])
def test_pwcca_matches_explicit_route(shape):
    for seed in range(3):
        x, y = pair(seed, *shape)
        assert record("pwcca", pwcca(x, y), pwcca_ref(x, y)) <= 1e-12
        assert record("pwcca", pwcca(x, y, weights="b"), pwcca_ref(y, x)) <= 1e-12
    assert pwcca(x, y) != pytest.approx(pwcca(y, x), abs=1e-6)  # not symmetric


def svcca_ref(x: np.ndarray, y: np.ndarray, var: float) -> tuple[float, int, int]:
    def reduce(z):
        zc = z - z.mean(axis=0)
        u, s, _ = np.linalg.svd(zc, full_matrices=False)
        total, acc, k = float(np.sum(s**2)), 0.0, 0
        while acc < var * total * (1 - 1e-12):
            acc += s[k] ** 2
            k += 1
        return u[:, :k] * s[:k], k

    rx, kx = reduce(x)
    ry, ky = reduce(y)
    rho, _ = cov_cca(rx, ry)
    return float(rho.mean()), kx, ky


@pytest.mark.parametrize("var", [0.5, 0.9, 0.99, 1.0])
def test_svcca_matches_explicit_truncation(var):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 8)) * np.geomspace(10, 0.1, 8)
    y = x @ rng.standard_normal((8, 6)) + 0.5 * rng.standard_normal((80, 6))
    want, kx, ky = svcca_ref(x, y, var)
    r = parse_metric(f"svcca:var={var}").compute(x, y)
    assert record("svcca", r.value, want) <= 1e-12
    assert (r.details["k_a"], r.details["k_b"]) == (kx, ky)
    if var < 1:
        assert kx < 8  # the spread spectrum really drops directions


def test_svcca_full_variance_is_cca():
    x, y = pair(3, 40, 5, 4)
    assert svcca(x, y, var=1.0) == pytest.approx(cca(x, y), abs=1e-12)


@pytest.mark.parametrize("name", ["cca", "svcca", "pwcca", "lr"])
def test_dead_and_duplicated_units_drop_out(name):
    x, y = pair(5, 40, 4, 3)
    noisy = np.column_stack([x, x[:, 0] * 3.0, np.full(40, 7.0), x[:, 1] + x[:, 2]])
    if name == "svcca":  # duplicates change the variance spectrum (and so k); a dead unit does not
        noisy = np.column_stack([x, np.full(40, 7.0)])
    bound = parse_metric(name)
    want = bound.compute(x, y).value
    r = bound.compute(noisy, y)
    if name == "pwcca":
        # weights sum |<h_i, x_j>| over all of A's columns, so duplicated units change the weights
        assert r.value == pytest.approx(pwcca_ref_generic(noisy, y), abs=1e-10)
    else:
        assert record(f"{name} rank-deficient", r.value, want) <= 1e-10
    if name in ("cca", "pwcca"):
        assert r.details["rank_a"] == 4


def pwcca_ref_generic(x: np.ndarray, y: np.ndarray) -> float:
    """PWCCA via a pseudo-inverse-free route for rank-deficient X: basis from a rank-revealing QR."""
    from scipy.linalg import qr

    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    qx, rx, _ = qr(xc, mode="economic", pivoting=True)
    qy, ry, _ = qr(yc, mode="economic", pivoting=True)
    qx = qx[:, : np.linalg.matrix_rank(xc)]
    qy = qy[:, : np.linalg.matrix_rank(yc)]
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    h = qx @ u
    alpha = np.abs(h.T @ xc).sum(axis=1)
    return float(alpha @ rho / alpha.sum())


@pytest.mark.parametrize("name", ["cca", "svcca", "pwcca", "lr"])
def test_wide_layers_warn_kornblith_theorem_1(name):
    x, y = pair(1, 12, 11, 4)  # F_A = N - 1
    r = parse_metric(name).compute(x, y)
    assert any("Theorem 1" in w for w in r.warnings)
    assert parse_metric(name).compute(*pair(1, 40, 5, 4)).warnings == []
    if name in ("cca", "lr"):
        assert r.value == pytest.approx(1.0, abs=1e-10)  # every rho is 1: meaningless, as warned


@pytest.mark.parametrize("name", ["cca", "svcca", "pwcca", "lr"])
def test_rank_zero_side_is_an_error(name):
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(RepsimError, match="rank 0"):
        parse_metric(name).compute(x, np.full((10, 2), 1e4, dtype=np.float32))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(8, 30), fa=st.integers(1, 5), fb=st.integers(1, 5))
def test_cca_family_properties(seed, n, fa, fb):
    x, y = pair(seed, n, fa, fb)
    rho, _ = cov_cca(x, y)
    assert record("cca (hypothesis)", cca(x, y, stat="r2"), float(np.mean(rho**2))) <= 1e-9
    for name in ("cca", "svcca", "pwcca", "lr", "cca:stat=r2", "lr:predict=a"):
        v = parse_metric(name).compute(x, y).value
        assert -1e-12 <= v <= 1 + 1e-12


def test_float32_offset_cca():
    rng = np.random.default_rng(4)
    x32 = (1e4 + rng.standard_normal((200, 8))).astype(np.float32)
    y32 = (1e4 + rng.standard_normal((200, 6)) + x32[:, :1] - 1e4).astype(np.float32)
    x64, y64 = x32.astype(np.float64) - 1e4, y32.astype(np.float64) - 1e4
    rho, _ = cov_cca(x64, y64)
    assert record("cca float32 offset", cca(x32, y32), rho.mean()) <= 1e-9
    assert record("pwcca float32 offset", pwcca(x32, y32), pwcca_ref(x64, y64)) <= 1e-9


def test_report_worst_disagreements():
    for name, err in sorted(WORST.items()):
        print(f"worst |repsim - independent| {name}: {err:.2e}")


def test_pwcca_warns_when_canonical_correlations_are_tied_at_one():
    from repsim_cli.metrics import parse_metric

    rng = np.random.default_rng(0)
    shared = rng.standard_normal((200, 3))
    x = np.hstack([shared, rng.standard_normal((200, 4))])
    y = np.hstack([shared @ rng.standard_normal((3, 3)), rng.standard_normal((200, 5))])
    res = parse_metric("pwcca").compute(x, y)
    assert any("3 canonical correlations are tied at 1" in w for w in res.warnings)
    clean = parse_metric("pwcca").compute(x, rng.standard_normal((200, 5)))
    assert not any("tied" in w for w in clean.warnings)
