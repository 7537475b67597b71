"""Issue 14 (outputs, signals, printed names, --quiet/--progress): each class as a regression test.

Nothing here touches the real /dev/stdout or /dev/null entries: device targets are symlinks
or device nodes inside tmp_path, so a regression (replacing the target) harms nothing.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import SAMPLE, write_h5
from typer.testing import CliRunner

from repsim_cli.cli import app
from repsim_cli.render.output import check_distinct_outputs, is_direct, write_atomic
from repsim_cli.render.progress import LineProgress, fmt_duration, progress_mode
from repsim_cli.render.tables import csv_safe, escape_text, to_delimited

runner = CliRunner()
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and /dev/full")
ROOT = Path(__file__).resolve().parent.parent
EVIL = ["\x1b]0;pwned\x07", "clear\x1b[2J", "x\nrepsim: error: fake", '=HYPERLINK("evil","c")']


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def repsim(*args: object, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "repsim_cli", *map(str, args)], env=env, timeout=120, **kwargs)


def no_debris(folder: Path) -> bool:
    return not [p for p in os.listdir(folder) if p.startswith(".repsim-")]


@pytest.fixture
def evil_files(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    x = rng.standard_normal((40, 5))
    a = write_h5(tmp_path / "evil_a.h5", {n: x + 0.1 * rng.standard_normal(x.shape) for n in EVIL})
    b = write_h5(tmp_path / "evil_b.h5", {n: x + 0.1 * rng.standard_normal(x.shape) for n in EVIL})
    with h5py.File(a, "a") as f:  # attributes are untrusted too, also as arrays of text
        f.attrs["note"] = "\x1b[31mred\x1b]8;;http://evil\x07link"
        f.attrs["tags"] = np.array(["ok", "\x1b[2Jgone"], dtype=h5py.string_dtype())
    return a, b


# ------------------------------------------------------------------ 1. outputs onto special files


def test_output_through_a_symlink_to_a_device_writes_the_device(tmp_path, pair_files):
    link = tmp_path / "out.json"
    link.symlink_to("/dev/null")
    result = run("compare", *pair_files, "-o", link)
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == "/dev/null"  # not replaced by a regular file
    assert no_debris(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_output_onto_a_device_node_keeps_the_node(tmp_path, pair_files):
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for cmd in (["compare", *pair_files, "-f", "json"], ["heatmap", *pair_files, "-f", "json"],
                ["heatmap", *pair_files, "--format", "csv", "--data-out", tmp_path / "d.csv"]):
        result = run(*cmd, "-o", node)
        assert result.exit_code == 0, result.stderr
        assert stat.S_ISCHR(os.lstat(node).st_mode), cmd
    assert is_direct(str(node))


def test_output_onto_a_fifo_is_written_in_place(tmp_path, pair_files):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists, so the writer never blocks
    try:
        result = run("compare", *pair_files, "-f", "json", "-o", fifo)
        assert result.exit_code == 0, result.stderr
        data = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert json.loads(data)["command"] == "compare"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dash_is_stdout_in_every_command(tmp_path, pair_files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = pair_files
    doc = json.loads(run("compare", a, b, "-f", "json", "-o", "-").stdout)
    assert doc["command"] == "compare"
    result = run("heatmap", a, b, "-f", "csv", "-o", "-")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("a,b,metric")
    assert run("inspect", a, "-o", "-", "-f", "json").exit_code == 0
    assert run("metrics", "-o", "-", "-f", "json").exit_code == 0
    assert not (tmp_path / "-").exists()


@linux_only
def test_proc_self_fd_and_dev_stdout_reach_the_caller(tmp_path, pair_files):
    link = tmp_path / "stdout.json"
    link.symlink_to("/dev/stdout")
    for target in ("/proc/self/fd/1", link):
        out = repsim("compare", *pair_files, "-f", "json", "-o", target, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["command"] == "compare"
    assert link.is_symlink()


def test_heatmap_image_onto_a_device_symlink(tmp_path, pair_files):
    link = tmp_path / "grid.png"
    link.symlink_to("/dev/null")
    result = run("heatmap", *pair_files, "-o", link)
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink()


def test_hdf5_kernel_onto_a_device_is_refused_before_work(tmp_path):
    link = tmp_path / "k.h5"
    link.symlink_to("/dev/null")
    result = run("inputsim", SAMPLE / "grads.h5", "--kernel-out", link)
    assert result.exit_code == 2
    assert "needs a regular file" in result.stderr and result.stderr.count("\n") == 1
    assert link.is_symlink()


# ------------------------------------------------------------------ 2. failed writes are failures


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


def test_stdout_at_a_file_size_limit_is_exit_2(tmp_path, pair_files):
    out_file = tmp_path / "out.json"
    with open(out_file, "wb") as fh:
        out = repsim("compare", *pair_files, "-m", "cka", "-m", "procrustes", "-f", "json",
                     stdout=fh, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_file_size)
    assert out_file.stat().st_size == 1024  # the limit cut it ...
    assert out.returncode == 2  # ... and the run says so
    errors = [line for line in out.stderr.splitlines() if line.startswith("repsim: error:")]
    assert len(errors) == 1 and "File too large" in errors[0]


def test_output_file_at_a_size_limit_leaves_nothing(tmp_path, pair_files):
    out = repsim("compare", *pair_files, "-m", "cka", "-m", "procrustes", "-o", tmp_path / "r.json",
                 capture_output=True, text=True, preexec_fn=_limit_file_size)
    assert out.returncode == 2 and "File too large" in out.stderr
    assert not (tmp_path / "r.json").exists() and no_debris(tmp_path)


@linux_only
def test_stdout_on_a_full_disk_is_exit_2(pair_files):
    with open("/dev/full", "wb") as full:
        out = repsim("compare", *pair_files, "-f", "json", stdout=full, stderr=subprocess.PIPE, text=True)
    assert out.returncode == 2 and "No space left" in out.stderr


def test_closed_stderr_never_decides_the_exit_code(pair_files):
    def close_stderr() -> None:
        os.close(2)

    good = repsim("compare", *pair_files, "-f", "csv", stdout=subprocess.PIPE, text=True, preexec_fn=close_stderr)
    assert good.returncode == 0 and good.stdout.startswith("a,b,metric")
    bad = repsim("compare", "missing.h5", pair_files[1], stdout=subprocess.PIPE, preexec_fn=close_stderr)
    assert bad.returncode == 2
    gate = repsim("compare", *pair_files, "--fail-below", "0.9999", stdout=subprocess.PIPE, preexec_fn=close_stderr)
    assert gate.returncode == 1  # the gate still speaks through the exit code


# ------------------------------------------------------------------ 3. two outputs on one file


def test_two_outputs_on_one_file_are_refused_in_every_command(tmp_path, pair_files):
    a, b = pair_files
    first = tmp_path / "k.h5"
    first.write_bytes(b"old")
    hard = tmp_path / "hard.h5"
    os.link(first, hard)
    result = run("inputsim", SAMPLE / "grads.h5", "--kernel-out", first, "-o", hard, "-f", "json")
    assert result.exit_code == 2 and "name the same file" in result.stderr
    assert first.read_bytes() == b"old"
    data = tmp_path / "g.json"
    data.write_text("{}")
    os.link(data, tmp_path / "g2.json")
    result = run("heatmap", a, b, "-o", data, "--data-out", tmp_path / "g2.json")
    assert result.exit_code == 2 and "name the same file" in result.stderr
    assert data.read_text() == "{}"


def test_an_output_hard_linked_to_an_input_is_refused(tmp_path, pair_files):
    a, b = pair_files
    twin = tmp_path / "twin.json"
    os.link(a, twin)
    before = a.read_bytes()
    result = run("compare", a, b, "-o", twin)
    assert result.exit_code == 2 and "input file" in result.stderr
    assert a.read_bytes() == before


def test_check_distinct_outputs_library():
    check_distinct_outputs({"-o": "/dev/null", "--data-out": "/dev/null"})  # devices may be shared
    check_distinct_outputs({"-o": "a.json", "--data-out": None})
    with pytest.raises(ValueError, match="name the same file"):
        check_distinct_outputs({"-o": "x/../a.json", "--data-out": "a.json"})


# ------------------------------------------------------------------ 4. debris and orphans


def test_sigterm_during_an_atomic_write_leaves_no_temporary(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from repsim_cli.cli import install_signal_handlers
        from repsim_cli.render.output import atomic_output
        install_signal_handlers()
        try:
            with atomic_output({str(tmp_path / 'out.bin')!r}) as tmp:
                open(tmp, 'wb').write(b'partial')
                print('ready', flush=True)
                time.sleep(30)
        except KeyboardInterrupt as exc:
            sys.exit(getattr(exc, 'exit_code', 130))
    """)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 128 + sig
        assert no_debris(tmp_path) and not (tmp_path / "out.bin").exists()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(p)
        except OSError:
            pass
    return alive


