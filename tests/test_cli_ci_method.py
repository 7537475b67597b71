"""``repsim compare --ci-method percentile|bca|jackknife`` and ``rs.compare(..., ci_method=...)``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import repsim_cli as rs
from repsim_cli.cli import app
from repsim_cli.metrics import parse_metric
from repsim_cli.stats import bootstrap_interval


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def records(*args):
    result = run(*args, "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["results"]


def test_default_method_per_metric_is_recorded(pair_files):
    a, b = pair_files
    recs = records("compare", f"{a}:layers/1", f"{b}:layers/1", "-m", "cka", "-m", "procrustes", "-m", "rsa",
                   "--bootstrap", "20", "--seed", "3")
    methods = {r["metric"]: r["ci_method"] for r in recs}
    assert methods == {"cka": "jackknife", "procrustes": "jackknife", "rsa": "percentile"}
    for r in recs:
        assert r["ci_low"] <= r["ci_high"]
        if r["ci_method"] == "jackknife":  # an interval around the estimate, no resample drawn
            assert r["ci_low"] < r["value"] < r["ci_high"] and r["bootstrap"] == 0 and r["jackknife_se"] > 0
        else:
            assert r["bootstrap"] == 20


@pytest.mark.parametrize("method", ["percentile", "bca", "jackknife"])
def test_each_method_matches_the_library(pair_files, method):
    a, b = pair_files
    (rec,) = records("compare", f"{a}:layers/2", f"{b}:layers/2", "-m", "cka", "--bootstrap", "30",
                     "--ci", "0.9", "--ci-method", method, "--seed", "5")
    assert rec["ci_method"] == method
    lib = rs.compare(str(a) + ":layers/2", str(b) + ":layers/2", "cka", bootstrap=30, ci=0.9, ci_method=method, seed=5)
    assert (lib[0].ci_low, lib[0].ci_high) == pytest.approx((rec["ci_low"], rec["ci_high"]), rel=1e-12)
    assert lib[0].to_dict()["ci_method"] == method


def test_table_says_which_method_made_the_interval(pair_files):
    a, b = pair_files
    result = run("compare", f"{a}:layers/1", f"{b}:layers/1", "-m", "cka", "-m", "rsa", "--bootstrap", "10")
    assert result.exit_code == 0, result.output
    assert "ci_method" in result.stdout and "jackknife" in result.stdout and "percentile" in result.stdout


def test_jackknife_needs_no_bootstrap_but_resampling_methods_do(pair_files):
    a, b = pair_files
    (rec,) = records("compare", f"{a}:layers/1", f"{b}:layers/1", "--ci-method", "jackknife")
    assert rec["ci_method"] == "jackknife" and rec["ci_low"] < rec["value"] < rec["ci_high"]
    bad = run("compare", f"{a}:layers/1", f"{b}:layers/1", "--ci-method", "bca")
    assert bad.exit_code == 2 and "--ci-method=bca" in bad.output and "use --bootstrap 2 or more" in bad.output
    bad = run("compare", f"{a}:layers/1", f"{b}:layers/1", "--ci-method", "normal", "--bootstrap", "10")
    assert bad.exit_code == 2 and "--ci-method must be one of percentile|bca|jackknife" in bad.output


def test_library_on_arrays():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((500, 20)), rng.standard_normal((500, 20))
    res = rs.compare(x, y, "cka", bootstrap=50)
    rec = res[0].to_dict()
    assert rec["ci_method"] == "jackknife" and rec["ci_low"] < rec["value"] < rec["ci_high"]
    with pytest.warns(Warning, match="outside its"):
        pct = rs.compare(x, y, "cka", bootstrap=50, ci_method="percentile")
    assert pct[0].ci_low > pct[0].value  # the example: the percentile interval lies above CKA
    direct = bootstrap_interval(parse_metric("cka"), x, y, 50, ci_method="jackknife")
    assert (direct.ci_low, direct.ci_high) == pytest.approx((rec["ci_low"], rec["ci_high"]), rel=1e-12)
