"""`repsim compare` on real files with the RSM-based and statistics measures (dcor, rsm_diff, eos, gulp,
magnitude, concentricity, uniformity): values equal the library's, the permutation null runs, and
`repsim metrics` lists them."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from repsim_cli.cli import app
from repsim_cli.metrics import parse_metric

runner = CliRunner()

SPECS = [
    "dcor",
    "dcor:unbiased=true",
    "rsm_diff",
    "rsm_diff:rsm=linear,norm=spectral",
    "eos",
    "gulp:lambda=0.1",
    "magnitude",
    "concentricity",
    "uniformity:t=0.1",
]


def test_compare_values_match_the_library(pair_files):
    a, b = pair_files
    args = ["compare", f"{a}:layers/1", f"{b}:layers/1", "-f", "json"]
    for spec in SPECS:
        args += ["-m", spec]
    result = runner.invoke(app, [str(s) for s in args])
    assert result.exit_code == 0, result.stderr
    recs = json.loads(result.stdout)["results"]
    with h5py.File(a) as fa, h5py.File(b) as fb:
        x, y = np.asarray(fa["layers/1"]), np.asarray(fb["layers/1"])
    assert len(recs) == len(SPECS)
    for rec, spec in zip(recs, SPECS):
        assert rec["value"] == pytest.approx(parse_metric(spec).compute(x, y).value, rel=1e-12, abs=1e-15), spec


@pytest.mark.parametrize("spec", ["dcor", "rsm_diff:rsm=linear", "eos", "gulp", "uniformity"])
def test_compare_permutation_null(pair_files, spec):
    a, b = pair_files
    result = runner.invoke(app, ["compare", f"{a}:layers/3", f"{b}:layers/3", "-m", spec, "--permutations", "19", "--seed", "2", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    rec = json.loads(result.stdout)["results"][0]
    assert rec["permutations"] == 19
    if spec == "uniformity":  # a per-side statistic ignores which input is which: the null is degenerate
        assert rec["p_value"] == pytest.approx(1.0)
    else:  # B is a noisy rotation of A
        assert rec["p_value"] == pytest.approx(0.05)


def test_metrics_lists_them():
    result = runner.invoke(app, ["metrics", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    names = {m["name"]: m for m in json.loads(result.stdout)["metrics"]}
    for name in ("dcor", "rsm_diff", "eos", "gulp", "magnitude", "concentricity", "uniformity"):
        assert name in names and names[name]["formula"] and names[name]["reference"]
    assert names["rsm_diff"]["builds_n_by_n"] and not names["uniformity"]["builds_n_by_n"]
    assert not names["gulp"]["higher_is_similar"] and names["dcor"]["higher_is_similar"]


def test_n_by_n_measures_respect_max_gram_and_linear_rsm_does_not_need_it(pair_files):
    a, b = pair_files
    for spec in ("dcor", "rsm_diff", "rsm_diff:rsm=cosine"):
        result = runner.invoke(app, ["compare", f"{a}:layers/1", f"{b}:layers/1", "-m", spec, "--max-gram", "10"])
        assert result.exit_code != 0 and "--max-gram" in result.stderr, spec
    for spec in ("rsm_diff:rsm=linear", "uniformity", "eos", "gulp"):
        result = runner.invoke(app, ["compare", f"{a}:layers/1", f"{b}:layers/1", "-m", spec, "--max-gram", "10"])
        assert result.exit_code == 0, (spec, result.stderr)


def test_heatmap_of_a_distance_measure(pair_files):
    a, b = pair_files
    result = runner.invoke(app, ["heatmap", str(a), str(b), "-m", "gulp:lambda=0.1", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    matrix = np.array(json.loads(result.stdout)["matrix"], dtype=float)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        want = parse_metric("gulp:lambda=0.1").compute(np.asarray(fa["layers/2"]), np.asarray(fb["layers/3"])).value
    assert matrix.shape == (3, 3) and matrix[1, 2] == pytest.approx(want, rel=1e-12)


def test_library_compare_on_arrays():
    import repsim_cli as rs
    from repsim_cli.metrics import distance_correlation, gulp_distance

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 6))
    y = x @ rng.standard_normal((6, 5)) + rng.standard_normal((60, 5))
    recs = list(rs.compare(x, y, ["dcor", "gulp:lambda=0.1"], permutations=19, seed=1))
    assert recs[0].to_dict()["value"] == pytest.approx(distance_correlation(x, y), abs=1e-14)
    assert recs[1].to_dict()["value"] == pytest.approx(gulp_distance(x, y, 0.1), abs=1e-14)
    assert all(r.to_dict()["p_value"] == pytest.approx(0.05) for r in recs)
