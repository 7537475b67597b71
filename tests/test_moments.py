"""The moment route (merged first and second moments) equals the in-memory route for every moment metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import REGISTRY, Moments, linear_cka, merge_all, parse_metric
from repsim_cli.metrics.cka import minibatch_cka
from repsim_cli.metrics.moments import moments_of

MOMENT_SPECS = [
    "cka",
    "cka:debiased=true",
    "hsic",
    "hsic:debiased=true",
    "cca",
    "cca:stat=r2",
    "svcca",
    "svcca:var=0.9,stat=r2",
    "pwcca",
    "pwcca:weights=b",
    "lr",
    "lr:predict=a",
    "procrustes",
    "procrustes:stat=distance",
    "procrustes:stat=angle",
    "meanmax",
    "meanmax:direction=b",
    "meanmax:direction=both",
    "matched",
    "matched:absolute=false",
]
NOT_STREAMABLE = ["cka:kernel=rbf", "cka:minibatch=8", "hsic:kernel=rbf", "meanmax:corr=spearman", "matched:corr=spearman", "rsa", "knn"]


def _comparable(result) -> dict:
    """Details that must agree exactly (the matching's correlations agree to rounding only)."""
    return {k: v for k, v in result.details.items() if k not in ("nuclear_norm", "matching")}


def assert_routes_agree(x: np.ndarray, y: np.ndarray, moments: Moments, specs=MOMENT_SPECS) -> float:
    """Every spec: same value (1e-10 relative or 1e-12 absolute), details, warnings and errors. Returns the worst error."""
    worst = 0.0
    for spec in specs:
        metric = parse_metric(spec)
        try:
            expected = metric.compute(x, y)
        except RepsimError:
            with pytest.raises(RepsimError):
                metric.from_moments(moments)
            continue
        got = metric.from_moments(moments)
        if any("tied at 1" in w for w in expected.warnings):  # pwcca: value not unique (both routes warn)
            assert any("tied at 1" in w for w in got.warnings)
            continue
        err = abs(got.value - expected.value)
        # debiased estimators are differences of O(1) terms divided by (n-3): near 0 at tiny N their value
        # cancels, so they are held to 1e-10 absolute there (seen: N=5, 1-row blocks, offset 1e4: 4.5e-12)
        floor = 1e-10 if "debiased=true" in spec and x.shape[0] < 10 else 1e-12
        assert err <= max(1e-10 * abs(expected.value), floor), (spec, expected.value, got.value)
        worst = max(worst, err / max(abs(expected.value), 1e-2))
        assert _comparable(got) == _comparable(expected), spec
        assert len(got.warnings) == len(expected.warnings), (spec, got.warnings, expected.warnings)
        if "matching" in expected.details:  # ties (duplicated units) may pick another optimal matching
            assert len(got.details["matching"]) == len(expected.details["matching"])
    return worst


def offset_pair(rng: np.random.Generator, n: int, fa: int, fb: int, offset: float = 1e4) -> tuple[np.ndarray, np.ndarray]:
    """float32 layers around a large offset (centring must lose nothing), B related to A."""
    x = (rng.standard_normal((n, fa)) * 2 + offset).astype(np.float32)
    mix = rng.standard_normal((fa, fb))
    y = ((x - offset) @ mix + rng.standard_normal((n, fb)) - 0.03 * offset).astype(np.float32)
    return x, y


def test_registry_says_which_metrics_stream():
    for spec in MOMENT_SPECS:
        assert parse_metric(spec).streamable, spec
    for spec in NOT_STREAMABLE:
        metric = parse_metric(spec)
        assert not metric.streamable, spec
        with pytest.raises(RepsimError, match="no moment route"):
            metric.from_moments(Moments.from_block(np.ones((5, 2)), np.ones((5, 2))))
    streamable = {name for name, m in REGISTRY.items() if m.from_moments is not None}
    assert streamable == {"cka", "hsic", "cca", "svcca", "pwcca", "lr", "procrustes", "meanmax", "matched"}


def test_metrics_command_shows_the_route():
    from repsim_cli.cli.metrics_cmd import describe

    assert describe(REGISTRY["cka"])["streamable_note"] == "yes, except with kernel=rbf, adjusted=true, minibatch>0"
    assert describe(REGISTRY["cca"])["streamable"] is True
    assert describe(REGISTRY["rsa"])["streamable"] is False


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 40),
    fa=st.integers(1, 7),
    fb=st.integers(1, 7),
    block=st.integers(1, 45),
    offset=st.sampled_from([0.0, 1e4, -3e3]),
    seed=st.integers(0, 2**16),
)
def test_moment_route_equals_in_memory(n, fa, fb, block, offset, seed):
    """Block sizes that do and do not divide N, ragged last blocks, F > N, N = 4 (hypothesis)."""
    x, y = offset_pair(np.random.default_rng(seed), n, fa, fb, offset)
    assert_routes_agree(x, y, moments_of([x, y], block))


