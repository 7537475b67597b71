"""Layer x layer grids that reuse work: every layer is loaded and prepared once, each cell is one pair.

``repsim heatmap`` compares every layer of A with every layer of B (or of A itself). A naive
tool recomputes both sides' per-layer work for each of the R x C cells; here it is done once
per layer (for linear CKA: centering, the self term ||Xc^T Xc||_F^2 and, when F > N, the
centered Gram), so a cell costs one cross product (``metric.pair``). Against itself, a
symmetric metric needs only the R(R-1)/2 cells above the diagonal and none on the diagonal
when the index of a layer with itself is known exactly (1 for CKA, CCA, RSA...).

Also here, on the grid:

- the sanity check of Kornblith et al. (ICML 2019, section 6.1): with as many layers on each
  side (two seeds of one architecture), is the same-index column strictly the most similar
  one in each row?
- permutation nulls sharing ONE seeded set of row permutations over all cells, with
  Holm-corrected p-values over the grid.

Pure functions: nothing prints; progress is a callback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from repsim_cli import stats
from repsim_cli.engines.compare import LayerCache, LoadOptions, base_record, check_gram, pair_named
from repsim_cli.errors import RepsimError
from repsim_cli.io.budget import check_allocation
from repsim_cli.io.layers import Layer, LayerRef, check_same_n, choose_rows
from repsim_cli.metrics import BoundMetric, MetricResult

Progress = Callable[[int], None]

#: default --max-memory (GiB) for the per-layer states a grid keeps
DEFAULT_MAX_MEMORY_GIB = 8.0

#: relative tolerance under which two values count as tied in the sanity check
TIE_RTOL = 1e-12


def identity_value(metric: BoundMetric) -> float | None:
    """index(X, X) when it is the same for every valid X, else None (then the diagonal is computed).

    1 for the normalized similarities (CKA, CCA family, lr, RSA, mutual kNN, Procrustes
    similarity), 0 for the Procrustes distance and angle. Not for ``meanmax``/``matched``
    (a dead unit correlates 0 with everything, so X vs X is below 1) nor ``hsic`` (not
    normalized). ``tests/test_grid.py`` checks every entry against ``metric.compute(X, X)``.
    """
    name, params = metric.name, metric.params
    if name in ("cka", "cca", "svcca", "pwcca", "lr", "rsa", "knn"):
        return 1.0
    if name == "procrustes":
        return 1.0 if params.get("stat", "similarity") == "similarity" else 0.0
    if name == "dcor" or (name == "eos" and params.get("denominator") == "rank"):  # eos by F: rank/F
        return 1.0
    if name in ("rsm_diff", "gulp", "magnitude", "concentricity", "uniformity"):  # distances
        return 0.0
    return None


@dataclass
class SanityCheck:
    """Kornblith et al. 2019: does each row's same-index column win, strictly?"""

    correct: int
    rows: int
    best: list[int]  # per row, index of the most similar column (first one on ties)
    row_correct: list[bool]

    @property
    def fraction(self) -> float:
        return self.correct / self.rows if self.rows else float("nan")

    def as_dict(self, row_labels: Sequence[str], col_labels: Sequence[str]) -> dict[str, Any]:
        return {
            "correct": self.correct,
            "rows": self.rows,
            "fraction": self.fraction,
            "per_row": [
                {"row": row_labels[i], "best": col_labels[j], "best_index": j, "correct": ok}
                for i, (j, ok) in enumerate(zip(self.best, self.row_correct))
            ],
        }


