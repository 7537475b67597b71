"""Statistics: permutation nulls, bootstrap intervals and the group test, against brute force."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from repsim_cli import stats
from repsim_cli.errors import RepsimError
from repsim_cli.metrics import REGISTRY, Metric, MetricResult, parse_metric
from repsim_cli.render import to_json

CKA = parse_metric("cka")


def correlated(rng: np.random.Generator, n: int, fx: int, fy: int, noise: float = 0.5):
    x = rng.standard_normal((n, fx))
    y = x @ rng.standard_normal((fx, fy)) + noise * rng.standard_normal((n, fy))
    return x, y


# ------------------------------------------------------------------ permutations and seeds


def test_permutation_indices_kth_row_fixed_and_valid():
    p10 = stats.permutation_indices(15, 10, seed=4)
    p3 = stats.permutation_indices(15, 3, seed=4)
    assert np.array_equal(p10[:3], p3)
    assert all(np.array_equal(np.sort(p), np.arange(15)) for p in p10)
    assert not np.array_equal(p10, stats.permutation_indices(15, 10, seed=5))
    # child k of SeedSequence(seed).spawn, as documented
    child = np.random.SeedSequence(4).spawn(3)[2]
    assert np.array_equal(np.random.default_rng(child).permutation(15), p10[2])


def test_permutation_pvalue_never_zero_and_counts_ties():
    null = np.array([0.1, 0.2, 0.3, 0.5])
    assert stats.permutation_pvalue(0.9, null) == 1 / 5
    assert stats.permutation_pvalue(0.3, null) == 3 / 5  # tie counted
    assert stats.permutation_pvalue(0.0, null, higher_is_similar=False) == 1 / 5
    assert stats.permutation_pvalue(0.2, null, higher_is_similar=False) == 3 / 5


def _variants():
    """Every registry metric with a permute fast path: defaults, then each choice value alone."""
    out = []
    for metric in REGISTRY.values():
        if metric.permute is None:
            continue
        out.append(metric.bind())
        for p in metric.params:
            for choice in p.choices or ():
                if choice != p.default:
                    out.append(metric.bind(**{p.name: choice}))
    return out


VARIANTS = _variants()


@pytest.mark.parametrize("bound", VARIANTS, ids=[b.spec for b in VARIANTS])
@pytest.mark.parametrize("shape", [(40, 6, 5), (14, 20, 17)], ids=["N>F", "F>N"])
def test_fast_path_equals_brute_force_for_every_permutation(bound, shape):
    n, fx, fy = shape
    rng = np.random.default_rng(7)
    x, y = correlated(rng, n, fx, fy)
    perms = stats.permutation_indices(n, 6, seed=11)
    try:
        brute = np.array([bound.compute(x, y[p]).value for p in perms])
    except RepsimError as exc:  # e.g. CCA refuses F > N: nothing to compare
        pytest.skip(f"{bound.spec} undefined here: {exc}")
    result = stats.permutation_null(bound, x, y, 6, seed=11)
    assert np.max(np.abs(result.null - brute)) < 1e-10
    assert result.observed == pytest.approx(bound.compute(x, y).value, abs=1e-12)
    recomputed = stats.permutation_null(bound, x, y, 6, seed=11, fast=False)
    assert np.max(np.abs(recomputed.null - brute)) < 1e-10


def test_linear_cka_fast_path_in_both_regimes_and_debiased():
    rng = np.random.default_rng(3)
    for spec, (n, fx, fy) in itertools.product(["cka", "cka:debiased=true", "hsic"], [(60, 8, 5), (12, 30, 25), (12, 30, 6)]):
        m = parse_metric(spec)
        x, y = correlated(rng, n, fx, fy)
        perms = stats.permutation_indices(n, 25, seed=2)
        res = stats.permutation_null(m, x, y, 25, seed=2)
        brute = [m.compute(x, y[p]).value for p in perms]
        np.testing.assert_allclose(res.null, brute, rtol=0, atol=1e-10, err_msg=f"{spec} {n}x{fx}/{fy}")


def test_permutation_record_contract_and_reproducible():
    rng = np.random.default_rng(0)
    x, y = correlated(rng, 30, 5, 4)
    a = stats.permutation_null(CKA, x, y, 49, seed=9)
    b = stats.permutation_null(CKA, x, y, 49, seed=9)
    c = stats.permutation_null(CKA, x, y, 49, seed=10)
    rec = a.as_record()
    assert set(rec) == {"p_value", "null_mean", "null_std", "permutations", "z"}
    assert rec == b.as_record() and np.array_equal(a.null, b.null)
    assert not np.array_equal(a.null, c.null)
    assert rec["permutations"] == 49
    assert rec["null_mean"] == pytest.approx(np.mean(a.null)) and rec["null_std"] == pytest.approx(np.std(a.null, ddof=1))
    assert rec["z"] == pytest.approx((a.observed - np.mean(a.null)) / np.std(a.null, ddof=1))


def test_real_effect_reaches_the_smallest_p_value():
    rng = np.random.default_rng(1)
    x, y = correlated(rng, 50, 6, 6, noise=0.1)
    for spec in ("cka", "cka:debiased=true", "matched"):
        res = stats.permutation_null(parse_metric(spec), x, y, 99, seed=0)
        assert res.p_value == 1 / 100, spec
        assert res.z is not None and res.z > 5


def test_distance_pvalue_counts_lower_values():
    rng = np.random.default_rng(2)
    x, y = correlated(rng, 40, 4, 4, noise=0.1)
    m = parse_metric("procrustes:stat=distance")
    assert not m.higher_is_similar
    res = stats.permutation_null(m, x, y, 49, seed=1)
    assert res.observed < res.null.min()
    assert res.p_value == 1 / 50


def _ks_pvalues(scenario: str, count: int = 200) -> np.ndarray:
    ps = []
    for s in range(count):
        rng = np.random.default_rng(10_000 + s)
        if scenario == "independent":
            x, y = rng.standard_normal((20, 4)), rng.standard_normal((20, 3))
        else:  # a strong relation whose row correspondence is destroyed
            x, y = correlated(rng, 20, 4, 3, noise=0.2)
            y = y[rng.permutation(20)]
        ps.append(stats.permutation_null(CKA, x, y, 99, seed=s).p_value)
    return np.array(ps)


@pytest.mark.parametrize("scenario", ["independent", "shuffled"])
def test_null_pvalues_are_uniform(scenario):
    """Calibration: 200 seeded null p-values (B=99, N=20) pass a KS test against U(0,1) at 0.01."""
    ps = _ks_pvalues(scenario)
    ks = sps.kstest(ps, "uniform")
    print(f"KS {scenario}: statistic {ks.statistic:.4f}, p-value {ks.pvalue:.4f}")
    assert ks.pvalue > 0.01
    assert np.all(ps >= 1 / 100) and np.all(ps <= 1)
    # and the test is not vacuous: a real effect gives p-values far from uniform
    rng = np.random.default_rng(5)
    effect = [stats.permutation_null(CKA, *correlated(rng, 20, 4, 3, noise=0.5), 99, seed=s).p_value for s in range(30)]
    assert sps.kstest(effect, "uniform").pvalue < 1e-6


def _constant_metric() -> Metric:
    return Metric(
        name="const_for_test",
        summary="always 0.5",
        params=(),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset(),
        min_n=2,
        formula="0.5",
        reference="test",
        prepare=lambda x, p: x,
        pair=lambda a, b, p: MetricResult(0.5),
        permute=lambda prep, perm, p: prep[perm],
    )


def test_zero_spread_null_gives_z_none_and_a_warning_never_nan():
    m = _constant_metric().bind()
    rng = np.random.default_rng(0)
    res = stats.permutation_null(m, rng.standard_normal((10, 2)), rng.standard_normal((10, 2)), 19, seed=0)
    rec = res.as_record()
    assert rec["z"] is None and rec["null_std"] == 0.0 and rec["p_value"] == 1.0
    assert any("no spread" in w for w in res.warnings)
    json.loads(to_json({"r": rec}))  # strict JSON: no NaN/Infinity


def test_few_permutations_warn_about_the_smallest_p():
    rng = np.random.default_rng(0)
    res = stats.permutation_null(CKA, *correlated(rng, 20, 3, 3), 9, seed=0)
    assert any("smallest possible p-value is 1/10" in w for w in res.warnings)


def test_bad_arguments_are_repsim_errors():
    x = np.zeros((10, 2))
    with pytest.raises(RepsimError):
        stats.permutation_null(CKA, x, np.zeros((9, 2)), 10)
    with pytest.raises(RepsimError):
        stats.permutation_null(CKA, x, x, 0)
    with pytest.raises(RepsimError, match="seed"):
        stats.permutation_null(CKA, x, x, 5, seed=-1)
    with pytest.raises(RepsimError, match="^ci must lie in"):
        stats.bootstrap_interval(CKA, x, x, 10, ci=1.5)


def test_results_do_not_depend_on_jobs():
    rng = np.random.default_rng(4)
    x, y = correlated(rng, 30, 5, 4)
    for spec, fast in (("cka", True), ("matched", True), ("cka:debiased=true", False)):
        m = parse_metric(spec)
        one = stats.permutation_null(m, x, y, 40, seed=3, jobs=1, fast=fast)
        two = stats.permutation_null(m, x, y, 40, seed=3, jobs=2, fast=fast)
        assert np.array_equal(one.null, two.null), spec
        assert one.as_record() == two.as_record()
    b1 = stats.bootstrap_interval(CKA, x, y, 40, seed=3, jobs=1)
    b2 = stats.bootstrap_interval(CKA, x, y, 40, seed=3, jobs=2)
    assert np.array_equal(b1.values, b2.values) and b1.as_record() == b2.as_record()


def test_progress_counts_every_permutation_and_resample():
    rng = np.random.default_rng(0)
    x, y = correlated(rng, 20, 3, 3)
    seen = []
    stats.permutation_null(CKA, x, y, 21, seed=0, progress=seen.append)
    stats.bootstrap_interval(CKA, x, y, 13, seed=0, progress=seen.append)
    assert sum(seen) == 34


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_uses_the_same_rows_on_both_sides():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 4))
    res = stats.bootstrap_interval(CKA, x, x.copy(), 50, seed=1)
    assert np.allclose(res.values, 1.0, atol=1e-12)  # different rows on each side would give < 1
    assert res.ci_low == pytest.approx(1.0) and res.ci_high == pytest.approx(1.0)


def test_bootstrap_matches_a_hand_loop_and_percentiles():
    rng = np.random.default_rng(1)
    x, y = correlated(rng, 25, 4, 3)
    res = stats.bootstrap_interval(CKA, x, y, 60, ci=0.9, seed=5, ci_method="percentile")
    by_hand = []
    for k in range(60):
        r = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(stats.BOOT_STREAM, k))).integers(0, 25, 25)
        by_hand.append(CKA.compute(x[r], y[r]).value)
    np.testing.assert_allclose(res.values, by_hand, rtol=0, atol=1e-14)
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(by_hand, [0.05, 0.95])))
    rec = res.as_record()
    assert rec["bootstrap"] == 60 and rec["ci"] == 0.9 and rec["bootstrap_rows"] == "all"
    assert set(rec) >= {"ci_low", "ci_high", "bootstrap", "ci"}


def test_debiased_bootstrap_uses_distinct_rows_which_removes_the_duplicate_bias():
    """Duplicated rows look like dependence to the unbiased HSIC: with all rows, independent
    data gets a clearly positive bootstrap mean; with distinct rows only it stays near the estimate."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((100, 5)), rng.standard_normal((100, 5))
    m = parse_metric("cka:debiased=true")
    full = m.compute(x, y).value
    kept = stats.bootstrap_interval(m, x, y, 200, seed=0, unique_rows=False, ci_method="percentile")
    uniq = stats.bootstrap_interval(m, x, y, 200, seed=0, ci_method="percentile")  # debiased: unique rows
    assert uniq.unique_rows and uniq.as_record()["bootstrap_rows"] == "unique"
    assert any("distinct rows" in w for w in uniq.warnings)
    assert kept.values.mean() - full > 0.03
    assert abs(uniq.values.mean() - full) < 0.01
    rows = stats.bootstrap_rows(100, 0, 3, unique=True)
    assert np.array_equal(rows, np.unique(rows)) and rows.size < 100


