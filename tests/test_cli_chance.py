"""`repsim compare --chance`, `repsim heatmap --chance`, `cka:adjusted=true` and the library's chance=True, on files."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import write_h5
from typer.testing import CliRunner

import repsim_cli as rs
from repsim_cli.cli import app
from repsim_cli.metrics.chance import (
    CHANCE_KEYS,
    cka_permutation_moments,
    hsic_permutation_moments,
)
from repsim_cli.stats import holm

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def json_out(*args: object) -> dict:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def fails(match: str, *args: object) -> None:
    result = run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert match in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def chance_files(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A: two layers; B: 'related' (a noisy map of A's layer x) and 'unrelated' (independent), N=40."""
    rng = np.random.default_rng(3)
    n = 40
    a = {"x": rng.standard_normal((n, 6)), "w": rng.standard_normal((n, 60))}  # w: F > N
    b = {
        "x": a["x"] @ rng.standard_normal((6, 4)) + 0.5 * rng.standard_normal((n, 4)),
        "w": rng.standard_normal((n, 5)) ** 2,
    }
    return write_h5(tmp_path / "a.h5", a, ["x", "w"]), write_h5(tmp_path / "b.h5", b, ["x", "w"]), a, b


def test_compare_chance_adds_the_exact_fields(chance_files):
    fa, fb, a, b = chance_files
    doc = json_out("compare", fa, fb, "-m", "cka", "-m", "hsic:kernel=rbf", "--chance")
    recs = doc["results"]
    assert [(r["a"].split(":")[1], r["metric"]) for r in recs] == [("x", "cka"), ("x", "hsic"), ("w", "cka"), ("w", "hsic")]
    for r in recs:
        assert set(CHANCE_KEYS) <= set(r)
        layer = r["a"].split(":")[1]
        if r["metric"] == "cka":
            want = cka_permutation_moments(a[layer], b[layer])
        else:
            want = hsic_permutation_moments(a[layer], b[layer], kernel="rbf")
        assert r["null_mean_exact"] == pytest.approx(want.mean, rel=1e-12)
        assert r["null_std_exact"] == pytest.approx(want.std, rel=1e-12)
        assert r["null_skew_exact"] == pytest.approx(want.skew, rel=1e-9)
        assert r["p_moments"] == pytest.approx(want.p_value, rel=1e-9)
        assert r["z_exact"] == pytest.approx((r["value"] - want.mean) / want.std, rel=1e-9)
        if r["metric"] == "cka":
            assert r["adjusted"] == pytest.approx((r["value"] - want.mean) / (1 - want.mean), abs=1e-12)
        else:
            assert r["adjusted"] is None
    related, unrelated = recs[0], recs[2]
    assert related["p_moments"] < 1e-6 and unrelated["p_moments"] > 0.05


def test_compare_chance_with_permutations_reports_both_p_values(chance_files):
    fa, fb, *_ = chance_files
    doc = json_out("compare", f"{fa}:w", f"{fb}:w", "--chance", "--permutations", "999", "--seed", "1")
    r = doc["results"][0]
    assert abs(r["p_value"] - r["p_moments"]) < 0.05
    assert r["null_mean"] == pytest.approx(r["null_mean_exact"], abs=4 * r["null_std_exact"] / np.sqrt(999))
    table = run("compare", f"{fa}:w", f"{fb}:w", "--chance", "--permutations", "99")
    assert table.exit_code == 0
    for column in ("E0", "adjusted", "p_value", "p_moments", "z_exact"):
        assert column in table.stdout
    rows = list(csv.DictReader(io.StringIO(run("compare", fa, fb, "--chance", "-f", "csv").stdout)))
    assert rows and all(k in rows[0] for k in CHANCE_KEYS)
    assert float(rows[0]["null_mean_exact"]) == pytest.approx(json_out("compare", fa, fb, "--chance")["results"][0]["null_mean_exact"], abs=1e-12)


def test_compare_chance_other_metrics_warn_and_stay_empty(chance_files):
    fa, fb, *_ = chance_files
    result = run("compare", f"{fa}:x", f"{fb}:x", "-m", "cka", "-m", "procrustes", "-m", "cka:debiased=true", "--chance", "-f", "json")
    assert result.exit_code == 0, result.stderr
    recs = json.loads(result.stdout)["results"]
    assert recs[0]["p_moments"] is not None
    for r in recs[1:]:
        assert all(r[k] is None for k in CHANCE_KEYS)
    assert "procrustes: exact chance levels exist for cka and hsic only" in result.stderr
    assert "cka:debiased=true: no exact chance level for debiased estimators" in result.stderr
    fails("--chance is available for cka and hsic (biased estimators) only, not cca", "compare", fa, fb, "-m", "cca", "--chance")
    fails("cannot be combined", "compare", fa, fb, "--chance", "--stream")


