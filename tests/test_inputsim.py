"""Gradient-cosine input similarity (Charpiat et al. 2019): library checks against brute force."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim_cli.errors import RepsimError
from repsim_cli.io.gradients import column_blocks, find_labels, resolve_gradients
from repsim_cli.engines.inputsim import (
    attach_labels,
    input_similarity,
    normalize_gram,
    inverse_sqrt,
    rotation_similarity,
    top_k_neighbors,
)

from conftest import SAMPLE


def h5(path: Path, chunks=None, **arrays: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr, chunks=chunks if np.ndim(arr) >= 2 else None)
    return path


def cosine(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """Textbook cosine kernel, every pair with math.fsum-free direct numpy."""
    y = x if y is None else y
    return np.array([[a @ b / np.sqrt((a @ a) * (b @ b)) for b in y] for a in x])


def trace_kc_bruteforce(j: np.ndarray, jr: np.ndarray | None = None, form: str = "trace") -> np.ndarray:
    """K^C per pair with scipy's matrix square root (independent route), then trace/d or rotation."""
    jr = j if jr is None else jr
    d = j.shape[1]
    inv_q = [np.linalg.inv(scipy.linalg.sqrtm(a @ a.T).real) for a in j]
    inv_r = [np.linalg.inv(scipy.linalg.sqrtm(b @ b.T).real) for b in jr]
    out = np.empty((len(j), len(jr)))
    for i, a in enumerate(j):
        for k, b in enumerate(jr):
            kc = inv_q[i] @ (a @ b.T) @ inv_r[k]
            out[i, k] = np.trace(kc) / d if form == "trace" else rotation_similarity(kc)
    return out


@pytest.fixture
def grads(tmp_path: Path, rng: np.random.Generator):
    x = rng.standard_normal((30, 97))
    x[:10] += 2.0 * rng.standard_normal(97)  # a cluster, so kernels are not all ~0
    return x, h5(tmp_path / "g.h5", chunks=(30, 16), grads=x.astype(np.float32), labels=np.arange(30) % 3)


# ------------------------------------------------------------------ the kernel


def test_kernel_equals_normalized_gram_all_formats(tmp_path, grads):
    x, path = grads
    x32 = x.astype(np.float32).astype(np.float64)
    expected = cosine(x32)
    np.save(tmp_path / "g.npy", x.astype(np.float32))
    np.savez(tmp_path / "g.npz", grads=x.astype(np.float32))
    for arg in (str(path), str(tmp_path / "g.npy"), str(tmp_path / "g.npz")):
        res = input_similarity(resolve_gradients(arg), keep_kernel=True, block_size=10)
        np.testing.assert_allclose(res.kernel, expected, atol=1e-12, rtol=0)
        assert np.all(np.abs(res.kernel) <= 1.0)


def test_query_subset_and_reference_file(tmp_path, rng, grads):
    x, path = grads
    y = rng.standard_normal((7, 97))
    other = h5(tmp_path / "r.h5", grads=y)
    q = [4, 0, 29]
    res = input_similarity(resolve_gradients(str(path)), resolve_gradients(str(other)), query=q, keep_kernel=True, top_k=2)
    x32 = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(res.kernel, cosine(x32[q], y), atol=1e-12)
    assert not res.self_excluded and not res.same_set
    np.testing.assert_allclose(res.density_soft, cosine(x32[q], y).sum(axis=1), atol=1e-12)
    # explicit reference to the same dataset is the same set (self excluded)
    res2 = input_similarity(resolve_gradients(str(path)), resolve_gradients(f"{path}:grads"), query=q, keep_kernel=True)
    assert res2.same_set and res2.self_excluded


def test_syrk_and_gemm_paths_agree(grads):
    _, path = grads
    ref = resolve_gradients(str(path))
    full = input_similarity(ref, keep_kernel=True)
    listed = input_similarity(ref, query=np.arange(ref.n), keep_kernel=True)
    np.testing.assert_allclose(full.kernel, listed.kernel, atol=1e-14)


