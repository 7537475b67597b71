"""rsa:compare=kendall_a|rho_a|cosine against rsatoolbox, brute force and direct formulas; the
one-argsort average ranks against scipy; the new comparators in `repsim compare` and the null."""

from __future__ import annotations

import json
import sys
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from scipy.stats import rankdata, spearmanr
from typer.testing import CliRunner

from repsim_cli.metrics import kendall_tau_a, parse_metric, rsa

rsa_mod = sys.modules["repsim_cli.metrics.rsa"]

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def pair(seed: int, n: int = 30, fa: int = 5, fb: int = 4, integer: bool = False):
    rng = np.random.default_rng(seed)
    if integer:  # small integers: euclidean RDMs with many exact ties
        x = rng.integers(0, 3, (n, fa)).astype(np.float64)
        y = np.clip(x[:, :fb] + rng.integers(-1, 2, (n, fb)), 0, 3).astype(np.float64) if fb <= fa else rng.integers(0, 3, (n, fb)).astype(np.float64)
        return x, y
    x = rng.standard_normal((n, fa)) + 1.5
    y = x[:, : min(fa, fb)] @ rng.standard_normal((min(fa, fb), fb)) + 0.7 * rng.standard_normal((n, fb))
    return x, y


def rdm_vector(x: np.ndarray, kind: str, center: bool = True) -> np.ndarray:
    """The RDM's upper triangle as the references see it: exact pdist distances for euclidean (integer
    data give exact ties), repsim's correlation RDM with values within 1e-12 snapped together (repsim
    counts those as tied; the float noise of centring must not break ties for the reference either)."""
    if kind == "euclidean":
        return pdist(x, "euclidean")
    v = rsa_mod.upper_triangle(rsa_mod.rdm(x, kind, center))
    return np.rint(v / 1e-12) * 1e-12


# ------------------------------------------------------------------ brute force / direct formulas


def tau_a_bruteforce(x: np.ndarray, y: np.ndarray) -> float:
    """O(M^2) pair count: (concordant - discordant) / (M(M-1)/2)."""
    s = 0
    for i, j in combinations(range(len(x)), 2):
        s += int(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]))
    m = len(x)
    return s / (m * (m - 1) / 2)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(2, 60), levels=st.integers(1, 8))
def test_kendall_tau_a_matches_bruteforce_with_ties(seed, m, levels):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, m).astype(float)
    y = rng.integers(0, levels, m).astype(float) if seed % 2 else x + rng.integers(0, 2, m)
    if seed % 3 == 0:  # non-integer values: the sorting route of the tie count
        x, y = x * 0.37 - 1.0, y * 1.3
    assert record("kendall_tau_a vs brute force", kendall_tau_a(x, y), tau_a_bruteforce(x, y)) <= 1e-13


def test_kendall_tau_a_edge_cases():
    assert kendall_tau_a(np.ones(5), np.arange(5.0)) == 0.0  # every pair tied on one side
    assert kendall_tau_a(np.arange(6.0), np.arange(6.0)) == 1.0
    assert kendall_tau_a(np.arange(6.0), -np.arange(6.0)) == -1.0
    x = np.array([0.0, 0.0, 1.0, 1.0])  # tau_a of identical tied vectors is below 1 (no tie correction)
    assert kendall_tau_a(x, x) == pytest.approx(4 / 6, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 200), levels=st.integers(1, 20))
def test_average_ranks_equal_scipy_rankdata_of_levels(seed, m, levels):
    rng = np.random.default_rng(seed)
    grain = 1e-12
    group = rng.integers(0, levels, m)
    v = group * 0.25 + rng.uniform(-0.5, 0.5, m) * grain  # ties blurred by noise within the grain
    assert np.array_equal(rsa_mod.average_ranks(v.copy(), grain), rankdata(group))
    assert np.array_equal(rsa_mod.tie_groups(v.copy(), grain), rankdata(group, method="dense") - 1.0)


def test_spearman_with_ties_matches_scipy_on_integer_data():
    for seed in range(3):
        x, y = pair(seed, 25, 4, 3, integer=True)
        da, db = rdm_vector(x, "euclidean"), rdm_vector(y, "euclidean")
        assert len(np.unique(da)) < len(da) / 4  # plenty of exact ties
        want = spearmanr(da, db).statistic
        assert record("rsa spearman with ties vs scipy", rsa(x, y, rdm="euclidean"), want) <= 1e-12


