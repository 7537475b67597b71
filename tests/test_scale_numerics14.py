"""Overflow and underflow: every registered metric at activations of magnitude 1e300, 1e-300 and
mixed scales (issue 14). Generated from the registry, so a metric added later is covered.

Scale-invariant indexes (``isotropic_scaling`` among the bound metric's invariances) must give
the value they give at scale 1 (to 1e-8); every other index either gives a finite value or raises
a RepsimError naming the metric -- a NaN or infinity is never returned.
"""

from __future__ import annotations

import numpy as np
import pytest

from repsim_cli.errors import RepsimError
from repsim_cli.metrics import REGISTRY, BoundMetric

SCALES = [(1e300, 1e300), (1e-300, 1e-300), (1e300, 1e-300), (2.0**-1070 * 1e15, 1.0)]


def bindings() -> list[BoundMetric]:
    """Every metric with its defaults, and with each alternative value of each choice parameter."""
    out = []
    for metric in REGISTRY.values():
        out.append(metric.bind())
        for p in metric.params:
            for choice in p.choices or ():
                if choice != p.default:
                    out.append(metric.bind(**{p.name: choice}))
    return out


BOUND = bindings()


def data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    y = x @ rng.standard_normal((5, 4)) + 0.5 * rng.standard_normal((n, 4))
    return x, y


@pytest.mark.parametrize("metric", BOUND, ids=[m.spec for m in BOUND])
@pytest.mark.parametrize("sx,sy", SCALES, ids=[f"{a:.0e}-{b:.0e}" for a, b in SCALES])
def test_value_at_extreme_scales(metric: BoundMetric, sx: float, sy: float) -> None:
    x, y = data(max(40, metric.min_n + 5))
    reference = metric.compute(x, y).value
    if "isotropic_scaling" in metric.invariances:
        value = metric.compute(x * sx, y * sy).value
        assert value == pytest.approx(reference, abs=1e-8, rel=1e-8)
    else:
        try:
            value = metric.compute(x * sx, y * sy).value
        except RepsimError as exc:
            assert metric.name in str(exc)
        else:
            assert np.isfinite(value)


@pytest.mark.parametrize("metric", BOUND, ids=[m.spec for m in BOUND])
def test_identical_sides_at_1e300_are_identical(metric: BoundMetric) -> None:
    """The issue's example: the same layer at 1e300 on both sides (true CKA/Procrustes/RSA/matching 1)."""
    x, _ = data(max(40, metric.min_n + 5), seed=1)
    if "isotropic_scaling" not in metric.invariances:
        return
    for s in (1e300, 1e-300):
        assert metric.compute(x * s, x * s).value == pytest.approx(metric.compute(x, x).value, abs=1e-8)


@pytest.mark.parametrize("metric", [m for m in BOUND if m.name in ("cka", "cca", "procrustes", "svcca", "pwcca", "lr")],
                         ids=lambda m: m.spec)
def test_rank_zero_is_relative_to_the_data_scale(metric: BoundMetric) -> None:
    """At 1e-300 a varied layer is not 'rank 0'; a constant one is, at any scale."""
    x, y = data(40)
    for s in (1e-300, 1e300):
        metric.compute(x * s, y)  # no rank-0 error
        const = np.full_like(x, 3.0 * s)
        with pytest.raises(RepsimError, match="rank.0|constant|inputs is 0"):
            metric.compute(const, y)


def test_linear_hsic_keeps_its_scale_and_refuses_overflow() -> None:
    from repsim_cli.metrics import hsic

    x, y = data()
    h = hsic(x, y)
    assert hsic(x * 2.0**-500, y * 2.0**-500) == pytest.approx(h * 2.0**-2000, rel=1e-12)
    assert hsic(x * 1e150, y) == pytest.approx(h * 1e300, rel=1e-12)
    with pytest.raises(RepsimError, match="hsic.*not finite"):
        hsic(x * 1e300, y * 1e300)


def test_nan_input_is_an_error_not_a_nan_value() -> None:
    x, y = data()
    x[3, 2] = np.nan
    for m in BOUND:
        with pytest.raises((RepsimError, ValueError)):
            value = m.compute(x, y).value
            assert np.isfinite(value)  # a finite value from NaN input would also fail here
            raise ValueError("accepted NaN input")


@pytest.mark.parametrize("metric", [m for m in BOUND if {"isotropic_scaling", "translation"} <= m.invariances],
                         ids=lambda m: m.spec)
def test_offset_near_the_largest_float(metric: BoundMetric) -> None:
    """Column sums of values near 1e308 overflow: the mean is taken after an exact rescaling."""
    x, y = data(max(40, metric.min_n + 5))
    reference = metric.compute(x, y).value
    assert metric.compute(x * 2.0**1015 + 2.0**1022, y).value == pytest.approx(reference, abs=1e-8)


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_compare_in_memory_and_streamed_at_extreme_scales(tmp_path, scale):
    """End to end: both engines give the scale-1 value; a non-finite value is exit 2 naming layer and metric."""
    import json

    import h5py
    from typer.testing import CliRunner

    from repsim_cli.cli import app

    x, y = data(60)
    for name, arr in (("a", x), ("b", y), ("as", x * scale), ("bs", y * scale)):
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            f["l"] = arr
    run = lambda *a: CliRunner().invoke(app, [str(v) for v in a])  # noqa: E731
    ref = json.loads(run("compare", tmp_path / "a.h5", tmp_path / "b.h5", "-m", "cka", "-f", "json").stdout)
    for stream in ("--stream", "--no-stream"):
        out = run("compare", tmp_path / "as.h5", tmp_path / "bs.h5", "-m", "cka", "-m", "cka:debiased=true", stream, "-f", "json")
        assert out.exit_code == 0, out.output
        value = json.loads(out.stdout)["results"][0]["value"]
        assert value == pytest.approx(ref["results"][0]["value"], abs=1e-8)
    if scale > 1:
        bad = run("compare", tmp_path / "as.h5", tmp_path / "bs.h5", "-m", "hsic")
        assert bad.exit_code == 2 and "metric hsic" in bad.output and "not finite" in bad.output and "as.h5" in bad.output