@pytest.mark.parametrize("kw", [dict(top_k=3, threshold=0.3, alpha=1.5), dict()])
def test_block_size_does_not_change_results(tmp_path, rng, kw):
    x = rng.standard_normal((25, 1000)) + 0.5 * rng.standard_normal(1000)
    path = h5(tmp_path / "g.h5", grads=x, train=rng.standard_normal((9, 1000)))  # contiguous: any block size
    g = resolve_gradients(f"{path}:grads")
    t = resolve_gradients(f"{path}:train")
    runs = [input_similarity(g, train=t, block_size=b, keep_kernel=bool(kw), **kw) for b in (1, 7, 128, 333, 1000)]
    assert [r.n_blocks for r in runs] == [1000, 143, 8, 4, 1]
    base = runs[-1]
    for r in runs[:-1]:
        np.testing.assert_allclose(r.density_soft, base.density_soft, atol=1e-12, rtol=0)
        np.testing.assert_allclose(r.reliability, base.reliability, atol=1e-12, rtol=1e-12)
        if kw:
            np.testing.assert_allclose(r.kernel, base.kernel, atol=1e-12, rtol=0)
            np.testing.assert_array_equal(r.neighbor_index, base.neighbor_index)
            np.testing.assert_array_equal(r.density_hard, base.density_hard)
            np.testing.assert_allclose(r.density_alpha, base.density_alpha, atol=1e-12)


def test_blocks_align_to_hdf5_chunks(grads):
    _, path = grads
    ref = resolve_gradients(str(path))  # chunks (30, 16), P = 97
    assert column_blocks(ref, 40) == [(0, 32), (32, 64), (64, 96), (96, 97)]
    assert column_blocks(ref, 3)[0] == (0, 16)  # never less than one chunk


# ------------------------------------------------------------------ densities and neighbours


@pytest.mark.parametrize("include_self", [False, True])
def test_soft_density_is_row_sum_of_kernel_both_paths(grads, include_self):
    x, path = grads
    ref = resolve_gradients(str(path))
    k = cosine(x.astype(np.float32).astype(np.float64))
    expected = k.sum(axis=1) - (0 if include_self else np.diag(k))
    gram = input_similarity(ref, top_k=1, include_self=include_self, block_size=16)
    two_pass = input_similarity(ref, include_self=include_self, block_size=16)
    assert gram.passes == 1 and two_pass.passes == 2
    np.testing.assert_allclose(gram.density_soft, expected, atol=1e-12)
    np.testing.assert_allclose(two_pass.density_soft, expected, atol=1e-12)


def test_hard_and_alpha_density_constructed(tmp_path):
    # angles 0, 45, 90, 180 degrees and a (3, 4) direction: cosines are known exactly
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [-3.0, 0.0], [3.0, 4.0]])
    path = h5(tmp_path / "c.h5", grads=x)
    res = input_similarity(resolve_gradients(str(path)), threshold=0.65, alpha=2.0, keep_kernel=True)
    s = np.sqrt(0.5)
    # row 0: cosines to others 0.7071, 0, -1, 0.6 -> >= 0.65: one
    # row 1: 0.7071, 0.7071, -0.7071, 0.9899 -> three
    # row 2: 0, 0.7071, 0, 0.8 -> two
    # row 3: -1, -0.7071, 0, -0.6 -> none
    # row 4: 0.6, 0.9899, 0.8, -0.6 -> two
    np.testing.assert_array_equal(res.density_hard, [1, 3, 2, 0, 2])
    c14 = 7 / (5 * np.sqrt(2))
    expected_alpha = [s**2 + 0.36, s**2 + s**2 + c14**2, s**2 + 0.64, 0.0, 0.36 + c14**2 + 0.64]
    np.testing.assert_allclose(res.density_alpha, expected_alpha, atol=1e-12)
    with_self = input_similarity(resolve_gradients(str(path)), threshold=0.65, alpha=2.0, include_self=True)
    np.testing.assert_array_equal(with_self.density_hard, [2, 4, 3, 1, 3])
    np.testing.assert_allclose(with_self.density_alpha, np.array(expected_alpha) + 1.0, atol=1e-12)