def test_adjusted_metric_is_the_chance_corrected_value_and_gates_on_it(chance_files):
    fa, fb, *_ = chance_files
    plain = json_out("compare", fa, fb, "--chance")["results"]
    adj = json_out("compare", fa, fb, "-m", "cka:adjusted=true")["results"]
    for p, q in zip(plain, adj):
        assert q["value"] == pytest.approx(p["adjusted"], abs=1e-12)
        assert q["params"]["adjusted"] is True
    # raw CKA of the unrelated layer w is large, its adjusted value is near 0: the gate sees that
    assert plain[1]["value"] > 0.2 and abs(adj[1]["value"]) < 0.1
    assert run("compare", f"{fa}:w", f"{fb}:w", "-m", "cka", "--fail-below", "0.2").exit_code == 0
    assert run("compare", f"{fa}:w", f"{fb}:w", "-m", "cka:adjusted=true", "--fail-below", "0.2").exit_code == 1
    fails("adjusted=true and debiased=true cannot be combined", "compare", fa, fb, "-m", "cka:adjusted=true,debiased=true")
    # adjusted never streams (the streamed route computes raw CKA only)
    fails("cannot compute cka:adjusted=true", "compare", fa, fb, "-m", "cka:adjusted=true", "--stream")


def test_heatmap_chance_gives_the_e0_grid_and_marks_cells_not_above_chance(chance_files):
    fa, fb, a, b = chance_files
    doc = json_out("heatmap", fa, fb, "--chance")
    ch = doc["chance"]
    for i, ra in enumerate(("x", "w")):
        for j, cb in enumerate(("x", "w")):
            want = cka_permutation_moments(a[ra], b[cb])
            assert ch["null_mean_exact"][i][j] == pytest.approx(want.mean, rel=1e-12)
            assert ch["p_moments"][i][j] == pytest.approx(want.p_value, rel=1e-9)
            rec = doc["results"][2 * i + j]
            assert rec["null_mean_exact"] == ch["null_mean_exact"][i][j]
    assert ch["above_chance"][0][0] is True and ch["above_chance"][1][1] is False
    assert np.allclose(np.array(ch["p_moments_holm"]), holm(np.array(ch["p_moments"])), rtol=1e-12, atol=0)
    assert np.array_equal(np.array(ch["above_chance"]), holm(np.array(ch["p_moments"])) <= 0.05)
    text = run("heatmap", fa, fb, "--chance")
    assert text.exit_code == 0 and "~ = not above chance" in text.stdout
    assert "1/4 tested cells above chance" in text.stdout
    fails("--chance is available for cka and hsic (biased estimators) only, not procrustes", "heatmap", fa, fb, "-m", "procrustes", "--chance")
    # the library gives the same grid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = rs.heatmap(str(fa), str(fb), chance=True)
    assert np.array_equal(grid.chance_mean, np.array(ch["null_mean_exact"]))
    assert grid.above_chance.tolist() == ch["above_chance"]
    assert np.array_equal(grid.p_moments, np.array(ch["p_moments"]))
    assert rs.heatmap(str(fa), str(fb)).chance_mean is None


def test_heatmap_chance_self_comparison_mirrors_and_skips_the_diagonal(chance_files):
    fa, *_ = chance_files
    doc = json_out("heatmap", fa, "--chance")
    ch = doc["chance"]
    assert ch["above_chance"][0][0] is None and ch["above_chance"][1][1] is None
    assert ch["above_chance"][0][1] == ch["above_chance"][1][0]
    assert ch["null_mean_exact"][0][1] == pytest.approx(ch["null_mean_exact"][1][0], rel=1e-12)


def test_library_compare_chance_on_arrays():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 3))
    res = rs.compare(x, y, ["cka", "cka:kernel=rbf"], chance=True)
    d = res.to_dicts()
    assert d[0]["null_mean_exact"] == pytest.approx(cka_permutation_moments(x, y).mean, rel=1e-12)
    assert d[1]["null_mean_exact"] == pytest.approx(cka_permutation_moments(x, y, kernel="rbf").mean, rel=1e-12)
    assert "p_moments" not in rs.compare(x, y).to_dicts()[0]


def test_library_and_cli_give_the_same_chance_documents(chance_files):
    fa, fb, *_ = chance_files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = rs.compare(str(fa), str(fb), ["cka", "hsic"], chance=True, permutations=19).to_dict()
        grid = rs.heatmap(str(fa), str(fb), "cka:adjusted=true", chance=True).to_dict()
    assert lib == json_out("compare", fa, fb, "-m", "cka", "-m", "hsic", "--chance", "--permutations", "19")
    cli_grid = json_out("heatmap", fa, fb, "-m", "cka:adjusted=true", "--chance")
    assert grid == cli_grid
    # the adjusted metric's grid: values are the adjusted CKA, the chance grid is the raw CKA's
    assert np.allclose(np.array(cli_grid["matrix"]), np.array(cli_grid["chance"]["adjusted"]), atol=1e-12)
