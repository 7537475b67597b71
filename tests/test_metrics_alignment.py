"""shape, procrustes:align=permutation, aligned_cosine and soft_match against independent routes.

Independent routes: a direct transcription of each definition (scipy.linalg.fractional_matrix_power,
numpy's nuclear norm, scipy.linalg.orthogonal_procrustes), brute force over every permutation,
direct transcriptions of ReSi's formulas (written from the paper/ReSi's documented algorithm, not
copied), and scipy.optimize.linprog for the transport problem.
"""

from __future__ import annotations

import itertools
import sys
import warnings

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment, linprog

from repsim_cli.errors import RepsimError, RepsimWarning
from repsim_cli.metrics import (
    aligned_cosine,
    cca,
    get_metric,
    parse_metric,
    procrustes,
    shape_distance,
    soft_match_distance,
)

from conftest import assert_cli_matches_library

WORST: dict[str, float] = {}


def record(name: str, got: float, want: float) -> float:
    err = abs(got - want)
    WORST[name] = max(WORST.get(name, 0.0), err)
    return err


def pair(seed: int, n: int, fa: int, fb: int, offset: float = 1.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) @ rng.standard_normal((fa, fa)) + offset
    y = x[:, : min(fa, fb)] @ rng.standard_normal((min(fa, fb), fb)) + 0.7 * rng.standard_normal((n, fb))
    return x, y


