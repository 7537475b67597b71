"""Streaming linear CKA equals the in-memory computation, whatever the block size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from repsim_cli.engines import compare as engine
from repsim_cli.cli import app
from repsim_cli.errors import RepsimError
from repsim_cli.io.layers import select_layers
from repsim_cli.metrics import linear_cka
from repsim_cli.engines.streaming import streamed_hsic

from conftest import write_h5


@pytest.fixture
def offset_pair(tmp_path, rng):
    """float32 layers with large offsets (1e4, -300): centering must not lose precision."""
    x = (rng.standard_normal((211, 7)) * 2 + 1e4).astype(np.float32)
    y = (x[:, :5] @ rng.standard_normal((5, 9)) + rng.standard_normal((211, 9)) - 300).astype(np.float32)
    path = write_h5(tmp_path / "s.h5", {"x": x, "y": y})
    np.save(tmp_path / "x.npy", x)
    return path, x, y


@pytest.mark.parametrize("block_bytes", [1, 100, 4096, 10**9])
@pytest.mark.parametrize("debiased", [False, True])
def test_streamed_equals_in_memory(offset_pair, block_bytes, debiased):
    path, x, y = offset_pair
    a, b = select_layers(f"{path}:x")[0], select_layers(f"{path}:y")[0]
    got = streamed_hsic(a, b, block_bytes=block_bytes).cka(debiased)
    assert got == pytest.approx(linear_cka(x, y, debiased), abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(5, 40), fa=st.integers(1, 6), fb=st.integers(1, 6), offset=st.floats(-1e4, 1e4), seed=st.integers(0, 2**16))
def test_streamed_property(tmp_path_factory, n, fa, fb, offset, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fa)) + offset
    y = rng.standard_normal((n, fb)) + x[:, :1]
    path = write_h5(tmp_path_factory.mktemp("p") / "p.h5", {"x": x, "y": y})
    a, b = select_layers(f"{path}:x")[0], select_layers(f"{path}:y")[0]
    moments = streamed_hsic(a, b, block_bytes=8 * (fa + fb) * 3)
    for debiased in (False, True):
        try:
            expected = linear_cka(x, y, debiased)
        except RepsimError:  # debiased self-HSIC <= 0 at tiny N: refused on both routes
            with pytest.raises(RepsimError):
                moments.cka(debiased)
            continue
        assert moments.cka(debiased) == pytest.approx(expected, abs=1e-9)


def test_cli_stream_flag_and_auto(offset_pair, monkeypatch, tmp_path):
    path, x, y = offset_pair
    runner = CliRunner()
    args = ["compare", f"{path}:x", f"{path}:y", "-m", "cka", "-m", "cka:debiased=true", "-f", "json"]
    streamed = json.loads(runner.invoke(app, [*args, "--stream"]).stdout)["results"]
    memory = json.loads(runner.invoke(app, [*args, "--no-stream"]).stdout)["results"]
    assert streamed[0]["details"] == {"streamed": "features"} and "details" not in memory[0]
    for s, m in zip(streamed, memory):
        assert s["value"] == pytest.approx(m["value"], abs=1e-12)
    # RAM for the F x F moments but not for the data in float64 (16 N (F_A + F_B) = 54 kB): auto-stream
    monkeypatch.setattr(engine, "physical_memory_bytes", lambda: 20_000)
    auto = json.loads(runner.invoke(app, args).stdout)["results"]
    assert auto[0]["details"] == {"streamed": "features"}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-m", "rsa"], "--stream cannot compute rsa from row blocks"),
        (["-m", "cka:kernel=rbf"], "cka:minibatch=B"),
        (["--permutations", "9"], "cannot be combined"),
        (["--max-samples", "50"], "cannot be combined"),
    ],
)
def test_cli_stream_refuses_what_it_cannot_do(offset_pair, extra, message):
    path, _, _ = offset_pair
    result = CliRunner().invoke(app, ["compare", f"{path}:x", f"{path}:y", "--stream", *extra])
    assert result.exit_code == 2 and message in result.stderr


def test_no_streaming_when_the_feature_moments_would_not_fit(offset_pair, monkeypatch):
    path, _, _ = offset_pair
    monkeypatch.setattr(engine, "physical_memory_bytes", lambda: 1000)  # not even F x F fits
    runner = CliRunner()
    args = ["compare", f"{path}:x", f"{path}:y", "-f", "json"]
    assert "details" not in json.loads(runner.invoke(app, args).stdout)["results"][0]  # in memory
    refused = runner.invoke(app, [*args, "--stream"])
    assert refused.exit_code == 2 and "--pool mean" in refused.stderr


@pytest.fixture
def wide_pair(tmp_path, rng):
    """Layers much wider than N (a flattened conv map): streaming goes through N x N Grams."""
    x = (rng.standard_normal((30, 8, 3, 2)) + 50.0).astype(np.float32)
    y = (x.reshape(30, -1)[:, :20] @ rng.standard_normal((20, 60)) + rng.standard_normal((30, 60))).astype(np.float32)
    path = write_h5(tmp_path / "w.h5", {"x": x, "y": y})
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    return path, x, y


@pytest.mark.parametrize("pool", ["none", "mean"])
def test_feature_blocks_are_the_layer_matrix(wide_pair, tmp_path, pool):
    from repsim_cli.io.layers import to_matrix
    from repsim_cli.engines.streaming import iter_feature_blocks

    path, x, _ = wide_pair
    expected = to_matrix(x, pool, 1, "x")
    for sel in (f"{path}:x", str(tmp_path / "x.npy"), f"{tmp_path / 'x.npz'}:x"):
        ref = select_layers(sel)[0]
        blocks = list(iter_feature_blocks(ref, pool, 1, block_bytes=30 * 6 * 8 * 3))
        assert len(blocks) > 1
        np.testing.assert_array_equal(np.hstack(blocks), expected)


@pytest.mark.parametrize("debiased", [False, True])
def test_gram_route_equals_in_memory(wide_pair, debiased):
    from repsim_cli.engines.streaming import gram_cka, streamed_centered_gram

    path, x, y = wide_pair
    a, b = select_layers(f"{path}:x")[0], select_layers(f"{path}:y")[0]
    ka = streamed_centered_gram(a, block_bytes=30 * 8 * 7)
    kb = streamed_centered_gram(b, block_bytes=30 * 8 * 7)
    assert gram_cka(ka, kb, debiased) == pytest.approx(linear_cka(x.reshape(30, -1), y, debiased), abs=1e-12)


def test_cli_stream_picks_the_gram_route_for_wide_layers(wide_pair):
    path, _, _ = wide_pair
    runner = CliRunner()
    args = ["compare", f"{path}:x", f"{path}:y", "-m", "cka", "-m", "cka:debiased=true", "-f", "json"]
    streamed = json.loads(runner.invoke(app, [*args, "--stream"]).stdout)["results"]
    memory = json.loads(runner.invoke(app, args).stdout)["results"]
    assert [r["details"]["streamed"] for r in streamed] == ["gram", "gram"]
    for s, m in zip(streamed, memory):
        assert s["value"] == pytest.approx(m["value"], abs=1e-12)
    pooled = json.loads(runner.invoke(app, [*args, "--stream", "--pool", "mean"]).stdout)["results"]
    pooled_memory = json.loads(runner.invoke(app, [*args, "--pool", "mean"]).stdout)["results"]
    assert pooled[0]["features_a"] == 8
    for s, m in zip(pooled, pooled_memory):
        assert s["value"] == pytest.approx(m["value"], abs=1e-12)
    x8 = ["compare", f"{path}:x", f"{path}:x", "--pool", "mean", "-f", "json", "--stream"]
    assert json.loads(runner.invoke(app, x8).stdout)["results"][0]["details"]["streamed"] == "features"
