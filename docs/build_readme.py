"""Keep README.md true: re-run every ``$ command`` of its console blocks and regenerate the metric table.

Usage (from the repository root, with repsim installed, e.g. ``make readme``)::

    python docs/build_readme.py            # rewrite README.md in place
    python docs/build_readme.py --check    # exit 1 if README.md is out of date

Each fenced ``console`` block is a list of ``$ command`` lines, each followed by its output.
Commands run with bash from the repository root, stderr merged into stdout (as a terminal shows
both); ``echo $?`` reports the previous command's exit code. The block between
``<!-- metric-table -->`` and ``<!-- /metric-table -->`` is ``python -m repsim_cli.metrics.markdown``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"```console\n(.*?)```", re.S)
TABLE = re.compile(r"(<!-- metric-table -->\n)(.*?)(<!-- /metric-table -->)", re.S)
PYTHON = re.compile(r"(<!-- python-example -->\n```python\n)(.*?)(```\n\n```text\n)(.*?)(```)", re.S)


def python_examples(text: str) -> list[str]:
    """The code of every ``<!-- python-example -->`` block."""
    return [m.group(2) for m in PYTHON.finditer(text)]


def run_python(code: str, cwd: Path = ROOT) -> str:
    """Run one example in a fresh interpreter from ``cwd``; its stdout (stderr goes to the caller)."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    if proc.returncode != 0:
        raise RuntimeError(f"README python example failed:\n{proc.stderr}")
    return proc.stdout


def run_block(body: str, env: dict[str, str]) -> str:
    commands = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
    out = []
    rc = 0
    for cmd in commands:
        out.append(f"$ {cmd}")
        if cmd.strip() == "echo $?":
            out.append(str(rc))
            continue
        proc = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True)
        rc = proc.returncode
        text = (proc.stderr + proc.stdout).rstrip("\n")
        out.extend(line.rstrip() for line in text.splitlines())
    return "\n".join(out) + "\n"


def build(text: str) -> str:
    env = dict(os.environ, COLUMNS="100", TERM="dumb", NO_COLOR="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    text = BLOCK.sub(lambda m: "```console\n" + run_block(m.group(1), env) + "```", text)
    from repsim_cli.metrics.markdown import metrics_markdown_table

    import repsim_cli.metrics  # noqa: F401  (registers every metric)

    text = PYTHON.sub(lambda m: m.group(1) + m.group(2) + m.group(3) + run_python(m.group(2)) + m.group(5), text)
    return TABLE.sub(lambda m: m.group(1) + metrics_markdown_table() + m.group(3), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether README.md is up to date")
    args = parser.parse_args(argv)
    old = README.read_text()
    new = build(old)
    if args.check:
        if new != old:
            print("README.md is out of date: run `make readme`")
            return 1
        print("README.md is up to date")
        return 0
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, README)
    print(f"README.md rebuilt ({len(BLOCK.findall(new))} console blocks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