@pytest.mark.parametrize(
    "n, fa, fb, block",
    [
        (203, 7, 9, 50),  # ragged last block (3 rows)
        (203, 7, 9, 1),  # blocks of one row
        (200, 7, 9, 40),  # blocks dividing N
        (4, 3, 2, 1),  # N = 4
        (4, 3, 2, 3),
        (9, 14, 5, 4),  # F > N: rank N-1, degenerate-CCA warnings
        (12, 6, 11, 5),  # F_B = N - 1
    ],
)
def test_fixed_shapes(rng, n, fa, fb, block):
    x, y = offset_pair(rng, n, fa, fb)
    assert assert_routes_agree(x, y, moments_of([x, y], block)) < 1e-10


def test_rank_deficient_layers(rng):
    """Dead (constant) and duplicated units drop out by the rank rule on both routes."""
    x, y = offset_pair(rng, 60, 6, 5)
    x[:, 3] = x[:, 1]
    x[:, 5] = np.float32(1e4)
    y[:, 4] = 2 * y[:, 0]
    m = moments_of([x, y], 7)
    assert_routes_agree(x, y, m)
    assert parse_metric("cca").from_moments(m).details == {"rank_a": 4, "rank_b": 4}


def test_constant_layer_is_refused_on_both_routes(rng):
    x = np.full((20, 3), 1e4, dtype=np.float32)
    _, y = offset_pair(rng, 20, 3, 2)
    m = moments_of([x, y], 6)
    for spec in ("cca", "svcca", "pwcca", "lr", "procrustes", "cka"):
        with pytest.raises(RepsimError):
            parse_metric(spec).compute(x, y)
        with pytest.raises(RepsimError):
            parse_metric(spec).from_moments(m)
    assert parse_metric("meanmax").from_moments(m).value == 0.0  # constant columns correlate 0, as in memory


def test_merge_order_and_tree_independence(rng):
    x, y = offset_pair(rng, 157, 5, 6)
    bounds = [0, 1, 13, 14, 60, 99, 100, 157]
    parts = [Moments.from_block(x[a:b], y[a:b]) for a, b in zip(bounds, bounds[1:])]
    sequential = parts[0]
    for p in parts[1:]:
        sequential = sequential.merge(p)
    order = rng.permutation(len(parts))
    shuffled = merge_all([parts[i] for i in order])
    whole = Moments.from_block(x, y)
    for m in (shuffled, whole):
        assert m.n == sequential.n
        np.testing.assert_allclose(m.mean, sequential.mean, rtol=1e-15)
        np.testing.assert_allclose(m.m2, sequential.m2, rtol=1e-11, atol=1e-11 * np.abs(whole.m2).max())
        np.testing.assert_allclose(m.pp, sequential.pp, rtol=1e-11)
        np.testing.assert_allclose(m.pz, sequential.pz, rtol=1e-9, atol=1e-11 * np.abs(whole.pz).max())
    for spec in MOMENT_SPECS:
        metric = parse_metric(spec)
        values = [metric.from_moments(m).value for m in (sequential, shuffled, whole)]
        assert max(values) - min(values) <= 1e-12 * max(1.0, abs(values[0])), spec