def sanity_check(matrix: np.ndarray, higher_is_similar: bool = True, rtol: float = TIE_RTOL) -> SanityCheck:
    """Per row i of a square grid: is cell (i, i) strictly the most similar of the row?

    Most similar = largest for similarities, smallest for distances. A value within
    ``rtol`` (relative) of the diagonal cell counts as a tie, and a tie is a failure.
    Fraction correct = the test of Kornblith et al., "Similarity of Neural Network
    Representations Revisited", ICML 2019 (Table 2: linear CKA ~99%, CCA ~1%).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"the sanity check needs a square grid, got shape {m.shape}")
    score = m if higher_is_similar else -m
    best, ok = [], []
    for i, row in enumerate(score):
        best.append(int(np.argmax(row)))
        others = np.delete(row, i)
        tol = rtol * max(1.0, abs(row[i]))
        ok.append(bool(others.size == 0 or row[i] > others.max() + tol))
    return SanityCheck(int(sum(ok)), m.shape[0], best, ok)


@dataclass
class GridResult:
    """A computed grid: values, one record per cell (row-major) and optional statistics."""

    metric: BoundMetric
    row_labels: list[str]  # FILE:LAYER
    col_labels: list[str]
    row_names: list[str]  # LAYER
    col_names: list[str]
    matrix: np.ndarray  # R x C values
    records: list[dict[str, Any]]  # row-major, one per cell, the record contract of `compare`
    n_samples: int
    self_comparison: bool
    computed: np.ndarray  # R x C bool: cells obtained from metric.pair (others mirrored / identity)
    pair_calls: int
    sanity: SanityCheck | None = None
    permutations: int = 0
    seed: int = 0
    alpha: float = 0.05
    p_values: np.ndarray | None = None  # R x C, NaN where not tested
    p_holm: np.ndarray | None = None
    significant: np.ndarray | None = None  # R x C bool (False where not tested)
    tested: np.ndarray | None = None  # R x C bool: cells in the Holm family (and their mirrors)
    warnings: list[str] = field(default_factory=list)
    #: exact permutation moments (``chance=True``): metrics.chance.ChanceGrid, Holm-adjusted
    #: p_moments over the tested cells, whether each tested cell is above chance, and that family
    chance: Any = None
    chance_holm: np.ndarray | None = None
    above_chance: np.ndarray | None = None  # R x C bool (True where not tested)
    tested_chance: np.ndarray | None = None  # R x C bool: the Holm family of p_moments (and mirrors)

    def document(self) -> dict[str, Any]:
        """The JSON body (without the envelope): results, rows, cols, matrix, sanity check, p-values."""
        body: dict[str, Any] = {
            "metric": self.metric.spec,
            "rows": list(self.row_labels),
            "cols": list(self.col_labels),
            "n_samples": self.n_samples,
            "self_comparison": self.self_comparison,
            "matrix": self.matrix.tolist(),
        }
        if self.sanity is not None:
            body["sanity_check"] = self.sanity.as_dict(self.row_labels, self.col_labels)
        if self.permutations:
            body["permutations"] = self.permutations
            body["alpha"] = self.alpha
            body["p_values"] = _nan_to_none(self.p_values)
            body["p_holm"] = _nan_to_none(self.p_holm)
            body["significant"] = np.where(self.tested, self.significant, None).tolist()  # type: ignore[arg-type,attr-defined]
        if self.chance is not None:
            body["chance"] = self._chance_document()
        if self.warnings:
            body["warnings"] = list(self.warnings)
        body["results"] = self.records
        return body


    def _chance_document(self) -> dict[str, Any]:
        ch = self.chance
        return {
            "null_mean_exact": _nan_to_none(ch.mean),
            "null_std_exact": _nan_to_none(ch.std),
            "z_exact": _nan_to_none(ch.z),
            "p_moments": _nan_to_none(ch.p_value),
            "p_moments_holm": _nan_to_none(self.chance_holm),
            "above_chance": np.where(self.tested_chance, self.above_chance, None).tolist(),  # type: ignore[arg-type,attr-defined]
            "adjusted": _nan_to_none(ch.adjusted),
        }


def _nan_to_none(m: np.ndarray | None) -> list[list[float | None]] | None:
    if m is None:
        return None
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in m]


# --------------------------------------------------------------------------- memory


def estimate_memory(n: int, features: Sequence[int], metric: BoundMetric) -> int:
    """Bytes a grid keeps alive: per distinct layer the float64 data and its prepared state
    (about 8 N F each: the centered copy, a basis...), plus 8 N^2 for metrics that build
    N x N matrices (RBF CKA, RSA, kNN). Linear CKA with F > N keeps an N x N Gram, which is
    below 8 N F then. An estimate, not a bound."""
    per_gram = 8 * n * n if metric.gram else 0
    return int(sum(16 * n * f + per_gram for f in features))


def check_memory(n: int, features: Sequence[int], metric: BoundMetric, max_memory_gib: float) -> None:
    """Refuse grids whose per-layer states would exceed ``max_memory`` GiB, saying why."""
    need = estimate_memory(n, features, metric)
    if need > max_memory_gib * 2**30:
        what = "data and prepared states" + (f" incl. one {n} x {n} matrix per layer" if metric.gram else "")
        raise RepsimError(
            f"heatmap of {len(features)} distinct layers with {metric.spec} at N={n} keeps about "
            f"{need / 2**30:.1f} GiB ({what}), above max_memory {max_memory_gib:g} GiB; "
            "use max_samples, pool mean, fewer layers (FILE:GLOB), or raise max_memory"
        )


# --------------------------------------------------------------------------- engines


def compute_grid(
    row_refs: Sequence[LayerRef],
    col_refs: Sequence[LayerRef] | None,
    metric: BoundMetric,
    options: LoadOptions,
    *,
    permutations: int = 0,
    alpha: float = 0.05,
    max_memory_gib: float = DEFAULT_MAX_MEMORY_GIB,
    progress: Progress | None = None,
    chance: bool = False,
) -> GridResult:
    """The grid of ``metric`` between layers ``row_refs`` and ``col_refs`` (None: rows vs themselves).

    Loads each distinct layer once and prepares it once (:class:`engine.LayerCache`), checks
    N, ``--max-gram`` and ``--max-memory`` before loading anything, then calls
    :func:`grid_from_layers`. Permutations are seeded by ``options.seed``.
    """
    if not row_refs:
        raise RepsimError("heatmap: no row layers selected")
    if col_refs is not None and not col_refs:
        raise RepsimError("heatmap: no column layers selected")
    all_refs = list(row_refs) + list(col_refs or [])
    n_total = check_same_n(all_refs)
    rows = choose_rows(n_total, options.max_samples, options.seed, options.samples)
    n = n_total if rows is None else len(rows)
    distinct = list({(r.file, r.name): r for r in all_refs}.values())
    check_gram(metric, n, options.max_gram, distinct[0].label)
    check_memory(n, [r.features(options.pool, options.channel_axis) for r in distinct], metric, max_memory_gib)
    if n < metric.min_n:
        raise RepsimError(f"{distinct[0].label}: N={n} inputs, metric {metric.spec} needs at least {metric.min_n}")

    cache = LayerCache(options, rows, max(2, metric.min_n))
    row_layers = [cache.layer(r) for r in row_refs]
    col_layers = None if col_refs is None else [cache.layer(r) for r in col_refs]
    return grid_from_layers(
        row_layers, col_layers, metric,
        prepare=lambda layer: cache.prepared(layer.ref, metric),
        permutations=permutations, seed=options.seed, alpha=alpha, progress=progress, chance=chance,
    )


def count_cells(n_rows: int, n_cols: int | None, metric: BoundMetric) -> int:
    """Number of ``metric.pair`` calls the observed grid needs (for progress bars)."""
    if n_cols is None:
        off = n_rows * (n_rows - 1) // (2 if metric.symmetric else 1)
        return off + (0 if identity_value(metric) is not None else n_rows)
    return n_rows * n_cols


def count_tested(n_rows: int, n_cols: int | None, metric: BoundMetric) -> int:
    """Number of cells a grid's permutation null tests (self-comparison: off-diagonal cells)."""
    if n_cols is not None:
        return n_rows * n_cols
    return n_rows * (n_rows - 1) // (2 if metric.symmetric else 1)