def test_duplicated_inputs_are_at_distance_exactly_zero():
    """The Gram route gives ~1e-8 for a duplicated row after the square root; rdm refines it to 0."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 6)) * 3 + 50.0
    x[5] = x[2]
    x[9] = x[2]
    d = rsa_mod.rdm(x, "euclidean")
    assert d[2, 5] == 0.0 and d[5, 9] == 0.0 and d[2, 9] == 0.0
    assert np.abs(d - np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))).max() <= 1e-12


def rho_a_direct(da: np.ndarray, db: np.ndarray) -> float:
    m = len(da)
    ra, rb = rankdata(da), rankdata(db)
    return float(12.0 * np.dot(ra - ra.mean(), rb - rb.mean()) / (m**3 - m))


def cosine_direct(da: np.ndarray, db: np.ndarray) -> float:
    return float(da @ db / np.linalg.norm(da) / np.linalg.norm(db))


@pytest.mark.parametrize("rdm", ["correlation", "euclidean"])
@pytest.mark.parametrize("integer", [False, True], ids=["continuous", "ties"])
def test_new_comparators_match_direct_formulas(rdm, integer):
    for seed in range(3):
        x, y = pair(seed, 20, 4, 3, integer=integer)
        if integer and rdm == "correlation":
            x, y = x + np.arange(4), y + np.arange(3)  # rows with variance
        da, db = rdm_vector(x, rdm), rdm_vector(y, rdm)
        checks = {
            "kendall_a": tau_a_bruteforce(da, db),
            "rho_a": rho_a_direct(da, db),
            "cosine": cosine_direct(da, db),
        }
        for compare, want in checks.items():
            got = rsa(x, y, rdm=rdm, compare=compare)
            assert record(f"rsa {compare} vs direct formula", got, want) <= 1e-12, (compare, got, want)


# ------------------------------------------------------------------ rsatoolbox parity


RSATOOLBOX_METHOD = {"kendall_a": "tau-a", "rho_a": "rho-a", "cosine": "cosine", "spearman": "spearman"}


@pytest.mark.parametrize("rdm", ["correlation", "euclidean"])
@pytest.mark.parametrize("integer", [False, True], ids=["continuous", "ties"])
def test_matches_rsatoolbox_compare(rdm, integer):
    rsatb = pytest.importorskip("rsatoolbox.rdm", reason="rsatoolbox not installed (pip install repsim-cli[test])")
    for seed in range(3):
        x, y = pair(seed, 24, 5, 4, integer=integer)
        if integer and rdm == "correlation":
            x, y = x + np.arange(5), y + np.arange(4)
        da, db = rdm_vector(x, rdm), rdm_vector(y, rdm)
        for compare, method in RSATOOLBOX_METHOD.items():
            want = float(rsatb.compare(da, db, method=method)[0, 0])
            got = rsa(x, y, rdm=rdm, compare=compare)
            assert record(f"rsa {compare} vs rsatoolbox", got, want) <= 1e-10, (compare, got, want)


# ------------------------------------------------------------------ behaviour


def test_constant_and_zero_rdms_warn():
    x = np.eye(5)  # every pair equally far apart: constant euclidean RDM
    y = pair(0, 5, 3, 3)[0]
    for compare in ("kendall_a", "rho_a"):
        r = parse_metric(f"rsa:rdm=euclidean,compare={compare}").compute(x, y)
        assert r.value == 0.0 and any("undefined" in w for w in r.warnings)
    # a constant nonzero RDM has a cosine: no warning
    r = parse_metric("rsa:rdm=euclidean,compare=cosine").compute(x, y)
    assert r.value > 0.0 and not r.warnings
    r = parse_metric("rsa:rdm=euclidean,compare=cosine").compute(np.ones((5, 3)), y)
    assert r.value == 0.0 and any("all zeros" in w for w in r.warnings)


def test_registry_declares_the_new_comparators():
    m = parse_metric("rsa:compare=cosine")
    assert m.value_range == (0.0, 1.0) and parse_metric("rsa:compare=kendall_a").value_range == (-1.0, 1.0)
    assert m.metric.param("compare").choices == ("spearman", "pearson", "kendall_a", "rho_a", "cosine")
    assert "tau_a" in m.metric.formula and "rho_a" in m.metric.formula and m.metric.gram is True


def test_permutation_fast_path_for_every_comparator():
    x, y = pair(4, 18, 4, 4)
    perm = np.random.default_rng(2).permutation(18)
    for compare in ("kendall_a", "rho_a", "cosine", "spearman"):
        b = parse_metric(f"rsa:compare={compare}")
        fast = b.pair(b.permute(b.prepare(x), perm), b.prepare(y)).value
        assert fast == pytest.approx(b.compute(x[perm], y).value, abs=1e-13)


# ------------------------------------------------------------------ CLI and the permutation null


def test_compare_cli_and_permutation_null(tmp_path):
    from conftest import write_h5
    from repsim_cli.cli import app

    x, y = pair(6, 40, 6, 5)
    a = write_h5(tmp_path / "a.h5", {"h": x.astype(np.float32)})
    b = write_h5(tmp_path / "b.h5", {"h": y.astype(np.float32)})
    specs = ["rsa:compare=kendall_a", "rsa:compare=rho_a", "rsa:compare=cosine,rdm=euclidean"]
    args = ["compare", str(a), str(b), "--permutations", "19", "--seed", "2", "-f", "json"]
    for s in specs:
        args += ["-m", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = json.loads(res.stdout)["results"]
    assert len(recs) == 3
    for rec, spec in zip(recs, specs):
        want = parse_metric(spec).compute(x.astype(np.float32), y.astype(np.float32)).value
        assert rec["value"] == pytest.approx(want, abs=1e-12)
        assert rec["permutations"] == 19 and rec["p_value"] == pytest.approx(0.05)  # related layers


def test_report_worst_disagreements():
    for name, err in sorted(WORST.items()):
        print(f"worst |repsim - independent| {name}: {err:.2e}")


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 3000), kind=st.sampled_from(["continuous", "ties", "clash", "constant"]))
def test_sorted_order_is_an_exact_argsort(seed, m, kind):
    """The packed-key sort must order values exactly, including values closer than its quantization."""
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        v = rng.standard_normal(m)
    elif kind == "ties":
        v = rng.integers(0, 5, m) * 0.5
    elif kind == "clash":  # distinct values far below the key resolution, plus an outlier stretching the range
        v = 1.0 + rng.integers(0, 1000, m) * 1e-15
        v[0] = 1e6
    else:
        v = np.full(m, 2.5)
    order, srt = rsa_mod.sorted_order(v)
    assert np.array_equal(np.sort(order), np.arange(m))
    assert np.array_equal(srt, v[order]) and np.array_equal(srt, np.sort(v))
