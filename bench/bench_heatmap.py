"""Benchmark of ``repsim heatmap``: a 12 x 12 grid of linear CKA, N = 5000, F = 768.

Twelve synthetic float32 layers (N x F) are generated in memory and handed to the grid engine
as loaded float64 layers (what ``engine.LayerCache`` gives it), so the engine is measured, not
the disk. Rows measured in the same run:

- ``heatmap A`` (self-comparison): 12 prepares + 66 cells (one triangle, diagonal = 1).
- ``heatmap A B`` (two files): 24 prepares + 144 cells.
- naive: every one of the 144 cells computed independently with compare's per-pair path
  (``metric.compute(x, y)``: both layers re-centered and their self terms recomputed per pair).
- end to end: ``compute_grid`` on the same layers written to a temporary HDF5 file (loading,
  float32 -> float64, validation included).

Floor: the float64 GEMM (F x N) @ (N x F) timed now, times the products the grid cannot avoid:
66 cross products + 12 self terms = 78 for the self-comparison, 144 + 24 = 168 for two files.
Targets: self-comparison >= 5x faster than naive, <= 2x the floor.

Run: ``python bench/bench_heatmap.py`` (about 2-3 minutes on 2 cores) or ``--quick`` (seconds).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _floor import best_of, blas_info, gemm_seconds, peak_rss_mib  # noqa: E402


def make_layers(n: int, f: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` float32 N x F layers, each a noisy mix of the previous one (a deep-net-like chain)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, f), dtype=np.float32)
    out = []
    for _ in range(count):
        mix = rng.standard_normal((f, f), dtype=np.float32) / np.float32(np.sqrt(f))
        x = np.maximum(x @ mix, 0) + 0.5 * rng.standard_normal((n, f), dtype=np.float32)
        out.append(x.astype(np.float32))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--f", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs for the self-comparison grid")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.f, args.layers, args.repeat = 600, 64, 4, 1

    from repsim_cli.engines.compare import LoadOptions
    from repsim_cli.engines.grid import compute_grid, grid_from_layers
    from repsim_cli.io.layers import Layer, LayerRef, select_layers
    from repsim_cli.metrics import parse_metric

    n, f, count = args.n, args.f, args.layers
    metric = parse_metric("cka")
    raw = make_layers(n, f, count)

    def as_layers(file: str, arrays: list[np.ndarray]) -> list[Layer]:
        return [
            Layer(LayerRef(file, f"layers/{i:02d}", a.shape, a.dtype, "hdf5"), a.astype(np.float64))
            for i, a in enumerate(arrays)
        ]

    rows = as_layers("a.h5", raw)
    cols = as_layers("b.h5", [a[::-1].copy()[::-1] for a in raw])  # same values, distinct buffers

    gemm = gemm_seconds(n, f, f, repeat=5)
    pairs_self = count * (count - 1) // 2
    floor_self = gemm * (pairs_self + count)
    floor_two = gemm * (count * count + 2 * count)

    grid_from_layers(rows[:2], None, metric)  # warm-up (lazy imports, BLAS threads)
    holder: dict[str, object] = {}
    t_self = best_of(lambda: holder.__setitem__("self", grid_from_layers(rows, None, metric)), args.repeat)
    t_two = best_of(lambda: holder.__setitem__("two", grid_from_layers(rows, cols, metric)), 1)

    # naive: each of the count x count cells on its own (re-preparing both layers every time)
    t0 = time.perf_counter()
    naive = np.empty((count, count))
    for i in range(count):
        for j in range(count):
            naive[i, j] = metric.compute(rows[i].data, cols[j].data).value
    t_naive = time.perf_counter() - t0

    grid_self, grid_two = holder["self"], holder["two"]
    off = ~np.eye(count, dtype=bool)
    err = max(
        float(np.max(np.abs(grid_two.matrix - naive))),
        float(np.max(np.abs(grid_self.matrix[off] - naive[off]))),
    )

    # end to end from an HDF5 file (loading included)
    import h5py

    with tempfile.TemporaryDirectory(prefix="repsim-bench-heatmap-") as tmp:
        path = os.path.join(tmp, "layers.h5")
        with h5py.File(path, "w") as fh:
            for i, a in enumerate(raw):
                fh.create_dataset(f"layers/{i:02d}", data=a)
        refs = select_layers(path)
        t_e2e = best_of(lambda: compute_grid(refs, None, metric, LoadOptions()), 1)

    print(f"# repsim heatmap benchmark: {count} x {count} grid of linear CKA, N={n}, F={f} (float32 layers)\n")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {blas_info()}; numpy {np.__version__}")
    print(f"floor: one float64 ({f} x {n}) @ ({n} x {f}) GEMM = {gemm * 1e3:.1f} ms\n")
    print("| run | products | time (s) | floor (s) | ratio to floor | speedup vs naive |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| heatmap A (self, one triangle) | {pairs_self}+{count} | {t_self:.2f} | {floor_self:.2f} | "
          f"{t_self / floor_self:.2f}x | {t_naive / t_self:.1f}x |")
    print(f"| heatmap A B (two sides) | {count * count}+{2 * count} | {t_two:.2f} | {floor_two:.2f} | "
          f"{t_two / floor_two:.2f}x | {t_naive / t_two:.1f}x |")
    print(f"| naive: {count * count} cells, each re-preparing both layers | {3 * count * count} | {t_naive:.2f} | "
          f"{floor_two:.2f} | {t_naive / floor_two:.2f}x | 1.0x |")
    print(f"| heatmap A end to end (HDF5 load incl.) | {pairs_self}+{count} | {t_e2e:.2f} | {floor_self:.2f} | "
          f"{t_e2e / floor_self:.2f}x | {t_naive / t_e2e:.1f}x |")
    print(f"\nmax |grid - naive| over cells: {err:.1e}; peak RSS {peak_rss_mib():.0f} MiB")
    ok_speed, ok_floor = t_naive / t_self >= 5, t_self / floor_self <= 2
    print(f"targets: self-comparison >= 5x faster than naive: {'met' if ok_speed else 'MISSED'}; "
          f"<= 2x the floor of {pairs_self + count} products: {'met' if ok_floor else 'MISSED'}"
          + (" (--quick: tiny sizes are dominated by Python overhead; the targets apply to the full run)"
             if args.quick else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
