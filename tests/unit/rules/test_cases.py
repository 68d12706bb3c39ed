"""Case alerts: a ``case_alert`` rule's hits reach the SOC as one info alert per card."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from driftwatch.alerts.model import Alert
from driftwatch.rules.model import Pack
from driftwatch.rules.pack import RuleLoadError, RuleSet, load_pack, rule_from_text
from driftwatch.rules.stage import CASE_ALERT, INCIDENT_ALERT, RuleStage
from tests.unit.rules.helpers import DAY_MS, event, parse

MIN = 60_000
TINY = "amount_minor <= 300 and count(by=card_id, within=15m, where=amount_minor <= 300) >= 3"


def stage(*, case: bool = True, mode: str = "enforce", min_cards: int = 5,
          **kwargs: Any) -> RuleStage:
    rule = replace(rule_from_text("tiny", TINY, mode=mode, severity="high"),
                   case_alert=case, alert_min_cards=min_cards, alert_window_ms=3_600_000,
                   pack="p", pack_sha256="ab" * 32)
    return RuleStage(RuleSet((Pack("p", "p.yaml", "ab" * 32, (rule,)),), DAY_MS), **kwargs)


def charges(card: str, start_min: int, n: int, first: int = 0) -> list[dict[str, Any]]:
    return [event(first + i, (start_min * 60 + 40 * i) * 1000, card_id=card, amount="1.01",
                  event_id=f"{card}-{first + i}") for i in range(n)]


def test_one_card_is_one_case_that_grows() -> None:
    s = stage()
    out1 = s.on_events(parse(charges("c-1", 0, 3)))
    assert [(f.alertname, f.severity, f.segment, f.value) for f in out1.findings] == [
        (CASE_ALERT, "info", "card_id=c-1", "1")]
    f1 = out1.findings[0]
    assert "on card c-1" in f1.summary and "single-card case" in f1.summary
    assert "card_id = 'c-1'" in f1.evidence_sql and f1.threshold == "1 hit (case)"
    out2 = s.on_events(parse(charges("c-1", 0, 6)[3:]))
    assert [(f.alertname, f.value) for f in out2.findings] == [(CASE_ALERT, "4")]
    assert Alert.from_finding(out2.findings[0]).fingerprint == Alert.from_finding(f1).fingerprint
    assert out2.findings[0].event_time > f1.event_time


def test_campaign_still_needs_its_floor_and_cases_name_each_card() -> None:
    s = stage(min_cards=3)
    events = [e for k in range(3) for e in charges(f"c-{k}", k, 3, first=10 * k)]
    out = s.on_events(parse(events))
    cases = sorted(f.segment for f in out.findings if f.alertname == CASE_ALERT)
    incidents = [f for f in out.findings if f.alertname == INCIDENT_ALERT]
    assert cases == ["card_id=c-0", "card_id=c-1", "card_id=c-2"]
    assert [(f.severity, f.segment, f.value) for f in incidents] == [("warning", "mcc=5411", "3")]
    # Alertmanager mutes the cards' cases while their campaign's alert fires
    labels = [f.extra_labels for f in out.findings]
    assert {(x["scope"], x["campaign"]) for x in labels} == {
        ("card", "tiny:mcc=5411"), ("campaign", "tiny:mcc=5411")}


def test_rate_limit_per_rule_per_hour() -> None:
    s = stage(case_alerts_per_hour=2)
    events = [e for k in range(4) for e in charges(f"c-{k}", 5 * k, 3, first=10 * k)]
    out = s.on_events(parse(events))
    assert sorted(f.segment for f in out.findings if f.alertname == CASE_ALERT) == [
        "card_id=c-0", "card_id=c-1"]
    assert s.cases_suppressed == 2
    assert len(out.rule_hits) == 4  # every hit is still a case in rule_hits
    # a held-back card stays held (the decision does not depend on batching) ...
    again = s.on_events(parse(charges("c-2", 11, 2, first=50)))
    assert len(again.rule_hits) == 2 and again.findings == [] and s.cases_suppressed == 2
    # an hour later there is room again, and an open case keeps growing meanwhile
    later = s.on_events(parse(charges("c-9", 70, 3, first=100)))
    assert [f.segment for f in later.findings] == ["card_id=c-9"]


@pytest.mark.parametrize("kwargs", [{"case": False}, {"mode": "shadow"},
                                    {"case_alerts": False}])
def test_no_case_when_off(kwargs: dict[str, Any]) -> None:
    s = stage(**kwargs)
    out = s.on_events(parse(charges("c-1", 0, 5)))
    assert len(out.rule_hits) == 3 and out.findings == []


def test_bad_rate_limit() -> None:
    with pytest.raises(ValueError, match="case_alerts_per_hour"):
        stage(case_alerts_per_hour=0)


def test_idle_tallies_are_forgotten() -> None:
    s = stage()
    for k in range(300):  # one card tested per batch, 15 minutes apart: 300 cases
        s.on_events(parse(charges(f"c-{k}", 15 * k, 3, first=10 * k)))
    # the alert window is 1 h: the sweep after batch 256 kept the cards of its last hour
    # (4 or 5) and the campaign tally; 44 cards came after it
    assert len(s._tallies) <= 300 - 256 + 5 + 1


def test_case_alert_key_in_a_pack(tmp_path: Any) -> None:
    good = tmp_path / "p.yaml"
    good.write_text(f"rules:\n  - {{id: tiny, version: 1, severity: high, reason_code: TINY, "
                    f"mode: enforce, case_alert: true, when: '{TINY}'}}\n")
    assert load_pack(good).rules[0].case_alert is True
    bad = tmp_path / "q.yaml"
    bad.write_text(f"rules:\n  - {{id: tiny, version: 1, severity: high, reason_code: TINY, "
                   f"mode: enforce, case_alert: maybe, when: '{TINY}'}}\n")
    with pytest.raises(RuleLoadError, match="case_alert must be true or false"):
        load_pack(bad)
