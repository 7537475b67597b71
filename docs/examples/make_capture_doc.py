"""Rebuild docs/capture.md: run every command shown there and paste its real output.

Run from the repository root: ``python docs/examples/make_capture_doc.py`` (about a minute;
writes the demo files into capture-demo/, which it removes at the end).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = "capture-demo"
ENV = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def sh(cmd: str) -> str:
    """Run ``cmd`` (``repsim`` = this checkout's CLI) and return '$ cmd' plus its stdout and stderr."""
    expect_fail = cmd.startswith("! ")
    cmd = cmd[2:] if expect_fail else cmd
    argv = shlex.split(cmd)
    real = [sys.executable, "-m", "repsim_cli", *argv[1:]] if argv[0] == "repsim" else [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    out = subprocess.run(real, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if (out.returncode != 0) != expect_fail:
        raise SystemExit(f"{cmd} failed ({out.returncode}):\n{out.stderr}")
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if not ln.startswith(("Writing model shards", "Loading weights"))]
    tail = f"(exit code {out.returncode})\n" if expect_fail else ""
    return f"$ {cmd}\n" + "\n".join(lines).rstrip() + "\n" + tail


def block(*cmds: str) -> str:
    return "```console\n" + "".join(sh(c) for c in cmds) + "```\n"


TEMPLATE = Path(__file__).with_name("capture_doc_template.md")


def main() -> None:
    text = TEMPLATE.read_text()
    shutil.rmtree(ROOT / DEMO, ignore_errors=True)
    try:
        while "{{" in text:
            start = text.index("{{")
            end = text.index("}}", start)
            cmds = [c.strip() for c in text[start + 2 : end].strip().splitlines() if c.strip()]
            text = text[:start] + block(*cmds) + text[end + 2 :]
    finally:
        shutil.rmtree(ROOT / DEMO, ignore_errors=True)
    (ROOT / "docs" / "capture.md").write_text(text)
    print(f"wrote {ROOT / 'docs' / 'capture.md'}")


if __name__ == "__main__":
    main()
