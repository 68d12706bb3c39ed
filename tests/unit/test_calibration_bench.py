"""The calibration bench's own arithmetic: exact Poisson bounds on false-alert rates
(``bench/support/alert_rate.py``), the pooling of clean spans
(``bench/calibration_monitor.py``), checked against scipy and worked cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from bench.support.alert_rate import alert_rate, poisson_lower, poisson_upper
from scipy import stats

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("k", [0, 1, 2, 5, 17, 120])
def test_poisson_upper_is_the_exact_garwood_bound(k: int) -> None:
    up = poisson_upper(k, 0.95)
    # defining property: k or fewer events have probability 5 % at the bound
    assert stats.poisson.cdf(k, up) == pytest.approx(0.05, rel=1e-9)
    # the chi-square form of the same bound
    assert up == pytest.approx(stats.chi2.ppf(0.95, 2 * k + 2) / 2, rel=1e-12)


def test_poisson_bounds_worked_cases() -> None:
    assert poisson_upper(0) == pytest.approx(-math.log(0.05))  # 2.9957
    assert poisson_lower(0) == 0.0
    assert poisson_lower(4, 0.95) == pytest.approx(1.3663, abs=1e-4)
    assert poisson_upper(4, 0.95) == pytest.approx(9.1535, abs=1e-4)
    with pytest.raises(ValueError, match="k must be"):
        poisson_upper(-1)
    with pytest.raises(ValueError, match="confidence"):
        poisson_upper(1, 1.0)


def test_poisson_upper_covers_at_least_its_level() -> None:
    rng = np.random.default_rng(7)
    mu = 2.5
    ks = rng.poisson(mu, 20_000)
    ups = np.array([poisson_upper(int(k)) for k in range(int(ks.max()) + 1)])
    coverage = float(np.mean(ups[ks] >= mu))
    assert coverage >= 0.95


def test_alert_rate_scales_to_a_month_and_to_1000_segments_a_week() -> None:
    # 28 days evaluated over 4 spans of 2,000 segments, 0 alerts
    r = alert_rate(0, 28.0, 28.0 * 2000)
    assert r.per_month == 0.0
    assert r.per_month_upper == pytest.approx(-math.log(0.05) * 30 / 28)
    assert r.per_week_per_1000_upper == pytest.approx(-math.log(0.05) * 7 * 1000 / 56_000)
    # 3 alerts in 60 days at 500 segments
    r = alert_rate(3, 60.0, 30_000.0)
    assert r.per_month == pytest.approx(1.5)
    assert r.per_week_per_1000 == pytest.approx(3 * 7 * 1000 / 30_000)
    assert math.isnan(alert_rate(0, 0.0, 0.0).per_month)


def test_pooled_spans_add_alerts_and_exposure(monkeypatch: pytest.MonkeyPatch) -> None:
    # the benches run as scripts: bench/ is first on sys.path, helpers are `support.*`
    monkeypatch.syspath_prepend(str(BENCH))
    from bench.calibration_monitor import pooled

    spans = [
        {"detector_alerts": 1, "evaluated_days": 7.0, "segments": 2000,
         "alerts_by_detector": {"cents": 1}},
        {"detector_alerts": 0, "evaluated_days": 7.0, "segments": 1000,
         "alerts_by_detector": {}, "other_loud_alerts": {"RuleHit": 2}, "alerts_info": 5},
    ]
    p = pooled(spans)
    assert p["detector_alerts"] == 1 and p["evaluated_days"] == 14.0
    assert p["mean_segments"] == 1500.0
    assert p["per_month"] == pytest.approx(30 / 14)
    assert p["per_month_upper95"] == pytest.approx(poisson_upper(1) * 30 / 14)
    assert p["alerts_by_detector"] == {"cents": 1}
    # rule alerts are counted apart, never as detector alerts
    assert p["other_loud_alerts"] == {"RuleHit": 2} and p["alerts_info"] == 5


def test_null_chunks_are_the_ones_the_detectors_read() -> None:
    import datetime as dt

    from bench.support.nulls import picks

    from driftwatch.monitors.dispersion import ReferenceDispersion, rate_estimator
    from driftwatch.monitors.reference import SegmentTable

    end = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
    for chunk_s, ref_chunks in ((3600, 168), (86400, 7)):
        d = ReferenceDispersion(lambda a, b: SegmentTable.empty(2), rate_estimator,
                                chunk_s=chunk_s, max_chunks=24)
        spans = d.chunks(end - dt.timedelta(seconds=chunk_s * ref_chunks), end)
        back = [(end - hi).total_seconds() / chunk_s for _, hi in spans]
        assert picks(ref_chunks, 24).tolist() == sorted(back)


def test_young_null_holds_hours_of_reference_and_judges_only_young_segments() -> None:
    from bench.support.nulls import Condition, judged, null_counts

    rng = np.random.default_rng(3)
    s = 40
    prof = np.tile([0.9, 0.1], (s, 1))
    vol = np.full(s, 100.0)
    d = null_counts(rng, prof, vol, 5, 168, 24, Condition("young-6h", 500.0, ref_hours=6.0))
    assert d.young.tolist() == [i % 2 == 1 for i in range(s)]
    # a young segment's reference is its 6 hours (~600 rows), of which the detector's
    # spread sample (every 7th hour) holds only the newest hour; the rest are empty
    assert abs(d.ref[d.young].sum(axis=1).mean() - 600) < 60
    assert (d.chunks[d.young][:, 1:].sum(axis=(1, 2)) == 0).all()
    assert (d.chunks[d.young][:, 0].sum(axis=1) > 0).all()
    assert abs(d.ref[~d.young].sum(axis=1).mean() - 16_800) < 500
    p = judged(d, d.seg, np.full(d.cur.shape[0], 0.5))
    assert np.isnan(p[~d.young[d.seg]]).all() and (p[d.young[d.seg]] == 0.5).all()
    # a daily detector, 6 hours: one partial chunk (a quarter of a day's rows)
    d = null_counts(rng, prof, vol, 5, 7, 7, Condition("young-6h", 500.0, ref_hours=6.0),
                    chunk_hours=24.0)
    assert abs(d.ref[d.young].sum(axis=1).mean() - 25) < 5
    assert (d.ref[d.young] == d.chunks[d.young].sum(axis=1)).all()


def test_judge_counts_rejections_against_target_times_nominal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from bench.calibration import judge

    # 100,000 p-values on an even grid: exactly alpha of them at or below alpha
    p = (np.arange(100_000) + 0.5) / 100_000
    j = judge(p, 1e-3)
    assert (j["tests"], j["rejected"], j["resolved"], j["met"]) == (100_000, 100, True, True)
    assert j["ratio"] == pytest.approx(1.0)
    # twice nominal (200 where 150 are allowed) is beyond chance: not met ...
    p2 = np.concatenate([p[:100_000 - 100], np.full(100, 5e-4)])
    j2 = judge(p2, 1e-3)
    assert j2["rejected"] == 200 and not j2["met"]
    assert stats.poisson.sf(199, 150) < 0.01
    # ... unless a documented bound allows it; NaN rows (not judged) are not counted
    assert judge(p2, 1e-3, target=3.0)["met"]
    assert judge(np.concatenate([p, [np.nan] * 10]), 1e-3)["tests"] == 100_000
    # too few tests to resolve 1e-4: never judged failed
    assert judge(np.full(1000, 1e-5), 1e-4)["met"]
