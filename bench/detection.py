"""Detection benchmark: how fast and how cleanly driftwatch catches each attack.

For every attack scenario the simulator ships and several seeds, the scenario is
generated, replayed through the same pipeline the workers run (validation, storage,
rules, monitors, alert lifecycle) in event time, and scored against its ground truth:
per detector and rule, whether it named the attacked segment, after how many attack
transactions and dollars, and how much event time after the attack started. Then
``clean_baseline`` is replayed for 7 simulated days and its warning/critical alerts are
counted per day.

Targets (issue 9): the reference backdoor (sc013) alerted after a median of <= 5 trigger
transactions (<= $50k exposed) by at least two independent signals (the median over seeds
of the trigger transactions before the second detector or rule named mcc=5967); every attack
scenario detected; zero warning/critical alerts on the clean baseline.

    python bench/detection.py                 # 3 seeds, all scenarios, 7 clean days
    python bench/detection.py --quick         # 1 seed, sc013 only, 1 clean day, low rate
    python bench/detection.py --seeds 1 --backdoor-seeds 3   # fewer seeds for the rest
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from driftwatch.alerts.model import Alert
from driftwatch.alerts.sinks import MemorySink
from driftwatch.assemble import build_pipeline
from driftwatch.scoring import attack_ids, attack_timeline, first_alerts
from driftwatch.settings import Settings
from driftwatch.simulate import generate, list_scenarios, load_scenario, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import open_store

ATTACKS = [s for s in list_scenarios() if s != "clean_baseline"]


def run_one(
    root: Path, name: str, seed: int, days: float | None, rate: float | None
) -> tuple[dict[str, Any], list[Alert], float, int]:
    sim = generate(load_scenario(name), seed=seed, days=days, rate=rate)
    out = root / f"{name}-{seed}"
    paths = write(sim, out)
    settings = Settings.load(
        config_file=None,
        # one embedded ClickHouse path per process (a chdb rule): per worker process
        overrides={"store_dsn": f"chdb://{root}/chdb-{os.getpid()}",
                   "database": f"b_{uuid.uuid4().hex[:10]}",
                   # a shortened scenario has its schedule compressed: so is the warm-up
                   "monitor_warmup_s": max(3600, round(
                       Settings.load(config_file=None).monitor_warmup_s * sim.time_scale))},
    )
    store = open_store(settings.store_dsn, settings.database, init=True)
    sink = MemorySink()
    pipeline = build_pipeline(settings, store, extra_sinks=[sink])
    started = time.perf_counter()
    try:
        replay(pipeline, paths["events.jsonl"], paths["labels.jsonl"],
               batch_size=settings.batch_size)
    finally:
        pipeline.close()
    seconds = time.perf_counter() - started
    store.drop()
    return sim.truth, sink.alerts, seconds, sim.n_events


def score_attack(root: Path, name: str, seed: int, days: float | None,
                 rate: float | None) -> dict[str, Any]:
    truth, alerts, seconds, n_events = run_one(root, name, seed, days, rate)
    ids = attack_ids(truth)
    events_file = root / f"{name}-{seed}" / "events.jsonl"
    with events_file.open("rb") as fh:
        times, amounts = attack_timeline(fh, ids)
    firsts = first_alerts(alerts, truth, times, amounts)
    start = dt.datetime.fromisoformat(truth["attack_start"].replace("Z", "+00:00"))
    return {
        "scenario": name,
        "seed": seed,
        "events": n_events,
        "replay_s": round(seconds, 1),
        "attack_txns": len(times),
        "attack_minor": sum(amounts),
        "signals": [
            {
                "origin": f.origin,
                "source": f.source,
                "alertname": f.alertname,
                "severity": f.severity,
                "segment": f.segment,
                "txns_before": f.attack_txns_before,
                "dollars_before": f.attack_minor_before / 100,
                "minutes_after_start": round((f.at - start).total_seconds() / 60, 1),
            }
            for f in firsts
        ],
    }


def clean_run(root: Path, days: float, rate: float | None, seed: int) -> dict[str, Any]:
    _truth, alerts, seconds, n_events = run_one(root, "clean_baseline", seed, days, rate)
    per_day: Counter[tuple[str, str]] = Counter()
    for alert in alerts:
        if alert.status == "firing":
            per_day[(alert.starts_at.date().isoformat(), alert.labels["severity"])] += 1
    return {
        "days": days,
        "events": n_events,
        "replay_s": round(seconds, 1),
        "per_day": {f"{d} {s}": n for (d, s), n in sorted(per_day.items())},
        "warning_critical": sum(n for (_, s), n in per_day.items() if s != "info"),
        "info": sum(n for (_, s), n in per_day.items() if s == "info"),
        "examples": [a.to_dict()["labels"] | {"summary": a.annotations.get("summary", "")}
                     for a in alerts if a.status == "firing"][:5],
    }


def markdown(results: list[dict[str, Any]], clean: dict[str, Any]) -> str:
    lines = [
        "| scenario | seed | detector / rule | severity | segment | attack txns before "
        "| $ exposed | minutes after start |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if not r["signals"]:
            lines.append(f"| {r['scenario']} | {r['seed']} | **not detected** | | | "
                         f"{r['attack_txns']} (all) | {r['attack_minor'] / 100:,.0f} | |")
        for s in r["signals"]:
            lines.append(
                f"| {r['scenario']} | {r['seed']} | {s['source']}:{s['origin']} | "
                f"{s['severity']} | {s['segment']} | {s['txns_before']} | "
                f"{s['dollars_before']:,.0f} | {s['minutes_after_start']} |"
            )
    lines.append("")
    lines.append(f"clean_baseline: {clean['days']} days, {clean['events']:,} events: "
                 f"{clean['warning_critical']} warning/critical and {clean['info']} info alerts")
    for key, n in clean["per_day"].items():
        lines.append(f"- {key}: {n}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, sc013 only, short run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--backdoor-seeds", type=int, default=None,
                    help="seeds for sc013_backdoor (default: --seeds)")
    ap.add_argument("--scenarios", default=",".join(ATTACKS))
    ap.add_argument("--clean-days", type=float, default=7.0)
    ap.add_argument("--rate", type=float, default=None, help="events/s of event time")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="replays run in parallel (default: one per CPU)")
    args = ap.parse_args()
    scenarios = ["sc013_backdoor"] if args.quick else args.scenarios.split(",")
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    backdoor_seeds = seeds if args.quick or args.backdoor_seeds is None else list(
        range(1, args.backdoor_seeds + 1))
    rate = args.rate if args.rate is not None else (0.5 if args.quick else None)
    days_attack = 1.6 if args.quick else None
    clean_days = 1.0 if args.quick else args.clean_days

    root = Path(tempfile.mkdtemp(prefix="dw-detect-"))
    results = []
    # replays are independent: run them in worker processes (the clean week first, it
    # is the longest), each with its own embedded ClickHouse path
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        clean_future = (pool.submit(clean_run, root, clean_days, rate, 100)
                        if clean_days > 0 else None)
        futures = {
            pool.submit(score_attack, root, name, seed, days_attack, rate): (name, seed)
            for name in scenarios
            for seed in (backdoor_seeds if name == "sc013_backdoor" else seeds)
        }
        for future in concurrent.futures.as_completed(futures):
            name, seed = futures[future]
            try:
                r = future.result()
            except Exception as exc:  # one failed replay must not lose the others
                r = {"scenario": name, "seed": seed, "error": repr(exc)[:500], "signals": [],
                     "attack_txns": 0, "attack_minor": 0, "replay_s": 0.0}
            results.append(r)
            # each result as it lands (a JSON line), so a long run's figures survive
            print(f"{name} seed {seed}: {len(r['signals'])} signals, replay {r['replay_s']} s "
                  f"{json.dumps(r, default=str)}", flush=True)
        if clean_future is None:  # --clean-days 0: attacks only, the clean target unmet
            clean: dict[str, Any] = {"days": 0, "events": 0, "replay_s": 0.0, "per_day": {},
                                     "skipped": True,
                                     "warning_critical": 0, "info": 0, "examples": []}
        else:
            clean = clean_future.result()
        print(f"clean_baseline: {json.dumps(clean, default=str)}", flush=True)
    results.sort(key=lambda r: (scenarios.index(r["scenario"]), r["seed"]))
    print(markdown(results, clean))

    sc013 = [r for r in results if r["scenario"] == "sc013_backdoor"]
    firsts = [min((s["txns_before"] for s in r["signals"]), default=None) for r in sc013]
    dollars = [min((s["dollars_before"] for s in r["signals"]), default=None) for r in sc013]
    # per seed: attack txns before the second independent signal (detector or rule)
    seconds = []
    for r in sc013:
        per_origin: dict[str, int] = {}
        for sig in r["signals"]:
            per_origin[sig["origin"]] = min(sig["txns_before"],
                                            per_origin.get(sig["origin"], sig["txns_before"]))
        ranked = sorted(per_origin.values())
        seconds.append(ranked[1] if len(ranked) >= 2 else None)
    detected = {r["scenario"]: bool(r["signals"]) for r in results}
    median_txns = statistics.median(f for f in firsts if f is not None) if all(
        f is not None for f in firsts) and firsts else None
    median_dollars = statistics.median(d for d in dollars if d is not None) if all(
        d is not None for d in dollars) and dollars else None
    figures = {
        "bench": "detection",
        "seeds": len(seeds),
        "backdoor_seeds": len(backdoor_seeds),
        "sc013_median_txns_to_first_alert": median_txns,
        "sc013_median_dollars_to_first_alert": median_dollars,
        "sc013_txns_to_second_signal": seconds,
        "sc013_median_txns_to_second_signal": (
            statistics.median([x for x in seconds if x is not None])
            if seconds and None not in seconds else None),
        "scenarios_detected": sum(detected.values()),
        "scenarios": len(detected),
        "clean_days": clean_days,
        "clean_warning_critical": clean["warning_critical"],
        "target_median_txns": 5,
        "target_median_dollars": 50000,
        "target_clean_warning_critical": 0,
    }
    figures["met"] = bool(
        median_txns is not None and median_txns <= 5
        and median_dollars is not None and median_dollars <= 50000
        and figures["sc013_median_txns_to_second_signal"] is not None
        and figures["sc013_median_txns_to_second_signal"] <= 5
        and all(detected.values())
        and clean["warning_critical"] == 0
        and not clean.get("skipped")
    )
    (root / "detection.json").write_text(json.dumps({"results": results, "clean": clean},
                                                    indent=1, default=str))
    print(f"details: {root / 'detection.json'}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
