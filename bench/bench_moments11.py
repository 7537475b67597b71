"""Benchmark of the moment route at scale (``make bench-scale``): streamed and dask engines on files.

Generates chunked float32 layers of N x F (``make bench-scale``: N = 1,000,000, F = 512, 2 GB
each; default here N = 200,000, F = 256) as HDF5
and as zarr (uncompressed, so the engine is measured, not a codec): a file pair with ``--layers``
such layers each. Then, each in a fresh child process (peak RSS measured by the process itself):

- pair, streamed: linear CKA, debiased CKA, cca (A:l0 vs B:l0) from one summary each;
- grid, streamed: the layers x layers grid from ONE pass (one summary of all 2 x layers layers);
- pair, dask: linear CKA on a LocalCluster of 2 worker processes (cluster start-up excluded).

Reported as ratios to floors measured in the same run:
(a) reading the two layers once (block by block, stored dtype), and
(b) the moment floor: N (F_A + F_B)^2 flops (one symmetric rank-k update of the concatenated
    blocks: half of what three general products cost) at this machine's float64 GEMM rate, now;
    for the grid N (sum F)^2.
Targets (issue 11): peak RSS < 1 GB; pair <= 1.5 x max(read once, moment floor); grid <= 1.5 x
its floor; dask with 2 workers <= 1.3 x streamed. Generated files are removed afterwards.

Run: ``make bench-scale`` (full size: ~32 GB of temporary files, long), ``python
bench/bench_moments11.py`` (minutes), or ``--quick`` (seconds). Ratios ("/ read once", "/ moment
floor") are the figures to compare across machines; seconds on a shared machine are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _floor import blas_info, gemm_seconds, peak_rss_mib  # noqa: E402

CHUNK = 8192


def write_layers(path: Path, fmt: str, n: int, f: int, layers: int, seed: int) -> None:
    """``layers`` float32 N x F arrays (a noisy chain: layer l+1 = relu(layer l W) + noise), block by block."""
    rng = np.random.default_rng(seed)
    mixes = [rng.standard_normal((f, f)).astype(np.float32) / np.float32(np.sqrt(f)) for _ in range(layers)]
    if fmt == "hdf5":
        import h5py

        handle = h5py.File(path, "w")
        arrays = [handle.create_dataset(f"l{i}", shape=(n, f), dtype="f4", chunks=(min(CHUNK, n), f)) for i in range(layers)]
    else:
        import zarr

        handle = zarr.open_group(str(path), mode="w")
        arrays = [
            handle.create_array(f"l{i}", shape=(n, f), dtype="f4", chunks=(min(CHUNK, n), f), compressors=None)
            for i in range(layers)
        ]
    for a in range(0, n, CHUNK):
        b = min(n, a + CHUNK)
        x = rng.standard_normal((b - a, f), dtype=np.float32)
        for arr, mix in zip(arrays, mixes):
            x = np.maximum(x @ mix, 0) + 0.5 * rng.standard_normal((b - a, f), dtype=np.float32)
            arr[a:b] = x
    if fmt == "hdf5":
        handle.close()


def child(spec: dict) -> dict:
    """One measurement in this (fresh) process: returns seconds and this process's peak RSS."""
    from repsim_cli.metrics import parse_metric
    from repsim_cli.engines.dask import connect
    from repsim_cli.engines.moments import MomentRunner, Source, grid_moments, read_row_range
    from repsim_cli.io.layers import select_layers

    def src(sel: str) -> Source:
        return Source.of(select_layers(sel)[0])

    kind = spec["kind"]

    def local_floor(total_f: int, n: int) -> float:
        """The moment floor measured right here, now: one symmetric product per 16384-row block of sum F columns."""
        z = np.random.default_rng(0).standard_normal((min(n, 16384), total_f))
        t = time.perf_counter()
        z.T @ z
        return (time.perf_counter() - t) * n / z.shape[0]

    floor = None
    if kind == "pair":
        floor = local_floor(2 * src(spec["a"]).features, src(spec["a"]).n)
    elif kind == "grid":
        floor = local_floor(sum(src(s).features for s in [*spec["rows"], *spec["cols"]]), src(spec["rows"][0]).n)
    t0 = time.perf_counter()
    if kind == "read":
        for s in (src(spec["a"]), src(spec["b"])):
            for a in range(0, s.n, CHUNK * 4):
                read_row_range(s.file, s.kind, s.name, a, min(s.n, a + CHUNK * 4))
        out: dict = {}
    elif kind == "pair":
        runner = MomentRunner("stream", block_rows=spec.get("block_rows"))
        m = runner.moments([src(spec["a"]), src(spec["b"])])
        out = {"value": parse_metric(spec["metric"]).from_moments(m).value}
    elif kind == "grid":
        rows = [src(s) for s in spec["rows"]]
        cols = [src(s) for s in spec["cols"]]
        m, ri, ci = grid_moments(rows, cols, MomentRunner("stream", block_rows=spec.get("block_rows")))
        metric = parse_metric("cka")
        out = {"values": [[metric.from_moments(m.select(i, j)).value for j in ci] for i in ri]}
    else:  # dask
        client, cluster = connect(None, spec["workers"])
        t0 = time.perf_counter()
        m = MomentRunner("dask", client, spec.get("block_rows")).moments([src(spec["a"]), src(spec["b"])])
        out = {"value": parse_metric(spec["metric"]).from_moments(m).value}
        seconds = time.perf_counter() - t0
        client.close()
        cluster.close()
        return {**out, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}
    return {**out, "seconds": time.perf_counter() - t0, "peak_rss_mib": peak_rss_mib(), "local_floor": floor}


