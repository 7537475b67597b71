"""F > N (wide layers): procrustes and the CCA family go through the N x N factor of a thin QR of
Xc^T, so their cost follows min(N, F). The values equal the old route (an SVD of the N x F data)
and a direct transcription of the formula to 1e-10."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from repsim_cli.metrics import parse_metric
from repsim_cli.metrics._linalg import left_svd, wide_factor

cca_mod = importlib.import_module("repsim_cli.metrics.cca")  # the package re-exports a function named cca
shape_mod = importlib.import_module("repsim_cli.metrics.shape")

SPECS = ["procrustes", "procrustes:stat=distance", "procrustes:stat=angle", "cca", "cca:stat=r2", "svcca",
         "svcca:var=0.9", "pwcca", "pwcca:weights=b", "lr", "lr:predict=a"]


def wide_pair(n: int, fa: int, fb: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 8))
    x = latent @ rng.standard_normal((8, fa)) + 0.3 * rng.standard_normal((n, fa)) + 5.0
    y = latent @ rng.standard_normal((8, fb)) + rng.standard_normal((n, fb))
    return x, y


def old_left_svd(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return u, s


def old_wide_factor(xc: np.ndarray) -> np.ndarray:
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return u * s


def test_wide_factor_and_left_svd_match_the_svd():
    x, _ = wide_pair(30, 200, 10)
    xc = x - x.mean(axis=0)
    low = wide_factor(xc)
    assert low.shape == (30, 30) and np.allclose(np.triu(low, 1), 0.0)
    np.testing.assert_allclose(low @ low.T, xc @ xc.T, atol=1e-9 * np.abs(xc @ xc.T).max())
    u, s = left_svd(xc)
    u0, s0 = old_left_svd(xc)
    np.testing.assert_allclose(s, s0, rtol=1e-12, atol=1e-12 * s0[0])
    k = int(np.sum(s0 > 1e-8 * s0[0]))
    np.testing.assert_allclose(np.abs(u[:, :k].T @ u0[:, :k]).diagonal(), 1.0, atol=1e-8)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("shape", [(40, 300, 250), (40, 300, 12), (25, 10, 90)])
def test_wide_values_equal_the_old_route(spec, shape, monkeypatch):
    x, y = wide_pair(*shape)
    metric = parse_metric(spec)
    new = metric.compute(x, y).value
    monkeypatch.setattr(cca_mod, "left_svd", old_left_svd)
    monkeypatch.setattr(shape_mod, "wide_factor", old_wide_factor)
    old = metric.compute(x, y).value
    assert new == pytest.approx(old, abs=1e-10)


@pytest.mark.parametrize("shape", [(40, 300, 250), (40, 300, 12)])
def test_wide_procrustes_and_cca_equal_a_direct_transcription(shape):
    x, y = wide_pair(*shape)
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    xh, yh = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    nuc = np.linalg.svd(xh.T @ yh, compute_uv=False).sum()  # the F_A x F_B route
    assert parse_metric("procrustes").compute(x, y).value == pytest.approx(nuc, abs=1e-10)
    qx = np.linalg.svd(xc, full_matrices=False)[0][:, : np.linalg.matrix_rank(xc)]
    qy = np.linalg.svd(yc, full_matrices=False)[0][:, : np.linalg.matrix_rank(yc)]
    rho = np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0, 1)
    assert parse_metric("cca").compute(x, y).value == pytest.approx(rho.mean(), abs=1e-10)
