"""Whole-monitor false alerts on clean traffic: part two of ``bench/calibration.py``.

For each seed (one clean span each), generates the simulator's ``clean_baseline``
scenario, stores its first ``--warmup-days`` quietly (monitors off: the reference a
deployment would have by then), then replays the rest through the same pipeline the
workers run (validation, storage, rules, monitors with Benjamini–Hochberg and
corroboration, alert lifecycle) in event time. It counts the detector alerts raised
(warning/critical; one per opening), the segments and passes evaluated and the
discoveries per detector read back from ``drift_results``, and pools the spans into a
rate per simulated month with an exact Poisson upper bound
(:mod:`support.alert_rate`).

    python bench/calibration_monitor.py --quick    # one short span
    python bench/calibration_monitor.py --seeds 301,302,303,304 --days 8 --rate 0.5 2> spans.log
    python bench/calibration_monitor.py --pool spans.log            # the spans logged so far
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from support.alert_rate import alert_rate
from support.replay import replayed

RULES = Path(__file__).resolve().parents[1] / "rules"


def clean_span(root: Path, seed: int, days: float, warmup_days: float,
               rate: float | None) -> dict[str, Any]:
    """Replay one clean span of ``days`` (the first ``warmup_days`` stored quietly)."""
    quiet_s = warmup_days * 86400.0
    warmup_s = max(3600, round(quiet_s)) if quiet_s > 0 else None
    with replayed(root, "clean_baseline", seed, days, rate, out=f"clean-{seed}",
                  db_prefix="c", quiet_s=quiet_s, warmup_s=warmup_s) as run:
        rows = run.store.query(
            "SELECT detector, uniqExact(segment, model_version) AS segments, "
            "uniqExact(evaluated_at) AS passes, count() AS tests, "
            "countIf(decision != 'ok') AS discoveries "
            "FROM {db}.drift_results FINAL GROUP BY detector ORDER BY detector"
        )
        total = run.store.query(
            "SELECT uniqExact(segment, model_version), uniqExact(evaluated_at), "
            "min(evaluated_at), max(evaluated_at) FROM {db}.drift_results FINAL"
        )
    sim, seconds, alerts = run.sim, run.seconds, run.alerts
    # one alert = one opening (fingerprint, start); later updates of it do not count
    opened = {(a.fingerprint, a.starts_at): a for a in alerts if a.status == "firing"}
    loud = [a for a in opened.values() if a.labels.get("severity") in ("warning", "critical")]
    detector_alerts = [a for a in loud if a.labels.get("detector")]
    by_detector = Counter(a.labels.get("detector", "") for a in detector_alerts)
    other = Counter(a.labels.get("alertname", "") for a in loud if not a.labels.get("detector"))
    segments = int(total[0][0]) if total else 0
    passes = int(total[0][1]) if total else 0
    span_days = (
        (total[0][3] - total[0][2]).total_seconds() / 86400 if total and passes > 1 else 0.0
    )
    return {
        "seed": seed,
        "days": days,
        "warmup_days": warmup_days,
        "rate": rate,
        "events": sim.n_events,
        "replay_s": round(seconds, 1),
        "evaluated_days": round(span_days, 3),
        "passes": passes,
        "segments": segments,
        "detector_alerts": len(detector_alerts),
        "alerts_by_detector": dict(by_detector),
        "other_loud_alerts": dict(other),
        "alerts_info": sum(1 for a in opened.values() if a.labels.get("severity") == "info"),
        "detectors": [
            {"detector": str(r[0]), "segments": int(r[1]), "passes": int(r[2]),
             "tests": int(r[3]), "discoveries": int(r[4])}
            for r in rows
        ],
    }


def pooled(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """All spans together: alerts, exposure, rates per month and per week per 1,000
    segments with exact 95 % Poisson upper bounds."""
    k = sum(int(s["detector_alerts"]) for s in spans)
    days = sum(float(s["evaluated_days"]) for s in spans)
    seg_days = sum(float(s["evaluated_days"]) * int(s["segments"]) for s in spans)
    r = alert_rate(k, days, seg_days)
    by: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    for s in spans:
        by.update(s["alerts_by_detector"])
        rules.update(s.get("other_loud_alerts", {}))
    return {
        "spans": len(spans),
        "detector_alerts": k,
        "alerts_by_detector": dict(by),
        # not detector alerts: rule (and other) alerts at warning/critical, and info ones
        "other_loud_alerts": dict(rules),
        "alerts_info": sum(int(s.get("alerts_info", 0)) for s in spans),
        "evaluated_days": round(days, 3),
        "mean_segments": round(seg_days / days, 1) if days else None,
        "per_month": r.per_month,
        "per_month_upper95": r.per_month_upper,
        "per_week_per_1000_segments": r.per_week_per_1000,
        "per_week_per_1000_segments_upper95": r.per_week_per_1000_upper,
    }


def clean_rate(root: Path, seeds: list[int], days: float, warmup_days: float,
               rate: float | None, log: Any = None) -> dict[str, Any]:
    """Every span (one per seed) and the pooled rate; ``log`` gets one line per span.

    The shipped rule packs are used wherever the bench is started from (the default
    ``rules`` is relative to the working directory; without them the rule layer and
    the model-vs-rules disagreement detector would silently not run)."""
    os.environ.setdefault("DRIFTWATCH_RULES_DIRS", str(RULES))
    spans = []
    for seed in seeds:
        started = time.perf_counter()
        # one chdb data path per process: every span in the same root (own database)
        span = clean_span(root, seed, days, warmup_days, rate)
        span["wall_s"] = round(time.perf_counter() - started, 1)
        spans.append(span)
        if log is not None:
            log(span)
    return {"spans": spans, "pooled": pooled(spans)}


def main(argv: list[str] | None = None) -> int:
    """Run part two on its own. Target: at most 1 detector alert per simulated month."""
    import argparse
    import json
    import sys
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="one span: 0.25 day quiet + 0.25 day measured at 0.5 tx/s")
    ap.add_argument("--seeds", default="301", help="comma-separated, one clean span each")
    ap.add_argument("--days", type=float, default=2.0, help="days per span, warm-up included")
    ap.add_argument("--warmup-days", type=float, default=1.0,
                    help="first days of each span stored with the monitors off")
    ap.add_argument("--rate", type=float, default=0.5, help="events/s (scenario: 2.0)")
    ap.add_argument("--tmp", default=None, help="working folder (default: a temp dir)")
    ap.add_argument("--pool", default=None, metavar="LOG",
                    help="replay nothing: pool the spans logged (stderr) by earlier runs")
    args = ap.parse_args(argv)
    if args.pool:
        with open(args.pool, encoding="utf-8") as fh:
            logged = [json.loads(x)["span"] for x in fh if x.startswith('{"span"')]
        pool = pooled(logged)
        print(json.dumps({"bench": "calibration_monitor", "pooled_from": args.pool,
                          "seeds": [x["seed"] for x in logged], "pooled": pool,
                          "target_per_month": 1.0, "met": bool(pool["per_month"] <= 1.0)}))
        return 0
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    days, warm = (0.5, 0.25) if args.quick else (args.days, args.warmup_days)
    if args.quick:
        seeds = seeds[:1]

    def log(span: dict[str, Any]) -> None:
        print(json.dumps({"span": span}, default=str), file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="dw-cal-", dir=args.tmp) as tmp:
        out = clean_rate(Path(tmp), seeds, days, warm, args.rate, log)
    p = out["pooled"]
    print(f"{p['spans']} clean spans, {p['evaluated_days']} days evaluated, "
          f"{p['mean_segments']} segments: {p['detector_alerts']} detector alerts; "
          f"{p['per_month']:.2f}/month (95 % upper {p['per_month_upper95']:.2f})",
          file=sys.stderr)
    print(json.dumps({"bench": "calibration_monitor", "quick": args.quick, **out,
                      "target_per_month": 1.0,
                      "met": bool(p["per_month"] <= 1.0)}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
