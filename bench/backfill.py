"""Replay with the monitors: pass by pass, in backfill blocks, and with the monitors off.

Generates one sc013 backdoor scenario (``--hours`` of traffic at ``--rate`` tx/s, an
attack inside) and replays it through the whole pipeline (shipped rule packs, alert
book) three ways, each into a database of its own on one embedded ClickHouse:

``off``
    ``DRIFTWATCH_MONITOR_DETECTORS=none``: no monitor stage (ingest and rules only);
``pass_by_pass``
    every detector, one query per detector per pass (``monitor_backfill_passes=1``);
``backfill``
    every detector, current windows of up to ``monitor_backfill_passes`` passes in one
    query per detector (issue 24).

It checks that the two monitored replays wrote the same ``drift_results`` rows and
alert changes, prints the times side by side (median of ``--repeat`` runs) and, last,
one JSON line: target ``backfill <= 2 x off`` (wall time) with identical results. CPU
seconds of the process (the embedded engine's threads included) are printed beside the
wall times: on a shared machine they move less than the wall time.

    .venv/bin/python bench/backfill.py            # 48 h at 2 tx/s (~350k events)
    .venv/bin/python bench/backfill.py --quick    # 2 h at 2 tx/s (< 1 min unloaded)

Last full run (2026-12-07, shared machine at load 10-13, trigger mining's chunked
window): off 54.6 s, pass by pass 1,968 s, backfill 843 s (15.4x off, not met),
identical rows and alerts; backfill monitor seconds: score_drift_predeploy 131,
trigger_mining 119 (+4 prefetch; 325 pass by pass), beneficiary 99 (+24), shadow 51,
cents 42 (+47), volume 40 (+15), score_drift 37 (+17), drift_results insert 25.

48 h, ``--only off --only backfill --dump`` (2026-12-07, main 601076b vs 863f789: a
released segment's rows extended chunk by chunk, the trigger holds' guard spans kept;
old then new, overlapping, load 8-21, one run each): off 24.3 / 22.8 CPU s (117 / 127 s
wall), backfill 337.1 -> 220.4 CPU s (2,032 -> 1,248 s wall); CPU ratio 13.9 -> 9.7,
wall ratio 17.3 -> 9.8 (target 2, not met); the same 1,830,721 drift_results rows and
160 alert changes in both. pass_by_pass was left out (about 2,000 s wall at this load).

``--hours 8`` side by side (2026-12-07, main 8ac4577 with the frozen pandas lattice
search vs the numpy one, one run each, load 11-14: wall times inflated): trigger_mining
42.3 -> 16.8 s in backfill, 61.2 -> 30.4 s pass by pass; backfill 119 -> 80 s wall,
31.6 -> 25.6 CPU s (off 13.2 s, 4.1 CPU s); identical=true in both.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from driftwatch.assemble import build_pipeline
from driftwatch.monitors.monitor import Monitor
from driftwatch.settings import Settings
from driftwatch.simulate import generate, load_scenario, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store, open_store

TARGET_RATIO = 2.0
ROOT = Path(__file__).resolve().parents[1]
MODES = {"off": {"monitor_detectors": "none"}, "pass_by_pass": {"monitor_backfill_passes": 1},
         "backfill": {}}
COLUMNS = (
    "evaluated_at, detector, test, segment, model_version, window_start, window_end, "
    "reference, statistic, pvalue, pvalue_adj, effect, n, n_ref, decision, severity, "
    "fingerprint, details"
)


def run(dsn: str, db: str, paths: dict[str, Path], extra: dict[str, Any]) -> dict[str, Any]:
    """One replay into a fresh database ``db``: seconds, events, alerts, results."""
    store = open_store(dsn, db, init=True)
    settings = Settings.load(
        config_file=None,
        env={},
        overrides={"store_dsn": dsn, "database": db, "rules_dirs": str(ROOT / "rules"), **extra},
    )
    pipeline = build_pipeline(settings, store)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        result = replay(pipeline, paths["events.jsonl"], paths["labels.jsonl"])
    finally:
        pipeline.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    spent: dict[str, float] = {}
    for stage in pipeline.clock_stages:
        if isinstance(stage, Monitor):
            spent.update(stage.seconds)
    # alert evidence SQL names the database: each mode has its own
    alerts = sorted(
        json.dumps(a.to_dict(), sort_keys=True).replace(db, "{db}") for a in result.alerts
    )
    rows = _rows(store)
    store.drop()
    return {"seconds": seconds, "cpu": cpu, "events": result.events, "alerts": alerts,
            "rows": rows, "spent": spent}


def _rows(store: Store) -> list[str]:
    """``drift_results`` without ``written_at``, as sorted text (NaN compares equal)."""
    rows = store.query(f"SELECT {COLUMNS} FROM {{db}}.drift_results")
    return sorted(repr(r) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 h of traffic instead of 48 h")
    parser.add_argument("--hours", type=float, default=0.0, help="hours of traffic")
    parser.add_argument("--rate", type=float, default=2.0, help="transactions per second")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each mode (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=sorted(MODES), action="append",
                        help="run only these modes (for profiling; no comparison)")
    parser.add_argument("--dump", type=Path, help="write each mode's rows and alerts here "
                        "(JSON), to compare runs of two versions")
    args = parser.parse_args(argv)
    hours = args.hours or (2.0 if args.quick else 48.0)
    with tempfile.TemporaryDirectory(prefix="dw-backfill-") as tmp:
        sim = generate(load_scenario("sc013_backdoor"), seed=args.seed, days=hours / 24,
                       rate=args.rate)
        paths = write(sim, Path(tmp) / "sim")
        dsn = f"chdb://{tmp}/chdb"
        times: dict[str, list[float]] = {m: [] for m in MODES}
        cpus: dict[str, list[float]] = {m: [] for m in MODES}
        outputs: dict[str, dict[str, Any]] = {}
        events = 0
        modes = {m: e for m, e in MODES.items() if not args.only or m in args.only}
        for i in range(max(1, args.repeat)):
            for mode, extra in modes.items():
                out = run(dsn, f"bench_{mode}_{i}", paths, extra)
                times[mode].append(out["seconds"])
                cpus[mode].append(out["cpu"])
                events = out["events"]
                outputs.setdefault(mode, out)
    if args.dump:
        args.dump.write_text(json.dumps({m: {"rows": o["rows"], "alerts": o["alerts"]}
                                         for m, o in outputs.items()}))
    if args.only:
        for mode, out in outputs.items():
            top = sorted(out["spent"].items(), key=lambda kv: -kv[1])[:12]
            print(f"{mode}: {statistics.median(times[mode]):.2f} s wall, "
                  f"{statistics.median(cpus[mode]):.2f} CPU s, {out['events']:,} events; "
                  + ", ".join(f"{k} {v:.1f}" for k, v in top))
        return 0
    seq, bf = outputs["pass_by_pass"], outputs["backfill"]
    identical = seq["rows"] == bf["rows"] and seq["alerts"] == bf["alerts"]
    med = {m: statistics.median(v) for m, v in times.items()}
    cpu = {m: statistics.median(v) for m, v in cpus.items()}
    ratio = med["backfill"] / med["off"] if med["off"] > 0 else math.inf
    print(f"replay of {hours:g} h, {events:,} events, sc013 backdoor, every detector, "
          f"shipped rules; median of {max(1, args.repeat)} (shared machine: noisy)")
    print(f"{'mode':<14}{'wall s':>10}{'events/s':>12}{'CPU s':>10}")
    for mode in MODES:
        print(f"{mode:<14}{med[mode]:>10.1f}{events / med[mode]:>12,.0f}{cpu[mode]:>10.1f}")
    print(f"backfill / off = {ratio:.2f} (target <= {TARGET_RATIO:g}); "
          f"pass_by_pass / backfill = {med['pass_by_pass'] / med['backfill']:.2f}")
    print(f"drift_results rows {len(seq['rows']):,} vs {len(bf['rows']):,}, alert changes "
          f"{len(seq['alerts'])} vs {len(bf['alerts'])}: identical={identical}")
    spent = {m: {k: round(v, 1) for k, v in sorted(outputs[m]["spent"].items(),
                                                     key=lambda kv: -kv[1])}
             for m in ("pass_by_pass", "backfill")}
    print("monitor wall s by detector (first run; _prefetch: blocks' current windows, "
          "_prefetch:<detector> its share, _write/_insert: drift_results):")
    for name in spent["backfill"]:
        print(f"  {name:<24}{spent['pass_by_pass'].get(name, 0.0):>10.1f}"
              f"{spent['backfill'][name]:>10.1f}")
    figures = {
        "hours": hours,
        "events": events,
        "off_s": round(med["off"], 2),
        "pass_by_pass_s": round(med["pass_by_pass"], 2),
        "backfill_s": round(med["backfill"], 2),
        "backfill_over_off": round(ratio, 3),
        "cpu_s": {m: round(v, 2) for m, v in cpu.items()},
        "monitor_s": spent,
        "target_backfill_over_off": TARGET_RATIO,
        "drift_results_rows": len(bf["rows"]),
        "alert_changes": len(bf["alerts"]),
        "identical": identical,
        "met": identical and ratio <= TARGET_RATIO,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