def grid_from_layers(
    row_layers: Sequence[Layer],
    col_layers: Sequence[Layer] | None,
    metric: BoundMetric,
    *,
    prepare: Callable[[Layer], Any] | None = None,
    permutations: int = 0,
    seed: int = 0,
    alpha: float = 0.05,
    progress: Progress | None = None,
    chance: bool = False,
) -> GridResult:
    """The grid on loaded layers (float64 N x F, same N). ``col_layers=None``: rows vs themselves.

    Work: ``prepare`` once per distinct layer, then one ``metric.pair`` per computed cell:
    R x C cells for two sides; for a self-comparison R(R-1)/2 (symmetric metric) or R(R-1)
    (asymmetric) off-diagonal cells, plus the diagonal only when :func:`identity_value` is
    None. Mirrored and identity cells are filled without computing.

    ``permutations`` > 0: one shared set of row permutations P (``stats.permutation_indices``,
    seeded), applied to the column layer of every cell: null_k = pair(prep_row, prep_col[P_k]),
    using the metric's permute fast path or, without one, re-preparing each permuted column
    layer once per permutation for all its cells. p = (1 + #{null >= observed}) / (B + 1)
    (<= for distances); Holm over the computed cells (self-comparison: off-diagonal cells).
    ``chance``: exact permutation moments of cka/hsic per cell (:func:`_grid_chance`).
    """
    if chance:
        _check_chance(metric)
    if not row_layers:
        raise RepsimError("heatmap: no row layers")
    self_cmp = col_layers is None
    cols = list(row_layers) if col_layers is None else list(col_layers)
    rows = list(row_layers)
    ns = {layer.data.shape[0] for layer in rows + cols}
    if len(ns) != 1:
        detail = ", ".join(f"{l.label} has N={l.data.shape[0]}" for l in rows + cols)
        raise RepsimError(f"layers index different numbers of inputs: {detail}")
    n = ns.pop()
    if n < metric.min_n:
        raise RepsimError(f"{rows[0].label}: N={n} inputs, metric {metric.spec} needs at least {metric.min_n}")
    if permutations < 0:
        raise RepsimError(f"permutations must be >= 0, got {permutations}")
    if not 0 < alpha < 1:
        raise RepsimError(f"alpha must lie in (0, 1), got {alpha}")

    states: dict[str, Any] = {}

    def prep(layer: Layer) -> Any:
        if layer.label not in states:
            states[layer.label] = prepare(layer) if prepare is not None else metric.prepare(layer.data)
        return states[layer.label]

    ident = identity_value(metric) if self_cmp else None
    compute = _cells_to_compute(len(rows), len(cols), self_cmp, metric.symmetric, ident)
    results, calls = _compute_cells(rows, cols, compute, prep, metric, progress)
    _fill_uncomputed(results, compute, ident)
    r, c = compute.shape
    matrix = np.array([[results[(i, j)].value for j in range(c)] for i in range(r)], dtype=np.float64).reshape(r, c)
    records = [base_record(rows[i], cols[j], metric, results[(i, j)]) for i in range(r) for j in range(c)]
    out = GridResult(
        metric=metric, row_labels=[l.label for l in rows], col_labels=[l.label for l in cols],
        row_names=[l.name for l in rows], col_names=[l.name for l in cols], matrix=matrix, records=records,
        n_samples=n, self_comparison=self_cmp, computed=compute, pair_calls=calls, seed=seed, alpha=alpha,
    )
    if not self_cmp and r == c and r > 1:
        out.sanity = sanity_check(matrix, metric.higher_is_similar)
    if chance:
        _grid_chance(out, [prep(layer) for layer in rows], [prep(layer) for layer in cols], results, alpha)
    if permutations:
        _grid_nulls(out, rows, cols, prep, metric, permutations, seed, alpha, progress)
    return out


