"""Calibration benchmark: every detector's false-positive rate on null traffic, measured.

Part one, per test. For every detector, null count data shaped like the monitor's
(segments from sparse to busy, each with its own profile, a trailing reference of
window-length chunks and many current windows; :mod:`support.nulls`) is fed to the
*same functions the detectors call* (``cells_vs_reference``, ``rate_pvalue``,
``homogeneity_pvalue``, ``ks_dispersed_pvalue``, the recall detector's
``drop_pvalue``), with the dispersion each detector estimates from the reference
chunks it reads (``combine_concentrations``). Conditions:

* ``iid``: every window a multinomial / binomial draw from the segment's profile;
* ``dispersed``: each window (and each reference chunk) draws its own shares around
  the profile (Dirichlet / beta), as real traffic does from hour to hour;
* ``young-6h`` / ``young-24h``: dispersed, and every other segment has only 6 or 24
  hours of reference (a new or returning segment: few rows, and one to four of the
  chunks the detector reads hold any); only those young segments are judged.

For the score-based detectors one more condition, ``version``, is a benign model
version change (scores slightly higher in the current window): not a null for a
test of equal distributions, so it is reported (rejections, and rejections that
also pass the detector's effect floor) but not judged. The false-positive rate at
alpha in {1e-2, 1e-3, 1e-4} is compared with alpha; a cell is met when the rate is
at most 1.5x alpha or not significantly above it (exact Poisson test at 1 %), and
only where there are at least 10 / alpha tests.

Part two (:mod:`bench.calibration_monitor`): the simulator's clean scenario replayed
through the whole pipeline (monitor with Benjamini–Hochberg and corroboration, alert
lifecycle), one clean span (seed 301) with its first half day(s) stored quietly;
detector alerts per simulated month with an exact Poisson upper bound. About a minute
per simulated day on this machine (idle), so ``--quick`` skips it unless
``--monitor-days`` is given; several spans: ``bench/calibration_monitor.py --seeds``.

    python bench/calibration.py --quick            # part one only, < 1 min
    python bench/calibration.py                    # 3 seeds, 120k tests per cell,
                                                   # plus 2 clean days replayed
    python bench/calibration.py --monitor-days 8   # a longer span
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special, stats

from driftwatch.monitors.dispersion import (
    between_concentration,
    cells_estimator,
    cells_vs_reference,
    combine_concentrations,
    homogeneity_pvalue,
    ks_dispersed_pvalue,
    pooled_prior,
    rate_estimator,
    rate_pvalue,
)
from driftwatch.monitors.recall import drop_pvalue
from driftwatch.monitors.score_drift import reference_bins, regroup
from driftwatch.stats.digits import expected_proportions
from driftwatch.stats.dispersion import chi2_inflation
from driftwatch.stats.ks import ks_from_counts
from driftwatch.stats.psi import psi_test
from support.nulls import (
    Array,
    Condition,
    Null,
    conditions,
    dirichlet,
    judged,
    null_counts,
    volumes,
)

ALPHAS = (1e-2, 1e-3, 1e-4)
RATIO_TARGET = 1.5
MONTH_TARGET = 1.0  # false alerts per simulated month (whole monitor, at the defaults)


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: segments, windows per segment, seeds."""

    segments: int
    windows: int
    seeds: tuple[int, ...]


@dataclass
class Cell:
    """The p-values of one detector under one condition (all seeds)."""

    detector: str
    condition: str
    pvalues: list[Array]
    floor_ok: list[Array]
    seconds: float = 0.0

    def add(self, p: Array, ok: Array | None = None) -> None:
        self.pvalues.append(np.asarray(p, dtype=np.float64))
        self.floor_ok.append(np.ones(len(p), bool) if ok is None else np.asarray(ok, bool))


# -- one generator + test per detector ---------------------------------------------------
Runner = Callable[[np.random.Generator, Plan, Condition], tuple[Array, Array]]


def cents(rng: np.random.Generator, plan: Plan, cond: Condition) -> tuple[Array, Array]:
    s = plan.segments
    prof = np.ones((s, 100))
    for cell, lo, hi in ((0, 10, 40), (99, 3, 15), (50, 2, 8), (95, 2, 8)):
        prof[:, cell] = rng.uniform(lo, hi, s)
    prof /= prof.sum(axis=1, keepdims=True)
    return _cells_test(rng, plan, prof, cond, volumes(s, (5, 20, 100, 500)), 100.0, 5)


