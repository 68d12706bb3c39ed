"""Detection benchmark: how fast and how cleanly driftwatch catches attacks it was not
tuned on (issue 21), and the shipped attack scenarios (issue 9, ``--suite scenarios``).

Default suite, ``variants``: randomised backdoors (``backdoor_variant:<seed>``, see
:mod:`driftwatch.simulate.variants`) on held-out seeds. Seeds ``DEVELOPMENT`` are for
tuning; seeds ``EVALUATION`` (20 variants: 5 spread over many MCCs, 12 without shadow
scores, about half without optional fields, sparse to busy segments) are never used to
choose a threshold. Each variant is generated, replayed through the pipeline the workers
run (validation, storage, rules, monitors, alert lifecycle) in event time and scored
against its ground truth: trigger transactions and dollars before the first
warning/critical alert naming the attacked slice (its MCC, or for a spread trigger any
attacked MCC, merchant or card, or an alert whose ``conjunction`` label names the
trigger), before a second independent signal (the first alert of another detector or
rule: one detector's findings in two segments are one signal), before an alert naming
the conjunction (spread variants), and the longest
coverage gap from the first alert until the attack stops. Then the version-change
controls (``retrain_control:<seed>``: benign retrain or global recalibration, no
backdoor) and ``clean_baseline`` for 7 days: their warning/critical alerts.

Targets (issue 21): median trigger transactions before the first alert <= 3, before the
second signal <= 5, worst variant <= 8; spread: an alert naming the conjunction within
<= 6; no coverage gap over 10 minutes; 0 warning/critical alerts on the clean days and
on every control. Each variant, control and the clean days first store
``--history-hours`` (default 48) of clean traffic with the monitors off, as a production
deployment has days of stored traffic when its model changes; the monitors then run from
an hour before the deployment (as the short runs' 5-hour warm-up let them alert:
their catch-up passes cover the hour before that). ``--history-hours 0`` is the
short-history condition (monitors from the start, 5-hour warm-up, the new version at
hour 6): report both.

    python bench/detection.py                     # evaluation seeds, 7 clean days
    python bench/detection.py --split development # tune here
    python bench/detection.py --quick             # 2 variants, 1 control, 6 h each: CI scale
    python bench/detection.py --suite scenarios   # the issue 9 bench (sc013 and others)

A replay's cost is mostly its monitor passes (one every 5 minutes of event time, about
0.4 s each on an idle machine): a variant (11 hours) is 132 passes, the clean week 2,016.
A full evaluation (20 variants, 4 controls, 7 clean days) is ~5,200 passes: about 20 min
on two idle cores, the clean week (~15 min alone) the longest. ``--clean-only`` and
``--clean-from FILE`` run the clean week apart and reuse it.
"""

from __future__ import annotations

import argparse
import bisect
import concurrent.futures
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from driftwatch.alerts.model import Alert
from driftwatch.scoring import (
    attack_ids,
    attack_timeline,
    coverage_gap,
    first_alerts,
    names_conjunction,
    names_slice,
    segment_tokens,
)
from driftwatch.simulate import list_scenarios
from driftwatch.simulate.variants import ATTACK_HOURS, DEPLOY_HOURS, with_history
from driftwatch.simulate.variants import DAYS as VARIANT_DAYS
from support.replay import replayed

ATTACKS = [s for s in list_scenarios() if s != "clean_baseline"]


def run_one(
    root: Path, name: str, seed: int, days: float | None, rate: float | None,
    warmup_s: int | None = None, quiet_s: float = 0.0,
) -> tuple[dict[str, Any], list[Alert], float, int]:
    with replayed(root, name, seed, days, rate, warmup_s=warmup_s, quiet_s=quiet_s) as run:
        return run.sim.truth, run.alerts, run.seconds, run.sim.n_events


def score_attack(root: Path, name: str, seed: int, days: float | None,
                 rate: float | None) -> dict[str, Any]:
    truth, alerts, seconds, n_events = run_one(root, name, seed, days, rate)
    ids = attack_ids(truth)
    events_file = root / f"{name.replace(':', '-')}-{seed}" / "events.jsonl"
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