def _start_workers(tmp_path: Path, rng: np.random.Generator) -> tuple[subprocess.Popen, list[int]]:
    x = rng.standard_normal((300, 40))
    a = write_h5(tmp_path / "wa.h5", {"h": x})
    b = write_h5(tmp_path / "wb.h5", {"h": x + rng.standard_normal(x.shape)})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "repsim_cli", "compare", a, b, "-m", "procrustes",
                             "--permutations", "200000", "--jobs", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    kids: list[int] = []
    while time.monotonic() < deadline and len(kids) < 2:
        time.sleep(0.2)
        kids = _children(proc.pid)
        assert proc.poll() is None, proc.stderr.read()
    assert len(kids) >= 2, "the worker processes did not start"
    time.sleep(0.5)  # let the work start (the signal should find the pool running)
    return proc, kids


def _wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


@linux_only
def test_workers_die_when_the_parent_is_killed(tmp_path, rng):
    proc, kids = _start_workers(tmp_path, rng)
    try:
        proc.kill()
        proc.wait(timeout=10)
        left = _wait_gone(kids)
    finally:
        for p in _alive(kids):  # do not leave them behind if the test fails
            os.kill(p, signal.SIGKILL)
    assert not left, f"orphaned workers {left}"


@linux_only
def test_sigterm_stops_parent_and_workers_with_exit_143(tmp_path, rng):
    proc, kids = _start_workers(tmp_path, rng)
    try:
        proc.terminate()
        code = proc.wait(timeout=60)
        left = _wait_gone(kids)
    finally:
        for p in _alive(kids):
            os.kill(p, signal.SIGKILL)
    assert code == 143 and not left
    assert b"terminated by SIGTERM" in proc.stderr.read()


