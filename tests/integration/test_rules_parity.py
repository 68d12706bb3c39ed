"""Live evaluation and the compiled SQL give the same hits (and evidence) for every
shipped rule, on the same fixture in real ClickHouse (chdb)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from driftwatch.events import ScoredTransaction
from driftwatch.rules.history import stored_events
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.pack import rule_from_text
from driftwatch.rules.sql import compile_rule
from driftwatch.store.client import Store
from tests.integration.rules_fixture import fixture_events, shipped_rules

pytestmark = pytest.mark.integration


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def _sql_hits(store: Store, rule: Any, since: dt.datetime, until: dt.datetime
              ) -> dict[str, dict[str, Any]]:
    q = compile_rule(rule)
    cols = store.query_columns(q.sql, q.bind(since, until))
    return {eid: {label: cols[f"_e{j}"][i] for j, label in enumerate(q.evidence)}
            for i, eid in enumerate(cols["event_id"])}


def _span(events: list[ScoredTransaction]) -> tuple[dt.datetime, dt.datetime]:
    times = [e.event_time for e in events]
    return min(times), max(times) + dt.timedelta(milliseconds=1)


def test_live_and_sql_agree_for_every_shipped_rule(store: Store) -> None:
    ruleset = shipped_rules()
    events = fixture_events()
    store.insert_scored(events)
    since, until = _span(events)
    live = LiveEvaluator(ruleset.rules, horizon_ms=ruleset.horizon_ms).process(events)
    by_rule: dict[str, dict[str, dict[str, Any]]] = {}
    for h in live:
        by_rule.setdefault(h.rule.id, {})[h.event.event_id] = h.evidence
    for rule in ruleset.rules:
        expected = by_rule.get(rule.id, {})
        got = _sql_hits(store, rule, since, until)
        assert expected, f"{rule.id}: no hit in the fixture, parity would be vacuous"
        assert set(got) == set(expected), (
            rule.id, sorted(set(expected) - set(got))[:5], sorted(set(got) - set(expected))[:5])
        for eid, evidence in expected.items():
            for label, value in evidence.items():
                assert _same(value, got[eid][label]), (rule.id, eid, label, value, got[eid][label])


def test_stored_events_round_trip_to_the_same_hits(store: Store) -> None:
    ruleset = shipped_rules()
    events = fixture_events()
    store.insert_scored(events)
    since, until = _span(events)
    back = [e for batch in stored_events(store, since, until, batch_size=3000) for e in batch]
    assert len(back) == len(events)

    def hits(evs: list[ScoredTransaction]) -> set[tuple[str, str]]:
        ev = LiveEvaluator(ruleset.rules, horizon_ms=ruleset.horizon_ms)
        return {(h.rule.id, h.event.event_id) for h in ev.process(evs)}

    assert hits(back) == hits(events)


VOCABULARY = [
    "count(by=card_id, within=10m) >= 2",
    "count_distinct(card_id, by=ip, within=1h, where=present(ip)) >= 2",
    "sum(amount_minor, by=merchant_id, within=30m, where=amount_minor < 10000) > 2000",
    "min(amount, by=card_id, within=1h) < 2 or max(amount_minor, by=mcc, within=1h) > 900000",
    "first_seen(merchant_id, within=2h) and amount_minor > 10000",
    "monotonic_decrease(amount_minor, by=[card_id, mcc], n=2, within=1h, factor<=0.5)",
    "travel_km(by=card_id, within=1h) < 2000 or travel_speed_kmh(by=ip, within=3h) > 50",
    "amount_cents % 100 == 37 or (starts_with(beneficiary_name, 'INTL-PAY-') "
    "and age_days(merchant_registered_at) <= 120)",
    "features.customer_age >= 60 and not (mcc in ['5411']) and features.new_device != 1",
    "matches(beneficiary_name, '^[A-Z]+-[A-Z]+-') and count(by=prefix(beneficiary_name, 9), "
    "within=1h) > 2 and ends_with(card_id, '1') and contains(merchant_id, '0')",
    "amount / 2 > 1000 and amount_minor * 2 - 5 > 0 and -amount < 0 and abs(amount - 100) > 1",
    "distance_km(geo_lat, geo_lon, 51.5, -0.12) < 3000 and length(ip) > 9",
    "hour_of_day() >= 12 and day_of_week() <= 3 and features.transactions_24h / 0 > 1 "
    "or features_str.segment == 'x' or channel not in ['ecom', 'card_present']",
]


def test_live_and_sql_agree_on_the_whole_vocabulary(store: Store) -> None:
    events = fixture_events()
    store.insert_scored(events)
    since, until = _span(events)
    rules = [rule_from_text(f"v{i}", when) for i, when in enumerate(VOCABULARY)]
    live: dict[str, dict[str, dict[str, Any]]] = {}
    for h in LiveEvaluator(rules, horizon_ms=86_400_000).process(events):
        live.setdefault(h.rule.id, {})[h.event.event_id] = h.evidence
    for rule in rules:
        expected = live.get(rule.id, {})
        got = _sql_hits(store, rule, since, until)
        assert expected, f"{rule.when}: no hit, the case proves nothing"
        assert set(got) == set(expected), rule.when
        for eid, evidence in expected.items():
            assert all(_same(v, got[eid][k]) for k, v in evidence.items()), (
                rule.when, eid, evidence, got[eid])


def test_stored_events_of_an_empty_range_is_empty(store: Store) -> None:
    t = dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
    assert list(stored_events(store, t, t + dt.timedelta(hours=1))) == []