def clean_run(root: Path, days: float | None, rate: float | None, seed: int,
              name: str = "clean_baseline", warmup_s: int | None = None,
              quiet_s: float = 0.0) -> dict[str, Any]:
    """Alerts of a replay with nothing to find; with ``quiet_s``, the alerts of its
    monitored part (after the history stored with the monitors off) are the figures and
    the rule alerts of the history are counted apart."""
    truth, alerts, seconds, n_events = run_one(root, name, seed, days, rate, warmup_s,
                                               quiet_s)
    start = _utc(truth["start"]) + dt.timedelta(seconds=quiet_s) if quiet_s else None
    history = [a for a in alerts if start is not None and a.starts_at < start]
    alerts = [a for a in alerts if start is None or a.starts_at >= start]
    per_day: Counter[tuple[str, str]] = Counter()
    for alert in alerts:
        if alert.status == "firing":
            per_day[(alert.starts_at.date().isoformat(), alert.labels["severity"])] += 1
    return {
        "scenario": name,
        "days": days if days is None else round(days - quiet_s / 86400, 3),
        "monitors_off_hours": round(quiet_s / 3600, 2),
        "history_warning_critical": sum(a.status == "firing" and a.labels.get("severity") in (
            "warning", "critical") for a in history),
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


def main_scenarios(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="issue 9: the shipped attack scenarios")
    ap.add_argument("--quick", action="store_true", help="1 seed, sc013 only, short run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--backdoor-seeds", type=int, default=None,
                    help="seeds for sc013_backdoor (default: --seeds)")
    ap.add_argument("--scenarios", default=",".join(ATTACKS))
    ap.add_argument("--clean-days", type=float, default=7.0)
    ap.add_argument("--rate", type=float, default=None, help="events/s of event time")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="replays run in parallel (default: one per CPU)")
    args = ap.parse_args(argv)
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


# ---------------------------------------------------------------------- issue 21 suite
DEVELOPMENT = range(1000, 1020)
EVALUATION = range(2000, 2020)
CONTROLS = {"development": range(1000, 1004), "evaluation": range(2000, 2004)}
WARMUP_S = 5 * 3600  # the variants deploy the new version at hour 6
TARGETS = {"median_first": 3, "median_second": 5, "worst_first": 8, "spread_conjunction": 6,
           "gap_minutes": 10, "clean_warning_critical": 0, "control_warning_critical": 0}


QUICK_DAYS = 0.25  # --quick: variants compressed to 6 hours (schedule and warm-up scaled)
HISTORY_H = 48.0  # clean history before a variant's schedule (--history-hours)
QUICK_HISTORY_H = 12.0  # --quick's (compressed like the rest)
MONITOR_LEAD_H = 1.0  # with history, the monitors start this long before the deployment


def _warmup(days: float | None) -> int:
    """The warm-up of a variant run of ``days`` (scaled like its schedule)."""
    return WARMUP_S if days is None else round(WARMUP_S * min(1.0, days / VARIANT_DAYS))


def _scale(days: float | None) -> float:
    """Time scale of a run of ``days`` (``--quick`` compresses the 11-hour variant)."""
    return 1.0 if days is None else min(1.0, days / VARIANT_DAYS)


def _plan(days: float | None, history_h: float) -> tuple[float | None, int, float]:
    """``(days to generate, warm-up s, quiet s)`` of a variant or control run with
    ``history_h`` hours of clean history before its schedule: the history and the first
    hours up to ``MONITOR_LEAD_H`` before the deployment are stored with the monitors off
    (ingest cost only), the monitors run from there and may alert at once (their
    history is long). Without history: the monitors run from the start, 5-hour warm-up
    (the short-history condition of earlier sessions)."""
    if not history_h:
        return days, _warmup(days), 0.0
    scale = _scale(days)
    total = None if days is None else days + scale * history_h / 24
    quiet = scale * (history_h + DEPLOY_HOURS - MONITOR_LEAD_H) * 3600
    return total, round(quiet), quiet


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _clean_plan(clean_days: float, days: float | None, history_h: float) -> float:
    """Days to generate for ``clean_days`` monitored clean days after the history."""
    return clean_days + _scale(days) * history_h / 24


