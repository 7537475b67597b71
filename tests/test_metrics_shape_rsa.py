"""Procrustes, RSA and mutual k-NN against independent routes (scipy, brute force)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import get_metric, mutual_knn, parse_metric, procrustes, rsa
import sys

# the package exports the function ``rsa``, which shadows the module attribute of the same name
rsa_mod = sys.modules["repsim_cli.metrics.rsa"]

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def pair(seed: int, n: int, fa: int, fb: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) + 1.5
    y = x[:, : min(fa, fb)] @ rng.standard_normal((min(fa, fb), fb)) + 0.7 * rng.standard_normal((n, fb))
    return x, y


# ------------------------------------------------------------------ procrustes


def procrustes_ref(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """scipy.linalg.orthogonal_procrustes on zero-padded, normalized centered data."""
    f = max(x.shape[1], y.shape[1])
    xh = np.zeros((len(x), f))
    yh = np.zeros((len(y), f))
    xh[:, : x.shape[1]] = x - x.mean(axis=0)
    yh[:, : y.shape[1]] = y - y.mean(axis=0)
    xh /= np.linalg.norm(xh)
    yh /= np.linalg.norm(yh)
    r, nuc = orthogonal_procrustes(yh, xh)  # argmin ||yh R - xh||
    return float(nuc), float(np.linalg.norm(yh @ r - xh))


@pytest.mark.parametrize("shape", [(30, 4, 6), (25, 6, 3), (8, 20, 12), (8, 3, 20)], ids=["N>F", "N>F2", "F>N", "mixed"])
def test_procrustes_matches_scipy(shape):
    for seed in range(3):
        x, y = pair(seed, *shape)
        nuc, dist = procrustes_ref(x, y)
        assert record("procrustes similarity", procrustes(x, y), nuc) <= 1e-12
        assert record("procrustes distance", procrustes(x, y, "distance"), dist) <= 1e-12
        assert procrustes(x, y, "distance") == pytest.approx(np.sqrt(max(0.0, 2 - 2 * nuc)), abs=1e-7)
        assert record("procrustes angle", procrustes(x, y, "angle"), np.arccos(min(nuc, 1.0))) <= 1e-7


def test_procrustes_identical_and_rotated_is_exactly_zero_distance():
    x, _ = pair(1, 50, 6, 6)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))
    for stat in ("distance", "angle"):
        assert procrustes(x, x, stat) <= 1e-13
        assert procrustes(x, 3.0 * x @ q + 5.0, stat) <= 1e-13
    assert procrustes(x, x) == pytest.approx(1.0, abs=1e-14)


def test_procrustes_direction_and_range_per_stat():
    assert parse_metric("procrustes").higher_is_similar
    assert not parse_metric("procrustes:stat=distance").higher_is_similar
    assert not parse_metric("procrustes:stat=angle").higher_is_similar
    assert parse_metric("procrustes:stat=distance").value_range == pytest.approx((0.0, np.sqrt(2)))
    assert parse_metric("procrustes:stat=angle").value_range == pytest.approx((0.0, np.pi / 2))


def test_procrustes_triangle_inequality():
    xs = [pair(s, 20, 4, 4)[0] for s in range(4)]
    d = [[procrustes(a, b, "angle") for b in xs] for a in xs]
    for i in range(4):
        for j in range(4):
            for k in range(4):
                assert d[i][k] <= d[i][j] + d[j][k] + 1e-12


def test_procrustes_constant_layer_is_an_error():
    with pytest.raises(RepsimError, match="rank 0"):
        procrustes(np.ones((10, 3)), pair(0, 10, 3, 3)[0])


# ------------------------------------------------------------------ rsa


def rsa_ref(x, y, rdm: str, compare: str) -> float:
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    metric = "correlation" if rdm == "correlation" else "euclidean"
    da, db = pdist(xc, metric), pdist(yc, metric)
    fn = spearmanr if compare == "spearman" else pearsonr
    return float(fn(da, db)[0])


@pytest.mark.parametrize("rdm", ["correlation", "euclidean"])
@pytest.mark.parametrize("compare", ["spearman", "pearson"])
def test_rsa_matches_scipy(rdm, compare):
    for seed in range(3):
        x, y = pair(seed, 30, 5, 4)
        want = rsa_ref(x, y, rdm, compare)
        assert record(f"rsa {rdm}/{compare}", rsa(x, y, rdm=rdm, compare=compare), want) <= 1e-12


def test_rsa_upper_triangle_helpers_roundtrip():
    m = np.random.default_rng(0).standard_normal((7, 7))
    m = m + m.T
    np.fill_diagonal(m, 0)
    v = rsa_mod.upper_triangle(m)
    assert np.array_equal(v, m[np.triu_indices(7, 1)])
    assert np.array_equal(rsa_mod.fill_symmetric(v, 7, np.empty((7, 7))), m)


def test_rsa_constant_rdm_reports_zero_with_warning():
    x = np.eye(5)  # every pair of rows is equally far apart
    r = parse_metric("rsa:rdm=euclidean").compute(x, pair(0, 5, 3, 3)[0])
    assert r.value == 0.0 and any("undefined" in w for w in r.warnings)


def test_rsa_help_states_memory_and_limit():
    m = get_metric("rsa")
    assert "8*N^2" in m.help and "--max-gram" in m.help and m.gram is True


def test_rsa_refused_above_max_gram():
    from repsim_cli.engines.compare import check_gram

    with pytest.raises(RepsimError, match="max_gram"):
        check_gram(parse_metric("rsa"), 30000, 20000, "a.h5:layer")


# ------------------------------------------------------------------ knn


def knn_bruteforce(x: np.ndarray, k: int, center: bool = False) -> list[set[int]]:
    z = x - x.mean(axis=0) if center else x.astype(np.float64)
    out = []
    for i in range(len(z)):
        sims = []
        for j in range(len(z)):
            if j != i:
                ni, nj = np.linalg.norm(z[i]), np.linalg.norm(z[j])
                c = float(z[i] @ z[j] / (ni * nj)) if ni > 0 and nj > 0 else 0.0
                sims.append((-c, j))  # sort by similarity desc, then lower index
        out.append({j for _, j in sorted(sims)[:k]})
    return out


def knn_ref(x, y, k, center=False) -> float:
    a, b = knn_bruteforce(x, k, center), knn_bruteforce(y, k, center)
    return float(np.mean([len(s & t) / k for s, t in zip(a, b)]))


@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("center", [False, True])
def test_knn_matches_bruteforce(k, center):
    for seed in range(3):
        x, y = pair(seed, 25, 4, 5)
        assert record("knn", mutual_knn(x, y, k=k, center=center), knn_ref(x, y, k, center)) <= 1e-14


def test_knn_row_blocks_give_the_same_neighbours(monkeypatch):
    x, _ = pair(2, 40, 5, 5)
    whole = rsa_mod.nearest_neighbors(x, 6)
    monkeypatch.setattr(sys.modules["repsim_cli.metrics.neighbours"], "_block_rows", lambda n, budget_bytes=0: 7)
    assert np.array_equal(rsa_mod.nearest_neighbors(x, 6), whole)


def test_knn_ties_broken_by_lower_index():
    # rows 1..4 are the same direction as row 0's neighbours: exact ties in cosine similarity
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    idx = rsa_mod.nearest_neighbors(x, 2)
    assert idx[0].tolist() == [1, 2]  # 1, 2, 3 tie at cosine 1: lowest indices win
    assert idx[4].tolist() == [5, 0]  or idx[4].tolist() == [0, 5]
    assert [set(r) for r in idx] == knn_bruteforce(x, 2)


def test_knn_k_must_be_below_n():
    x, y = pair(0, 10, 3, 3)
    with pytest.raises(RepsimError, match="k must satisfy"):
        mutual_knn(x, y, k=10)
    assert parse_metric("knn:k=9").min_n == 10
    assert 0.0 <= mutual_knn(x, y, k=9) <= 1.0


def test_knn_default_centers_columns_and_center_false_follows_huh_et_al():
    x, y = pair(4, 30, 4, 4)
    x, y = x + 3.0, y - 2.0  # an offset, so centering matters
    assert mutual_knn(x, y) == pytest.approx(knn_ref(x, y, 10, center=True), abs=1e-14)
    assert mutual_knn(x, y, center=False) == pytest.approx(knn_ref(x, y, 10, center=False), abs=1e-14)
    assert mutual_knn(x, y) != mutual_knn(x, y, center=False)
    assert "translation" in parse_metric("knn").invariances
    assert "translation" not in parse_metric("knn:center=false").invariances


def test_rsa_center_false_is_the_rdm_of_raw_rows():
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    x, y = pair(5, 25, 4, 3)
    x, y = x + np.arange(4), y * 2 + 1.0
    raw = spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).statistic
    centered = spearmanr(pdist(x - x.mean(0), "correlation"), pdist(y - y.mean(0), "correlation")).statistic
    assert rsa(x, y, center=False) == pytest.approx(raw, abs=1e-12)
    assert rsa(x, y) == pytest.approx(centered, abs=1e-12)
    assert "translation" not in parse_metric("rsa:center=false").invariances


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 20), fa=st.integers(1, 6), fb=st.integers(1, 6))
def test_shape_rsa_knn_properties(seed, n, fa, fb):
    x, y = pair(seed, n, fa, fb)
    nuc, dist = procrustes_ref(x, y)
    assert record("procrustes (hypothesis)", procrustes(x, y), nuc) <= 1e-12
    assert record("procrustes distance (hypothesis)", procrustes(x, y, "distance"), dist) <= 1e-12
    k = min(3, n - 1)
    assert record("knn (hypothesis)", mutual_knn(x, y, k=k), knn_ref(x, y, k, center=True)) <= 1e-14
    assert record("knn raw rows (hypothesis)", mutual_knn(x, y, k=k, center=False), knn_ref(x, y, k)) <= 1e-14
    if fa >= 2 and fb >= 2:  # a 1-feature correlation RDM is undefined (rows have no variance)
        assert record("rsa (hypothesis)", rsa(x, y, compare="pearson"), rsa_ref(x, y, "correlation", "pearson")) <= 1e-10


def test_report_worst_disagreements():
    for name, err in sorted(WORST.items()):
        print(f"worst |repsim - independent| {name}: {err:.2e}")


def test_rsa_constant_rdm_is_reported_not_rounding_noise():
    """F=2 rows whose first feature always exceeds the second: every raw-row correlation is 1, so the
    correlation RDM is constant (0 up to rounding). Its RSA is undefined: 0 with a warning, for any scale."""
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.uniform(5, 6, 17), rng.uniform(0, 1, 17)])
    y = rng.standard_normal((17, 4))
    bound = parse_metric("rsa:center=false")
    for c in (1.0, 1.6448682, 1e3):
        res = bound.compute(c * x, y)
        assert res.value == 0.0 and any("undefined" in w for w in res.warnings)


def test_knn_rank_zero_side_is_an_error():
    rng = np.random.default_rng(0)
    with pytest.raises(RepsimError, match="rank 0"):
        mutual_knn(np.full((20, 3), 2.5), rng.standard_normal((20, 3)), k=3)
    with pytest.raises(RepsimError, match="every row"):
        mutual_knn(np.zeros((20, 3)), rng.standard_normal((20, 3)), k=3, center=False)
