"""Neighbourhood measures: the k-nearest-neighbour family (``knn``) and CKNNA (``cknna``).

Both compare *which inputs are close to which* in each representation. Neighbours are found in
row blocks (memory O(block N), never N x N; time O(N^2 F)); every statistic after that works on
the N x k neighbour lists (plus, for ``second_order``, the N x 2k distances to the union of the
two lists), so no measure here builds an N x N matrix.

Ranking convention (deterministic): the neighbours of input i are the k other inputs with the
largest similarity (cosine) or smallest distance (Euclidean), self excluded; equal scores are
broken by the lower input index, and the list is ordered best first (rank 1 = nearest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.metrics._linalg import prescaled
from repsim_cli.metrics.registry import Metric, MetricResult, Param, register

# ---------------------------------------------------------------------------- neighbour search


def _block_rows(n: int, budget_bytes: int = 64 * 2**20) -> int:
    return max(1, min(n, budget_bytes // (8 * max(n, 1))))


def neighbour_space(x: np.ndarray, neighbours: str = "cosine", center_rows: bool = False) -> np.ndarray:
    """The rows neighbours are measured in: unit rows (cosine; zero rows stay zero, so their cosine
    with everything is 0) or column-centred rows (euclidean: distances ignore translation)."""
    if neighbours not in ("cosine", "euclidean"):
        raise RepsimError(f"knn: neighbours must be cosine or euclidean, got {neighbours!r}")
    centred = center_rows or neighbours == "euclidean"
    z = prescaled(x, centred)  # x / s with max |entry| in [0.5, 1) before centering: scale free at 1e300 and 1e-300
    n = z.shape[0]
    norms = np.linalg.norm(z, axis=1)
    if not np.any(norms > 1e-12 * np.sqrt(z.shape[1])) or not np.any(norms):
        what = "identical (all distances are 0)" if neighbours == "euclidean" else "zero"
        raise RepsimError(
            f"knn: every row of this {n} x {z.shape[1]} layer is {what}"
            f"{' after centering (rank 0)' if centred else ''}: neighbours are undefined"
        )
    if neighbours == "cosine":
        norms[norms == 0.0] = 1.0
        z /= norms[:, None]
    return z


def _block_scores(z: np.ndarray, sq: np.ndarray | None, start: int, stop: int) -> np.ndarray:
    """Similarities of rows start:stop with every row (cosine: z_i.z_j; euclidean: -||z_i - z_j||^2),
    self set to -inf."""
    sim = z[start:stop] @ z.T
    if sq is not None:
        sim *= 2.0
        sim -= sq[start:stop, None]
        sim -= sq[None, :]
        np.minimum(sim, 0.0, out=sim)
    rows = np.arange(stop - start)
    sim[rows, start + rows] = -np.inf
    return sim


def ranked_neighbors(
    x: np.ndarray, k: int, center_rows: bool = False, neighbours: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """(idx, score): N x k indices of each input's k nearest other inputs, nearest first, and their
    similarity (cosine) or minus squared distance (euclidean).

    Self excluded; equal scores broken by the lower index (deterministic). Row blocks: memory
    O(block N), never N x N.
    """
    z = neighbour_space(x, neighbours, center_rows)
    n = z.shape[0]
    if not 1 <= k < n:
        raise RepsimError(f"knn: k must satisfy 1 <= k < N (N={n} inputs), got k={k}; lower k or use more inputs")
    sq = np.einsum("ij,ij->i", z, z) if neighbours == "euclidean" else None
    idx = np.empty((n, k), dtype=np.int64)
    score = np.empty((n, k))
    block = _block_rows(n)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sim = _block_scores(z, sq, start, stop)
        cols = _top_k_columns(sim, k)  # ascending index within each row
        vals = np.take_along_axis(sim, cols, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")  # best first, ties keep the lower index first
        idx[start:stop] = np.take_along_axis(cols, order, axis=1)
        score[start:stop] = np.take_along_axis(vals, order, axis=1)
        del sim
    return idx, score


def _top_k_columns(sim: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k largest entries of each row, ascending; ties at the k-th value go to the
    lower column index."""
    b, n = sim.shape
    kth = np.partition(sim, n - k, axis=1)[:, n - k]  # the k-th largest value of each row
    take = sim >= kth[:, None]
    count = take.sum(axis=1)
    for r in np.flatnonzero(count > k):  # ties at the k-th value: keep the lowest-index ones
        row = sim[r]
        above = row > kth[r]
        tied = row == kth[r]
        take[r] = above | (tied & (np.cumsum(tied) <= k - np.count_nonzero(above)))
    return np.nonzero(take)[1].reshape(b, k)