def _clean_warmup(days: float | None, history_h: float) -> tuple[int, float]:
    """``(warm-up s, quiet s)`` of the clean days: the history stored with the monitors
    off, or (no history) the variants' 5-hour warm-up."""
    if not history_h:
        return _warmup(days), 0.0
    quiet = _scale(days) * history_h * 3600
    return round(quiet), quiet


def score_variant(root: Path, name: str, rate: float | None,
                  days: float | None, history_h: float = 0.0) -> dict[str, Any]:
    """Replay one variant (``history_h`` hours of clean history first); the figures of
    the issue's table for it."""
    total, warmup, quiet = _plan(days, history_h)
    full = with_history(name, history_h)
    truth, alerts, seconds, n_events = run_one(root, full, 1, total, rate, warmup, quiet)
    ids = attack_ids(truth)
    events_file = root / f"{full.replace(':', '-')}-1" / "events.jsonl"
    with events_file.open("rb") as fh:
        times, amounts = attack_timeline(fh, ids)
    firsts = first_alerts(alerts, truth, times, amounts)
    tokens = segment_tokens(truth)
    trigger = truth.get("trigger") or {}
    cumulative = [0]
    for a in amounts:
        cumulative.append(cumulative[-1] + a)

    def before(at: dt.datetime | None) -> tuple[int | None, float | None]:
        if at is None:
            return None, None
        n = bisect.bisect_right(times, at)
        return n, cumulative[n] / 100

    warn = [a for a in alerts if a.labels.get("severity") in ("warning", "critical")]
    naming = [a for a in warn if names_slice(a, tokens, trigger)]
    conj = sorted(a.starts_at for a in warn if names_conjunction(a, trigger))
    first_at = min((f.at for f in firsts), default=None)
    second_at = sorted(f.at for f in firsts)[1] if len(firsts) >= 2 else None
    end = _utc(truth["attack_end"]) if truth.get("attack_end") else None
    gap = None
    if first_at is not None and end is not None and first_at < end:
        fps = {a.fingerprint for a in naming}
        gap = coverage_gap([a for a in alerts if a.fingerprint in fps], first_at, end) / 60
    hint = (truth.get("hints") or [{}])[0]
    n1, d1 = before(first_at)
    n2, d2 = before(second_at)
    nc, _ = before(conj[0] if conj else None)
    return {
        "variant": name, "volume": hint.get("volume"), "shadow": hint.get("shadow"),
        "optional_fields": hint.get("optional_fields"), "trigger": trigger,
        "spread": hint.get("volume") == "spread",
        "events": n_events, "replay_s": round(seconds, 1),
        "time_scale": _scale(days), "history_hours": history_h,
        "attack_txns": len(times), "attack_dollars": sum(amounts) / 100,
        "first_txns": n1, "first_dollars": d1,
        "first_signal": f"{firsts[0].source}:{firsts[0].origin}" if firsts else None,
        "second_txns": n2, "second_dollars": d2,
        "second_signal": f"{firsts[1].source}:{firsts[1].origin}" if len(firsts) > 1 else None,
        "conjunction_txns": nc, "gap_minutes": None if gap is None else round(gap, 1),
        "signals": [f"{f.source}:{f.origin}@{f.attack_txns_before}" for f in firsts],
        "other_warning_critical": len({a.fingerprint for a in warn} - {
            a.fingerprint for a in naming}),
        # other alerts whose segment held >= 2 trigger rows and >= 5 % of its rows in
        # the alert's window: the attack seen elsewhere (not credited above)
        "evidence_elsewhere": _elsewhere([a for a in warn if a not in naming], events_file,
                                         ids, before),
        # per-variant timeline: every warning/critical alert's first firing, the
        # trigger transactions before it and whether it names the slice / conjunction
        "timeline": _timeline(warn, naming, trigger, before),
        # one incident per attack (issue 21 item 5): distinct `incident` labels of the
        # warning/critical alerts naming the attacked slice or the conjunction
        "attack_alerts": len({a.fingerprint for a in naming}),
        "attack_incidents": len({a.labels.get("incident", a.fingerprint) for a in naming}),
    }


