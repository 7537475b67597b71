"""Run every benchmark (``make bench``): metrics, nulls, heatmap grid, inputsim.

Each script measures the machine's own floor (the GEMMs its computation cannot avoid) in the
same run and reports times as ratios to it. ``--quick`` runs tiny sizes as a smoke test;
``--only metrics,nulls`` selects scripts. Extra arguments after ``--`` go to every script.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _floor import blas_info  # noqa: E402

SCRIPTS = ("compare_cli", "api", "metrics", "nulls", "heatmap", "inputsim", "cat13a", "cat13b", "cat13c", "capture12", "chance15", "moments11", "numerics14", "harden14c", "harden14b")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--only", default=",".join(SCRIPTS), help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    args, rest = parser.parse_known_args(argv)
    rest = [a for a in rest if a != "--"]
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCRIPTS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    print(f"# repsim benchmarks, {datetime.date.today()}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {blas_info()}")
    status = 0
    for name in chosen:
        print(f"\n## {name}\n", flush=True)
        t0 = time.perf_counter()
        # each script in its own process: peak-RSS figures must not inherit another script's memory
        script = os.path.join(HERE, f"bench_{name}.py")
        rc = subprocess.run([sys.executable, script, *(["--quick"] if args.quick else []), *rest]).returncode
        print(f"\n({name}: {time.perf_counter() - t0:.0f} s wall)", flush=True)
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