def _check_chance(metric: BoundMetric) -> None:
    from repsim_cli.metrics.chance import supports_chance

    if not supports_chance(metric):
        raise RepsimError(
            f"chance is available for cka and hsic (biased estimators) only, not {metric.spec}; "
            "use permutations or a cka/hsic metric"
        )


def _tested_cells(out: GridResult) -> np.ndarray:
    """The Holm family: computed cells, without the diagonal of a self-comparison."""
    tested = out.computed.copy()
    if out.self_comparison:
        np.fill_diagonal(tested, False)
    return tested


def _grid_chance(
    out: GridResult, row_states: list[Any], col_states: list[Any], results: dict[tuple[int, int], MetricResult], alpha: float
) -> None:
    """Exact chance levels of every cell (metrics.chance.chance_grid), Holm over the tested cells.

    A tested cell is above chance when its Holm-adjusted ``p_moments`` is <= alpha. The raw
    CKA (not the adjusted value of ``cka:adjusted=true``) is the observed value.
    """
    from repsim_cli.metrics.chance import CHANCE_KEYS, chance_grid

    r, c = out.matrix.shape
    raw = np.array([[results[(i, j)].details.get("raw", results[(i, j)].value) for j in range(c)] for i in range(r)])
    grid = chance_grid(out.metric, row_states, col_states, raw.reshape(r, c))
    tested = _tested_cells(out)
    holm = np.full((r, c), np.nan)
    if tested.any():
        holm[tested] = stats.holm(grid.p_value[tested])
    above = np.ones((r, c), dtype=bool)
    above[tested] = holm[tested] <= alpha
    if out.self_comparison and out.metric.symmetric:  # mirror the tested triangle
        lower = tested.T & ~tested
        holm[lower], above[lower] = holm.T[lower], above.T[lower]
        tested = tested | lower
    out.chance, out.chance_holm, out.above_chance, out.tested_chance = grid, holm, above, tested
    fields = dict(zip(CHANCE_KEYS, ("mean", "std", "skew", "z", "p_value", "adjusted")))
    for idx, record in enumerate(out.records):
        i, j = divmod(idx, c)
        for key, attr in fields.items():
            v = float(getattr(grid, attr)[i, j])
            record[key] = v if np.isfinite(v) else None
        record["above_chance"] = bool(above[i, j]) if tested[i, j] else None