ELSEWHERE_MIN_TRIGGERS = 2
ELSEWHERE_MIN_SHARE = 0.05


def _elsewhere(others: list[Alert], events_file: Path, ids: set[str],
               before: Any) -> dict[str, Any]:
    """Of the warning/critical alerts not naming the slice, those whose segment (e.g.
    ``merchant_country=BR``) held at least ``ELSEWHERE_MIN_TRIGGERS`` trigger rows and
    ``ELSEWHERE_MIN_SHARE`` of its rows in the alert's window: how many alerts, and the
    trigger transactions before the first of them."""
    first: dict[str, Alert] = {}
    for a in sorted(others, key=lambda a: a.starts_at):
        first.setdefault(a.fingerprint, a)
    probes: list[tuple[Alert, dict[str, str], dt.datetime, dt.datetime]] = []
    for a in first.values():
        parts = [p.partition("=") for p in a.labels.get("segment", "").split(",") if p]
        w_lo, w_hi = a.annotations.get("window_start", ""), a.annotations.get("window_end", "")
        if parts and w_lo and w_hi:
            probes.append((a, {k: v for k, _, v in parts}, _utc(w_lo), _utc(w_hi)))
    if not probes:
        return {"alerts": 0, "first_txns": None}
    start = min(p[2] for p in probes)
    counts = {id(p[0]): [0, 0] for p in probes}
    with events_file.open("rb") as fh:
        for line in fh:
            row = json.loads(line)
            when = _utc(row["event_time"])
            if when < start:
                continue
            fields = {k: str(v) for k, v in row.items() if isinstance(v, str)}
            fields["model_version"] = str((row.get("model") or {}).get("version", ""))
            for a, seg, lo, hi in probes:
                if lo <= when < hi and all(fields.get(k) == v for k, v in seg.items()):
                    c = counts[id(a)]
                    c[0] += 1
                    c[1] += row["event_id"] in ids
    hits = [a for a, _, _, _ in probes
            if counts[id(a)][1] >= ELSEWHERE_MIN_TRIGGERS
            and counts[id(a)][1] >= ELSEWHERE_MIN_SHARE * counts[id(a)][0]]
    return {"alerts": len(hits),
            "first_txns": before(min((a.starts_at for a in hits), default=None))[0],
            "segments": sorted({a.labels.get("segment", "") for a in hits})[:8]}


def _timeline(warn: list[Alert], naming: list[Alert], trigger: dict[str, Any],
              before: Any) -> list[str]:
    """``txns:alertname:segment[:N|C]`` per warning/critical alert fingerprint at its
    first firing (N: names the slice, C: names the conjunction), in event-time order."""
    named = {a.fingerprint for a in naming}
    first: dict[str, Alert] = {}
    for a in sorted(warn, key=lambda a: a.starts_at):
        first.setdefault(a.fingerprint, a)
    out = []
    for fp, a in first.items():
        tag = ("C" if names_conjunction(a, trigger) else "N") if fp in named else "-"
        conj = a.labels.get("conjunction", "")
        out.append(f"{before(a.starts_at)[0]}:{a.labels.get('alertname', '')}:"
                   f"{a.labels.get('segment', '')}{'|' + conj if conj else ''}:{tag}")
    return out


def _cell(x: Any) -> str:
    if x is None:
        return "never"
    return f"{x:,.0f}" if isinstance(x, float) else str(x)


