"""ridge against an independent route: a direct np.linalg.solve transcription, fold by fold.

The library fits every fold from per-fold moments in the eigenbasis of the training Gram (and, for
alpha=auto, scores the inner grid from moments without touching the data again); the reference
below centres each training set, solves (X^T X + lambda I) W = X^T Y with np.linalg.solve (lstsq's
minimum-norm solution for lambda = 0) and predicts the held-out rows, with the nested CV of
alpha=auto written out naively.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import get_metric, parse_metric, ridge_r2
from repsim_cli.metrics.predictivity import AUTO_GRID, fold_assignment

from conftest import assert_cli_matches_library

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def pair(seed: int, n: int, fa: int, fb: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) @ rng.standard_normal((fa, fa)) + 3.0
    y = x[:, : min(fa, fb)] @ rng.standard_normal((min(fa, fb), fb)) + 0.8 * rng.standard_normal((n, fb)) - 1.0
    return x, y


def fit_solve(xtr: np.ndarray, ytr: np.ndarray, lam: float):
    mx, my = xtr.mean(0), ytr.mean(0)
    xc, yc = xtr - mx, ytr - my
    if lam > 0:
        w = np.linalg.solve(xc.T @ xc + lam * np.eye(xc.shape[1]), xc.T @ yc)
    else:
        w = np.linalg.lstsq(xc, yc, rcond=None)[0]
    return mx, my, w


def sse_of(fit, xte, yte) -> tuple[float, float]:
    mx, my, w = fit
    resid = (yte - my) - (xte - mx) @ w
    return float(np.sum(resid**2)), float(np.sum((yte - my) ** 2))


def auto_lambda(x, y, ids, outer, folds) -> float:
    train = ids != outer
    xc = x[train] - x[train].mean(0)
    grid = np.trace(xc.T @ xc) / x.shape[1] * AUTO_GRID
    errors = []
    for lam in grid:
        total = 0.0
        for j in range(folds):
            if j == outer:
                continue
            tr = (ids != outer) & (ids != j)
            total += sse_of(fit_solve(x[tr], y[tr], lam), x[ids == j], y[ids == j])[0]
        errors.append(total)
    return float(grid[int(np.argmin(errors))])


def ridge_ref(x, y, alpha, folds=5, predict="b", seed=0) -> float:
    if predict == "a":
        x, y = y, x
    ids = fold_assignment(len(x), folds, seed)
    sse = sst = 0.0
    for k in range(folds):
        lam = auto_lambda(x, y, ids, k, folds) if alpha == "auto" else alpha
        e, t = sse_of(fit_solve(x[ids != k], y[ids != k], lam), x[ids == k], y[ids == k])
        sse, sst = sse + e, sst + t
    return 1.0 - sse / sst


@pytest.mark.parametrize("shape", [(60, 5, 4), (45, 3, 7), (80, 12, 12), (20, 30, 6), (24, 4, 40)], ids=["5-4", "3-7", "12", "F>N", "target F>N"])
@pytest.mark.parametrize("alpha", [0.0, 0.1, 10.0, "auto"])
@pytest.mark.parametrize("predict", ["a", "b"])
def test_ridge_matches_direct_solve(shape, alpha, predict):
    for seed in range(2):
        x, y = pair(seed, *shape)
        want = ridge_ref(x, y, alpha, predict=predict, seed=seed)
        got = ridge_r2(x, y, alpha=alpha, predict=predict, seed=seed)
        assert record(f"ridge alpha={alpha}", got, want) <= 1e-9, (got, want)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(12, 40), fa=st.integers(1, 8), fb=st.integers(1, 8),
       folds=st.integers(2, 6), lam=st.sampled_from([0.01, 1.0, 100.0]))
def test_ridge_matches_direct_solve_random_sizes(seed, n, fa, fb, folds, lam):
    x, y = pair(seed, n, fa, fb)
    got = ridge_r2(x, y, alpha=lam, folds=folds, seed=seed % 1000)
    assert record("ridge (hypothesis)", got, ridge_ref(x, y, lam, folds=folds, seed=seed % 1000)) <= 1e-9


def test_fold_assignment_is_seeded_and_balanced():
    ids = fold_assignment(23, 5, 7)
    assert np.array_equal(ids, fold_assignment(23, 5, 7))
    assert not np.array_equal(ids, fold_assignment(23, 5, 8))
    assert sorted(np.bincount(ids).tolist()) == [4, 4, 5, 5, 5]
    x, y = pair(0, 50, 4, 4)
    assert ridge_r2(x, y, seed=1) != ridge_r2(x, y, seed=2)


def test_ridge_identity_asymmetry_and_errors():
    x, y = pair(1, 60, 5, 3)
    assert ridge_r2(x, x, alpha=0.0) == pytest.approx(1.0, abs=1e-12)
    assert ridge_r2(x, x, alpha=100.0) < 1.0 - 1e-4  # shrinkage: below 1 out of sample
    assert abs(ridge_r2(x, y) - ridge_r2(y, x)) > 1e-3
    assert ridge_r2(x, y, predict="a") == pytest.approx(ridge_r2(y, x), abs=1e-14)
    rng = np.random.default_rng(0)
    assert ridge_r2(rng.standard_normal((60, 3)), rng.standard_normal((60, 3)), alpha=0.0) < 0.05  # chance
    with pytest.raises(RepsimError, match="too few"):
        parse_metric("ridge").compute(x[:9], y[:9])
    with pytest.raises(RepsimError, match="constant"):
        ridge_r2(x, np.ones((60, 2)))
    assert parse_metric("ridge:folds=4").min_n == 8


def test_ridge_alpha_parameter_parsing():
    assert parse_metric("ridge").params["alpha"] == "auto"
    assert parse_metric("ridge:alpha=2.5").params["alpha"] == 2.5
    assert parse_metric("ridge:alpha=AUTO").params["alpha"] == "auto"
    assert parse_metric("ridge:alpha=2.5").spec == "ridge:alpha=2.5"
    for bad in ("-1", "abc", "nan", "inf"):
        with pytest.raises(RepsimError, match="number >= 0 or auto"):
            parse_metric(f"ridge:alpha={bad}")
    m = get_metric("ridge")
    assert m.symmetric is False and "Not symmetric" in m.help
    assert "isotropic_scaling" in parse_metric("ridge").invariances
    assert "isotropic_scaling" not in parse_metric("ridge:alpha=1").invariances
    assert "alpha=float>=0|auto" in m.param("alpha").describe()


def test_ridge_auto_reports_the_chosen_lambdas():
    x, y = pair(2, 50, 4, 4)
    res = parse_metric("ridge").compute(x, y)
    assert len(res.details["alpha_per_fold"]) == 5 and all(a > 0 for a in res.details["alpha_per_fold"])


def test_report_worst_disagreements():
    for name, err in sorted(WORST.items()):
        print(f"worst |repsim - independent| {name}: {err:.2e}")


@pytest.mark.parametrize("spec", ["ridge", "ridge:alpha=1.0,predict=a,folds=3,seed=4"])
def test_compare_on_files_matches_library_with_permutation_null(pair_files, spec):
    assert_cli_matches_library(pair_files, spec)


@pytest.mark.filterwarnings("ignore::repsim_cli.errors.RepsimWarning")  # few resamples, on purpose
def test_library_compare_on_arrays_with_nulls():
    import repsim_cli as rs

    x, y = pair(8, 40, 5, 6)
    res = rs.compare(x, y, ["ridge", "ridge:predict=a,alpha=0.5"], permutations=9, bootstrap=9, seed=3)
    assert [r.value for r in res] == pytest.approx([ridge_r2(x, y), ridge_r2(x, y, alpha=0.5, predict="a")], abs=1e-12)
