"""Input similarity from the network's own point of view (gradient-cosine kernel).

Charpiat, Girard, Felardos, Tarabalka, "Input Similarity from the Neural Network
Perspective", NeurIPS 2019. Two inputs are similar for a network f_theta when a parameter
update that changes the output on one changes it on the other:

* scalar output, per-example gradients g(x) = grad_theta f_theta(x) (an N x P dataset):
  ``k^C(x, x') = g(x) . g(x') / (||g(x)|| ||g(x')||)``, symmetric, in [-1, 1];
* d outputs, Jacobians J(x) (an N x d x P dataset): ``K(x, x') = J(x) J(x')^T`` (d x d),
  ``K^C(x, x') = K(x, x)^{-1/2} K(x, x') K(x', x')^{-1/2}`` and the scalar similarity is
  ``trace``: tr K^C / d (in [-1, 1]; equals k^C when d = 1) or, for d = 2, ``rotation``:
  ``1/2 sqrt(||K^C||_F^2 + 2 det K^C)`` (in [0, 1]; invariant to rotating each input's
  output space independently, J(x) -> R_x J(x) with det R_x = +1);
* densities of x over a reference set: soft ``sum_x' k^C(x, x')`` (= ĝ(x) . sum_x' ĝ(x')),
  hard ``#{x' : k^C(x, x') >= tau}`` and positive-only ``sum_{x' : k^C > 0} k^C(x, x')^alpha``;
  x itself is excluded unless ``include_self`` (only when the reference set *is* the query
  set: a reference from another dataset has no self);
* reliability against training gradients: ``sum_i g(x) . g(x_i) / ||g(x)||^2`` with the
  *unnormalized* inner product (= g(x) . sum_i g(x_i) / ||g(x)||^2, one pass).

Scale: gradients are read in column blocks (aligned to the HDF5 chunking), converted to
float64 one block at a time, and the Q x M Gram matrix and the per-row d x d self-Grams are
accumulated block by block with compensated (Kahan) summation, so the block size changes
results only at the level of the float64 products inside one block. Peak memory is
O(Q*M*d^2 + N*d*block); N x P is never held in float64. When only the soft density (and/or
reliability) is asked, no Gram matrix is built: pass 1 accumulates the row norms, pass 2
the products with the sum of the normalized reference gradients (O(N*d + block) memory).

Nothing here prints; progress is reported through a callback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from repsim_cli.errors import RepsimError
from repsim_cli.io.gradients import GradRef, _Reader, column_blocks

MULTI_OUTPUT_FORMS = ("trace", "rotation")
#: K(x, x) counts as singular when lambda_min <= SINGULAR_RCOND * lambda_max (without --rcond)
SINGULAR_RCOND = 1e-10
#: kernel values may exceed [-1, 1] by rounding only; anything larger is a bug, not data
_ROUNDING_SLACK = 1e-9

Progress = Callable[[int], None]


# --------------------------------------------------------------------------- accumulation


class _Kahan:
    """Compensated running sum of arrays (Kahan): error independent of the number of blocks."""

    def __init__(self, shape: tuple[int, ...]):
        self.sum = np.zeros(shape)
        self._c = np.zeros(shape)
        self._t = np.empty(shape)

    def add(self, x: np.ndarray) -> None:
        y = np.subtract(x, self._c, out=x if x.dtype == np.float64 and x.flags.writeable else None)
        np.add(self.sum, y, out=self._t)
        np.subtract(self._t, self.sum, out=self._c)
        self._c -= y
        self.sum, self._t = self._t, self.sum


# --------------------------------------------------------------------------- math on small pieces


def inverse_sqrt(kxx: np.ndarray, rcond: float | None, rows: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row K(x, x)^{-1/2} (R x d x d) from the self-Grams ``kxx`` (R x d x d).

    Returns ``(A, rank)``. Rows with K(x, x) = 0 must have been removed. Without ``rcond`` a
    row with lambda_min <= 1e-10 lambda_max is an error naming it (0-based ``rows``); with
    ``rcond`` eigenvalues <= rcond * lambda_max are treated as zero (pseudo-inverse square root).
    """
    lam, vec = np.linalg.eigh(kxx)
    lmax = lam[:, -1:]
    cut = (rcond if rcond is not None else SINGULAR_RCOND) * lmax
    keep = lam > cut
    if rcond is None and not keep.all():
        bad = rows[~keep.all(axis=1)]
        raise RepsimError(
            f"{label}: K(x, x) = J(x) J(x)^T is singular (condition number > {1 / SINGULAR_RCOND:.0e}) for "
            f"{bad.size} rows (0-based: {_preview(bad)}); pass rcond R to use a pseudo-inverse square root"
        )
    inv = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
    a = np.einsum("rij,rj,rkj->rik", vec, inv, vec)
    return a, keep.sum(axis=1)


