"""Input-geometry comparisons: representational similarity analysis (the k-NN family is in neighbours.py).

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

COMPARE_METHODS = ("spearman", "pearson", "kendall_a", "rho_a", "cosine")


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
        d = refine_small_distances(squared_distances(xc), xc)
        np.sqrt(d, out=d)
    else:
        raise RepsimError(f"rsa: rdm must be correlation or euclidean, got {kind!r}")
    np.fill_diagonal(d, 0.0)
    return d


def refine_small_distances(d2: np.ndarray, xc: np.ndarray, rel: float = 1e-6, budget_bytes: int = 64 * 2**20) -> np.ndarray:
    """Recompute directly, in place, the squared distances that the Gram route computes badly.

    ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j has an absolute error ~ eps (||x_i||^2 + ||x_j||^2): a duplicated
    input comes out at distance ~1e-8 instead of 0 after the square root, which splits ties. Entries with
    d2_ij < rel (||x_i||^2 + ||x_j||^2) are recomputed as ||x_i - x_j||^2 (row blocks, no N x N temporary).
    """
    n = d2.shape[0]
    sq = np.einsum("ij,ij->i", xc, xc)
    block = max(1, min(n, budget_bytes // (8 * max(n, 1))))
    for start in range(0, n, block):
        stop = min(n, start + block)
        thr = sq[start:stop, None] + sq[None, :]
        thr *= rel
        i, j = np.nonzero(d2[start:stop] < thr)
        del thr
        if i.size:
            diff = xc[start + i] - xc[j]
            d2[start + i, j] = np.einsum("ij,ij->i", diff, diff)
    return d2


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


def sorted_order(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, v[order]) with v[order] non-decreasing: an argsort of ``v``, computed as one
    ``numpy.sort`` of packed uint64 keys (faster than ``numpy.argsort`` on float64).

    Key = q << b | t, with t the position (b bits) and q = floor((v_t - min) / (max - min) Q),
    Q = 2^min(64-b, 52) - 1,
    a monotone quantization of the value, so sorting the keys sorts ``v`` except inside groups of equal
    q; the (rare) groups of equal q holding different values are then sorted exactly by value.
    """
    m = v.size
    bits = max(1, (m - 1).bit_length())
    lo, hi = (float(v.min()), float(v.max())) if m else (0.0, 0.0)
    if m < 2 or bits > 40 or not hi > lo:
        order = np.argsort(v, kind="stable")
        return order, v[order]
    qmax = float(2 ** min(64 - bits, 52) - 1)  # exact in float64; q << bits fits in 64 bits
    key = np.subtract(v, lo)
    key *= qmax / (hi - lo)
    np.minimum(key, qmax, out=key)
    np.floor(key, out=key)
    packed = key.astype(np.uint64)
    del key
    packed <<= np.uint64(bits)
    packed |= np.arange(m, dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
    packed >>= np.uint64(bits)  # q, sorted
    srt = v[order]
    same_q = packed[1:] == packed[:-1]
    del packed
    clash = same_q & (srt[1:] != srt[:-1])
    if clash.any():  # sort the groups of equal q that hold different values, exactly
        group = np.cumsum(np.concatenate([[True], ~same_q])) - 1
        bad = np.zeros(int(group[-1]) + 1, dtype=bool)
        bad[group[1:][clash]] = True
        pos = np.flatnonzero(bad[group])
        sub = np.lexsort((srt[pos], group[pos]))
        order[pos] = order[pos][sub]
        srt[pos] = srt[pos][sub]
    return order, srt


def tie_runs(v: np.ndarray, grain: float) -> tuple[np.ndarray, np.ndarray]:
    """(order, new): ``order`` sorts ``v`` (:func:`sorted_order`); ``new[t]`` is True where the t-th
    smallest value starts a new group of ties, i.e. exceeds its predecessor by more than ``grain``
    (values closer than the grain are equal, so rounding noise never splits or reorders a tie)."""
    order, srt = sorted_order(v)
    new = np.empty(v.size, dtype=bool)
    new[:1] = True
    gaps = np.subtract(srt[1:], srt[:-1], out=srt[1:])
    np.greater(gaps, grain, out=new[1:])
    return order, new


def average_ranks(v: np.ndarray, grain: float) -> np.ndarray:
    """1-based ranks of ``v``, ties (values within ``grain`` of their neighbour in sorted order)
    averaged: ``scipy.stats.rankdata`` of the tie groups, from one sort and O(M) passes."""
    m = v.size
    order, new = tie_runs(v, grain)
    starts = np.flatnonzero(new)
    del new
    ranks = np.empty(m)
    if starts.size == m:  # no ties
        ranks[order] = np.arange(1.0, m + 1.0)
    else:
        lengths = np.diff(np.append(starts, m))
        ranks[order] = np.repeat(starts + (lengths + 1) / 2.0, lengths)
    return ranks


def tie_groups(v: np.ndarray, grain: float) -> np.ndarray:
    """Dense 0-based group number of each value (same ties as :func:`average_ranks`), as float64."""
    order, new = tie_runs(v, grain)
    out = np.empty(v.size)
    out[order] = np.cumsum(new) - 1.0
    return out


def kendall_tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau_a = (concordant - discordant) / (M(M-1)/2), pairs tied on either side counting 0.

    O(M log M): ``scipy.stats.kendalltau`` counts pairs with Knight's merge sort and returns
    tau_b = (C - D) / sqrt((T - T_x)(T - T_y)); multiplying back by the tie terms (T_x, T_y = pairs
    tied in x, in y, counted exactly here) gives tau_a to rounding. Every pair tied on one side: 0.
    """
    from scipy.stats import kendalltau

    m = x.size
    tot = m * (m - 1) // 2
    tx, ty = _tied_pairs(x), _tied_pairs(y)
    if tot == 0 or tx == tot or ty == tot:
        return 0.0
    tau_b = float(kendalltau(x, y).statistic)
    return float(np.clip(tau_b * np.sqrt(float(tot - tx)) * np.sqrt(float(tot - ty)) / tot, -1.0, 1.0))


def _tied_pairs(v: np.ndarray) -> int:
    """Number of pairs with equal values: sum over groups of c(c-1)/2 (O(M) for small integer labels)."""
    iv = v.astype(np.int64)
    if v.size and np.array_equal(iv, v) and iv.min() >= 0 and iv.max() <= 4 * v.size:
        c = np.bincount(iv)
    else:
        s = np.sort(v)
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        c = np.diff(np.append(starts, s.size))
    c = c.astype(np.int64)
    return int((c * (c - 1) // 2).sum())


def _rsa_prepare(x: np.ndarray, params: Mapping[str, Any]) -> RDMState:
    n = x.shape[0]
    if n < 3:
        raise RepsimError(f"rsa needs N >= 3 inputs (at least 3 pairs), got N={n}")
    compare = params["compare"]
    d = rdm(x, params["rdm"], params["center"])
    v = upper_triangle(d)
    # Dissimilarities within 1e-12 of the RDM's natural scale are equal (consecutive sorted values
    # closer than the grain form one group of ties): rounding noise must neither split or reorder
    # ties (F=2 correlation RDMs are exactly 0 or 2) nor make a constant RDM look varied.
    # The scale is 1 for correlation RDMs (values in [0, 2]) and the largest distance for euclidean.
    scale = 1.0 if params["rdm"] == "correlation" else float(np.abs(v).max(initial=0.0))
    grain = 1e-12 * max(scale, np.finfo(np.float64).tiny)
    constant = bool(v.size == 0 or v.max() - v.min() <= grain)
    if compare == "kendall_a":  # the pair needs the dissimilarities' order and ties: their tie groups
        g = tie_groups(v, grain)
        return RDMState(fill_symmetric(g, n, d), bool(g.max() == 0.0))
    if compare == "cosine":
        norm = float(np.linalg.norm(v))
        zero = not norm > 0.0
        v = np.zeros_like(v) if zero else v / norm
        return RDMState(fill_symmetric(v, n, d), zero)
    if compare in ("spearman", "rho_a"):
        v = average_ranks(v, grain)
        constant = bool(v.min() == v.max())  # one group of ties
    m = v.size
    v -= v.mean()
    if compare == "rho_a":  # 12 sum (r - mean)(s - mean) / (M^3 - M), no tie correction (rsatoolbox)
        v *= 0.0 if constant else np.sqrt(12.0 / (float(m) ** 3 - m))
        return RDMState(fill_symmetric(v, n, d), constant)
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
        if params["compare"] == "cosine":
            warnings.append("rsa: an RDM is all zeros (every input identical); its cosine is undefined and reported as 0")
        else:
            warnings.append("rsa: an RDM has all its dissimilarities equal; its correlation is undefined and reported as 0")
    if params["compare"] == "kendall_a":
        value = 0.0 if (a.constant or b.constant) else kendall_tau_a(upper_triangle(a.s), upper_triangle(b.s))
    else:
        value = 0.5 * float(np.vdot(a.s, b.s))
    return MetricResult(float(np.clip(value, -1.0, 1.0)), {}, warnings)


def rsa(x: np.ndarray, y: np.ndarray, rdm: str = "correlation", compare: str = "spearman", center: bool = True) -> float:
    """Representational similarity analysis (Kriegeskorte, Mur & Bandettini, Front. Syst. Neurosci. 2008).

    RDM_ij = 1 - pearson(x_i, x_j) (``rdm='correlation'``) or ||x_i - x_j|| (``'euclidean'``) on
    column-centered data; the index is the Spearman (or Pearson) correlation of the two RDMs'
    upper triangles (i < j); ``compare='kendall_a'`` gives Kendall's tau_a, ``'rho_a'`` rsatoolbox's
    rho_a = 12 sum (r - mean)(s - mean) / (M^3 - M) on average ranks, ``'cosine'`` the cosine of the
    (uncentred) RDM vectors (Nili et al. 2014; Schuett et al. 2023). Builds N x N matrices.
    ``center=False`` skips the column centering (the RDM of raw rows, e.g.
    ``scipy.spatial.distance.pdist(x, 'correlation')``).
    """
    return RSA.bind(rdm=rdm, compare=compare, center=center).value_of(x, y)


RSA = register(
    Metric(
        name="rsa",
        summary="correlation between the two representational dissimilarity matrices (RDMs)",
        params=(
            Param("rdm", str, "correlation", "dissimilarity between inputs: correlation (1 - Pearson between rows) or euclidean", ("correlation", "euclidean")),
            Param(
                "compare",
                str,
                "spearman",
                "how the RDMs' upper triangles are compared: spearman (ranks, ties averaged), pearson, kendall_a "
                "(Kendall's tau_a, O(M log M)), rho_a (rsatoolbox's rho_a: Spearman without tie correction), "
                "cosine (cosine of the RDM vectors, not centred)",
                COMPARE_METHODS,
            ),
            Param("center", bool, True, "column-center before building the RDM (false: RDM of the raw rows)", (True, False)),
        ),
        higher_is_similar=True,
        symmetric=True,
        invariances=frozenset({"isotropic_scaling", "permutation"}),
        extra_invariances=lambda p: (frozenset({"orthogonal"}) if p["rdm"] == "euclidean" else frozenset())
        | (frozenset({"translation"}) if p["center"] or p["rdm"] == "euclidean" else frozenset()),
        min_n=3,
        formula=(
            "compare_{i<j}(RDM_A[i,j], RDM_B[i,j]); RDM = 1 - pearson(rows) or euclidean distance; compare = "
            "spearman | pearson | tau_a = (C - D)/(M(M-1)/2) | rho_a = 12 sum (r-mean)(s-mean)/(M^3-M) | cosine"
        ),
        reference=(
            "Kriegeskorte et al., Representational similarity analysis, Front. Syst. Neurosci. 2008; "
            "Nili et al., A toolbox for RSA, PLoS Comput. Biol. 2014 (tau_a); Schuett et al., Statistical "
            "inference on representational geometries, eLife 2023 (rho_a); rsatoolbox rdm.compare"
        ),
        prepare=_rsa_prepare,
        pair=_rsa_pair,
        permute=_rsa_permute,
        gram=True,
        distinct_rows=True,
        help=(
            "N x N by nature: memory 8*N^2 bytes per RDM (N=20000: 3.0 GiB each, plus the ranking of "
            "N(N-1)/2 values), refused above --max-gram inputs (default 20000; use --max-samples). "
            "Data are column-centered first (center=false: raw rows), so rdm=correlation is translation "
            "invariant; it is not rotation invariant (row means depend on the feature basis), rdm=euclidean is. "
            "Dissimilarities within 1e-12 of the RDM's scale count as tied. kendall_a, rho_a and cosine match "
            "rsatoolbox.rdm.compare(method='tau-a'|'rho-a'|'cosine') on the same RDMs; with ties, rho_a and "
            "kendall_a of identical RDMs are below 1 (no tie correction, by design)."
        ),
        value_range=(-1.0, 1.0),
        # RDM entries are >= 0 (1 - r in [0, 2], distances), so their cosine is in [0, 1]
        value_range_for=lambda p: (0.0, 1.0) if p["compare"] == "cosine" else (-1.0, 1.0),
    )
)

# ---------------------------------------------------------------------------- knn (moved)

# The k-NN family lives in repsim_cli.metrics.neighbours; imported here after rsa so the registry keeps
# its documentation order (rsa, knn, ...) and the old import path keeps working.
from repsim_cli.metrics.neighbours import KNN, KnnState, knn_overlap, mutual_knn, nearest_neighbors  # noqa: E402,F401