def _cells_to_compute(r: int, c: int, self_cmp: bool, symmetric: bool, ident: float | None) -> np.ndarray:
    """R x C mask of cells computed by ``pair``; the others are mirrored or the identity value."""
    if not self_cmp:
        return np.ones((r, c), dtype=bool)
    i, j = np.indices((r, c))
    return np.where(i == j, ident is None, (i < j) | (not symmetric))


def _compute_cells(
    rows: Sequence[Layer], cols: Sequence[Layer], compute: np.ndarray, prep: Callable[[Layer], Any],
    metric: BoundMetric, progress: Progress | None,
) -> tuple[dict[tuple[int, int], MetricResult], int]:
    results: dict[tuple[int, int], MetricResult] = {}
    for i, j in zip(*np.nonzero(compute)):
        res = pair_named(metric, prep(rows[i]), prep(cols[j]), rows[i].label, cols[j].label, f" (grid cell {i + 1},{j + 1})")
        if not np.isfinite(res.value):
            raise RepsimError(f"{rows[i].label} vs {cols[j].label}: {metric.spec} returned {res.value}")
        results[(int(i), int(j))] = res
        if progress:
            progress(1)
    return results, len(results)


def _fill_uncomputed(results: dict[tuple[int, int], MetricResult], compute: np.ndarray, ident: float | None) -> None:
    """Identity values on the diagonal; mirrored cells of a symmetric self-comparison."""
    for i, j in zip(*np.nonzero(~compute)):
        i, j = int(i), int(j)
        if i == j:
            results[(i, j)] = MetricResult(float(ident))  # type: ignore[arg-type]
        else:
            src = results[(j, i)]
            results[(i, j)] = MetricResult(src.value, _swap_sides(src.details), list(src.warnings))


