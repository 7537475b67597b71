"""Terminal renderings (rich): compare tables, the terminal heatmap, group tests, inputsim, inspect, metrics.

Each function turns a result document (the JSON-ready dicts the library returns) into a rich
renderable; nothing here computes a statistic. Names and attributes come from the user's files
and are untrusted: every string shown goes through :func:`~repsim_cli.render.tables.escape_text`
(control characters and escape sequences made visible), and the consoles that print these
renderables run with ``markup=False`` (a name is never read as rich markup).
"""

from __future__ import annotations

from typing import Any, Sequence

from repsim_cli.io.layers import split_selector
from repsim_cli.render.tables import escape_deep, escape_text, fmt_value

#: the terminal grid is laid out for this many columns (12 layers fit)
GRID_WIDTH = 80


def compare_table(records: Sequence[dict[str, Any]], seed: int) -> Any:
    """A rich table of compare records (extra columns appear only when present).

    When every record shares the same A file and the same B file, the files go in the title
    and the rows show layer names only.
    """
    from rich.table import Table

    from repsim_cli.io.layers import split_selector

    records = escape_deep(list(records))
    files_a = {split_selector(r["a"])[0] for r in records}
    files_b = {split_selector(r["b"])[0] for r in records}
    short = len(files_a) == 1 and len(files_b) == 1
    title = f"A = {files_a.pop()}   B = {files_b.pop()}" if short else None
    table = Table(caption=f"seed {seed}", caption_justify="left")
    for col in ("A", "B", "metric", "value", "N", "F_A", "F_B"):
        table.add_column(col, justify="right" if col in ("value", "N", "F_A", "F_B") else "left")
    keys = ("null_mean_exact", "adjusted", "p_value", "p_moments", "z", "z_exact", "ci_low", "ci_high", "ci_method")
    extras = [k for k in keys if any(k in r for r in records)]
    for k in extras:
        table.add_column({"null_mean_exact": "E0"}.get(k, k), justify="right")
    for r in records:
        a, b = (split_selector(r["a"])[1], split_selector(r["b"])[1]) if short else (r["a"], r["b"])
        row = [a, b, r["metric"] + _nondefault(r), fmt_value(r["value"]), str(r["n_samples"]), str(r["features_a"]), str(r["features_b"])]
        row += [fmt_value(r.get(k)) for k in extras]
        table.add_row(*row)
    if title is None:
        return table
    from rich.console import Group
    from rich.text import Text

    return Group(Text(title), table)


def _nondefault(record: dict[str, Any]) -> str:
    from repsim_cli.metrics import get_metric

    m = get_metric(record["metric"])
    bound = m.bind(**record["params"])
    return bound.spec[len(m.name):]

# --------------------------------------------------------------------------- terminal grid

#: viridis at 0, 0.1, ..., 1 (matplotlib's table), interpolated linearly for terminal colours
_VIRIDIS = (
    (0x44, 0x01, 0x54), (0x48, 0x24, 0x75), (0x41, 0x44, 0x87), (0x35, 0x5F, 0x8D), (0x2A, 0x78, 0x8E),
    (0x21, 0x91, 0x8C), (0x22, 0xA8, 0x84), (0x44, 0xBF, 0x70), (0x7A, 0xD1, 0x51), (0xBD, 0xDF, 0x26),
    (0xFD, 0xE7, 0x25),
)


def viridis_hex(t: float) -> str:
    """``#rrggbb`` of viridis at ``t`` in [0, 1] (clipped)."""
    t = min(1.0, max(0.0, float(t))) * (len(_VIRIDIS) - 1)
    k = min(int(t), len(_VIRIDIS) - 2)
    f = t - k
    rgb = [round(lo + f * (hi - lo)) for lo, hi in zip(_VIRIDIS[k], _VIRIDIS[k + 1])]
    return "#" + "".join(f"{v:02x}" for v in rgb)


def shorten(label: str, width: int) -> str:
    """Keep the distinguishing end: ``layers/05`` in 8 columns is ``…yers/05``."""
    if len(label) <= width:
        return label
    return "…" + label[-(width - 1):] if width > 1 else label[-width:]


def _fmt(v: float, decimals: int) -> str:
    """``decimals`` < 0: |decimals| digits without the leading zero (``.86``), for wide grids."""
    if abs(v) >= 100:
        return f"{v:.3g}"
    text = f"{v:.{abs(decimals)}f}"
    if decimals < 0:  # compact: three characters for values in (-10, 10), e.g. .86, 1.0, 2.5
        if text.startswith(("0.", "-0.")):
            return text.replace("0.", ".", 1)
        return f"{v:.{abs(decimals) - 1}f}" if abs(v) < 10 else f"{v:.0f}"
    return text


