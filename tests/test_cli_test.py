"""The real `repsim test` command (and compare's nulls) on sample_data/ and generated files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from repsim_cli.cli import app
from repsim_cli.cli.test_cmd import split_group_args
from repsim_cli.metrics import linear_cka

from conftest import SAMPLE, write_h5

runner = CliRunner()
MLP = [str(SAMPLE / f"mlp_seed{i}.h5") for i in range(3)]
WIDE = [str(SAMPLE / f"wide_seed{i}.h5") for i in range(2)]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok_json(*args) -> dict:
    result = run(*args, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def bad(*args, match: str) -> str:
    result = run(*args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("repsim: error:")]
    assert len(lines) == 1 and match in lines[0], result.stderr
    return lines[0]


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, list[Path]]:
    """2 + 2 runs: group A shares one representation, group B another (N=40, layers l1, l2)."""
    rng = np.random.default_rng(0)
    n = 40
    base = {g: {l: rng.standard_normal((n, 6)) for l in ("l1", "l2")} for g in ("A", "B")}
    out: dict[str, list[Path]] = {"A": [], "B": []}
    for g in ("A", "B"):
        for k in range(2):
            layers = {l: (v + 0.3 * rng.standard_normal(v.shape)).astype(np.float32) for l, v in base[g].items()}
            out[g].append(write_h5(tmp_path / f"{g.lower()}{k}.h5", layers, ["l1", "l2"]))
    return out


# ------------------------------------------------------------------ sample data


def test_sample_data_labels_null_json_contract():
    doc = ok_json("test", "--group", "mlp", *MLP, "--group", "wide", *WIDE)
    assert doc["command"] == "test" and doc["seed"] == 0 and doc["null"] == "labels"
    assert doc["splits"] == 10 and doc["min_p_value"] == pytest.approx(0.1) and doc["exact"]
    assert doc["groups"] == {"mlp": MLP, "wide": WIDE}
    assert doc["layers"] == ["layers/1", "layers/2", "layers/3"]
    assert "cannot reach 0.05" in doc["note"]
    for rec in doc["results"]:
        assert set(rec) >= {"within", "between", "statistic", "p_value", "splits", "min_p_value", "null_mean", "null_std"}
        assert len(rec["within"]) == 3 + 1 and len(rec["between"]) == 6
        assert rec["p_value"] * 10 == pytest.approx(round(rec["p_value"] * 10))
        for pair in rec["within"] + rec["between"]:
            assert set(pair) >= {"a", "b", "metric", "params", "value", "n_samples", "features_a", "features_b", "warnings"}
        w = np.mean([p["value"] for p in rec["within"]])
        b = np.mean([p["value"] for p in rec["between"]])
        assert rec["statistic"] == pytest.approx(w - b)
    comb = doc["combined"]
    assert comb["statistic"] == pytest.approx(np.mean([r["statistic"] for r in doc["results"]]))
    assert doc["statistic"] == comb["statistic"]


def test_sample_data_pair_values_are_the_compare_values():
    doc = ok_json("test", "--group", "mlp", *MLP, "--group", "wide", *WIDE, "--layer", "layers/3")
    rec = doc["results"][0]
    pair = next(p for p in rec["between"] if p["a"] == f"{MLP[0]}:layers/3" and p["b"] == f"{WIDE[0]}:layers/3")
    with h5py.File(MLP[0]) as fa, h5py.File(WIDE[0]) as fb:
        expected = linear_cka(fa["layers/3"][()], fb["layers/3"][()])
    assert pair["value"] == pytest.approx(expected, abs=1e-12)
    assert pair["value"] == pytest.approx(0.8775, abs=5e-5)  # sample_data/README.md reference table
    assert doc["combined"] is None


def test_sample_data_table_and_bootstrap():
    result = run("test", "--group", "mlp", *MLP, "--group", "wide", *WIDE)
    assert result.exit_code == 0
    assert "within mlp" in result.stdout and "between mlp-wide" in result.stdout
    assert "all 10 distinct splits" in result.stdout and "combined (mean)" in result.stdout
    doc = ok_json("test", "--group", "mlp", *MLP, "--group", "wide", *WIDE, "--null", "bootstrap", "-B", "20", "--seed", "4",
                  "--max-samples", "200")
    assert doc["seed"] == 4 and doc["null"] == "bootstrap" and doc["resamples"] == 20
    for rec in doc["results"] + [doc["combined"]]:
        assert rec["ci_low"] <= rec["ci_high"] and 0.0 <= rec["fraction_le_zero"] <= 1.0
        assert "p_value" not in rec
    assert doc["results"][0]["n_samples"] == 200


# ------------------------------------------------------------------ generated files


def test_two_plus_two_runs_exact_and_honest(runs):
    doc = ok_json("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"])
    assert doc["splits"] == 3 and doc["min_p_value"] == pytest.approx(1 / 3)
    for rec in doc["results"]:
        assert rec["statistic"] > 0.3
        assert rec["p_value"] == pytest.approx(1 / 3)  # the best a 2+2 design can do
    assert "0.333" in doc["note"] and "4+4" in doc["note"]
    table = run("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"]).stdout
    assert "smallest possible p = 0.3333" in table and "Note:" in table


def test_bootstrap_null_is_seeded(runs):
    args = ["test", "--group", "A", *runs["A"], "--group", "B", *runs["B"], "--null", "bootstrap", "-B", "30"]
    one = run(*args, "--seed", "5", "-f", "json").stdout
    two = run(*args, "--seed", "5", "-f", "json").stdout
    other = run(*args, "--seed", "6", "-f", "json").stdout
    assert one == two and one != other
    doc = json.loads(one)
    assert all(r["ci_low"] > 0 and r["fraction_le_zero"] == 0.0 for r in doc["results"])


def test_debiased_bootstrap_null_says_it_uses_distinct_rows(runs):
    result = run("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"], "-m", "cka:debiased=true",
                 "--null", "bootstrap", "-B", "20", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert "distinct rows" in result.stderr
    assert any("distinct rows" in w for w in json.loads(result.stdout)["warnings"])


def test_equals_form_and_layer_selection(runs):
    spaced = ok_json("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"], "--layer", "l2")
    equals = ok_json("test", f"--group=A={runs['A'][0]},{runs['A'][1]}", "--group", f"B={runs['B'][0]},{runs['B'][1]}", "--layer", "l2")
    assert spaced["results"] == equals["results"] and spaced["layers"] == ["l2"]
    glob = ok_json("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"], "--layer", "l*")
    assert glob["layers"] == ["l1", "l2"]


def test_distance_metric_sign(runs):
    doc = ok_json("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"], "-m", "procrustes:stat=distance")
    for rec in doc["results"]:
        w = np.mean([p["value"] for p in rec["within"]])
        b = np.mean([p["value"] for p in rec["between"]])
        assert b > w and rec["statistic"] == pytest.approx(b - w)


def test_csv_output_and_output_file(runs, tmp_path):
    result = run("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"], "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["layer"] for r in rows] == ["l1", "l2", "combined"]
    assert {"statistic", "p_value", "splits", "min_p_value", "within_mean", "between_mean"} <= set(rows[0])
    out = tmp_path / "res.json"
    result = run("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"], "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text())["command"] == "test"
    before = runs["A"][0].read_bytes()
    bad("test", "--group", "A", *runs["A"], "--group", "B", *runs["B"], "-o", runs["A"][0], "-f", "json", match="refusing to overwrite")
    assert runs["A"][0].read_bytes() == before


def test_help_explains_groups():
    result = run("test", "--help")
    assert result.exit_code == 0
    assert "--group NAME FILE FILE" in result.stdout and "Examples" in result.stdout
    assert "smallest" in result.stdout or "only 3 splits" in result.stdout


# ------------------------------------------------------------------ errors: one line, exit 2


def test_errors(runs, tmp_path):
    a, b = runs["A"], runs["B"]
    bad("test", "--group", "A", *a, match="at least 2 groups")
    bad("test", match="at least 2 groups")
    bad("test", "--group", "A", a[0], "--group", "B", *b, match="group A has 1 run")
    bad("test", "--group", "A", *a, "--group", "B", *b, "--layer", "nope", match="matches no layer")
    bad("test", "--group", "A", *a, "--group", "A", *b, match="given twice")
    bad("test", "--group", "A", *a, "--group", "B", b[0], a[0], match="given twice")
    bad("test", "--group", "A", *a, "--group", "B", *b, "--null", "magic", match="--null must be")
    bad("test", "--group", "A", *a, "--group", "B", b[0], tmp_path / "missing.h5", match="no such file")
    bad("test", "--group", "--layer", "l1", match="--group needs a NAME")
    short = write_h5(tmp_path / "short.h5", {"l1": np.ones((30, 6)), "l2": np.ones((30, 6))}, ["l1", "l2"])
    bad("test", "--group", "A", *a, "--group", "B", b[0], short, match="different numbers of inputs")
    other = write_h5(tmp_path / "other.h5", {"zz": np.random.default_rng(0).standard_normal((40, 3))})
    bad("test", "--group", "A", *a, "--group", "B", b[0], other, match="no layer name is shared")


def test_split_group_args_parser():
    groups, rest, problems = split_group_args(["--group", "A", "x.h5", "y.h5", "-m", "cka", "--group=B", "z.h5", "w.h5", "-B", "9"])
    assert groups == [("A", ["x.h5", "y.h5"]), ("B", ["z.h5", "w.h5"])]
    assert rest == ["-m", "cka", "-B", "9"] and problems == []
    groups, _, _ = split_group_args(["--group", "C=p.h5,q.h5"])
    assert groups == [("C", ["p.h5", "q.h5"])]
    assert split_group_args(["--group"])[2]


# ------------------------------------------------------------------ compare --permutations / --bootstrap end to end


def test_compare_permutations_json_keys_seed_and_reproducible(pair_files):
    a, b = pair_files
    args = ["compare", a, b, "--permutations", "99", "--seed", "3", "-f", "json"]
    first, second = run(*args), run(*args)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout
    doc = json.loads(first.stdout)
    assert doc["seed"] == 3
    for rec in doc["results"]:
        assert set(rec) >= {"p_value", "null_mean", "null_std", "permutations", "z"}
        assert rec["permutations"] == 99 and rec["p_value"] == pytest.approx(0.01)  # B is a noisy rotation of A
    other = json.loads(run("compare", a, b, "--permutations", "99", "--seed", "4", "-f", "json").stdout)
    assert [r["null_mean"] for r in other["results"]] != [r["null_mean"] for r in doc["results"]]


def test_compare_bootstrap_and_jobs_do_not_change_numbers(pair_files):
    a, b = pair_files
    base = ["compare", f"{a}:layers/2", f"{b}:layers/2", "-m", "cka", "-m", "matched", "--permutations", "19",
            "--bootstrap", "30", "--ci", "0.9", "--ci-method", "percentile", "--seed", "1", "-f", "json"]
    one = run(*base, "--jobs", "1")
    two = run(*base, "--jobs", "2")
    assert one.exit_code == 0 and two.exit_code == 0, two.stderr
    assert one.stdout == two.stdout
    for rec in json.loads(one.stdout)["results"]:
        assert rec["ci_low"] <= rec["value"] <= rec["ci_high"] or rec["ci_low"] <= rec["ci_high"]
        assert rec["bootstrap"] == 30 and rec["ci"] == 0.9 and rec["ci_method"] == "percentile"
    table = run(*base[:-2])
    assert "p_value" in table.stdout and "ci_low" in table.stdout


def test_compare_debiased_bootstrap_warns_about_distinct_rows(pair_files):
    a, b = pair_files
    result = run("compare", f"{a}:layers/1", f"{b}:layers/1", "-m", "cka:debiased=true", "--bootstrap", "20", "--ci-method", "percentile", "-f", "json")
    assert result.exit_code == 0
    rec = json.loads(result.stdout)["results"][0]
    assert rec["bootstrap_rows"] == "unique" and any("distinct rows" in w for w in rec["warnings"])