def test_statistics_are_the_centred_moments(rng):
    """M, P and Z against their definitions, computed directly in float64 from the whole data."""
    x, y = offset_pair(rng, 50, 3, 4)
    m = moments_of([x, y], 7)
    z = np.hstack([x, y]).astype(np.float64)
    zc = z - z.mean(axis=0)
    p = np.stack([np.sum(zc[:, :3] ** 2, axis=1), np.sum(zc[:, 3:] ** 2, axis=1)], axis=1)
    np.testing.assert_allclose(m.mean, z.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(m.m2, zc.T @ zc, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(m.pp, p.T @ p, rtol=1e-9)
    np.testing.assert_allclose(m.pz, p.T @ zc, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(m.absmax, np.abs(z).max(axis=0))


def test_grid_summary_slices_every_pair(rng):
    """One summary of [X1 X2 X3] (one symmetric product per block) gives every pair, a layer with itself too."""
    x1, x2 = offset_pair(rng, 80, 4, 6)
    x3 = (x1[:, :2] @ rng.standard_normal((2, 3)) + rng.standard_normal((80, 3))).astype(np.float32)
    layers = [x1, x2, x3]
    grid = moments_of(layers, 11)
    for i in range(3):
        for j in range(3):
            pair = grid.select(i, j)
            assert pair.splits == (0, layers[i].shape[1], layers[i].shape[1] + layers[j].shape[1])
            if i != j:
                direct = moments_of([layers[i], layers[j]], 11)
                np.testing.assert_allclose(pair.m2, direct.m2, rtol=1e-12, atol=1e-9)
                np.testing.assert_allclose(pair.pp, direct.pp, rtol=1e-12)
            assert_routes_agree(layers[i], layers[j], pair, ["cka", "cka:debiased=true", "cca", "procrustes", "lr"])


# ---------------------------------------------------------------------------- minibatch CKA


def test_minibatch_equals_debiased_cka_when_one_batch(rng):
    x, y = offset_pair(rng, 64, 5, 4)
    full = linear_cka(x, y, debiased=True)
    assert minibatch_cka(x, y, 64) == pytest.approx(full, abs=1e-14)
    assert minibatch_cka(x, y, 1000) == pytest.approx(full, abs=1e-14)


def test_minibatch_is_the_average_of_batch_hsics(rng):
    """Independent route: HSIC_u of each batch from the hsic metric, averaged, then the ratio."""
    x, y = offset_pair(rng, 70, 5, 4)
    hsic = parse_metric("hsic:debiased=true")
    for kernel in ("linear", "rbf"):
        h = parse_metric(f"hsic:debiased=true,kernel={kernel}")
        batches = [slice(i, i + 16) for i in range(0, 64, 16)]
        cross = np.mean([h.compute(x[s], y[s]).value for s in batches])
        saa = np.mean([h.compute(x[s], x[s]).value for s in batches])
        sbb = np.mean([h.compute(y[s], y[s]).value for s in batches])
        result = parse_metric(f"cka:minibatch=16,kernel={kernel}").compute(x, y)
        assert result.value == pytest.approx(cross / np.sqrt(saa * sbb), rel=1e-12)
        assert result.details == {"minibatches": 4, "batch_rows": 16, "dropped_rows": 6}
        assert "last 6 of 70 rows" in result.warnings[0]
    assert hsic.streamable


def test_minibatch_approaches_full_batch_as_the_batch_grows():
    """Mean |minibatch - full debiased| over seeds shrinks as B grows (and is 0 at B = N)."""
    n = 512
    gaps = {b: [] for b in (8, 32, 128, 256)}
    for seed in range(6):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, 6))
        y = x[:, :3] @ rng.standard_normal((3, 5)) + 2 * rng.standard_normal((n, 5))
        full = linear_cka(x, y, debiased=True)
        for b in gaps:
            gaps[b].append(abs(minibatch_cka(x, y, b) - full))
    means = [float(np.mean(gaps[b])) for b in sorted(gaps)]
    assert means == sorted(means, reverse=True), means
    assert means[-1] < 0.5 * means[0]


def test_minibatch_parameter_checks_and_permutation(rng):
    x, y = offset_pair(rng, 40, 3, 3)
    with pytest.raises(RepsimError, match="at least 4"):
        parse_metric("cka:minibatch=3").compute(x, y)
    with pytest.raises(RepsimError):
        parse_metric("cka:minibatch=-1")
    metric = parse_metric("cka:minibatch=10")
    perm = rng.permutation(40)
    fast = metric.pair(metric.permute(metric.prepare(x), perm), metric.prepare(y))
    assert fast.value == pytest.approx(metric.compute(x[perm], y).value, abs=1e-14)
    assert metric.min_n == 4 and metric.distinct_rows and not metric.gram
    assert not parse_metric("cka:minibatch=10,kernel=rbf").gram


def test_ill_conditioned_layers_warn_and_stay_within_the_stated_accuracy():
    """Eigenvalues are squared singular values: whitening from moments loses ~eps * lam_1/lam_r (warned)."""
    rng = np.random.default_rng(3)
    n, f = 2000, 24
    scales = np.arange(1, f + 1, dtype=float) ** -3.0  # singular values over ~4 decades
    x = (rng.standard_normal((n, f)) * scales) @ np.linalg.qr(rng.standard_normal((f, f)))[0]
    y = 0.1 * x @ rng.standard_normal((f, f)) + rng.standard_normal((n, f)) * scales[::-1]
    m = moments_of([x, y], 300)
    for spec in ("cca", "pwcca", "lr"):
        metric = parse_metric(spec)
        got, expected = metric.from_moments(m), metric.compute(x, y)
        assert any("decades" in w for w in got.warnings) and not any("decades" in w for w in expected.warnings)
        assert abs(got.value - expected.value) < 1e3 * np.finfo(float).eps * (scales[0] / scales[-1]) ** 2
    assert parse_metric("cka").from_moments(m).warnings == []  # CKA needs no whitening
