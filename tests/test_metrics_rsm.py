"""dcor, rsm_diff, eos and gulp against independent routes: brute-force transcriptions of the papers'
formulas, transcriptions of ReSi's formulas (ReSi parity), the `dcor` package when installed, and
second formulas (hat matrices, canonical correlations, N x N matrices)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

import repsim_cli.metrics.rsm as rsm_mod
from repsim_cli.errors import RepsimError, RepsimWarning
from repsim_cli.metrics import (
    distance_correlation,
    eigenspace_overlap,
    gulp_distance,
    parse_metric,
    rsm_norm_difference,
)
from repsim_cli.metrics.cca import cca
from repsim_cli.metrics.rsm import psd_difference, spectral_norm_symmetric

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float, rel: bool = False) -> float:
    err = abs(got - want) / (max(abs(want), 1e-300) if rel else 1.0)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def pair(seed: int, n: int, fa: int, fb: int, offset: float = 1.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) @ rng.standard_normal((fa, fa)) + offset
    y = x[:, : min(fa, fb)] @ rng.standard_normal((min(fa, fb), fb)) + 0.7 * rng.standard_normal((n, fb)) - offset
    return x, y


SHAPES = [(30, 4, 6), (25, 6, 3), (12, 20, 15)]
IDS = ["N>F", "N>F2", "F>N"]

# ------------------------------------------------------------------ dcor


def dcor_brute(x: np.ndarray, y: np.ndarray, unbiased: bool) -> float:
    """Szekely, Rizzo & Bakirov (2007) eq. 2.8-2.10 and Szekely & Rizzo (2014) Def. 1, element by element."""
    a, b = cdist(x, x), cdist(y, y)  # direct differences, raw (uncentred) rows
    n = len(x)

    def centred(d):
        out = np.zeros_like(d)
        for i in range(n):
            for j in range(n):
                if unbiased:
                    if i != j:
                        out[i, j] = d[i, j] - d[i].sum() / (n - 2) - d[:, j].sum() / (n - 2) + d.sum() / ((n - 1) * (n - 2))
                else:
                    out[i, j] = d[i, j] - d[i].mean() - d[:, j].mean() + d.mean()
        return out

    ca, cb = centred(a), centred(b)
    scale = 1.0 / (n * (n - 3)) if unbiased else 1.0 / n**2

    def v(p, q):
        return scale * float((p * q).sum())

    r2 = v(ca, cb) / np.sqrt(v(ca, ca) * v(cb, cb))
    return r2 if unbiased else float(np.sqrt(r2))


def dcor_resi(x: np.ndarray, y: np.ndarray) -> float:
    """ReSi's DistanceCorrelation formula: pairwise distances of the raw rows (ReSi calls scikit-learn's
    pairwise_distances; scipy's cdist computes the same matrix and imports in a fraction of the time),
    S - row means - column means + mean, sqrt(mean(S o S') / sqrt(mean(S o S) mean(S' o S')))."""

    def dc(d):
        return d - d.mean(axis=0, keepdims=True) - d.mean(axis=1, keepdims=True) + d.mean()

    s, sp = dc(cdist(x, x)), dc(cdist(y, y))
    return float(np.sqrt((s * sp).mean() / np.sqrt((s * s).mean() * (sp * sp).mean())))


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("unbiased", [False, True])
def test_dcor_matches_brute_force(shape, unbiased, monkeypatch):
    for seed in range(3):
        x, y = pair(seed, *shape)
        got = distance_correlation(x, y, unbiased=unbiased)
        want = dcor_brute(x, y, unbiased)
        assert record(f"dcor unbiased={unbiased} vs brute force", got, want) <= 1e-12
    monkeypatch.setattr(rsm_mod, "_block_rows", lambda n: 7)  # several row blocks
    assert record("dcor (7-row blocks) vs brute force", distance_correlation(x, y, unbiased=unbiased), want) <= 1e-12


def test_dcor_resi_parity():
    for seed in range(5):
        x, y = pair(seed, 40, 7, 5)
        assert record("dcor vs ReSi formula", distance_correlation(x, y), dcor_resi(x, y)) <= 1e-12


def test_dcor_matches_the_dcor_package(tmp_path):
    """Against the `dcor` package, run in a fresh interpreter with numba's JIT off from the start.

    numba reads NUMBA_DISABLE_JIT when it is first imported; another library may have imported it
    earlier in this process (then dcor's kernels fail to type), and compiling them takes ~40 s here.
    """
    pytest.importorskip("dcor", reason="the dcor package (test extra) is not installed")
    import subprocess
    import sys

    pairs = [pair(seed, 35, 5, 4) for seed in range(3)]
    for i, (x, y) in enumerate(pairs):
        np.save(tmp_path / f"x{i}.npy", x)
        np.save(tmp_path / f"y{i}.npy", y)
    code = (
        "import sys, json, numpy as np, dcor\n"
        "out = []\n"
        "for i in range(3):\n"
        "    x, y = np.load(f'{sys.argv[1]}/x{i}.npy'), np.load(f'{sys.argv[1]}/y{i}.npy')\n"
        "    out.append([float(dcor.distance_correlation(x, y, method='naive')), float(dcor.u_distance_correlation_sqr(x, y, method='naive'))])\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for (x, y), (want, want_u) in zip(pairs, json.loads(proc.stdout)):
        assert record("dcor vs dcor package", distance_correlation(x, y), want) <= 1e-12
        assert record("dcor unbiased vs dcor package", distance_correlation(x, y, unbiased=True), want_u) <= 1e-12


def test_dcor_independent_is_small_unbiased_can_be_negative_and_errors():
    rng = np.random.default_rng(5)
    values = [distance_correlation(rng.standard_normal((60, 3)), rng.standard_normal((60, 3)), unbiased=True) for _ in range(20)]
    assert min(values) < 0 < max(values) and max(abs(v) for v in values) < 0.2
    x = np.ones((10, 3))
    with pytest.raises(RepsimError, match="distance variance of side A"):
        distance_correlation(x, rng.standard_normal((10, 2)))
    with pytest.raises(RepsimError, match="N >= 4"):
        distance_correlation(rng.standard_normal((3, 2)), rng.standard_normal((3, 2)), unbiased=True)


# ------------------------------------------------------------------ rsm_diff


def rsm_brute(x: np.ndarray, rsm: str, center: bool) -> np.ndarray:
    if rsm == "euclidean":
        return cdist(x, x)
    z = x - x.mean(axis=0) if center else x
    if rsm == "cosine":
        return 1.0 - cdist(z, z, "cosine")
    return z @ z.T


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("rsm", ["euclidean", "cosine", "linear"])
@pytest.mark.parametrize("norm", ["fro", "spectral"])
def test_rsm_diff_matches_n_by_n(shape, rsm, norm):
    for seed in range(2):
        for center in (True, False):
            x, y = pair(seed, *shape)
            diff = rsm_brute(x, rsm, center) - rsm_brute(y, rsm, center)
            want = float(np.linalg.norm(diff, "fro" if norm == "fro" else 2))
            got = rsm_norm_difference(x, y, rsm, norm, center)
            assert record(f"rsm_diff {rsm} {norm} vs N x N", got, want, rel=True) <= 1e-12


def test_rsm_diff_row_blocks(monkeypatch):
    x, y = pair(4, 40, 5, 3)
    want = float(np.linalg.norm(cdist(x, x) - cdist(y, y)))
    monkeypatch.setattr(rsm_mod, "_block_rows", lambda n: 7)  # several row blocks (build and Frobenius)
    assert record("rsm_diff euclidean fro (7-row blocks) vs N x N", rsm_norm_difference(x, y), want, rel=True) <= 1e-12


def rsm_resi(x: np.ndarray, y: np.ndarray, inner: str) -> float:
    """ReSi's RSMNormDifference formula: pairwise distances of the raw rows (scikit-learn's there, scipy's
    cdist here: the same matrices, sklearn's cosine with its diagonal set to 0), np.linalg.norm(ord=2)."""

    def dist(m):
        d = cdist(m, m, inner)
        np.fill_diagonal(d, 0.0)
        return d

    return float(np.linalg.norm(dist(x) - dist(y), ord=2))


def test_rsm_diff_resi_parity():
    for seed in range(4):
        x, y = pair(seed, 50, 6, 4)
        got = rsm_norm_difference(x, y, "euclidean", "spectral")
        assert record("rsm_diff euclidean spectral vs ReSi", got, rsm_resi(x, y, "euclidean"), rel=True) <= 1e-12
        got = rsm_norm_difference(x, y, "cosine", "spectral", center=False)
        assert record("rsm_diff cosine,center=false spectral vs ReSi", got, rsm_resi(x, y, "cosine"), rel=True) <= 1e-12


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(3, 40), fa=st.integers(1, 12), fb=st.integers(1, 12))
def test_linear_rsm_feature_identity_matches_n_by_n(seed, n, fa, fb):
    """||XX^T - YY^T||_F^2 = ||X^T X||^2 + ||Y^T Y||^2 - 2||X^T Y||^2, and the QR route, against N x N."""
    x, y = pair(seed, n, fa, fb)
    want = float(np.linalg.norm(rsm_brute(x, "linear", True) - rsm_brute(y, "linear", True)))
    got = rsm_norm_difference(x, y, "linear")
    assert record("rsm_diff linear fro (feature space) vs N x N", got, want, rel=True) <= 1e-10
    xc, yc = x - x.mean(0), y - y.mean(0)
    assert psd_difference(xc, yc) == pytest.approx(want, rel=1e-10)


def test_linear_rsm_has_no_cancellation_near_identity():
    """y = x + d E: Y_c Y_c^T - X_c X_c^T = d (X_c E_c^T + E_c X_c^T) + d^2 E_c E_c^T, computed without cancellation.
    The inputs' own rounding bounds any route to ~eps ||X||^2 / distance relative error (~1e-7 at d = 1e-10);
    the feature-space sum alone returns 0 there (its error ~1e-8 ||X X^T|| exceeds the distance)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8))
    e = rng.standard_normal((200, 8))
    xc, ec = x - x.mean(0), e - e.mean(0)
    for delta, tol in ((1e-4, 1e-12), (1e-7, 1e-8), (1e-10, 1e-6)):
        exact = float(np.linalg.norm(delta * (xc @ ec.T + ec @ xc.T) + delta**2 * ec @ ec.T))
        got = rsm_norm_difference(x, x + delta * e, "linear")
        assert record(f"rsm_diff linear near identity d={delta:g} (relative)", got, exact, rel=True) <= tol
    assert rsm_norm_difference(x, x, "linear") == 0.0


def test_spectral_norm_lanczos_matches_dense():
    rng = np.random.default_rng(1)
    for n in (30, 200):
        m = rng.standard_normal((n, n))
        m = m + m.T
        want = float(np.linalg.norm(m, 2))
        assert record("spectral norm Lanczos vs dense", spectral_norm_symmetric(m, dense_below=10), want, rel=True) <= 1e-12
        assert spectral_norm_symmetric(m) == pytest.approx(want, rel=1e-13)


# ------------------------------------------------------------------ eos


def eos_resi(x: np.ndarray, y: np.ndarray) -> float:
    """ReSi's EigenspaceOverlapScore formula: full SVD, first matrix_rank columns, / max(F_A, F_B)."""
    u = np.linalg.svd(x)[0][:, : np.linalg.matrix_rank(x)]
    v = np.linalg.svd(y)[0][:, : np.linalg.matrix_rank(y)]
    return float(np.linalg.norm(u.T @ v, "fro") ** 2 / max(x.shape[1], y.shape[1]))


def eos_projections(x: np.ndarray, y: np.ndarray, center: bool, by_rank: bool) -> float:
    """tr(P_X P_Y) / denominator with N x N projectors P = X pinv(X)."""
    if center:
        x, y = x - x.mean(0), y - y.mean(0)
    px, py = x @ np.linalg.pinv(x), y @ np.linalg.pinv(y)
    denom = max(np.linalg.matrix_rank(x), np.linalg.matrix_rank(y)) if by_rank else max(x.shape[1], y.shape[1])
    return float(np.trace(px @ py)) / denom


@pytest.mark.filterwarnings("ignore:eos. rank:repsim_cli.errors.RepsimWarning")  # F > N: rank < F, see below
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_eos_matches_projectors_and_resi(shape):
    for seed in range(3):
        x, y = pair(seed, *shape)
        for center in (True, False):
            for by_rank in (False, True):
                got = eigenspace_overlap(x, y, center, "rank" if by_rank else "features")
                assert record("eos vs projectors", got, eos_projections(x, y, center, by_rank)) <= 1e-12
        assert record("eos center=false vs ReSi", eigenspace_overlap(x, y, center=False), eos_resi(x, y)) <= 1e-12


def test_eos_rank_deficient_warns_and_rank_denominator_reaches_one():
    x, _ = pair(0, 10, 15, 3)  # F > N: rank N - 1 = 9 after centring
    res = parse_metric("eos").compute(x, x)
    assert res.value == pytest.approx(9 / 15, abs=1e-12) and "denominator=rank" in res.warnings[0]
    with pytest.warns(RepsimWarning, match="denominator=rank"):
        assert eigenspace_overlap(x, x) == pytest.approx(9 / 15, abs=1e-12)
    assert eigenspace_overlap(x, x, denominator="rank") == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(RepsimError, match="rank 0"):
        eigenspace_overlap(np.ones((5, 2)), x[:5])


# ------------------------------------------------------------------ gulp


def normalized(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    return xc * np.sqrt(len(x)) / np.linalg.norm(xc)


def gulp_resi(x: np.ndarray, y: np.ndarray, lam: float) -> float:
    """The authors' predictor_dist (as ReSi's Gulp calls it), transcribed: F x F eigendecompositions of
    the covariances, inverses 1/(e + lam) (1/e for e > 0 at lam = 0), T1 + T2 - 2 T3; returns d^2."""
    a, b = normalized(x).T, normalized(y).T  # features x samples, as the authors
    n = a.shape[1]

    def parts(m):
        e, v = np.linalg.eigh(m @ m.T)
        e = np.maximum(e, 0.0) / n
        inv = np.where(e > 0, 1.0 / np.where(e > 0, e + lam, 1.0), 1.0 / lam if lam > 0 else 0.0)
        return e, v, inv

    ea, va, ia = parts(a)
    eb, vb, ib = parts(b)
    t1, t2 = np.sum((ea * ia) ** 2), np.sum((eb * ib) ** 2)
    c = a @ b.T / n
    ma = np.diag(np.sqrt(ia)) @ va.T
    t3 = np.trace(ma @ c @ (vb @ np.diag(ib) @ vb.T) @ c.T @ ma.T)
    return float(t1 + t2 - 2 * t3)


def gulp_hat(x: np.ndarray, y: np.ndarray, lam: float) -> float:
    """||H_A - H_B||_F with N x N ridge hat matrices H = X (X^T X + N lam I)^+ X^T."""

    def hat(m):
        m = normalized(m)
        if lam == 0:
            return m @ np.linalg.pinv(m)  # the projector onto the column space
        return m @ np.linalg.solve(m.T @ m + len(m) * lam * np.eye(m.shape[1]), m.T)

    return float(np.linalg.norm(hat(x) - hat(y)))


@pytest.mark.parametrize("shape", SHAPES + [(12, 4, 30)], ids=IDS + ["mixed"])
@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.1, 10.0])
def test_gulp_matches_resi_formula_and_hat_matrices(shape, lam):
    for seed in range(3):
        x, y = pair(seed, *shape)
        if max(shape[1:]) < shape[0] or lam > 0:  # ReSi's lambda=0 counts noise eigenvalues when F >= N
            d2 = gulp_distance(x, y, lam, squared=True)
            assert record("gulp squared vs ReSi formula", d2, gulp_resi(x, y, lam)) <= 1e-10
        assert record("gulp vs hat matrices", gulp_distance(x, y, lam), gulp_hat(x, y, lam)) <= 1e-10


def test_gulp_lambda0_is_ranks_minus_canonical_correlations():
    for seed in range(4):
        x, y = pair(seed, 50, 5, 7)
        rho2 = 5 * cca(x, y, "r2")  # sum of the min(r_A, r_B) squared canonical correlations
        assert record("gulp lambda=0 vs CCA", gulp_distance(x, y, 0.0, True), 5 + 7 - 2 * rho2) <= 1e-10


def test_gulp_rank_deficient_uses_matrix_rank_not_noise():
    """F > N: after centring rank is N - 1; the pseudo-inverse with numpy's rank rule gives the hat matrix
    of the column space (the N x N route agrees), and identical inputs are exactly 0."""
    x, y = pair(2, 12, 20, 15)
    want = gulp_hat(x, y, 0.0)
    assert record("gulp F>N lambda=0 vs hat matrices", gulp_distance(x, y), want) <= 1e-9
    assert gulp_distance(x, x) == 0.0


def test_gulp_no_cancellation_near_identity():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 6))
    tiny = gulp_distance(x, x + 1e-9 * rng.standard_normal((300, 6)), 0.1)
    assert 0 < tiny < 1e-8  # T1 + T2 - 2 T3 alone would give noise of ~1e-8 or a clamped 0


def test_report_worst_disagreements():
    for name, err in sorted(WORST.items()):
        print(f"worst |repsim - independent| {name}: {err:.2e}")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), lam=st.sampled_from([0.0, 0.01, 1.0]))
def test_gulp_and_rsm_diff_satisfy_the_triangle_inequality(seed, lam):
    """GULP is a metric (Boix-Adsera et al. 2022, Thm 1) and ||S_X - S_Y|| a norm of a difference."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 30))
    x, y, z = (rng.standard_normal((n, int(rng.integers(2, 7)))) for _ in range(3))
    y = y + 0.5 * x[:, :1]
    for fn in (lambda p, q: gulp_distance(p, q, lam), lambda p, q: rsm_norm_difference(p, q, "linear", "spectral")):
        assert fn(x, z) <= fn(x, y) + fn(y, z) + 1e-10