def beneficiary(
    rng: np.random.Generator, plan: Plan, cond: Condition
) -> tuple[Array, Array]:
    s = plan.segments
    ranks = np.argsort(rng.random((s, 128)), axis=1) + 1.0
    prof = 1.0 / ranks**1.1 + 0.002
    prof /= prof.sum(axis=1, keepdims=True)
    return _cells_test(rng, plan, prof, cond, volumes(s, (5, 20, 100, 500)), 50.0, 5)


def _cells_test(
    rng: np.random.Generator, plan: Plan, prof: Array, cond: Condition, vol: Array,
    strength: float, min_n: int,
) -> tuple[Array, Array]:
    d = null_counts(rng, prof, vol, plan.windows, 168, 24, cond)
    est, _ = combine_concentrations(d.chunks, cells_estimator)
    cells = prof.shape[1]
    total = d.ref.sum(axis=0)
    overall = (total + 0.5) / (total.sum() + 0.5 * cells)
    between = between_concentration(d.ref)
    keep = d.cur.sum(axis=1) >= min_n
    cur, seg = d.cur[keep], d.seg[keep]
    out = np.empty(len(cur))
    for lo in range(0, len(cur), 20_000):
        sl = slice(lo, lo + 20_000)
        out[sl] = cells_vs_reference(cur[sl], d.ref[seg[sl]], overall, strength,
                                     est[seg[sl]], between).pvalue
    return judged(d, seg, out), np.ones(len(out), bool)


def benford(rng: np.random.Generator, plan: Plan, cond: Condition) -> tuple[Array, Array]:
    s = plan.segments
    prof = dirichlet(rng, np.tile(expected_proportions("first") * 100.0, (s, 1)))
    vol = volumes(s, (200, 1000, 5000))
    d = null_counts(rng, prof, vol, plan.windows, 7, 7, cond, chunk_hours=24.0)
    est, _ = combine_concentrations(d.chunks, cells_estimator)
    keep = (d.cur.sum(axis=1) >= 200) & (d.ref[d.seg].sum(axis=1) >= 500)
    cur, seg = d.cur[keep], d.seg[keep]
    ref = d.ref[seg]
    _, p = homogeneity_pvalue(ref, cur, ref.sum(axis=1) / 7.0, est[seg])
    return judged(d, seg, p), np.ones(len(p), bool)


def _rate_test(
    rng: np.random.Generator, plan: Plan, cond: Condition, share: Array, vol: Array,
    prior: float | None, strength: float, keep_fn: Callable[[Array, Array], Array],
    cur_share: Array | None = None, pooled: bool = False,
) -> tuple[Array, Array]:
    prof = np.stack([1.0 - share, share], axis=1)
    cur_prof = None if cur_share is None else np.stack([1.0 - cur_share, cur_share], axis=1)
    d = null_counts(rng, prof, vol, plan.windows, 168, 24, cond, cur_prof)
    stack = np.stack([d.chunks.sum(axis=-1), d.chunks[..., 1]], axis=-1)
    est, _ = combine_concentrations(stack, rate_estimator)
    n_ref, k_ref = d.ref.sum(axis=1), d.ref[:, 1]
    n, k = d.cur.sum(axis=1), d.cur[:, 1]
    keep = keep_fn(n, k)
    seg = d.seg[keep]
    tot_k, tot_n = k_ref.sum(), n_ref.sum()
    pri = (tot_k + 0.5) / (tot_n + 1.0) if prior is None else prior
    if pooled and prior is not None:  # the detector's prior: all segments pooled
        pri = pooled_prior(k_ref, n_ref, prior, strength)
    p, rate, _ = rate_pvalue(k[keep], n[keep], k_ref[seg], n_ref[seg], pri, strength, est[seg])
    effect = k[keep] / np.maximum(n[keep], 1.0) - rate
    return judged(d, seg, p), effect


def shadow(rng: np.random.Generator, plan: Plan, cond: Condition) -> tuple[Array, Array]:
    s = plan.segments
    return _rate_test(rng, plan, cond, rng.uniform(0.002, 0.02, s),
                      volumes(s, (20, 100, 500, 2000)), None, 500.0, lambda n, k: n >= 3)


