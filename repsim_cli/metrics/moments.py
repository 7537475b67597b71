"""Sufficient statistics of row blocks, merged exactly, and every index that is a function of them.

A block of rows of k layers read side by side, z_i = [x_i1 ... x_ik] (F = F_1 + ... + F_k columns),
is summarized in float64 by

    n, mu = mean of z,  M = sum_i (z_i - mu)(z_i - mu)^T            (F x F: one symmetric product)
    P_lm = sum_i p_il p_im,   Z_l = sum_i p_il (z_i - mu)           (k x k and k x F)
    p_il = ||x_il - mu_l||^2                                         (centred squared row norm of layer l)
    absmax = max_i |z_i| per column                                  (the rank-0 and dead-column rules)

``M`` gives every X_l^T X_m on centred data; ``P`` and ``Z`` are what debiased (unbiased-HSIC)
CKA needs besides (sum_i ||x_i||^2 ||y_i||^2 on centred rows, Song et al. 2012). Centring makes
these *not* plain sums: the centre is only known at the end. They still merge exactly across
blocks: re-centring a summary from its own mean to a point c (rows z_i - c = t_i + d, d = mu - c,
sum_i t_i = 0) is a closed update,

    M' = M + n d d^T
    P' = P + 2 (Z D^T + D Z^T) + 4 D M D^T + T c^T + c T^T + n c c^T
    Z' = Z + 2 D M + T d^T + n c d^T

with D the k x F block-diagonal spread of d (row l holds d restricted to layer l), c_l = ||d_l||^2
and T_l = tr M_ll. Merging two summaries re-centres both at the pooled mean and adds them: for M
this is exactly the pairwise update of Chan, Golub & LeVeque (1979), M = M_A + M_B +
(n_A n_B / n) delta delta^T; P and Z are its fourth- and third-order extension (Pebay 2008). Every
block is centred at its own mean first (two-pass, in float64), so float32 data with offsets of 1e4
lose nothing, and the result does not depend on block size, block order or how a cluster
tree-reduces the partials.

Index functions (:func:`cka_from_moments` etc.) take the summary of one pair (layers 0 = a,
1 = b; see :meth:`Moments.select` for slicing a pair out of a grid's summary) and return the same
:class:`MetricResult` as the in-memory route, with the same rank rule, errors and warnings.
One caveat is inherent to second moments: an eigenvalue of X_c^T X_c is the *square* of a
singular value of X_c, so directions whose singular value is below ~sqrt(max(N, F) eps) of the
largest are lost in rounding (the in-memory SVD resolves them down to max(N, F) eps), and values
that depend on whitening (cca, svcca, pwcca, lr) lose about log10(condition number) digits where
the SVD loses none. Such cases carry a warning; well-conditioned layers agree to ~1e-12.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import correlation as _correlation  # noqa: F401  (registers meanmax/matched first)
from repsim_cli.metrics import shape as _shape  # noqa: F401  (registers procrustes first)
from repsim_cli.metrics.cca import _degenerate_warnings, _stat, kept_components, pwcca_value
from repsim_cli.metrics.cka import _check_n, _ratio, hsic_scale
from repsim_cli.metrics.registry import MetricResult, attach_moments

EPS = float(np.finfo(np.float64).eps)


@dataclass
class Moments:
    """Merged first and second moments of k layers' concatenated rows (see the module docstring)."""

    n: int
    mean: np.ndarray  # (F,)
    m2: np.ndarray  # (F, F) centred sum of outer products
    pp: np.ndarray  # (k, k) sum_i p_il p_im
    pz: np.ndarray  # (k, F) sum_i p_il (z_i - mu)
    absmax: np.ndarray  # (F,) max |raw value| per column
    splits: tuple[int, ...]  # column boundaries (0, F_1, F_1 + F_2, ..., F)
    _spectra: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ building and merging

    @classmethod
    def from_block(cls, *layers: np.ndarray) -> Moments:
        """Summary of one block of rows of each layer (same rows, each an R x F_l array)."""
        mats = [np.asarray(x, dtype=np.float64) for x in layers]
        if not mats or any(x.ndim != 2 for x in mats):
            raise ValueError("from_block expects one or more 2-D row blocks")
        if len({x.shape[0] for x in mats}) != 1:
            raise ValueError(f"row blocks have different numbers of rows: {[x.shape[0] for x in mats]}")
        z = np.hstack(mats) if len(mats) > 1 else mats[0].copy()
        splits = tuple(int(s) for s in np.cumsum([0] + [x.shape[1] for x in mats]))
        return cls.from_concatenated(z, splits)

    @classmethod
    def from_concatenated(cls, z: np.ndarray, splits: tuple[int, ...]) -> Moments:
        """Summary of a float64 block [X_1 ... X_k] (columns split at ``splits``); ``z`` is centred in place."""
        rows, f = z.shape
        k = len(splits) - 1
        if rows == 0:
            return cls(0, np.zeros(f), np.zeros((f, f)), np.zeros((k, k)), np.zeros((k, f)), np.zeros(f), splits)
        absmax = np.maximum(z.max(axis=0), -z.min(axis=0))
        mean = z.mean(axis=0)
        t = z
        t -= mean
        second = t.mean(axis=0)  # two-pass: removes the rounding error of the first mean
        t -= second
        mean = mean + second
        p = np.empty((rows, k))  # centred squared row norms per layer
        for layer in range(k):
            part = t[:, splits[layer] : splits[layer + 1]]
            p[:, layer] = np.einsum("ij,ij->i", part, part)
        # t.T @ t is one symmetric rank-R update (numpy calls syrk); (t.T @ p).T avoids a slow thin-GEMM path
        return cls(rows, mean, t.T @ t, p.T @ p, np.ascontiguousarray((t.T @ p).T), absmax, splits)

    @property
    def k(self) -> int:
        return len(self.splits) - 1

    def _spread(self, d: np.ndarray) -> np.ndarray:
        """D: row l holds d on layer l's columns, zeros elsewhere."""
        out = np.zeros((self.k, d.size))
        for layer in range(self.k):
            lo, hi = self.splits[layer], self.splits[layer + 1]
            out[layer, lo:hi] = d[lo:hi]
        return out

    def traces(self) -> np.ndarray:
        """T_l = tr M_ll = sum_i p_il."""
        return np.add.reduceat(np.diag(self.m2), list(self.splits[:-1]))

    def _recentred(self, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(M, P, Z) of the same rows centred at ``centre`` instead of their own mean."""
        d = self.mean - centre
        dd = self._spread(d)
        c = np.einsum("lf,lf->l", dd, dd)
        t = self.traces()
        dm = dd @ self.m2
        n = float(self.n)
        m2 = self.m2 + n * np.outer(d, d)
        zd = self.pz @ dd.T
        pp = self.pp + 2.0 * (zd + zd.T) + 4.0 * (dm @ dd.T) + np.outer(t, c) + np.outer(c, t) + n * np.outer(c, c)
        pz = self.pz + 2.0 * dm + np.outer(t, d) + n * np.outer(c, d)
        return m2, pp, pz

    def merge(self, other: Moments) -> Moments:
        """Summary of the union of both row sets (Chan, Golub & LeVeque 1979, extended to P and Z)."""
        if self.splits != other.splits:
            raise ValueError(f"cannot merge summaries of different layer widths: {self.splits} vs {other.splits}")
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        mean = self.mean + (other.mean - self.mean) * (other.n / n)
        ma, pa, za = self._recentred(mean)
        mb, pb, zb = other._recentred(mean)
        return Moments(n, mean, ma + mb, pa + pb, za + zb, np.maximum(self.absmax, other.absmax), self.splits)

    __add__ = merge

    def select(self, *layers: int) -> Moments:
        """The summary of some layers only (e.g. one pair of a grid): a slice, exact."""
        cols = np.concatenate([np.arange(self.splits[i], self.splits[i + 1]) for i in layers])
        widths = [self.splits[i + 1] - self.splits[i] for i in layers]
        splits = tuple(int(s) for s in np.cumsum([0] + widths))
        idx = np.asarray(layers, dtype=np.intp)
        return Moments(
            self.n, self.mean[cols], self.m2[np.ix_(cols, cols)], self.pp[np.ix_(idx, idx)],
            self.pz[np.ix_(idx, cols)], self.absmax[cols], splits,
        )

    # ------------------------------------------------------------------ per-layer views

    def cols(self, layer: int) -> slice:
        return slice(self.splits[layer], self.splits[layer + 1])

    def cov(self, i: int, j: int) -> np.ndarray:
        """X_i,c^T X_j,c (centred cross-product, not divided by n)."""
        return self.m2[self.cols(i), self.cols(j)]

    def width(self, layer: int) -> int:
        return self.splits[layer + 1] - self.splits[layer]


def merge_all(parts: Iterable[Moments]) -> Moments:
    """Pairwise (tree) merge of many partial summaries, as a cluster reduction does."""
    level = list(parts)
    if not level:
        raise ValueError("merge_all needs at least one summary")
    while len(level) > 1:
        level = [level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


def moments_of(layers: Sequence[np.ndarray], block_rows: int | None = None) -> Moments:
    """Summary of whole in-memory layers, block by block (``block_rows=None``: one block)."""
    n = layers[0].shape[0]
    step = n if not block_rows else max(1, int(block_rows))
    total: Moments | None = None
    for start in range(0, max(n, 1), step):
        part = Moments.from_block(*(x[start : start + step] for x in layers))
        total = part if total is None else total.merge(part)
    assert total is not None
    return total


# ---------------------------------------------------------------------- spectra (rank rule)


def moment_rank_tolerance(lam: np.ndarray, n: int, f: int) -> float:
    """Eigenvalues of X_c^T X_c kept: lam > lam_1 * max(N, F) * eps.

    numpy's ``matrix_rank`` rule applied to the covariance instead of the data: the in-memory
    rule s > s_1 max(N, F) eps on singular values would sit below the rounding floor of a sum of
    N outer products (~ eps lam_1 per entry), so exactly dependent units (dead, duplicated,
    F >= N) are found here from the rounding level of the covariance.
    """
    return float(lam[0] * max(n, f) * EPS) if lam.size else 0.0


@dataclass
class _Spectrum:
    lam: np.ndarray  # eigenvalues of X_c^T X_c, descending, clipped at 0
    vec: np.ndarray  # eigenvectors (columns), same order
    rank: int
    features: int

    def whitener(self, k: int | None = None) -> np.ndarray:
        """W (F x k) with X_c W orthonormal: V_k diag(lam_k^-1/2) -- an orthonormal basis of col(X_c)."""
        k = self.rank if k is None else k
        return self.vec[:, :k] / np.sqrt(self.lam[:k])


def _spectrum(m: Moments, layer: int) -> _Spectrum:
    """Eigen-decomposition of one layer's covariance with the rank rule, cached on the summary."""
    if layer in m._spectra:
        return m._spectra[layer]
    c = m.cov(layer, layer)
    lam, vec = np.linalg.eigh(c)
    lam, vec = np.clip(lam[::-1], 0.0, None), vec[:, ::-1]
    f = m.width(layer)
    r = int(np.count_nonzero(lam > moment_rank_tolerance(lam, m.n, f)))
    raw_scale = float(m.absmax[m.cols(layer)].max()) if f else 0.0
    if r == 0 or np.sqrt(lam[0]) <= raw_scale * EPS * m.n:
        raise RepsimError(
            f"a {m.n} x {f} layer has rank 0 after centering (every column is constant): "
            "canonical correlations are undefined"
        )
    spec = _Spectrum(lam, vec, r, f)
    m._spectra[layer] = spec
    return spec


def _conditioning_warnings(m: Moments, *specs: tuple[str, _Spectrum, int]) -> list[str]:
    """Warn when whitening from second moments may lose more than ~1e-10 (kept eigenvalues span > 6 decades)."""
    out = []
    for side, spec, k in specs:
        ratio = spec.lam[0] / spec.lam[k - 1]
        if ratio > 1e6:
            out.append(
                f"moment route: side {side}'s kept covariance eigenvalues span {np.log10(ratio):.0f} decades; values from "
                f"second moments are accurate to about {EPS * ratio:.0e} only (the in-memory SVD is exact here)"
            )
    return out


# ---------------------------------------------------------------------- index functions


def _unbiased(dot: float, sq_dot: float, tr_a: float, tr_b: float, n: int) -> float:
    """n(n-3) HSIC_u = dot - n/(n-2) sum_i |x_i|^2 |y_i|^2 + tr K tr L / ((n-1)(n-2)) (centred rows)."""
    return dot - n / (n - 2.0) * sq_dot + tr_a * tr_b / ((n - 1.0) * (n - 2.0))


def hsic_terms_from_moments(m: Moments, debiased: bool) -> tuple[float, float, float]:
    """(cross, self_a, self_b) linear-HSIC numerators, scaled as :func:`repsim_cli.metrics.cka.hsic_terms`."""
    cab, caa, cbb = m.cov(0, 1), m.cov(0, 0), m.cov(1, 1)
    cross, self_a, self_b = float(np.vdot(cab, cab)), float(np.vdot(caa, caa)), float(np.vdot(cbb, cbb))
    if not debiased:
        return cross, self_a, self_b
    _check_n(m.n, True)
    ta, tb = m.traces()
    return (
        _unbiased(cross, float(m.pp[0, 1]), ta, tb, m.n),
        _unbiased(self_a, float(m.pp[0, 0]), ta, ta, m.n),
        _unbiased(self_b, float(m.pp[1, 1]), tb, tb, m.n),
    )


def cka_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """Linear CKA (biased or debiased) = ||C_ab||_F^2 / (||C_aa||_F ||C_bb||_F) from the summary."""
    cross, self_a, self_b = hsic_terms_from_moments(m, params["debiased"])
    return MetricResult(float(_ratio(cross, self_a, self_b, params["debiased"])))


def hsic_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """Linear HSIC: ||C_ab||_F^2 / (n-1)^2, or HSIC_u (Song et al. 2012)."""
    cross, _, _ = hsic_terms_from_moments(m, params["debiased"])
    return MetricResult(float(cross * hsic_scale(m.n, params["debiased"])))


def _rho(m: Moments, wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """Canonical correlations: singular values of Q_a^T Q_b = W_a^T C_ab W_b."""
    return np.clip(np.linalg.svd(wa.T @ m.cov(0, 1) @ wb, compute_uv=False), 0.0, 1.0)


def cca_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """Mean canonical correlation (or R^2_CCA) from whitened cross-covariance."""
    sa, sb = _spectrum(m, 0), _spectrum(m, 1)
    rho = _rho(m, sa.whitener(), sb.whitener())
    warnings = _degenerate_warnings(m.n, sa.features, sb.features, "cca")
    warnings += _conditioning_warnings(m, ("A", sa, sa.rank), ("B", sb, sb.rank))
    return MetricResult(_stat(rho, params["stat"]), {"rank_a": sa.rank, "rank_b": sb.rank}, warnings)


def svcca_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """SVCCA: top-k eigen-directions per side (k from the variance fraction), then CCA."""
    sa, sb = _spectrum(m, 0), _spectrum(m, 1)
    ka = kept_components(np.sqrt(sa.lam), sa.rank, params["var"])
    kb = kept_components(np.sqrt(sb.lam), sb.rank, params["var"])
    rho = _rho(m, sa.whitener(ka), sb.whitener(kb))
    warnings = _degenerate_warnings(m.n, sa.features, sb.features, "svcca")
    if max(ka, kb) >= m.n - 1:
        warnings.append(f"svcca kept k={max(ka, kb)} >= N-1 directions: every canonical correlation is 1")
    warnings += _conditioning_warnings(m, ("A", sa, ka), ("B", sb, kb))
    return MetricResult(_stat(rho, params["stat"]), {"k_a": ka, "k_b": kb}, warnings)


def pwcca_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """PWCCA: alpha_i = sum_j |<h_i, x_j>| = |U^T diag(lam^1/2) V^T| row sums, value sum alpha rho / sum alpha."""
    sa, sb = _spectrum(m, 0), _spectrum(m, 1)
    first, other, cross = (sa, sb, m.cov(0, 1)) if params["weights"] == "a" else (sb, sa, m.cov(1, 0))
    u, rho, _ = np.linalg.svd(first.whitener().T @ cross @ other.whitener(), full_matrices=False)
    rho = np.clip(rho, 0.0, 1.0)
    proj = np.sqrt(first.lam[: first.rank])[:, None] * first.vec[:, : first.rank].T  # Q^T X_c
    alpha = np.abs(u.T @ proj).sum(axis=1)
    value, warnings = pwcca_value(alpha, rho, m.n, sa.features, sb.features)
    warnings += _conditioning_warnings(m, ("A", sa, sa.rank), ("B", sb, sb.rank))
    return MetricResult(value, {"rank_a": sa.rank, "rank_b": sb.rank}, warnings)


def lr_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """Regression R^2 = ||W_s^T C_st||_F^2 / tr C_tt (s: predictor side, t: predicted side)."""
    sa, sb = _spectrum(m, 0), _spectrum(m, 1)
    (src, s_idx), t_idx = ((sa, 0), 1) if params["predict"] == "b" else ((sb, 1), 0)
    proj = src.whitener().T @ m.cov(s_idx, t_idx)
    value = float(np.vdot(proj, proj) / np.trace(m.cov(t_idx, t_idx)))
    warnings = _degenerate_warnings(m.n, sa.features, sb.features, "lr")
    warnings += _conditioning_warnings(m, ("AB"[s_idx], src, src.rank))
    return MetricResult(min(value, 1.0), {}, warnings)


def procrustes_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """nuc = ||C_ab||_* / sqrt(tr C_aa tr C_bb); distance sqrt(2 - 2 nuc); angle 2 arcsin(distance/2)."""
    norms = []
    for layer in (0, 1):
        norm = float(np.sqrt(np.trace(m.cov(layer, layer))))
        raw_scale = float(m.absmax[m.cols(layer)].max())
        if not norm > raw_scale * EPS * m.n:
            raise RepsimError(
                f"procrustes: a {m.n} x {m.width(layer)} layer is constant after centering (rank 0); its shape is undefined"
            )
        norms.append(norm)
    nuc = min(float(np.linalg.svd(m.cov(0, 1), compute_uv=False).sum()) / (norms[0] * norms[1]), 1.0)
    dist = float(np.sqrt(max(2.0 - 2.0 * nuc, 0.0)))
    stat = params["stat"]
    value = nuc if stat == "similarity" else dist if stat == "distance" else 2.0 * float(np.arcsin(min(dist / 2.0, 1.0)))
    warnings = []
    if stat != "similarity" and dist < 1e-6:
        warnings.append(
            "moment route: a Procrustes distance below 1e-6 is resolved only to ~1e-8 from second moments "
            "(sqrt of 2 - 2 nuc); the in-memory route computes the residual itself"
        )
    return MetricResult(value, {"nuclear_norm": nuc} if stat != "similarity" else {}, warnings)


def correlation_from_moments(m: Moments) -> np.ndarray:
    """F_A x F_B Pearson correlations C_ab / (sd_a sd_b); constant columns give 0 (the in-memory rule)."""
    sds = []
    for layer in (0, 1):
        norms = np.sqrt(np.clip(np.diag(m.cov(layer, layer)), 0.0, None))
        scale = m.absmax[m.cols(layer)] * np.sqrt(m.n) * 1e-12
        dead = norms <= np.maximum(scale, np.finfo(np.float64).tiny)
        sds.append(np.where(dead, np.inf, norms))
    return m.cov(0, 1) / np.outer(sds[0], sds[1])


def meanmax_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """mean_i max_j |corr(a_i, b_j)| (direction a, b or both)."""
    c = np.abs(correlation_from_moments(m))
    from_a, from_b = float(c.max(axis=1).mean()), float(c.max(axis=0).mean())
    return MetricResult({"a": from_a, "b": from_b, "both": 0.5 * (from_a + from_b)}[params["direction"]])


def matched_from_moments(m: Moments, params: Mapping[str, Any]) -> MetricResult:
    """Hungarian matching of columns on |corr| (or corr) from the summary."""
    from scipy.optimize import linear_sum_assignment

    c = correlation_from_moments(m)
    score = np.abs(c) if params["absolute"] else c
    rows, cols = linear_sum_assignment(score, maximize=True)
    details = {"matching": [[int(i), int(j), float(c[i, j])] for i, j in zip(rows, cols)]}
    return MetricResult(float(score[rows, cols].mean()), details)


def _linear_full_batch(p: Mapping[str, Any]) -> bool:
    return p["kernel"] == "linear" and not p.get("minibatch", 0) and not p.get("adjusted", False)


attach_moments("cka", cka_from_moments, _linear_full_batch)
attach_moments("hsic", hsic_from_moments, _linear_full_batch)
attach_moments("cca", cca_from_moments)
attach_moments("svcca", svcca_from_moments)
attach_moments("pwcca", pwcca_from_moments)
attach_moments("lr", lr_from_moments)
attach_moments("procrustes", procrustes_from_moments, lambda p: p.get("align", "rotation") == "rotation")
attach_moments("meanmax", meanmax_from_moments, lambda p: p["corr"] == "pearson")
attach_moments("matched", matched_from_moments, lambda p: p["corr"] == "pearson")
