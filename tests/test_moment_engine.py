"""Streamed and dask summaries of files equal the in-memory values, for every moment metric and format."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from repsim_cli.errors import RepsimError
from repsim_cli.io.layers import select_layers
from repsim_cli.metrics import parse_metric
from repsim_cli.engines.dask import dask_moments
from repsim_cli.engines.moments import (
    MomentRunner,
    Source,
    block_moments,
    compare_moments,
    grid_moments,
    stream_moments,
)

from conftest import write_h5
from test_moments import MOMENT_SPECS, assert_routes_agree, offset_pair


@pytest.fixture(scope="module")
def layers():
    rng = np.random.default_rng(7)
    x, y = offset_pair(rng, 203, 6, 5)
    z = (x[:, :2].astype(np.float64) @ rng.standard_normal((2, 4)) + rng.standard_normal((203, 4))).astype(np.float32)
    return x, y, z


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory, layers):
    x, y, z = layers
    path = tmp_path_factory.mktemp("eng") / "l.h5"
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=x, chunks=(16, 6))
        f["y"] = y
        f["z"] = z
    return path


def _sources(path, *names):
    return [Source.of(select_layers(f"{path}:{n}")[0]) for n in names]


@pytest.mark.parametrize("block_rows", [1, 50, 10_000])
def test_streamed_summary_equals_in_memory(h5_file, layers, block_rows):
    x, y, _ = layers
    m = stream_moments(_sources(h5_file, "x", "y"), block_rows)
    assert m.n == 203
    assert assert_routes_agree(x, y, m) < 1e-10


def test_every_file_format_streams_the_same(tmp_path, layers):
    """HDF5, .npy, .npz and zarr (v2 and v3, nested groups, layer_order) give the same summary."""
    zarr = pytest.importorskip("zarr")
    x, y, _ = layers
    write_h5(tmp_path / "a.h5", {"g/x": x, "y": y})
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    sels = [[f"{tmp_path / 'a.h5'}:g/x", f"{tmp_path / 'a.h5'}:y"], [str(tmp_path / "x.npy"), f"{tmp_path / 'a.npz'}:y"]]
    for fmt in (2, 3):
        store = tmp_path / f"a{fmt}.zarr"
        group = zarr.open_group(str(store), mode="w", zarr_format=fmt)
        group.create_group("g").create_array("x", data=x, chunks=(32, 6))
        group.create_array("y", data=y, chunks=(50, 5))
        sels.append([f"{store}:g/x", f"{store}:y"])
    reference = None
    for sel in sels:
        m = stream_moments([Source.of(select_layers(s)[0]) for s in sel], 37)
        values = [parse_metric(spec).from_moments(m).value for spec in MOMENT_SPECS]
        reference = reference or values
        np.testing.assert_allclose(values, reference, rtol=1e-13, atol=1e-15)


def test_zarr_layer_order_and_nested_groups(tmp_path, layers):
    """zarr through the single reader: natural order, layer_order, nested groups, row reads, inspect."""
    zarr = pytest.importorskip("zarr")
    from repsim_cli.io.arrays import read_array
    from repsim_cli.io.layers import describe_file

    x, y, _ = layers
    store = str(tmp_path / "r.zarr")
    group = zarr.open_group(store, mode="w")
    blocks = group.create_group("blocks")
    blocks.create_array("10", data=y)
    blocks.create_array("2", data=x)
    group.create_array("labels", data=np.arange(203))
    assert [ref.name for ref in select_layers(store)] == ["blocks/2", "blocks/10"]
    assert select_layers(f"{store}:blocks/1*")[0].kind == "zarr"
    group.attrs["layer_order"] = ["blocks/10", "blocks/2"]
    assert [ref.name for ref in select_layers(store)] == ["blocks/10", "blocks/2"]
    np.testing.assert_array_equal(read_array(store, "zarr", "blocks/2", np.array([5, 1, 5])), x[[5, 1, 5]])
    assert describe_file(store) is not None
    group.attrs["layer_order"] = ["blocks/3"]
    with pytest.raises(RepsimError, match="blocks/3"):
        select_layers(store)


def test_zarr_equals_hdf5_in_memory(tmp_path, layers):
    """The in-memory engine reads zarr like HDF5: same values for a moment metric and a kernel one."""
    zarr = pytest.importorskip("zarr")
    import repsim_cli as rs

    x, y, _ = layers
    write_h5(tmp_path / "a.h5", {"x": x, "y": y})
    group = zarr.open_group(str(tmp_path / "a.zarr"), mode="w", zarr_format=2)
    group.create_array("x", data=x, chunks=(40, 6))
    group.create_array("y", data=y)
    for spec in ("cca", "rsa"):
        h5 = rs.compare(f"{tmp_path / 'a.h5'}:x", f"{tmp_path / 'a.h5'}:y", spec).value
        zr = rs.compare(f"{tmp_path / 'a.zarr'}:x", f"{tmp_path / 'a.zarr'}:y", spec).value
        assert zr == h5


def test_compare_records_for_every_moment_metric(h5_file, layers):
    x, y, _ = layers
    metrics = [parse_metric(s) for s in [*MOMENT_SPECS, "cka:minibatch=40", "cka:minibatch=32,kernel=rbf"]]
    records = compare_moments([tuple(_sources(h5_file, "x", "y"))], metrics, MomentRunner("stream", block_rows=45))
    for record, metric in zip(records, metrics):
        expected = metric.compute(x, y)
        assert record["value"] == pytest.approx(expected.value, rel=1e-10, abs=1e-12), metric.spec
        assert record["details"]["streamed"] == "features" and record["warnings"] == expected.warnings
        assert record["n_samples"] == 203 and record["features_a"] == 6 and record["features_b"] == 5


def test_grid_is_one_summary(h5_file, layers):
    """Every cell of a 3 x 2 grid is sliced from one pass over the 3 distinct layers."""
    rows, cols = _sources(h5_file, "x", "y", "z"), _sources(h5_file, "z", "x")
    m, ri, ci = grid_moments(rows, cols, MomentRunner("stream", block_rows=30))
    assert m.k == 3
    data = dict(zip("xyz", layers))
    for i, r in zip(ri, "xyz"):
        for j, c in zip(ci, "zx"):
            for spec in ("cka", "cka:debiased=true", "cca", "procrustes"):
                metric = parse_metric(spec)
                assert metric.from_moments(m.select(i, j)).value == pytest.approx(
                    metric.compute(data[r], data[c]).value, rel=1e-10, abs=1e-12
                )


def test_mismatched_rows_and_bad_values_are_refused(tmp_path, layers):
    x, y, _ = layers
    bad = x.copy()
    bad[100, 2] = np.nan
    path = write_h5(tmp_path / "b.h5", {"x": x, "short": y[:100], "bad": bad})
    with pytest.raises(RepsimError, match="different numbers of inputs"):
        stream_moments(_sources(path, "x", "short"), 10)
    with pytest.raises(RepsimError, match="NaN or infinite"):
        stream_moments(_sources(path, "x", "bad"), 10)


# ------------------------------------------------------------------------------------ dask


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


def flaky_block(sources, start, stop):
    """Kills its worker process the first time it runs on rows 64: (a worker lost mid-run)."""
    marker = os.environ.get("REPSIM_TEST_KILL_MARKER", "")
    if start == 64 and marker and os.path.exists(marker):
        os.remove(marker)
        os._exit(1)
    return block_moments(sources, start, stop)


def test_dask_equals_in_memory_whatever_the_workers(cluster, h5_file, layers):
    local, client = cluster
    x, y, _ = layers
    sources = _sources(h5_file, "x", "y")
    m2 = dask_moments(sources, client, 16)
    assert assert_routes_agree(x, y, m2) < 1e-10
    values2 = [parse_metric(s).from_moments(m2).value for s in MOMENT_SPECS]
    runner = MomentRunner("dask", client, block_rows=40)
    mb = runner.minibatch(sources, parse_metric("cka:minibatch=50").params)
    assert mb.value() == pytest.approx(parse_metric("cka:minibatch=50").compute(x, y).value, abs=1e-13)
    # one worker left: same blocks, same value
    local.scale(1)
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(client.scheduler_info()["workers"]) == 1
    m1 = dask_moments(sources, client, 16)
    values1 = [parse_metric(s).from_moments(m1).value for s in MOMENT_SPECS]
    np.testing.assert_allclose(values1, values2, rtol=1e-13, atol=1e-15)
    local.scale(2)
    client.wait_for_workers(2, timeout=300)  # a restarted worker can take a minute on a loaded 2-core machine


def test_dask_survives_a_killed_worker(cluster, h5_file, layers, tmp_path, monkeypatch):
    import cloudpickle

    local, client = cluster
    x, y, _ = layers
    marker = tmp_path / "kill-once"
    marker.write_text("1")
    client.run(lambda m: os.environ.__setitem__("REPSIM_TEST_KILL_MARKER", m), str(marker))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        m = dask_moments(_sources(h5_file, "x", "y"), client, 16, task=flaky_block)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert not marker.exists()  # the worker really died once
    assert assert_routes_agree(x, y, m, ["cka", "cka:debiased=true", "cca", "lr"]) < 1e-10
    client.wait_for_workers(2, timeout=300)  # a restarted worker can take a minute on a loaded 2-core machine


def test_missing_dask_is_one_clear_line(monkeypatch):
    import builtins

    from repsim_cli.engines import dask as moment_engine

    real = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(RepsimError, match=r"pip install 'repsim-cli\[dask\]'"):
        moment_engine.require_dask()


@pytest.mark.parametrize("spec", ["cka:debiased=true", "lr:predict=a", "cka:minibatch=50"])
def test_streamed_heatmap_grid_equals_in_memory_grid(h5_file, spec):
    """The whole GridResult (matrix, cells computed, sanity check) from one pass equals compute_grid's."""
    from repsim_cli.engines.compare import LoadOptions
    from repsim_cli.engines.grid import compute_grid
    from repsim_cli.engines.moments import stream_grid

    refs = [select_layers(f"{h5_file}:{n}")[0] for n in ("x", "y", "z")]
    metric = parse_metric(spec)
    for cols in (None, refs[::-1]):
        got = stream_grid(refs, cols, metric, "none", 1, MomentRunner("stream", block_rows=33))
        want = compute_grid(refs, cols, metric, LoadOptions())
        np.testing.assert_allclose(got.matrix, want.matrix, rtol=1e-10, atol=1e-12)
        assert got.pair_calls == want.pair_calls and got.sanity == want.sanity
        assert [r["features_b"] for r in got.records] == [r["features_b"] for r in want.records]
        assert all(r["details"]["streamed"] == "features" for r in got.records)


