"""The real `repsim heatmap` command on real files: outputs, contracts with compare, bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from repsim_cli.cli import app
from repsim_cli.render.terminal import grid_table, shorten, viridis_hex
from repsim_cli.render.images import pixel_size

from conftest import SAMPLE, write_h5

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["heatmap", *[str(a) for a in args]])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def bad(*args, match: str):
    result = run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert match in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.count("repsim: error:") == 1
    return result


# ------------------------------------------------------------------ outputs


def test_table_default_on_sample_seeds():
    out = ok(SAMPLE / "mlp_seed0.h5", SAMPLE / "mlp_seed1.h5").stdout
    lines = out.splitlines()
    assert lines[0].startswith("cka: ") and "mlp_seed1.h5" in out and "N=500, seed 0" in out
    assert "layers/1  0.9522*" in out  # value, best-column mark
    assert "3/3 rows (100%)" in out
    # the grid, legend and footer fit 80 columns; only a file path itself may be longer
    assert all(len(line) <= 80 for line in lines if str(SAMPLE) not in line)


def test_twelve_layers_fit_80_columns(tmp_path, rng):
    x = rng.standard_normal((30, 5))
    layers = {f"model/blocks/{i:02d}": x + 0.3 * i * rng.standard_normal(x.shape) for i in range(12)}
    a = write_h5(tmp_path / "a.h5", layers)
    b = write_h5(tmp_path / "b.h5", {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in layers.items()})
    for args in ((a, b, "--permutations", 3), (a,)):
        lines = ok(*args).stdout.splitlines()
        top = next(i for i, line in enumerate(lines) if line.startswith("rows = A")) + 1  # after the title lines
        grid = lines[top : top + 13]  # header + 12 rows
        assert lines[top + 13].startswith("scale")
        assert max(len(l) for l in lines[top:]) <= 80  # (the title lines hold the file paths)
        assert grid[1].startswith("…") and grid[1].split()[0].endswith("ocks/00")
        assert grid[12].split()[0].endswith("ocks/11")
        assert "…" in grid[0] and grid[0].rstrip().endswith("/11")  # distinguishing end kept


def test_json_contract_and_concatenation_with_compare(pair_files):
    a, b = pair_files
    doc = json.loads(ok(a, b, "-f", "json").stdout)
    assert doc["command"] == "heatmap" and doc["seed"] == 0 and doc["metric"] == "cka"
    assert doc["rows"] == [f"{a}:layers/{i}" for i in (1, 2, 3)] and doc["cols"] == [f"{b}:layers/{i}" for i in (1, 2, 3)]
    m = np.array(doc["matrix"])
    assert m.shape == (3, 3)
    assert [r["value"] for r in doc["results"]] == list(m.ravel())
    assert doc["sanity_check"]["rows"] == 3 and doc["sanity_check"]["fraction"] == doc["sanity_check"]["correct"] / 3
    # same-named pairs (the diagonal) are exactly what `repsim compare` reports
    cmp = json.loads(runner.invoke(app, ["compare", str(a), str(b), "-f", "json"]).stdout)
    diag = [doc["results"][4 * i] for i in range(3)]
    assert diag == cmp["results"]


def test_csv_has_compare_header_one_row_per_cell(pair_files):
    a, b = pair_files
    text = ok(a, b, "-f", "csv").stdout
    cmp = runner.invoke(app, ["compare", str(a), str(b), "-f", "csv"]).stdout
    assert text.splitlines()[0] == cmp.splitlines()[0]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 9 and rows[1]["a"].endswith("layers/1") and rows[1]["b"].endswith("layers/2")
    tsv = ok(a, b, "-f", "tsv").stdout
    assert tsv.splitlines()[0].split("\t")[:3] == ["a", "b", "metric"]


def test_self_comparison(pair_files):
    a, _ = pair_files
    doc = json.loads(ok(a, "-f", "json").stdout)
    m = np.array(doc["matrix"])
    assert doc["self_comparison"] is True and doc["b"] is None and "sanity_check" not in doc
    np.testing.assert_array_equal(np.diag(m), 1.0)
    np.testing.assert_array_equal(m, m.T)
    assert "diagonal = 1" in ok(a).stdout


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_image_outputs_and_stdout(pair_files, tmp_path):
    a, b = pair_files
    png = tmp_path / "g.png"
    result = ok(a, b, "-o", png, "--annotate")
    assert _png_size(png.read_bytes()) == pixel_size(3, 3)
    assert "sanity check" in result.stdout and f"wrote {png}" in result.stderr  # the grid still prints
    svg, pdf = tmp_path / "g.svg", tmp_path / "g.pdf"
    ok(a, b, "-o", svg, "-f", "json")
    assert b"<svg" in svg.read_bytes()[:2000]
    ok(a, "-o", pdf, "--vmin", "0", "--vmax", "1")
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert not list(tmp_path.glob(".repsim-*"))  # no temporary files left


def test_data_outputs(pair_files, tmp_path):
    a, b = pair_files
    js = tmp_path / "g.json"
    result = ok(a, b, "-o", js)
    assert result.stdout == "" and json.loads(js.read_text())["command"] == "heatmap"
    png, csv_path = tmp_path / "g.png", tmp_path / "g.csv"
    ok(a, b, "-o", png, "--data-out", csv_path)
    assert png.exists() and len(csv_path.read_text().splitlines()) == 10


def test_permutations_json(pair_files):
    a, b = pair_files
    args = (a, b, "--permutations", 49, "--seed", 3, "-f", "json")
    doc = json.loads(ok(*args).stdout)
    p, holm = np.array(doc["p_values"], dtype=float), np.array(doc["p_holm"], dtype=float)
    assert np.all((p >= 1 / 50) & (p <= 1)) and np.all(holm >= p)
    assert doc["permutations"] == 49 and doc["alpha"] == 0.05
    assert all({"p_value", "p_holm", "significant", "null_mean", "z"} <= set(r) for r in doc["results"])
    assert json.loads(ok(*args).stdout) == doc  # same seed, same numbers
    table = ok(a, b, "--permutations", 9).stdout
    assert "not significant" in table and "·" in table


# ------------------------------------------------------------------ bad input


def test_different_n_exit_2(tmp_path, rng):
    a = write_h5(tmp_path / "a.h5", {"x": rng.standard_normal((10, 3))})
    b = write_h5(tmp_path / "b.h5", {"x": rng.standard_normal((12, 3))})
    bad(a, b, match="different numbers of inputs")


def test_empty_selector_exit_2(pair_files):
    a, b = pair_files
    bad(f"{a}:nothing*", b, match="matches no layer")
    bad(a, f"{b}:", match="empty layer selector")


def test_metric_refused_by_max_gram_and_memory(pair_files):
    a, b = pair_files
    bad(a, b, "-m", "rsa", "--max-gram", 10, match="--max-gram")
    bad(a, b, "--max-memory", 1e-9, match="--max-memory")


def test_bad_options_exit_2(pair_files, tmp_path):
    a, b = pair_files
    bad(a, b, "-o", a, match="refusing to overwrite")
    bad(a, b, "-o", tmp_path / "g.png", "--data-out", b, match="refusing to overwrite")
    bad(a, b, "-o", tmp_path / "g.xyz", match="unknown extension")
    bad(a, b, "--data-out", tmp_path / "g.png", match="--data-out")
    bad(a, b, "-o", tmp_path / "nope" / "g.png", match="does not exist")
    bad(a, b, "--permutations", -1, match="--permutations")
    bad(a, b, "--alpha", 1.5, match="--alpha")
    bad(a, b, "--vmin", 1, "--vmax", 0, match="--vmin")
    bad(a, b, "-m", "nosuch", match="unknown metric")
    bad(tmp_path / "missing.h5", match="no such file")
    assert set(tmp_path.iterdir()) == {a, b}  # nothing written


def test_help_has_examples():
    result = run("--help")
    assert result.exit_code == 0 and "Examples" in result.stdout and "--data-out" in result.stdout


# ------------------------------------------------------------------ helpers


def test_shorten_keeps_the_end():
    assert shorten("layers/05", 8) == "…yers/05"
    assert shorten("layers/05", 9) == "layers/05"
    assert viridis_hex(0) == "#440154" and viridis_hex(1) == "#fde725" and viridis_hex(2) == "#fde725"


def test_output_files_get_the_usual_permissions(pair_files, tmp_path):
    a, b = pair_files
    old = os.umask(0o022)
    try:
        ok(a, b, "-o", tmp_path / "g.png", "--data-out", tmp_path / "g.json")
    finally:
        os.umask(old)
    assert (tmp_path / "g.png").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert (tmp_path / "g.json").stat().st_mode & 0o777 == 0o644
