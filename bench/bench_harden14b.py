"""Cost of the output hardening (issue 14): checked atomic writes and escaping, against their floors.

- ``write_atomic`` of a JSON-sized payload (temporary file, checked writes, rename) against a
  plain ``open(...).write`` of the same bytes (the floor);
- ``write_atomic`` onto ``/dev/null`` (written in place) against the same floor;
- ``escape_text`` over many layer names (clean and hostile) and ``csv_safe`` over CSV cells,
  against ``str.isprintable`` over the same names (the floor: one pass over the characters).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _floor import best_of  # noqa: E402

from repsim_cli.render.output import write_atomic  # noqa: E402
from repsim_cli.render.tables import csv_safe, escape_text  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 10
    sizes = [64 << 10] if args.quick else [64 << 10, 16 << 20]
    print("# output hardening: checked atomic writes and escaping, as ratios to their floors\n")
    print("| operation | size | floor (ms) | hardened (ms) | ratio |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            payload = b"x" * size
            plain_path, atomic_path = os.path.join(folder, "plain.json"), os.path.join(folder, "atomic.json")

            def plain(path: str = plain_path, data: bytes = payload) -> None:
                with open(path, "wb") as fh:
                    fh.write(data)

            floor = best_of(plain, repeat)
            atomic = best_of(lambda p=atomic_path, d=payload: write_atomic(p, d), repeat)
            device = best_of(lambda d=payload: write_atomic("/dev/null", d), repeat)
            label = f"{size >> 10} KiB"
            print(f"| write_atomic, regular file | {label} | {1e3 * floor:.2f} | {1e3 * atomic:.2f} | {atomic / floor:.2f} |")
            print(f"| write_atomic, /dev/null (in place) | {label} | {1e3 * floor:.2f} | {1e3 * device:.2f} | {device / floor:.2f} |")
    n = 2_000 if args.quick else 100_000
    clean = [f"encoder/layers/{i}/mlp/fc2" for i in range(n)]
    hostile = [f"layer{i}\x1b]0;pwned\x07\n=cmd" for i in range(n)]
    for kind, names in (("clean", clean), ("hostile", hostile)):
        floor = best_of(lambda ns=names: [s.isprintable() for s in ns], repeat)
        esc = best_of(lambda ns=names: [escape_text(s) for s in ns], repeat)
        csv = best_of(lambda ns=names: [csv_safe(s) for s in ns], repeat)
        print(f"| escape_text, {kind} names | {n} | {1e3 * floor:.2f} | {1e3 * esc:.2f} | {esc / floor:.2f} |")
        print(f"| csv_safe, {kind} names | {n} | {1e3 * floor:.2f} | {1e3 * csv:.2f} | {csv / floor:.2f} |")


if __name__ == "__main__":
    main()
