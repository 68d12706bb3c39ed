"""Column-wise batches (windows stored per batch, rules run behind their guards) give
the same hits, evidence and window state as the same events evaluated one at a time."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.events import ScoredTransaction
from driftwatch.rules.check import _probe
from driftwatch.rules.columns import ColumnFeed, column_cache
from driftwatch.rules.guards import Lanes, split
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.pack import rule_from_text
from driftwatch.rules.window import KeyedWindow
from tests.unit.rules.helpers import DAY_MS, event, parse
from tests.unit.rules.test_live import AGGS

GUARDED = [
    "amount_minor >= 1000 and count(by=card_id, within=5m, where=amount_minor >= 1000) >= 2",
    'mcc == "5967" and count_distinct(card_id, by=ip, within=10m) >= 2',
    "amount_minor % 2 == 0",  # guards only
    'present(ip) and not present(geo_lat) and sum(amount_minor, by=[card_id, ip], within=3m)'
    " > 150000",
]


def _rules() -> list[Any]:
    probes = [_probe(rule_from_text(f"a{i}", f"{text} == {text}" if text.startswith((
        "first", "mono")) else f"present({text})" if not text.startswith(("count", "sum"))
        else f"{text} >= 0")) for i, text in enumerate(AGGS)]
    return probes + [rule_from_text(f"g{i}", text) for i, text in enumerate(GUARDED)]


def _state(ev: LiveEvaluator) -> list[dict[Any, Any]]:
    return [{k: v if isinstance(v, list) else [v] for k, v in w._data.items()}
            for w in ev._windows]


def _hits(ev: LiveEvaluator, batches: list[list[ScoredTransaction]]) -> list[Any]:
    return [(h.rule.id, h.event.event_id, h.evidence) for b in batches for h in ev.process(b)]


@st.composite
def timed_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events at strictly increasing times (one at a time sees what a batch sees)."""
    n = draw(st.integers(1, 40))
    out, t = [], 0
    for i in range(n):
        t += draw(st.sampled_from([1, 1000, 30_000, 90_000, 240_000]))
        fields: dict[str, Any] = {
            "card_id": draw(st.sampled_from(["c1", "c2", "c3"])),
            "mcc": draw(st.sampled_from(["5411", "5967"])),
            "merchant_id": draw(st.sampled_from(["m1", "m2"])),
            "amount": f"{draw(st.integers(1, 2000))}.{draw(st.integers(0, 99)):02d}",
        }
        ip = draw(st.sampled_from(["", "10.0.0.1", "10.0.0.2"]))
        if ip:
            fields["ip"] = ip
        if draw(st.booleans()):
            fields["geo"] = {"lat": draw(st.sampled_from([51.5, 40.7])),
                             "lon": draw(st.sampled_from([-0.12, -74.0]))}
        out.append(event(i, t, **fields))
    return out


@settings(max_examples=40, deadline=None)
@given(timed_streams(), st.integers(1, 40))
def test_batches_equal_one_event_at_a_time(dicts: list[dict[str, Any]], size: int) -> None:
    evs = parse(dicts)
    # idle keys are dropped after each batch (expire): off, so the states compare
    one, batched = (LiveEvaluator(_rules(), horizon_ms=DAY_MS, expire=False) for _ in range(2))
    want = _hits(one, [[e] for e in evs])
    got = _hits(batched, [evs[i : i + size] for i in range(0, len(evs), size)])
    assert got == want
    assert _state(batched) == _state(one)  # settle evicted what the batch kept


def test_a_batch_keeps_what_its_first_event_sees_and_settles_after() -> None:
    # e0 at 0, e1 at 20 min: storing e1 evicts e0 (10-minute window) only after e0
    # was evaluated; e1 then sees e1 alone, and the window holds e1 only.
    rule = rule_from_text("r", "count(by=card_id, within=10m) >= 1")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS)
    hits = ev.process(parse([event(0, 0), event(1, 20 * 60_000)]))
    assert [h.evidence["count(by=card_id, within=10m)"] for h in hits] == [1, 1]
    assert ev.state.entries == 1


def test_guards_split_at_the_top_level_and() -> None:
    rule = rule_from_text("r", "count(by=ip, within=1h) >= 3 and amount_minor <= 300"
                               ' and channel != "atm"')
    guards, rest = split(rule.expr)
    assert len(guards) == 2 and len(rest) == 1
    assert split(rule_from_text("s", "amount_minor > 1 or count(by=ip, within=1h) > 1")
                 .expr)[0] == []


def test_plan_runs_the_rest_only_behind_the_guards_in_event_then_rule_order() -> None:
    rules = [rule_from_text("a", "amount_minor >= 1000 and count(by=card_id, within=1h) >= 1"),
             rule_from_text("b", "amount_minor % 2 == 0")]
    ev = LiveEvaluator(rules, horizon_ms=DAY_MS)
    batch = parse([event(0, 0, amount="5.00"), event(1, 1, amount="12.00"),
                   event(2, 2, amount="12.01")])
    column, ms, ids = column_cache(ev._column_fns, batch), [0, 1, 2], [e.event_id for e in batch]
    ev._feed.store(ms, ids, batch, column)  # as process() does: stored, then planned
    codes, fns = ev._lanes.plan(batch, column, ids)
    assert [divmod(c, 2) for c in codes] == [(0, 1), (1, 0), (1, 1), (2, 0)]
    assert fns[0] is not None and fns[1] is None  # b is decided by its guard alone


def test_a_guard_that_raises_runs_its_rule_event_by_event() -> None:
    rule = rule_from_text("m", 'matches(features_str.note, "b[a-z]{1,20}x") and'
                               " count(by=card_id, within=1h) >= 1")
    lanes = Lanes([rule.expr], LiveEvaluator([rule], horizon_ms=DAY_MS)._compile_scalar)
    batch = parse([event(0, 0, features={"note": "ab" * 5000}), event(1, 1)])
    codes, fns = lanes.plan(batch, column_cache(lanes.columns, batch))
    assert codes == [0, 1] and fns == [lanes.lanes[0].whole]


def test_column_feed_names_must_be_given() -> None:
    w = KeyedWindow(60_000, key=lambda e: e)
    with pytest.raises(ValueError, match="'nope'"):
        ColumnFeed([(w, "nope", (), ())], {})
    feed = ColumnFeed([(w, ("zip", ("a", "b")), (("notnull", "b"),), ())],
                      {"a": lambda e: e[0], "b": lambda e: e[1]})
    batch = [("x", 1), ("y", None)]
    feed.store([0, 1], ["e0", "e1"], batch, column_cache(feed.columns, batch))
    assert w.entries(("x", 1)) == [(0, "e0")] and w.keys_total == 1
