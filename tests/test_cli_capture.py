"""The real `repsim capture` command, and its files read by compare / heatmap / test / inputsim."""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np
import pytest
from capture_models import CNN as CNNClass
from capture_models import HERE, images, torch
from capture_models import hf_bare_dir, hf_dir  # noqa: F401  (pytest fixtures)
from typer.testing import CliRunner

from repsim_cli.cli import app

runner = CliRunner()
CNN = f"{HERE / 'capture_models.py'}:make_cnn"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def bad(*args, match: str) -> str:
    result = run(*args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("repsim: error:")]
    assert len(errors) == 1 and match in errors[0], result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """Four CNN weight files (seeds), their captures, and a gradient capture."""
    d = tmp_path_factory.mktemp("cap")
    x = images(40, seed=1)
    y = np.random.default_rng(2).integers(0, 3, 40)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    files = []
    for s in range(4):
        torch.manual_seed(100 + s)
        model = CNNClass()
        torch.save(model.state_dict(), d / f"w{s}.pt")
        out = d / f"cnn{s}.h5"
        res = ok("capture", CNN, "--weights", d / f"w{s}.pt", "--inputs", d / "x.npy", "-o", out,
                 "--layers", "features.*", "--layers", "fc", "--labels", d / "y.npy", "--batch-size", 16, "--seed", s)
        assert "repsim: wrote 8 layers of N=40 inputs" in res.stderr
        files.append(out)
    ok("capture", CNN, "--weights", d / "w0.pt", "--inputs", d / "x.npy", "-o", d / "g.h5", "--layers", "fc",
       "--grads", "loss", "--targets", d / "y.npy", "--labels", d / "y.npy", "--grad-params", "fc.*")
    return d, files, x, y


def test_weights_are_loaded_and_provenance_written(captured):
    d, files, x, _ = captured
    model = CNNClass()
    model.load_state_dict(torch.load(d / "w1.pt", weights_only=True))
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    with h5py.File(files[1], "r") as f:
        np.testing.assert_allclose(f["fc"][()], ref, atol=1e-6)
        a = dict(f.attrs)
        assert a["model"] == CNN and a["seed"] == 1 and len(a["weights_sha256"]) == 64 and len(a["inputs_sha256"]) == 64
        assert f["labels"].shape == (40,) and f["features.0"].dtype == np.float32 and f["features.0"].chunks[0] <= 16


def test_captured_files_work_with_compare_heatmap_test(captured):
    _, files, _, _ = captured
    doc = json.loads(ok("compare", files[0], files[1], "-m", "cka", "-f", "json").stdout)
    assert [r["metric"] for r in doc["results"]] == ["cka"] * 8
    assert all(0 < r["value"] < 0.9999 for r in doc["results"])  # two different seeds
    doc = json.loads(ok("heatmap", files[0], files[1], "-f", "json").stdout)
    assert doc["command"] == "heatmap"
    doc = json.loads(ok("test", "--group", "a", files[0], files[1], "--group", "b", files[2], files[3], "-B", 5, "-f", "json").stdout)
    assert doc["command"] == "test"


def test_captured_gradients_work_with_inputsim(captured):
    d, _, _, y = captured
    with h5py.File(d / "g.h5", "r") as f:
        assert f["grads/loss"].shape == (40, 75) and f["grads/loss"].attrs["P"] == 75
    doc = json.loads(ok("inputsim", f"{d / 'g.h5'}:grads/loss", "--top-k", 3, "-f", "json").stdout)
    assert doc["summary"]["P"] == 75 and doc["results"][0]["label"] == int(y[0])  # labels found beside the gradients
    out = d / "gp.h5"
    ok("capture", CNN, "--weights", d / "w0.pt", "--inputs", d / "x.npy", "-o", out, "--layers", "fc",
       "--grads", "true_logit", "--targets", d / "y.npy", "--grad-project", 16, "--seed", 5)
    doc = json.loads(ok("inputsim", f"{out}:grads/true_logit", "--query", "0,1", "-f", "json").stdout)
    assert doc["summary"]["P"] == 16


def test_hf_text_tokens_last_and_all(tmp_path, hf_dir):  # noqa: F811
    (tmp_path / "s.txt").write_text("the cat sat on the mat\nhello world\na dog ran in the park\nfast\n")
    res = ok("capture", f"hf:{hf_dir}", "--text", tmp_path / "s.txt", "--tokens", "last", "-o", tmp_path / "h.h5", "--batch-size", 2)
    assert "hidden_states/02 16" in res.stderr
    ok("capture", f"hf:{hf_dir}", "--text", tmp_path / "s.txt", "--tokens", "all", "--layers", "hidden_states/02",
       "--max-length", 4, "-o", tmp_path / "all.h5")
    with h5py.File(tmp_path / "all.h5", "r") as f:
        assert f["hidden_states/02"].shape == (4, 4, 16) and f["hidden_states/02"].attrs["axes"] == "N,T,D"
        assert f["attention_mask"][()].tolist()[1] == [1, 1, 0, 0]
    doc = json.loads(ok("compare", tmp_path / "h.h5", tmp_path / "h.h5", "-f", "json").stdout)
    assert len(doc["results"]) == 3


def test_errors_exit_2_with_one_line(tmp_path, captured, hf_bare_dir, monkeypatch):  # noqa: F811
    d, _, _, _ = captured
    x = d / "x.npy"
    out = tmp_path / "o.h5"
    msg = bad("capture", CNN, "--inputs", x, "-o", out, "--layers", "conv*", match="--layers 'conv*' matches no module")
    assert "available names: features, features.0" in msg
    bad("capture", f"{HERE / 'capture_models.py'}:not_a_module", "--inputs", x, "-o", out, match="not a torch.nn.Module")
    bad("capture", "no_such_pkg.models:make", "--inputs", x, "-o", out, match="cannot import no_such_pkg.models")
    bad("capture", CNN, "--inputs", d / "y.npy", "-o", out, match="the forward pass failed on a batch of shape (40,)")
    bad("capture", CNN, "--inputs", x, "-o", out, "--weights", d / "y.npy", match="--weights")
    (tmp_path / "s.txt").write_text("hello\n")
    bad("capture", f"hf:{hf_bare_dir}", "--text", tmp_path / "s.txt", "-o", out, match="no tokenizer found")
    bad("capture", CNN, "--inputs", x, "-o", x, match="refusing to overwrite an input file")
    bad("capture", CNN, "--inputs", x, "-o", out, "--tokens", "median", match="--tokens must be one of")
    bad("capture", CNN, "--inputs", x, "-o", out, "--grads", "loss", match="needs --targets")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    bad("capture", CNN, "--inputs", x, "-o", out, match="pip install 'repsim-cli[torch]'")
    assert not out.exists()


def test_help_has_examples_and_projection_error():
    result = ok("capture", "--help")
    assert "Examples" in result.stdout and "sqrt(K)" in result.stdout
