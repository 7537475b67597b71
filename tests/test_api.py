"""The Python API (``import repsim_cli as rs``): same records as the CLI, every input type, no mutation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from typer.testing import CliRunner

import repsim_cli as rs
from repsim_cli.cli import app

from conftest import SAMPLE

runner = CliRunner()
MLP = [str(SAMPLE / f"mlp_seed{i}.h5") for i in range(3)]
WIDE = [str(SAMPLE / f"wide_seed{i}.h5") for i in range(2)]
GRADS = str(SAMPLE / "grads.h5")


def cli_json(*args: str) -> dict:
    result = runner.invoke(app, [*map(str, args), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rs.RepsimWarning)
        return fn(*args, **kwargs)


# ------------------------------------------------------------------ API == CLI


def test_compare_matches_cli_document():
    a, b = f"{MLP[0]}:layers/3", f"{MLP[1]}:layers/3"
    doc = cli_json("compare", a, b, "-m", "cka", "-m", "procrustes", "--permutations", "9", "--bootstrap", "10", "--seed", "3")
    res = quiet(rs.compare, a, b, ["cka", "procrustes"], permutations=9, bootstrap=10, seed=3)
    assert json.loads(res.to_json()) == doc
    assert res.to_dicts() == doc["results"]
    assert [r.value for r in res] == [r["value"] for r in doc["results"]]


def test_heatmap_matches_cli_document():
    doc = cli_json("heatmap", MLP[0], MLP[1], "--permutations", "9", "--seed", "2")
    grid = quiet(rs.heatmap, MLP[0], MLP[1], permutations=9, seed=2)
    assert json.loads(grid.to_json()) == doc
    np.testing.assert_array_equal(grid.values, np.array(doc["matrix"]))
    assert grid.sanity_check == doc["sanity_check"]
    assert grid.rows == doc["rows"] and grid.cols == doc["cols"]
    assert grid.p_values is not None and grid.p_adjusted is not None


def test_group_test_matches_cli_document():
    doc = cli_json("test", "--group", "mlp", *MLP, "--group", "wide", *WIDE)
    result = quiet(rs.test, {"mlp": MLP, "wide": WIDE})
    assert json.loads(result.to_json()) == doc
    assert result.p_value == doc["combined"]["p_value"]


def test_inputsim_matches_cli_document():
    doc = cli_json("inputsim", GRADS, "--query", "0,1,2", "--top-k", "4", "--train", f"{GRADS}:train_grads", "--seed", "5")
    sim = quiet(rs.inputsim, GRADS, query=[0, 1, 2], top_k=4, train=f"{GRADS}:train_grads", seed=5)
    assert json.loads(sim.to_json()) == doc
    assert sim.neighbor_index.shape == (3, 4)


def test_inspect_matches_cli_document():
    doc = cli_json("inspect", MLP[0])
    assert rs.inspect(MLP[0]) == [{"file": MLP[0], **e} for e in doc["files"][0]["datasets"]]
    only = rs.inspect(f"{MLP[0]}:layers/2", constant=False)
    assert [e["name"] for e in only] == ["layers/2"]


# ------------------------------------------------------------------ every input type


def _layers(path: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in ("layers/1", "layers/2", "layers/3")}


def test_arrays_mappings_paths_and_strings_agree():
    a, b = _layers(MLP[0]), _layers(MLP[1])
    by_file = quiet(rs.compare, MLP[0], MLP[1], "cka")
    by_path = quiet(rs.compare, Path(MLP[0]), Path(MLP[1]), "cka")
    by_map = quiet(rs.compare, a, b, "cka")
    assert [r.value for r in by_file] == [r.value for r in by_path] == [r.value for r in by_map]
    assert [r.a for r in by_map] == ["A:layers/1", "A:layers/2", "A:layers/3"]
    one = quiet(rs.compare, a["layers/3"], b["layers/3"], "cka")
    assert one.value == by_file[2].value
    assert quiet(rs.compare, a["layers/3"], f"{MLP[1]}:layers/3").value == one.value
    grid_lists = quiet(rs.heatmap, list(a.values()), list(b.values()))
    np.testing.assert_array_equal(grid_lists.values, quiet(rs.heatmap, MLP[0], MLP[1]).values)


def test_torch_tensors_agree_with_arrays():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 6)), rng.standard_normal((50, 4))
    want = rs.compare(x, y, ["cka", "procrustes"]).to_dicts()
    got = rs.compare(torch.tensor(x), torch.tensor(y, requires_grad=True), ["cka", "procrustes"]).to_dicts()
    assert [r["value"] for r in got] == [r["value"] for r in want]
    assert rs.compare(torch.tensor(x, dtype=torch.float32), y).value == pytest.approx(want[0]["value"], abs=1e-6)


def test_nd_arrays_pool_like_files(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 4, 3, 3)), rng.standard_normal((30, 5, 3, 3))
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["conv"] = x
    for pool in ("none", "mean"):
        assert rs.compare(x, y, pool=pool).value == rs.compare(f"{tmp_path / 'x.h5'}:conv", y, pool=pool).value


def test_group_test_from_arrays_equals_files():
    runs = {"mlp": [_layers(p) for p in MLP], "wide": [_layers(p) for p in WIDE]}
    from_arrays = quiet(rs.test, runs)
    from_files = quiet(rs.test, {"mlp": MLP, "wide": WIDE})
    assert from_arrays.statistic == from_files.statistic
    assert from_arrays.p_value == from_files.p_value
    assert from_arrays.body["groups"] == {"mlp": ["mlp[0]", "mlp[1]", "mlp[2]"], "wide": ["wide[0]", "wide[1]"]}


def test_inputsim_from_arrays_equals_file():
    with h5py.File(GRADS, "r") as f:
        g, labels = f["grads"][()], f["labels"][()]
    sim = rs.inputsim(g, top_k=3, labels=labels)
    ref = rs.inputsim(GRADS, top_k=3)
    np.testing.assert_array_equal(sim.density_soft, ref.density_soft)
    np.testing.assert_array_equal(sim.neighbor_index, ref.neighbor_index)
    assert sim.summary["mean_same_label_fraction"] == ref.summary["mean_same_label_fraction"]


def test_bound_metrics_and_results_helpers():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 5))
    bound = rs.metrics.get_metric("cka").bind(debiased=True)
    res = rs.compare(x, y, [bound, "cca:stat=r2"])
    assert res[0].value == rs.metrics.linear_cka(x, y, debiased=True)
    assert res[0].spec == "cka:debiased=true" and len(res[1:]) == 1
    with pytest.raises(rs.RepsimError, match="exactly one record"):
        _ = res.value
    assert "cka" in repr(res) and "<table>" in res._repr_html_()
    frame = res.to_pandas()
    assert list(frame["metric"]) == ["cka", "cca"] and frame["param_debiased"].iloc[0]


# ------------------------------------------------------------------ errors, warnings, mutation


def test_errors_and_warnings_have_documented_types():
    x = np.zeros((10, 3))
    with pytest.raises(rs.RepsimError) as err:
        rs.compare(np.ones((10, 3)), np.ones((9, 3)))
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    with pytest.raises(rs.RepsimError, match="^ci must lie in"):
        rs.compare(np.eye(10), np.eye(10), bootstrap=5, ci=2.0)
    with pytest.raises(TypeError, match="expected a NumPy array"):
        rs.compare(object(), x)
    with pytest.raises(TypeError, match="spec string"):
        rs.compare(x, x, metrics=42)
    dead = np.random.default_rng(0).standard_normal((20, 4))
    dead[:, 0] = 1.0
    with pytest.warns(rs.RepsimWarning, match="constant"):
        rs.compare(dead, dead)
    with pytest.warns(rs.RepsimWarning):  # array-level functions no longer drop caveats
        rs.metrics.cca(np.random.default_rng(1).standard_normal((5, 8)), np.random.default_rng(2).standard_normal((5, 8)))


@settings(max_examples=25, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(6, 20), st.integers(1, 5)), elements=st.floats(-1e3, 1e3)),
    st.sampled_from(["cka", "procrustes", "matched", "cca"]),
)
def test_inputs_are_never_modified(x, spec):
    y = x[::-1] * 2.0 + 1.0
    before_x, before_y = x.copy(), y.copy()
    try:
        quiet(rs.compare, x, {"l": y}, spec, bootstrap=3)
    except rs.RepsimError:
        pass  # constant columns, rank 0: refused, but the inputs must still be intact
    np.testing.assert_array_equal(x, before_x)
    np.testing.assert_array_equal(y, before_y)
    assert x.flags.writeable


def test_grid_plot_returns_axes_with_layer_ticks():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    grid = quiet(rs.heatmap, MLP[0], MLP[1])
    ax = grid.plot(annotate=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layers/1", "layers/2", "layers/3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["layers/1", "layers/2", "layers/3"]
    fig, own = plt.subplots()
    assert grid.plot(ax=own) is own
    plt.close("all")


def test_docstring_examples_run(monkeypatch):
    import doctest

    import repsim_cli.api

    monkeypatch.chdir(SAMPLE.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rs.RepsimWarning)
        failed, attempted = doctest.testmod(repsim_cli.api, raise_on_error=False)
    assert attempted >= 5 and failed == 0