def out_of_domain(rng: np.random.Generator, plan: Plan, cond: Condition
                  ) -> tuple[Array, Array]:
    s = plan.segments
    return _rate_test(rng, plan, cond, rng.uniform(1e-4, 2e-3, s),
                      volumes(s, (20, 100, 500, 2000)), 1e-4, 1000.0, lambda n, k: n > 0,
                      pooled=True)


def volume_share(rng: np.random.Generator, plan: Plan, cond: Condition
                 ) -> tuple[Array, Array]:
    # a segment's share of all traffic (20,000 rows an hour), tested as k of the total
    # with the detector's share (n_ref + 1) / (total_ref + 1): prior 1, strength 1
    s = plan.segments
    share = rng.uniform(0.0005, 0.02, s)
    return _rate_test(rng, plan, cond, share, np.full(s, 20_000.0), 1.0, 1.0,
                      lambda n, k: k > 0)


def pileup(rng: np.random.Generator, plan: Plan, cond: Condition) -> tuple[Array, Array]:
    s = plan.segments
    share = rng.uniform(0.002, 0.02, s)
    p, effect = _rate_test(
        rng, plan, cond, share, volumes(s, (20, 100, 500, 2000)), None, 200.0,
        lambda n, k: k >= 1, share * 1.3,
    )
    return p, effect >= 0.15


def disagreement(
    rng: np.random.Generator, plan: Plan, cond: Condition
) -> tuple[Array, Array]:
    s = plan.segments
    share = rng.uniform(0.05, 0.35, s)
    p, effect = _rate_test(
        rng, plan, cond, share, volumes(s, (3, 10, 30, 100)), 0.2, 50.0,
        lambda n, k: n >= 3, np.minimum(share * 1.15, 0.95),
    )
    return p, effect >= 0.3


def recall(rng: np.random.Generator, plan: Plan, cond: Condition) -> tuple[Array, Array]:
    s = plan.segments
    rec = rng.uniform(0.6, 0.95, s)
    prof = np.stack([1.0 - rec, rec], axis=1)  # cells: missed, held (labelled frauds per day)
    d = null_counts(rng, prof, volumes(s, (20, 50, 200, 1000)), plan.windows, 7, 7, cond,
                    chunk_hours=24.0)
    pos, tp = d.cur.sum(axis=1), d.cur[:, 1]
    pos_ref, tp_ref = d.ref.sum(axis=1)[d.seg], d.ref[:, 1][d.seg]
    keep = (pos >= 20) & (pos_ref >= 30)
    stack = np.stack([d.chunks.sum(axis=-1), d.chunks[..., 1]], axis=-1)
    est, _ = combine_concentrations(stack, rate_estimator)
    p = drop_pvalue(tp[keep], pos[keep], tp_ref[keep], pos_ref[keep], est[d.seg[keep]])
    effect = tp_ref[keep] / pos_ref[keep] - tp[keep] / pos[keep]
    return judged(d, d.seg[keep], p), effect >= 0.15


FINE_EDGES = (np.arange(101) / 100.0) ** 2


def _score_profiles(b: Array) -> Array:
    cdf = special.betainc(1.0, b[:, None], FINE_EDGES[None, :])
    prof = np.diff(cdf, axis=1) + 1e-9
    return np.asarray(prof / prof.sum(axis=1, keepdims=True))


def _score_null(rng: np.random.Generator, plan: Plan, cond: Condition) -> Null:
    s = plan.segments
    b = rng.uniform(20.0, 60.0, s)
    prof = _score_profiles(b)
    cur_prof = _score_profiles(b * 0.9)
    vol = volumes(s, (100, 300, 1000, 3000))
    return null_counts(rng, prof, vol, plan.windows, 168, 24, cond, cur_prof)


def _score_rows(
    rng: np.random.Generator, plan: Plan, cond: Condition
) -> tuple[Array, Array, Array, Array, Callable[[Array], Array]]:
    """Current and reference fine histograms of the tested rows, chunk size, inflation,
    and the judged-rows mask for their p-values."""
    d = _score_null(rng, plan, cond)
    est, _ = combine_concentrations(d.chunks, cells_estimator)
    keep = d.cur.sum(axis=1) >= 100
    cur, seg = d.cur[keep], d.seg[keep]
    ref = d.ref[seg]
    return cur, ref, ref.sum(axis=1) / 168.0, est[seg], lambda p: judged(d, seg, p)


