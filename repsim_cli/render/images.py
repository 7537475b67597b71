"""Heatmap images of a :class:`repsim_cli.grid.GridResult` (matplotlib, Agg backend, headless).

matplotlib is imported lazily (the CLI starts without it) and is optional: install it with
``pip install 'repsim-cli[plot]'``. Rows are A's layers top to bottom, columns B's layers left
to right, colormap viridis (perceptually uniform; reversed for distances so that bright always
means similar). The image is rendered to bytes in memory; the caller writes it atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from repsim_cli.errors import RepsimError

IMAGE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
DPI = 150


def image_format(path: str) -> str | None:
    """``png``/``svg``/``pdf`` from the extension of ``path``, else None."""
    return IMAGE_FORMATS.get(Path(path).suffix.lower())


def _pyplot(backend: bool = True) -> Any:
    """matplotlib.pyplot (Agg for files, unless ``backend=False``: a notebook keeps its own)."""
    try:
        import matplotlib
    except ImportError:
        message = "image output needs matplotlib: pip install 'repsim-cli[plot]'"
        raise (RepsimError(message) if backend else ImportError(message)) from None
    if backend:
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


#: an image shows at most this many layers per side (cells become 0.12 in = 18 px at 150 dpi)
MAX_IMAGE_LAYERS = 200
#: and at most this many pixels (about 4 bytes each while matplotlib renders)
MAX_IMAGE_PIXELS = 60_000_000
#: labels longer than this are shortened in the middle (the data outputs keep them whole)
MAX_LABEL_CHARS = 48


def cell_inches(n: int) -> float:
    """Side of one cell: 0.55 in up to 24 layers, then shrinking so the image stays bounded (>= 0.12 in)."""
    return max(0.12, min(0.55, 13.2 / max(1, n)))


def label_style(n_cols: int, col_labels: Sequence[str] = ()) -> tuple[float, int]:
    """(font size in points, rotation in degrees) of the column labels: smaller and upright
    for many or long labels, so neighbouring labels never overlap."""
    n = max(1, n_cols)
    size = min(10.0, max(4.0, cell_inches(n) * 72 * 0.7))
    longest = max((len(str(t)) for t in col_labels), default=0)
    rotation = 0 if n <= 4 and longest <= 10 else (90 if n > 20 or longest > 20 else 45)
    return size, rotation


def _label_room(labels: Sequence[str], size: float, slant: float, free: float) -> float:
    """Extra inches needed by the longest label beyond what the default layout leaves (``free``)."""
    longest = min(MAX_LABEL_CHARS, max((len(str(t)) for t in labels), default=0))
    return max(0.0, longest * 0.6 * size / 72 * slant - free)


def figure_size(n_rows: int, n_cols: int, row_labels: Sequence[str] = (), col_labels: Sequence[str] = ()) -> tuple[float, float]:
    """Figure size in inches: a cell per layer pair (see :func:`cell_inches`), room for the labels and the colorbar."""
    size, rotation = label_style(n_cols, col_labels)
    slant = {0: 0.0, 45: 0.71, 90: 1.0}[rotation]
    width = max(4.8, cell_inches(max(n_rows, n_cols)) * n_cols + 3.4 + _label_room(row_labels, min(10.0, size), 1.0, 1.2))
    height = max(3.8, cell_inches(max(n_rows, n_cols)) * n_rows + 2.2 + _label_room(col_labels, size, slant, 1.0))
    return round(width, 2), round(height, 2)


def pixel_size(n_rows: int, n_cols: int, dpi: int = DPI, row_labels: Sequence[str] = (), col_labels: Sequence[str] = ()) -> tuple[int, int]:
    """(width, height) in pixels of the PNG :func:`render_heatmap` makes."""
    w, h = figure_size(n_rows, n_cols, row_labels, col_labels)
    return int(w * dpi), int(h * dpi)  # Agg truncates figure size x dpi


def check_image_grid(n_rows: int, n_cols: int, dpi: int = DPI) -> None:
    """Refuse (before any computation) a grid too large to draw: too many layers or pixels."""
    if max(n_rows, n_cols) > MAX_IMAGE_LAYERS:
        raise RepsimError(
            f"an image of {n_rows} x {n_cols} layers would be unreadable: images show at most {MAX_IMAGE_LAYERS} "
            "layers per side; select fewer layers (FILE:GLOB) or write the data instead (.csv/.json)"
        )
    w, h = pixel_size(n_rows, n_cols, dpi, ["x" * MAX_LABEL_CHARS] * bool(n_rows), ["x" * MAX_LABEL_CHARS] * bool(n_cols))
    if w * h > MAX_IMAGE_PIXELS:
        raise RepsimError(
            f"an image of {n_rows} x {n_cols} layers would need {w} x {h} pixels (about {4 * w * h / 2**20:.0f} MiB), "
            f"above {MAX_IMAGE_PIXELS:,} pixels; select fewer layers (FILE:GLOB) or write the data instead (.csv/.json)"
        )


def _short(label: str) -> str:
    label = str(label)
    if len(label) <= MAX_LABEL_CHARS:
        return label
    half = (MAX_LABEL_CHARS - 1) // 2
    return label[:half] + "\u2026" + label[-(MAX_LABEL_CHARS - 1 - half):]


def colorbar_label(metric: Any) -> str:
    """The metric with its non-default parameters, e.g. ``cka (kernel=rbf)``; notes distances."""
    name, _, params = metric.spec.partition(":")
    label = name + (f" ({params.replace(',', ', ')})" if params else "")
    if not metric.higher_is_similar:
        label += " - distance, lower = more similar"
    return label


def title_text(grid: Any, files: Sequence[str]) -> str:
    sides = " vs ".join(os.path.basename(f) for f in files) if files else ""
    if grid.self_comparison and files:
        sides = f"{os.path.basename(files[0])} vs itself"
    bits = [f"N={grid.n_samples}", f"seed {grid.seed}"]
    if grid.permutations:
        bits.append(f"{grid.permutations} permutations, Holm alpha={grid.alpha:g}")
    return sides + "\n" + ", ".join(bits)


def _color_limits(m: np.ndarray, vmin: float | None, vmax: float | None) -> tuple[float, float]:
    lo = float(np.nanmin(m)) if vmin is None else vmin
    hi = float(np.nanmax(m)) if vmax is None else vmax
    if lo == hi and vmin is None and vmax is None:  # one cell, or a constant grid: centre the scale on it
        pad = 0.05 * max(1.0, abs(lo))
        lo, hi = lo - pad, hi + pad
    if not lo < hi:
        raise RepsimError(f"color scale needs vmin < vmax, got vmin={lo:g}, vmax={hi:g}")
    return lo, hi


def _axis_label(grid: Any, files: Sequence[str]) -> str:
    xlabel = f"B: {os.path.basename(files[1])}" if len(files) > 1 else (f"A: {os.path.basename(files[0])}" if files else "B")
    if grid.sanity is not None:
        xlabel += (f"\noutlined: best column of each row (red: not the same index)"
                   f"\nsanity check: {grid.sanity.correct}/{grid.sanity.rows} rows correct")
    if grid.permutations:
        xlabel += f"\nhatched: not significant (Holm p > {grid.alpha:g})"
    return xlabel


def _mark_cells(ax: Any, grid: Any) -> None:
    """Hatch non-significant cells; outline each row's best column (red when not the same index)."""
    from matplotlib.patches import Rectangle

    if grid.permutations and grid.tested is not None:
        for i, j in zip(*np.nonzero(grid.tested & ~grid.significant)):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.85", linewidth=0))
    if grid.sanity is not None:
        for i, j in enumerate(grid.sanity.best):
            # black with a white inner line shows on every colour; red marks a wrong row
            color = "black" if grid.sanity.row_correct[i] else "red"
            ax.add_patch(Rectangle((j - 0.44, i - 0.44), 0.88, 0.88, fill=False, edgecolor=color, linewidth=2.2))
            ax.add_patch(Rectangle((j - 0.36, i - 0.36), 0.72, 0.72, fill=False, edgecolor="white", linewidth=0.8))


