"""Property tests GENERATED FROM THE REGISTRY.

For every metric (default parameters plus a few other parameter sets) and every transformation
in ``INVARIANCES``: a declared invariance must hold to 1e-8 whichever side is transformed
(hypothesis draws the random data), and an invariance that is *not* declared must visibly fail
(by more than 1e-6) on some random input, so the declarations are true both ways. The same
generated cases check symmetry, identical inputs, value ranges, the permutation fast path and
float32 data with a large offset.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim_cli.metrics import INVARIANCES, REGISTRY, parse_metric

EXTRA_SPECS = [
    "cka:kernel=rbf",
    "cka:debiased=true",
    "cka:kernel=rbf,debiased=true,median=pairs",
    "cka:adjusted=true",
    "cka:kernel=rbf,adjusted=true",
    "hsic:kernel=rbf",
    "hsic:debiased=true",
    "cca:stat=r2",
    "svcca:var=0.9",
    "pwcca:weights=b",
    "lr:predict=a",
    "procrustes:stat=distance",
    "procrustes:stat=angle",
    "rsa:rdm=euclidean,compare=pearson",
    "knn:k=5,center=false",
    "rsa:center=false",
    "meanmax:direction=both",
    "matched:corr=spearman",
    "shape:form=euclidean",
    "shape:alpha=0",
    "shape:alpha=0,form=euclidean",
    "shape:alpha=0.5",
    "shape:alpha=0.5,form=euclidean",
    "procrustes:align=permutation",
    "procrustes:align=permutation,stat=distance",
    "procrustes:align=permutation,stat=angle",
    "aligned_cosine:center=false",
    "ridge:alpha=1.0",
    "ridge:alpha=0",
    "ridge:predict=a,folds=3",
    "dcor:unbiased=true",
    "rsm_diff:norm=spectral",
    "rsm_diff:rsm=cosine",
    "rsm_diff:rsm=cosine,center=false,norm=spectral",
    "rsm_diff:rsm=linear",
    "rsm_diff:rsm=linear,norm=spectral",
    "rsm_diff:rsm=linear,center=false",
    "eos:center=false",
    "eos:denominator=rank",
    "gulp:lambda=0.1",
    "gulp:squared=true",
    "uniformity:t=0.05",
    "rsa:compare=kendall_a",
    "rsa:compare=rho_a",
    "rsa:compare=cosine",
    "rsa:rdm=euclidean,compare=cosine,center=false",
    "knn:stat=jaccard",
    "knn:stat=rank,center=false",
    "knn:stat=joint",
    "knn:stat=second_order",
    "knn:stat=second_order,neighbours=euclidean",
    "knn:stat=cycle,k=2",
    "knn:neighbours=euclidean,center=false",
    "cknna:center=false",
]
SPECS = list(REGISTRY) + EXTRA_SPECS


def test_every_metric_is_covered():
    assert {s.split(":")[0] for s in SPECS} == set(REGISTRY)
    for spec in SPECS:
        assert parse_metric(spec).invariances <= set(INVARIANCES)


def random_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Small related pair with N > F + 2 (and N > 11 for knn's default k=10)."""
    rng = np.random.default_rng(seed)
    fa, fb = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    n = int(rng.integers(max(fa, fb) + 9, 26))
    x = rng.standard_normal((n, fa)) @ rng.standard_normal((fa, fa)) + rng.standard_normal(fa)
    w = rng.standard_normal((fa, fb))
    y = x @ w + rng.standard_normal((n, fb)) + rng.standard_normal(fb)
    return x, y