def test_top_k_ties_go_to_lower_index(tmp_path):
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [5.0, 0.0], [1.0, 1.0]])
    path = h5(tmp_path / "t.h5", grads=x)
    res = input_similarity(resolve_gradients(str(path)), top_k=3)
    # rows 0, 1, 3 are parallel (kernel 1): each one's neighbours are the other two, then row 4
    np.testing.assert_array_equal(res.neighbor_index[0], [1, 3, 4])
    np.testing.assert_array_equal(res.neighbor_index[3], [0, 1, 4])
    np.testing.assert_allclose(res.neighbor_kernel[0], [1.0, 1.0, np.sqrt(0.5)], atol=1e-15)
    res_self = input_similarity(resolve_gradients(str(path)), top_k=3, include_self=True)
    np.testing.assert_array_equal(res_self.neighbor_index[3], [0, 1, 3])
    idx, val = top_k_neighbors(np.array([[0.5, 0.9, 0.5, 0.9]]), 3)
    np.testing.assert_array_equal(idx, [[1, 3, 0]])


def test_same_label_fraction_bruteforce(grads):
    x, path = grads
    ref = resolve_gradients(str(path))
    res = input_similarity(ref, top_k=4)
    labels = find_labels(ref)
    attach_labels(res, labels, labels)
    k = cosine(x.astype(np.float32).astype(np.float64))
    np.fill_diagonal(k, -np.inf)
    nn = np.argsort(-k, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(res.neighbor_index, nn)
    np.testing.assert_allclose(res.same_label_fraction, (labels[nn] == labels[:, None]).mean(axis=1))


def test_labels_found_by_prefix(tmp_path, rng):
    path = h5(tmp_path / "l.h5", grads=rng.standard_normal((4, 3)), labels=np.arange(4),
              train_grads=rng.standard_normal((5, 3)), train_labels=np.arange(5) + 10)
    np.testing.assert_array_equal(find_labels(resolve_gradients(f"{path}:train_grads")), np.arange(5) + 10)
    np.testing.assert_array_equal(find_labels(resolve_gradients(str(path))), np.arange(4))


# ------------------------------------------------------------------ reliability


def test_reliability_hand_computed(tmp_path):
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    t = np.array([[2.0, 1.0], [-1.0, 3.0]])
    path = h5(tmp_path / "r.h5", grads=x, train=t)
    res = input_similarity(resolve_gradients(f"{path}:grads"), train=resolve_gradients(f"{path}:train"))
    # x0: (2 - 1) / 1 = 1;  x1: (2 + 6) / 4 = 2;  x2: (6 + 4 - 3 + 12) / 25 = 19/25
    np.testing.assert_allclose(res.reliability, [1.0, 2.0, 19 / 25], atol=1e-15)


# ------------------------------------------------------------------ multi-output


def test_trace_reduces_to_scalar_kernel_when_d_is_1(tmp_path, rng):
    x = rng.standard_normal((12, 40)) + rng.standard_normal(40)
    p2 = h5(tmp_path / "s.h5", grads=x)
    p3 = h5(tmp_path / "j.h5", grads=x[:, None, :])
    scalar = input_similarity(resolve_gradients(str(p2)), keep_kernel=True, top_k=3)
    multi = input_similarity(resolve_gradients(str(p3)), keep_kernel=True, top_k=3, form="trace")
    assert multi.d == 1
    np.testing.assert_allclose(multi.kernel, cosine(x), atol=1e-12)
    np.testing.assert_allclose(multi.kernel, scalar.kernel, atol=1e-12)
    # the generic normalizer on 1 x 1 blocks is the cosine too
    g = x @ x.T
    a, _ = inverse_sqrt(np.diag(g)[:, None, None], None, np.arange(12), "x")
    np.testing.assert_allclose(normalize_gram(g, a, a, "trace"), cosine(x), atol=1e-12)


@pytest.mark.parametrize("form", ["trace", "rotation"])
def test_multi_output_matches_sqrtm_bruteforce(tmp_path, rng, form):
    j = rng.standard_normal((9, 2, 30)) + rng.standard_normal((2, 30))
    path = h5(tmp_path / "j.h5", grads=j)
    res = input_similarity(resolve_gradients(str(path)), keep_kernel=True, form=form, block_size=7)
    np.testing.assert_allclose(res.kernel, trace_kc_bruteforce(j, form=form), atol=1e-12)
    np.testing.assert_allclose(np.diag(res.kernel), 1.0, atol=1e-12)
    lo = -1.0 if form == "trace" else 0.0
    assert res.kernel.min() >= lo and res.kernel.max() <= 1.0


def _rot(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def _kernel(j: np.ndarray, form: str) -> np.ndarray:
    n = j.shape[0]
    kxx = np.einsum("nap,nbp->nab", j, j)
    a, _ = inverse_sqrt(kxx, None, np.arange(n), "j")
    return normalize_gram(j.reshape(2 * n, -1) @ j.reshape(2 * n, -1).T, a, a, form)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), thetas=st.lists(st.floats(-np.pi, np.pi), min_size=6, max_size=6))