def _grid_layout(result: Any, m: Any) -> tuple[int, int, int, int]:
    """(decimals, value width, label width, cell width) that fit the grid in GRID_WIDTH columns."""
    c = m.shape[1]
    chance = getattr(result, "above_chance", None) is not None
    markers = (1 if result.sanity is not None else 0) + (1 if result.permutations else 0) + (1 if chance else 0)
    label_w = min(max(len(n) for n in result.row_names), 14)
    decimals = -2
    for d in (4, 3, 2, -2):
        width = max(len(_fmt(v, d)) for v in m.ravel())
        if max(8, label_w) + c * (1 + width + markers) <= GRID_WIDTH:
            decimals = d
            break
    vw = max(len(_fmt(v, decimals)) for v in m.ravel())
    if label_w + c * (1 + vw + markers) > GRID_WIDTH:
        label_w = max(8, GRID_WIDTH - c * (1 + vw + markers))
    # column headers may be wider than the values when there is room
    room = (GRID_WIDTH - label_w) // c - 1
    cell_w = max(vw + markers, min(max(len(n) for n in result.col_names), room))
    return decimals, vw, label_w, cell_w


def _cell_marks(result: Any, i: int, j: int) -> str:
    mark = ""
    if result.sanity is not None:
        mark += "*" if result.sanity.best[i] == j else " "
    if result.permutations:
        mark += "·" if result.tested[i, j] and not result.significant[i, j] else " "
    if getattr(result, "above_chance", None) is not None:
        mark += "~" if not result.above_chance[i, j] else " "
    return mark


def _grid_footer(result: Any, lo: float, hi: float) -> list[Any]:
    from rich.text import Text

    similar = result.metric.higher_is_similar
    legend = Text("scale ")
    for k in range(10):
        legend.append("█", style=viridis_hex(k / 9))
    dark, bright = (lo, hi) if similar else (hi, lo)
    legend.append(f" {_fmt(dark, 4)} (dark) to {_fmt(bright, 4)} (bright = {'more' if similar else 'less'} ")
    legend.append("similar)" if similar else "distant, i.e. more similar)")
    footer = [legend]
    if result.self_comparison:
        from repsim_cli.engines.grid import identity_value

        ident = identity_value(result.metric)
        if ident is not None:
            footer.append(Text(f"diagonal = {ident:g} (a layer with itself, not computed)"))
    if result.sanity is not None:
        s = result.sanity
        footer.append(Text("* = most similar column of each row (sanity check, Kornblith et al. 2019)"))
        footer.append(Text(f"sanity check: same-index layer strictly most similar in {s.correct}/{s.rows} rows ({s.fraction:.0%})"))
    if result.permutations:
        n_sig = int(result.significant[result.tested].sum()) if result.tested.any() else 0
        footer.append(Text(f"· = not significant: Holm-adjusted permutation p > {result.alpha:g}"))
        footer.append(Text(f"{n_sig}/{int(result.tested.sum())} tested cells significant ({result.permutations} permutations, seed {result.seed})"))
    if getattr(result, "above_chance", None) is not None:
        footer.append(_chance_footer(result))
    return footer


def _chance_footer(result: Any) -> Any:
    """The ``~`` legend, how many tested cells are above chance, and the range of E0."""
    import numpy as np
    from rich.text import Text

    tested = result.tested_chance
    n_above = int(result.above_chance[tested].sum()) if tested.any() else 0
    e0 = result.chance.mean[tested] if tested.any() else result.chance.mean.ravel()
    return Text(
        f"~ = not above chance: Holm-adjusted p_moments > {result.alpha:g} (exact permutation moments); "
        f"{n_above}/{int(tested.sum())} tested cells above chance; chance level E0 "
        f"{_fmt(float(np.nanmin(e0)), 4)} to {_fmt(float(np.nanmax(e0)), 4)}"
    )


