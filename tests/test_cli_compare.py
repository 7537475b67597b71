"""The real `repsim compare` / `inspect` / `metrics` commands on real files."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from repsim_cli import __version__
from repsim_cli.cli import app
from repsim_cli.metrics import linear_cka

from conftest import SAMPLE, write_h5

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def json_out(*args: str) -> dict:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# ------------------------------------------------------------------ happy paths


def test_version_and_help():
    assert run("--version").stdout.strip() == f"repsim {__version__}"
    for cmd in ("compare", "inspect", "metrics"):
        result = run(cmd, "--help")
        assert result.exit_code == 0 and "Examples" in result.stdout


def test_python_dash_m_and_console_script_work():
    out = subprocess.run([sys.executable, "-m", "repsim_cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"repsim {__version__}"


def test_compare_same_named_layers_json_contract(pair_files):
    a, b = pair_files
    doc = json_out("compare", a, b, "-m", "cka", "-m", "matched:corr=spearman")
    assert doc["repsim_version"] == __version__ and doc["command"] == "compare" and doc["seed"] == 0
    recs = doc["results"]
    assert [(r["a"], r["metric"]) for r in recs] == [
        (f"{a}:layers/{i}", m) for i in (1, 2, 3) for m in ("cka", "matched")
    ]
    first = recs[0]
    assert set(first) >= {"a", "b", "metric", "params", "value", "n_samples", "features_a", "features_b", "warnings"}
    assert first["b"] == f"{b}:layers/1" and first["n_samples"] == 60 and first["features_a"] == 8
    assert first["params"] == {"kernel": "linear", "sigma": 0.4, "median": "all", "debiased": False, "adjusted": False, "minibatch": 0, "shuffle": -1}
    assert recs[1]["params"]["corr"] == "spearman"


def test_compare_value_matches_library(pair_files):
    import h5py

    a, b = pair_files
    with h5py.File(a) as fa, h5py.File(b) as fb:
        expected = linear_cka(fa["layers/2"][()], fb["layers/2"][()])
    doc = json_out("compare", f"{a}:layers/2", f"{b}:/layers/2")
    assert doc["results"][0]["value"] == pytest.approx(expected, abs=1e-12)


def test_known_example_through_the_cli(tmp_path):
    x = np.array([[0, 3, 6], [1, 4, 7], [2, 5, 8]], float)
    y = np.array([[6, 0, 0], [7, -1, -123], [8, 0, 1000]], float)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    doc = json_out("compare", tmp_path / "x.npy", tmp_path / "y.npy", "-m", "meanmax:corr=spearman", "-m", "matched:corr=spearman")
    values = [r["value"] for r in doc["results"]]
    assert values[0] == pytest.approx(1.0, abs=1e-12)
    assert values[1] == pytest.approx(0.5, abs=1e-12)


def test_identical_inputs_give_one_for_every_metric(pair_files):
    from repsim_cli.metrics import REGISTRY

    a, _ = pair_files
    for name, metric in REGISTRY.items():
        if name == "hsic":  # unnormalized: HSIC(X, X) is a variance, not 1
            continue
        doc = json_out("compare", f"{a}:layers/1", f"{a}:layers/1", "-m", name)
        expected = 1.0 if metric.higher_is_similar else 0.0
        assert doc["results"][0]["value"] == pytest.approx(expected, abs=1e-9), name


def test_csv_and_tsv_have_one_row_per_record(pair_files):
    a, b = pair_files
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        result = run("compare", a, b, "-m", "cka", "-m", "meanmax", "--format", fmt)
        assert result.exit_code == 0
        rows = list(csv.DictReader(io.StringIO(result.stdout), delimiter=sep))
        assert len(rows) == 6
        assert list(rows[0])[:8] == ["a", "b", "metric", "params", "value", "n_samples", "features_a", "features_b"]
        assert rows[0]["params"] == "kernel=linear;sigma=0.4;median=all;debiased=false;adjusted=false;minibatch=0;shuffle=-1"
        assert rows[0]["seed"] == "0"
        assert float(rows[0]["value"]) == pytest.approx(json_out("compare", a, b)["results"][0]["value"], abs=1e-12)


def test_table_is_default_and_stdout_has_only_data(pair_files):
    a, b = pair_files
    result = run("compare", a, b)
    assert result.exit_code == 0
    assert "layers/1" in result.stdout and "cka" in result.stdout and "seed 0" in result.stdout
    assert "warning" not in result.stdout


def test_output_file_is_written_atomically_with_inferred_format(pair_files, tmp_path):
    a, b = pair_files
    out = tmp_path / "res.json"
    result = run("compare", a, b, "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text())["results"][0]["metric"] == "cka"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".repsim-")]
    run("compare", a, b, "-o", tmp_path / "res.csv")
    assert (tmp_path / "res.csv").read_text().startswith("a,b,metric")


def test_refuses_to_overwrite_an_input(pair_files):
    a, b = pair_files
    before = b.read_bytes()
    result = run("compare", a, b, "-o", b, "--format", "json")
    assert result.exit_code == 2 and "refusing to overwrite an input" in result.stderr
    assert b.read_bytes() == before


def test_details_reports_the_matching(tmp_path, rng):
    x = rng.standard_normal((30, 4))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", x[:, [2, 0, 3, 1]])
    doc = json_out("compare", tmp_path / "x.npy", tmp_path / "y.npy", "-m", "matched", "--details")
    pairs = doc["results"][0]["details"]["matching"]
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 3), (2, 0), (3, 2)]
    assert doc["results"][0]["value"] == pytest.approx(1.0)


def test_max_samples_uses_the_same_rows_on_both_sides(pair_files):
    a, b = pair_files
    d1 = json_out("compare", a, a, "--max-samples", "20", "--seed", "5")
    assert d1["seed"] == 5 and d1["results"][0]["n_samples"] == 20
    assert d1["results"][0]["value"] == pytest.approx(1.0)
    d2 = json_out("compare", a, b, "--max-samples", "20", "--seed", "5")
    d3 = json_out("compare", a, b, "--max-samples", "20", "--seed", "5")
    d4 = json_out("compare", a, b, "--max-samples", "20", "--seed", "6")
    assert d2["results"] == d3["results"] and d2["results"] != d4["results"]


def test_samples_file_selects_rows(pair_files, tmp_path):
    a, b = pair_files
    np.save(tmp_path / "rows.npy", np.arange(0, 60, 2))
    doc = json_out("compare", a, b, "--samples", tmp_path / "rows.npy")
    assert doc["results"][0]["n_samples"] == 30


def test_pool_mean_on_conv_layers(tmp_path, rng):
    x = rng.standard_normal((20, 3, 4, 4)).astype(np.float32)
    write_h5(tmp_path / "c.h5", {"conv": x})
    doc = json_out("compare", tmp_path / "c.h5", tmp_path / "c.h5", "--pool", "mean")
    rec = doc["results"][0]
    assert rec["features_a"] == 3 and rec["shape_a"] == [20, 3, 4, 4]
    assert json_out("compare", tmp_path / "c.h5", tmp_path / "c.h5")["results"][0]["features_a"] == 48


def test_fail_below_and_fail_above_gates(pair_files):
    a, b = pair_files
    ok = run("compare", a, b, "--fail-below", "0.0")
    assert ok.exit_code == 0
    low = run("compare", a, b, "--fail-below", "0.999", "--format", "json")
    assert low.exit_code == 1 and json.loads(low.stdout)["results"]  # printed before failing
    assert "threshold crossed" in low.stderr
    assert run("compare", a, b, "--fail-above", "0.01").exit_code == 1


def test_dead_units_warn_on_stderr_and_in_json(tmp_path, rng):
    x = rng.standard_normal((20, 5))
    x[:, 0] = 0
    np.save(tmp_path / "x.npy", x)
    result = run("compare", tmp_path / "x.npy", tmp_path / "x.npy", "-m", "matched", "--format", "json")
    assert result.exit_code == 0
    assert "1 of 5 columns are constant" in result.stderr
    rec = json.loads(result.stdout)["results"][0]
    assert any("constant" in w for w in rec["warnings"])
    assert np.isfinite(rec["value"])


def test_sample_data_compare_runs():
    doc = json_out("compare", SAMPLE / "mlp_seed0.h5", SAMPLE / "wide_seed0.h5", "-m", "cka", "-m", "meanmax")
    assert len(doc["results"]) == 6
    assert all(0 <= r["value"] <= 1 for r in doc["results"])


def test_inspect_table_and_json():
    path = SAMPLE / "mlp_seed0.h5"
    result = run("inspect", path)
    assert result.exit_code == 0 and "layers/3" in result.stdout and "not in layer_order" in result.stdout
    doc = json_out("inspect", path)
    (f,) = doc["files"]
    assert f["layers"] == ["layers/1", "layers/2", "layers/3"]
    layer1 = next(d for d in f["datasets"] if d["name"] == "layers/1")
    import h5py

    from repsim_cli.io.layers import count_constant_columns

    with h5py.File(path) as h5:
        expected = count_constant_columns(h5["layers/1"][()])
    assert expected > 0
    assert layer1["features"] == 128 and layer1["constant_columns"] == expected
    assert f["attrs"]["architecture"] == "mlp"
    lazy = json_out("inspect", path, "--no-constant")
    assert all("constant_columns" not in d for d in lazy["files"][0]["datasets"])


def test_metrics_lists_the_registry():
    from repsim_cli.metrics import REGISTRY

    doc = json_out("metrics")
    assert [m["name"] for m in doc["metrics"]] == list(REGISTRY)
    assert run("metrics").exit_code == 0


# ------------------------------------------------------------------ bad input: exit 2, one line, no traceback

BAD_CASES = {
    "missing file": (lambda d: ["compare", d / "nope.h5", d / "a.h5"], "nope.h5: no such file"),
    "corrupt file": (lambda d: ["compare", d / "corrupt.h5", d / "a.h5"], "corrupt.h5: cannot read as HDF5"),
    "unknown extension": (lambda d: ["compare", d / "a.txt", d / "a.h5"], "unknown file extension"),
    "selector matches nothing": (lambda d: ["compare", f"{d / 'a.h5'}:conv*", d / "a.h5"], "available layers: layers/1"),
    "non-numeric dtype": (lambda d: ["compare", f"{d / 'weird.h5'}:strings", d / "a.h5"], "not a layer"),
    "ndim < 2": (lambda d: ["compare", f"{d / 'weird.h5'}:vector", d / "a.h5"], "ndim 1"),
    "zero features": (lambda d: ["compare", f"{d / 'weird.h5'}:empty", f"{d / 'weird.h5'}:empty"], "zero features"),
    "N < 2": (lambda d: ["compare", f"{d / 'weird.h5'}:single", f"{d / 'weird.h5'}:single"], "N=1 inputs"),
    "N too small for debiased": (
        lambda d: ["compare", f"{d / 'weird.h5'}:three", f"{d / 'weird.h5'}:three", "-m", "cka:debiased=true"],
        "need at least 4",
    ),
    "different N": (lambda d: ["compare", f"{d / 'a.h5'}:layers/1", f"{d / 'weird.h5'}:three"], "different numbers of inputs"),
    "NaN": (lambda d: ["compare", f"{d / 'weird.h5'}:nan", f"{d / 'weird.h5'}:nan"], "1 NaN and 0 infinite"),
    "max-samples > N": (lambda d: ["compare", d / "a.h5", d / "a.h5", "--max-samples", "999"], "larger than the number of inputs N=60"),
    "unknown metric": (lambda d: ["compare", d / "a.h5", d / "a.h5", "-m", "cosine"], "valid metrics: meanmax"),
    "unknown parameter": (lambda d: ["compare", d / "a.h5", d / "a.h5", "-m", "cka:foo=1"], "valid: kernel="),
    "bad parameter value": (lambda d: ["compare", d / "a.h5", d / "a.h5", "-m", "meanmax:corr=kendall"], "pearson|spearman"),
    "no shared layer names": (lambda d: ["compare", d / "a.h5", d / "weird.h5"], "no layer names shared"),
    "bad format": (lambda d: ["compare", d / "a.h5", d / "a.h5", "--format", "xml"], "--format must be one of"),
}


@pytest.fixture
def bad_dir(pair_files, tmp_path, rng) -> Path:
    (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 10)
    (tmp_path / "a.txt").write_text("0 1\n")
    nan = rng.standard_normal((60, 3))
    nan[7, 2] = np.nan
    import h5py

    with h5py.File(tmp_path / "weird.h5", "w") as f:
        f["strings"] = np.array([b"a", b"b"] * 30).reshape(30, 2)
        f["vector"] = np.arange(60.0)
        f["empty"] = np.zeros((60, 0))
        f["single"] = np.zeros((1, 4))
        f["three"] = rng.standard_normal((3, 4))
        f["nan"] = nan
    return tmp_path


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_exits_2_with_a_one_line_message(case, bad_dir):
    make_args, expected = BAD_CASES[case]
    out = bad_dir / "out.json"
    result = run(*make_args(bad_dir), "-o", out)
    assert result.exit_code == 2, (case, result.stdout, result.stderr)
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("repsim: error: ") and result.stderr.count("\n") == 1
    assert not out.exists()


def test_bad_input_subprocess_has_no_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "repsim_cli", "compare", str(tmp_path / "x.h5"), str(tmp_path / "y.h5")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr and "no such file" in out.stderr


@pytest.mark.parametrize("target", ["/proc/repsim-out.json", "DIR"])
def test_unwritable_output_is_exit_2_not_a_traceback(pair_files, tmp_path, target):
    a, b = pair_files
    if target == "DIR":
        target = str(tmp_path / "out.json")
        os.mkdir(target)
    result = run("compare", a, b, "-o", target)
    assert result.exit_code == 2 and result.stderr.startswith("repsim: error: ")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "only-one.h5"], "Missing argument"),
        (["compare", "a.h5", "b.h5", "--bogus"], "No such option"),
        (["compare", "a.h5", "b.h5", "--permutations", "abc"], "--permutations"),
        (["compare", "a.h5", "b.h5", "--seed", "-1"], "--seed"),
        (["nope"], "No such command"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, message):
    out = subprocess.run([sys.executable, "-m", "repsim_cli", *args], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("repsim: error: ") and message in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_an_unanticipated_error_is_one_line_exit_2(pair_files, monkeypatch):
    from repsim_cli.engines import compare as engine

    def boom(*args, **kwargs):
        raise ValueError("something nobody foresaw")

    monkeypatch.setattr(engine, "base_record", boom)
    a, b = pair_files
    result = run("compare", a, b)
    assert result.exit_code == 2 and "unexpected ValueError: something nobody foresaw" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_layers_on_one_side_only_are_named_not_skipped_silently(tmp_path, rng):
    write_h5(tmp_path / "p.h5", {f"l{i}": rng.standard_normal((20, 3)) for i in range(4)})
    write_h5(tmp_path / "q.h5", {f"l{i}": rng.standard_normal((20, 3)) for i in range(1, 6)})
    result = run("compare", tmp_path / "p.h5", tmp_path / "q.h5", "-f", "json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)["results"]) == 3
    assert "comparing the 3 layers present on both sides; only in A: l0; only in B: l4, l5" in result.stderr