def test_rotation_form_invariant_to_rotating_each_output_space(seed, thetas):
    """J(x) -> R_x J(x), det R_x = +1, per input (so also 'one side'): K^C -> R_x K^C R_x'^T keeps
    ||K^C||_F and det K^C, hence the rotation form. The trace form is only invariant when every
    input gets the same rotation (conjugation)."""
    j = np.random.default_rng(seed).standard_normal((6, 2, 11))
    rotated = np.stack([_rot(t) @ jj for t, jj in zip(thetas, j)])
    np.testing.assert_allclose(_kernel(rotated, "rotation"), _kernel(j, "rotation"), atol=1e-10)
    common = np.einsum("ab,nbp->nap", _rot(thetas[0]), j)
    np.testing.assert_allclose(_kernel(common, "trace"), _kernel(j, "trace"), atol=1e-10)


def test_trace_form_is_not_invariant_to_one_sided_rotation_and_rotation_form_not_to_reflection():
    j = np.random.default_rng(3).standard_normal((2, 2, 9))
    one = j.copy()
    one[1] = _rot(np.pi / 2) @ j[1]
    assert abs(_kernel(one, "trace")[0, 1] - _kernel(j, "trace")[0, 1]) > 1e-3
    flip = j.copy()
    flip[1] = np.diag([1.0, -1.0]) @ j[1]
    assert abs(_kernel(flip, "rotation")[0, 1] - _kernel(j, "rotation")[0, 1]) > 1e-3


def test_rotation_sum_of_squares_form_never_negative():
    # K^C = rotation by 90 deg then reflection: ||M||^2 + 2 det M = 2 - 2 = 0 exactly; rounding
    # in the textbook form could go negative, the (a+d)^2 + (b-c)^2 form cannot
    m = np.array([[0.0, 1.0], [1.0, 0.0]]) * (1 - 1e-16)
    assert rotation_similarity(m) == pytest.approx(0.0, abs=1e-7)
    out = normalize_gram(m.reshape(2, 2), np.eye(2)[None], np.eye(2)[None], "rotation")
    assert out[0, 0] == 0.0


def test_singular_jacobian_error_and_rcond(tmp_path, rng):
    j = rng.standard_normal((5, 2, 20))
    j[3, 1] = 2.0 * j[3, 0]  # rank 1: K(x3, x3) singular
    path = h5(tmp_path / "s.h5", grads=j)
    with pytest.raises(RepsimError, match=r"singular .*0-based: 3\b.*rcond"):
        input_similarity(resolve_gradients(str(path)))
    res = input_similarity(resolve_gradients(str(path)), rcond=1e-8, keep_kernel=True, include_self=True)
    assert res.kernel[3, 3] == pytest.approx(0.5, abs=1e-12)  # projector of rank 1: tr / d
    assert any("rank-deficient" in w for w in res.warnings)


# ------------------------------------------------------------------ bad inputs


def test_zero_rows_error_and_drop(tmp_path, rng):
    x = rng.standard_normal((8, 6))
    x[[2, 5]] = 0.0
    path = h5(tmp_path / "z.h5", grads=x)
    with pytest.raises(RepsimError, match=r"z\.h5:grads.*zero gradient in 2 rows \(0-based: 2, 5\)"):
        input_similarity(resolve_gradients(str(path)))
    res = input_similarity(resolve_gradients(str(path)), drop_zero=True, keep_kernel=True, top_k=2)
    keep = [0, 1, 3, 4, 6, 7]
    assert res.dropped == {"query": [2, 5], "reference": [2, 5]}
    np.testing.assert_array_equal(res.query_index, keep)
    np.testing.assert_allclose(res.kernel, cosine(x[keep]), atol=1e-12)
    assert set(res.neighbor_index.ravel()) <= set(keep)


