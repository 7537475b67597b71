"""Result types: one record type, and what every command returns, each with ``to_dict``/``to_json``.

- :class:`Record` -- one comparison (the JSON contract of ``repsim compare``: ``a``, ``b``,
  ``metric``, ``params``, ``value``, ``n_samples``, ``features_a``, ``features_b``, the optional
  null fields, ``details``, ``warnings``); built only by :func:`make_record`.
- :class:`Results` -- a sequence of records (``rs.compare``), printable as a table in notebooks.
- :class:`Grid` -- a layer x layer grid (``rs.heatmap``), with ``.plot()``.
- :class:`TestResult` -- the across-seeds group test (``rs.test``).
- :class:`InputSimilarity` -- the gradient-cosine kernel and densities (``rs.inputsim``).

``to_json()`` of each gives exactly the document the matching CLI command prints with
``-f json`` (the envelope ``repsim_version``, ``command``, ``seed``, then the body).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence, overload

import numpy as np

from repsim_cli import __version__
from repsim_cli.errors import RepsimError

#: the keys every compare record starts with, in this order
CORE_KEYS = ("a", "b", "metric", "params", "value", "n_samples", "features_a", "features_b")
#: optional keys of the null statistics (permutation, bootstrap)
NULL_KEYS = ("p_value", "null_mean", "null_std", "permutations", "z", "ci_low", "ci_high", "bootstrap", "ci")


def envelope(command: str, seed: int | None, **body: Any) -> dict[str, Any]:
    """The JSON document every command prints: version, command, seed, then the body."""
    return {"repsim_version": __version__, "command": command, "seed": seed, **body}


def jsonable(obj: Any) -> Any:
    """Plain JSON values: NumPy scalars and arrays converted, NaN/inf as null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(doc: Mapping[str, Any]) -> str:
    """A JSON document as the CLI prints it (indented, strict JSON, trailing newline)."""
    return json.dumps(jsonable(dict(doc)), indent=2, allow_nan=False) + "\n"


def make_record(
    a: str, b: str, metric: Any, value: float, n_samples: int, features_a: int, features_b: int, **extra: Any
) -> dict[str, Any]:
    """The one place the shape of a compare record is defined (``metric`` is a BoundMetric).

    ``extra`` keys (``shape_a``, ``details``, null fields, ...) follow the core keys in the
    order given; ``warnings`` always comes last.
    """
    warnings = list(dict.fromkeys(extra.pop("warnings", [])))
    record: dict[str, Any] = {
        "a": a, "b": b, "metric": metric.name, "params": dict(metric.params), "value": float(value),
        "n_samples": int(n_samples), "features_a": int(features_a), "features_b": int(features_b),
    }
    record.update({k: v for k, v in extra.items() if v is not None or k in NULL_KEYS})
    record["warnings"] = warnings
    return record


@dataclass(frozen=True)
class Record:
    """One comparison: layer ``a`` vs layer ``b`` under one metric (immutable).

    The fields are the JSON contract of ``repsim compare``; null statistics are ``None`` when
    not computed. ``extra`` holds any further keys (``shape_a``, ``bootstrap_rows``, ...).
    """

    a: str
    b: str
    metric: str
    params: Mapping[str, Any]
    value: float
    n_samples: int
    features_a: int
    features_b: int
    p_value: float | None = None
    null_mean: float | None = None
    null_std: float | None = None
    z: float | None = None
    permutations: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci: float | None = None
    bootstrap: int | None = None
    details: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    _order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Record:
        known = {k: d[k] for k in (*CORE_KEYS, *NULL_KEYS, "details") if k in d}
        extra = {k: v for k, v in d.items() if k not in known and k != "warnings"}
        return cls(**known, warnings=tuple(d.get("warnings", ())), extra=extra, _order=tuple(d))

    def to_dict(self) -> dict[str, Any]:
        """The record as ``repsim compare -f json`` prints it (same keys, same order)."""
        values: dict[str, Any] = {k: getattr(self, k) for k in (*CORE_KEYS, *NULL_KEYS, "details")}
        values.update(self.extra)
        values["params"] = dict(self.params)
        values["warnings"] = list(self.warnings)
        order = self._order or tuple(k for k in values if values[k] is not None or k == "warnings")
        return {k: values[k] for k in order}

    @property
    def spec(self) -> str:
        """``metric:key=value`` with the non-default parameters."""
        from repsim_cli.metrics import get_metric

        m = get_metric(self.metric)
        return m.bind(**dict(self.params)).spec


