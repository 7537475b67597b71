"""knn stats and cknna against brute force, direct transcriptions of ReSi's and Huh et al.'s
formulas, and in `repsim compare` with the permutation null."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cosine as cosine_distance
from typer.testing import CliRunner

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import cknna, knn_similarity, mutual_knn, parse_metric

nb = sys.modules["repsim_cli.metrics.neighbours"]

WORST: dict[str, float] = {}
STATS = ("mutual", "jaccard", "rank", "joint", "second_order", "cycle")


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def pair(seed: int, n: int = 30, fa: int = 5, fb: int = 4):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) + 1.5
    y = x[:, : min(fa, fb)] @ rng.standard_normal((min(fa, fb), fb)) + 0.7 * rng.standard_normal((n, fb))
    return x, y


# ------------------------------------------------------------------ brute force from the definitions


def bf_space(x: np.ndarray, center: bool, neighbours: str) -> np.ndarray:
    return x - x.mean(axis=0) if (center or neighbours == "euclidean") else x.astype(np.float64)


def bf_dist(z: np.ndarray, i: int, j: int, neighbours: str) -> float:
    """1 - cosine (0-norm rows: cosine 0) or Euclidean distance, computed directly."""
    if neighbours == "euclidean":
        return float(np.sqrt(np.sum((z[i] - z[j]) ** 2)))
    ni, nj = np.linalg.norm(z[i]), np.linalg.norm(z[j])
    return 1.0 - (float(z[i] @ z[j] / (ni * nj)) if ni > 0 and nj > 0 else 0.0)


def bf_lists(x: np.ndarray, k: int, center: bool, neighbours: str) -> list[list[int]]:
    z = bf_space(x, center, neighbours)
    return [[j for _, j in sorted((bf_dist(z, i, j, neighbours), j) for j in range(len(z)) if j != i)[:k]] for i in range(len(z))]


def bf_stat(x, y, stat, k, center=True, neighbours="cosine") -> float:
    a, b = bf_lists(x, k, center, neighbours), bf_lists(y, k, center, neighbours)
    za, zb = bf_space(x, center, neighbours), bf_space(y, center, neighbours)
    per = []
    for i, (ai, bi) in enumerate(zip(a, b)):
        inter, union = set(ai) & set(bi), set(ai) | set(bi)
        jac = len(inter) / len(union)
        h = sum(1.0 / t for t in range(1, len(inter) + 1))
        rank = sum(2.0 / ((1 + abs(ai.index(j) - bi.index(j))) * (ai.index(j) + bi.index(j) + 2)) for j in inter) / h if inter else 0.0
        if stat == "mutual":
            per.append(len(inter) / k)
        elif stat == "jaccard":
            per.append(jac)
        elif stat == "rank":
            per.append(rank)
        elif stat == "joint":
            per.append(jac * rank)
        elif stat == "cycle":
            per.append(float(any(i in a[j] for j in bi)))
        else:
            u = sorted(union)
            da = np.array([bf_dist(za, i, j, neighbours) for j in u])
            db = np.array([bf_dist(zb, i, j, neighbours) for j in u])
            per.append(float(da @ db / np.linalg.norm(da) / np.linalg.norm(db)))
    return float(np.mean(per))


@pytest.mark.parametrize("stat", STATS)
@pytest.mark.parametrize("neighbours,center", [("cosine", True), ("cosine", False), ("euclidean", True)])
def test_knn_stats_match_bruteforce(stat, neighbours, center):
    for seed in range(2):
        x, y = pair(seed, 22, 4, 5)
        for k in (1, 4):
            got = knn_similarity(x, y, stat=stat, k=k, center=center, neighbours=neighbours)
            want = bf_stat(x, y, stat, k, center, neighbours)
            assert record(f"knn {stat} vs brute force", got, want) <= 1e-12, (stat, neighbours, center, k)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(6, 18), k=st.integers(1, 5), stat=st.sampled_from(STATS))
def test_knn_stats_match_bruteforce_hypothesis(seed, n, k, stat):
    x, y = pair(seed, n, 3, 4)
    got = knn_similarity(x, y, stat=stat, k=k)
    assert record(f"knn {stat} vs brute force (hypothesis)", got, bf_stat(x, y, stat, k)) <= 1e-12


def test_default_is_todays_mutual_knn():
    x, y = pair(3, 40, 6, 6)
    assert knn_similarity(x, y) == mutual_knn(x, y)
    assert parse_metric("knn").spec == "knn" and parse_metric("knn").params["neighbours"] == "cosine"


def test_ties_in_ranking_broken_by_lower_index():
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    idx, _ = nb.ranked_neighbors(x, 4)
    assert idx[0].tolist() == [1, 3, 4, 2]  # 1, 3, 4 tie at cosine 1; then 2 and 5 tie at 0
    idx, _ = nb.ranked_neighbors(np.array([[0.0], [1.0], [-1.0], [2.0], [-2.0]]), 4, neighbours="euclidean")
    assert idx[0].tolist() == [1, 2, 3, 4]


def test_cycle_of_a_representation_with_itself_is_the_reciprocal_fraction():
    x, _ = pair(5, 25, 4, 4)
    lists = bf_lists(x, 2, True, "cosine")
    want = np.mean([any(i in lists[j] for j in lists[i]) for i in range(25)])
    assert knn_similarity(x, x, stat="cycle", k=2) == pytest.approx(want, abs=0) and want < 1.0


def test_second_order_zero_distance_vectors():
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 3.0]])
    r = parse_metric("knn:stat=second_order,k=2,center=false").compute(x, x)
    assert r.value == 1.0 and r.warnings  # every input sits at cosine distance 0 from its neighbours


def test_registry_declarations():
    assert not parse_metric("knn:stat=cycle").symmetric and parse_metric("knn:stat=rank").symmetric
    assert "translation" in parse_metric("knn:neighbours=euclidean,center=false").invariances
    assert "translation" not in parse_metric("knn:center=false").invariances
    c = parse_metric("cknna")
    assert not c.symmetric and c.min_n == 11 and "translation" in c.invariances
    assert "translation" not in parse_metric("cknna:center=false").invariances
    assert parse_metric("cknna:k=3").min_n == 4
    with pytest.raises(RepsimError, match=">= 2"):
        parse_metric("cknna:k=1")


# ------------------------------------------------------------------ ReSi parity (direct transcriptions)


def resi_top_k(r: np.ndarray, k: int) -> np.ndarray:
    """ReSi's top_k_neighbors: sklearn NearestNeighbors(k+1, metric='cosine') on raw rows, first column
    (the point itself) dropped."""
    nrm = np.linalg.norm(r, axis=1)
    d = 1.0 - (r @ r.T) / np.outer(nrm, nrm)
    return np.argsort(d, axis=1, kind="stable")[:, : k + 1][:, 1:], d


def resi_rank_sim_i(joint, nns_a, nns_b) -> float:
    if not joint:
        return 0.0
    norm = sum(1 / t for t in range(1, len(joint) + 1))
    score = 0.0
    for j in joint:
        ra = np.argwhere(nns_a == j)[0][0] + 1
        rb = np.argwhere(nns_b == j)[0][0] + 1
        score += 2 / ((1 + abs(ra - rb)) * (ra + rb))
    return score / norm


def resi(stat: str, r: np.ndarray, rp: np.ndarray, k: int) -> float:
    na, da = resi_top_k(r, k)
    nb_, db = resi_top_k(rp, k)
    if stat == "jaccard":
        return float(np.mean([len(set(p) & set(q)) / len(set(p) | set(q)) for p, q in zip(na, nb_)]))
    if stat == "rank":
        return float(np.mean([resi_rank_sim_i(list(set(p) & set(q)), p, q) for p, q in zip(na, nb_)]))
    if stat == "joint":
        return float(np.mean([len(set(p) & set(q)) / len(set(p) | set(q)) * resi_rank_sim_i(list(set(p) & set(q)), p, q) for p, q in zip(na, nb_)]))
    union = [list(set(p) | set(q)) for p, q in zip(na, nb_)]
    return float(np.mean([1 - cosine_distance(da[i, u], db[i, u]) for i, u in enumerate(union)]))


@pytest.mark.parametrize("stat", ["jaccard", "rank", "joint", "second_order"])
def test_resi_parity_on_random_data(stat):
    """ReSi works on raw rows with cosine neighbours: center=false, neighbours=cosine."""
    rng = np.random.default_rng(0)
    for seed in range(4):
        n, fa, fb = 80, 10, 7
        x = rng.standard_normal((n, fa)) + rng.standard_normal(fa)
        y = np.tanh(x[:, :fb] + 0.5 * rng.standard_normal((n, fb)))
        for k in (5, 10):
            got = knn_similarity(x, y, stat=stat, k=k, center=False)
            assert record(f"knn {stat} vs ReSi transcription", got, resi(stat, x, y, k)) <= 1e-12


# ------------------------------------------------------------------ Huh et al. parity


def huh_knn(f: np.ndarray, topk: int) -> np.ndarray:
    s = f @ f.T
    np.fill_diagonal(s, -1e8)
    return np.argsort(-s, axis=1, kind="stable")[:, :topk]


def unit(x: np.ndarray, center: bool) -> np.ndarray:
    z = x - x.mean(axis=0) if center else x.astype(np.float64)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_mutual_and_cycle_match_huh_et_al():
    for seed in range(4):
        x, y = pair(seed, 50, 8, 6)
        fa, fb = unit(x, False), unit(y, False)
        ka, kb = huh_knn(fa, 5), huh_knn(fb, 5)
        mutual = np.mean([len(set(p) & set(q)) / 5 for p, q in zip(ka, kb)])
        cycle = np.mean((ka[kb] == np.arange(50)[:, None, None]).reshape(50, -1).max(axis=1))
        assert record("knn mutual vs Huh et al.", knn_similarity(x, y, k=5, center=False), mutual) <= 1e-14
        assert record("knn cycle vs Huh et al.", knn_similarity(x, y, "cycle", k=5, center=False), cycle) <= 1e-14


def huh_hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    m = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    v = np.sum(kt * lt.T) + np.sum(kt) * np.sum(lt) / ((m - 1) * (m - 2)) - 2 * np.sum(kt @ lt) / (m - 2)
    return v / (m * (m - 3))


def huh_cknna(fa: np.ndarray, fb: np.ndarray, topk: int, eps: float = 0.0) -> float:
    """Huh et al.'s AlignmentMetrics.cknna (unbiased=True) on already-normalized features, in NumPy;
    eps=1e-6 is the authors' denominator guard."""
    n = fa.shape[0]
    kk, ll = fa @ fa.T, fb @ fb.T

    def sim(k, l):
        kh, lh = k.copy(), l.copy()
        np.fill_diagonal(kh, -np.inf)
        np.fill_diagonal(lh, -np.inf)
        mk, ml = np.zeros((n, n)), np.zeros((n, n))
        np.put_along_axis(mk, np.argsort(-kh, axis=1, kind="stable")[:, :topk], 1.0, axis=1)
        np.put_along_axis(ml, np.argsort(-lh, axis=1, kind="stable")[:, :topk], 1.0, axis=1)
        mask = mk * ml
        return huh_hsic_unbiased(mask * k, mask * l)

    return sim(kk, ll) / (np.sqrt(sim(kk, kk) * sim(ll, ll)) + eps)