def nearest_neighbors(x: np.ndarray, k: int, center_rows: bool = False) -> np.ndarray:
    """N x k indices of each row's k most cosine-similar other rows (self excluded), sorted ascending.

    Ties at the k-th similarity are broken by the lower index, so the result is deterministic.
    Rows with zero norm have cosine similarity 0 with everything. Computed in row blocks:
    memory O(block * N), never N x N.
    """
    return np.sort(ranked_neighbors(x, k, center_rows)[0], axis=1)


# ---------------------------------------------------------------------------- statistics on lists


def knn_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|A_i & B_i| for each row of two N x k index arrays whose rows have distinct entries."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(axis=1)


def common_neighbours(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, pos_a, pos_b) for every j in A_i & B_i: A[row, pos_a] == B[row, pos_b] == j.

    Positions are 0-based ranks (lists ordered nearest first). Rows of ``a`` and ``b`` must have
    distinct entries. O(N k log k).
    """
    k = a.shape[1]
    both = np.concatenate([a, b], axis=1)
    order = np.argsort(both, axis=1, kind="stable")  # equal indices: the A copy first
    srt = np.take_along_axis(both, order, axis=1)
    row, col = np.nonzero(srt[:, 1:] == srt[:, :-1])
    return row, order[row, col], order[row, col + 1] - k


def harmonic(m: np.ndarray) -> np.ndarray:
    """H_m = sum_{t=1}^m 1/t for integer arrays m >= 0 (H_0 = 0)."""
    top = int(m.max(initial=0))
    table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])
    return table[m]


def jaccard_per_input(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|A_i & B_i| / |A_i | B_i| per input (both lists have k entries)."""
    o = knn_overlap(a, b)
    return o / (2.0 * a.shape[1] - o)


