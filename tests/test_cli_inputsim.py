"""The real `repsim inputsim` command on real files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from repsim_cli import __version__
from repsim_cli.cli import app

from conftest import SAMPLE

runner = CliRunner()
GRADS = str(SAMPLE / "grads.h5")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def json_out(*args) -> dict:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def bad(*args, match: str):
    result = run(*args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("repsim: error:"), result.stderr
    assert all(m in lines[0] for m in match.split("|")), lines[0]
    return lines[0]


def h5(path: Path, **arrays) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return path


def sample_kernel() -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(GRADS, "r") as f:
        x = f["grads"][()].astype(np.float64)
        y = f["labels"][()]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    return xn @ xn.T, y


# ------------------------------------------------------------------ happy paths


def test_help_has_examples():
    result = run("inputsim", "--help")
    assert result.exit_code == 0 and "Examples" in result.stdout and "--kernel-out" in result.stdout


def test_demo_command_json_contract():
    doc = json_out("inputsim", GRADS, "--query", "0,1,2", "--top-k", "5", "--train", f"{GRADS}:train_grads", "--seed", "7")
    assert doc["repsim_version"] == __version__ and doc["command"] == "inputsim" and doc["seed"] == 7
    assert [r["index"] for r in doc["results"]] == [0, 1, 2]
    s = doc["summary"]
    assert (s["N"], s["M"], s["P"], s["d"], s["queries"]) == (200, 200, 2410, 1, 3)
    assert s["self_excluded"] is True
    k, y = sample_kernel()
    np.fill_diagonal(k, -np.inf)
    for rec in doc["results"]:
        i = rec["index"]
        nn = np.argsort(-k[i], kind="stable")[:5]
        assert [n["index"] for n in rec["neighbors"]] == list(nn)
        np.testing.assert_allclose([n["kernel"] for n in rec["neighbors"]], k[i, nn], atol=1e-12)
        assert rec["label"] == y[i] and [n["label"] for n in rec["neighbors"]] == list(y[nn])
        assert rec["same_label_fraction"] == np.mean(y[nn] == y[i])
        kk = k[i].copy()
        kk[i] = 0
        assert rec["density_soft"] == pytest.approx(kk.sum(), abs=1e-10)
        assert rec["reliability"] > 0
    assert s["mean_same_label_fraction"] == pytest.approx(np.mean([r["same_label_fraction"] for r in doc["results"]]))


def test_table_and_csv(tmp_path):
    result = run("inputsim", GRADS, "--query", "0,1", "--top-k", "3", "--threshold", "0.5", "--alpha", "2")
    assert result.exit_code == 0, result.stderr
    assert "76(7) 0.948" in result.stdout and "x itself excluded" in result.stdout
    out = tmp_path / "r.csv"
    result = run("inputsim", GRADS, "--query", "0,1", "--top-k", "3", "-o", out)
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["index"] for r in rows] == ["0", "1"] and rows[0]["neighbors"].startswith("76:0.94")


def test_reference_other_file_has_no_self(tmp_path):
    doc = json_out("inputsim", GRADS, "--reference", f"{GRADS}:train_grads", "--query", "3", "--top-k", "2")
    assert doc["summary"]["self_excluded"] is False and "no self" in doc["summary"]["self"]
    assert doc["results"][0]["neighbors"][0]["label"] is not None  # train_labels found for the reference


def test_kernel_out_atomic_with_attributes(tmp_path):
    out = tmp_path / "K.h5"
    result = run("inputsim", GRADS, "--query", "0,5", "--kernel-out", out, "--format", "json")
    assert result.exit_code == 0, result.stderr
    k, _ = sample_kernel()
    with h5py.File(out, "r") as f:
        assert f["kernel"].dtype == np.float32 and f["kernel"].chunks is not None
        np.testing.assert_allclose(f["kernel"][()], k[[0, 5]], atol=1e-6)
        assert f["kernel"].attrs["multi_output"] == "trace" and f["kernel"].attrs["P"] == 2410
        np.testing.assert_array_equal(f["query_index"][()], [0, 5])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".repsim-")]
    result = run("inputsim", GRADS, "--kernel-out", out, "--kernel-dtype", "float64", "-f", "json")
    with h5py.File(out, "r") as f:
        assert f["kernel"].shape == (200, 200) and f["kernel"].dtype == np.float64


def test_block_size_option_same_numbers():
    a = json_out("inputsim", GRADS, "--top-k", "3", "--block-size", "512")
    b = json_out("inputsim", GRADS, "--top-k", "3", "--block-size", "100000")
    assert a["summary"]["blocks"] == 5 and b["summary"]["blocks"] == 1
    for ra, rb in zip(a["results"], b["results"]):
        assert ra["density_soft"] == pytest.approx(rb["density_soft"], abs=1e-12)
        assert [n["index"] for n in ra["neighbors"]] == [n["index"] for n in rb["neighbors"]]


def test_drop_zero_lists_rows(tmp_path, rng):
    x = rng.standard_normal((6, 5))
    x[1] = 0
    p = h5(tmp_path / "z.h5", grads=x)
    result = run("inputsim", p, "--drop-zero", "-f", "json")
    assert result.exit_code == 0
    assert "dropped 1 zero-gradient query rows (0-based): 1" in result.stderr
    assert [r["index"] for r in json.loads(result.stdout)["results"]] == [0, 2, 3, 4, 5]


def test_query_file(tmp_path):
    q = tmp_path / "q.npy"
    np.save(q, np.array([9, 4]))
    doc = json_out("inputsim", GRADS, "--query-file", q)
    assert [r["index"] for r in doc["results"]] == [9, 4]


# ------------------------------------------------------------------ bad inputs -> exit 2, one line


def test_bad_inputs(tmp_path, rng):
    x = rng.standard_normal((6, 5))
    nan = x.copy()
    nan[3, 2] = np.nan
    zero = x.copy()
    zero[[0, 4]] = 0
    p = h5(tmp_path / "g.h5", grads=x, vec=np.ones(6))
    pn = h5(tmp_path / "nan.h5", grads=nan)
    pz = h5(tmp_path / "zero.h5", grads=zero)
    pp = h5(tmp_path / "p7.h5", grads=rng.standard_normal((6, 7)))
    bad("inputsim", f"{p}:vec", match=f"{p}:vec|ndim 1")
    bad("inputsim", pn, match=f"{pn}:grads|NaN|0-based: 3")
    bad("inputsim", pz, match=f"{pz}:grads|zero gradient in 2 rows|0-based: 0, 4|--drop-zero")
    bad("inputsim", p, "--reference", pp, match=f"{pp}:grads|P=7|P=5")
    bad("inputsim", p, "--train", pp, match=f"{pp}:grads|P=7")
    bad("inputsim", p, "--query", "0,6", match="out of range [0, 5]: 6")
    bad("inputsim", p, "--query", "a,b", match="--query")
    bad("inputsim", p, "--threshold", "1.5", match="--threshold|[0, 1]")
    bad("inputsim", p, "--alpha", "0", match="--alpha|> 0")
    bad("inputsim", p, "--alpha", "-1", match="--alpha")
    bad("inputsim", p, "--multi-output", "rotation", match="rotation|N x 2 x P|d = 1")
    bad("inputsim", p, "--kernel-out", p, match="refusing to overwrite")
    bad("inputsim", tmp_path / "missing.h5", match="no such file")
    two = h5(tmp_path / "two.h5", a=x, b=x)
    bad("inputsim", two, match="cannot tell which dataset|a (6, 5)|b (6, 5)")
    before = p.read_bytes()
    bad("inputsim", p, "--top-k", "9", "-o", p, match="refusing to overwrite")
    assert p.read_bytes() == before


def test_string_labels(tmp_path, rng):
    x = rng.standard_normal((5, 4))
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["grads"] = x
        f.create_dataset("labels", data=np.array([b"cat", b"dog", b"cat", b"dog", b"cat"]))
    doc = json_out("inputsim", tmp_path / "s.h5", "--top-k", "2")
    assert doc["results"][0]["label"] == "cat" and 0 <= doc["summary"]["mean_same_label_fraction"] <= 1