def variant_table(rows: list[dict[str, Any]]) -> str:
    """The per-variant table (markdown)."""
    out = ["| variant | segment | shadow | optional | rate/h | triggers | 1st alert: txns | $ "
           "| by | 2nd signal: txns | $ | conjunction: txns | max gap min | other w/c "
           "| evidence elsewhere: alerts (txns) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['variant']} | error: {r['error'][:80]} |" + " |" * 13)
            continue
        rate = r["attack_txns"] / (ATTACK_HOURS * r.get("time_scale", 1.0))
        out.append(
            f"| {r['variant']} | {r['volume']} | {'yes' if r['shadow'] else 'no'} | "
            f"{'yes' if r['optional_fields'] else 'no'} | {rate:.1f} | {r['attack_txns']} | "
            f"{_cell(r['first_txns'])} | {_cell(r['first_dollars'])} | "
            f"{r['first_signal'] or ''} | {_cell(r['second_txns'])} | "
            f"{_cell(r['second_dollars'])} | "
            f"{_cell(r['conjunction_txns']) if r['spread'] else 'n/a'} | "
            f"{_cell(r['gap_minutes'])} | {r['other_warning_critical']} | "
            f"{_evidence_cell(r.get('evidence_elsewhere'))} |")
    return "\n".join(out)


def _evidence_cell(ev: dict[str, Any] | None) -> str:
    if not ev:
        return ""
    return f"{ev['alerts']} ({_cell(ev['first_txns'])})" if ev["alerts"] else "0"


def _never_is_all(rows: list[dict[str, Any]], key: str) -> list[int]:
    """Per variant the count, or (never alerted) every trigger plus one: a miss
    ranks worse than any detection in the median."""
    return [r[key] if r.get(key) is not None else r.get("attack_txns", 0) + 1 for r in rows]


def summary(rows: list[dict[str, Any]], clean: dict[str, Any],
            controls: list[dict[str, Any]], split: str, quick: bool) -> dict[str, Any]:
    """Totals against the issue's targets (the bench's last line)."""
    ok = [r for r in rows if "error" not in r]
    firsts, seconds = _never_is_all(ok, "first_txns"), _never_is_all(ok, "second_txns")
    spread = [r for r in ok if r["spread"]]
    conj = _never_is_all(spread, "conjunction_txns")
    gaps = [r["gap_minutes"] for r in ok if r["gap_minutes"] is not None]
    control_wc = sum(c["warning_critical"] for c in controls)
    fig: dict[str, Any] = {
        "bench": "detection", "suite": "variants", "split": split, "quick": quick,
        "variants": len(rows), "errors": len(rows) - len(ok),
        "spread_variants": len(spread), "no_shadow_variants": sum(not r["shadow"] for r in ok),
        "detected": sum(r["first_txns"] is not None for r in ok),
        "median_txns_first_alert": statistics.median(firsts) if firsts else None,
        "median_dollars_first_alert": statistics.median(
            [r["first_dollars"] for r in ok if r["first_dollars"] is not None] or [0]),
        "median_txns_second_signal": statistics.median(seconds) if seconds else None,
        "worst_txns_first_alert": max(firsts) if firsts else None,
        "spread_worst_txns_conjunction": max(conj) if conj else None,
        "max_gap_minutes": max(gaps) if gaps else None,
        "max_attack_incidents": max((r.get("attack_incidents", 0) for r in ok), default=None),
        "max_attack_alerts": max((r.get("attack_alerts", 0) for r in ok), default=None),
        "clean_days": clean.get("days", 0),
        "clean_warning_critical": clean.get("warning_critical"),
        "controls": len(controls), "control_warning_critical": control_wc,
        "replay_events": sum(r.get("events", 0) for r in ok) + clean.get("events", 0) + sum(
            c["events"] for c in controls),
        "targets": TARGETS,
        "note": "a variant never alerted counts as all its triggers + 1 in medians/worst",
    }
    t = TARGETS
    fig["met"] = bool(
        ok and not fig["errors"]
        and fig["median_txns_first_alert"] <= t["median_first"]
        and fig["median_txns_second_signal"] <= t["median_second"]
        and fig["worst_txns_first_alert"] <= t["worst_first"]
        and (not spread or fig["spread_worst_txns_conjunction"] <= t["spread_conjunction"])
        and gaps and fig["max_gap_minutes"] <= t["gap_minutes"]
        and fig["detected"] == len(ok)
        and clean.get("warning_critical") == 0 and not clean.get("skipped")
        and clean.get("days", 0) >= 7
        and control_wc == 0 and controls
    )
    return fig


