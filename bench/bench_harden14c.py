"""Benchmark for issue 14's input checks: what listing and opening HDF5 files cost now.

Every dataset is now checked when a file is listed (every link name, virtual-dataset sources,
allocated storage) and when it is opened. Measured as ratios to floors timed in the same run:

1. ``list_arrays`` of an HDF5 file with K datasets against a bare ``visititems`` listing of
   names, shapes and dtypes (the work a lister cannot avoid). Target: well under 2x.
2. ``read_array`` of one N x F float32 layer against ``h5py`` reading it directly (the
   per-open check must vanish next to the read). Target: <= 1.1.
3. ``heatmap --permutations``: drawing P permutations one at a time (``iter_permutations``)
   against building the P x N array (``permutation_indices``): same time, memory O(N).

Run: python bench/bench_harden14c.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _floor import best_of, blas_info  # noqa: E402

from repsim_cli.io.arrays import list_arrays, read_array  # noqa: E402
from repsim_cli.stats import nulls  # noqa: E402


def bare_listing(path: str) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    out = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.append((name, obj.shape, obj.dtype)) if isinstance(obj, h5py.Dataset) else None)
    return out


def bare_read(path: str, name: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[name][()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    layers, n, f, perms = (20, 500, 64, 200) if args.quick else (300, 5000, 512, 2000)
    rng = np.random.default_rng(0)
    print(f"BLAS: {blas_info()}")
    with tempfile.TemporaryDirectory() as tmp:
        many = str(Path(tmp) / "many.h5")
        with h5py.File(many, "w") as h:
            for i in range(layers):
                h[f"blocks/{i}/out"] = rng.standard_normal((64, 8)).astype(np.float32)
        t_list, t_bare = best_of(lambda: list_arrays(many)), best_of(lambda: bare_listing(many))
        print(f"list_arrays, {layers} datasets: {t_list * 1e3:.1f} ms, floor (visititems) {t_bare * 1e3:.1f} ms, "
              f"ratio {t_list / t_bare:.2f}")
        big = str(Path(tmp) / "big.h5")
        with h5py.File(big, "w") as h:
            h["layer"] = rng.standard_normal((n, f)).astype(np.float32)
        t_read, t_floor = best_of(lambda: read_array(big, "hdf5", "layer")), best_of(lambda: bare_read(big, "layer"))
        print(f"read_array {n} x {f} float32: {t_read * 1e3:.1f} ms, floor (h5py read) {t_floor * 1e3:.1f} ms, "
              f"ratio {t_read / t_floor:.2f}")
    t_iter = best_of(lambda: [p.sum() for p in nulls.iter_permutations(n, perms, 0)])
    t_full = best_of(lambda: nulls.permutation_indices(n, perms, 0).sum(axis=1))
    print(f"{perms} permutations of N={n}: one at a time {t_iter * 1e3:.1f} ms, P x N array {t_full * 1e3:.1f} ms "
          f"({perms * n * 8 / 2**20:.1f} MiB), ratio {t_iter / t_full:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