def score_psi(rng: np.random.Generator, plan: Plan, cond: Condition
              ) -> tuple[Array, Array]:
    cur, ref, chunk_n, est, mask = _score_rows(rng, plan, cond)
    mapping = reference_bins(ref, 10)
    ref_c = regroup(ref, mapping, 10)
    cur_c = regroup(cur, mapping, 10)
    _, p = homogeneity_pvalue(ref_c, cur_c, chunk_n, est, 24.0)
    res = psi_test(ref_c, cur_c)
    n, n_ref = cur.sum(axis=1), ref.sum(axis=1)
    psi_eff = np.asarray(res.psi) - (np.asarray(res.bins) - 1) * (n + n_ref) / (n * n_ref)
    return mask(p), psi_eff >= 0.25


def score_ks(rng: np.random.Generator, plan: Plan, cond: Condition
             ) -> tuple[Array, Array]:
    cur, ref, chunk_n, est, mask = _score_rows(rng, plan, cond)
    res = ks_from_counts(ref, cur)
    n, n_ref = cur.sum(axis=1), ref.sum(axis=1)
    d = np.asarray(res.statistic)
    p = ks_dispersed_pvalue(d, n, n_ref, np.asarray(res.pvalue),
                            chi2_inflation(n, n_ref, chunk_n, est))
    return mask(p), d >= 0.2


DETECTORS: dict[str, tuple[Runner, float, bool]] = {
    # name: (runner, dispersion concentration of the "dispersed" null, model-based?)
    "cents": (cents, 500.0, False),
    "beneficiary": (beneficiary, 500.0, False),
    "benford": (benford, 1000.0, False),
    "pileup": (pileup, 1000.0, True),
    "disagreement": (disagreement, 300.0, True),
    "recall": (recall, 300.0, False),
    "score_drift/psi": (score_psi, 1000.0, True),
    "score_drift/ks": (score_ks, 1000.0, True),
    "shadow": (shadow, 1000.0, False),
    "out_of_domain": (out_of_domain, 1000.0, False),
    "volume/share": (volume_share, 1000.0, False),
}


# -- judging -----------------------------------------------------------------------------
# Deviations explained and bounded in the README ("False alarms, measured"): judged
# against their documented bound instead of RATIO_TARGET, and reported as such.
DOCUMENTED: dict[tuple[str, str], float] = {
    # (none: out-of-domain on a 6 h reference was judged against 5x until its prior
    # became the features' pooled rate; now within 1.5x)
}


def judge(p: Array, alpha: float, target: float = RATIO_TARGET) -> dict[str, Any]:
    """Rejections at ``alpha`` against ``target`` x nominal; resolved only with >= 10 /
    alpha tests."""
    n = int(np.isfinite(p).sum())
    k = int((p <= alpha).sum())
    rate = k / n if n else float("nan")
    resolved = n >= 10 / alpha
    # exact Poisson test of "k events when target x nominal are expected"
    excess_p = float(stats.poisson.sf(k - 1, target * alpha * n)) if n else 1.0
    ok = (not resolved) or rate <= target * alpha or excess_p > 0.01
    return {"tests": n, "rejected": k, "rate": rate, "ratio": rate / alpha if n else None,
            "resolved": resolved, "met": bool(ok), "target": target}


