"""Linear predictivity: cross-validated ridge regression of one representation from the other.

``ridge`` (Yamins et al. 2014; Schrimpf et al. 2018, Brain-Score): the inputs are split into ``folds``
folds by a seeded random assignment; for each fold, a ridge map W is fitted on the other folds
(columns centred with the training means) and the held-out fold is predicted. The value is the R^2
pooled over folds and target columns:

    R^2 = 1 - sum_folds ||Y_test - Y^||_F^2 / sum_folds ||Y_test - ybar_train||_F^2,
    Y^ = (X_test - xbar_train) W + ybar_train,  W = (X~^T X~ + lambda I)^(-1) X~^T Y~  (X~, Y~ centred training rows).

W comes from one eigendecomposition of the F x F training Gram per fold, so any number of lambdas
costs only F x F work. ``alpha=auto`` picks lambda per outer fold by inner cross-validation over the
other folds, on the grid lambda = (tr(X~^T X~) / F) * 10^k, k = -6..3 (scale-free: it moves with the
data). The per-fold Gram and cross products are computed once and summed, so the inner folds cost no
further pass over the data. Ridge is invariant to rotations of either side (the penalty ||W||_F^2 is),
so a side with F > N is first reduced to U S of its thin SVD (N x rank): the cost follows min(N, F).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import left_svd, rank_tolerance, scaled_center
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register

#: the inner-CV grid, in units of the mean eigenvalue of the centred training Gram
AUTO_GRID = 10.0 ** np.arange(-6, 4)


class float_or_auto:  # noqa: N801  (its name is what ``repsim metrics`` prints as the type)
    """Type tag of a parameter that is a number >= 0 or the word ``auto``."""


class AlphaParam(Param):
    """``alpha=1.5`` (a fixed lambda >= 0) or ``alpha=auto`` (inner cross-validation)."""

    def check(self, value: Any, metric: str) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "auto":
                return "auto"
            try:
                value = float(text)
            except ValueError:
                value = text
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and value >= 0
        if not ok:
            raise RepsimError(f"metric {metric}: parameter {self.name} must be a number >= 0 or auto, got {value!r}")
        return float(value)

    def describe(self) -> str:
        return f"{self.name}=float>=0|auto (default {self.default})"


@dataclass
class Centred:
    """Column-centred data (U S of its thin SVD when F > N) and the original number of features."""

    z: np.ndarray
    features: int


def _ridge_prepare(x: np.ndarray, params: Mapping[str, Any]) -> Centred:
    xc = scaled_center(x).xc  # x / s, s an exact power of two only at extreme magnitudes (1e300, 1e-300)
    n, f = xc.shape
    if f > n:
        u, s = left_svd(xc)  # through the N x N factor of a thin QR of Xc^T: O(N^2 F)
        r = int(np.count_nonzero(s > rank_tolerance(s, xc.shape)))
        xc = u[:, :r] * s[:r]
    return Centred(xc, f)


def _ridge_permute(prep: Centred, perm: np.ndarray, params: Mapping[str, Any]) -> Centred:
    return Centred(prep.z[perm], prep.features)


def fold_assignment(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold of each input: a seeded random permutation dealt round-robin (sizes differ by at most 1)."""
    order = np.random.default_rng(seed).permutation(n)
    ids = np.empty(n, dtype=np.intp)
    ids[order] = np.arange(n) % folds
    return ids


