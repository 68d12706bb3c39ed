"""The rule stage against real ClickHouse: idempotent hit rows, the disagreement view,
warm-up from history, and the whole pipeline with the shipped packs."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from driftwatch.assemble import build_pipeline
from driftwatch.events import epoch_ms
from driftwatch.rules.pack import rule_from_text
from driftwatch.rules.stage import RuleStage, rule_stage_from_settings
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from tests.integration.rules_fixture import RULES, fixture_events, shipped_rules, simulated_lines

pytestmark = pytest.mark.integration


def test_hits_are_stored_once_even_when_batches_are_redelivered(store: Store) -> None:
    ruleset = shipped_rules()
    stage = RuleStage(ruleset, store)
    events = fixture_events()
    rows = []
    for i in range(0, len(events), 2000):
        batch = events[i : i + 2000]
        rows.extend(stage.on_events(batch).rule_hits)
        stage.on_events(batch)  # at-least-once: the same batch again
    unique = {(r["rule_id"], r["event_id"]) for r in rows}
    assert len(unique) == len(rows) > 0
    assert store.count("rule_hits") == len(unique)
    per_rule = dict(store.query(
        "SELECT rule_id, count() FROM {db}.rule_hits FINAL GROUP BY rule_id"))
    assert per_rule == dict(Counter(r["rule_id"] for r in rows))
    stored = store.query(
        "SELECT DISTINCT pack, pack_sha256 FROM {db}.rule_hits FINAL ORDER BY pack")
    assert stored == sorted({(p.name, p.sha256) for p in ruleset.packs
                             if any(r["pack"] == p.name for r in rows)})
    ev = store.query("SELECT evidence FROM {db}.rule_hits FINAL "
                     "WHERE rule_id = 'campaign_many_cards_one_ip' LIMIT 1")
    assert json.loads(ev[0][0])["count_distinct(card_id, by=ip, within=1h, where=channel "
                                "not in [\"card_present\", \"atm\"])"] >= 8


def test_disagreement_view_per_segment(store: Store) -> None:
    rules = [rule_from_text("hi", "amount_cents == 37", severity="critical"),
             rule_from_text("lo", "amount_minor > 0", severity="low"),
             rule_from_text("sh", "amount_cents == 37", severity="critical", mode="shadow")]
    from driftwatch.rules.model import Pack
    from driftwatch.rules.pack import RuleSet

    stage = RuleStage(RuleSet((Pack("p", "p.yaml", "0" * 64, tuple(rules)),)), store)
    events = fixture_events()[:3000]
    stage.on_events(events)
    got = dict(store.query(
        "SELECT mcc, countIf(high_risk = 1 AND decision = 'approve') FROM {db}.rule_verdicts "
        "GROUP BY mcc"))
    expected: Counter[str] = Counter()
    for e in events:
        expected[e.mcc] += int(e.amount_minor % 100 == 37 and e.decision == "approve")
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
    assert store.query("SELECT count() FROM {db}.rule_verdicts")[0][0] == len(events)
    shadow_only = store.query(
        "SELECT max(high_risk) FROM {db}.rule_hits FINAL WHERE mode = 'shadow'")
    assert shadow_only == [(0,)]


def test_warm_up_fills_windows_from_history(store: Store) -> None:
    events = sorted(fixture_events()[:4000], key=lambda e: e.event_time)
    store.insert_scored(events[:-1])
    rule = rule_from_text("seen", "count(by=mcc, within=1h) >= 1")
    from driftwatch.rules.model import Pack
    from driftwatch.rules.pack import RuleSet

    cold = RuleStage(RuleSet((Pack("p", "p.yaml", "0" * 64, (rule,)),)), store)
    warm = RuleStage(RuleSet((Pack("p", "p.yaml", "0" * 64, (rule,)),)), store)
    assert warm.warm_up(store) == len(events) - 1
    last = events[-1]
    expected = 1 + sum(1 for e in events[:-1] if e.mcc == last.mcc
                       and epoch_ms(last.event_time) - 3_600_000 <= epoch_ms(e.event_time))
    key = "count(by=mcc, within=1h)"
    assert json.loads(warm.on_events([last]).rule_hits[0]["evidence"])[key] == expected
    assert json.loads(cold.on_events([last]).rule_hits[0]["evidence"])[key] == 1


def test_pipeline_with_the_shipped_packs(store: Store, chdb_dsn: str) -> None:
    settings = Settings.load(config_file=None, env={}, overrides={
        "store_dsn": chdb_dsn, "database": store.database, "rules_dirs": str(RULES)})
    assert [s.name for s in rule_stage_from_settings(settings, store)] == ["rules"]
    pipeline = build_pipeline(settings, store)
    lines, truth = simulated_lines()
    hits = 0
    for i in range(0, len(lines), 2500):
        hits += len(pipeline.process_events(lines[i : i + 2500], "test").rule_hits)
    assert hits == store.count("rule_hits") > 0
    trigger = set(truth["attack_event_ids"]["backdoor"])
    caught = {r[0] for r in store.query(
        "SELECT event_id FROM {db}.rule_hits FINAL WHERE rule_id = 'trigger_signature'")}
    assert caught and caught <= trigger
    alerts = store.query(
        "SELECT segment, count() FROM {db}.alerts FINAL WHERE origin = 'trigger_signature' "
        "GROUP BY segment")
    assert alerts == [("mcc=5967", 1)]  # one alert for the whole campaign, not one per hit


def test_missing_rule_directory_means_no_stage(tmp_path: object) -> None:
    settings = Settings.load(config_file=None, env={}, overrides={
        "rules_dirs": "/nonexistent/rules"})
    assert rule_stage_from_settings(settings, None) == []
    later = dt.datetime.now(dt.UTC)
    assert later.tzinfo is not None


def test_evidence_sql_of_card_and_ip_segments_selects_the_hits(store: Store) -> None:
    from dataclasses import replace

    from driftwatch.rules.model import Pack
    from driftwatch.rules.pack import RuleSet
    from tests.unit.rules.helpers import DAY_MS, event, parse

    by_card = replace(rule_from_text("by_card", "amount_cents == 37"),
                      alert_segment=("card_id",), alert_min_hits=2)
    by_ip = replace(rule_from_text("by_ip", "amount_cents == 37"),
                    alert_segment=("ip",), alert_min_cards=2)
    stage = RuleStage(RuleSet((Pack("p", "p.yaml", "0" * 64, (by_card, by_ip)),), DAY_MS),
                      store)
    events = parse([event(i, i * 60_000, amount="1.37", card_id=c, ip=ip) for i, (c, ip) in
                    enumerate([("a", "10.0.0.1"), ("a", "10.0.0.1"), ("b", "10.0.0.2"),
                               ("c", "10.0.0.1")])])
    store.insert_scored(events, "test")
    findings = {f.origin: f for f in stage.on_events(events).findings}
    assert {o: f.segment for o, f in findings.items()} == {
        "by_card": "card_id=a", "by_ip": "ip=10.0.0.1"}
    for origin, expected in (("by_card", ["e000000", "e000001"]),
                             ("by_ip", ["e000000", "e000001", "e000003"])):
        rows = store.query(findings[origin].evidence_sql.replace(store.database, "{db}"))
        assert sorted(r[0] for r in rows) == expected
