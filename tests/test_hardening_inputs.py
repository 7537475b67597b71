"""Issue 14 (inputs): HDF5 links and virtual datasets, hangs and resource bombs, catch-alls,
outputs checked before work, CI gates, and the smaller items. Every test fails on the code
before the fix (a wrong number with exit 0, a hang, an "unexpected ..." line, or a missing option).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import SAMPLE, write_h5
from typer.testing import CliRunner

from repsim_cli import api, gates
from repsim_cli.cli import app
from repsim_cli.errors import RepsimError
from repsim_cli.io.arrays import list_arrays
from repsim_cli.io.layers import open_activation_file, select_layers
from repsim_cli.render.encoding import fit_encoding
from repsim_cli.render.images import MAX_IMAGE_LAYERS, check_image_grid, label_style, pixel_size

runner = CliRunner()


def run(*args: object, **kwargs: object):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    err = result.stderr
    assert "unexpected" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def x(rng) -> np.ndarray:
    return rng.standard_normal((40, 6))


# ------------------------------------------------------------------ 1. HDF5 links and virtual datasets


def _vds(tmp_path: Path, x: np.ndarray) -> Path:
    for name, part in (("src1.h5", x[:20]), ("src2.h5", x[20:])):
        with h5py.File(tmp_path / name, "w") as f:
            f["d"] = part
    layout = h5py.VirtualLayout(shape=x.shape, dtype="f8")
    layout[:20] = h5py.VirtualSource("src1.h5", "d", shape=(20, x.shape[1]))  # relative: next to the file
    layout[20:] = h5py.VirtualSource("src2.h5", "d", shape=(20, x.shape[1]))
    with h5py.File(tmp_path / "vds.h5", "w") as f:
        f.create_virtual_dataset("layer", layout, fillvalue=0)
    write_h5(tmp_path / "plain.h5", {"layer": x})
    return tmp_path / "vds.h5"


def test_virtual_dataset_with_all_sources_reads_the_data(tmp_path, x, monkeypatch):
    vds = _vds(tmp_path, x)
    monkeypatch.chdir("/")  # sources resolve against the file's folder, not the working directory
    assert api.compare(vds, tmp_path / "plain.h5").value == pytest.approx(1.0)


@pytest.mark.parametrize("missing", [["src2.h5"], ["src1.h5", "src2.h5"]])
def test_virtual_dataset_with_missing_source_is_an_error_naming_it(tmp_path, x, missing):
    vds = _vds(tmp_path, x)
    for name in missing:
        os.remove(tmp_path / name)
    # before: read as fill values, CKA 0.5 with exit 0
    err = one_line_error(run("compare", vds, tmp_path / "plain.h5"), "virtual dataset", f"'{missing[0]}'", "missing")
    assert "rows" in err
    one_line_error(run("inspect", vds), "missing")


def test_virtual_dataset_whose_source_lacks_the_dataset(tmp_path, x):
    vds = _vds(tmp_path, x)
    write_h5(tmp_path / "src2.h5", {"other": x[20:]})
    one_line_error(run("compare", vds, tmp_path / "plain.h5"), "src2.h5", "no such dataset")


def test_every_hard_linked_name_of_a_dataset_works(tmp_path, x):
    path = tmp_path / "hl.h5"
    with h5py.File(path, "w") as f:
        f["a"] = x
        f["b"] = f["a"]  # a second hard link to the same dataset
        f.attrs["layer_order"] = ["b"]
    names = [i.name for i in list_arrays(str(path))[0]]
    assert names == ["a", "b"]
    af = open_activation_file(str(path))  # before: "layer_order names 'b', which is not a dataset"
    assert [r.name for r in af.layers] == ["b"]
    assert select_layers(f"{path}:a")[0].name == "a"
    assert api.compare(f"{path}:b", f"{path}:a").value == pytest.approx(1.0)


def test_hard_link_alias_is_not_a_second_layer_unless_named(tmp_path, x):
    path = tmp_path / "hl.h5"
    with h5py.File(path, "w") as f:
        f["a"] = x
        f["grp/b"] = f["a"]
    af = open_activation_file(str(path))
    assert [r.name for r in af.layers] == ["a"]
    alias = next(d for d in af.datasets if d.name == "grp/b")
    assert not alias.is_layer and "another name" in alias.reason and "'a'" in alias.reason
    assert select_layers(f"{path}:grp/b")[0].name == "grp/b"


# ------------------------------------------------------------------ 2. hangs and resource bombs


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    one_line_error(run("inspect", fifo), "FIFO", "not a regular file")
    one_line_error(run("compare", fifo, fifo), "FIFO")


def test_character_device_is_refused(tmp_path):
    link = tmp_path / "zero.npy"
    link.symlink_to("/dev/zero")
    one_line_error(run("inspect", link), "character device")


def test_samples_file_that_is_a_fifo_is_refused(tmp_path, x):
    write_h5(tmp_path / "a.h5", {"h": x})
    os.mkfifo(tmp_path / "rows.npy")
    one_line_error(run("compare", tmp_path / "a.h5", tmp_path / "a.h5", "--samples", tmp_path / "rows.npy"), "FIFO")


def test_unallocated_hdf5_dataset_is_detected(tmp_path):
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as f:  # 1.4 kB on disk, 80 GB declared, nothing stored
        f.create_dataset("layer", shape=(10**6, 10**4), dtype="f8", chunks=(1000, 1000))
    assert path.stat().st_size < 10_000
    one_line_error(run("inspect", path), "no stored data", "'layer'")
    one_line_error(run("compare", path, path), "no stored data")


def test_partly_written_uncompressed_dataset_is_detected(tmp_path, x):
    path = tmp_path / "part.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("layer", shape=(4000, 6), dtype="f8", chunks=(100, 6))
        d[:100] = np.tile(x, (3, 1))[:100]
    one_line_error(run("compare", path, path), "stores only")


def test_fully_written_and_compressed_datasets_are_fine(tmp_path, x):
    path = tmp_path / "ok.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("plain", data=x)
        f.create_dataset("zipped", data=np.zeros((400, 6)), compression="gzip", chunks=(100, 6))
    af = open_activation_file(str(path))
    assert all(not d.problem for d in af.datasets)


def _npz_with_header_only(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npz whose member declares ``shape`` float64 but stores (almost) nothing: a zip bomb's header."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("layer.npy", buf.getvalue() + bytes(4096))
    return path


def test_npz_decompression_bomb_is_refused_by_inspect_and_compare(tmp_path):
    path = _npz_with_header_only(tmp_path / "bomb.npz", (20000, 10000))
    one_line_error(run("inspect", path), "inflates", "refused", ".npy")
    one_line_error(run("compare", path, path), "inflates")
    assert run("inspect", path, "--no-constant").exit_code == 0  # metadata only: nothing inflated


def test_npz_member_above_the_memory_budget_gets_advice_that_fits(tmp_path, rng, monkeypatch):
    np.savez_compressed(tmp_path / "x.npz", layer=rng.standard_normal((400, 300)))
    monkeypatch.setenv("REPSIM_MAX_MEMORY", str(0.5 / 1024))  # 0.5 MiB; the member is 0.9 MiB
    err = one_line_error(run("inspect", tmp_path / "x.npz"), "memory budget", "--no-constant")
    assert "--stream" not in err
    err = one_line_error(run("compare", tmp_path / "x.npz", tmp_path / "x.npz"), "memory budget", ".npy")
    assert "--no-constant" not in err


def test_layer_larger_than_the_budget_is_refused_before_loading(tmp_path, rng, monkeypatch):
    write_h5(tmp_path / "a.h5", {"h": rng.standard_normal((500, 40))})
    write_h5(tmp_path / "c.h5", {"h": rng.standard_normal((500, 4, 10))})
    monkeypatch.setenv("REPSIM_MAX_MEMORY", str(0.1 / 1024))  # 100 kiB; a layer needs 312 kiB
    a, c = tmp_path / "a.h5", tmp_path / "c.h5"
    err = one_line_error(run("compare", a, a), "memory budget", "--max-samples", "--stream")
    assert "--pool" not in err  # 2-D layers: pooling would not help
    err = one_line_error(run("compare", c, c, "-m", "procrustes"), "--max-samples", "--pool mean")
    assert "--stream" not in err  # procrustes does not stream
    err = one_line_error(run("heatmap", a), "--max-samples")
    assert "--stream" not in err
    assert run("compare", a, a, "--max-samples", "100").exit_code == 0  # the advice works


def _many_layers(tmp_path: Path, rng, count: int) -> Path:
    path = tmp_path / "many.h5"
    with h5py.File(path, "w") as f:
        for i in range(count):
            f[f"l{i}"] = rng.standard_normal((12, 2))
    return path


def test_heatmap_image_of_too_many_layers_is_refused_before_computing(tmp_path, rng, monkeypatch):
    path = _many_layers(tmp_path, rng, MAX_IMAGE_LAYERS + 1)

    def boom(*args, **kwargs):
        raise AssertionError("computed before refusing the image")

    monkeypatch.setattr("repsim_cli.engines.grid.compute_grid", boom)
    one_line_error(run("heatmap", path, "-o", tmp_path / "x.png"), "at most", "layers per side", "FILE:GLOB")
    assert not (tmp_path / "x.png").exists()


def test_image_size_is_bounded_for_any_grid():
    for n in (1, 3, 24, 100, MAX_IMAGE_LAYERS):
        w, h = pixel_size(n, n, row_labels=["r" * 48], col_labels=["c" * 48])
        assert w * h <= 60_000_000
        check_image_grid(n, n)
    with pytest.raises(RepsimError, match="layers per side"):
        check_image_grid(MAX_IMAGE_LAYERS + 1, 2)


@pytest.mark.filterwarnings("ignore::repsim_cli.errors.RepsimWarning")
def test_heatmap_permutations_never_build_the_p_by_n_index_array(pair_files, monkeypatch):
    from repsim_cli import stats

    a, b = pair_files
    before = api.heatmap(a, b, permutations=19, seed=3).p_values

    def boom(*args, **kwargs):
        raise AssertionError("P x N permutation array built")

    monkeypatch.setattr(stats, "permutation_indices", boom)
    monkeypatch.setattr(stats.nulls, "permutation_indices", boom)
    after = api.heatmap(a, b, permutations=19, seed=3).p_values
    np.testing.assert_array_equal(before, after)


def test_iter_permutations_are_the_rows_of_permutation_indices():
    from repsim_cli.stats import nulls

    np.testing.assert_array_equal(np.array(list(nulls.iter_permutations(30, 6, 11))), nulls.permutation_indices(30, 6, 11))


# ------------------------------------------------------------------ 3. catch-alls become messages


@pytest.mark.parametrize("query", ["99999999999999999999", "-99999999999999999999", "18446744073709551615"])
def test_query_beyond_int64_is_out_of_range(query):
    one_line_error(run("inputsim", SAMPLE / "grads.h5", f"--query={query}"), "out of range", query.lstrip("-"))


@pytest.mark.parametrize("sigma", ["1e-300", "1e-10", "1e300"])
def test_rbf_sigma_extremes_are_explained(x, sigma):
    with pytest.raises(RepsimError, match="sigma"):
        api.compare(x, x + 0.1, f"cka:kernel=rbf,sigma={sigma}")


def test_rbf_sigma_extreme_from_the_cli_names_the_layer(tmp_path, x):
    write_h5(tmp_path / "a.h5", {"h": x})
    one_line_error(run("compare", tmp_path / "a.h5", tmp_path / "a.h5", "-m", "cka:kernel=rbf,sigma=1e-300"), "a.h5:h", "sigma")


def test_tables_print_on_an_ascii_terminal(pair_files):
    a, b = pair_files
    ascii_runner = CliRunner(charset="ascii")
    for args in (("compare", a, b), ("heatmap", a, b), ("inspect", a)):
        result = ascii_runner.invoke(app, [str(v) for v in args])
        assert result.exit_code == 0, result.stderr
        assert "layers/1" in result.stdout
        result.stdout.encode("ascii")  # nothing the terminal cannot show


def test_fit_encoding_keeps_utf8_and_replaces_for_ascii():
    text = "┏━┓ █ … é"
    assert fit_encoding(text, "utf-8") == text
    assert fit_encoding(text, "ascii") == "+-+ # ... ?"


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_bytes(b""), "cannot read"),
    (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00"), "cannot read"),
])
def test_broken_npy_files(tmp_path, make, needle):
    path = tmp_path / "x.npy"
    make(path)
    one_line_error(run("inspect", path), needle)


def test_odd_files_end_in_one_line(tmp_path, rng):
    (tmp_path / "dir.h5").mkdir()
    one_line_error(run("inspect", tmp_path / "dir.h5"), "is a directory")
    (tmp_path / "empty.h5").write_bytes(b"")
    one_line_error(run("inspect", tmp_path / "empty.h5"), "cannot read as HDF5")
    write_h5(tmp_path / "full.h5", {"h": rng.standard_normal((50, 5))})
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    one_line_error(run("compare", tmp_path / "trunc.h5", tmp_path / "full.h5"), "trunc.h5")
    np.save(tmp_path / "rows0.npy", np.zeros((0, 5)))
    one_line_error(run("compare", tmp_path / "rows0.npy", tmp_path / "rows0.npy"), "N=0")
    np.save(tmp_path / "f0.npy", np.zeros((10, 0)))
    one_line_error(run("compare", tmp_path / "f0.npy", tmp_path / "f0.npy"), "zero features")
    np.save(tmp_path / "c.npy", rng.standard_normal((10, 3)) + 1j)
    one_line_error(run("compare", tmp_path / "c.npy", tmp_path / "c.npy"), "complex128")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_permission_denied_is_one_line(tmp_path, x):
    path = write_h5(tmp_path / "a.h5", {"h": x})
    path.chmod(0)
    one_line_error(run("inspect", path), "permission denied")


@pytest.mark.parametrize("dtype", ["bool", "int8", "float16"])
def test_small_dtypes_compare(tmp_path, rng, dtype):
    data = rng.standard_normal((50, 4)) * 10
    np.save(tmp_path / "x.npy", (data > 0) if dtype == "bool" else data.astype(dtype))
    np.save(tmp_path / "y.npy", data)
    result = run("compare", tmp_path / "x.npy", tmp_path / "y.npy", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert math.isfinite(json.loads(result.stdout)["results"][0]["value"])


# ------------------------------------------------------------------ 4. outputs checked before any work


@pytest.mark.parametrize("command", ["compare", "heatmap", "test", "inputsim", "inspect"])
def test_bad_output_path_fails_before_any_computation(command, pair_files, tmp_path, monkeypatch):
    a, b = pair_files

    def boom(*args, **kwargs):
        raise AssertionError("computed before checking -o")

    for name in ("compare", "heatmap", "test", "inputsim"):
        monkeypatch.setattr(api, name, boom)
    monkeypatch.setattr("repsim_cli.cli.inspect_cmd.describe_file", boom)
    bad = tmp_path / "no" / "such" / "dir" / "out.json"
    args = {
        "compare": ("compare", a, b),
        "heatmap": ("heatmap", a, b),
        "test": ("test", "--group", "A", a, b, "--group", "B", SAMPLE / "mlp_seed0.h5", SAMPLE / "mlp_seed1.h5"),
        "inputsim": ("inputsim", SAMPLE / "grads.h5"),
        "inspect": ("inspect", a),
    }[command]
    one_line_error(run(*args, "-o", bad), "does not exist")
    one_line_error(run(*args, "--format", "xml"), "xml")


# ------------------------------------------------------------------ 5. CI gates


def test_gate_parsing():
    g = gates.parse_gate("procrustes:stat=distance=0.3", gates.ABOVE)
    assert g.metric.name == "procrustes" and g.given == ("stat",) and g.threshold == 0.3
    assert g.applies_to("procrustes", {"stat": "distance", "align": "rotation"})
    assert not g.applies_to("procrustes", {"stat": "similarity", "align": "rotation"})
    bare = gates.parse_gate("0.5", gates.BELOW)
    assert bare.metric is None and bare.applies_to("anything")
    for bad in ("nan", "cka=nan", "cka=x", "=0.3"):
        with pytest.raises(RepsimError):
            gates.parse_gate(bad, gates.BELOW)


def test_a_gate_never_passes_on_a_non_finite_value():
    records = [{"a": "A", "b": "B", "metric": "cka", "params": {}, "value": v} for v in (float("nan"), float("inf"), None)]
    assert len(gates.crossed(gates.parse_gates("0.0"), records)) == 3
    assert len(gates.crossed(gates.parse_gates(above=["cka=1e9"]), records)) == 3
    assert "not finite" in gates.crossed(gates.parse_gates("0.0"), records)[0]


def test_per_metric_gates_from_the_cli(pair_files):
    a, b = pair_files
    both = ("-m", "cka", "-m", "procrustes:stat=distance")
    ok = run("compare", a, b, *both, "--fail-below", "cka=0.0", "--fail-above", "procrustes:stat=distance=10")
    assert ok.exit_code == 0, ok.stderr
    doc = json.loads(run("compare", a, b, *both, "-f", "json").stdout)
    worst = max(r["value"] for r in doc["results"] if r["metric"] == "procrustes")
    low = run("compare", a, b, *both, "--fail-above", f"procrustes:stat=distance={worst - 1e-9}", "--fail-below", "cka=0")
    assert low.exit_code == 1 and "threshold crossed" in low.stderr and "procrustes" in low.stderr
    assert "cka=" not in low.stderr.split("threshold crossed", 1)[1].split("vs", 1)[0]
    rep = run("compare", a, b, *both, "--fail-below", "cka=0.99999", "--fail-below", "cka=0")
    assert rep.exit_code == 1  # repeatable: the stricter gate fails


def test_bare_fail_below_keeps_its_meaning_and_warns_on_distances(pair_files):
    a, b = pair_files
    result = run("compare", a, b, "-m", "cka", "-m", "procrustes:stat=distance", "--fail-below", "0")
    assert result.exit_code == 0
    assert "warning" in result.stderr and "distance" in result.stderr and "--fail-below cka=0" in result.stderr


def test_gate_usage_errors(pair_files):
    a, b = pair_files
    one_line_error(run("compare", a, b, "--fail-below", "nan"), "NaN")
    one_line_error(run("compare", a, b, "--fail-above", "rsa=0.3"), "no requested metric")


def test_heatmap_fail_sanity_below(tmp_path, rng):
    x0, x1 = rng.standard_normal((60, 5)), rng.standard_normal((60, 5))
    write_h5(tmp_path / "a.h5", {"l0": x0, "l1": x1}, ["l0", "l1"])
    write_h5(tmp_path / "b.h5", {"l0": x1 + 0.01, "l1": x0 + 0.01}, ["l0", "l1"])  # swapped: 0/2 rows correct
    write_h5(tmp_path / "c.h5", {"l0": x0 + 0.01, "l1": x1 + 0.01}, ["l0", "l1"])
    assert run("heatmap", tmp_path / "a.h5", tmp_path / "c.h5", "--fail-sanity-below", "1").exit_code == 0
    bad = run("heatmap", tmp_path / "a.h5", tmp_path / "b.h5", "--fail-sanity-below", "0.5")
    assert bad.exit_code == 1 and "sanity check 0/2" in bad.stderr and "l0" in bad.stdout
    one_line_error(run("heatmap", tmp_path / "a.h5", "--fail-sanity-below", "1.5"), "[0, 1]")


def test_test_fail_p_gates():
    groups = ("--group", "A", SAMPLE / "mlp_seed0.h5", SAMPLE / "mlp_seed1.h5", SAMPLE / "mlp_seed2.h5",
              "--group", "B", SAMPLE / "wide_seed0.h5", SAMPLE / "wide_seed1.h5")
    doc = json.loads(run("test", *groups, "-f", "json").stdout)
    p = doc["combined"]["p_value"] if doc.get("combined") else doc["results"][0]["p_value"]
    assert run("test", *groups, "--fail-p-above", str(p)).exit_code == 0
    above = run("test", *groups, "--fail-p-above", str(p / 2))
    assert above.exit_code == 1 and "fail-p-above" in above.stderr
    assert run("test", *groups, "--fail-p-below", str(p / 2)).exit_code == 0
    assert run("test", *groups, "--fail-p-below", "1").exit_code == 1
    one_line_error(run("test", *groups, "--fail-p-below", "2"), "[0, 1]")
    assert gates.p_crossed(None, below=0.05) and gates.p_crossed(float("nan"), above=0.05)


# ------------------------------------------------------------------ 6. smaller


def test_column_labels_scale_with_the_grid():
    assert label_style(3, ["a", "b", "c"]) == (10.0, 0)
    size, rot = label_style(150, ["layer"] * 150)
    assert rot == 90 and size < 10
    assert label_style(5, ["encoder.block.3.attention.output"] * 5)[1] == 90
    short = pixel_size(6, 6, row_labels=["l"] * 6, col_labels=["l"] * 6)
    long = pixel_size(6, 6, row_labels=["r" * 40] * 6, col_labels=["c" * 40] * 6)
    assert long[0] > short[0] and long[1] > short[1]  # room for long labels


def test_heatmap_image_with_long_labels_renders(tmp_path, rng):
    names = [f"model.encoder.layers.{i}.self_attention.output.dense" for i in range(3)]
    write_h5(tmp_path / "a.h5", {n: rng.standard_normal((30, 4)) for n in names}, names)
    result = run("heatmap", tmp_path / "a.h5", "-o", tmp_path / "x.png")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


def test_inspect_shows_layer_names_and_honours_the_selector():
    result = run("inspect", f"{SAMPLE / 'mlp_seed0.h5'}:layers/3", "--no-constant")
    assert result.exit_code == 0
    assert "layers/3" in result.stdout and "layers/1" not in result.stdout.split("attributes")[0]
    assert "#1" not in result.stdout and "yes" in result.stdout


@pytest.mark.parametrize("command", ["heatmap", "test"])
def test_two_metrics_for_a_one_metric_command_is_a_usage_error(command):
    args = [SAMPLE / "mlp_seed0.h5"] if command == "heatmap" else [
        "--group", "A", SAMPLE / "mlp_seed0.h5", SAMPLE / "mlp_seed1.h5", "--group", "B", SAMPLE / "wide_seed0.h5", SAMPLE / "wide_seed1.h5"]
    one_line_error(run(command, *args, "-m", "cka", "-m", "procrustes"), "one --metric", "cka, procrustes")


@pytest.mark.parametrize("args, flag", [
    (("heatmap", SAMPLE / "mlp_seed0.h5", "--vmin", "nan"), "--vmin"),
    (("heatmap", SAMPLE / "mlp_seed0.h5", "--vmax", "nan"), "--vmax"),
    (("heatmap", SAMPLE / "mlp_seed0.h5", "--alpha", "nan"), "--alpha"),
    (("heatmap", SAMPLE / "mlp_seed0.h5", "--max-memory", "nan"), "--max-memory"),
    (("compare", SAMPLE / "mlp_seed0.h5", SAMPLE / "mlp_seed1.h5", "--ci", "nan"), "--ci"),
    (("inputsim", SAMPLE / "grads.h5", "--threshold", "nan"), "--threshold"),
    (("inputsim", SAMPLE / "grads.h5", "--rcond", "nan"), "--rcond"),
])
def test_nan_option_values_are_usage_errors(args, flag):
    one_line_error(run(*args), flag, "nan")


def test_rank0_and_nan_errors_name_file_layer_and_where(tmp_path, rng):
    x = rng.standard_normal((40, 5))
    bad = x.copy()
    bad[7, 3] = np.nan
    write_h5(tmp_path / "const.h5", {"h": np.ones((40, 5))})
    write_h5(tmp_path / "nan.h5", {"h": bad})
    write_h5(tmp_path / "ok.h5", {"h": x})
    c, n, ok = tmp_path / "const.h5", tmp_path / "nan.h5", tmp_path / "ok.h5"
    one_line_error(run("compare", c, ok, "--stream"), "const.h5:h", "ok.h5:h", "streamed", "rank 0")
    one_line_error(run("compare", n, ok, "--stream"), "nan.h5:h", "row 7", "column 3")
    one_line_error(run("heatmap", c, ok), "const.h5:h", "grid cell", "rank 0")
    one_line_error(run("heatmap", n, ok), "nan.h5:h", "NaN")


def test_alias_order_does_not_depend_on_traversal(tmp_path, x):
    path = tmp_path / "hl.h5"
    with h5py.File(path, "w") as f:
        f["z"] = x
        f["grp/a"] = f["z"]
    infos = {i.name: i for i in list_arrays(str(path))[0]}
    assert infos["grp/a"].alias_of is None and infos["z"].alias_of == "grp/a"


def test_heatmap_permutation_null_is_within_the_budget(pair_files):
    a, b = pair_files
    with pytest.raises(RepsimError, match="permutation null"):
        api.heatmap(a, b, permutations=10**6, max_memory=0.01)  # 9 cells x 1e6 x 8 bytes = 69 MiB > 10 MiB


def test_out_of_memory_advice_fits_the_command(monkeypatch, pair_files):
    def oom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(api, "inputsim", oom)
    monkeypatch.setattr(api, "compare", oom)
    err = one_line_error(run("inputsim", SAMPLE / "grads.h5"), "out of memory", "--block-size")
    assert "--pool" not in err and "--max-samples" not in err
    one_line_error(run("compare", *pair_files), "--max-samples", "--pool mean", "--stream")


def test_soft_and_external_links(tmp_path, x):
    write_h5(tmp_path / "src.h5", {"d": x})
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as f:
        f["real"] = x
        f["soft"] = h5py.SoftLink("/real")
        f["ext"] = h5py.ExternalLink("src.h5", "/d")
        f["gone"] = h5py.ExternalLink("missing.h5", "/d")
        f.attrs["layer_order"] = ["soft", "ext"]
    assert api.compare(f"{path}:soft", f"{path}:ext").value == pytest.approx(1.0)
    one_line_error(run("compare", f"{path}:gone", f"{path}:real"), "external link", "missing.h5")
    with h5py.File(path, "a") as f:
        f.attrs["layer_order"] = ["gone"]
    one_line_error(run("inspect", path), "external link", "missing.h5")
