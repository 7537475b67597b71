"""Intervals that describe the estimate (issue 14): jackknife downdates, BCa, defaults, calibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from repsim_cli import stats
from repsim_cli.errors import RepsimError
from repsim_cli.metrics import parse_metric
from repsim_cli.stats import intervals

DOWNDATED = ["cka", "cka:debiased=true", "hsic", "hsic:debiased=true", "procrustes", "procrustes:stat=distance",
             "procrustes:stat=angle", "cca", "cca:stat=r2"]


def related(n: int, fa: int, fb: int, seed: int = 0, offset: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) + offset
    y = x[:, :1] @ rng.standard_normal((1, fb)) + rng.standard_normal((n, fb))
    return x, y


def brute_force(metric, x, y) -> np.ndarray:
    return np.array([metric.compute(np.delete(x, i, 0), np.delete(y, i, 0)).value for i in range(x.shape[0])])


@pytest.mark.parametrize("spec", DOWNDATED)
@pytest.mark.parametrize("shape", [(30, 4, 3), (20, 40, 6), (15, 30, 25), (25, 6, 30)])
def test_jackknife_downdates_equal_brute_force_delete_one(spec, shape):
    x, y = related(*shape)
    metric = parse_metric(spec)
    jk = intervals.jackknife(metric, x, y)
    assert jk.route == "downdate"
    expected = brute_force(metric, x, y)
    scale = max(1.0, float(np.abs(expected).max()))  # hsic is not bounded: compare relative to its size
    np.testing.assert_allclose(jk.values, expected, rtol=0, atol=1e-10 * scale)
    assert jk.estimate == pytest.approx(metric.compute(x, y).value, abs=1e-14 * scale)


@pytest.mark.parametrize("spec", ["matched", "rsa", "svcca", "procrustes:align=permutation"])
def test_other_metrics_recompute_and_say_what_it_costs(spec):
    x, y = related(15, 4, 3, seed=2)
    metric = parse_metric(spec)
    jk = intervals.jackknife(metric, x, y)
    assert jk.route == "recompute"
    np.testing.assert_allclose(jk.values, brute_force(metric, x, y), rtol=0, atol=1e-14)
    res = stats.bootstrap_interval(metric, x, y, 20, ci_method="jackknife")
    assert any("recomputed the index N = 15 times" in w for w in res.warnings)


def test_large_n_without_downdates_uses_a_seeded_grouped_jackknife():
    """Beyond max_groups inputs: delete-d over a seeded random partition, G recomputations."""
    x, y = related(53, 4, 3, seed=5)
    metric = parse_metric("matched")
    jk = intervals.jackknife(metric, x, y, max_groups=10, seed=7)
    parts = intervals.group_partition(53, 10, 7)
    assert jk.route == "grouped" and len(parts) == 10 and sorted(np.concatenate(parts).tolist()) == list(range(53))
    assert {p.size for p in parts} == {5, 6}
    expected = [metric.compute(np.delete(x, p, 0), np.delete(y, p, 0)).value for p in parts]
    np.testing.assert_allclose(jk.values, expected, rtol=0, atol=1e-14)
    assert jk.se == pytest.approx(np.sqrt(9 / 10 * np.sum((jk.values - np.mean(jk.values)) ** 2)))
    again = intervals.jackknife(metric, x, y, max_groups=10, seed=7)
    assert np.array_equal(again.values, jk.values)
    big_x, big_y = related(260, 3, 3, seed=6)
    res = stats.bootstrap_interval(metric, big_x, big_y, 10, ci_method="jackknife")
    assert res.values.size == intervals.MAX_GROUPS and any("grouped jackknife, 200 recomputations" in w for w in res.warnings)


def test_jackknife_standard_error_and_interval_by_hand():
    x, y = related(40, 5, 4, seed=3)
    metric = parse_metric("cka")
    t = brute_force(metric, x, y)
    se = np.sqrt((t.size - 1) / t.size * np.sum((t - t.mean()) ** 2))
    estimate = metric.compute(x, y).value
    res = stats.bootstrap_interval(metric, x, y, 50, ci=0.9, seed=0, ci_method="jackknife", observed=estimate)
    assert res.se == pytest.approx(se, rel=1e-10)
    z = norm.ppf(0.95)
    assert (res.ci_low, res.ci_high) == pytest.approx((estimate - z * se, estimate + z * se), rel=1e-10)
    rec = res.as_record()
    assert rec["ci_method"] == "jackknife" and rec["bootstrap"] == 0 and rec["jackknife_se"] == pytest.approx(se)


def test_bca_follows_efrons_formula():
    x, y = related(40, 5, 4, seed=4)
    metric = parse_metric("cka")
    estimate = metric.compute(x, y).value
    res = stats.bootstrap_interval(metric, x, y, 200, ci=0.9, seed=1, ci_method="bca", observed=estimate)
    pct = stats.bootstrap_interval(metric, x, y, 200, ci=0.9, seed=1, ci_method="percentile")
    boot = pct.values  # the same resamples
    np.testing.assert_array_equal(res.values, boot)
    t = brute_force(metric, x, y)
    d = t.mean() - t
    a = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    z0 = norm.ppf((np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / boot.size)
    q = [norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in norm.ppf([0.05, 0.95])]
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(boot, q)), rel=1e-12)
    assert res.as_record()["ci_method"] == "bca" and res.bootstrap == 200
    # CKA's resamples are shifted upwards: BCa moves the interval down, towards the estimate
    assert res.ci_low < pct.ci_low and res.ci_high < pct.ci_high


def test_defaults_and_validation():
    for spec in ("cka", "cka:debiased=true", "hsic", "procrustes", "cca", "svcca", "pwcca", "lr", "matched", "meanmax"):
        m = parse_metric(spec)
        assert intervals.default_ci_method(m, stats.needs_distinct_rows(m)) == "jackknife", spec
    for spec in ("rsa", "knn", "cka:kernel=rbf,debiased=true"):
        m = parse_metric(spec)
        assert intervals.default_ci_method(m, stats.needs_distinct_rows(m)) == "percentile", spec
    x, y = related(20, 3, 3)
    assert stats.bootstrap_interval(parse_metric("rsa"), x, y, 10).as_record()["ci_method"] == "percentile"
    with pytest.raises(RepsimError, match="ci_method"):
        stats.bootstrap_interval(parse_metric("cka"), x, y, 10, ci_method="normal")


def test_the_default_interval_lies_around_the_estimate_where_the_percentile_one_does_not():
    """The issue's example: independent X, Y, N = 500; the percentile interval lies above CKA."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((500, 20)), rng.standard_normal((500, 20))
    metric = parse_metric("cka")
    estimate = metric.compute(x, y).value
    pct = stats.bootstrap_interval(metric, x, y, 100, seed=0, ci_method="percentile", observed=estimate)
    default = stats.bootstrap_interval(metric, x, y, 100, seed=0, observed=estimate)
    assert pct.ci_low > estimate and any("outside its" in w for w in pct.warnings)
    assert default.ci_method == "jackknife" and default.ci_low < estimate < default.ci_high
    assert not any("outside its" in w for w in default.warnings)


