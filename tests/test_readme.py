"""README.md stays true: every option of every command is documented and the metric table is the registry's."""

from __future__ import annotations

import re

import pytest
import typer

from repsim_cli.cli import app
from repsim_cli.metrics.markdown import metrics_markdown_table

from conftest import ROOT

README = (ROOT / "README.md").read_text()
COMMAND = typer.main.get_command(app)


@pytest.mark.parametrize("name", sorted(COMMAND.commands))
def test_every_option_is_in_the_readme(name):
    assert f"repsim {name}" in README
    missing = [
        opt
        for param in COMMAND.commands[name].params
        for opt in [*param.opts, *param.secondary_opts]
        if opt.startswith("--") and opt not in README and opt != "--help"
    ]
    assert not missing, f"repsim {name}: options not documented in README.md: {missing}"


def test_metric_table_is_generated_from_the_registry():
    table = re.search(r"<!-- metric-table -->\n(.*?)<!-- /metric-table -->", README, re.S)
    assert table is not None
    assert table.group(1) == metrics_markdown_table(), "run `make readme`"


def test_python_example_runs_and_its_output_is_current(tmp_path):
    """The README's Python API example runs as shown (from a scratch folder) and prints what the README says."""
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    import build_readme

    (tmp_path / "docs").mkdir()
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    blocks = re.findall(r"<!-- python-example -->\n```python\n(.*?)```\n\n```text\n(.*?)```", README, re.S)
    assert blocks, "no python example in README.md"
    for code, shown in blocks:
        assert build_readme.run_python(code, cwd=tmp_path) == shown, "run `make readme`"
    assert (tmp_path / "docs" / "heatmap_api.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", ["compare", "heatmap", "test", "inputsim", "inspect"])
def test_every_api_parameter_is_in_the_readme(name):
    import inspect

    import repsim_cli as rs

    section = README[README.index("## Python API"):]
    row = next(line for line in section.splitlines() if line.startswith(f"| `rs.{name}("))
    missing = [p for p in inspect.signature(getattr(rs, name)).parameters if p not in row]
    assert not missing, f"rs.{name}: parameters not in the README's API table: {missing}"