def grid_table(result: Any, files: Sequence[str], vmin: float | None = None, vmax: float | None = None) -> Any:
    """The grid as rich text: coloured cells (viridis background), shortened labels, legend and footer.

    Laid out for 80 columns: with 12 layers the labels take 8 characters and each cell 6.
    """
    import numpy as np
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    m = result.matrix
    files = [escape_text(f) for f in files]
    row_names = [escape_text(n) for n in result.row_names]
    lo = float(np.nanmin(m)) if vmin is None else vmin
    hi = float(np.nanmax(m)) if vmax is None else vmax
    span = hi - lo if hi > lo else 1.0
    similar = result.metric.higher_is_similar
    decimals, vw, label_w, cell_w = _grid_layout(result, m)
    table = Table(box=None, padding=(0, 0), show_edge=False, pad_edge=False)
    table.add_column("", justify="left", no_wrap=True, min_width=label_w, max_width=label_w)
    for name in result.col_names:
        table.add_column(" " + shorten(escape_text(name), cell_w), justify="right", no_wrap=True, min_width=cell_w + 1)
    for i in range(m.shape[0]):
        row: list[Any] = [Text(shorten(row_names[i], label_w))]
        for j in range(m.shape[1]):
            v = float(m[i, j])
            t = (v - lo) / span if similar else (hi - v) / span
            cell = Text(" ")
            text = (_fmt(v, decimals).rjust(vw) + _cell_marks(result, i, j)).rjust(cell_w)
            cell.append(text, style=f"{'black' if t > 0.55 else 'white'} on {viridis_hex(t)}")
            row.append(cell)
        table.add_row(*row)
    names = " vs ".join(files) if len(files) > 1 else (f"{files[0]} vs itself" if files else "")
    if len(result.metric.spec) + 2 + len(names) > GRID_WIDTH and len(files) > 1:  # long paths: one per line
        names = f"{files[0]}\n  vs {files[1]}"
    sides = "B" if len(files) > 1 else "A"
    head = Text(f"{result.metric.spec}: {names}\nrows = A, columns = {sides}; N={result.n_samples}, seed {result.seed}")
    return Group(head, table, *_grid_footer(result, lo, hi))


