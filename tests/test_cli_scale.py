"""CLI: compare and heatmap stream every moment metric (forced, or above --max-memory) with in-memory values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from repsim_cli.cli import app

from conftest import write_h5
from test_moments import MOMENT_SPECS, offset_pair

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(11)
    x, y = offset_pair(rng, 157, 6, 5)
    z = (x[:, :3].astype(np.float64) @ rng.standard_normal((3, 4)) + rng.standard_normal((157, 4))).astype(np.float32)
    d = tmp_path_factory.mktemp("cli")
    a = write_h5(d / "a.h5", {"l/1": x, "l/2": y, "l/3": z})
    b = write_h5(d / "b.h5", {"l/1": y, "l/2": z, "l/3": x})
    return a, b


def results(*args):
    out = runner.invoke(app, [*args, "-f", "json"])
    assert out.exit_code == 0, out.stderr
    return json.loads(out.stdout)


def test_compare_streams_every_moment_metric(files):
    a, b = files
    metrics = [arg for spec in [*MOMENT_SPECS, "cka:minibatch=40"] for arg in ("-m", spec)]
    streamed = results("compare", str(a), str(b), *metrics, "--stream", "--block-rows", "23")["results"]
    memory = results("compare", str(a), str(b), *metrics, "--no-stream")["results"]
    assert len(streamed) == len(memory) == 3 * (len(MOMENT_SPECS) + 1)
    worst = 0.0
    for s, m in zip(streamed, memory):
        assert (s["a"], s["b"], s["metric"], s["params"]) == (m["a"], m["b"], m["metric"], m["params"])
        assert s["details"]["streamed"] == "features" and s["details"]["engine"] == "stream"
        assert s["value"] == pytest.approx(m["value"], rel=1e-10, abs=1e-12)
        worst = max(worst, abs(s["value"] - m["value"]) / max(abs(m["value"]), 1e-2))
    assert worst < 1e-10


def test_compare_streams_automatically_above_max_memory(files):
    a, b = files
    args = ["compare", f"{a}:l/1", f"{b}:l/1", "-m", "cca", "-m", "procrustes"]
    assert "details" not in results(*args)["results"][1]  # fits: in memory
    auto = results(*args, "--max-memory", "20K")["results"]  # 16 N F = 28 kB of data does not fit
    assert auto[1]["details"]["streamed"] == "features"
    kernel = runner.invoke(app, ["compare", f"{a}:l/1", f"{b}:l/1", "-m", "rsa", "--max-memory", "20K", "-f", "json"])
    assert "details" not in json.loads(kernel.stdout)["results"][0]  # no moment route: stays in memory, and says so
    assert "rsa cannot stream: computing in memory (--max-samples subsamples)" in kernel.stderr


def test_stream_refusals_are_one_line(files):
    a, b = files
    out = runner.invoke(app, ["compare", f"{a}:l/1", f"{b}:l/1", "-m", "knn", "--stream"])
    assert out.exit_code == 2 and "metrics that can: cka and hsic with kernel=linear" in out.stderr
    assert "--max-samples" in out.stderr and out.stderr.count("\n") == 1
    out = runner.invoke(app, ["compare", f"{a}:l/1", f"{b}:l/1", "--stream", "--block-rows", "0"])
    assert out.exit_code == 2 and "--block-rows must be >= 1" in out.stderr
    out = runner.invoke(app, ["compare", f"{a}:l/1", f"{b}:l/1", "--max-memory", "lots"])
    assert out.exit_code == 2 and "--max-memory" in out.stderr
    out = runner.invoke(app, ["heatmap", str(a), "-m", "cca", "--stream", "--permutations", "9"])
    assert out.exit_code == 2 and "cannot be combined" in out.stderr


@pytest.mark.parametrize("metric", ["cka:debiased=true", "pwcca", "meanmax:direction=both"])
def test_heatmap_streams_in_one_pass(files, metric):
    a, b = files
    for cols in ([], [str(b)]):
        streamed = results("heatmap", str(a), *cols, "-m", metric, "--stream", "--block-rows", "30")
        memory = results("heatmap", str(a), *cols, "-m", metric, "--no-stream")
        np.testing.assert_allclose(streamed["matrix"], memory["matrix"], rtol=1e-10, atol=1e-12)
        assert streamed.get("sanity_check") == memory.get("sanity_check")
    auto = results("heatmap", str(a), str(b), "-m", "cca", "--max-memory", "30K")
    assert auto["results"][0]["details"]["streamed"] == "features"


def test_zarr_compares_like_hdf5(files, tmp_path):
    zarr = pytest.importorskip("zarr")
    import h5py

    a, _ = files
    group = zarr.open_group(str(tmp_path / "a.zarr"), mode="w")
    with h5py.File(a, "r") as f:
        for name in ("l/1", "l/2", "l/3"):
            group.create_array(name, data=f[name][()], chunks=(50, f[name].shape[1]))
    for extra in ([], ["--stream"]):
        h5 = results("heatmap", str(a), "-m", "cca", *extra)["matrix"]
        zr = results("heatmap", str(tmp_path / "a.zarr"), "-m", "cca", *extra)["matrix"]
        np.testing.assert_array_equal(zr, h5)
    assert "l/2" in runner.invoke(app, ["inspect", str(tmp_path / "a.zarr")]).stdout


def test_missing_dask_is_one_line(files, monkeypatch):
    from repsim_cli.engines import dask as dask_engine
    from repsim_cli.errors import RepsimError

    def missing():
        raise RepsimError("engine='dask' needs dask.distributed: pip install 'repsim-cli[dask]'")

    monkeypatch.setattr(dask_engine, "require_dask", missing)
    a, b = files
    out = runner.invoke(app, ["compare", f"{a}:l/1", f"{b}:l/1", "--engine", "dask"])
    assert out.exit_code == 2 and "pip install 'repsim-cli[dask]'" in out.stderr


def test_dask_refuses_in_memory_arrays():
    import repsim_cli as rs
    from repsim_cli.errors import RepsimError

    x = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(RepsimError, match="in-memory array"):
        rs.compare(x, x, "cka", engine="dask")


def test_shuffle_rows_is_seeded_and_the_same_on_every_engine(files):
    """--shuffle-rows: minibatch CKA over a seeded row order; streamed = in memory; --seed changes it."""
    a, b = files
    args = ["compare", f"{a}:l/1", f"{b}:l/1", "-m", "cka:minibatch=30", "-m", "cka:minibatch=16,kernel=rbf"]
    plain = results(*args, "--no-stream")["results"]
    memory = results(*args, "--shuffle-rows", "--seed", "5", "--no-stream")["results"]
    streamed = results(*args, "--shuffle-rows", "--seed", "5", "--stream", "--block-rows", "40")["results"]
    other = results(*args, "--shuffle-rows", "--seed", "6", "--no-stream")["results"]
    for p, m, s, o in zip(plain, memory, streamed, other):
        assert m["params"]["shuffle"] == 5 and p["params"]["shuffle"] == -1
        assert s["value"] == pytest.approx(m["value"], rel=1e-12, abs=1e-14)
        assert m["value"] != p["value"] and m["value"] != o["value"]


def test_shuffled_minibatch_permutation_fast_path(rng):
    from repsim_cli.metrics import parse_metric

    x, y = offset_pair(rng, 50, 3, 4)
    metric = parse_metric("cka:minibatch=12,shuffle=3")
    perm = rng.permutation(50)
    fast = metric.pair(metric.permute(metric.prepare(x), perm), metric.prepare(y))
    assert fast.value == pytest.approx(metric.compute(x[perm], y).value, abs=1e-14)