def test_bootstrap_skips_undefined_resamples_with_a_warning():
    x = np.zeros((12, 2))
    x[0] = 1.0  # only row 0 varies: resamples missing row 0 are rank 0 (CKA undefined)
    y = np.random.default_rng(0).standard_normal((12, 2))
    res = stats.bootstrap_interval(CKA, x, y, 80, seed=0, ci_method="percentile")
    assert res.bootstrap < 80
    assert any("undefined and skipped" in w for w in res.warnings)
    assert np.all(np.isfinite(res.values))


def test_bootstrap_coverage_is_near_nominal():
    """Seeded simulation: x ~ N(0, I_2), y = x + e, e ~ N(0, I_2): population linear CKA = 1/2."""
    sims, covered = 200, 0
    for s in range(sims):
        rng = np.random.default_rng(20_000 + s)
        x = rng.standard_normal((200, 2))
        y = x + rng.standard_normal((200, 2))
        res = stats.bootstrap_interval(CKA, x, y, 199, ci=0.95, seed=s, ci_method="percentile")
        covered += res.ci_low <= 0.5 <= res.ci_high
    coverage = covered / sims
    print(f"bootstrap coverage (nominal 0.95, {sims} simulations): {coverage:.3f}")
    assert 0.90 <= coverage <= 0.99


