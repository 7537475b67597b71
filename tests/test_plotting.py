"""Heatmap images: valid PNG/SVG/PDF of the expected size, labels, marks, missing matplotlib."""

from __future__ import annotations

import io
import struct
import sys

import numpy as np
import pytest

from repsim_cli.errors import RepsimError
from repsim_cli.engines.grid import grid_from_layers
from repsim_cli.io.layers import Layer, LayerRef
from repsim_cli.metrics import parse_metric
from repsim_cli.render.images import colorbar_label, image_format, pixel_size, render_heatmap, title_text


def mem_layer(name: str, data: np.ndarray, file: str) -> Layer:
    return Layer(LayerRef(file, name, data.shape, data.dtype, "hdf5"), np.asarray(data, dtype=np.float64))


@pytest.fixture
def grid(rng):
    rows = [mem_layer(f"layers/{i}", rng.standard_normal((30, 4)), "a.h5") for i in range(3)]
    cols = [mem_layer(f"layers/{i}", r.data + 0.5 * rng.standard_normal((30, 4)), "b.h5") for i, r in enumerate(rows)]
    return grid_from_layers(rows, cols, parse_metric("cka"), permutations=9, seed=4)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_is_valid_with_expected_pixel_size(grid):
    data = render_heatmap(grid, "png", ["a.h5", "b.h5"])
    assert png_size(data) == pixel_size(3, 3)
    import matplotlib.image

    img = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert img.shape[:2] == pixel_size(3, 3)[::-1]
    # the viridis colormap is actually used: its bright yellow end appears (the best cell)
    assert np.any((img[..., 0] > 0.9) & (img[..., 1] > 0.85) & (img[..., 2] < 0.3))


def test_pixel_size_grows_with_layers(rng):
    layers = [mem_layer(f"l/{i}", rng.standard_normal((20, 3)), "a.h5") for i in range(12)]
    g = grid_from_layers(layers, None, parse_metric("cka"))
    data = render_heatmap(g, "png", ["a.h5"])
    assert png_size(data) == pixel_size(12, 12)
    assert pixel_size(12, 12)[0] > pixel_size(3, 3)[0]


def test_svg_and_pdf_are_valid(grid):
    svg = render_heatmap(grid, "svg", ["a.h5", "b.h5"])
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg[:2000] and svg.rstrip().endswith(b"</svg>")
    pdf = render_heatmap(grid, "pdf", ["a.h5", "b.h5"])
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")


def test_annotate_hatch_and_outline_change_the_image(grid, rng):
    plain = render_heatmap(grid, "png", ["a.h5", "b.h5"])
    annotated = render_heatmap(grid, "png", ["a.h5", "b.h5"], annotate=True)
    assert plain != annotated
    # no permutations and no sanity check: fewer marks than the full grid
    bare = grid_from_layers(
        [mem_layer(f"l/{i}", rng.standard_normal((30, 4)), "a.h5") for i in range(3)], None, parse_metric("cka")
    )
    assert png_size(render_heatmap(bare, "png", ["a.h5"])) == pixel_size(3, 3)


def test_vmin_vmax(grid):
    a = render_heatmap(grid, "png", vmin=0.0, vmax=1.0)
    b = render_heatmap(grid, "png")
    assert a != b
    with pytest.raises(RepsimError, match="vmin < vmax"):
        render_heatmap(grid, "png", vmin=1.0, vmax=0.5)


def test_labels(grid):
    assert colorbar_label(parse_metric("cka")) == "cka"
    assert colorbar_label(parse_metric("cka:debiased=true")) == "cka (debiased=true)"
    assert "lower = more similar" in colorbar_label(parse_metric("procrustes:stat=distance"))
    title = title_text(grid, ["dir/a.h5", "dir/b.h5"])
    assert "a.h5 vs b.h5" in title and "N=30" in title and "seed 4" in title and "9 permutations" in title


def test_image_format_by_extension():
    assert [image_format(p) for p in ("x.png", "x.SVG", "x.pdf", "x.json", "x")] == ["png", "svg", "pdf", None, None]
    with pytest.raises(RepsimError):
        render_heatmap(None, "jpg")


def test_missing_matplotlib_is_a_one_line_error(grid, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(RepsimError, match=r"pip install 'repsim-cli\[plot\]'"):
        render_heatmap(grid, "png")


def test_single_cell_grid_renders(rng):
    x = rng.standard_normal((20, 3))
    g = grid_from_layers([mem_layer("l/0", x, "a.h5")], None, parse_metric("cka"))
    assert g.matrix.tolist() == [[1.0]]
    assert png_size(render_heatmap(g, "png", ["a.h5"])) == pixel_size(1, 1)
