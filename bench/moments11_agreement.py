"""Worst moment-route vs in-memory disagreement per moment metric over 300 seeded random cases (float32, offsets 0/1e4/-3e3, random block sizes incl. 1 and ragged). Run: PYTHONPATH=. python bench/moments11_agreement.py"""
import sys, numpy as np, warnings
sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "tests"))
warnings.simplefilter("ignore")
from test_moments import MOMENT_SPECS, offset_pair
from repsim_cli.metrics import parse_metric
from repsim_cli.metrics.moments import moments_of
from repsim_cli.errors import RepsimError
rng = np.random.default_rng(2026)
worst = {s: (0.0, None) for s in MOMENT_SPECS}
for case in range(300):
    n = int(rng.integers(4, 300)); fa, fb = int(rng.integers(1, 20)), int(rng.integers(1, 20))
    block = int(rng.integers(1, n + 5)); offset = float(rng.choice([0.0, 1e4, -3e3]))
    x, y = offset_pair(np.random.default_rng(case), n, fa, fb, offset)
    m = moments_of([x, y], block)
    for s in MOMENT_SPECS:
        b = parse_metric(s)
        try: e = b.compute(x, y)
        except RepsimError: continue
        g = b.from_moments(m)
        if any("tied at 1" in w for w in e.warnings): continue
        err = abs(g.value - e.value) / max(abs(e.value), 1e-2)
        if err > worst[s][0]: worst[s] = (err, (n, fa, fb, block, offset))
for s, (e, c) in worst.items(): print(f"{s:28s} {e:.1e}  (N, F_A, F_B, block, offset) = {c}")