# ------------------------------------------------------------------ group test


@given(st.lists(st.integers(2, 4), min_size=2, max_size=3))
@settings(max_examples=25, deadline=None)
def test_split_count_and_enumeration_match_brute_force(sizes):
    r = sum(sizes)
    splits = stats.enumerate_splits(sizes)
    assert splits.shape == (stats.count_splits(sizes), r)
    partitions = {frozenset(frozenset(np.flatnonzero(lab == g)) for g in set(lab)) for lab in splits}
    assert len(partitions) == len(splits)  # each listed once
    if r <= 9:  # brute force over every labelled assignment
        labels = np.repeat(np.arange(len(sizes)), sizes)
        brute = {
            frozenset(frozenset(np.flatnonzero(np.array(p) == g)) for g in range(len(sizes)))
            for p in set(itertools.permutations(labels))
        }
        assert partitions == brute


def test_known_split_counts():
    assert stats.count_splits([2, 2]) == 3
    assert stats.count_splits([3, 2]) == 10
    assert stats.count_splits([3, 3]) == 10
    assert stats.count_splits([4, 4]) == 35
    assert stats.count_splits([2, 2, 2]) == 15


def _sims(values: dict[tuple[int, int], float], r: int) -> np.ndarray:
    s = np.full((r, r), np.nan)
    for (i, j), v in values.items():
        s[i, j] = v
    return s