def test_nan_rows_named(tmp_path, rng):
    x = rng.standard_normal((8, 6))
    x[4, 1] = np.nan
    x[6, 0] = np.inf
    path = h5(tmp_path / "n.h5", grads=x)
    with pytest.raises(RepsimError, match=r"NaN or infinite values in 2 rows \(0-based: 4, 6\)"):
        input_similarity(resolve_gradients(str(path)))


def test_bad_arguments(tmp_path, rng):
    a = h5(tmp_path / "a.h5", grads=rng.standard_normal((5, 6)), vec=np.ones(5))
    b = h5(tmp_path / "b.h5", grads=rng.standard_normal((5, 7)))
    ga = resolve_gradients(str(a))
    with pytest.raises(RepsimError, match=r"P=7 parameters.*P=6"):
        input_similarity(ga, resolve_gradients(str(b)))
    with pytest.raises(RepsimError, match=r"ndim 1"):
        resolve_gradients(f"{a}:vec")
    with pytest.raises(RepsimError, match=r"out of range \[0, 4\]: 5"):
        input_similarity(ga, query=[0, 5])
    with pytest.raises(RepsimError, match="threshold"):
        input_similarity(ga, threshold=1.5)
    with pytest.raises(RepsimError, match="alpha"):
        input_similarity(ga, alpha=0.0)
    with pytest.raises(RepsimError, match="top_k 5 is larger"):
        input_similarity(ga, top_k=5)
    with pytest.raises(RepsimError, match="rotation multi-output form needs"):
        input_similarity(ga, form="rotation")


def test_dataset_choice(tmp_path, rng):
    two = h5(tmp_path / "two.h5", a=rng.standard_normal((3, 4)), b=rng.standard_normal((3, 4)))
    with pytest.raises(RepsimError, match=r"cannot tell which dataset.*a \(3, 4\).*b \(3, 4\)"):
        resolve_gradients(str(two))
    assert resolve_gradients(str(SAMPLE / "grads.h5")).name == "grads"
    one = h5(tmp_path / "one.h5", g=rng.standard_normal((3, 4)), labels=np.arange(3))
    assert resolve_gradients(str(one)).name == "g"


def test_sample_data_same_label_neighbours():
    ref = resolve_gradients(str(SAMPLE / "grads.h5"))
    res = input_similarity(ref, top_k=5, train=resolve_gradients(f"{SAMPLE / 'grads.h5'}:train_grads"))
    labels = find_labels(ref)
    attach_labels(res, labels, labels)
    assert res.same_label_fraction.mean() > 0.9  # chance level is about 0.1
    assert np.all(res.reliability > 0)


def test_two_pass_soft_density_multi_output_query_and_reference(tmp_path, rng):
    j = rng.standard_normal((8, 2, 25)) + rng.standard_normal((2, 25))
    jr = rng.standard_normal((6, 2, 25)) + rng.standard_normal((2, 25))
    jr[2] = 0.0
    path = h5(tmp_path / "j.h5", grads=j, ref=jr)
    g, r = resolve_gradients(f"{path}:grads"), resolve_gradients(f"{path}:ref")
    q = [5, 1]
    two = input_similarity(g, r, query=q, drop_zero=True, block_size=4)
    gram = input_similarity(g, r, query=q, drop_zero=True, block_size=4, keep_kernel=True)
    keep = [0, 1, 3, 4, 5]
    expected = trace_kc_bruteforce(j[q], jr[keep]).sum(axis=1)
    assert two.passes == 2 and two.dropped == {"reference": [2]}
    np.testing.assert_allclose(two.density_soft, expected, atol=1e-12)
    np.testing.assert_allclose(gram.density_soft, expected, atol=1e-12)
    # same set, subset of queries, self excluded in the two-pass path too
    self_two = input_similarity(g, query=q, block_size=4)
    k = trace_kc_bruteforce(j)
    np.testing.assert_allclose(self_two.density_soft, k[q].sum(axis=1) - 1.0, atol=1e-12)