def group_test_table(doc: dict[str, Any]) -> Any:
    """Rich rendering: every pair per layer, then the per-layer (and combined) test."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    doc = escape_deep(doc)
    results = doc["results"]
    spec = doc["metric"] + _nondefault({"metric": doc["metric"], "params": doc["params"]})
    pairs = Table(title=f"pairwise {spec}", title_justify="left")
    for col, just in (("layer", "left"), ("pair", "left"), ("run A", "left"), ("run B", "left"), ("value", "right")):
        pairs.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in results:
        for kind, recs in (("within", r["within"]), ("between", r["between"])):
            for p in recs:
                label = f"within {p['group_a']}" if kind == "within" else f"between {p['group_a']}-{p['group_b']}"
                pairs.add_row(r["layer"], label, split_selector(p["a"])[0], split_selector(p["b"])[0], fmt_value(p["value"]))
        if r is not results[-1]:
            pairs.add_section()

    bootstrap = doc["null"] == "bootstrap"
    summary = Table(title=f"within - between ({'bootstrap' if bootstrap else 'label-exchange'} null)", title_justify="left")
    cols = ["layer", "within", "between", "statistic", "null mean", "null sd"]
    cols += ["ci_low", "ci_high", "P(stat<=0)"] if bootstrap else ["p_value"]
    for c in cols:
        summary.add_column(c, justify="left" if c == "layer" else "right")
    shown = results + ([doc["combined"]] if doc["combined"] else [])
    for r in shown:
        row = [r["layer"] if r["layer"] != "combined" else "combined (mean)", fmt_value(r["within_mean"]),
               fmt_value(r["between_mean"]), fmt_value(r["statistic"]), fmt_value(r["null_mean"]), fmt_value(r["null_std"])]
        row += [fmt_value(r.get("ci_low")), fmt_value(r.get("ci_high")), fmt_value(r.get("fraction_le_zero"))] if bootstrap else [fmt_value(r.get("p_value"))]
        summary.add_row(*row)
    groups = "; ".join(f"{name}: {len(files)} runs" for name, files in doc["groups"].items())
    if bootstrap:
        how = f"{doc['resamples']} bootstrap resamples of the inputs, {doc['results'][0]['ci']:g} percentile interval"
    elif doc["exact"]:
        how = f"all {doc['splits']} distinct splits enumerated (exact); smallest possible p = {doc['min_p_value']:.4g}"
    else:
        how = f"{doc['resamples']} random relabellings of {doc['splits']} possible splits; smallest possible p = {doc['min_p_value']:.4g}"
    lines = [f"{groups}. {how}. seed {doc['seed']}"]
    if doc["note"]:
        lines.append(f"Note: {doc['note']}")
    return Group(pairs, Text(""), summary, Text("\n".join(lines)))

def inputsim_row(rec: dict[str, Any]) -> dict[str, Any]:
    """CSV row: neighbours as 'i:k' pairs and a separate index list."""
    out = dict(rec)
    if "neighbors" in out:
        nb = out.pop("neighbors")
        out["neighbors"] = " ".join(f"{n['index']}:{n['kernel']!r}" for n in nb)
        if nb and "label" in nb[0]:
            out["neighbor_labels"] = " ".join(str(n["label"]) for n in nb)
    out["warnings"] = []
    return out

def inputsim_table(records: Sequence[dict[str, Any]], summary: dict[str, Any], seed: int) -> Any:
    """A rich table, one row per input; neighbours as ``index(label) kernel``."""
    from rich.table import Table

    records, summary = escape_deep(list(records)), escape_deep(summary)
    cols = [("input", "index")]
    if any("label" in r for r in records):
        cols.append(("label", "label"))
    cols.append(("soft density", "density_soft"))
    for title, key in (("hard", "density_hard"), ("alpha", "density_alpha"), ("reliability", "reliability"), ("same label", "same_label_fraction")):
        if any(key in r for r in records):
            cols.append((title, key))
    caption = (
        f"N={summary['N']} M={summary['M']} P={summary['P']} d={summary['d']}; {summary['self']}; seed {seed}"
        + (f"; mean same-label fraction {summary['mean_same_label_fraction']:.4f}" if "mean_same_label_fraction" in summary else "")
    )
    table = Table(caption=caption, caption_justify="left")
    for title, _ in cols:
        table.add_column(title, justify="right")
    has_nb = any("neighbors" in r for r in records)
    if has_nb:
        table.add_column("neighbours: index(label) kernel", justify="left")
    for r in records:
        row = [fmt_value(r.get(key)) for _, key in cols]
        if has_nb:
            row.append("  ".join(
                f"{n['index']}" + (f"({n['label']})" if "label" in n else "") + f" {n['kernel']:.3f}" for n in r.get("neighbors", [])
            ))
        table.add_row(*row)
    return table

def inspect_table(docs: list[dict[str, Any]], constant: bool) -> Any:
    from rich.console import Group
    from rich.table import Table

    docs = escape_deep(docs)
    parts = []
    for d in docs:
        table = Table(title=f"{d['file']} ({d['format']})", title_justify="left")
        for col in ("name (select as FILE:NAME)", "layer?", "shape", "dtype", "N", "features"):
            table.add_column(col, justify="right" if col in ("N", "features") else "left")
        if constant:
            table.add_column("constant cols", justify="right")
        order = {name: i for i, name in enumerate(d["layers"])}
        for e in sorted(d["datasets"], key=lambda e: (not e["is_layer"], order.get(e["name"], len(order)))):
            row = [
                e["name"],
                "yes" if e["is_layer"] else f"no: {e['reason']}",
                "x".join(str(s) for s in e["shape"]) or "scalar",
                e["dtype"],
                str(e.get("n_samples", "")),
                str(e.get("features", "")),
            ]
            if constant:
                row.append(str(e.get("constant_columns", "")))
            table.add_row(*row)
        parts.append(table)
        if d["attrs"]:
            attrs = escape_text("; ".join(f"{k}={v}" for k, v in d["attrs"].items()))  # values may be arrays of text
            parts.append(f"attributes: {attrs}\n")  # type: ignore[arg-type]
    return Group(*parts)

def metrics_table(entries: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(show_lines=True, width=132)
    for col, ratio in (("metric", 3), ("parameters (default)", 4), ("kind", 3), ("invariant to", 3), ("min N", 1), ("formula / reference", 5)):
        table.add_column(col, ratio=ratio, overflow="fold")
    for e in entries:
        params = "\n".join(
            f"{p['name']}=" + ("|".join(_fmt_param(c) for c in p["choices"]) if p["choices"] else p["type"]) + f" ({_fmt_param(p['default'])})"
            for p in e["params"]
        )
        kind = f"{e['kind']}\nsymmetric: {e['symmetry']}" + (f"\nstreams: {e['streamable_note']}" if 'streamable_note' in e else "")
        table.add_row(
            f"{e['name']}\n{e['summary']}",
            params or "-",
            kind,
            e["invariance_notes"],
            str(e["min_n"]),
            f"{e['formula']}\n{e['reference']}",
        )
    return table


def _fmt_param(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