def padded(x: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((x.shape[0], width))
    out[:, : x.shape[1]] = x
    return out


SHAPES = [(30, 4, 6), (25, 6, 3), (40, 5, 5), (8, 20, 12), (8, 3, 20)]
SHAPE_IDS = ["N>F", "N>F2", "square", "F>N", "mixed"]

# ------------------------------------------------------------------ shape


def shape_ref(x: np.ndarray, y: np.ndarray, alpha: float, form: str) -> float:
    """The definition, transcribed: X~ = Xc (a I + (1-a) Xc^T Xc / N)^(-1/2) by an eigendecomposition
    of the F x F matrix (pseudo-inverse for zero eigenvalues), zero-pad, numpy's nuclear norm."""
    n = len(x)

    def whiten(z):
        zc = z - z.mean(axis=0)
        m = alpha * np.eye(z.shape[1]) + (1 - alpha) * zc.T @ zc / n
        if alpha > 0:
            return zc @ np.real(scipy.linalg.fractional_matrix_power(m, -0.5))
        lam, v = np.linalg.eigh(m)
        keep = lam > 1e-10 * lam.max()
        inv = np.where(keep, 1 / np.sqrt(np.where(keep, lam, 1)), 0)
        return zc @ (v * inv) @ v.T

    f = max(x.shape[1], y.shape[1])
    xt, yt = padded(whiten(x), f), padded(whiten(y), f)
    nuc = np.linalg.norm(xt.T @ yt, "nuc")
    if form == "angular":
        return float(np.arccos(min(1.0, nuc / (np.linalg.norm(xt) * np.linalg.norm(yt)))))
    return float(np.sqrt(max(0.0, np.linalg.norm(xt) ** 2 + np.linalg.norm(yt) ** 2 - 2 * nuc) / n))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("form", ["angular", "euclidean"])
def test_shape_matches_the_definition(shape, alpha, form):
    for seed in range(2):
        x, y = pair(seed, *shape)
        want = shape_ref(x, y, alpha, form)
        assert record(f"shape {form}", shape_distance(x, y, alpha, form), want) <= 1e-9 * max(1.0, want)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_shape_alpha_one_is_procrustes_on_centred_data(shape):
    for seed in range(3):
        x, y = pair(seed, *shape)
        assert record("shape a=1 angular vs procrustes angle", shape_distance(x, y), procrustes(x, y, "angle")) <= 1e-12
        # euclidean: size-and-shape Procrustes of the centred, unnormalized data, / sqrt(N)
        f = max(x.shape[1], y.shape[1])
        xc, yc = padded(x - x.mean(0), f), padded(y - y.mean(0), f)
        r, _ = scipy.linalg.orthogonal_procrustes(yc, xc)
        want = np.linalg.norm(yc @ r - xc) / np.sqrt(len(x))
        assert record("shape a=1 euclidean vs scipy", shape_distance(x, y, 1.0, "euclidean"), want) <= 1e-10


@pytest.mark.parametrize("shape", [(30, 4, 6), (25, 6, 3), (40, 5, 5)], ids=["4-6", "6-3", "5-5"])
def test_shape_alpha_zero_is_the_cca_metric(shape):
    """alpha=0: X~ = sqrt(N) Q_X (up to rotation), so ||X~^T Y~||_* = N sum rho and ||X~||_F^2 = N r_X:
    cos(angular) = sum rho / sqrt(r_X r_Y) (= cca's mean rho when r_X = r_Y) and
    euclidean = sqrt(r_X + r_Y - 2 sum rho)."""
    for seed in range(3):
        x, y = pair(seed, *shape)
        ra, rb = x.shape[1], y.shape[1]
        total = cca(x, y) * min(ra, rb)
        assert record("shape a=0 vs cca", np.cos(shape_distance(x, y, 0.0)), total / np.sqrt(ra * rb)) <= 1e-12
        want = np.sqrt(ra + rb - 2 * total)
        assert record("shape a=0 euclidean vs cca", shape_distance(x, y, 0.0, "euclidean"), want) <= 1e-10


def test_shape_alpha_zero_drops_dead_and_duplicated_units_like_cca():
    x, y = pair(3, 30, 4, 4)
    x2 = np.column_stack([x, x[:, 0], np.zeros(30)])  # a duplicated and a dead unit: rank stays 4
    assert shape_distance(x2, y, 0.0) == pytest.approx(shape_distance(x, y, 0.0), abs=1e-10)
    # the Gram route of 0 < alpha stays accurate as alpha -> 0 with dead/duplicated units (continuity)
    assert shape_distance(x2, y, 1e-12) == pytest.approx(shape_distance(x2, y, 0.0), abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    alpha=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    form=st.sampled_from(["angular", "euclidean"]),
    widths=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
)
def test_shape_triangle_inequality(seed, alpha, form, widths):
    rng = np.random.default_rng(seed)
    n = 12
    base = rng.standard_normal((n, 6))
    xs = [base[:, :f] @ rng.standard_normal((f, f)) + rng.standard_normal((n, f)) * rng.uniform(0.1, 2) for f in widths]
    d = {(i, j): shape_distance(xs[i], xs[j], alpha, form) for i in range(3) for j in range(3)}
    for i, j, k in itertools.permutations(range(3)):
        assert d[i, k] <= d[i, j] + d[j, k] + 1e-10
    assert all(d[i, i] <= 1e-12 for i in range(3))


def test_shape_identical_rotated_and_near_identical():
    x, _ = pair(1, 50, 6, 6)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))
    for alpha in (0.0, 0.5, 1.0):
        for form in ("angular", "euclidean"):
            assert shape_distance(x, x, alpha, form) <= 1e-13
            assert shape_distance(x, x @ q + 5.0, alpha, form) <= 1e-12
    # a perturbation of 1e-9: the closed form would lose it to cancellation (arccos(1 - 1e-18) = 0);
    # the residual route sees it: angular ~ ||E|| / ||Xc|| for a perturbation E orthogonal to X's shape
    e = 1e-9 * np.random.default_rng(1).standard_normal(x.shape)
    got = shape_distance(x, x + e, 1.0, "angular")
    assert 1e-11 < got < 1e-8


def test_shape_constant_layer_and_degenerate_warning():
    x, y = pair(0, 10, 3, 3)
    with pytest.raises(RepsimError, match="constant"):
        shape_distance(np.ones((10, 3)), x)
    res = parse_metric("shape:alpha=0").compute(*pair(0, 10, 12, 3))
    assert any("meaningless" in w for w in res.warnings)
    assert not parse_metric("shape:alpha=0.5").compute(*pair(0, 10, 12, 3)).warnings


