"""``.pt`` and ``.safetensors`` activation files through the single reader (every command)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch", reason="the .pt reader needs torch (pip install 'repsim-cli[torch]')")
st = pytest.importorskip("safetensors.torch", reason="the .safetensors reader needs safetensors")

from repsim_cli.cli import app  # noqa: E402
from repsim_cli.io.arrays import list_arrays, read_array  # noqa: E402
from repsim_cli.io.layers import load_layer, select_layers  # noqa: E402

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 8)).astype(np.float32)
    b = rng.standard_normal((30, 4, 3)).astype(np.float32)
    torch.save({"layer1": torch.from_numpy(a), "block": {"x": torch.from_numpy(b)}, "layer_order": ["block/x", "layer1"]}, tmp_path / "acts.pt")
    torch.save(torch.from_numpy(a), tmp_path / "one.pt")
    st.save_file({"l1": torch.from_numpy(a), "l2": torch.from_numpy(b)}, str(tmp_path / "acts.safetensors"), metadata={"layer_order": '["l2", "l1"]'})
    st.save_file({"h": torch.from_numpy(a).bfloat16()}, str(tmp_path / "bf.safetensors"))
    np.savez(tmp_path / "ref.npz", layer1=a, x=b)
    return tmp_path, a, b


def test_listing_order_and_data_match_npz(files):
    d, a, b = files
    infos, attrs = list_arrays(str(d / "acts.pt"))
    assert [(i.name, i.shape) for i in infos] == [("layer1", (30, 8)), ("block/x", (30, 4, 3))]
    assert attrs["layer_order"] == ["block/x", "layer1"]
    assert [r.name for r in select_layers(str(d / "acts.pt"))] == ["block/x", "layer1"]
    assert [r.name for r in select_layers(str(d / "acts.safetensors"))] == ["l2", "l1"]
    assert [r.name for r in select_layers(str(d / "one.pt"))] == ["one"]
    np.testing.assert_array_equal(read_array(str(d / "acts.pt"), "pt", "block/x"), b)
    rows = np.array([7, 2, 2, 29])
    np.testing.assert_array_equal(read_array(str(d / "acts.safetensors"), "safetensors", "l2", rows), b[rows])
    ref = select_layers(f"{d / 'acts.safetensors'}:l2")[0]
    np.testing.assert_array_equal(load_layer(ref).data, b.reshape(30, -1).astype(np.float64))
    bf = read_array(str(d / "bf.safetensors"), "safetensors", "h")
    assert bf.dtype == np.float32 and np.abs(bf - a).max() < 0.05  # bfloat16 -> float32


def test_compare_reads_them_like_npz(files):
    d, _, _ = files
    out = runner.invoke(app, ["compare", f"{d / 'acts.pt'}:layer1", f"{d / 'acts.safetensors'}:l1", "-m", "cka", "-f", "json"])
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["value"] == pytest.approx(1.0)
    ref = runner.invoke(app, ["compare", f"{d / 'acts.pt'}:block/x", f"{d / 'ref.npz'}:layer1", "-m", "cka", "-f", "json"])
    new = runner.invoke(app, ["compare", f"{d / 'ref.npz'}:x", f"{d / 'ref.npz'}:layer1", "-m", "cka", "-f", "json"])
    assert json.loads(ref.stdout)["results"][0]["value"] == pytest.approx(json.loads(new.stdout)["results"][0]["value"], abs=1e-12)


def test_pickled_objects_refused_and_missing_packages_named(files, monkeypatch):
    d, _, _ = files
    torch.save({"x": torch.zeros(3, 2), "obj": np.random.default_rng(0)}, d / "evil.pt")
    out = runner.invoke(app, ["inspect", str(d / "evil.pt")])
    assert out.exit_code == 2 and "Traceback" not in out.stderr
    monkeypatch.setitem(sys.modules, "torch", None)
    out = runner.invoke(app, ["inspect", str(d / "acts.pt")])
    assert out.exit_code == 2 and "pip install 'repsim-cli[torch]'" in out.stderr
    monkeypatch.setitem(sys.modules, "safetensors", None)
    out = runner.invoke(app, ["inspect", str(d / "acts.safetensors")])
    assert out.exit_code == 2 and "pip install 'repsim-cli[torch]'" in out.stderr