def run_tests(plan: Plan, only: list[str] | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, (runner, conc, model_based) in DETECTORS.items():
        if only and name not in only:
            continue
        for cond in conditions(conc, model_based):
            cell = Cell(name, cond.name, [], [])
            started = time.perf_counter()
            # young: only every other segment is judged, so twice the windows
            sized = plan if cond.ref_hours is None else Plan(
                plan.segments, 2 * plan.windows, plan.seeds)
            for seed in plan.seeds:
                rng = np.random.default_rng([seed, hash_name(name), hash_name(cond.name)])
                p, ok = runner(rng, sized, cond)
                cell.add(p, ok)
            cell.seconds = time.perf_counter() - started
            p_all = np.concatenate(cell.pvalues)
            ok_all = np.concatenate(cell.floor_ok)
            row: dict[str, Any] = {"detector": name, "condition": cond.name,
                                   "judged": cond.judged, "seconds": round(cell.seconds, 2)}
            for alpha in ALPHAS:
                row[f"{alpha:g}"] = judge(
                    p_all, alpha, DOCUMENTED.get((name, cond.name), RATIO_TARGET))
                if not cond.judged:
                    row[f"{alpha:g}"]["with_floor"] = int(((p_all <= alpha) & ok_all).sum())
            rows.append(row)
            print(line(row), flush=True)
    return rows


def hash_name(name: str) -> int:
    """A stable small integer for a name (seeds must not depend on PYTHONHASHSEED)."""
    return sum((i + 1) * ord(ch) for i, ch in enumerate(name))


def line(row: dict[str, Any]) -> str:
    cells = []
    for alpha in ALPHAS:
        j = row[f"{alpha:g}"]
        ratio = "  n/a" if j["ratio"] is None else f"{j['ratio']:5.2f}"
        mark = "" if j["resolved"] else "~"
        flag = "" if j["met"] or not row["judged"] else "!"
        extra = f" floor {j['with_floor']}" if "with_floor" in j else ""
        bound = f" (documented <= {j['target']:g}x)" if j["target"] != RATIO_TARGET else ""
        cells.append(f"{j['rejected']:>6}/{j['tests']:<7} x{ratio}{mark}{flag}{extra}{bound}")
    return f"{row['detector']:<16} {row['condition']:<9} " + " | ".join(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="part one only, fewer tests")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per condition")
    ap.add_argument("--detectors", default="", help="comma-separated subset")
    ap.add_argument("--monitor-days", type=float, default=None,
                    help="clean days replayed through the whole monitor (default 2; quick 0)")
    ap.add_argument("--rate", type=float, default=0.5, help="events/s of the clean replay")
    args = ap.parse_args()
    seeds = args.seeds or (1 if args.quick else 3)
    plan = Plan(250, 60, tuple(range(seeds))) if args.quick else Plan(
        500, 80, tuple(range(seeds)))
    only = [d.strip() for d in args.detectors.split(",") if d.strip()] or None
    days = args.monitor_days if args.monitor_days is not None else (0.0 if args.quick else 2.0)
    print("machine: 2 cores shared with other engineers' jobs; times are indicative only")
    print(f"per-test false-positive rate: rejected/tests x(rate / alpha) at alpha = "
          f"{', '.join(f'{a:g}' for a in ALPHAS)}; '~' fewer than 10/alpha tests, "
          f"'!' above {RATIO_TARGET}x nominal beyond chance; 'floor' = rejections that "
          "also pass the effect floor (version change only, not judged)")
    started = time.perf_counter()
    rows = run_tests(plan, only)
    tests_s = time.perf_counter() - started
    monitor: dict[str, Any] = {"skipped": True}
    if days > 0:
        from bench.calibration_monitor import clean_rate

        with tempfile.TemporaryDirectory(prefix="calib-") as tmp:
            monitor = clean_rate(Path(tmp), [301], days, min(1.0, days / 2), args.rate)
        print(f"whole monitor, clean replay: {json.dumps(monitor['pooled'], default=str)}")
    per_test_met = all(
        r[f"{a:g}"]["met"] for r in rows if r["judged"] for a in ALPHAS
    )
    unresolved = sorted({f"{a:g}" for r in rows for a in ALPHAS if not r[f"{a:g}"]["resolved"]})
    pool = monitor.get("pooled", {})
    per_month = pool.get("per_month")
    monitor_met = None if per_month is None else bool(per_month <= MONTH_TARGET)
    summary = {
        "bench": "calibration",
        "quick": bool(args.quick),
        "tests_per_cell": plan.segments * plan.windows * len(plan.seeds),
        "alphas": list(ALPHAS),
        "target_ratio": RATIO_TARGET,
        "per_test": {
            f"{r['detector']}/{r['condition']}": {
                f"{a:g}": (None if r[f"{a:g}"]["ratio"] is None
                           else round(r[f"{a:g}"]["ratio"], 2)) for a in ALPHAS
            }
            for r in rows
        },
        "per_test_met": per_test_met,
        "documented_deviations": {f"{d}/{c}": b for (d, c), b in DOCUMENTED.items()},
        "unresolved_alphas": unresolved,
        "tests_s": round(tests_s, 1),
        "monitor_days": days,
        "monitor_detector_alerts": pool.get("detector_alerts"),
        "monitor_segments": pool.get("mean_segments"),
        "monitor_per_week_per_1000_segments": pool.get("per_week_per_1000_segments"),
        "monitor_false_alerts_per_month": per_month,
        "monitor_false_alerts_per_month_upper95": pool.get("per_month_upper95"),
        "target_false_alerts_per_month": MONTH_TARGET,
        "monitor_met": monitor_met,
        "met": bool(per_test_met and monitor_met is not False),
    }
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
