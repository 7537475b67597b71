"""Orthogonal Procrustes on normalized centered data and the shape metrics built on it.

X^ = Xc / ||Xc||_F, Y^ = Yc / ||Yc||_F (the narrower side zero-padded, which changes nothing below).
The best rotation R = argmin_{R orthogonal} ||X^ - Y^ R||_F gives (Schoenemann 1966)

    nuc   = max_R <X^, Y^ R> = ||X^^T Y^||_*         (sum of singular values)
    dist  = min_R ||X^ - Y^ R||_F = sqrt(2 - 2 nuc)
    angle = arccos(nuc)                              (Williams et al. 2021, angular shape metric)

``dist`` and ``angle`` are true metrics on shapes. Near identical inputs, 2 - 2 nuc loses all its
digits to cancellation, so the distance is computed as the norm of the residual X^ - Y^ R itself
(accurate to ~1e-15 absolute), and the angle as 2 arcsin(dist / 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import center
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register


@dataclass
class Shape:
    """Z (N x min(N, F)) with Z Z^T = X^ X^^T: X^ itself when F <= N, else U S of its thin SVD."""

    z: np.ndarray


def _shape_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Shape:
    xc = center(x)
    n, f = xc.shape
    norm = float(np.linalg.norm(xc))
    raw_scale = float(np.max(np.abs(x))) if x.size else 0.0
    if not norm > raw_scale * np.finfo(np.float64).eps * n:
        raise RepsimError(f"procrustes: a {n} x {f} layer is constant after centering (rank 0); its shape is undefined")
    xc /= norm
    if f > n and params.get("align", "rotation") == "rotation":  # rotation: X^ matters only through X^ X^^T
        u, s, _ = np.linalg.svd(xc, full_matrices=False)
        xc = u * s
    return Shape(xc)


def _shape_permute(prep: Shape, perm: np.ndarray, params: Mapping[str, Any]) -> Shape:
    return Shape(prep.z[perm])


def _pad(z: np.ndarray, width: int) -> np.ndarray:
    if z.shape[1] == width:
        return z
    out = np.zeros((z.shape[0], width))
    out[:, : z.shape[1]] = z
    return out


def procrustes_terms(a: Shape, b: Shape) -> tuple[float, float]:
    """(nuc, dist) for two prepared sides; dist is the residual of the optimal rotation.

    The narrower side is zero-padded so R is a square orthogonal matrix: then
    ||X^ - Y^ R||_F^2 = 2 - 2 nuc exactly (a rectangular partial isometry would shrink ||Y^ R||).
    """
    width = max(a.z.shape[1], b.z.shape[1])
    za, zb = _pad(a.z, width), _pad(b.z, width)
    u, s, vt = np.linalg.svd(zb.T @ za)  # square: Y^T X (width x width)
    nuc = float(s.sum())
    resid = za - zb @ (u @ vt)
    dist = float(np.linalg.norm(resid))
    return min(nuc, 1.0), dist


def _procrustes_pair(a: Shape, b: Shape, params: Mapping[str, Any]) -> MetricResult:
    if params.get("align", "rotation") == "permutation":
        # imported here: importing alignment registers its metrics, which come after procrustes in the registry
        from repsim_cli.metrics.alignment import permutation_pair

        return permutation_pair(a.z, b.z, params["stat"])
    nuc, dist = procrustes_terms(a, b)
    stat = params["stat"]
    if stat == "similarity":
        value = nuc
    elif stat == "distance":
        value = dist
    else:
        value = 2.0 * float(np.arcsin(min(dist / 2.0, 1.0)))
    return MetricResult(value, {"nuclear_norm": nuc} if stat != "similarity" else {})


def procrustes(x: np.ndarray, y: np.ndarray, stat: str = "similarity", align: str = "rotation") -> float:
    """Orthogonal Procrustes between Frobenius-normalized centered representations.

    ``similarity``: ||X^^T Y^||_* ; ``distance``: min_R ||X^ - Y^ R||_F = sqrt(2 - 2 nuc);
    ``angle``: arccos(nuc), the angular shape metric of Williams, Kunz, Kornblith & Linderman,
    "Generalized shape metrics on neural representations", NeurIPS 2021.
    ``align='permutation'``: the best column permutation (zero-padded) instead of the best rotation
    (ReSi's PermutationProcrustes, netrep's PermutationMetric); the similarity can then be negative.
    """
    return PROCRUSTES.bind(stat=stat, align=align).value_of(x, y)


_RANGES = {"similarity": (0.0, 1.0), "distance": (0.0, float(np.sqrt(2.0))), "angle": (0.0, float(np.pi / 2))}
#: align=permutation: a permutation cannot flip signs, so <X^, Y^ P> may be negative
_PERM_RANGES = {"similarity": (-1.0, 1.0), "distance": (0.0, 2.0), "angle": (0.0, float(np.pi))}

PROCRUSTES = register(
    Metric(
        name="procrustes",
        summary="orthogonal Procrustes on normalized centered data: similarity, distance or angle",
        params=(
            Param(
                "stat",
                str,
                "similarity",
                "similarity: ||X^T Y||_* (1 = same shape); distance: sqrt(2 - 2 nuc) in [0, sqrt 2]; "
                "angle: arccos(nuc) in [0, pi/2]",
                ("similarity", "distance", "angle"),
            ),
            Param(
                "align",
                str,
                "rotation",
                "rotation: best orthogonal map (default); permutation: best neuron matching (Hungarian on X^^T Y^, "
                "zero-padded), as ReSi's PermutationProcrustes and netrep's PermutationMetric",
                ("rotation", "permutation"),
            ),
        ),
        higher_is_similar=True,  # stat=similarity (default); distance and angle: lower is more similar
        higher_is_similar_for=lambda p: p["stat"] == "similarity",
        symmetric=True,
        invariances=frozenset({"isotropic_scaling", "permutation", "translation"}),
        extra_invariances=lambda p: frozenset({"orthogonal"}) if p["align"] == "rotation" else frozenset(),
        min_n=2,
        formula="X^ = Xc/||Xc||_F; nuc = ||X^^T Y^||_*; distance = min_R ||X^ - Y^ R||_F = sqrt(2 - 2 nuc); angle = arccos nuc",
        reference="Schoenemann 1966; Williams et al., Generalized shape metrics on neural representations, NeurIPS 2021",
        prepare=_shape_prepare,
        pair=_procrustes_pair,
        permute=_shape_permute,
        help=(
            "stat=distance and stat=angle are distances (0 = identical up to rotation, translation and "
            "scale; use --fail-above); stat=similarity is the nuclear norm (1 = identical). align=permutation "
            "matches neurons instead of rotating (not rotation-invariant): similarity <X^, Y^ P> in [-1, 1], "
            "distance ||X^ - Y^ P||_F in [0, 2], angle arccos in [0, pi]. ReSi's PermutationProcrustes applies "
            "it to raw data (no centring, no normalization); ours = ReSi's formula on X^, Y^."
        ),
        value_range=(0.0, 1.0),
        value_range_for=lambda p: (_RANGES if p["align"] == "rotation" else _PERM_RANGES)[p["stat"]],
    )
)