@dataclass
class Moments:
    """Sums over a set of rows: count, column sums, X^T X, X^T Y."""

    n: int
    sx: np.ndarray
    sy: np.ndarray
    gxx: np.ndarray
    gxy: np.ndarray

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.sx + other.sx, self.sy + other.sy, self.gxx + other.gxx, self.gxy + other.gxy)

    def means(self) -> tuple[np.ndarray, np.ndarray]:
        return self.sx / self.n, self.sy / self.n

    def about(self, mx: np.ndarray, my: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """X^T X and X^T Y of these rows after subtracting (mx, my)."""
        gxx = self.gxx - np.outer(self.sx, mx) - np.outer(mx, self.sx) + self.n * np.outer(mx, mx)
        gxy = self.gxy - np.outer(self.sx, my) - np.outer(mx, self.sy) + self.n * np.outer(mx, my)
        return gxx, gxy


def _moments(x: np.ndarray, y: np.ndarray) -> Moments:
    return Moments(len(x), x.sum(axis=0), y.sum(axis=0), x.T @ x, x.T @ y)


def _total(parts: list[Moments]) -> Moments:
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


@dataclass
class Fit:
    """Training-set ridge in the Gram's eigenbasis: W(lambda) = V diag(1/(l_i + lambda)) P."""

    mx: np.ndarray
    my: np.ndarray
    lam: np.ndarray
    v: np.ndarray
    p: np.ndarray  # V^T X~^T Y~

    def gains(self, alpha: float) -> np.ndarray:
        if alpha > 0:
            return 1.0 / (self.lam + alpha)
        keep = self.lam > (self.lam.max(initial=0.0) * max(len(self.lam), 1) * np.finfo(np.float64).eps)
        return np.where(keep, 1.0 / np.where(keep, self.lam, 1.0), 0.0)  # pseudo-inverse

    def weights(self, alpha: float) -> np.ndarray:
        return self.v @ (self.gains(alpha)[:, None] * self.p)


def _fit(train: Moments) -> Fit:
    mx, my = train.means()
    gxx, gxy = train.about(mx, my)
    lam, v = np.linalg.eigh(gxx)
    return Fit(mx, my, np.clip(lam, 0.0, None), v, v.T @ gxy)


def _inner_sse(fit: Fit, test: Moments, grid: np.ndarray) -> np.ndarray:
    """sum ||Y_t - Y^||^2 on a held-out fold for each lambda of ``grid``, up to a lambda-free constant:
    -2 tr(W^T B) + tr(W^T A W) with A, B the held-out X^T X, X^T Y about the training means."""
    a, b = test.about(fit.mx, fit.my)
    a, b = fit.v.T @ a @ fit.v, fit.v.T @ b
    d = np.stack([fit.gains(g) for g in grid], axis=1)  # F x len(grid)
    lin = np.einsum("ij,ij->i", fit.p, b) @ d
    h = a * (fit.p @ fit.p.T)
    quad = np.einsum("il,ik,kl->l", d, h, d)
    return quad - 2.0 * lin


def _choose_alpha(parts: list[Moments], outer: int, fit: Fit, features: int) -> float:
    """lambda of the grid with the least inner-CV error over the folds other than ``outer``."""
    base = float(fit.lam.sum()) / features
    if not base > 0:
        return 1.0  # a constant predictor: every lambda gives W = 0
    grid = base * AUTO_GRID
    total = np.zeros(len(grid))
    for j in range(len(parts)):
        if j != outer:
            inner = _total([p for i, p in enumerate(parts) if i not in (outer, j)])
            total += _inner_sse(_fit(inner), parts[j], grid)
    return float(grid[int(np.argmin(total))])


def _ridge_pair(a: Centred, b: Centred, params: Mapping[str, Any]) -> MetricResult:
    src, tgt = (a, b) if params["predict"] == "b" else (b, a)
    x, y = src.z, tgt.z
    n, folds = x.shape[0], int(params["folds"])
    if n < 2 * folds:
        raise RepsimError(f"ridge: {n} inputs are too few for folds={folds} (need at least {2 * folds})")
    ids = fold_assignment(n, folds, int(params["seed"]))
    rows = [np.flatnonzero(ids == k) for k in range(folds)]
    parts = [_moments(x[r], y[r]) for r in rows]
    sse = sst = 0.0
    chosen = []
    for k in range(folds):
        fit = _fit(_total([p for i, p in enumerate(parts) if i != k]))
        alpha = params["alpha"]
        if alpha == "auto":
            alpha = _choose_alpha(parts, k, fit, src.features)
        chosen.append(alpha)
        yt = y[rows[k]] - fit.my
        resid = yt - (x[rows[k]] - fit.mx) @ fit.weights(alpha)
        sse += float(np.vdot(resid, resid))
        sst += float(np.vdot(yt, yt))
    if not sst > 0:
        raise RepsimError("ridge: the predicted side is constant (zero variance); R^2 is undefined")
    details = {"alpha_per_fold": chosen} if params["alpha"] == "auto" else {}
    return MetricResult(1.0 - sse / sst, details)


def ridge_r2(
    x: np.ndarray, y: np.ndarray, alpha: float | str = "auto", folds: int = 5, predict: str = "b", seed: int = 0
) -> float:
    """Cross-validated ridge R^2 of one side predicted from the other (linear predictivity).

    Out-of-sample R^2 pooled over ``folds`` seeded folds: 1 - sum ||Y_test - Y^||^2 / sum ||Y_test - ybar_train||^2,
    with W = (X~^T X~ + alpha I)^(-1) X~^T Y~ on the centred training rows (Yamins et al., PNAS 2014;
    Schrimpf et al., Brain-Score, 2018). ``alpha='auto'`` chooses lambda by inner cross-validation.
    ``predict='b'`` predicts y from x. Not symmetric.
    """
    return RIDGE.bind(alpha=alpha, folds=folds, predict=predict, seed=seed).value_of(x, y)


def _ridge_invariances(p: Mapping[str, Any]) -> frozenset[str]:
    # a fixed lambda > 0 is in the units of X^T X; lambda = 0 and the scale-free auto grid are not
    return frozenset({"isotropic_scaling"}) if p["alpha"] == "auto" or p["alpha"] == 0.0 else frozenset()


RIDGE = register(
    Metric(
        name="ridge",
        summary="cross-validated ridge-regression R^2 of one side predicted from the other (linear predictivity)",
        params=(
            AlphaParam(
                "alpha", float_or_auto, "auto",
                "ridge penalty lambda >= 0 (in the units of X^T X; 0 = least squares, pseudo-inverse), or auto: "
                "inner cross-validation over (tr(X^T X)/F) * 10^-6..10^3",
            ),
            Param("folds", int, 5, "number of cross-validation folds", minimum=2),
            Param("predict", str, "b", "side that is predicted: b (from a, default) or a (from b)", ("a", "b")),
            Param("seed", int, 0, "seed of the random fold assignment"),
        ),
        higher_is_similar=True,
        symmetric=False,
        invariances=frozenset({"orthogonal", "permutation", "translation"}),
        extra_invariances=_ridge_invariances,
        doc_variants=({"alpha": 1.0},),
        min_n=lambda p: 2 * int(p["folds"]),
        formula=(
            "1 - sum_folds ||Y_t - (X_t - xbar) W - ybar||^2 / sum_folds ||Y_t - ybar||^2, "
            "W = (X~^T X~ + lambda I)^-1 X~^T Y~ on the centred training folds"
        ),
        reference="Yamins et al., PNAS 2014; Schrimpf et al., Brain-Score, bioRxiv 2018",
        prepare=_ridge_prepare,
        pair=_ridge_pair,
        permute=_ridge_permute,
        help=(
            "Not symmetric: ridge(A, B) predicts B from A (predict=b). Out-of-sample, so it can be negative "
            "(worse than predicting the training mean) and is below 1 even for identical inputs when lambda > 0. "
            "A fixed lambda is not scale-invariant (it is in the units of X^T X); alpha=auto and alpha=0 are. "
            "Folds are drawn with seed (default 0); JSON details list the chosen lambda per fold. Bootstrap "
            "resamples keep their distinct rows (a duplicate in a training and a held-out fold would leak)."
        ),
        value_range=(float("-inf"), 1.0),
        # a duplicated input can land in a training fold and the held-out fold: leakage inflates R^2
        distinct_rows=True,
    )
)
