"""Loading: formats, layer order, selectors, pooling, row subsets and validation."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from repsim_cli.errors import RepsimError
from repsim_cli.io.arrays import natural_key
from repsim_cli.io.layers import (
    choose_rows,
    count_constant_columns,
    load_layer,
    open_activation_file,
    select_layers,
    split_selector,
)

from conftest import write_h5


def test_natural_sort_orders_numbers_numerically():
    names = ["layers/10", "layers/2", "layers/1", "layers/03"]
    assert sorted(names, key=natural_key) == ["layers/1", "layers/2", "layers/03", "layers/10"]


def test_hdf5_without_layer_order_uses_every_numeric_nd_dataset_in_natural_order(tmp_path, rng):
    path = write_h5(
        tmp_path / "m.h5",
        {"layers/10": rng.standard_normal((5, 3)), "layers/2": rng.standard_normal((5, 4))},
        labels=np.arange(5),
        names=np.array([b"a", b"b", b"c", b"d", b"e"]),
    )
    af = open_activation_file(str(path))
    assert [r.name for r in af.layers] == ["layers/2", "layers/10"]
    infos = {i.name: i for i in af.datasets}
    assert not infos["labels"].is_layer and "ndim 1" in infos["labels"].reason
    assert not infos["names"].is_layer


def test_hdf5_layer_order_names_layers_and_excludes_others(tmp_path, rng):
    path = write_h5(
        tmp_path / "m.h5",
        {"b": rng.standard_normal((5, 3)), "a": rng.standard_normal((5, 4))},
        layer_order=["/b", "a"],
        logits=rng.standard_normal((5, 2)),
    )
    af = open_activation_file(str(path))
    assert [r.name for r in af.layers] == ["b", "a"]
    assert {i.name: i.is_layer for i in af.datasets}["logits"] is False
    # a non-layer dataset can still be selected explicitly
    assert select_layers(f"{path}:logits")[0].name == "logits"


def test_layer_order_naming_missing_dataset_is_an_error(tmp_path, rng):
    path = write_h5(tmp_path / "m.h5", {"a": rng.standard_normal((5, 3))}, layer_order=["a", "nope"])
    with pytest.raises(RepsimError, match="nope"):
        open_activation_file(str(path))


def test_npy_and_npz(tmp_path, rng):
    x = rng.standard_normal((6, 3)).astype(np.float32)
    np.save(tmp_path / "acts.npy", x)
    np.savez(tmp_path / "many.npz", l2=x, l10=x * 2, lab=np.arange(6))
    (ref,) = select_layers(str(tmp_path / "acts.npy"))
    assert ref.name == "acts" and ref.shape == (6, 3)
    refs = select_layers(str(tmp_path / "many.npz"))
    assert sorted(r.name for r in refs) == ["l10", "l2"]
    layer = load_layer(select_layers(f"{tmp_path / 'many.npz'}:l10")[0])
    assert layer.data.dtype == np.float64
    np.testing.assert_array_equal(layer.data, (x * 2).astype(np.float64))


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(RepsimError, match="obj.npy"):
        select_layers(str(tmp_path / "obj.npy"))


def test_selectors_names_globs_and_leading_slash(tmp_path, rng):
    path = write_h5(tmp_path / "m.h5", {f"layers/{i:02d}": rng.standard_normal((4, 2)) for i in range(12)})
    assert split_selector(f"{path}:layers/0*") == (str(path), "layers/0*")
    assert [r.name for r in select_layers(f"{path}:layers/0*")] == [f"layers/{i:02d}" for i in range(10)]
    assert select_layers(f"{path}:/layers/11")[0].name == "layers/11"
    with pytest.raises(RepsimError, match="available layers: layers/00"):
        select_layers(f"{path}:conv*")


def test_missing_corrupt_and_unknown_files(tmp_path):
    with pytest.raises(RepsimError, match="no such file"):
        open_activation_file(str(tmp_path / "nope.h5"))
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not hdf5")
    with pytest.raises(RepsimError, match="bad.h5: cannot read"):
        open_activation_file(str(bad))
    other = tmp_path / "x.csv"
    other.write_text("1,2\n")
    with pytest.raises(RepsimError, match="unknown file extension"):
        open_activation_file(str(other))


def test_truncated_hdf5_is_a_clear_error(tmp_path, rng):
    path = write_h5(tmp_path / "t.h5", {"a": rng.standard_normal((200, 50))})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RepsimError, match="t.h5"):
        ref = select_layers(str(path))[0]
        load_layer(ref)


def test_nd_layers_flatten_or_mean_pool(tmp_path, rng):
    x = rng.standard_normal((5, 3, 4, 2))
    path = write_h5(tmp_path / "conv.h5", {"conv": x})
    ref = select_layers(str(path))[0]
    assert ref.features() == 24 and ref.features("mean") == 3
    np.testing.assert_array_equal(load_layer(ref).data, x.reshape(5, -1))
    np.testing.assert_allclose(load_layer(ref, pool="mean").data, x.mean(axis=(2, 3)))
    np.testing.assert_allclose(load_layer(ref, pool="mean", channel_axis=-1).data, x.mean(axis=(1, 2)))
    with pytest.raises(RepsimError, match="channel_axis"):
        load_layer(ref, pool="mean", channel_axis=0)


def test_integer_and_float16_are_loaded_as_float64(tmp_path):
    path = write_h5(tmp_path / "d.h5", {"i": np.arange(12).reshape(4, 3), "h": np.ones((4, 3), np.float16)})
    for ref in select_layers(str(path)):
        assert load_layer(ref).data.dtype == np.float64


def test_nan_and_inf_are_reported_with_rows_and_columns(tmp_path, rng):
    x = rng.standard_normal((6, 4))
    x[2, 1] = np.nan
    x[5, 3] = np.inf
    path = write_h5(tmp_path / "n.h5", {"a": x})
    with pytest.raises(RepsimError) as err:
        load_layer(select_layers(str(path))[0])
    msg = str(err.value)
    assert "n.h5:a" in msg and "(6, 4)" in msg and "1 NaN and 1 infinite" in msg
    assert "rows (first: 2, 5)" in msg and "columns (first: 1, 3)" in msg


def test_zero_features_and_too_few_samples(tmp_path):
    path = write_h5(tmp_path / "z.h5", {"empty": np.zeros((5, 0)), "one": np.zeros((1, 3))})
    refs = {r.name: r for r in select_layers(str(path))}
    with pytest.raises(RepsimError, match="zero features"):
        load_layer(refs["empty"])
    with pytest.raises(RepsimError, match="N=1 inputs, need at least 2"):
        load_layer(refs["one"])
    with pytest.raises(RepsimError, match="need at least 4"):
        load_layer(select_layers(str(write_h5(tmp_path / "s.h5", {"a": np.eye(3)})))[0], min_samples=4)


def test_constant_columns_warn_but_load(tmp_path, rng):
    x = rng.standard_normal((6, 4))
    x[:, 1] = 0.0
    x[:, 3] = 7.5
    assert count_constant_columns(x) == 2
    layer = load_layer(select_layers(str(write_h5(tmp_path / "c.h5", {"a": x})))[0])
    assert layer.warnings == [f"{tmp_path / 'c.h5'}:a: 2 of 4 columns are constant (dead units)"]


def test_streaming_constant_count_matches_in_memory(tmp_path, rng, monkeypatch):
    from repsim_cli.io import layers as loading

    x = rng.standard_normal((50, 6, 2))
    x[:, 1, :] = 3.0  # constant channel
    x[:, 4, 0] = -1.0  # one constant flattened column
    path = write_h5(tmp_path / "k.h5", {"a": x})
    ref = select_layers(str(path))[0]
    blocks = []
    real = loading.iter_row_blocks
    monkeypatch.setattr(loading, "iter_row_blocks", lambda r: (blocks.append(b.shape[0]) or b for b in real(r, block_bytes=7 * 96)))
    assert loading.count_constant_columns_streaming(ref) == count_constant_columns(x.reshape(50, -1)) == 3
    assert loading.count_constant_columns_streaming(ref, pool="mean") == 1
    assert max(blocks) == 7  # read in row blocks, never whole


def test_choose_rows_is_seeded_and_validated(tmp_path):
    a = choose_rows(100, 10, seed=3)
    assert np.array_equal(a, choose_rows(100, 10, seed=3)) and not np.array_equal(a, choose_rows(100, 10, seed=4))
    assert len(np.unique(a)) == 10
    assert choose_rows(100) is None
    with pytest.raises(RepsimError, match="larger than the number of inputs"):
        choose_rows(5, 6)
    np.save(tmp_path / "idx.npy", np.array([4, 0, 2]))
    assert choose_rows(5, samples_file=str(tmp_path / "idx.npy")).tolist() == [4, 0, 2]
    np.save(tmp_path / "bad.npy", np.array([0, 9]))
    with pytest.raises(RepsimError, match=r"\[0, 4\]"):
        choose_rows(5, samples_file=str(tmp_path / "bad.npy"))


def test_explicit_rows_are_read_in_the_given_order(tmp_path, rng):
    x = rng.standard_normal((8, 3))
    path = write_h5(tmp_path / "r.h5", {"a": x})
    ref = select_layers(str(path))[0]
    rows = np.array([5, 1, 1, 7])
    np.testing.assert_array_equal(load_layer(ref, rows=rows).data, x[rows])


def test_inspect_is_lazy(tmp_path, monkeypatch, rng):
    """Opening a file reads no data: reading a dataset would go through Dataset.__getitem__."""
    path = write_h5(tmp_path / "big.h5", {"a": rng.standard_normal((50, 4))})

    def boom(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", boom)
    af = open_activation_file(str(path))
    assert af.layers[0].shape == (50, 4)


def test_sample_data_layout():
    sample = Path(__file__).resolve().parent.parent / "sample_data"
    af = open_activation_file(str(sample / "mlp_seed0.h5"))
    assert [r.name for r in af.layers] == ["layers/1", "layers/2", "layers/3"]
    assert all(r.n_samples == af.layers[0].n_samples for r in af.layers)