def transform(kind: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = x.shape[1]
    if kind == "orthogonal":
        q, r = np.linalg.qr(rng.standard_normal((f, f)))
        return x @ (q * np.sign(np.diag(r)))
    if kind == "isotropic_scaling":
        return x * rng.uniform(0.2, 5.0)
    if kind == "invertible_linear":
        u, _ = np.linalg.qr(rng.standard_normal((f, f)))
        v, _ = np.linalg.qr(rng.standard_normal((f, f)))
        s = np.exp(rng.uniform(np.log(0.05), np.log(5.0), f))
        return x @ (u * s) @ v.T
    if kind == "permutation":
        return x[:, rng.permutation(f)]
    if kind == "translation":
        return x + rng.normal(0.0, 5.0, f)
    raise AssertionError(kind)


def value(spec: str, x: np.ndarray, y: np.ndarray) -> float:
    return parse_metric(spec).compute(x, y).value


DECLARED = [(s, inv, side) for s in SPECS for inv in INVARIANCES if inv in parse_metric(s).invariances for side in "ab"]
UNDECLARED = [(s, inv) for s in SPECS for inv in INVARIANCES if inv not in parse_metric(s).invariances]


@pytest.mark.parametrize("spec,inv,side", DECLARED, ids=[f"{s}-{i}-{d}" for s, i, d in DECLARED])
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_declared_invariance_holds(spec, inv, side, seed):
    x, y = random_pair(seed)
    before = value(spec, x, y)
    rng = np.random.default_rng(seed + 1)
    after = value(spec, transform(inv, x, rng), y) if side == "a" else value(spec, x, transform(inv, y, rng))
    assert abs(after - before) <= 1e-8 * max(1.0, abs(before)), (spec, inv, side, before, after)


@pytest.mark.parametrize("spec,inv", UNDECLARED, ids=[f"{s}-{i}" for s, i in UNDECLARED])
def test_undeclared_invariance_fails_somewhere(spec, inv):
    worst = 0.0
    for seed in range(40):
        x, y = random_pair(seed)
        before = value(spec, x, y)
        rng = np.random.default_rng(10_000 + seed)
        for side in "ab":
            after = value(spec, transform(inv, x, rng), y) if side == "a" else value(spec, x, transform(inv, y, rng))
            worst = max(worst, abs(after - before))
        if worst > 1e-6:
            return
    pytest.fail(f"{spec} is not declared {inv}-invariant but no random input changed it (max change {worst:.3g})")


# ---------------------------------------------------------------------- generated sanity checks


@pytest.mark.parametrize("spec", SPECS)
def test_symmetry_as_declared(spec):
    bound = parse_metric(spec)
    diffs = []
    for seed in range(5):
        x, y = random_pair(seed)
        diffs.append(abs(value(spec, x, y) - value(spec, y, x)))
    if bound.symmetric:
        assert max(diffs) <= 1e-12
    else:
        assert max(diffs) > 1e-6, f"{spec} is declared asymmetric but looks symmetric"




# raw HSIC has no identity value; out-of-sample ridge R^2 of X from X is below 1 when lambda > 0 (shrinkage);
# cycle-kNN of X with itself is the fraction of inputs with a reciprocal neighbour, below 1 for small k
# (tested in test_metrics_neighbours.py)
IDENTITY_SPECS = [
    s
    for s in SPECS
    if not s.startswith("hsic") and not (s.startswith("ridge") and s != "ridge:alpha=0") and "stat=cycle" not in s
]


@pytest.mark.parametrize("spec", IDENTITY_SPECS)
def test_identical_inputs(spec):
    bound = parse_metric(spec)
    x, _ = random_pair(3)
    got = value(spec, x, x)
    assert got == pytest.approx(1.0 if bound.higher_is_similar else 0.0, abs=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_value_range(spec):
    bound = parse_metric(spec)
    lo, hi = bound.value_range
    if parse_metric(spec).params.get("debiased"):
        lo = -1.0  # debiased estimators may go negative: reported, never clamped
    for seed in range(8):
        x, y = random_pair(seed)
        v = value(spec, x, y)
        assert np.isfinite(v)
        assert lo - 1e-12 <= v <= hi + 1e-12, (spec, v)


@pytest.mark.parametrize("spec", SPECS)
def test_permute_fast_path_matches_reprepare(spec):
    bound = parse_metric(spec)
    x, y = random_pair(7)
    perm = np.random.default_rng(1).permutation(x.shape[0])
    fast = bound.pair(bound.metric.permute(bound.prepare(x), perm, bound.params), bound.prepare(y))
    slow = bound.pair(bound.prepare(x[perm]), bound.prepare(y))
    assert bound.metric.permute is not None
    assert fast.value == pytest.approx(slow.value, abs=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_float32_large_offset_matches_exact_float64(spec):
    """Stored float32 values near 1e4 with unit variance: the result must equal the float64
    computation on the stored values to 1e-9. Translation-invariant metrics are also compared with
    the offset removed exactly beforehand (a float32-centering bug would show here)."""
    bound = parse_metric(spec)
    x, y = random_pair(11)
    x32 = (1e4 + x).astype(np.float32)
    y32 = (1e4 + y).astype(np.float32)
    exact = value(spec, x32.astype(np.float64), y32.astype(np.float64))
    assert value(spec, x32, y32) == pytest.approx(exact, abs=1e-9)
    if "translation" in bound.invariances:
        shifted = value(spec, x32.astype(np.float64) - 1e4, y32.astype(np.float64) - 1e4)
        assert exact == pytest.approx(shifted, abs=1e-9)