def _holm_cells(
    out: GridResult, null: np.ndarray, tested: np.ndarray, metric: BoundMetric, permutations: int, seed: int, alpha: float
) -> tuple[dict[tuple[int, int], Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell permutation results, p-values, Holm-adjusted p-values, significance and the tested mask (mirrored)."""
    r, c = out.matrix.shape
    results: dict[tuple[int, int], stats.PermutationResult] = {}
    p = np.full((r, c), np.nan)
    for i, j in zip(*np.nonzero(tested)):
        p[i, j] = stats.permutation_pvalue(out.matrix[i, j], null[i, j], metric.higher_is_similar)
        results[(i, j)] = stats.PermutationResult(float(out.matrix[i, j]), null[i, j], float(p[i, j]), metric.higher_is_similar, seed)
    adj = np.full((r, c), np.nan)
    if tested.any():
        adj[tested] = stats.holm(p[tested])
    sig = np.zeros((r, c), dtype=bool)
    sig[tested] = adj[tested] <= alpha
    mask = tested.copy()
    if out.self_comparison and metric.symmetric:  # mirror the tested triangle
        lower = tested.T & ~tested
        p[lower], adj[lower], sig[lower] = p.T[lower], adj.T[lower], sig.T[lower]
        for i, j in zip(*np.nonzero(lower)):
            results[(i, j)] = results[(j, i)]
        mask = tested | lower
    return results, p, adj, sig, mask


def _swap_sides(details: dict[str, Any]) -> dict[str, Any]:
    """Details of (j, i) seen from (i, j): keys ending in _a and _b swap."""
    out = {}
    for key, value in details.items():
        if key.endswith("_a"):
            key = key[:-2] + "_b"
        elif key.endswith("_b"):
            key = key[:-2] + "_a"
        out[key] = value
    return out


def _grid_nulls(
    out: GridResult,
    rows: Sequence[Layer],
    cols: Sequence[Layer],
    prep: Callable[[Layer], Any],
    metric: BoundMetric,
    permutations: int,
    seed: int,
    alpha: float,
    progress: Progress | None,
) -> None:
    """Permutation p-values for every computed off-diagonal cell, Holm-corrected over them."""
    r, c = out.matrix.shape
    tested = out.computed.copy()
    if out.self_comparison:
        np.fill_diagonal(tested, False)
    perms = stats.nulls.iter_permutations(out.n_samples, permutations, seed)  # one at a time: never P x N
    check_allocation(f"the permutation null of a {r} x {c} grid with {permutations} permutations", r * c * permutations * 8)
    null = np.full((r, c, permutations), np.nan)
    col_rows = [np.flatnonzero(tested[:, j]) for j in range(c)]
    for k, perm in enumerate(perms):
        for j in range(c):
            if not col_rows[j].size:
                continue
            # the permuted column layer, prepared once for all cells of this column
            permuted = metric.permute(prep(cols[j]), perm, cols[j].data)
            for i in col_rows[j]:
                null[i, j, k] = pair_named(metric, prep(rows[int(i)]), permuted, rows[int(i)].label, cols[j].label,
                                           f" (permutation {k + 1} of {permutations})").value
                if progress:
                    progress(1)
    results, p, adj, sig, mask = _holm_cells(out, null, tested, metric, permutations, seed, alpha)
    for idx, record in enumerate(out.records):
        i, j = divmod(idx, c)
        if (i, j) not in results:  # the diagonal of a self-comparison: not tested
            record.update(p_value=None, null_mean=None, null_std=None, permutations=permutations, z=None,
                          p_holm=None, significant=None)
            continue
        record.update(results[(i, j)].as_record())
        record.update(p_holm=float(adj[i, j]), significant=bool(sig[i, j]))
    smallest = 1.0 / (permutations + 1)
    m = int(tested.sum())
    if m and smallest * m > alpha:
        out.warnings.append(
            f"with {permutations} permutations and {m} tested cells no cell can be significant after Holm "
            f"(smallest p-value 1/{permutations + 1}, times {m} > alpha {alpha:g}); "
            f"use permutations {int(np.ceil(m / alpha))} or more"
        )
    out.permutations = permutations
    out.p_values, out.p_holm, out.significant, out.tested = p, adj, sig, mask
