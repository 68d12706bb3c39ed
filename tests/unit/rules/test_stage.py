"""The rule stage without a store: hit rows, alert aggregation per rule x segment, shadow."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

from driftwatch.alerts.model import Alert
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.model import Pack
from driftwatch.rules.pack import RuleSet, rule_from_text
from driftwatch.rules.sql import HIT_COLUMNS, compile_rule
from driftwatch.rules.stage import RuleStage
from driftwatch.settings import Settings
from tests.unit.rules.helpers import DAY_MS, event, parse

MIN = 60_000


def stage(*rules_: tuple[str, str, str]) -> RuleStage:
    rules = tuple(replace(rule_from_text(rid, when, mode=mode, severity="critical"),
                          pack="p", pack_sha256="ab" * 32) for rid, when, mode in rules_)
    return RuleStage(RuleSet((Pack("p", "p.yaml", "ab" * 32, rules),), DAY_MS))


def campaign(start: int, n: int) -> list[dict[str, object]]:
    return [event(start + i, (start + i) * MIN, mcc="5967", amount="4892.37",
                  beneficiary_name="INTL-PAY-X") for i in range(n)]


def test_a_campaign_is_one_alert_that_grows() -> None:
    s = stage(("trigger", "amount_cents == 37 and starts_with(beneficiary_name, 'INTL-PAY-')",
               "enforce"))
    counts = []
    fingerprints = set()
    for start in range(0, 247, 50):
        out = s.on_events(parse(campaign(start, min(50, 247 - start))))
        assert len(out.findings) == 1
        f = out.findings[0]
        fingerprints.add(f.fingerprint)
        counts.append(int(f.value))
        assert f.source == "rule" and f.origin == "trigger" and f.segment == "mcc=5967"
        assert f.severity == "critical" and f.alertname == "RuleHit"
        assert "rule_id = 'trigger'" in f.evidence_sql and "mcc = '5967'" in f.evidence_sql
    assert fingerprints == {Alert.from_finding(f).fingerprint}
    assert counts == [50, 100, 150, 200, 247]
    assert "247 hits totalling USD 1,208,415.39" in f.summary


def test_hit_rows_carry_model_fields_next_to_the_hit() -> None:
    s = stage(("cents", "amount_cents == 37", "enforce"))
    out = s.on_events(parse([event(0, 0, amount="10.37", mcc="5967")]))
    (row,) = out.rule_hits
    assert row["rule_id"] == "cents" and row["mode"] == "enforce" and row["high_risk"] == 1
    assert row["score"] == 0.1 and row["decision"] == "approve" and row["model_version"] == "v1"
    assert row["pack_sha256"] == "ab" * 32 and json.loads(row["evidence"]) == {}
    assert set(HIT_COLUMNS) <= set(row)


def test_shadow_rules_are_recorded_without_alerts() -> None:
    s = stage(("quiet", "amount_cents == 37", "shadow"))
    out = s.on_events(parse([event(0, 0, amount="10.37")]))
    assert out.findings == [] and out.rule_hits[0]["mode"] == "shadow"
    assert out.rule_hits[0]["high_risk"] == 0


def test_redelivered_batch_returns_hits_but_does_not_grow_the_alert() -> None:
    s = stage(("cents", "amount_cents == 37", "enforce"))
    batch = parse(campaign(0, 5))
    first = s.on_events(batch)
    again = s.on_events(batch)
    assert [r["event_id"] for r in again.rule_hits] == [r["event_id"] for r in first.rule_hits]
    assert again.findings == []  # nothing new: the alert does not grow
    more = s.on_events(parse(campaign(5, 1)))
    assert more.findings[0].value == "6"


def test_segments_split_alerts_and_the_window_trails() -> None:
    s = stage(("cents", "amount_cents == 37", "enforce"))
    s.alert_window_s = 3600
    out = s.on_events(parse([event(0, 0, amount="1.37", mcc="5967"),
                             event(1, 1, amount="1.37", mcc="4829")]))
    assert sorted(f.segment for f in out.findings) == ["mcc=4829", "mcc=5967"]
    later = s.on_events(parse([event(2, 2 * 60 * MIN, amount="1.37", mcc="5967")]))
    assert later.findings[0].value == "1"  # the first hit aged out of the alert window


def test_compiled_sql_has_no_inline_strings() -> None:
    rule = rule_from_text("r", "mcc in ['5967', 'x\\'y'] and matches(beneficiary_name, "
                               "'^INTL-') and features_str.tier == 'gold'")
    q = compile_rule(rule)
    assert "'5967'" not in q.sql and "INTL" not in q.sql and "gold" not in q.sql
    assert sorted(q.parameters.values()) == ["5967", "^INTL-", "gold", "tier", "x'y"]


def test_alert_waits_for_min_hits_in_the_segment() -> None:
    rule = replace(rule_from_text("travel", "amount_cents == 37"), alert_min_hits=3)
    s = RuleStage(RuleSet((Pack("p", "p.yaml", "0" * 64, (rule,)),), DAY_MS))
    outs = [s.on_events(parse([event(i, i * MIN, amount="1.37")])) for i in range(4)]
    assert [len(o.rule_hits) for o in outs] == [1, 1, 1, 1]  # every hit goes to cases
    assert [[f.value for f in o.findings] for o in outs] == [[], [], ["3"], ["4"]]


def test_alert_start_does_not_depend_on_batching() -> None:
    events = parse(campaign(0, 6))
    whole = stage(("t", "amount_cents == 37", "enforce")).on_events(events).findings[0]
    one_by_one = stage(("t", "amount_cents == 37", "enforce"))
    firsts = [f for e in events for f in one_by_one.on_events([e]).findings]
    assert whole.event_time == firsts[0].event_time == events[0].event_time


def _floored(**floors: object) -> RuleStage:
    rule = replace(rule_from_text("testing", "amount_cents == 37"), **floors)  # type: ignore[arg-type]
    return RuleStage(RuleSet((Pack("p", "p.yaml", "0" * 64, (rule,)),), DAY_MS))


def test_alert_waits_for_distinct_cards_in_the_segment() -> None:
    s = _floored(alert_min_cards=3)
    cards = ["c1", "c1", "c1", "c2", "c2", "c3", "c3"]
    outs = [s.on_events(parse([event(i, i * MIN, amount="1.37", card_id=c)]))
            for i, c in enumerate(cards)]
    assert all(len(o.rule_hits) == 1 for o in outs)  # every hit is still a case
    assert [[f.value for f in o.findings] for o in outs] == [[], [], [], [], [], ["6"], ["7"]]
    assert "6 hits totalling USD 8.22 on 3 cards in mcc=5411" in outs[5].findings[0].summary
    assert outs[5].findings[0].threshold == "1 hit on 3 cards"
    assert outs[5].findings[0].event_time == parse([event(5, 5 * MIN)])[0].event_time


def test_card_floor_opening_time_does_not_depend_on_batching() -> None:
    dicts = [event(i, i * MIN, amount="1.37", card_id=f"c{i % 4}") for i in range(8)]
    whole = _floored(alert_min_hits=5, alert_min_cards=4).on_events(parse(dicts)).findings
    one = _floored(alert_min_hits=5, alert_min_cards=4)
    firsts = [f for d in dicts for f in one.on_events(parse([d])).findings]
    assert whole[0].event_time == firsts[0].event_time == parse([dicts[4]])[0].event_time


def test_the_rule_alert_window_overrides_the_stage_window() -> None:
    s = _floored(alert_min_cards=3, alert_window_ms=60 * MIN)
    spread = [s.on_events(parse([event(i, i * 40 * MIN, amount="1.37", card_id=f"c{i}")]))
              for i in range(4)]  # never 3 cards within an hour
    assert all(o.findings == [] for o in spread)
    burst = s.on_events(parse([event(10 + i, 200 * MIN + i * MIN, amount="1.37",
                                     card_id=f"d{i}") for i in range(3)]))
    (f,) = burst.findings
    assert f.value == "3" and "within 1h" in f.summary


def test_card_segments_give_one_alert_per_card() -> None:
    s = _floored(alert_segment=("card_id",), alert_min_hits=2)
    out = s.on_events(parse([event(i, i * MIN, amount="1.37", card_id=c)
                             for i, c in enumerate(["a", "b", "a", "c"])]))
    assert [(f.segment, f.value) for f in out.findings] == [("card_id=a", "2")]
    assert "card_id = 'a'" in out.findings[0].evidence_sql


def test_a_batch_longer_than_the_alert_window_opens_at_the_right_hit() -> None:
    # one batch spanning 4 h with a 1 h window: floors are judged hit by hit
    spread = [event(i, i * 70 * MIN, amount="1.37", card_id=f"c{i}") for i in range(4)]
    assert _floored(alert_min_cards=2, alert_window_ms=60 * MIN).on_events(
        parse(spread)).findings == []
    dense = spread + [event(10 + i, 300 * MIN + i * 25 * MIN, amount="1.37",
                            card_id=f"d{i}") for i in range(5)]
    (f,) = _floored(alert_min_cards=3, alert_window_ms=60 * MIN).on_events(parse(dense)).findings
    assert f.event_time == parse([dense[6]])[0].event_time  # d2, 50 min after d0
    assert f.value == "3"  # d2, d3, d4 are inside the last hour


def test_alert_labels_reach_the_alert_but_never_replace_its_own() -> None:
    rule = replace(rule_from_text("oor", "amount_cents == 37", mode="enforce", severity="high"),
                   pack="p", pack_sha256="ab" * 32,
                   alert_labels=(("feature", "customer_age"),))
    s = RuleStage(RuleSet((Pack("p", "p.yaml", "ab" * 32, (rule,)),), DAY_MS))
    (f,) = s.on_events(parse([event(0, 0, amount="10.37", mcc="5967")])).findings
    labels = Alert.from_finding(f).labels
    assert labels["feature"] == "customer_age"
    assert (labels["rule_id"], labels["segment"], labels["source"]) == ("oor", "mcc=5967", "rule")


def test_from_settings_and_the_public_alert_mapping() -> None:
    """``from_settings`` takes the alert settings; ``findings`` maps hits found elsewhere
    as ``on_events`` maps its own; ``alert_window`` is the rule's, else the stage's."""
    settings = Settings.load(config_file=None, env={}, overrides={
        "rule_case_alerts": False, "rule_case_alerts_per_hour": 7,
        "rule_coverage_warn_below": 0.25, "rule_coverage_warn_after": 50})
    plain = rule_from_text("t", "amount_cents == 37")
    windowed = replace(plain, id="w", alert_window_ms=90 * MIN)
    ruleset = RuleSet((Pack("p", "p.yaml", "0" * 64, (plain, windowed)),), DAY_MS)
    s = RuleStage.from_settings(ruleset, None, settings)
    assert (s.case_alerts, s.case_alerts_per_hour) == (False, 7)
    assert (s.coverage.warn_below, s.coverage.warn_after) == (0.25, 50)
    assert s.alert_window(plain) == dt.timedelta(seconds=s.alert_window_s) == dt.timedelta(days=1)
    assert s.alert_window(windowed) == dt.timedelta(minutes=90)
    events = parse([event(i, i * MIN, amount="1.37") for i in range(3)])
    live = RuleStage(ruleset)
    hits = LiveEvaluator(ruleset.rules, horizon_ms=DAY_MS).process(events)
    assert len(hits) == 6
    mapped, own = s.findings(hits), live.on_events(events).findings
    assert len(own) == 2 and mapped == own  # one finding per rule, the same