def _annotate(ax: Any, m: np.ndarray, im: Any, cmap: Any) -> None:
    fontsize = min(8.0, max(3.0, cell_inches(max(m.shape)) * 72 * 0.3))  # "0.95" fits in its cell
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            rgba = cmap(im.norm(m[i, j]))
            lum = 0.2126 * rgba[0] + 0.7152 * rgba[1] + 0.0722 * rgba[2]
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=fontsize, color="black" if lum > 0.5 else "white")


def draw_heatmap(
    ax: Any,
    grid: Any,
    files: Sequence[str] = (),
    annotate: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
) -> Any:
    """Draw the heatmap of ``grid`` (an :class:`~repsim_cli.engines.grid.GridResult`) on ``ax``.

    Marks each row's best column (outlined cell) when the sanity check applies and hatches
    cells that are not significant after Holm correction when permutations were run. Returns
    the image artist.
    """
    plt = _pyplot(backend=False)
    m = np.asarray(grid.matrix, dtype=np.float64)
    r, c = m.shape
    lo, hi = _color_limits(m, vmin, vmax)
    cmap = plt.get_cmap("viridis" if grid.metric.higher_is_similar else "viridis_r")
    im = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi, aspect="equal", interpolation="nearest")
    size, rotation = label_style(c, grid.col_names)
    ax.set_xticks(range(c), labels=[_short(t) for t in grid.col_names], rotation=rotation, fontsize=size,
                  ha={0: "center", 45: "right", 90: "center"}[rotation], rotation_mode="anchor" if rotation == 45 else "default")
    ax.set_yticks(range(r), labels=[_short(t) for t in grid.row_names], fontsize=min(10.0, max(4.0, cell_inches(max(r, c)) * 72 * 0.7)))
    ax.set_xlabel(_axis_label(grid, files), fontsize=8)
    ax.set_ylabel(f"A: {os.path.basename(files[0])}" if files else "A")
    ax.set_title(title_text(grid, files), fontsize=9)
    if colorbar:
        bar = ax.figure.colorbar(im, ax=ax, shrink=0.85)
        bar.set_label(colorbar_label(grid.metric))
    _mark_cells(ax, grid)
    if annotate:
        _annotate(ax, m, im, cmap)
    return im


def render_heatmap(
    grid: Any,
    fmt: str = "png",
    files: Sequence[str] = (),
    annotate: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    dpi: int = DPI,
) -> bytes:
    """The heatmap of ``grid`` as PNG/SVG/PDF bytes (see :func:`draw_heatmap`)."""
    if fmt not in IMAGE_FORMATS.values():
        raise RepsimError(f"image format must be one of {', '.join(IMAGE_FORMATS.values())}, got {fmt!r}")
    r, c = np.shape(grid.matrix)
    check_image_grid(r, c, dpi)
    plt = _pyplot()
    fig = plt.figure(figsize=figure_size(r, c, grid.row_names, grid.col_names), dpi=dpi, layout="constrained")
    try:
        draw_heatmap(fig.add_subplot(), grid, files, annotate, vmin, vmax)
        buf = io.BytesIO()
        metadata = {"Software": None} if fmt == "png" else ({"Date": None} if fmt == "svg" else {"CreationDate": None})
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
        return buf.getvalue()
    finally:
        plt.close(fig)