class Results(Sequence[Record]):
    """The records of one ``rs.compare`` call, in A's layer order then metric order."""

    def __init__(self, records: Sequence[Record], seed: int | None = None, command: str = "compare"):
        self._records = list(records)
        self.seed = seed
        self.command = command

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> Results: ...

    def __getitem__(self, i: int | slice) -> Record | Results:
        if isinstance(i, slice):
            return Results(self._records[i], self.seed, self.command)
        return self._records[i]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    @property
    def value(self) -> float:
        """The value when there is exactly one record (one pair, one metric)."""
        if len(self._records) != 1:
            raise RepsimError(f".value needs exactly one record, these results have {len(self._records)}; index them or use .to_dicts()")
        return self._records[0].value

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(w for r in self._records for w in r.warnings))

    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self._records]

    def to_dict(self) -> dict[str, Any]:
        """The document ``repsim compare -f json`` prints."""
        return envelope(self.command, self.seed, results=self.to_dicts())

    def to_json(self) -> str:
        return dumps(self.to_dict())

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per record (params flattened as ``param_<key>``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Results.to_pandas() needs pandas: pip install pandas") from None
        rows = []
        for d in self.to_dicts():
            params = d.pop("params")
            d["warnings"] = "; ".join(d["warnings"])
            rows.append({**d, **{f"param_{k}": v for k, v in params.items()}})
        return pd.DataFrame(rows)

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        cols = ["a", "b", "metric", "value", "n_samples", "features_a", "features_b"]
        cols += [k for k in ("p_value", "z", "ci_low", "ci_high") if any(getattr(r, k) is not None for r in self._records)]
        rows = [[_cell(getattr(r, c) if c != "metric" else r.spec) for c in cols] for r in self._records]
        return cols, rows

    def __repr__(self) -> str:
        cols, rows = self._rows()
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
        return f"Results({len(self)} records, seed={self.seed})\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        cols, rows = self._rows()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows)
        return f"<table><caption>repsim results, seed {self.seed}</caption><tr>{head}</tr>{body}</table>"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5)) else f"{v:.4f}"
    return str(v)


class Grid:
    """A layer x layer grid of one metric (``rs.heatmap``): rows = A's layers, columns = B's."""

    def __init__(self, result: Any, a: str | None = None, b: str | None = None, files: Sequence[str] = ()):
        self._result = result
        self._a, self._b, self._files = a, b, list(files)

    @property
    def values(self) -> np.ndarray:
        """R x C values (``values[i, j]`` = metric(row layer i, column layer j))."""
        return np.array(self._result.matrix)

    @property
    def rows(self) -> list[str]:
        return list(self._result.row_labels)

    @property
    def cols(self) -> list[str]:
        return list(self._result.col_labels)

    @property
    def metric(self) -> str:
        return str(self._result.metric.spec)

    @property
    def seed(self) -> int:
        return int(self._result.seed)

    @property
    def p_values(self) -> np.ndarray | None:
        return None if self._result.p_values is None else np.array(self._result.p_values)

    @property
    def p_adjusted(self) -> np.ndarray | None:
        """Holm-adjusted p-values over the tested cells (NaN where not tested)."""
        return None if self._result.p_holm is None else np.array(self._result.p_holm)

    @property
    def chance_mean(self) -> np.ndarray | None:
        """R x C exact chance levels E0 (mean over all row permutations; ``chance=True``), else None."""
        ch = getattr(self._result, "chance", None)
        return None if ch is None else np.array(ch.mean)

    @property
    def p_moments(self) -> np.ndarray | None:
        """R x C Pearson III p-values from the exact permutation moments (``chance=True``), else None."""
        ch = getattr(self._result, "chance", None)
        return None if ch is None else np.array(ch.p_value)

    @property
    def above_chance(self) -> np.ndarray | None:
        """R x C bool: Holm-adjusted ``p_moments`` <= alpha (True on untested cells); None without chance."""
        above = getattr(self._result, "above_chance", None)
        return None if above is None else np.array(above)

    @property
    def sanity_check(self) -> dict[str, Any] | None:
        """Kornblith et al.'s check (same dict as the JSON ``sanity_check``), or None."""
        s = self._result.sanity
        return None if s is None else s.as_dict(self._result.row_labels, self._result.col_labels)

    @property
    def records(self) -> Results:
        return Results([Record.from_dict(r) for r in self._result.records], self.seed, "heatmap")

    @property
    def warnings(self) -> list[str]:
        return list(self._result.warnings)

    @property
    def result(self) -> Any:
        """The engine's GridResult (for renderers)."""
        return self._result

    def to_dict(self) -> dict[str, Any]:
        """The document ``repsim heatmap -f json`` prints."""
        return envelope("heatmap", self.seed, a=self._a, b=self._b, **self._result.document())

    def to_json(self) -> str:
        return dumps(self.to_dict())

    def plot(self, ax: Any = None, annotate: bool = False, vmin: float | None = None, vmax: float | None = None) -> Any:
        """Draw the grid on ``ax`` (a new figure when None); returns the matplotlib Axes.

        matplotlib is imported only here. Best columns are outlined when the sanity check
        applies, non-significant cells hatched when permutations were run.
        """
        from repsim_cli.render.images import _pyplot, draw_heatmap, figure_size

        if ax is None:
            plt = _pyplot(backend=False)
            r, c = self.values.shape
            ax = plt.figure(figsize=figure_size(r, c), layout="constrained").add_subplot()
        draw_heatmap(ax, self._result, self._files, annotate=annotate, vmin=vmin, vmax=vmax)
        return ax

    def __repr__(self) -> str:
        return f"Grid({len(self.rows)} x {len(self.cols)} {self.metric}, seed={self.seed})\n{np.array2string(self.values, precision=4)}"


