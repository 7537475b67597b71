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
