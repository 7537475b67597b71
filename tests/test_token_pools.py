"""--pool tokens | last | first and the `axes` attribute against hand computations (N x T x D + attention_mask)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from repsim_cli.cli import app
from repsim_cli.io.layers import load_layer, select_layers
from repsim_cli.metrics import linear_cka

runner = CliRunner()


def write(path, h, mask, axes="N,T,D"):
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("hs", data=h)
        if axes:
            ds.attrs["axes"] = axes
        if mask is not None:
            f.create_dataset("attention_mask", data=mask)
        f.attrs["layer_order"] = np.array(["hs"], dtype=h5py.string_dtype())
    return str(path)


@pytest.fixture
def tokfiles(tmp_path):
    rng = np.random.default_rng(0)
    n, t, d = 12, 6, 5
    h = rng.standard_normal((n, t, d))
    mask = np.ones((n, t), np.int8)
    for i in range(n):  # right padding for even rows, left padding for odd rows
        k = i % 4
        if k:
            if i % 2:
                mask[i, :k] = 0
            else:
                mask[i, t - k :] = 0
    h[mask == 0] = 1e3  # padding must never enter a statistic
    g = rng.standard_normal((d, d))
    return write(tmp_path / "a.h5", h, mask), write(tmp_path / "b.h5", h @ g, mask), h, h @ g, mask


def hand(h, mask, pool):
    rows = []
    for hi, mi in zip(h, mask):
        real = np.flatnonzero(mi)
        rows.append({"mean": [hi[real].mean(0)], "first": [hi[real[0]]], "last": [hi[real[-1]]], "tokens": list(hi[real])}[pool])
    return np.array([r for rs in rows for r in rs])


@pytest.mark.parametrize("pool", ["mean", "first", "last", "tokens"])
def test_token_pools_equal_hand_computation(tokfiles, pool):
    a, b, ha, hb, mask = tokfiles
    ref = select_layers(a)[0]
    assert ref.axes == "N,T,D"
    np.testing.assert_allclose(load_layer(ref, pool=pool).data, hand(ha, mask, pool), rtol=1e-12)
    rows = np.array([3, 0, 7])  # a row subset selects whole sequences
    np.testing.assert_allclose(load_layer(ref, rows, pool=pool).data, hand(ha[rows], mask[rows], pool), rtol=1e-12)
    out = runner.invoke(app, ["compare", a, b, "-m", "cka", "--pool", pool, "-f", "json"])
    assert out.exit_code == 0, out.stderr
    rec = json.loads(out.stdout)["results"][0]
    assert rec["value"] == pytest.approx(linear_cka(hand(ha, mask, pool), hand(hb, mask, pool)), abs=1e-10)
    assert rec["n_samples"] == (int(mask.sum()) if pool == "tokens" else 12)
    assert any("sequences" in w for w in rec["warnings"])  # says how many rows and sequences were used


def test_mean_without_axes_attribute_keeps_the_old_meaning(tmp_path):
    h = np.random.default_rng(1).standard_normal((10, 4, 3))
    path = write(tmp_path / "c.h5", h, None, axes=None)
    ref = select_layers(path)[0]
    np.testing.assert_allclose(load_layer(ref, pool="mean").data, h.mean(axis=2))  # channel axis 1 by default
    np.testing.assert_allclose(load_layer(ref, pool="mean", channel_axis=-1).data, h.mean(axis=1))
    np.testing.assert_allclose(load_layer(ref, pool="last").data, h[:, -1])  # no mask: every token is real


def test_token_pool_errors(tokfiles, tmp_path):
    a, b, *_ = tokfiles
    out = runner.invoke(app, ["heatmap", a, b, "--pool", "tokens", "--permutations", "9"])
    assert out.exit_code == 2 and "not yet with heatmap permutations" in out.stderr
    out = runner.invoke(app, ["compare", a, b, "--pool", "tokens", "--stream"])
    assert out.exit_code == 2
    img = write(tmp_path / "img.h5", np.zeros((5, 2, 3, 3)), None, axes=None)
    out = runner.invoke(app, ["compare", img, img, "--pool", "last"])
    assert out.exit_code == 2 and "needs an N x T x D layer" in out.stderr


def test_tokens_bootstrap_resamples_whole_sequences(tokfiles):
    from repsim_cli.stats.nulls import bootstrap_rows, cluster_rows, percentile_interval

    a, b, ha, hb, mask = tokfiles
    out = runner.invoke(app, ["compare", a, b, "-m", "cka", "--pool", "tokens", "--bootstrap", "30", "--seed", "3", "-f", "json"])
    assert out.exit_code == 0, out.stderr
    rec = json.loads(out.stdout)["results"][0]
    xa, xb = hand(ha, mask, "tokens"), hand(hb, mask, "tokens")
    groups = np.repeat(np.arange(12), mask.sum(axis=1))
    for k in (0, 1):  # each drawn sequence contributes all of its tokens
        expect = np.concatenate([np.flatnonzero(groups == c) for c in bootstrap_rows(12, 3, k)])
        np.testing.assert_array_equal(cluster_rows(groups, 3, k), expect)
    vals = [linear_cka(xa[r], xb[r]) for r in (cluster_rows(groups, 3, k) for k in range(30))]
    lo, hi = percentile_interval(np.array(vals), 0.95)
    assert rec["ci_low"] == pytest.approx(lo, abs=1e-10) and rec["ci_high"] == pytest.approx(hi, abs=1e-10)


def test_tokens_permutations_move_whole_sequences_among_equal_lengths(tokfiles):
    from repsim_cli.stats.nulls import cluster_permutation, distinct_cluster_permutations, permutation_pvalue

    a, b, ha, hb, mask = tokfiles
    groups = np.repeat(np.arange(12), mask.sum(axis=1))
    lengths = mask.sum(axis=1)
    for k in range(5):
        perm = cluster_permutation(groups, 7, k)
        assert sorted(perm.tolist()) == list(range(len(groups)))
        moved = groups[perm]  # the sequence each token row now comes from
        for c in range(12):
            src = np.unique(moved[groups == c])
            assert src.size == 1 and lengths[src[0]] == lengths[c]  # a whole sequence of the same length
            np.testing.assert_array_equal(perm[groups == c], np.flatnonzero(groups == src[0]))  # token order kept
    assert distinct_cluster_permutations(groups) == 6.0 ** 4  # 4 lengths x 3 sequences each: (3!)^4
    out = runner.invoke(app, ["compare", a, b, "-m", "cka", "--pool", "tokens", "--permutations", "40", "--seed", "7", "-f", "json"])
    assert out.exit_code == 0, out.stderr
    rec = json.loads(out.stdout)["results"][0]
    xa, xb = hand(ha, mask, "tokens"), hand(hb, mask, "tokens")
    null = np.array([linear_cka(xa, xb[cluster_permutation(groups, 7, k)]) for k in range(40)])
    assert rec["p_value"] == pytest.approx(permutation_pvalue(rec["value"], null), abs=1e-12)
