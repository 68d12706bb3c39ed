"""Alert lifecycle without a store: dedup, growth, severity, resolution, hysteresis."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from driftwatch.alerts.lifecycle import StoreAlertBook
from driftwatch.alerts.model import Finding

T0 = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def finding(at: dt.datetime, severity: str = "warning", **kw: str) -> Finding:
    base = {
        "alertname": "CentsDigitAnomaly",
        "severity": severity,
        "source": "detector",
        "origin": "cents",
        "segment": "mcc=5967",
        "event_time": at,
        "summary": f"at {at:%H:%M}",
    }
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def book(resolve_after: int = 3) -> StoreAlertBook:
    return StoreAlertBook(None, interval_s=300, resolve_after=resolve_after, rule_quiet_s=3600)


def run(b: StoreAlertBook, passes: dict[int, list[Finding]], until: int) -> list[tuple[str, str]]:
    """Monitor passes every 5 minutes from T0; returns (status, HH:MM) of every change."""
    out = []
    for minute in range(0, until + 1, 5):
        at = T0 + minute * MIN
        b.passed(at)
        for a in b.update(passes.get(minute, []), at):
            when = a.ends_at if a.status == "resolved" else a.starts_at
            assert when is not None
            out.append((a.status, f"{when:%H:%M}"))
    return out


def test_one_alert_grows_without_refiring_and_resolves_after_n_clean_passes() -> None:
    b = book()
    passes = {m: [finding(T0 + m * MIN)] for m in (0, 5, 10, 20)}
    changes = run(b, passes, 60)
    # fires once at 14:00; the gap 10 -> 20 is 2 clean passes (< 3): no resolve
    assert changes == [("firing", "14:00"), ("resolved", "14:35")]


def test_later_findings_update_annotations_but_are_not_returned() -> None:
    b = book()
    assert len(b.update([finding(T0)], T0)) == 1
    assert b.update([finding(T0 + 5 * MIN)], T0 + 5 * MIN) == []
    assert b.firing[finding(T0).fingerprint].annotations["summary"] == "at 14:05"
    assert b.firing[finding(T0).fingerprint].starts_at == T0


def test_severity_goes_up_but_never_down_while_firing() -> None:
    b = book()
    b.update([finding(T0)], T0)
    up = b.update([finding(T0 + 5 * MIN, "critical")], T0 + 5 * MIN)
    assert [a.labels["severity"] for a in up] == ["critical"]
    assert b.update([finding(T0 + 10 * MIN, "warning")], T0 + 10 * MIN) == []
    assert b.firing[finding(T0).fingerprint].labels["severity"] == "critical"


def test_a_gap_longer_than_the_quiet_period_inside_one_update_resolves_then_refires() -> None:
    b = book()
    b.passed(T0 + 40 * MIN)
    changes = b.update([finding(T0), finding(T0 + 40 * MIN)], T0 + 40 * MIN)
    assert [(a.status, a.starts_at, a.ends_at) for a in changes] == [
        ("firing", T0, None),
        ("resolved", T0, T0 + 15 * MIN),
        ("firing", T0 + 40 * MIN, None),
    ]
    assert len(b.firing) == 1


def test_detector_alerts_resolve_on_the_monitor_clock_not_on_event_batches() -> None:
    b = book()
    b.passed(T0)
    b.update([finding(T0)], T0)
    # a batch of events far ahead (rule findings) before the monitor ran its passes
    assert b.update([], T0 + 45 * MIN) == []
    b.passed(T0 + 15 * MIN)
    assert [a.status for a in b.update([], T0 + 45 * MIN)] == ["resolved"]


def test_rule_alerts_resolve_after_the_quiet_event_time_period() -> None:
    b = book()
    rule = finding(T0, source="rule", origin="R013", alertname="RuleHit")
    assert [a.labels["rule_id"] for a in b.update([rule], T0)] == ["R013"]
    assert b.update([replace(rule, event_time=T0 + 30 * MIN)], T0 + 30 * MIN) == []
    assert b.update([], T0 + 89 * MIN) == []
    resolved = b.update([], T0 + 90 * MIN)
    assert [(a.status, a.ends_at) for a in resolved] == [("resolved", T0 + 90 * MIN)]


def test_distinct_fingerprints_are_distinct_alerts() -> None:
    b = book()
    out = b.update(
        [finding(T0), finding(T0, segment="mcc=5967,merchant_country=LT"),
         finding(T0, model_version="v47")],
        T0,
    )
    assert len({a.fingerprint for a in out}) == 3


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="resolve_after"):
        StoreAlertBook(None, interval_s=300, resolve_after=0)
    with pytest.raises(ValueError, match="interval_s"):
        StoreAlertBook(None, interval_s=0)