@dataclass
class TestResult:
    """The across-seeds group test (``rs.test``): per-layer statistics and p-values or intervals."""

    body: dict[str, Any]  # the JSON document's body (without the envelope)
    rows: list[dict[str, Any]]  # one flat row per layer (+ combined), the CSV output
    seed: int

    __test__ = False  # not a pytest class

    @property
    def statistic(self) -> float:
        """Within minus between (combined over layers when there are several)."""
        return float(self.body["statistic"])

    @property
    def p_value(self) -> float | None:
        """The label-exchange p-value of the combined statistic (or of the single layer)."""
        top = self.body["combined"] or self.body["results"][0]
        p = top.get("p_value")
        return None if p is None else float(p)

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.body["results"])

    @property
    def warnings(self) -> list[str]:
        return list(self.body["warnings"])

    def to_dict(self) -> dict[str, Any]:
        """The document ``repsim test -f json`` prints."""
        return envelope("test", self.seed, **self.body)

    def to_json(self) -> str:
        return dumps(self.to_dict())

    def __repr__(self) -> str:
        p = self.p_value
        return f"TestResult(statistic={self.statistic:.4g}, p_value={'-' if p is None else f'{p:.4g}'}, null={self.body['null']}, seed={self.seed})"


@dataclass
class InputSimilarity:
    """Gradient-cosine input similarity (``rs.inputsim``): kernel, densities, neighbours."""

    result: Any  # the engine's InputSimResult (arrays: density_soft, neighbor_index, kernel, ...)
    body: dict[str, Any]  # the JSON document's body (without the envelope)
    seed: int

    def __getattr__(self, name: str) -> Any:  # density_soft, kernel, neighbor_index, ...
        if name in ("result", "body", "seed"):
            raise AttributeError(name)
        return getattr(self.result, name)

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.body["summary"])

    @property
    def warnings(self) -> list[str]:
        return list(self.body["warnings"])

    def to_dicts(self) -> list[dict[str, Any]]:
        return list(self.body["results"])

    def to_dict(self) -> dict[str, Any]:
        """The document ``repsim inputsim -f json`` prints."""
        return envelope("inputsim", self.seed, **self.body)

    def to_json(self) -> str:
        return dumps(self.to_dict())

    def __repr__(self) -> str:
        s = self.body["summary"]
        return f"InputSimilarity(N={s['N']}, queries={s['queries']}, M={s['M']}, P={s['P']}, d={s['d']}, mean_density_soft={s['mean_density_soft']:.4g})"
