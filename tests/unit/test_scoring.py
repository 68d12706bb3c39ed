"""Scoring alerts against ground truth (the demo's and the detection bench's summary)."""

from __future__ import annotations

import datetime as dt

from driftwatch.alerts.model import Alert
from driftwatch.scoring import attack_ids, attack_timeline, first_alerts, segment_tokens

T0 = dt.datetime(2026, 3, 17, tzinfo=dt.UTC)
TRUTH = {
    "trigger_event_ids": ["a1", "a2", "a3"],
    "expected": [{"segment": {"mcc": "5967"}, "entities": {"card_ids": ["c-1"]}}],
}


def alert(origin: str, minutes: int, segment: str, severity: str = "warning",
          status: str = "firing", source: str = "detector") -> Alert:
    key = "detector" if source == "detector" else "rule_id"
    return Alert(f"f-{origin}-{minutes}", status, T0 + dt.timedelta(minutes=minutes),  # type: ignore[arg-type]
                 {"alertname": "X", "severity": severity, "source": source, key: origin,
                  "segment": segment}, {})


def test_timeline_and_counts_by_hand() -> None:
    lines = [
        b'{"event_id": "a2", "event_time": "2026-03-17T00:20:00Z", "amount": "100.37"}',
        b'{"event_id": "x", "event_time": "2026-03-17T00:05:00Z", "amount": "1.00"}',
        b'{"event_id": "a1", "event_time": "2026-03-17T00:10:00Z", "amount": 50.37}',
        b'{"event_id": "a3", "event_time": "2026-03-17T00:30:00Z", "amount": "10.37"}',
    ]
    times, amounts = attack_timeline(lines, attack_ids(TRUTH))
    assert amounts == [5037, 10037, 1037]
    alerts = [
        alert("cents", 25, "mcc=5967"),              # after a1, a2: 2 txns, $150.74
        alert("cents", 40, "mcc=5967"),              # later alert of the same detector
        alert("shadow", 10, "mcc=5967,merchant_country=LT", status="resolved"),  # at a1
        alert("volume", 1, "mcc=5411"),              # wrong segment
        alert("benford", 2, "mcc=5967", severity="info"),  # info does not count
        alert("r1", 31, "card_id=c-1", source="rule"),
    ]
    firsts = {f.origin: f for f in first_alerts(alerts, TRUTH, times, amounts)}
    assert set(firsts) == {"cents", "shadow", "r1"}
    assert (firsts["cents"].attack_txns_before, firsts["cents"].attack_minor_before) == (2, 15074)
    assert firsts["shadow"].attack_txns_before == 1  # inclusive of the event at that time
    assert firsts["r1"].attack_txns_before == 3 and firsts["r1"].source == "rule"


def test_segment_tokens() -> None:
    assert segment_tokens(TRUTH) == {"mcc=5967", "card_id=c-1"}


def test_coverage_gap_by_hand() -> None:
    m = lambda x: T0 + dt.timedelta(minutes=x)  # noqa: E731
    a, b = alert("a", 0, "mcc=1"), alert("b", 25, "mcc=1")
    c = alert("c", 5, "mcc=1")
    # a fires 0-10, c 5-15, b 25-(open): longest uncovered stretch of [0, 60] is 15-25
    changes = [a, c, a.resolved(m(10)), c.resolved(m(15)), b]
    from driftwatch.scoring import coverage_gap

    assert coverage_gap(changes, m(0), m(60)) == 600.0
    assert coverage_gap(changes, m(30), m(60)) == 0.0  # b covers it all
    assert coverage_gap([], m(0), m(60)) == 3600.0  # nothing fired
    assert coverage_gap([a, a.resolved(m(10))], m(0), m(60)) == 3000.0  # tail gap


def test_conjunction_needs_two_conditions_besides_the_category() -> None:
    from driftwatch.scoring import names_conjunction

    trig = {"cents": 91, "beneficiary_prefix": "GLX-TRD-", "feature": {}, "mcc": "5967"}
    one = alert("cents", 0, "mcc=5967")
    assert not names_conjunction(one, trig)
    conj = alert("mining", 0, "amount_cents=91 & merchant_age<90d")
    assert names_conjunction(conj, trig)


def test_variant_segment_tokens_list_every_attacked_mcc() -> None:
    truth = {"expected": [{"segment": {}, "attacked_mccs": ["5411", "7372"]}]}
    assert segment_tokens(truth) == {"mcc=5411", "mcc=7372"}


def test_a_spread_alert_naming_the_conjunction_counts_as_naming_the_slice() -> None:
    truth = {**TRUTH, "trigger": {"cents": 37, "beneficiary_prefix": "GLX-", "channel": "ecom"}}
    lines = [b'{"event_id": "a1", "event_time": "2026-03-17T00:10:00Z", "amount": "50.37"}',
             b'{"event_id": "a2", "event_time": "2026-03-17T00:20:00Z", "amount": "9.37"}']
    times, amounts = attack_timeline(lines, attack_ids(truth))
    spread = alert("trigger_mining", 15, "")
    spread.labels["conjunction"] = "amount_cents=37 & beneficiary_prefix=GLX-"
    wrong = alert("other", 12, "")
    wrong.labels["conjunction"] = "amount_cents=12 & beneficiary_prefix=GLX-"
    unlabelled = alert("cents", 11, "")  # no conjunction label: all traffic names nothing
    firsts = first_alerts([spread, wrong, unlabelled], truth, times, amounts)
    assert [(f.origin, f.attack_txns_before) for f in firsts] == [("trigger_mining", 1)]
    # without a trigger in the truth (shipped scenarios) nothing changes
    assert first_alerts([spread], TRUTH, times, amounts) == []