def rank_similarity_per_input(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al. (2020) rank similarity per input, as in ReSi's ``RankSimilarity``:

    (1/H_m) sum_{j in A_i & B_i} 2 / ((1 + |r_A(j) - r_B(j)|) (r_A(j) + r_B(j))), m = |A_i & B_i|,
    ranks r starting at 1, H_m the m-th harmonic number; 0 when the lists share nothing.
    """
    n = a.shape[0]
    row, pa, pb = common_neighbours(a, b)
    ra, rb = pa + 1.0, pb + 1.0
    score = np.bincount(row, weights=2.0 / ((1.0 + np.abs(ra - rb)) * (ra + rb)), minlength=n)
    m = np.bincount(row, minlength=n)
    norm = harmonic(m)
    return np.divide(score, norm, out=np.zeros(n), where=m > 0)


def cycle_per_input(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 where input i is among the A-neighbours of one of its B-neighbours (Huh et al.'s cycle-kNN,
    ``knn_A[knn_B]``), else 0."""
    n, k = a.shape
    out = np.empty(n)
    step = max(1, (32 * 2**20) // (8 * k * k))
    for s in range(0, n, step):
        e = min(n, s + step)
        hops = a[b[s:e]]  # (e-s) x k x k: A-neighbours of each B-neighbour
        out[s:e] = (hops == np.arange(s, e)[:, None, None]).any(axis=(1, 2))
    return out


def _distances_to(z: np.ndarray, cols: np.ndarray, neighbours: str, block: int = 4096) -> np.ndarray:
    """d(i, cols[i, t]) for an N x c index array: 1 - cosine (unit rows z) or Euclidean distance."""
    n, c = cols.shape
    out = np.empty((n, c))
    step = max(1, min(block, (32 * 2**20) // (8 * max(1, c * z.shape[1]))))
    for s in range(0, n, step):
        e = min(n, s + step)
        other = z[cols[s:e]]  # (e-s) x c x F
        if neighbours == "cosine":
            out[s:e] = 1.0 - np.einsum("icf,if->ic", other, z[s:e])
        else:
            other -= z[s:e, None, :]
            out[s:e] = np.sqrt(np.einsum("icf,icf->ic", other, other))
    return out


def second_order_per_input(
    a: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray, neighbours: str
) -> tuple[np.ndarray, int]:
    """cos(d_A(i, U_i), d_B(i, U_i)) per input, U_i = A_i | B_i (Hamilton et al. 2016; ReSi's
    ``SecondOrderCosineSimilarity``), and the number of inputs with a zero distance vector.

    d = 1 - cosine similarity (neighbours=cosine, as ReSi) or Euclidean distance. A zero vector on
    both sides counts as 1 (identical), on one side as 0.
    """
    cols = np.concatenate([a, b], axis=1)
    keep = np.ones(cols.shape, dtype=bool)
    row, _, pb = common_neighbours(a, b)
    keep[row, a.shape[1] + pb] = False  # each shared neighbour once
    da = _distances_to(za, cols, neighbours) * keep
    db = _distances_to(zb, cols, neighbours) * keep
    na, nb = np.linalg.norm(da, axis=1), np.linalg.norm(db, axis=1)
    dot = np.einsum("ij,ij->i", da, db)
    ok = (na > 0) & (nb > 0)
    out = np.where(ok, dot / np.where(ok, na * nb, 1.0), np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return np.clip(out, -1.0, 1.0), int(np.count_nonzero(~ok))


# ---------------------------------------------------------------------------- knn


@dataclass
class KnnState:
    idx: np.ndarray  # N x k neighbour indices, nearest first
    k: int
    z: np.ndarray | None = None  # the rows distances are measured on (stat=second_order only)


KNN_STATS = ("mutual", "jaccard", "rank", "joint", "second_order", "cycle")


def _knn_prepare(x: np.ndarray, params: Mapping[str, Any]) -> KnnState:
    idx, _ = ranked_neighbors(x, params["k"], params["center"], params["neighbours"])
    z = neighbour_space(x, params["neighbours"], params["center"]) if params["stat"] == "second_order" else None
    return KnnState(idx, params["k"], z)


def _knn_permute(prep: KnnState, perm: np.ndarray, params: Mapping[str, Any]) -> KnnState:
    """Neighbours of ``x[perm]``: row i is old row perm[i], old index j becomes inv[j].

    Exact except for exact ties in similarity, which the fast path breaks by the original index.
    """
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return KnnState(inv[prep.idx[perm]], prep.k, None if prep.z is None else prep.z[perm])


def _knn_pair(a: KnnState, b: KnnState, params: Mapping[str, Any]) -> MetricResult:
    stat = params["stat"]
    warnings: list[str] = []
    if stat == "mutual":
        per = knn_overlap(a.idx, b.idx) / a.k
    elif stat == "jaccard":
        per = jaccard_per_input(a.idx, b.idx)
    elif stat == "rank":
        per = rank_similarity_per_input(a.idx, b.idx)
    elif stat == "joint":
        per = jaccard_per_input(a.idx, b.idx) * rank_similarity_per_input(a.idx, b.idx)
    elif stat == "cycle":
        per = cycle_per_input(a.idx, b.idx)
    else:
        assert a.z is not None and b.z is not None  # prepared with stat=second_order
        per, zero = second_order_per_input(a.idx, b.idx, a.z, b.z, params["neighbours"])
        if zero:
            warnings.append(
                f"knn: {zero} input(s) are at distance 0 from all their neighbours on one or both sides; "
                "counted as 1 when both sides are, 0 otherwise"
            )
    return MetricResult(float(per.mean()), {}, warnings)


def mutual_knn(x: np.ndarray, y: np.ndarray, k: int = 10, center: bool = True) -> float:
    """Mutual k-nearest-neighbour overlap: mean_i |kNN_X(i) & kNN_Y(i)| / k.

    Neighbours by cosine similarity between rows, self excluded (Huh, Cheung, Wang & Isola,
    "The Platonic Representation Hypothesis", ICML 2024). Like every index here it works on
    column-centered data by default; ``center=False`` uses the raw rows, as the authors' code does.
    """
    return KNN.bind(k=k, center=center).value_of(x, y)


def knn_similarity(
    x: np.ndarray, y: np.ndarray, stat: str = "mutual", k: int = 10, center: bool = True, neighbours: str = "cosine"
) -> float:
    """A k-nearest-neighbour statistic between two representations (mean over inputs i).

    ``mutual``: |A_i & B_i| / k (Huh et al. 2024). ``jaccard``: |A_i & B_i| / |A_i | B_i|.
    ``rank``: Wang et al. (2020) rank similarity (ReSi's ``RankSimilarity``). ``joint``: jaccard x rank.
    ``second_order``: cosine between the distances from i to U_i = A_i | B_i in each representation
    (Hamilton, Leskovec & Jurafsky 2016). ``cycle``: 1 if i is among the A-neighbours of one of its
    B-neighbours (Huh et al.'s cycle-kNN; not symmetric). A_i, B_i = the k nearest other inputs
    (cosine similarity or Euclidean distance), ties broken by the lower index.
    """
    return KNN.bind(stat=stat, k=k, center=center, neighbours=neighbours).value_of(x, y)


KNN = register(
    Metric(
        name="knn",
        summary="k-nearest-neighbour agreement of the inputs (mutual overlap, Jaccard, rank, 2nd-order, cycle)",
        params=(
            Param("k", int, 10, "neighbours per input (1 <= k < N)", minimum=1),
            Param("center", bool, True, "column-center before cosine similarity (false: raw rows, as in Huh et al.'s and ReSi's code)", (True, False)),
            Param(
                "stat",
                str,
                "mutual",
                "mutual: |A_i&B_i|/k; jaccard: |A_i&B_i|/|A_i|B_i|; rank: Wang et al. rank similarity (ReSi); "
                "joint: jaccard*rank; second_order: cosine of the distances to A_i|B_i (Hamilton et al.); "
                "cycle: i among the A-neighbours of its B-neighbours (Huh et al.; not symmetric)",
                KNN_STATS,
            ),
            Param("neighbours", str, "cosine", "cosine: largest cosine similarity of rows; euclidean: smallest distance", ("cosine", "euclidean")),
        ),
        higher_is_similar=True,
        symmetric=lambda p: p["stat"] != "cycle",
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation"}),
        extra_invariances=lambda p: frozenset({"translation"}) if p["center"] or p["neighbours"] == "euclidean" else frozenset(),
        min_n=lambda p: p["k"] + 1,
        formula=(
            "mean_i s(A_i, B_i), A_i = the k nearest other inputs in A; s = |A_i&B_i|/k (mutual), "
            "|A_i&B_i|/|A_i|B_i| (jaccard), sum_{j in A_i&B_i} 2/((1+|r_A-r_B|)(r_A+r_B)) / H_{|A_i&B_i|} (rank), "
            "jaccard*rank (joint), cos(d_A(i,U_i), d_B(i,U_i)) with U_i = A_i|B_i (second_order), "
            "[i in A_j for some j in B_i] (cycle)"
        ),
        reference=(
            "Huh et al., The Platonic Representation Hypothesis, ICML 2024 (mutual, cycle); Wang et al., "
            "Towards understanding learning representations..., 2020 (rank); Hamilton, Leskovec & Jurafsky, "
            "EMNLP 2016 (second_order); Klabunde et al., ReSi benchmark, ICLR 2025"
        ),
        prepare=_knn_prepare,
        pair=_knn_pair,
        permute=_knn_permute,
        distinct_rows=True,
        help=(
            "Columns are centered first, like every index here (center=false: cosine of the raw rows, as "
            "Huh et al.'s mutual_knn and ReSi's code; Huh et al. also clip outliers at the 95th percentile, "
            "which repsim does not do). neighbours=euclidean ranks by distance (translation invariant, center "
            "has no effect). Neighbour ties are broken by the lower input index, so results are deterministic. "
            "second_order uses 1 - cosine (neighbours=cosine, as ReSi) or Euclidean distances. Memory O(block*N)."
        ),
    )
)

# ---------------------------------------------------------------------------- cknna


def unbiased_hsic_sparse(
    n: int, rows: np.ndarray, cols: np.ndarray, a_vals: np.ndarray, b_vals: np.ndarray
) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5; Huh et al.'s ``hsic_unbiased``) of two N x N matrices
    A, B that are zero except at the listed off-diagonal positions (rows[t], cols[t]):

    [sum_ij A_ij B_ji + (1^T A 1)(1^T B 1)/((n-1)(n-2)) - 2 (1^T A B 1)/(n-2)] / (n(n-3)).

    The transpose matters: A, B need not be symmetric. O(nnz log nnz).
    """
    key = rows * n + cols
    order = np.argsort(key)
    key_s, a_s = key[order], a_vals[order]
    tkey = cols * n + rows  # B_ij sits at A's position (j, i)
    pos = np.clip(np.searchsorted(key_s, tkey), 0, max(0, key_s.size - 1))
    hit = key_s[pos] == tkey if key_s.size else np.zeros(0, dtype=bool)
    trace_term = float(np.dot(a_s[pos[hit]], b_vals[hit]))
    colsum_a = np.bincount(cols, weights=a_vals, minlength=n)
    rowsum_b = np.bincount(rows, weights=b_vals, minlength=n)
    total = trace_term + a_vals.sum() * b_vals.sum() / ((n - 1.0) * (n - 2.0)) - 2.0 * float(colsum_a @ rowsum_b) / (n - 2.0)
    return total / (n * (n - 3.0))


@dataclass
class CknnaState:
    idx: np.ndarray  # N x k neighbour indices (largest inner product of unit rows), nearest first
    kern: np.ndarray  # N x k: K_ij at those neighbours
    self_hsic: float  # h(M_K o K, M_K o K)


def _cknna_prepare(x: np.ndarray, params: Mapping[str, Any]) -> CknnaState:
    n, k = x.shape[0], params["k"]
    if n < 4:
        raise RepsimError(f"cknna needs N >= 4 inputs (unbiased HSIC), got N={n}")
    idx, kern = ranked_neighbors(x, k, params["center"], "cosine")
    rows = np.repeat(np.arange(n), k)
    h = unbiased_hsic_sparse(n, rows, idx.ravel(), kern.ravel(), kern.ravel())
    return CknnaState(idx, kern, h)


def _cknna_permute(prep: CknnaState, perm: np.ndarray, params: Mapping[str, Any]) -> CknnaState:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return CknnaState(inv[prep.idx[perm]], prep.kern[perm], prep.self_hsic)  # HSIC is permutation invariant


def _cknna_pair(a: CknnaState, b: CknnaState, params: Mapping[str, Any]) -> MetricResult:
    for side, st in (("A", a), ("B", b)):
        if not st.self_hsic > 0.0:
            raise RepsimError(
                f"cknna is undefined: the unbiased HSIC of side {side}'s k-NN-masked kernel is "
                f"{st.self_hsic:.3g} <= 0 (too few inputs or neighbours); raise k or use more inputs"
            )
    n = a.idx.shape[0]
    row, pa, pb = common_neighbours(a.idx, b.idx)
    cross = unbiased_hsic_sparse(n, row, a.idx[row, pa], a.kern[row, pa], b.kern[row, pb])
    return MetricResult(float(cross / np.sqrt(a.self_hsic) / np.sqrt(b.self_hsic)))


def cknna(x: np.ndarray, y: np.ndarray, k: int = 10, center: bool = True) -> float:
    """CKNNA (Huh, Cheung, Wang & Isola, The Platonic Representation Hypothesis, ICML 2024).

    Rows L2-normalized (after column centring unless ``center=False``, the authors' code);
    K = X X^T, L = Y Y^T; M_ij = 1 when j is among the k nearest neighbours of i (largest inner
    product, self excluded, ties by lower index) in both. Value
    h(M o K, M o L) / sqrt(h(M_K o K, M_K o K) h(M_L o L, M_L o L)) with h the unbiased HSIC with
    zeroed diagonal (:func:`unbiased_hsic_sparse`). Computed from the N x k neighbour lists (memory
    O(N k) after the row-block search); not symmetric in general (M o K is not symmetric).
    """
    return CKNNA.bind(k=k, center=center).value_of(x, y)


CKNNA = register(
    Metric(
        name="cknna",
        summary="CKA restricted to mutual k-nearest-neighbour pairs (Huh et al.'s CKNNA)",
        params=(
            Param("k", int, 10, "neighbours per input (2 <= k < N; the authors require k >= 2)", minimum=2),
            Param("center", bool, True, "column-center before normalizing rows (false: raw rows, as in the authors' code)", (True, False)),
        ),
        higher_is_similar=True,
        symmetric=False,
        invariances=frozenset({"orthogonal", "isotropic_scaling", "permutation"}),
        extra_invariances=lambda p: frozenset({"translation"}) if p["center"] else frozenset(),
        min_n=lambda p: max(4, p["k"] + 1),
        formula=(
            "h(M o K, M o L) / sqrt(h(M_K o K, M_K o K) h(M_L o L, M_L o L)), K = X X^T of unit rows, "
            "M = M_K o M_L mutual k-NN mask, h = unbiased HSIC with zeroed diagonal (transposes kept)"
        ),
        reference="Huh, Cheung, Wang & Isola, The Platonic Representation Hypothesis, ICML 2024",
        prepare=_cknna_prepare,
        pair=_cknna_pair,
        permute=_cknna_permute,
        distinct_rows=True,
        help=(
            "Rows are L2-normalized after column centering (center=false: raw rows, the authors' code). "
            "The masked kernels are not symmetric, so cknna(A, B) != cknna(B, A) in general (the authors' "
            "formula; repsim does not symmetrize it). The authors add 1e-6 to the denominator; repsim does not. "
            "Neighbour ties broken by the lower index. Needs only the N x k neighbour lists: memory O(block*N), "
            "time O(N^2 F) like knn. Undefined (an error) when a side's masked self-HSIC is <= 0. Not bounded "
            "by 1: the masked kernels are neither symmetric nor PSD, so Cauchy-Schwarz does not apply (values "
            "slightly above 1 occur on small samples); identical inputs give exactly 1."
        ),
        value_range=(-float("inf"), float("inf")),
    )
)