@pytest.mark.parametrize("center", [False, True])
def test_cknna_matches_authors_formula(center):
    guard = 0.0
    for seed in range(4):
        x, y = pair(seed, 60, 8, 6)
        fa, fb = unit(x, center), unit(y, center)
        for k in (3, 10):
            want = huh_cknna(fa, fb, k)
            assert record("cknna vs Huh et al. transcription", cknna(x, y, k=k, center=center), want) <= 1e-12
            assert record("cknna(B, A) vs Huh et al. transcription", cknna(y, x, k=k, center=center), huh_cknna(fb, fa, k)) <= 1e-12
            guard = max(guard, abs(want - huh_cknna(fa, fb, k, eps=1e-6)))
    WORST["cknna: effect of the authors' +1e-6 guard (not applied)"] = guard


def cknna_bruteforce(x, y, k, center=True) -> float:
    """From the definition with explicit loops: masks from sorted neighbour lists, h as a triple sum."""
    n = len(x)
    a, b = bf_lists(x, k, center, "cosine"), bf_lists(y, k, center, "cosine")
    za, zb = unit(x, center), unit(y, center)
    kk, ll = za @ za.T, zb @ zb.T

    def h(ma, mb, p, q):  # A = ma o p, B = mb o q, zero diagonal
        A = [[p[i][j] if (j in ma[i]) else 0.0 for j in range(n)] for i in range(n)]
        B = [[q[i][j] if (j in mb[i]) else 0.0 for j in range(n)] for i in range(n)]
        t1 = sum(A[i][j] * B[j][i] for i in range(n) for j in range(n))
        sa, sb = sum(map(sum, A)), sum(map(sum, B))
        t3 = sum(A[i][j] * B[j][l] for i in range(n) for j in range(n) for l in range(n))
        return (t1 + sa * sb / ((n - 1) * (n - 2)) - 2 * t3 / (n - 2)) / (n * (n - 3))

    both = [set(p) & set(q) for p, q in zip(a, b)]
    return h(both, both, kk, ll) / np.sqrt(h(a, a, kk, kk) * h(b, b, ll, ll))