def test_shape_declared_invariances_follow_alpha_and_form():
    inv = lambda s: parse_metric(s).invariances  # noqa: E731
    assert inv("shape") == {"orthogonal", "permutation", "translation", "isotropic_scaling"}
    assert inv("shape:form=euclidean") == {"orthogonal", "permutation", "translation"}
    assert inv("shape:alpha=0.5") == {"orthogonal", "permutation", "translation"}
    assert "invertible_linear" in inv("shape:alpha=0") and "isotropic_scaling" in inv("shape:alpha=0,form=euclidean")
    m = get_metric("shape")
    assert not m.higher_is_similar and m.symmetric is True


# ------------------------------------------------------------------ procrustes:align=permutation


def normalized(x: np.ndarray, width: int) -> np.ndarray:
    xc = x - x.mean(axis=0)
    return padded(xc / np.linalg.norm(xc), width)


def permutation_bruteforce(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """max over every permutation of the zero-padded columns of <X^, Y^ P>, and the min residual."""
    f = max(x.shape[1], y.shape[1])
    xh, yh = normalized(x, f), normalized(y, f)
    best_sim, best_dist = -np.inf, np.inf
    for p in itertools.permutations(range(f)):
        best_sim = max(best_sim, float(np.sum(xh * yh[:, p])))
        best_dist = min(best_dist, float(np.linalg.norm(xh - yh[:, p])))
    return best_sim, best_dist


def resi_permutation_procrustes(r: np.ndarray, rp: np.ndarray) -> float:
    """ReSi's PermutationProcrustes formula: zero-pad, Hungarian on R^T R' (maximize), ||R[:, p] - R'[:, q]||_F."""
    f = max(r.shape[1], rp.shape[1])
    r, rp = padded(r, f), padded(rp, f)
    pr, prp = linear_sum_assignment(r.T @ rp, maximize=True)
    return float(np.linalg.norm(r[:, pr] - rp[:, prp]))


def resi_permutation_angular(r: np.ndarray, rp: np.ndarray) -> float:
    """ReSi's permutation_angular_shape_metric: zero-pad, normalize, Hungarian, arccos(clip(trace))."""
    f = max(r.shape[1], rp.shape[1])
    r, rp = padded(r, f), padded(rp, f)
    r, rp = r / np.linalg.norm(r), rp / np.linalg.norm(rp)
    pr, prp = linear_sum_assignment(r.T @ rp, maximize=True)
    return float(np.arccos(np.clip(np.trace(r[:, pr].T @ rp[:, prp]), -1.0, 1.0)))


@pytest.mark.parametrize("shape", [(20, 4, 4), (15, 5, 3), (6, 3, 5), (4, 5, 5)], ids=["4-4", "5-3", "3-5", "F>N"])
def test_permutation_procrustes_matches_bruteforce(shape):
    for seed in range(3):
        x, y = pair(seed, *shape)
        sim, dist = permutation_bruteforce(x, y)
        assert record("procrustes:align=permutation similarity", procrustes(x, y, "similarity", "permutation"), sim) <= 1e-12
        assert record("procrustes:align=permutation distance", procrustes(x, y, "distance", "permutation"), dist) <= 1e-12
        want_angle = np.arccos(np.clip(sim, -1, 1))
        assert record("procrustes:align=permutation angle", procrustes(x, y, "angle", "permutation"), want_angle) <= 1e-7


@pytest.mark.parametrize("shape", [(200, 16, 16), (100, 12, 20), (30, 40, 25)], ids=["16-16", "12-20", "F>N"])
def test_permutation_procrustes_resi_parity(shape):
    """ReSi applies its formula to the data as given (no centring or normalization); ours is that formula
    on X^ = Xc / ||Xc||_F, so ReSi's function on X^ must agree (parity figure in the report)."""
    for seed in range(3):
        x, y = pair(seed, *shape)
        f = max(x.shape[1], y.shape[1])
        xh, yh = normalized(x, f), normalized(y, f)
        got = procrustes(x, y, "distance", "permutation")
        assert record("ReSi parity PermutationProcrustes (on X^)", got, resi_permutation_procrustes(xh, yh)) <= 1e-12
        got = procrustes(x, y, "angle", "permutation")
        assert record("ReSi parity permutation angular (on Xc)", got, resi_permutation_angular(x - x.mean(0), y - y.mean(0))) <= 1e-7


def test_permutation_procrustes_invariances_and_ranges():
    assert "orthogonal" not in parse_metric("procrustes:align=permutation").invariances
    assert "orthogonal" in parse_metric("procrustes").invariances
    assert parse_metric("procrustes:align=permutation").value_range == (-1.0, 1.0)
    assert parse_metric("procrustes:align=permutation,stat=distance").value_range == (0.0, 2.0)
    x, y = pair(2, 30, 5, 5)
    perm = np.random.default_rng(0).permutation(5)
    assert procrustes(x, 2.5 * y[:, perm] - 3, "distance", "permutation") == pytest.approx(
        procrustes(x, y, "distance", "permutation"), abs=1e-12
    )
    x1 = x[:, :1]  # one neuron: a permutation cannot flip its sign, a rotation can
    assert procrustes(x1, -x1, "similarity", "permutation") == pytest.approx(-1.0, abs=1e-12)
    assert procrustes(x1, -x1, "angle", "permutation") == pytest.approx(np.pi, abs=1e-12)
    assert procrustes(x1, -x1, "similarity") == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------ aligned cosine


def resi_aligned_cosine(r: np.ndarray, rp: np.ndarray) -> float:
    """ReSi's AlignedCosineSimilarity formula on the rows as given: zero-pad, Omega =
    scipy.linalg.orthogonal_procrustes(R, R'), mean over rows of cos(r_i Omega, r'_i), zero rows skipped."""
    f = max(r.shape[1], rp.shape[1])
    r, rp = padded(r, f), padded(rp, f)
    omega, _ = scipy.linalg.orthogonal_procrustes(r, rp)
    total, skipped = 0.0, 0
    for a, b in zip(r @ omega, rp):
        if not np.any(a) or not np.any(b):
            skipped += 1
        else:
            total += a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return total / (len(r) - skipped)


@pytest.mark.parametrize("shape", [(30, 4, 6), (25, 6, 3), (40, 5, 5), (8, 20, 12), (8, 3, 20)], ids=SHAPE_IDS)
def test_aligned_cosine_resi_parity_and_centred(shape):
    for seed in range(3):
        x, y = pair(seed, *shape)
        want = resi_aligned_cosine(x, y)
        assert record("ReSi parity AlignedCosineSimilarity (center=false)", aligned_cosine(x, y, center=False), want) <= 1e-12
        want = resi_aligned_cosine(x - x.mean(0), y - y.mean(0))
        assert record("aligned_cosine center=true vs transcription", aligned_cosine(x, y), want) <= 1e-12


def test_aligned_cosine_zero_rows_are_left_out_with_a_warning():
    x, y = pair(4, 20, 4, 4)
    x[3] = 0.0
    y[[3, 7]] = 0.0
    res = parse_metric("aligned_cosine:center=false").compute(x, y)
    assert res.details["rows_used"] == 18 and any("2 of 20" in w for w in res.warnings)
    assert res.value == pytest.approx(resi_aligned_cosine(x, y), abs=1e-12)
    with pytest.warns(RepsimWarning, match="left out"):
        aligned_cosine(x, y, center=False)
    with pytest.raises(RepsimError, match="every row"):
        aligned_cosine(np.zeros((5, 3)), y[:5], center=False)
    with pytest.raises(RepsimError, match="every row"):
        aligned_cosine(np.ones((5, 3)), y[:5])  # constant: zero after centring
    # rows zero on alternate sides: nothing left
    b = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [1.0, 2, 3]])
    a = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(RepsimError, match="every input"):
        aligned_cosine(a, b, center=False)