def run_child(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec['kind']} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--f", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--formats", default="hdf5,zarr")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to write the generated files (removed afterwards)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.quick:
        args.n, args.f, args.layers = 20_000, 32, 2
    n, f, k = args.n, args.f, args.layers
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {blas_info()}")
    work = Path(tempfile.mkdtemp(prefix="repsim-bench-scale-", dir=args.dir))
    try:
        t = gemm_seconds(min(n, 20_000), 2 * f, 2 * f, repeat=3)
        rate = 2.0 * min(n, 20_000) * (2 * f) ** 2 / t  # float64 flop/s of a GEMM, now
        pair_floor = n * (2 * f) ** 2 / rate
        grid_floor = n * (2 * k * f) ** 2 / rate
        print(f"N={n} F={f} layers/file={k}; float64 rate {rate / 1e9:.1f} GFLOP/s; moment floor pair {pair_floor:.2f} s, grid {grid_floor:.2f} s\n")
        print("| format | what | seconds | peak RSS MiB | / read once | / moment floor | value |")
        print("|---|---|---|---|---|---|---|")
        for fmt in [s.strip() for s in args.formats.split(",") if s.strip()]:
            suffix = ".h5" if fmt == "hdf5" else ".zarr"
            fa, fb = work / f"a{suffix}", work / f"b{suffix}"
            write_layers(fa, fmt, n, f, k, 0)
            write_layers(fb, fmt, n, f, k, 1)
            a, b = f"{fa}:l0", f"{fb}:l0"
            read = run_child({"kind": "read", "a": a, "b": b})["seconds"]
            print(f"| {fmt} | read both layers once | {read:.2f} | | 1.00 | | |", flush=True)
            for metric in ("cka", "cka:debiased=true", "cca"):
                r = run_child({"kind": "pair", "a": a, "b": b, "metric": metric})
                ratio = r["seconds"] / max(read, pair_floor)
                print(f"| {fmt} | pair {metric} (streamed) | {r['seconds']:.2f} | {r['peak_rss_mib']:.0f} | "
                      f"{r['seconds'] / read:.2f} | {r['seconds'] / pair_floor:.2f} (local {r['seconds'] / r['local_floor']:.2f}) | "
                      f"{r['value']:.6f} |  (/max: {ratio:.2f})", flush=True)
            g = run_child({"kind": "grid", "rows": [f"{fa}:l{i}" for i in range(k)], "cols": [f"{fb}:l{i}" for i in range(k)]})
            print(f"| {fmt} | {k}x{k} grid cka (one pass, streamed) | {g['seconds']:.2f} | {g['peak_rss_mib']:.0f} | "
                  f"{g['seconds'] / (k * read):.2f} | {g['seconds'] / grid_floor:.2f} (local {g['seconds'] / g['local_floor']:.2f}) | "
                  f"{g['values'][0][0]:.6f} |", flush=True)
            d = run_child({"kind": "dask", "a": a, "b": b, "metric": "cka", "workers": args.workers})
            print(f"| {fmt} | pair cka (dask, {args.workers} workers) | {d['seconds']:.2f} | {d['peak_rss_mib']:.0f} (client) | "
                  f"{d['seconds'] / read:.2f} | {d['seconds'] / pair_floor:.2f} | {d['value']:.6f} |", flush=True)
            shutil.rmtree(fa, ignore_errors=True) if fa.is_dir() else fa.unlink()
            shutil.rmtree(fb, ignore_errors=True) if fb.is_dir() else fb.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
