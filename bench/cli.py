"""Command-line start-up: how long a person waits for ``driftwatch --help`` and the light
commands, as whole processes (interpreter start, imports, argument parsing).

Each command runs ``--repeat`` times after one warm-up (the page cache holds the
modules); the figure is the median wall time. Side by side: ``python -c pass`` (the
interpreter alone), so the driftwatch share is visible whatever the machine's speed.

Target (issue 28): ``driftwatch --help`` < 0.5 s; the light commands (``config``,
``sql --help``) likewise.

    python bench/cli.py            # 15 runs each
    python bench/cli.py --quick    # 5 runs each
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.5


def _exe() -> list[str]:
    found = shutil.which("driftwatch") or str(Path(sys.executable).parent / "driftwatch")
    return [found]


def median_s(cmd: list[str], repeat: int) -> float:
    """Median wall seconds of ``cmd`` over ``repeat`` runs after one warm-up."""
    subprocess.run(cmd, capture_output=True, check=True)
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 runs each")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 15)
    dw = _exe()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "driftwatch --help": [*dw, "--help"],
        "driftwatch config": [*dw, "config"],
        "driftwatch sql --help": [*dw, "sql", "--help"],
    }
    figures = {name: round(median_s(cmd, repeat), 3) for name, cmd in commands.items()}
    base = figures["python -c pass"]
    for name, s in figures.items():
        print(f"{name:<24} {s:>7.3f} s median of {repeat}   {s / base:>5.1f}x the bare "
              "interpreter", file=sys.stderr)
    judged = {k: v for k, v in figures.items() if k.startswith("driftwatch")}
    print(json.dumps({
        "bench": "cli", "quick": args.quick, "repeat": repeat,
        "median_s": figures,
        "targets": {name: TARGET_S for name in judged},
        "met": all(v < TARGET_S for v in judged.values()),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