# ------------------------------------------------------------------ 5. what is printed is escaped


def test_escape_text_and_csv_safe():
    assert escape_text("a\x1b[2Jb\x07\x9b\x7f\n\t\u202e é ü 中") == "a\\x1b[2Jb\\x07\\x9b\\x7f\\n\\t\\u202e é ü 中"
    assert [csv_safe(c) for c in ("=1+1", "+cmd", "-x", "@SUM(A1)", "\tx", "\rx", "-0.5", "+3", "-inf", "1e-3", "ok")] == [
        "'=1+1", "'+cmd", "'-x", "'@SUM(A1)", "'\tx", "'\rx", "-0.5", "+3", "-inf", "1e-3", "ok"]
    text = to_delimited([{"a": "=HYPERLINK(1)", "b": "-layer", "metric": "cka", "params": {}, "value": -0.5}], ",")
    assert "'=HYPERLINK(1)" in text and "'-layer" in text and ",-0.5," in text


def _assert_safe(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text
    assert not any(line.startswith("repsim: error: fake") for line in text.splitlines())


def test_untrusted_names_are_escaped_in_tables_grid_and_messages(evil_files):
    a, b = evil_files
    table = run("compare", a, b)
    assert table.exit_code == 0, table.stderr
    _assert_safe(table.stdout)
    assert "\\x1b]0;pwned\\x07" in table.stdout and "x\\nrepsim: error: fake" in table.stdout
    grid = run("heatmap", a, b)
    assert grid.exit_code == 0, grid.stderr
    _assert_safe(grid.stdout)
    inspected = run("inspect", a)
    _assert_safe(inspected.stdout)
    assert "clear\\x1b[2J" in inspected.stdout and "\\x1b[31mred" in inspected.stdout
    bad = run("compare", a, f"{b}:nosuch")
    assert bad.exit_code == 2
    _assert_safe(bad.stderr)
    assert bad.stderr.count("\n") == 1 and "\\x1b]0;pwned\\x07" in bad.stderr


def test_json_keeps_names_exact_and_csv_quotes_formulas(evil_files):
    a, b = evil_files
    doc = json.loads(run("compare", a, b, "-f", "json").stdout)
    assert {r["a"].split(":", 1)[1] for r in doc["results"]} == set(EVIL)
    csv_text = run("inspect", a, "-f", "csv").stdout
    assert "'=HYPERLINK" in csv_text and "\n=HYPERLINK" not in csv_text and ",=HYPERLINK" not in csv_text


# ------------------------------------------------------------------ 6. --quiet and --progress


@pytest.mark.parametrize("cmd", ["compare", "heatmap", "test", "inputsim", "inspect", "metrics", "capture"])
def test_every_command_has_quiet_and_the_computing_ones_progress(cmd):
    text = run(cmd, "--help").stdout
    assert "--quiet" in text
    assert ("--progress" in text) == (cmd in ("compare", "heatmap", "test", "inputsim", "capture"))


def test_quiet_summarises_warnings_and_json_keeps_them():
    a, b = SAMPLE / "mlp_seed0.h5", SAMPLE / "mlp_seed1.h5"
    loud = run("compare", a, b, "-f", "json")
    n = loud.stderr.count("repsim: warning:")
    assert n >= 2
    quiet = run("compare", a, b, "-f", "json", "-q")
    assert quiet.exit_code == 0
    assert quiet.stderr == f"repsim: {n} warnings (run without --quiet to see them)\n"
    assert json.loads(quiet.stdout) == json.loads(loud.stdout)
    assert run("heatmap", a, b, "--quiet").stderr.count("\n") == 1


def test_progress_modes_in_the_cli():
    a, b = SAMPLE / "mlp_seed0.h5", SAMPLE / "mlp_seed1.h5"
    always = run("compare", a, b, "-q", "--progress", "always")
    assert always.exit_code == 0 and "repsim: compare: 0/3" in always.stderr
    for mode in ("never", "auto"):  # auto, not a terminal, short work: no progress line
        assert "repsim: compare:" not in run("compare", a, b, "-q", "--progress", mode).stderr
    bad = run("compare", a, b, "--progress", "sometimes")
    assert bad.exit_code == 2 and "--progress must be one of auto, always, never" in bad.stderr


def test_line_progress_every_interval_with_eta_and_an_estimate_for_long_work():
    now = [0.0]
    out = io.StringIO()
    p = LineProgress("compare", 100, stream=out, clock=lambda: now[0])
    for _ in range(10):  # 10 steps of 3 s: 300 s in all
        now[0] += 3.0
        p.advance(1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "repsim: compare: about 5 min 00 s in all for 100 steps (estimated from the first ones)"
    assert lines[1:] == ["repsim: compare: 4/100 (4%), 12 s elapsed, ETA 4 min 48 s",
                         "repsim: compare: 8/100 (8%), 24 s elapsed, ETA 4 min 36 s"]
    quick = io.StringIO()
    q = LineProgress("compare", 5, stream=quick, clock=lambda: now[0])
    for _ in range(5):
        now[0] += 1.0
        q.advance(1)
    q.finish()
    assert quick.getvalue() == ""  # short work prints nothing
    assert fmt_duration(7322) == "2 h 02 min" and progress_mode(True) == "bar" and progress_mode(False) == "never"


def test_write_atomic_dash_and_regular(tmp_path, capfdbinary):
    write_atomic(str(tmp_path / "x.txt"), "hello")
    assert (tmp_path / "x.txt").read_text() == "hello" and no_debris(tmp_path)
    write_atomic("-", b"to stdout")
    assert capfdbinary.readouterr().out.endswith(b"to stdout")


def test_h5_names_with_escapes_survive_inspect_json(evil_files):
    a, _ = evil_files
    doc = json.loads(run("inspect", a, "-f", "json").stdout)
    with h5py.File(a) as f:
        assert {d["name"] for d in doc["files"][0]["datasets"]} == set(f.keys())


def test_a_signal_the_caller_ignores_stays_ignored():
    script = textwrap.dedent("""
        import signal
        from repsim_cli.cli import install_signal_handlers
        install_signal_handlers()
        print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)},
                         preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup does
    assert out.stdout.split() == ["True", "True"], out.stderr
