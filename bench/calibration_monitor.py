"""Whole-monitor false alerts on clean traffic: part two of ``bench/calibration.py``.

Generates the simulator's ``clean_baseline`` scenario, replays it through the same
pipeline the workers run (validation, storage, rules, monitors with Benjamini–Hochberg
and corroboration, alert lifecycle) in event time, and counts the detector alerts it
raised, the segments and passes the monitor evaluated, and the discoveries (rows
passing ``fdr_q``) per detector, read back from ``drift_results``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from support.replay import replayed


def clean_week_rate(root: Path, days: float, rate: float | None, seed: int) -> dict[str, Any]:
    """Replay ``days`` of clean traffic; alerts and evaluations, scaled to a week."""
    with replayed(root, "clean_baseline", seed, days, rate, out=f"clean-{seed}",
                  db_prefix="c") as run:
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
    by_severity = Counter(a.labels.get("severity", "") for a in opened.values())
    by_detector = Counter(
        a.labels.get("detector", a.labels.get("alertname", ""))
        for a in opened.values()
        if a.labels.get("severity") in ("warning", "critical")
    )
    segments = int(total[0][0]) if total else 0
    passes = int(total[0][1]) if total else 0
    span_days = (
        (total[0][3] - total[0][2]).total_seconds() / 86400 if total and passes > 1 else 0.0
    )
    loud = by_severity.get("warning", 0) + by_severity.get("critical", 0)
    per_week_per_1000 = (
        loud / span_days * 7 / segments * 1000 if span_days > 0 and segments else float("nan")
    )
    return {
        "days": days,
        "rate": rate,
        "seed": seed,
        "events": sim.n_events,
        "replay_s": round(seconds, 1),
        "evaluated_days": round(span_days, 3),
        "passes": passes,
        "segments": segments,
        "alerts_warning_critical": loud,
        "alerts_info": by_severity.get("info", 0),
        "alerts_by_detector": dict(by_detector),
        "per_week_per_1000_segments": per_week_per_1000,
        "detectors": [
            {"detector": str(r[0]), "segments": int(r[1]), "passes": int(r[2]),
             "tests": int(r[3]), "discoveries": int(r[4])}
            for r in rows
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Run part two on its own: ``--quick`` replays a quarter of a clean day (< 1 min);
    otherwise ``--days`` (default 1). Target: 0 warning/critical alerts."""
    import argparse
    import json
    import sys
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a quarter of a day")
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("--seed", type=int, default=100)
    args = ap.parse_args(argv)
    days = 0.25 if args.quick else args.days
    with tempfile.TemporaryDirectory(prefix="dw-cal-") as tmp:
        out = clean_week_rate(Path(tmp), days, args.rate, args.seed)
    print(f"{out['events']:,} events, {out['passes']} passes, {out['segments']:,} segments: "
          f"{out['alerts_warning_critical']} warning/critical alerts", file=sys.stderr)
    print(json.dumps({"bench": "calibration_monitor", "quick": args.quick, **out,
                      "targets": {"alerts_warning_critical": 0},
                      "met": out["alerts_warning_critical"] == 0}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
