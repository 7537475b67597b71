"""Shared fixtures: small real activation files written in every supported format."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# CI gates a landing: there the property tests run a fixed (derandomized) sequence of examples, so a
# rare edge case found by chance cannot flip the gate; locally they keep exploring new examples.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"


def write_h5(path: Path, layers: dict[str, np.ndarray], layer_order: list[str] | None = None, **extra: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for name, arr in {**layers, **extra}.items():
            f.create_dataset(name, data=arr)
        if layer_order is not None:
            f.attrs["layer_order"] = np.array(layer_order, dtype=h5py.string_dtype())
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def pair_files(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """Two HDF5 files with three same-named layers (N=60), B a noisy rotation of A."""
    n = 60
    a_layers, b_layers = {}, {}
    for i, f in enumerate((8, 12, 5), start=1):
        x = rng.standard_normal((n, f)).astype(np.float32)
        q, _ = np.linalg.qr(rng.standard_normal((f, f)))
        a_layers[f"layers/{i}"] = x
        b_layers[f"layers/{i}"] = (x @ q + 0.5 * rng.standard_normal((n, f))).astype(np.float32)
    labels = rng.integers(0, 3, n)
    a = write_h5(tmp_path / "a.h5", a_layers, list(a_layers), labels=labels)
    b = write_h5(tmp_path / "b.h5", b_layers, list(b_layers), labels=labels)
    return a, b


def assert_cli_matches_library(pair_files: tuple[Path, Path], spec: str) -> None:
    """`repsim compare FILE:layers/2 ... -m SPEC --permutations 19` gives the library's value and a p-value."""
    import json

    from typer.testing import CliRunner

    from repsim_cli.cli import app
    from repsim_cli.metrics import parse_metric

    a, b = pair_files
    with h5py.File(a) as fa, h5py.File(b) as fb:
        want = parse_metric(spec).compute(fa["layers/2"][()], fb["layers/2"][()]).value
    args = ["compare", f"{a}:layers/2", f"{b}:layers/2", "-m", spec, "--permutations", "19", "--format", "json"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.stderr
    rec = json.loads(out.stdout)["results"][0]
    assert rec["value"] == pytest.approx(want, abs=1e-12)
    assert 0 < rec["p_value"] <= 1