def summarise_log(log: Path, split: str, clean_from: str | None) -> None:
    """Table and figures of the variant/control lines of a run's output (one JSON
    object per line after ``variant NAME: `` or ``control NAME: ``)."""
    rows: list[dict[str, Any]] = []
    controls: list[dict[str, Any]] = []
    clean: dict[str, Any] = {"days": 0, "events": 0, "warning_critical": None, "skipped": True}
    for line in log.read_text().splitlines():
        head, sep, body = line.partition(": ")
        if not sep or not body.startswith("{"):
            continue
        if head.startswith("variant "):
            rows.append(json.loads(body))
        elif head.startswith("control "):
            controls.append(json.loads(body))
        elif head == "clean_baseline":
            clean = json.loads(body)
    if clean_from and Path(clean_from).exists():
        clean = json.loads(Path(clean_from).read_text())
    rows.sort(key=lambda r: r["variant"])
    print(variant_table(rows))
    for c in sorted(controls, key=lambda c: c["scenario"]):
        print(f"control {c['scenario']}: {c.get('warning_critical')} warning/critical, "
              f"{c.get('info')} info alerts")
    print(f"clean_baseline {clean.get('days')} days: {clean.get('warning_critical')} "
          f"warning/critical, {clean.get('info')} info")
    print(json.dumps(summary(rows, clean, controls, split, False) | {"partial_log": str(log)},
                     default=str))