def normalize_gram(g: np.ndarray, aq: np.ndarray, ar: np.ndarray, form: str = "trace") -> np.ndarray:
    """Kernel matrix from the raw Gram ``g`` ((Q*d) x (M*d)) and whiteners ``aq``, ``ar``.

    K^C(x, x') = A_x K(x, x') A_x'; ``trace`` returns tr K^C / d, ``rotation`` (d = 2)
    1/2 sqrt(||K^C||_F^2 + 2 det K^C), computed as 1/2 sqrt((a + d)^2 + (b - c)^2) for
    K^C = [[a, b], [c, d]] -- the same number (||M||_F^2 + 2 det M = (a+d)^2 + (b-c)^2), but a
    sum of squares, so rounding can never make it negative. Rounding excursions beyond the
    exact range ([-1, 1] for trace, [0, 1] for rotation) are clipped.
    """
    q, d = aq.shape[:2]
    m = ar.shape[0]
    g4 = g.reshape(q, d, m, d)
    t = np.einsum("qab,qbmc->qamc", aq, g4)
    kc = np.einsum("qamc,mcd->qamd", t, ar)
    if form == "trace":
        out = np.einsum("qama->qm", kc) / d
        lo = -1.0
    elif form == "rotation":
        if d != 2:
            raise RepsimError(f"multi_output rotation needs d = 2 outputs, got d = {d}")
        a, b, c, dd = kc[:, 0, :, 0], kc[:, 0, :, 1], kc[:, 1, :, 0], kc[:, 1, :, 1]
        out = 0.5 * np.sqrt((a + dd) ** 2 + (b - c) ** 2)
        lo = 0.0
    else:
        raise RepsimError(f"multi_output must be one of {', '.join(MULTI_OUTPUT_FORMS)}, got {form!r}")
    excess = max(float(np.max(out, initial=0.0)) - 1.0, lo - float(np.min(out, initial=lo)))
    if excess > _ROUNDING_SLACK:  # pragma: no cover - would be a bug, never data
        raise RepsimError(f"internal error: kernel leaves its range by {excess:.3g}")
    return np.clip(out, lo, 1.0, out=out)


def rotation_similarity(kc: np.ndarray) -> float:
    """1/2 sqrt(||K^C||_F^2 + 2 det K^C) of one 2 x 2 normalized kernel (textbook form)."""
    val = float(np.sum(kc**2) + 2 * np.linalg.det(kc))
    return 0.5 * float(np.sqrt(max(val, 0.0)))


