"""Input-geometry comparisons: representational similarity analysis and mutual k-NN overlap.

Both look at the N inputs as points and compare how each representation arranges them, not the
features themselves. RSA builds an N x N dissimilarity matrix (RDM) per side, so it needs
8 N^2 bytes per RDM; mutual k-NN keeps only N x k neighbour indices and finds them in row blocks
(memory O(block N)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import prescaled
from repsim_cli.metrics.cka import squared_distances
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register

# ---------------------------------------------------------------------------- rsa


@dataclass
class RDMState:
    """Symmetric N x N matrix S, zero diagonal, whose upper triangle is the standardized RDM
    (Pearson) or its standardized ranks (Spearman): sum_{i<j} S_ij = 0, sum_{i<j} S_ij^2 = 1.
    The correlation of two RDMs is then sum_{i<j} S_ij T_ij = <S, T> / 2, and a permutation of
    the inputs only re-indexes S (ranks and moments of the upper triangle are unchanged)."""

    s: np.ndarray
    constant: bool  # every off-diagonal dissimilarity is equal: correlation undefined -> 0


def rdm(x: np.ndarray, kind: str = "correlation", center_columns: bool = True) -> np.ndarray:
    """N x N representational dissimilarity matrix of (by default column-centered) float64 data.

    ``correlation``: 1 - Pearson correlation between rows (each row centered and normalized over
    its features; a row with no variance gets correlation 0 with every other row).
    ``euclidean``: ||x_i - x_j||_2.
    """
    # x / s with s an exact power of two: no overflow at 1e300, no underflow at 1e-300; the RDM of
    # euclidean distances is then that of x divided by s, which rank and Pearson comparisons ignore
    xc = prescaled(x, center_columns)
    if kind == "correlation":
        xc -= xc.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(xc, axis=1)
        dead = norms <= np.finfo(np.float64).eps * max(float(norms.max(initial=0.0)), np.finfo(np.float64).tiny) * 16
        norms[dead] = 1.0
        xc /= norms[:, None]
        xc[dead] = 0.0
        d = xc @ xc.T
        np.subtract(1.0, d, out=d)
    elif kind == "euclidean":
        d = squared_distances(xc)
        np.sqrt(d, out=d)
    else:
        raise RepsimError(f"rsa: rdm must be correlation or euclidean, got {kind!r}")
    np.fill_diagonal(d, 0.0)
    return d


def upper_triangle(m: np.ndarray) -> np.ndarray:
    """Entries m_ij, i < j, row by row (no N^2 index arrays)."""
    n = m.shape[0]
    out = np.empty(n * (n - 1) // 2)
    pos = 0
    for i in range(n - 1):
        out[pos : pos + n - 1 - i] = m[i, i + 1 :]
        pos += n - 1 - i
    return out


def fill_symmetric(values: np.ndarray, n: int, out: np.ndarray, block: int = 512) -> np.ndarray:
    """Inverse of :func:`upper_triangle`: symmetric ``out`` with zero diagonal.

    Rows of the upper triangle are contiguous copies; the lower triangle is filled by transposing
    square blocks (cache friendly, no N^2 index arrays or temporaries).
    """
    pos = 0
    for i in range(n - 1):
        out[i, i + 1 :] = values[pos : pos + n - 1 - i]
        pos += n - 1 - i
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        out[b0:b1, :b0] = out[:b0, b0:b1].T
        sub = out[b0:b1, b0:b1]
        lower = np.tril_indices(b1 - b0, -1)
        sub[lower] = sub.T[lower]
    np.fill_diagonal(out, 0.0)
    return out


def _rsa_prepare(x: np.ndarray, params: Mapping[str, Any]) -> RDMState:
    n = x.shape[0]
    if n < 3:
        raise RepsimError(f"rsa needs N >= 3 inputs (at least 3 pairs), got N={n}")
    d = rdm(x, params["rdm"], params["center"])
    v = upper_triangle(d)
    # Dissimilarities within 1e-12 of the RDM's natural scale are equal: rounding noise must neither
    # reorder ties (F=2 correlation RDMs are exactly 0 or 2) nor make a constant RDM look varied.
    # The scale is 1 for correlation RDMs (values in [0, 2]) and the largest distance for euclidean.
    scale = 1.0 if params["rdm"] == "correlation" else float(np.abs(v).max(initial=0.0))
    grain = 1e-12 * max(scale, np.finfo(np.float64).tiny)
    levels = np.round(v / grain)
    constant = bool(levels.size == 0 or levels.min() == levels.max())
    if params["compare"] == "spearman":
        from scipy.stats import rankdata

        v = rankdata(levels)
    v -= v.mean()
    norm = float(np.linalg.norm(v))
    if constant or not norm > 0.0:
        constant = True
        v[:] = 0.0
    else:
        v /= norm
    return RDMState(fill_symmetric(v, n, d), constant)


def _rsa_permute(prep: RDMState, perm: np.ndarray, params: Mapping[str, Any]) -> RDMState:
    return RDMState(prep.s[np.ix_(perm, perm)], prep.constant)


def _rsa_pair(a: RDMState, b: RDMState, params: Mapping[str, Any]) -> MetricResult:
    warnings = []
    if a.constant or b.constant:
        warnings.append("rsa: an RDM has all its dissimilarities equal; its correlation is undefined and reported as 0")
    value = 0.5 * float(np.vdot(a.s, b.s))
    return MetricResult(float(np.clip(value, -1.0, 1.0)), {}, warnings)


def rsa(x: np.ndarray, y: np.ndarray, rdm: str = "correlation", compare: str = "spearman", center: bool = True) -> float:
    """Representational similarity analysis (Kriegeskorte, Mur & Bandettini, Front. Syst. Neurosci. 2008).

    RDM_ij = 1 - pearson(x_i, x_j) (``rdm='correlation'``) or ||x_i - x_j|| (``'euclidean'``) on
    column-centered data; the index is the Spearman (or Pearson) correlation of the two RDMs'
    upper triangles (i < j). Builds N x N matrices. ``center=False`` skips the column centering
    (the RDM of raw rows, e.g. ``scipy.spatial.distance.pdist(x, 'correlation')``).
    """
    return RSA.bind(rdm=rdm, compare=compare, center=center).value_of(x, y)


RSA = register(
    Metric(
        name="rsa",
        summary="correlation between the two representational dissimilarity matrices (RDMs)",
        params=(
            Param("rdm", str, "correlation", "dissimilarity between inputs: correlation (1 - Pearson between rows) or euclidean", ("correlation", "euclidean")),
            Param("compare", str, "spearman", "correlation of the RDMs' upper triangles: spearman (ranks) or pearson", ("spearman", "pearson")),
            Param("center", bool, True, "column-center before building the RDM (false: RDM of the raw rows)", (True, False)),
        ),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"isotropic_scaling", "permutation"}),
        extra_invariances=lambda p: (frozenset({"orthogonal"}) if p["rdm"] == "euclidean" else frozenset())
        | (frozenset({"translation"}) if p["center"] or p["rdm"] == "euclidean" else frozenset()),
        min_n=3,
        formula="corr_{i<j}(RDM_A[i,j], RDM_B[i,j]); RDM = 1 - pearson(rows) or euclidean distance",
        reference="Kriegeskorte et al., Representational similarity analysis, Front. Syst. Neurosci. 2008",
        prepare=_rsa_prepare,
        pair=_rsa_pair,
        permute=_rsa_permute,
        gram=True,
        distinct_rows=True,
        help=(
            "N x N by nature: memory 8*N^2 bytes per RDM (N=20000: 3.0 GiB each, plus the ranking of "
            "N(N-1)/2 values), refused above --max-gram inputs (default 20000; use --max-samples). "
            "Data are column-centered first (center=false: raw rows), so rdm=correlation is translation "
            "invariant; it is not rotation invariant (row means depend on the feature basis), rdm=euclidean is."
        ),
        value_range=(-1.0, 1.0),
    )
)

# ---------------------------------------------------------------------------- knn


@dataclass
class KnnState:
    idx: np.ndarray  # N x k neighbour indices, each row sorted ascending
    k: int


def _block_rows(n: int, budget_bytes: int = 64 * 2**20) -> int:
    return max(1, min(n, budget_bytes // (8 * max(n, 1))))


def nearest_neighbors(x: np.ndarray, k: int, center_rows: bool = False) -> np.ndarray:
    """N x k indices of each row's k most cosine-similar other rows (self excluded), sorted ascending.

    Ties at the k-th similarity are broken by the lower index, so the result is deterministic.
    Rows with zero norm have cosine similarity 0 with everything. Computed in row blocks:
    memory O(block * N), never N x N.
    """
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D N x F array, got shape {x.shape}")
    z = prescaled(x, center_rows)  # x / s, max |entry| in [0.5, 1): cosines are scale free
    n = z.shape[0]
    if not 1 <= k < n:
        raise RepsimError(f"knn: k must satisfy 1 <= k < N (N={n} inputs), got k={k}; lower k or use more inputs")
    norms = np.linalg.norm(z, axis=1)
    dead = norms == 0.0
    if dead.all() or not np.any(norms > 1e-12 * np.sqrt(z.shape[1])):
        raise RepsimError(
            f"knn: every row of this {n} x {z.shape[1]} layer is zero{' after centering (rank 0)' if center_rows else ''}: "
            "cosine similarities are undefined"
        )
    norms[dead] = 1.0
    z /= norms[:, None]
    out = np.empty((n, k), dtype=np.int64)
    block = _block_rows(n)
    cols = np.arange(n)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sim = z[start:stop] @ z.T
        rows = np.arange(stop - start)
        sim[rows, start + rows] = -np.inf  # exclude self
        kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1]
        above = sim > kth[:, None]
        tied = sim == kth[:, None]
        need = k - above.sum(axis=1)
        take = above | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))
        r, c = np.nonzero(take)
        out[start:stop] = c.reshape(stop - start, k)
        del sim, above, tied, take, r
    del cols
    return out


def _knn_prepare(x: np.ndarray, params: Mapping[str, Any]) -> KnnState:
    return KnnState(nearest_neighbors(x, params["k"], params["center"]), params["k"])


def _knn_permute(prep: KnnState, perm: np.ndarray, params: Mapping[str, Any]) -> KnnState:
    """Neighbours of ``x[perm]``: row i is old row perm[i], old index j becomes inv[j].

    Exact except for exact ties in similarity, which the fast path breaks by the original index.
    """
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return KnnState(np.sort(inv[prep.idx[perm]], axis=1), prep.k)


def knn_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|A_i & B_i| for each row of two N x k index arrays whose rows have distinct entries."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(axis=1)


def _knn_pair(a: KnnState, b: KnnState, params: Mapping[str, Any]) -> MetricResult:
    return MetricResult(float(knn_overlap(a.idx, b.idx).mean() / a.k))


def mutual_knn(x: np.ndarray, y: np.ndarray, k: int = 10, center: bool = True) -> float:
    """Mutual k-nearest-neighbour overlap: mean_i |kNN_X(i) & kNN_Y(i)| / k.

    Neighbours by cosine similarity between rows, self excluded (Huh, Cheung, Wang & Isola,
    "The Platonic Representation Hypothesis", ICML 2024). Like every index here it works on
    column-centered data by default; ``center=False`` uses the raw rows, as the authors' code does.
    """
    return KNN.bind(k=k, center=center).value_of(x, y)


KNN = register(
    Metric(
        name="knn",
        summary="mutual k-nearest-neighbour overlap of the inputs (cosine similarity of rows)",
        params=(
            Param("k", int, 10, "neighbours per input (1 <= k < N)", minimum=1),
            Param("center", bool, True, "column-center before cosine similarity (false: raw rows, as in Huh et al.'s code)", (True, False)),
        ),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation"}),
        extra_invariances=lambda p: frozenset({"translation"}) if p["center"] else frozenset(),
        min_n=lambda p: p["k"] + 1,
        formula="mean_i |kNN_A(i) & kNN_B(i)| / k, neighbours by cosine similarity of rows, self excluded",
        reference="Huh et al., The Platonic Representation Hypothesis, ICML 2024",
        prepare=_knn_prepare,
        pair=_knn_pair,
        permute=_knn_permute,
        distinct_rows=True,
        help=(
            "Columns are centered first, like every index here (center=false: cosine of the raw rows, as "
            "Huh et al.'s mutual_knn, which also clips outliers at the 95th percentile, which repsim does not "
            "do). Ties broken by lower index. Memory O(block*N)."
        ),
    )
)
