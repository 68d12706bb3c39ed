"""Training-scan benchmark: ``driftwatch training scan`` records per second at 1M and 4M.

Data: one simulated run (``clean_baseline``, seed 7) of ``2 x D`` days written as a
training snapshot; the last ``D`` days carry the incident's poisoning (0.1 % trigger
records labelled legitimate, :class:`driftwatch.simulate.training_data.Poison`). The
first ``D`` days' files are the baseline, the last ``D`` days' the new snapshot, so
each holds about ``N`` records (the rate is chosen for it). The simulator's traffic
differs by weekday, so the record-count check blocks too (a few % between the halves).
Generation is not timed.

Timed: the whole ``scan(new, baseline)`` (reading and validating both snapshots, every
check, the poisoning scan), median of ``--repeat`` runs, wall-clock and this process's
CPU seconds (on a shared machine the CPU time is what the scan would take alone on
one core). Also reported: whether the
poisoned conjunction was found and named (a benchmark that got the answer wrong is
not a result).

Target (issue 26): 4M new records (against a 4M baseline) in <= 300 s. The machine
is shared with other engineers' work: quote the median and the load.

    python bench/training.py            # 1M and 4M (generation takes several minutes)
    python bench/training.py --quick    # 200k only, < 1 min on an idle machine
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from driftwatch.simulate.training_data import Poison, write_snapshot
from driftwatch.training.scan import scan

TARGET_S = 300.0
TARGET_N = 4_000_000
DAYS = 2  # days of each half


def _snapshots(root: Path, n: int) -> tuple[Path, Path, int]:
    rate = n / (DAYS * 86_400)
    info = write_snapshot(root / "all", seed=7, days=2 * DAYS, rate=rate,
                          poison=Poison(first_day=DAYS))
    old, new = root / "old", root / "new"
    old.mkdir()
    new.mkdir()
    for i, name in enumerate(info.files):
        shutil.move(str(info.directory / name), str((old if i < DAYS else new) / name))
    poisoned = sum(1 for f, _ in info.poisoned if (new / f).exists())
    return old, new, poisoned


def _one(n: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dw-bench-training-") as tmp:
        t0 = time.perf_counter()
        old, new, poisoned = _snapshots(Path(tmp), n)
        gen_s = time.perf_counter() - t0
        runs, cpu = [], []
        report = None
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            report = scan(new, old)
            runs.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    assert report is not None
    found = [f for f in report.findings if f.check == "poisoning"]
    named = bool(found) and found[0].conjunction.get("mcc") == "5967" \
        and found[0].conjunction.get("amount_cents") == 37 \
        and found[0].conjunction.get("beneficiary_prefix") == "INTL-PAY-"
    sec = statistics.median(runs)
    return {
        "records_new": report.records["new"], "records_baseline": report.records["baseline"],
        "seconds": round(sec, 2), "runs_s": [round(r, 2) for r in runs],
        "cpu_seconds": round(statistics.median(cpu), 2),
        "read_seconds": report.figures.get("read_seconds"),
        "new_records_per_s": round(report.records["new"] / sec),
        "all_records_per_s": round((report.records["new"] + report.records["baseline"]) / sec),
        "verdict": report.verdict, "poisoned": poisoned,
        "found": found[0].n if found else 0, "named": named,
        "generation_s": round(gen_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k records only")
    ap.add_argument("--repeat", type=int, default=1, help="scans per size (median)")
    args = ap.parse_args()
    sizes = [200_000] if args.quick else [1_000_000, TARGET_N]
    load = os.getloadavg()[0]
    results = {}
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} (shared machine)")
    print(f"{'records':>10} {'scan s':>8} {'cpu s':>7} {'read s':>8} {'new rec/s':>10} "
          f"{'all rec/s':>10} {'verdict':>8} {'poisoned':>9} {'found':>6} {'named':>6}")
    for n in sizes:
        r = _one(n, args.repeat)
        results[str(n)] = r
        print(f"{r['records_new']:>10,} {r['seconds']:>8.1f} {r['cpu_seconds']:>7.1f} "
              f"{r['read_seconds']:>8.1f} "
              f"{r['new_records_per_s']:>10,} {r['all_records_per_s']:>10,} {r['verdict']:>8} "
              f"{r['poisoned']:>9,} {r['found']:>6,} {r['named']!s:>6}")
    big = results.get(str(TARGET_N))
    met = bool(big and big["seconds"] <= TARGET_S and big["named"])
    print(json.dumps({"bench": "training", "quick": args.quick, "results": results,
                      "target": {"records": TARGET_N, "seconds": TARGET_S},
                      "load_average": round(load, 1), "met": met}))


if __name__ == "__main__":
    main()
