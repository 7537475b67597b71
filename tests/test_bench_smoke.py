"""The benchmarks still run (tiny sizes): a smoke test, not a timing test."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_make_bench_quick_runs_every_script():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for name in ("compare_cli", "metrics", "nulls", "heatmap", "inputsim", "cat13a"):
        assert f"## {name}" in out.stdout
    assert "ratio" in out.stdout.lower()