def test_cli_dask_engine_with_scheduler_equals_in_memory(cluster, h5_file):
    """`--engine dask --scheduler tcp://...` on compare and heatmap: the in-memory values."""
    import json

    from typer.testing import CliRunner

    from repsim_cli.cli import app

    local, client = cluster
    client.wait_for_workers(2, timeout=300)  # a restarted worker can take a minute on a loaded 2-core machine
    runner = CliRunner()
    address = local.scheduler_address
    metrics = ["-m", "cka", "-m", "cca:stat=r2", "-m", "matched", "-m", "cka:minibatch=64"]
    base = ["compare", f"{h5_file}:x", f"{h5_file}:y", *metrics, "-f", "json"]
    on_dask = runner.invoke(app, [*base, "--engine", "dask", "--scheduler", address, "--block-rows", "40"])
    assert on_dask.exit_code == 0, on_dask.stderr
    memory = json.loads(runner.invoke(app, base).stdout)["results"]
    for d, m in zip(json.loads(on_dask.stdout)["results"], memory):
        assert d["details"]["engine"] == "dask" and d["value"] == pytest.approx(m["value"], rel=1e-10, abs=1e-12)
    grid = ["heatmap", str(h5_file), "-m", "lr", "-f", "json"]
    on_dask = runner.invoke(app, [*grid, "--engine", "dask", "--scheduler", address])
    assert on_dask.exit_code == 0, on_dask.stderr
    np.testing.assert_allclose(
        json.loads(on_dask.stdout)["matrix"], json.loads(runner.invoke(app, grid).stdout)["matrix"], rtol=1e-10, atol=1e-12
    )
    refused = runner.invoke(app, [*base, "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1"])
    assert refused.exit_code == 2 and "cannot connect to tcp://127.0.0.1:1" in refused.stderr
