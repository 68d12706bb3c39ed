"""Narrowing a batch by the window state (rules/batchforms.py) changes no hit, no
evidence and no error: it drops only events whose rule cannot hold."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.rules.batchforms import narrowing
from driftwatch.rules.columns import column_cache
from driftwatch.rules.guards import Lanes
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.pack import rule_from_text
from tests.unit.rules.helpers import DAY_MS, event, parse
from tests.unit.rules.test_batch import timed_streams

NARROWED = [
    "count(by=card_id, within=5m) >= 3",
    "count(by=card_id, within=5m) > 1.5 and amount_minor >= 1000",
    "count_distinct(card_id, by=ip, within=10m) >= 2",
    "count(by=card_id, within=5m) >= 1",
    "count(by=card_id, within=5m) >= 0",  # any key: no narrowing
    "amount_minor >= 1000 and (count(by=card_id, within=30m, where=amount_minor >= 1000) >= 3"
    " and monotonic_decrease(amount_minor, by=card_id, n=3, within=30m)"
    " or count(by=card_id, within=1h, where=amount_minor >= 1000) >= 4)",
    "travel_speed_kmh(by=card_id, within=10m, slack_km=10, slack_h=0.5) > 100",
    "travel_km(by=card_id, within=10m) <= 1",
    "monotonic_increase(amount_minor, by=[card_id, ip], n=2, within=10m)",
    "count(by=card_id, within=5m) >= 2 or amount_minor < 500",  # one side unknown: none
    "3 <= count(by=[card_id, merchant_id], within=10m)",
]


def _run(narrow: bool, batches: list[list[Any]]) -> list[Any]:
    rules = [rule_from_text(f"n{i}", text) for i, text in enumerate(NARROWED)]
    ev = LiveEvaluator(rules, horizon_ms=DAY_MS)
    if not narrow:
        ev._lanes = Lanes([r.expr for r in rules], ev._compile_scalar)
    assert any(lane.narrow for lane in ev._lanes.lanes) is narrow
    return [(h.rule.id, h.event.event_id, h.evidence) for b in batches for h in ev.process(b)]


@settings(max_examples=40, deadline=None)
@given(timed_streams(), st.integers(1, 40))
def test_narrowed_batches_hit_as_unnarrowed(dicts: list[dict[str, Any]], size: int) -> None:
    evs = parse(dicts)
    batches = [evs[i : i + size] for i in range(0, len(evs), size)]
    assert _run(True, batches) == _run(False, batches)


def test_which_conditions_narrow() -> None:
    def narrows(text: str) -> bool:
        expr = rule_from_text("r", text).expr
        return narrowing(expr, lambda agg: ({}.get, "k")) is not None

    assert narrows("count(by=card_id, within=5m) >= 2")
    assert narrows("count(by=card_id, within=5m) >= 2 or travel_km(by=card_id, within=1h) < 5")
    assert not narrows("count(by=card_id, within=5m) >= 0")
    assert not narrows("count(by=card_id, within=5m) <= 2")
    assert not narrows("not (count(by=card_id, within=5m) >= 2)")
    assert not narrows("sum(amount_minor, by=card_id, within=5m) >= 2")
    assert not narrows("count(by=card_id, within=5m) >= 2 or amount_minor > 5")


def test_a_key_holding_fewer_entries_than_needed_is_not_evaluated() -> None:
    rule = rule_from_text("r", "count(by=card_id, within=1h) >= 2")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS)
    batch = parse([event(0, 0, card_id="c1"), event(1, 1, card_id="c2"),
                   event(2, 2, card_id="c1")])
    column, ids = column_cache(ev._column_fns, batch), [e.event_id for e in batch]
    ev._feed.store([0, 1, 2], ids, batch, column)
    codes, _ = ev._lanes.plan(batch, column, ids)
    # c1 holds 2 entries (both events of the batch, stored before the plan): the
    # first one is still evaluated (it sees 1 and misses); c2's event is not
    assert codes == [0, 2]
    assert [h.event.event_id for h in LiveEvaluator([rule], horizon_ms=DAY_MS).process(batch)
            ] == [ids[2]]
