"""The grid engine of `repsim heatmap`: cells equal compare's per-pair path, work is reused,
the sanity check and the grid nulls are right."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repsim_cli import stats
from repsim_cli.engines.compare import LoadOptions, compare_pairs
from repsim_cli.errors import RepsimError
from repsim_cli.engines.grid import (
    check_memory,
    compute_grid,
    count_cells,
    estimate_memory,
    grid_from_layers,
    identity_value,
    sanity_check,
)
from repsim_cli.io.layers import Layer, LayerRef, select_layers
from repsim_cli.metrics import REGISTRY, BoundMetric, parse_metric

from conftest import SAMPLE, write_h5

# a mix of symmetric / asymmetric, similarity / distance, feature-space / N x N metrics
GRID_METRICS = [
    "cka",
    "cka:debiased=true",
    "cka:kernel=rbf",
    "hsic",
    "cca",
    "pwcca",
    "lr",
    "procrustes:stat=distance",
    "rsa",
    "knn:k=5",
    "matched",
    "meanmax",
]


def _available(spec: str) -> bool:
    return spec.partition(":")[0] in REGISTRY


def mem_layer(name: str, data: np.ndarray, file: str = "mem.h5") -> Layer:
    """A loaded layer without a file (what the bench and unit tests feed the engine)."""
    ref = LayerRef(file, name, data.shape, data.dtype, "hdf5")
    return Layer(ref, np.asarray(data, dtype=np.float64))


def counting(spec: str) -> tuple[BoundMetric, dict[str, int]]:
    """``spec`` with ``pair``/``prepare`` wrapped to count calls."""
    bound = parse_metric(spec)
    calls = {"pair": 0, "prepare": 0}
    metric = bound.metric

    def pair(a, b, params):
        calls["pair"] += 1
        return metric.pair(a, b, params)

    def prepare(x, params):
        calls["prepare"] += 1
        return metric.prepare(x, params)

    wrapped = dataclasses.replace(metric, pair=pair, prepare=prepare)
    return BoundMetric(wrapped, bound.params), calls


@pytest.fixture
def grid_files(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """A: three layers of different widths (N=40); B: noisy rotated copies of them + a wider layer."""
    n = 40
    a_layers, b_layers = {}, {}
    base = rng.standard_normal((n, 6))
    for i, f in enumerate((5, 9, 7), start=1):
        x = np.hstack([base, rng.standard_normal((n, f))])
        x[:, -1] = 0.0  # a dead unit: identity of meanmax/matched is then below 1
        a_layers[f"layers/{i}"] = x.astype(np.float32)
        q, _ = np.linalg.qr(rng.standard_normal((x.shape[1], x.shape[1])))
        b_layers[f"layers/{i}"] = (x @ q + 0.3 * rng.standard_normal(x.shape)).astype(np.float32)
    a = write_h5(tmp_path / "a.h5", a_layers, list(a_layers))
    b = write_h5(tmp_path / "b.h5", b_layers, list(b_layers))
    return a, b


# ------------------------------------------------------------------ cells equal compare


@pytest.mark.parametrize("spec", [s for s in GRID_METRICS if _available(s)])
def test_cells_equal_compare_per_pair(grid_files, spec):
    a, b = grid_files
    metric = parse_metric(spec)
    options = LoadOptions()
    rows, cols = select_layers(str(a)), select_layers(str(b))
    grid = compute_grid(rows, cols, metric, options)
    pairs = [(ra, rb) for ra in rows for rb in cols]
    records = compare_pairs(pairs, [metric], options)
    assert grid.matrix.shape == (3, 3) and len(grid.records) == 9
    for k, (rec_g, rec_c) in enumerate(zip(grid.records, records)):
        i, j = divmod(k, 3)
        assert rec_g["value"] == pytest.approx(rec_c["value"], abs=1e-12, rel=0)
        assert grid.matrix[i, j] == rec_g["value"]
        # the record contract: identical to compare's, so outputs concatenate
        assert {k: v for k, v in rec_g.items() if k != "value"} == {k: v for k, v in rec_c.items() if k != "value"}
    assert grid.pair_calls == 9


@pytest.mark.parametrize("spec", [s for s in GRID_METRICS if _available(s)])
def test_self_comparison_matches_compute_and_identity(grid_files, spec):
    a, _ = grid_files
    metric = parse_metric(spec)
    grid = compute_grid(select_layers(str(a)), None, metric, LoadOptions())
    layers = [np.asarray(v, dtype=np.float64) for v in _read(a)]
    ident = identity_value(metric)
    for i, j in itertools.product(range(3), range(3)):
        if i == j and ident is not None:
            assert grid.matrix[i, i] == ident
            # the value compare would print differs from the exact identity only by rounding
            assert metric.compute(layers[i], layers[i]).value == pytest.approx(ident, abs=1e-6)
        else:
            assert grid.matrix[i, j] == pytest.approx(metric.compute(layers[i], layers[j]).value, abs=1e-12, rel=0)
    if metric.symmetric:
        np.testing.assert_array_equal(grid.matrix, grid.matrix.T)


def _read(path: Path) -> list[np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        return [f[f"layers/{i}"][()] for i in (1, 2, 3)]


def test_symmetric_self_comparison_computes_one_triangle(rng):
    layers = [mem_layer(f"l/{i}", rng.standard_normal((30, 4 + i))) for i in range(5)]
    metric, calls = counting("cka")
    grid = grid_from_layers(layers, None, metric)
    assert calls == {"pair": 10, "prepare": 5}  # 5*4/2 cells, each layer prepared once
    assert grid.pair_calls == 10 == count_cells(5, None, metric)
    assert grid.computed.sum() == 10 and np.all(grid.computed == np.triu(np.ones((5, 5), bool), 1))
    np.testing.assert_array_equal(np.diag(grid.matrix), 1.0)


def test_asymmetric_self_comparison_computes_every_off_diagonal_cell(rng):
    layers = [mem_layer(f"l/{i}", rng.standard_normal((30, 4 + i))) for i in range(4)]
    metric, calls = counting("meanmax")  # direction=a: asymmetric, identity unknown (dead units)
    grid = grid_from_layers(layers, None, metric)
    assert calls["pair"] == 16 and calls["prepare"] == 4
    assert grid.matrix[0, 1] != grid.matrix[1, 0]
    if _available("pwcca"):
        metric, calls = counting("pwcca")  # asymmetric, identity 1: diagonal not computed
        grid_from_layers(layers, None, metric)
        assert calls["pair"] == 12


def test_two_sided_grid_prepares_each_layer_once(rng):
    rows = [mem_layer(f"a/{i}", rng.standard_normal((25, 6)), "a.h5") for i in range(3)]
    cols = [mem_layer(f"b/{i}", rng.standard_normal((25, 8)), "b.h5") for i in range(4)]
    metric, calls = counting("cka")
    grid = grid_from_layers(rows, cols, metric)
    assert calls == {"pair": 12, "prepare": 7}
    assert grid.sanity is None  # 3 x 4: the sanity check needs as many layers on both sides


def test_identity_values_are_exact_for_every_registered_metric(rng):
    """identity_value(m) is what m.compute(X, X) gives (up to rounding) on data with a dead unit,
    for every registered metric and every combination of choice parameters."""
    x = rng.standard_normal((30, 7))
    x[:, 3] = 0.0
    checked = 0
    for name, metric in REGISTRY.items():
        choice_params = [p for p in metric.params if p.choices is not None]
        for combo in itertools.product(*[p.choices for p in choice_params]):
            try:
                bound = metric.bind(**dict(zip([p.name for p in choice_params], combo)))
            except RepsimError:
                continue
            ident = identity_value(bound)
            if ident is None:
                continue
            value = bound.compute(x, x).value
            assert value == pytest.approx(ident, abs=1e-6), (bound.spec, value)
            checked += 1
    assert checked >= 3
    # and why meanmax/matched are computed: a dead unit correlates 0 with everything
    assert identity_value(parse_metric("matched")) is None
    assert parse_metric("matched").compute(x, x).value == pytest.approx(6 / 7)


# ------------------------------------------------------------------ sanity check


def test_sanity_check_known_values():
    m = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.85], [0.3, 0.3, 0.7]])
    s = sanity_check(m)
    assert (s.correct, s.rows, s.best, s.row_correct) == (2, 3, [0, 2, 2], [True, False, True])
    assert s.fraction == pytest.approx(2 / 3)
    # ties are failures
    s = sanity_check(np.array([[1.0, 1.0], [0.0, 1.0]]))
    assert s.row_correct == [False, True]
    # distances: smallest wins
    s = sanity_check(np.array([[0.1, 0.5], [0.2, 0.3]]), higher_is_similar=False)
    assert s.row_correct == [True, False] and s.best == [0, 0]
    d = s.as_dict(["r0", "r1"], ["c0", "c1"])
    assert d["correct"] == 1 and d["rows"] == 2 and d["fraction"] == 0.5 and d["per_row"][1]["best"] == "c0"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.lists(st.integers(0, 4), min_size=n * n, max_size=n * n)), st.booleans())
def test_sanity_check_matches_brute_force(values, higher):
    n = int(round(len(values) ** 0.5))
    m = np.array(values, dtype=float).reshape(n, n)
    s = sanity_check(m, higher)
    expect = 0
    for i in range(n):
        others = [m[i, j] for j in range(n) if j != i]
        expect += all((m[i, i] > o) if higher else (m[i, i] < o) for o in others)
    assert s.correct == expect


def _independent_layers(rng, n=80, count=5):
    return [rng.standard_normal((n, 6 + i)) for i in range(count)]


def test_sanity_check_noisy_copies_is_perfect(rng):
    base = _independent_layers(rng)
    rows = [mem_layer(f"l/{i}", x, "a.h5") for i, x in enumerate(base)]
    cols = [mem_layer(f"l/{i}", x + 0.5 * rng.standard_normal(x.shape), "b.h5") for i, x in enumerate(base)]
    grid = grid_from_layers(rows, cols, parse_metric("cka"))
    assert (grid.sanity.correct, grid.sanity.rows, grid.sanity.fraction) == (5, 5, 1.0)
    assert grid.sanity.best == [0, 1, 2, 3, 4]


def test_sanity_check_shuffled_layers_known_count(rng):
    base = _independent_layers(rng)
    order = [4, 3, 2, 0, 1]  # B's layer j is a noisy copy of A's layer order[j]; fixed point: j=2 only
    rows = [mem_layer(f"l/{i}", x, "a.h5") for i, x in enumerate(base)]
    cols = [mem_layer(f"l/{j}", base[k] + 0.5 * rng.standard_normal(base[k].shape), "b.h5") for j, k in enumerate(order)]
    grid = grid_from_layers(rows, cols, parse_metric("cka"))
    fixed = sum(1 for j, k in enumerate(order) if j == k)
    assert fixed == 1
    assert grid.sanity.correct == fixed and grid.sanity.rows == 5
    assert grid.sanity.best == [order.index(i) for i in range(5)]


def test_sanity_check_on_sample_seeds_linear_cka():
    grid = compute_grid(
        select_layers(str(SAMPLE / "mlp_seed0.h5")), select_layers(str(SAMPLE / "mlp_seed1.h5")),
        parse_metric("cka"), LoadOptions(),
    )
    assert grid.sanity.fraction == 1.0
    assert grid.matrix[0, 0] == pytest.approx(0.9522, abs=5e-5)  # sample_data/README.md reference value


# ------------------------------------------------------------------ permutations


def test_grid_pvalues_equal_compare_permutation_null(grid_files):
    a, b = grid_files
    rows, cols = select_layers(str(a)), select_layers(str(b))
    metric = parse_metric("cka")
    options = LoadOptions(seed=11)
    grid = compute_grid(rows, cols, metric, options, permutations=40)
    records = compare_pairs([(r, c) for r in rows for c in cols], [metric], options, permutations=40)
    for rec_g, rec_c in zip(grid.records, records):
        assert rec_g["p_value"] == rec_c["p_value"]
        assert rec_g["null_mean"] == pytest.approx(rec_c["null_mean"], abs=1e-12)
        assert rec_g["null_std"] == pytest.approx(rec_c["null_std"], abs=1e-12)


def test_grid_pvalues_brute_force_holm_and_seed(rng):
    rows = [mem_layer(f"a/{i}", rng.standard_normal((20, 3)), "a.h5") for i in range(3)]
    cols = [mem_layer(f"b/{i}", rows[i].data + rng.standard_normal((20, 3)) * (0.2 + i), "b.h5") for i in range(3)]
    metric = parse_metric("cka")
    grid = grid_from_layers(rows, cols, metric, permutations=30, seed=5)
    perms = stats.permutation_indices(20, 30, 5)
    for i, j in itertools.product(range(3), range(3)):
        null = [metric.compute(rows[i].data, cols[j].data[p]).value for p in perms]
        assert grid.p_values[i, j] == stats.permutation_pvalue(grid.matrix[i, j], np.array(null))
    assert np.all(grid.p_values >= 1 / 31) and np.all(grid.p_values <= 1)
    assert np.all(grid.p_holm >= grid.p_values)
    np.testing.assert_array_equal(grid.p_holm, stats.holm(grid.p_values))
    np.testing.assert_array_equal(grid.significant, grid.p_holm <= 0.05)
    again = grid_from_layers(rows, cols, metric, permutations=30, seed=5)
    np.testing.assert_array_equal(again.p_values, grid.p_values)
    other = grid_from_layers(rows, cols, metric, permutations=30, seed=6)
    assert not np.array_equal(
        [r["null_mean"] for r in other.records], [r["null_mean"] for r in grid.records]
    )


def test_self_comparison_holm_family_is_the_computed_off_diagonal(rng):
    layers = [mem_layer(f"l/{i}", rng.standard_normal((25, 4))) for i in range(4)]
    layers[1] = mem_layer("l/1", layers[0].data + 0.1 * rng.standard_normal((25, 4)))
    grid = grid_from_layers(layers, None, parse_metric("cka"), permutations=150, seed=1)
    upper = np.triu(np.ones((4, 4), bool), 1)
    assert np.all(np.isnan(np.diag(grid.p_values)))
    np.testing.assert_array_equal(grid.p_holm[upper], stats.holm(grid.p_values[upper]))
    np.testing.assert_array_equal(grid.p_values, grid.p_values.T)  # mirrored (NaN-free off-diagonal)
    assert grid.significant[0, 1] and grid.significant[1, 0]
    assert grid.records[0]["p_value"] is None and grid.records[1]["p_value"] == grid.p_values[0, 1]


def test_permutation_fallback_without_fast_path_matches_and_prepares_once_per_column(rng):
    rows = [mem_layer(f"a/{i}", rng.standard_normal((20, 3)), "a.h5") for i in range(3)]
    cols = [mem_layer(f"b/{i}", rng.standard_normal((20, 4)), "b.h5") for i in range(2)]
    fast = grid_from_layers(rows, cols, parse_metric("cka"), permutations=7, seed=3)
    slow_metric, calls = counting("cka")
    slow_metric = BoundMetric(dataclasses.replace(slow_metric.metric, permute=None), slow_metric.params)
    slow = grid_from_layers(rows, cols, slow_metric, permutations=7, seed=3)
    np.testing.assert_allclose(
        [r["null_mean"] for r in slow.records], [r["null_mean"] for r in fast.records], atol=1e-12
    )
    np.testing.assert_array_equal(slow.p_values, fast.p_values)
    # 5 layers once, then each column layer re-prepared once per permutation (not once per cell)
    assert calls["prepare"] == 5 + 2 * 7
    assert calls["pair"] == 6 + 6 * 7


def test_few_permutations_warns_no_cell_can_be_significant(rng):
    layers = [mem_layer(f"l/{i}", rng.standard_normal((20, 3))) for i in range(3)]
    grid = grid_from_layers(layers, None, parse_metric("cka"), permutations=9)
    assert any("no cell can be significant" in w for w in grid.warnings)


# ------------------------------------------------------------------ bad input, memory


def test_different_n_and_empty_refused(tmp_path, rng):
    a = write_h5(tmp_path / "a.h5", {"x": rng.standard_normal((10, 3))})
    b = write_h5(tmp_path / "b.h5", {"x": rng.standard_normal((12, 3))})
    with pytest.raises(RepsimError, match="different numbers of inputs"):
        compute_grid(select_layers(str(a)), select_layers(str(b)), parse_metric("cka"), LoadOptions())
    with pytest.raises(RepsimError, match="no row layers"):
        compute_grid([], None, parse_metric("cka"), LoadOptions())
    with pytest.raises(RepsimError, match="different numbers of inputs"):
        grid_from_layers([mem_layer("a", rng.standard_normal((5, 2)))], [mem_layer("b", rng.standard_normal((6, 2)))],
                         parse_metric("cka"))


def test_memory_estimate_and_refusal(tmp_path, rng):
    assert estimate_memory(1000, [10, 20], parse_metric("cka")) == 16 * 1000 * 30
    if _available("rsa"):
        rsa = parse_metric("rsa")
        assert estimate_memory(1000, [10], rsa) == 16 * 1000 * 10 + 8 * 1000**2
        with pytest.raises(RepsimError, match="max_memory"):
            check_memory(20000, [64] * 12, rsa, 8.0)  # 12 x 3.2 GB of RDMs
    a = write_h5(tmp_path / "a.h5", {f"l{i}": rng.standard_normal((50, 4)) for i in range(3)})
    with pytest.raises(RepsimError, match=r"max_memory 1e-06 GiB"):
        compute_grid(select_layers(str(a)), None, parse_metric("cka"), LoadOptions(), max_memory_gib=1e-6)


def test_max_gram_refused_before_loading(tmp_path, rng):
    if not _available("rsa"):
        pytest.skip("rsa not registered")
    a = write_h5(tmp_path / "a.h5", {f"l{i}": rng.standard_normal((50, 4)) for i in range(2)})
    with pytest.raises(RepsimError, match="max_gram"):
        compute_grid(select_layers(str(a)), None, parse_metric("rsa"), LoadOptions(max_gram=10))
