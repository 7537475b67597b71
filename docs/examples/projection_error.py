"""Cosine errors of a projected gradient file against the exact one (for docs/capture.md).

``python docs/examples/projection_error.py EXACT.h5 PROJECTED.h5`` (datasets grads/loss).
"""

from __future__ import annotations

import sys

import h5py
import numpy as np

from repsim_cli.capture import cosine_error_bound, cosine_error_sd


def cosines(path: str) -> tuple[np.ndarray, int]:
    with h5py.File(path, "r") as f:
        g = f["grads/loss"][()].astype(np.float64)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return (g @ g.T)[np.triu_indices(len(g), 1)], g.shape[1]


def main(exact: str, projected: str) -> None:
    c, p = cosines(exact)
    ck, k = cosines(projected)
    err = ck - c
    n = int(round((1 + np.sqrt(1 + 8 * len(c))) / 2))
    sd = np.sqrt(np.mean([cosine_error_sd(k, x) ** 2 for x in c]))
    print(f"N={n} inputs, {len(c):,} pairs, P={p:,} -> K={k}")
    print(f"RMS error {np.sqrt(np.mean(err ** 2)):.4f} (documented typical (1 - c^2)/sqrt(K), RMS over these pairs: {sd:.4f})")
    print(f"max |error| {np.abs(err).max():.4f} (worst-case bound at 99%: {cosine_error_bound(n, k):.3f}); mean error {err.mean():+.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