def test_aligned_cosine_properties():
    x, y = pair(5, 30, 5, 5)
    q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((5, 5)))
    assert aligned_cosine(x, 3 * x @ q + 1.0) == pytest.approx(1.0, abs=1e-12)
    assert aligned_cosine(x, 3 * x @ q + 1.0, center=False) < 1.0 - 1e-6  # the offset is not rotated away
    assert "translation" not in parse_metric("aligned_cosine:center=false").invariances
    assert aligned_cosine(x, y) == pytest.approx(aligned_cosine(y, x), abs=1e-12)


# ------------------------------------------------------------------ soft matching


def soft_match_linprog(x: np.ndarray, y: np.ndarray) -> float:
    """The transport LP solved by scipy's HiGHS: min <P, C> s.t. P 1 = 1/F_A, P^T 1 = 1/F_B, P >= 0."""
    xh, yh = normalized(x, x.shape[1]), normalized(y, y.shape[1])
    fa, fb = xh.shape[1], yh.shape[1]
    c = ((xh[:, :, None] - yh[:, None, :]) ** 2).sum(axis=0)
    a_eq = np.zeros((fa + fb, fa * fb))
    for i in range(fa):
        a_eq[i, i * fb : (i + 1) * fb] = 1
    for j in range(fb):
        a_eq[fa + j, j::fb] = 1
    b_eq = np.concatenate([np.full(fa, 1 / fa), np.full(fb, 1 / fb)])
    res = linprog(c.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    assert res.status == 0
    return float(np.sqrt(max(res.fun, 0.0)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 15), fa=st.integers(1, 7), fb=st.integers(1, 7))
def test_soft_match_matches_linprog(seed, n, fa, fb):
    x, y = pair(seed, n, fa, fb)
    assert record("soft_match vs linprog", soft_match_distance(x, y), soft_match_linprog(x, y)) <= 1e-10


@pytest.mark.parametrize("shape", [(30, 5, 5), (12, 8, 8), (6, 10, 10)], ids=["5", "8", "F>N"])
def test_soft_match_equals_permutation_distance_over_sqrt_f(shape):
    """F_A = F_B = F: an optimal plan is a permutation / F (Birkhoff-von Neumann), so with the same
    normalization X^ = Xc/||Xc||_F as procrustes the cost is ||X^ - Y^ P||_F^2 / F exactly."""
    f = shape[1]
    for seed in range(3):
        x, y = pair(seed, *shape)
        want = procrustes(x, y, "distance", "permutation") / np.sqrt(f)
        assert record("soft_match vs permutation distance / sqrt(F)", soft_match_distance(x, y), want) <= 1e-12


def test_soft_match_identity_invariances_and_missing_pot(monkeypatch):
    x, y = pair(6, 25, 6, 4)
    assert soft_match_distance(x, x) == 0.0 or soft_match_distance(x, x) <= 1e-15
    perm = np.random.default_rng(0).permutation(6)
    assert soft_match_distance(2 * x[:, perm] + 1, y) == pytest.approx(soft_match_distance(x, y), abs=1e-12)
    assert soft_match_distance(x, y) <= 1 / np.sqrt(6) + 1 / np.sqrt(4)
    monkeypatch.setitem(sys.modules, "ot", None)  # import ot now raises ImportError
    with pytest.raises(RepsimError, match=r"pip install 'repsim-cli\[catalog\]'"):
        soft_match_distance(x, y)


def test_report_worst_disagreements():
    with warnings.catch_warnings():
        for name, err in sorted(WORST.items()):
            print(f"worst |repsim - independent| {name}: {err:.2e}")


# ------------------------------------------------------------------ through the CLI, on files

CLI_SPECS = ["shape", "shape:alpha=0.5,form=euclidean", "procrustes:align=permutation,stat=angle", "aligned_cosine:center=false", "soft_match"]


@pytest.mark.parametrize("spec", CLI_SPECS)
def test_compare_on_files_matches_library_with_permutation_null(pair_files, spec):
    assert_cli_matches_library(pair_files, spec)


@pytest.mark.filterwarnings("ignore::repsim_cli.errors.RepsimWarning")  # few resamples, on purpose
def test_library_compare_on_arrays_with_nulls():
    import repsim_cli as rs

    x, y = pair(8, 40, 5, 6)
    specs = ["shape:alpha=0.5", "procrustes:align=permutation", "aligned_cosine", "soft_match"]
    res = rs.compare(x, y, specs, permutations=9, bootstrap=9, seed=3)
    for rec, spec in zip(res, specs):
        assert rec.value == pytest.approx(parse_metric(spec).compute(x, y).value, abs=1e-12)