def test_cknna_matches_bruteforce_and_is_asymmetric():
    diffs = []
    for seed in range(2):
        x, y = pair(seed, 14, 4, 3)
        got = cknna(x, y, k=4)
        assert record("cknna vs brute force", got, cknna_bruteforce(x, y, 4)) <= 1e-12
        diffs.append(abs(got - cknna(y, x, k=4)))
    assert max(diffs) > 1e-6  # the masked kernels are not symmetric
    x, _ = pair(1, 20, 4, 4)
    assert cknna(x, x, k=5) == pytest.approx(1.0, abs=1e-14)


def test_cknna_undefined_self_hsic_is_an_error():
    # N=4, k=2: the masked self-HSIC of this layer is about -0.008 (found by a seeded search)
    x = np.array([[-0.47820684, -0.10929092], [0.5230816, -0.31328873], [0.0068035, 1.75697713], [1.20085402, 0.64891002]])
    f = unit(x, False)
    masked = mask_of(f, 2) * (f @ f.T)
    assert huh_hsic_unbiased(masked, masked) < 0
    y = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(RepsimError, match="cknna is undefined"):
        cknna(x, y, k=2, center=False)


def mask_of(f: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((len(f), len(f)))
    np.put_along_axis(m, huh_knn(f, k), 1.0, axis=1)
    return m


def test_unbiased_hsic_sparse_equals_dense():
    rng = np.random.default_rng(4)
    n = 9
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    mask = rng.random((n, n)) < 0.4
    np.fill_diagonal(mask, False)
    r, c = np.nonzero(mask)
    got = nb.unbiased_hsic_sparse(n, r, c, a[r, c], b[r, c])
    assert record("unbiased_hsic_sparse vs dense", got, huh_hsic_unbiased(a * mask, b * mask)) <= 1e-14


# ------------------------------------------------------------------ CLI and the permutation null


def test_compare_cli_and_permutation_null(tmp_path):
    from conftest import write_h5
    from repsim_cli.cli import app

    x, y = pair(6, 40, 6, 5)
    a = write_h5(tmp_path / "a.h5", {"h": x.astype(np.float32)})
    b = write_h5(tmp_path / "b.h5", {"h": y.astype(np.float32)})
    specs = ["knn:stat=jaccard,k=5", "knn:stat=rank", "knn:stat=joint,neighbours=euclidean", "knn:stat=second_order",
             "knn:stat=cycle,k=3", "cknna:k=5", "cknna:center=false"]
    args = ["compare", str(a), str(b), "--permutations", "19", "--seed", "2", "-f", "json"]
    for s in specs:
        args += ["-m", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = json.loads(res.stdout)["results"]
    assert len(recs) == len(specs)
    for rec, spec in zip(recs, specs):
        want = parse_metric(spec).compute(x.astype(np.float32), y.astype(np.float32)).value
        assert rec["value"] == pytest.approx(want, abs=1e-12), spec
        assert rec["permutations"] == 19 and rec["p_value"] == pytest.approx(0.05), spec  # related layers


def test_report_worst_disagreements():
    for name, err in sorted(WORST.items()):
        print(f"worst |repsim - independent| {name}: {err:.2e}")


def test_heatmap_cli_with_knn_stat_and_cknna(tmp_path):
    from conftest import write_h5

    from repsim_cli.cli import app

    x, y = pair(8, 30, 6, 5)
    a = write_h5(tmp_path / "a.h5", {"l1": x.astype(np.float32), "l2": np.tanh(x).astype(np.float32)}, ["l1", "l2"])
    b = write_h5(tmp_path / "b.h5", {"l1": y.astype(np.float32)}, ["l1"])
    for spec in ("knn:stat=rank,k=4", "cknna:k=4"):
        res = CliRunner().invoke(app, ["heatmap", str(a), str(b), "-m", spec, "-f", "json"])
        assert res.exit_code == 0, res.output
        matrix = json.loads(res.stdout)["matrix"]
        want = parse_metric(spec).compute(np.tanh(x).astype(np.float32), y.astype(np.float32)).value
        assert matrix[1][0] == pytest.approx(want, abs=1e-12)