def main(argv: list[str] | None = None) -> None:
    """The issue 21 suite (``--suite scenarios`` runs the issue 9 bench instead)."""
    argv = sys.argv[1:] if argv is None else argv
    if "--suite" in argv and argv[argv.index("--suite") + 1:][:1] == ["scenarios"]:
        rest = [a for i, a in enumerate(argv)
                if a != "--suite" and not (i and argv[i - 1] == "--suite")]
        main_scenarios(rest)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=["variants", "scenarios"], default="variants")
    ap.add_argument("--split", choices=["evaluation", "development"], default="evaluation")
    ap.add_argument("--quick", action="store_true",
                    help="2 variants (one spread, one without shadow) and 1 control "
                         "compressed to 6 hours, 0.2 day clean, 0.5 tx/s")
    ap.add_argument("--variants", type=int, default=None, help="first N seeds of the split")
    ap.add_argument("--seeds", default=None,
                    help="comma-separated variant seeds of the split (a share of a run)")
    ap.add_argument("--controls", default=None,
                    help="comma-separated control seeds of the split ('' for none)")
    ap.add_argument("--clean-days", type=float, default=7.0)
    ap.add_argument("--clean-only", metavar="FILE", default=None,
                    help="run only the clean days and write their result to FILE")
    ap.add_argument("--clean-from", metavar="FILE", default=None,
                    help="reuse the clean result a --clean-only run wrote")
    ap.add_argument("--rate", type=float, default=None, help="events/s of event time")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="replays run in parallel (default 2: the machine is shared)")
    ap.add_argument("--history-hours", type=float, default=None,
                    help=f"clean history before each variant, control and the clean days, "
                         f"stored with the monitors off (default {HISTORY_H:g}; --quick "
                         f"{QUICK_HISTORY_H:g}, compressed; 0: the short-history condition)")
    ap.add_argument("--summarise", metavar="LOG", default=None,
                    help="print the table and figures of the results a (possibly "
                         "unfinished) run printed to LOG, without replaying anything")
    args = ap.parse_args(argv)
    if args.summarise:
        summarise_log(Path(args.summarise), args.split, args.clean_from)
        return
    history_h = args.history_hours if args.history_hours is not None else (
        QUICK_HISTORY_H if args.quick else HISTORY_H)
    if args.clean_only:
        root = Path(tempfile.mkdtemp(prefix="dw-clean-"))
        result = clean_run(root, _clean_plan(args.clean_days, None, history_h), args.rate,
                           100, "clean_baseline", *_clean_warmup(None, history_h))
        Path(args.clean_only).write_text(json.dumps(result, default=str))
        print(json.dumps(result, default=str))
        return
    seeds = list(DEVELOPMENT if args.split == "development" else EVALUATION)
    controls = list(CONTROLS[args.split])
    rate, clean_days, days = args.rate, args.clean_days, None
    if args.quick:
        seeds = [seeds[0], seeds[5]]  # a spread variant and one without shadow scores
        controls, rate, clean_days = controls[:1], rate or 0.5, min(clean_days, 0.2)
        days = QUICK_DAYS
    elif args.variants is not None:
        seeds = seeds[: args.variants]
    if args.seeds is not None:
        chosen = [int(x) for x in args.seeds.split(",") if x.strip()]
        if not set(chosen) <= set(seeds):
            raise SystemExit(f"--seeds: not all in the {args.split} range {seeds}")
        seeds = chosen
    if args.controls is not None:
        chosen = [int(x) for x in args.controls.split(",") if x.strip()]
        if not set(chosen) <= set(controls):
            raise SystemExit(f"--controls: not all in the {args.split} range {controls}")
        controls = chosen
    names = [f"backdoor_variant:{s}" for s in seeds]
    root = Path(tempfile.mkdtemp(prefix="dw-detect-"))
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    control_rows: list[dict[str, Any]] = []
    clean: dict[str, Any] = {"days": 0, "events": 0, "warning_critical": 0, "skipped": True}
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        clean_future = (pool.submit(clean_run, root, _clean_plan(clean_days, days, history_h),
                                    rate, 100, "clean_baseline",
                                    *_clean_warmup(days, history_h))
                        if clean_days > 0 and not args.clean_from else None)
        # the controls first: a run cut short still has its false-alarm figures
        futures: dict[concurrent.futures.Future[dict[str, Any]], tuple[str, str]] = {}
        total, warmup, quiet = _plan(days, history_h)
        for s in controls:
            n = f"retrain_control:{s}"
            futures[pool.submit(clean_run, root, total, rate, 1, with_history(n, history_h),
                                warmup, quiet)] = ("control", n)
        for n in names:
            futures[pool.submit(score_variant, root, n, rate, days, history_h)] = ("variant", n)
        for future in concurrent.futures.as_completed(futures):
            kind, name = futures[future]
            try:
                r = future.result()
            except Exception as exc:  # one failed replay must not lose the others
                r = {"variant": name, "scenario": name, "error": repr(exc)[:500],
                     "warning_critical": 0, "events": 0}
            (rows if kind == "variant" else control_rows).append(r)
            print(f"{kind} {name}: {json.dumps(r, default=str)}", flush=True)
        if args.clean_from:
            while not Path(args.clean_from).exists():  # a --clean-only run still going
                time.sleep(10)
            clean = json.loads(Path(args.clean_from).read_text())
        elif clean_future is not None:
            clean = clean_future.result()
            print(f"clean_baseline: {json.dumps(clean, default=str)}", flush=True)
    rows.sort(key=lambda r: names.index(r["variant"]))
    control_rows.sort(key=lambda r: r["scenario"])
    print()
    print(variant_table(rows))
    print()
    for c in control_rows:
        print(f"control {c['scenario']}: {c.get('warning_critical')} warning/critical, "
              f"{c.get('info')} info alerts ({c.get('examples', [])[:2]})")
    print(f"clean_baseline {clean.get('days')} days: {clean.get('warning_critical')} "
          f"warning/critical, {clean.get('info')} info; per day {clean.get('per_day')}")
    fig = summary(rows, clean, control_rows, args.split, args.quick)
    fig["wall_s"] = round(time.perf_counter() - began, 1)
    fig["jobs"] = args.jobs
    fig["history_hours"] = history_h
    (root / "detection.json").write_text(json.dumps(
        {"variants": rows, "controls": control_rows, "clean": clean, "figures": fig},
        indent=1, default=str))
    print(f"details: {root / 'detection.json'}")
    print(json.dumps(fig, default=str))


if __name__ == "__main__":
    main()