def top_k_neighbors(kernel: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` largest kernel values and their column positions (ties: lower index first).

    ``exclude[q]`` is a column to skip for row q (self), or -1.
    """
    q, m = kernel.shape
    idx = np.empty((q, k), dtype=np.int64)
    val = np.empty((q, k))
    for r in range(q):
        row = kernel[r].copy()
        if exclude is not None and exclude[r] >= 0:
            row[exclude[r]] = -np.inf
        kth = np.partition(row, m - k)[m - k]
        cand = np.flatnonzero(row >= kth)
        order = np.lexsort((cand, -row[cand]))[:k]
        idx[r] = cand[order]
        val[r] = row[idx[r]]
    return idx, val


# --------------------------------------------------------------------------- the computation


@dataclass
class InputSimResult:
    """Everything ``repsim inputsim`` reports; indices are 0-based rows of the original files."""

    query_index: np.ndarray
    reference_index: np.ndarray
    n: int  # rows of GRADS
    m: int  # reference rows used
    p: int
    d: int
    form: str
    self_excluded: bool  # True when the reference set is the query set and self is not counted
    same_set: bool
    density_soft: np.ndarray
    density_hard: np.ndarray | None = None
    density_alpha: np.ndarray | None = None
    neighbor_index: np.ndarray | None = None
    neighbor_kernel: np.ndarray | None = None
    reliability: np.ndarray | None = None
    kernel: np.ndarray | None = None
    labels: np.ndarray | None = None
    neighbor_labels: np.ndarray | None = None
    same_label_fraction: np.ndarray | None = None
    dropped: dict[str, list[int]] = field(default_factory=dict)
    block_size: int = 0
    n_blocks: int = 0
    passes: int = 1
    warnings: list[str] = field(default_factory=list)


def needs_gram(top_k: int | None, threshold: float | None, alpha: float | None, keep_kernel: bool, form: str) -> bool:
    """Whether the Q x M Gram is needed (else: two cheap passes, no Q x M matrix)."""
    return bool(top_k or threshold is not None or alpha is not None or keep_kernel or form == "rotation")


def count_steps(grads: GradRef, block_size: int | None, gram: bool) -> int:
    """Number of progress steps (blocks over all passes) of :func:`input_similarity`."""
    return len(column_blocks(grads, block_size)) * (1 if gram else 2)


def _preview(idx: np.ndarray, k: int = 10) -> str:
    head = ", ".join(str(int(i)) for i in idx[:k])
    return head + (f", ... ({idx.size} in all)" if idx.size > k else "")


def _check_rows(label: str, sq: np.ndarray, role: str) -> np.ndarray:
    """Raise on non-finite rows (NaN/Inf, seen as a non-finite sum of squares); return zero rows."""
    bad = np.flatnonzero(~np.isfinite(sq))
    if bad.size:
        raise RepsimError(f"{label}: {role} gradients contain NaN or infinite values in {bad.size} rows (0-based: {_preview(bad)})")
    return np.flatnonzero(sq == 0)


def _no_progress(k: int = 1) -> None:
    return None


def _check_options(top_k: int | None, threshold: float | None, alpha: float | None, form: str, rcond: float | None) -> None:
    if form not in MULTI_OUTPUT_FORMS:
        raise RepsimError(f"multi_output must be one of {', '.join(MULTI_OUTPUT_FORMS)}, got {form!r}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise RepsimError(f"threshold must lie in [0, 1], got {threshold}")
    if alpha is not None and not alpha > 0:
        raise RepsimError(f"alpha must be > 0, got {alpha}")
    if top_k is not None and top_k < 1:
        raise RepsimError(f"top_k must be >= 1, got {top_k}")
    if rcond is not None and not 0 < rcond < 1:
        raise RepsimError(f"rcond must lie in (0, 1), got {rcond}")


def _check_compatible(grads: GradRef, ref: GradRef, train: GradRef | None, form: str) -> None:
    """Same P and d on every side; rotation needs d = 2; reliability needs d = 1."""
    for other, role in ((ref, "reference"), (train, "train")):
        if other is None:
            continue
        if other.p != grads.p:
            raise RepsimError(
                f"{other.label} ({role}, shape {other.shape}) has P={other.p} parameters but "
                f"{grads.label} (shape {grads.shape}) has P={grads.p}"
            )
        if other.d != grads.d:
            raise RepsimError(f"{other.label} ({role}, shape {other.shape}) has d={other.d} outputs but {grads.label} (shape {grads.shape}) has d={grads.d}")
    if form == "rotation" and grads.d != 2:
        raise RepsimError(f"{grads.label} (shape {grads.shape}): the rotation multi-output form needs N x 2 x P Jacobians, got d = {grads.d}")
    if train is not None and grads.d != 1:
        raise RepsimError(f"{grads.label} (shape {grads.shape}): reliability against train gradients is defined for scalar outputs (N x P), got d = {grads.d}")


def _query_indices(grads: GradRef, query: Sequence[int] | np.ndarray | None) -> np.ndarray:
    if query is None:
        return np.arange(grads.n, dtype=np.int64)
    if not isinstance(query, np.ndarray) and all(isinstance(v, (int, np.integer)) for v in query):
        # Python ints can exceed int64: check the range before any conversion
        beyond = [int(v) for v in query if not 0 <= int(v) < grads.n]
        if beyond:
            raise RepsimError(f"{grads.label} (shape {grads.shape}): query indices out of range [0, {grads.n - 1}]: "
                              + ", ".join(str(v) for v in beyond[:5]) + (", ..." if len(beyond) > 5 else ""))
    qidx = np.asarray(query)
    if qidx.ndim != 1 or (qidx.size and not np.issubdtype(qidx.dtype, np.integer)):
        raise RepsimError(f"query indices must be a 1-D list of integers, got shape {qidx.shape} dtype {qidx.dtype}")
    qidx = qidx.astype(np.int64)
    if qidx.size == 0:
        raise RepsimError("no query indices given")
    out = qidx[(qidx < 0) | (qidx >= grads.n)]
    if out.size:
        raise RepsimError(f"{grads.label} (shape {grads.shape}): query indices out of range [0, {grads.n - 1}]: {_preview(out)}")
    return qidx


@dataclass
class _FirstPass:
    """Sums accumulated over the column blocks of pass 1."""

    kq_all: np.ndarray  # N x d x d self-Grams of GRADS
    kr_all: np.ndarray  # M x d x d self-Grams of the reference
    gram: np.ndarray | None  # (Q d) x (M d) cross Gram
    rel_num: np.ndarray | None  # reliability numerators
    train_sq: np.ndarray | None  # squared norms of train gradients


def _first_pass(grads: GradRef, ref: GradRef, train: GradRef | None, qidx: np.ndarray, query_given: bool,
                same_set: bool, gram: bool, blocks: list[tuple[int, int]], step: Progress) -> _FirstPass:
    """Pass 1: self-Grams (norms), the optional Q x M Gram, reliability numerators."""
    d = grads.d
    kxx_q = _Kahan((grads.n, d, d))
    kxx_r = None if same_set else _Kahan((ref.n, d, d))
    gacc = _Kahan((qidx.size * d, ref.n * d)) if gram else None
    rel_num = _Kahan((qidx.size,)) if train is not None else None
    tr_sq = _Kahan((train.n,)) if train is not None else None
    all_queries = not query_given and same_set
    with _Reader(grads) as rg, _Opt(None if same_set else ref) as rr, _Opt(train) as rt, np.errstate(invalid="ignore", over="ignore"):
        # NaN/Inf rows surface as non-finite sums of squares and are reported after the pass
        for c0, c1 in blocks:
            bg = rg.read(c0, c1)
            kxx_q.add(np.einsum("nab,ncb->nac", bg, bg))
            bq = bg[qidx] if query_given else bg
            br = bg
            if rr is not None and kxx_r is not None:
                br = rr.read(c0, c1)
                kxx_r.add(np.einsum("nab,ncb->nac", br, br))
            if gacc is not None:
                fq, fr = bq.reshape(-1, c1 - c0), br.reshape(-1, c1 - c0)
                gacc.add(fq @ fq.T if (all_queries and rr is None) else fq @ fr.T)
            if rt is not None and tr_sq is not None and rel_num is not None:
                bt = rt.read(c0, c1)[:, 0, :]
                tr_sq.add(np.einsum("nb,nb->n", bt, bt))
                rel_num.add(bq[:, 0, :] @ bt.sum(axis=0))
            step(1)
    kq_all = kxx_q.sum
    return _FirstPass(
        kq_all, kq_all if kxx_r is None else kxx_r.sum, None if gacc is None else gacc.sum,
        None if rel_num is None else rel_num.sum, None if tr_sq is None else tr_sq.sum,
    )


def _zero_rows(grads: GradRef, ref: GradRef, train: GradRef | None, first: _FirstPass, qidx: np.ndarray,
               same_set: bool, drop_zero: bool) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]]]:
    """Validate rows (NaN/Inf, zero gradients); the query mask, reference mask and dropped rows."""
    zero_g = _check_rows(grads.label, np.trace(first.kq_all, axis1=1, axis2=2), "GRADS")
    zero_r = zero_g if same_set else _check_rows(ref.label, np.trace(first.kr_all, axis1=1, axis2=2), "reference")
    if train is not None and first.train_sq is not None:
        _check_rows(train.label, first.train_sq, "train")
    zero_q = np.intersect1d(qidx, zero_g)
    dropped: dict[str, list[int]] = {}
    if (zero_q.size or zero_r.size) and not drop_zero:
        parts = []
        if zero_q.size:
            parts.append(f"{grads.label} (shape {grads.shape}): zero gradient in {zero_q.size} rows (0-based: {_preview(zero_q)})")
        if zero_r.size and not (same_set and np.array_equal(zero_r, zero_q)):
            parts.append(f"{ref.label} (shape {ref.shape}): zero gradient in {zero_r.size} rows (0-based: {_preview(zero_r)})")
        raise RepsimError("; ".join(parts) + "; the cosine kernel is undefined there (pass drop_zero to drop them)")
    if zero_q.size:
        dropped["query"] = [int(i) for i in zero_q]
    if zero_r.size:
        dropped["reference"] = [int(i) for i in zero_r]
    qkeep = ~np.isin(qidx, zero_g)
    rkeep = np.ones(ref.n, dtype=bool)
    rkeep[zero_r] = False
    if not qkeep.any():
        raise RepsimError(f"{grads.label}: every query row has a zero gradient; nothing left to compare")
    if not rkeep.any():
        raise RepsimError(f"{ref.label}: every reference row has a zero gradient; nothing left to compare")
    return qkeep, rkeep, dropped


def input_similarity(
    grads: GradRef,
    reference: GradRef | None = None,
    query: Sequence[int] | np.ndarray | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    alpha: float | None = None,
    include_self: bool = False,
    drop_zero: bool = False,
    form: str = "trace",
    rcond: float | None = None,
    train: GradRef | None = None,
    block_size: int | None = None,
    keep_kernel: bool = False,
    progress: Progress | None = None,
) -> InputSimResult:
    """Gradient-cosine kernel of queries against a reference set, with densities and neighbours.

    See the module docstring for the formulas (Charpiat et al., NeurIPS 2019). ``query`` are
    row indices of ``grads`` (default: all rows); ``reference`` defaults to ``grads`` itself.
    Raises :class:`RepsimError` for NaN/Inf rows, zero-gradient rows (unless ``drop_zero``),
    mismatched P or d, out-of-range queries, tau outside [0, 1], alpha <= 0, singular K(x, x).
    """
    _check_options(top_k, threshold, alpha, form, rcond)
    ref = reference if reference is not None else grads
    same_set = ref.same_dataset(grads)
    _check_compatible(grads, ref, train, form)
    qidx = _query_indices(grads, query)
    gram = needs_gram(top_k, threshold, alpha, keep_kernel, form)
    blocks = column_blocks(grads, block_size)
    step: Progress = progress or _no_progress
    first = _first_pass(grads, ref, train, qidx, query is not None, same_set, gram, blocks, step)
    qkeep, rkeep, dropped = _zero_rows(grads, ref, train, first, qidx, same_set, drop_zero)
    q_used, r_used = qidx[qkeep], np.flatnonzero(rkeep)
    aq, _ = inverse_sqrt(first.kq_all[q_used], rcond, q_used, grads.label)
    ar, rank_r = inverse_sqrt(first.kr_all[r_used], rcond, r_used, ref.label)
    res_warn: list[str] = []
    if rcond is not None and (rank_r < grads.d).any():
        res_warn.append(
            f"{ref.label}: K(x, x) is rank-deficient for {(rank_r < grads.d).sum()} rows; "
            "pseudo-inverse square root used (their self-similarity is rank/d < 1)"
        )
    # position of each query's own row in the reference set (self), or -1
    pos_in_ref = np.full(ref.n, -1, dtype=np.int64)
    pos_in_ref[r_used] = np.arange(r_used.size)
    exclude = not include_self and same_set
    excl_col = pos_in_ref[q_used] if exclude else np.full(q_used.size, -1, dtype=np.int64)
    n_candidates = r_used.size - (excl_col >= 0).astype(int)
    if top_k is not None and top_k > n_candidates.min():
        besides = " besides the input itself" if exclude else ""
        raise RepsimError(f"top_k {top_k} is larger than the number of reference inputs available ({int(n_candidates.min())}{besides})")
    result = InputSimResult(
        query_index=q_used, reference_index=r_used, n=grads.n, m=int(r_used.size), p=grads.p, d=grads.d, form=form,
        self_excluded=exclude, same_set=same_set, density_soft=np.empty(0), dropped=dropped,
        block_size=blocks[0][1] - blocks[0][0], n_blocks=len(blocks), passes=1 if gram else 2, warnings=res_warn,
    )
    if train is not None and first.rel_num is not None:
        result.reliability = first.rel_num[qkeep] / np.trace(first.kq_all[q_used], axis1=1, axis2=2)
    if gram:
        _gram_outputs(result, first, qidx, qkeep, ref.n, aq, ar, excl_col, top_k, threshold, alpha, keep_kernel)
    else:
        dens = _soft_density_pass(grads, ref, same_set, blocks, q_used, r_used, aq, ar, step)
        self_val = np.einsum("qab,qbc,qca->q", aq, first.kq_all[q_used], aq) / grads.d  # tr(A K A)/d = 1 (rank/d)
        result.density_soft = dens - np.where(excl_col >= 0, self_val, 0.0)
    return result


def _gram_outputs(result: InputSimResult, first: _FirstPass, qidx: np.ndarray, qkeep: np.ndarray, m_all: int,
                  aq: np.ndarray, ar: np.ndarray, excl_col: np.ndarray, top_k: int | None,
                  threshold: float | None, alpha: float | None, keep_kernel: bool) -> None:
    """Normalize the cross Gram into the kernel; densities and neighbours from it (self excluded)."""
    d, r_used = result.d, result.reference_index
    g = first.gram
    assert g is not None
    first.gram = None
    if not qkeep.all():
        g = g.reshape(qidx.size, d, m_all * d)[qkeep].reshape(-1, m_all * d)
    if r_used.size != m_all:
        g = g.reshape(-1, m_all, d)[:, r_used].reshape(g.shape[0], -1)
    kern = normalize_gram(g, aq, ar, result.form)
    del g
    has_self = excl_col >= 0
    self_val = np.where(has_self, kern[np.arange(kern.shape[0]), np.maximum(excl_col, 0)], 0.0)
    result.density_soft = kern.sum(axis=1) - self_val
    if threshold is not None:
        result.density_hard = (kern >= threshold).sum(axis=1) - (has_self & (self_val >= threshold))
    if alpha is not None:
        pos = np.where(kern > 0, kern, 0.0)
        result.density_alpha = (pos**alpha).sum(axis=1) - np.where(has_self & (self_val > 0), np.maximum(self_val, 0) ** alpha, 0.0)
    if top_k is not None:
        pos_idx, val = top_k_neighbors(kern, top_k, excl_col)
        result.neighbor_index = r_used[pos_idx]
        result.neighbor_kernel = val
    if keep_kernel:
        result.kernel = kern


def _soft_density_pass(grads: GradRef, ref: GradRef, same_set: bool, blocks: list[tuple[int, int]],
                       q_used: np.ndarray, r_used: np.ndarray, aq: np.ndarray, ar: np.ndarray, step: Progress) -> np.ndarray:
    """Pass 2: soft density = <Ĵ(x), sum_x' Ĵ(x')>_F / d, with no Q x M matrix (self not yet removed)."""
    d = grads.d
    dens = _Kahan((q_used.size,))
    # sum_x' A_x' J_x' = A_flat @ J_flat with A_flat[a, r*d + b] = A_r[a, b]  (d x block)
    a_flat = ar.transpose(1, 0, 2).reshape(d, r_used.size * d)
    all_r = r_used.size == ref.n
    all_q = q_used.size == grads.n and np.array_equal(q_used, np.arange(grads.n))
    with _Reader(grads) as rg, _Opt(None if same_set else ref) as rr:
        for c0, c1 in blocks:
            bg = rg.read(c0, c1)
            br = rr.read(c0, c1) if rr is not None else bg
            jr = (br if all_r else br[r_used]).reshape(-1, c1 - c0)
            s = a_flat @ jr
            jq = (bg if all_q else bg[q_used]).reshape(-1, c1 - c0)
            u = (jq @ s.T).reshape(q_used.size, d, d)  # u[q, b, a] = J_q[b] . s[a]
            dens.add(np.einsum("qab,qba->q", aq, u) / d)
            step(1)
    return dens.sum


class _Opt:
    """``with _Opt(ref) as r``: a :class:`_Reader` or None."""

    def __init__(self, ref: GradRef | None):
        self._reader = _Reader(ref) if ref is not None else None

    def __enter__(self) -> _Reader | None:
        return self._reader.__enter__() if self._reader is not None else None

    def __exit__(self, *exc: Any) -> None:
        if self._reader is not None:
            self._reader.close()


def attach_labels(result: InputSimResult, query_labels: np.ndarray | None, reference_labels: np.ndarray | None) -> None:
    """Add per-input labels and, with neighbours, the fraction of top-k neighbours sharing it."""
    if query_labels is None:
        return
    query_labels, reference_labels = _plain_labels(query_labels), _plain_labels(reference_labels)
    assert query_labels is not None
    result.labels = query_labels[result.query_index]
    if reference_labels is not None and result.neighbor_index is not None:
        nl = reference_labels[result.neighbor_index]
        result.neighbor_labels = nl
        result.same_label_fraction = (nl == result.labels[:, None]).mean(axis=1)


def _plain_labels(labels: np.ndarray | None) -> np.ndarray | None:
    """Labels as numbers or str (HDF5 byte strings decoded), so they compare and serialize."""
    if labels is None:
        return None
    arr = np.asarray(labels)
    if arr.dtype.kind in ("S", "O"):
        arr = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.tolist()])
    return arr


def iter_records(result: InputSimResult) -> Iterator[dict[str, Any]]:
    """One JSON-ready record per query input."""
    for r, idx in enumerate(result.query_index):
        rec: dict[str, Any] = {"index": int(idx)}
        if result.labels is not None:
            rec["label"] = result.labels[r].item()
        rec["density_soft"] = float(result.density_soft[r])
        if result.density_hard is not None:
            rec["density_hard"] = int(result.density_hard[r])
        if result.density_alpha is not None:
            rec["density_alpha"] = float(result.density_alpha[r])
        if result.reliability is not None:
            rec["reliability"] = float(result.reliability[r])
        if result.neighbor_index is not None:
            nbrs = []
            assert result.neighbor_kernel is not None
            for j in range(result.neighbor_index.shape[1]):
                item: dict[str, Any] = {"index": int(result.neighbor_index[r, j]), "kernel": float(result.neighbor_kernel[r, j])}
                if result.neighbor_labels is not None:
                    item["label"] = result.neighbor_labels[r, j].item()
                nbrs.append(item)
            rec["neighbors"] = nbrs
        if result.same_label_fraction is not None:
            rec["same_label_fraction"] = float(result.same_label_fraction[r])
        yield rec


def summarize(result: InputSimResult) -> dict[str, Any]:
    """N, M, P, d, what 'self' means, block plan and the mean same-label neighbour fraction."""
    s: dict[str, Any] = {
        "N": result.n, "queries": int(result.query_index.size), "M": result.m, "P": result.p, "d": result.d,
        "multi_output": result.form if result.d > 1 else None,
        "self_excluded": result.self_excluded,
        "self": ("reference is the query set; x itself " + ("excluded" if result.self_excluded else "included"))
        if result.same_set else "reference is another dataset; no self to exclude",
        "mean_density_soft": float(np.mean(result.density_soft)),
        "block_size": result.block_size, "blocks": result.n_blocks, "passes": result.passes,
    }
    if result.reliability is not None:
        s["mean_reliability"] = float(np.mean(result.reliability))
    if result.same_label_fraction is not None:
        s["mean_same_label_fraction"] = float(np.mean(result.same_label_fraction))
    if result.dropped:
        s["dropped"] = result.dropped
    return s


def inputsim_document(
    result: InputSimResult, grads: GradRef, reference: GradRef, train: GradRef | None, params: dict[str, Any],
    query_labels: np.ndarray | None, reference_labels: np.ndarray | None,
) -> dict[str, Any]:
    """Attach labels, collect the caveats, and build the JSON body of ``inputsim``."""
    attach_labels(result, query_labels, reference_labels)
    warnings = list(result.warnings)
    for role, rows in result.dropped.items():
        warnings.append(f"dropped {len(rows)} zero-gradient {role} rows (0-based): {', '.join(map(str, rows))}")
    if query_labels is not None and params.get("top_k") is not None and reference_labels is None:
        warnings.append(f"{reference.label}: no labels found, so no same-label neighbour fraction")
    return {
        "grads": grads.label, "reference": reference.label, "train": train.label if train else None,
        "params": {**params, "block_size": result.block_size},
        "summary": summarize(result), "warnings": warnings, "results": list(iter_records(result)),
    }