def test_group_statistic_by_hand_and_sign_for_distances():
    rng = np.random.default_rng(0)
    r = 5
    vals = {(i, j): float(rng.uniform()) for i, j in itertools.combinations(range(r), 2)}
    labels = ["a", "a", "a", "b", "b"]
    within = [v for (i, j), v in vals.items() if labels[i] == labels[j]]
    between = [v for (i, j), v in vals.items() if labels[i] != labels[j]]
    res = stats.group_test(_sims(vals, r), labels)
    assert res.layers[0].statistic == pytest.approx(np.mean(within) - np.mean(between))
    assert res.layers[0].within_mean == pytest.approx(np.mean(within))
    dist = stats.group_test(_sims(vals, r), labels, higher_is_similar=False)
    assert dist.layers[0].statistic == pytest.approx(np.mean(between) - np.mean(within))
    # p-values of the two orientations are complementary over the 10 splits (no ties here)
    assert res.layers[0].p_value + dist.layers[0].p_value == pytest.approx(1 + 1 / 10)


def test_two_plus_two_runs_have_three_splits_and_min_p_one_third():
    vals = {(0, 1): 0.9, (2, 3): 0.9, (0, 2): 0.1, (0, 3): 0.1, (1, 2): 0.1, (1, 3): 0.1}
    res = stats.group_test(_sims(vals, 4), ["A", "A", "B", "B"])
    assert res.exact and res.splits == 3 and res.resamples == 3
    assert res.min_p_value == pytest.approx(1 / 3)
    assert res.layers[0].p_value == pytest.approx(1 / 3)  # the strongest possible effect
    assert "smallest p-value this test can give is 0.333" in res.note and "more seeds" in res.note.lower()
    assert res.layers[0].null_mean == 0.0


def test_exact_pvalue_is_a_multiple_of_one_over_splits_and_matches_enumeration():
    rng = np.random.default_rng(3)
    r = 6
    sims = rng.uniform(size=(3, r, r))
    labels = [0, 0, 0, 1, 1, 1]
    res = stats.group_test(sims, labels, n_resamples=999)
    assert res.exact and res.splits == 10 and res.combined is not None
    i, j = np.triu_indices(r, 1)
    # brute force over every labelled assignment (each partition appears twice for 3+3)
    obs = None
    stats_all = []
    for combo in itertools.combinations(range(r), 3):
        lab = np.ones(r, int)
        lab[list(combo)] = 0
        same = lab[i] == lab[j]
        per_layer = [sims[l, i, j][same].mean() - sims[l, i, j][~same].mean() for l in range(3)]
        stats_all.append(per_layer)
        if combo == (0, 1, 2):
            obs = per_layer
    stats_all = np.array(stats_all)
    for l in range(3):
        p = res.layers[l].p_value
        assert p * 10 == pytest.approx(round(p * 10))
        assert p == pytest.approx(np.mean(stats_all[:, l] >= obs[l] - 1e-12))
    comb = stats_all.mean(axis=1)
    assert res.combined.statistic == pytest.approx(np.mean(obs))
    assert res.combined.p_value == pytest.approx(np.mean(comb >= np.mean(obs) - 1e-12))


