"""Orthogonal Procrustes on normalized centered data and the shape metrics built on it.

X^ = Xc / ||Xc||_F, Y^ = Yc / ||Yc||_F (the narrower side zero-padded, which changes nothing below).
The best rotation R = argmin_{R orthogonal} ||X^ - Y^ R||_F gives (Schoenemann 1966)

    nuc   = max_R <X^, Y^ R> = ||X^^T Y^||_*         (sum of singular values)
    dist  = min_R ||X^ - Y^ R||_F = sqrt(2 - 2 nuc)
    angle = arccos(nuc)                              (Williams et al. 2021, angular shape metric)

``dist`` and ``angle`` are true metrics on shapes. Near identical inputs, 2 - 2 nuc loses all its
digits to cancellation, so the distance is computed as the norm of the residual X^ - Y^ R itself
(accurate to ~1e-15 absolute), and the angle as 2 arcsin(dist / 2).

Cost: each side is centered once (after an exact power-of-two rescaling, so 1e300 and 1e-300
activations neither overflow nor underflow) and never divided: the Frobenius norms enter as
scalars. ``stat=similarity`` is one F_B x F_A product and the singular values (no vectors) of
that min-sized matrix. When F > N a side is replaced by the N x N triangular factor L of
:func:`~repsim_cli.metrics._linalg.wide_factor` (L L^T = Xc Xc^T, thin QR of Xc^T, O(N^2 F)),
so the cost follows min(N, F).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import scaled_center, wide_factor
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register


@dataclass
class Shape:
    """Z (N x min(N, F)) with Z Z^T = Xc Xc^T (Xc itself when F <= N, else the N x N factor L of
    a thin QR of Xc^T), and ``norm`` = ||Xc||_F, so X^ X^^T = Z Z^T / norm^2."""

    z: np.ndarray
    norm: float


def _shape_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Shape:
    centered = scaled_center(x)
    xc, norm = centered.xc, centered.norm
    n, f = xc.shape
    if centered.constant:
        raise RepsimError(f"procrustes: a {n} x {f} layer is constant after centering (rank 0); its shape is undefined")
    if params.get("align", "rotation") == "permutation":  # the best column permutation needs the columns of X^
        return Shape(xc / norm, 1.0)
    if f > n:  # rotation: every quantity below depends on Xc only through Xc Xc^T
        xc = wide_factor(xc)
    return Shape(xc, norm)


def _shape_permute(prep: Shape, perm: np.ndarray, params: Mapping[str, Any]) -> Shape:
    return Shape(prep.z[perm], prep.norm)


def _pad(z: np.ndarray, width: int) -> np.ndarray:
    if z.shape[1] == width:
        return z
    out = np.zeros((z.shape[0], width))
    out[:, : z.shape[1]] = z
    return out


def nuclear_norm(a: Shape, b: Shape) -> float:
    """||X^^T Y^||_* = sum of the singular values of Zb^T Za / (||Xc|| ||Yc||), values only."""
    s = np.linalg.svd(b.z.T @ a.z, compute_uv=False)
    return min(float(s.sum()) / a.norm / b.norm, 1.0)


def procrustes_terms(a: Shape, b: Shape) -> tuple[float, float]:
    """(nuc, dist) for two prepared sides; dist is the residual of the optimal rotation.

    The narrower side is zero-padded so R is a square orthogonal matrix: then
    ||X^ - Y^ R||_F^2 = 2 - 2 nuc exactly (a rectangular partial isometry would shrink ||Y^ R||).
    """
    width = max(a.z.shape[1], b.z.shape[1])
    za, zb = _pad(a.z / a.norm, width), _pad(b.z / b.norm, width)
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
    stat = params["stat"]
    if stat == "similarity":  # no rotation, no residual: one product and singular values only
        return MetricResult(nuclear_norm(a, b), {})
    nuc, dist = procrustes_terms(a, b)
    if stat == "distance":
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