N, F = 300, 3


def draw(rng: np.random.Generator, rho: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((N, F))
    return x, rho * x + rng.standard_normal((N, F))


@pytest.mark.parametrize("spec", ["cka", "cka:debiased=true", "procrustes"])
@pytest.mark.parametrize("rho", [0.3])
def test_default_interval_covers_the_estimators_expectation(spec, rho):
    """200 datasets of N = 300 from one population (y = rho x + e, F = 3): the default 95% interval
    contains E[estimate] (mean over 2,000 further draws) in 90-99% of them."""
    metric = parse_metric(spec)
    rng = np.random.default_rng(123)
    expectation = np.mean([metric.compute(*draw(rng, rho)).value for _ in range(2000)])
    covered = 0
    for s in range(200):
        x, y = draw(np.random.default_rng(10_000 + s), rho)
        res = stats.bootstrap_interval(metric, x, y, 199, ci=0.95, seed=s)
        assert res.ci_method == "jackknife"
        covered += res.ci_low <= expectation <= res.ci_high
    print(f"{spec} rho={rho}: coverage {covered / 200:.3f} of E = {expectation:.4f}")
    assert 0.90 <= covered / 200 <= 0.99


@pytest.mark.parametrize("spec", ["procrustes", "procrustes:stat=distance", "procrustes:stat=angle", "cca", "cca:stat=r2"])
@pytest.mark.parametrize("shape", [(47, 5, 4), (40, 60, 7)])
def test_grouped_downdates_equal_brute_force_group_deletion(spec, shape, monkeypatch):
    """Large N x r: Procrustes and CCA delete groups by downdates (C - Z_g^T W_g - s s^T/(N-d))."""
    monkeypatch.setattr(intervals, "_DELETE_ONE_FLOPS", 0.0)
    x, y = related(*shape, seed=8)
    metric = parse_metric(spec)
    jk = intervals.jackknife(metric, x, y, max_groups=9, seed=3)
    assert jk.route == "grouped-downdate" and jk.values.size == 9
    parts = intervals.group_partition(shape[0], 9, 3)
    expected = [metric.compute(np.delete(x, p, 0), np.delete(y, p, 0)).value for p in parts]
    np.testing.assert_allclose(jk.values, expected, rtol=0, atol=1e-10)
    res = stats.bootstrap_interval(metric, x, y, 10, ci_method="jackknife")
    assert res.ci_method == "jackknife"