def test_monte_carlo_labels_null_when_splits_exceed_B():
    rng = np.random.default_rng(4)
    r = 10
    sims = rng.uniform(size=(r, r))
    labels = [0] * 5 + [1] * 5  # 126 splits
    res = stats.group_test(sims, labels, n_resamples=60, seed=2)
    assert not res.exact and res.resamples == 60 and res.splits == 126
    p = res.layers[0].p_value
    assert p * 61 == pytest.approx(round(p * 61))
    assert res.min_p_value == pytest.approx(1 / 61)
    again = stats.group_test(sims, labels, n_resamples=60, seed=2)
    assert again.layers[0].p_value == p
    exact = stats.group_test(sims, labels, n_resamples=999)
    assert exact.exact and exact.min_p_value == pytest.approx(1 / 126) and exact.note is None


def test_group_test_input_errors():
    sims = np.random.default_rng(0).uniform(size=(4, 4))
    with pytest.raises(RepsimError, match="at least 2 groups"):
        stats.group_test(sims, ["a"] * 4)
    with pytest.raises(RepsimError, match="at least 2 runs"):
        stats.group_test(sims, ["a", "a", "a", "b"])
    bad = sims.copy()
    bad[0, 1] = np.nan
    with pytest.raises(RepsimError, match="NaN"):
        stats.group_test(bad, ["a", "a", "b", "b"])


def test_bootstrap_group_null_recomputes_on_shared_rows():
    rng = np.random.default_rng(5)
    n = 60
    base_a, base_b = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
    runs = [base_a + 0.3 * rng.standard_normal((n, 4)) for _ in range(2)]
    runs += [base_b + 0.3 * rng.standard_normal((n, 4)) for _ in range(2)]
    sims = stats.pairwise_matrix(CKA, runs)
    calls = []

    def recompute(rows):
        calls.append(rows)
        return stats.pairwise_matrix(CKA, runs, rows)

    res = stats.group_test(sims, ["A", "A", "B", "B"], null="bootstrap", n_resamples=50, seed=1, recompute=recompute, n_rows=n)
    g = res.layers[0]
    assert len(calls) == 50 and res.resamples == 50 and res.null == "bootstrap"
    assert g.statistic > 0.3 and g.ci_low > 0 and g.fraction_le_zero == 0.0
    assert g.ci_low <= g.statistic <= g.ci_high
    # by hand: resample k's statistic from its rows
    k_rows = stats.bootstrap_rows(n, 1, 7)
    np.testing.assert_array_equal(calls[7], k_rows)
    again = stats.group_test(sims, ["A", "A", "B", "B"], null="bootstrap", n_resamples=50, seed=1, recompute=recompute, n_rows=n)
    assert again.layers[0].as_record() == g.as_record()


def test_pairwise_matrix_matches_compute():
    rng = np.random.default_rng(6)
    runs = [rng.standard_normal((20, 3)) for _ in range(4)]
    m = stats.pairwise_matrix(CKA, runs)
    for i, j in itertools.combinations(range(4), 2):
        assert m[i, j] == pytest.approx(CKA.compute(runs[i], runs[j]).value, abs=1e-14)
    assert np.isnan(m[1, 0]) and np.isnan(m[2, 2])


def test_recommendation_reaches_five_percent():
    sizes, splits = stats.recommend_sizes([2, 2])
    assert sizes == [4, 4] and splits == 35 and 1 / splits <= 0.05
    assert math.isclose(1 / stats.count_splits([3, 2]), 0.1)


def test_bootstrap_keeps_distinct_rows_where_duplicates_bias_the_index_and_flags_shifted_intervals():
    from repsim_cli.metrics import parse_metric
    from repsim_cli.stats import bootstrap_interval, needs_distinct_rows

    assert needs_distinct_rows(parse_metric("knn")) and needs_distinct_rows(parse_metric("rsa"))
    assert needs_distinct_rows(parse_metric("cka:debiased=true"))
    assert not needs_distinct_rows(parse_metric("cka")) and not needs_distinct_rows(parse_metric("cca"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 30))
    y = x @ rng.standard_normal((30, 30)) * 0.3 + rng.standard_normal((80, 30))
    metric = parse_metric("cca")
    observed = metric.compute(x, y).value
    boot = bootstrap_interval(metric, x, y, 50, seed=1, observed=observed, ci_method="percentile")
    assert boot.as_record()["bootstrap_rows"] == "all"
    assert boot.ci_low > observed  # CCA grows as the number of distinct inputs shrinks ...
    assert any("outside its" in w for w in boot.warnings)  # ... and the result says so
    knn = bootstrap_interval(parse_metric("knn:k=5"), x, y, 20, seed=1)
    assert knn.as_record()["bootstrap_rows"] == "unique"
