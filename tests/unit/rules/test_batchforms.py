"""Narrowing a batch by the window state (rules/batchforms.py) changes no hit, no
evidence and no error: it drops only events whose rule cannot hold."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.rules.batchforms import event_form, narrowing
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


def _run(narrow: bool, batches: list[list[Any]], cap: int = 10_000) -> list[Any]:
    rules = [rule_from_text(f"n{i}", text) for i, text in enumerate(NARROWED)]
    ev = LiveEvaluator(rules, horizon_ms=DAY_MS, max_per_key=cap)
    if not narrow:
        ev._lanes = Lanes([r.expr for r in rules], ev._compile_scalar)
    assert any(lane.narrow for lane in ev._lanes.lanes) is narrow
    return [(h.rule.id, h.event.event_id, h.evidence) for b in batches for h in ev.process(b)]


@settings(max_examples=40, deadline=None)
@given(timed_streams(), st.integers(1, 40), st.sampled_from([1, 2, 3, 10_000]))
def test_narrowed_batches_hit_as_unnarrowed(dicts: list[dict[str, Any]], size: int,
                                            cap: int) -> None:
    # cap: max_per_key, down to keys holding one entry (travel: a lone entry is the
    # event's own or, over the cap, a later one)
    evs = parse(dicts)
    batches = [evs[i : i + size] for i in range(0, len(evs), size)]
    assert _run(True, batches, cap) == _run(False, batches, cap)


def test_which_conditions_narrow() -> None:
    def narrows(text: str) -> bool:
        expr = rule_from_text("r", text).expr
        return narrowing(expr, lambda agg: ({}.get, "k", None)) is not None

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


FORMED = [
    "amount_minor >= 1000",
    "amount_cents == 37",
    'channel not in ["card_present", "atm"]',
    'mcc in ["5967", "5411"]',
    "age_days(merchant_registered_at) <= 90",
    "features.new_device == 1",
    "features.customer_age >= 125 or features.customer_age < 0 or features.age < 0",
    "features.customer_age > 125 or 0 >= features.customer_age or features.age <= 7",
    "not present(device_id) and present(ip)",
    "present(geo_lat)",
    'features_str.note in ["a", "b"]',
    'not (mcc == "5967") and amount_minor <= 300',
]


@st.composite
def feature_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events whose features and optional fields take every kind of value."""
    out = []
    for i in range(draw(st.integers(1, 30))):
        value = st.one_of(st.none(), st.booleans(), st.integers(-5, 200),
                          st.floats(-5, 200, allow_nan=False), st.sampled_from(["x", ""]))
        feats = {name: v for name in ("new_device", "customer_age", "age", "note")
                 if (v := draw(value)) is not None}
        fields: dict[str, Any] = {
            "amount": f"{draw(st.integers(1, 2000))}.{draw(st.sampled_from([0, 37, 99])):02d}",
            "mcc": draw(st.sampled_from(["5967", "5411", "4829"])),
            "channel": draw(st.sampled_from(["ecom", "atm", "card_present"])),
            "features": feats,
        }
        if draw(st.booleans()):
            fields["merchant_registered_at"] = draw(st.sampled_from(
                ["2026-03-18", "2025-12-18", "2026-01-01", "2020-01-01"]))
        for name, value in (("ip", "10.0.0.1"), ("device_id", "d1")):
            if draw(st.booleans()):
                fields[name] = draw(st.sampled_from(["", value]))
        if draw(st.booleans()):
            fields["geo"] = {"lat": 1.5, "lon": 2.5}
        out.append(event(i, i * 1000, **fields))
    return out


@settings(max_examples=60, deadline=None)
@given(feature_events())
def test_batch_forms_give_the_truth_of_the_closures(dicts: list[dict[str, Any]]) -> None:
    evs = parse(dicts)
    ev = LiveEvaluator([], horizon_ms=DAY_MS)
    column = column_cache(ev._column_fns, evs)
    for text in FORMED:
        node = rule_from_text("r", text).expr
        form = event_form(node)
        assert form is not None, text
        closure = ev._compile_scalar(node)
        assert [bool(v) for v in form(column)] == [bool(closure(e)) for e in evs], text


RANGES = ["features.customer_age >= 125 or features.customer_age < 0 or features.age >= 125"
          " or features.age < 0",
          "features.customer_age > 124.95 or 0 > features.customer_age or features.age <= -1"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(0, 124),
                          st.floats(0, 124.9, allow_nan=False)), min_size=2, max_size=40),
       st.sampled_from([None, -0.5, 125, 124.5, "x", True, 10**30]))
def test_range_checks_decide_in_domain_batches_at_once(values: list[Any], odd: Any) -> None:
    # most batches hold inputs in their domain (decided from each feature's smallest and
    # largest value); one odd value (out of range, a string, a huge int) or none
    feats = [{"customer_age": v, "age": values[-1 - i]} for i, v in enumerate(values)]
    if odd is not None:
        feats[len(feats) // 2]["age"] = odd
    evs = parse([event(i, i, features={k: v for k, v in f.items() if v is not None})
                 for i, f in enumerate(feats)])
    column = column_cache(LiveEvaluator([], horizon_ms=DAY_MS)._column_fns, evs)
    for text in RANGES:
        node = rule_from_text("r", text).expr
        form = event_form(node)
        assert form is not None
        closure = LiveEvaluator([], horizon_ms=DAY_MS)._compile_scalar(node)
        truth = [bool(closure(e)) for e in evs]
        assert [bool(v) for v in form(column)] == truth, text
        if odd is None or odd is True or odd == 124.5:
            assert not any(truth)


def test_nodes_without_a_batch_form_keep_their_closures() -> None:
    for text in ('matches(features_str.note, "a+")', "amount > 10",
                 "amount_minor * 2 > 10", "count(by=card_id, within=1h) > 1 or amount_minor > 5"):
        assert event_form(rule_from_text("r", text).expr) is None, text


@settings(max_examples=40, deadline=None)
@given(feature_events(), st.sampled_from(["", "ACCT ", "ACCT c-1", "ACCT", "INTL-PAY-7"]))
def test_key_and_filter_forms_equal_the_window_closures(dicts: list[dict[str, Any]],
                                                       payee: str) -> None:
    for d in dicts[::2]:
        d["beneficiary_name"] = payee
    evs = parse(dicts)
    rules = [rule_from_text("p", "count_distinct(merchant_id, by=prefix(beneficiary_name, 4),"
                                 " within=1h, where=age_days(merchant_registered_at) <= 90)"
                                 " >= 1"),
             rule_from_text("m", 'channel == "transfer" and amount_minor <= received_max('
                                 'amount_minor, by=card_id, payee=beneficiary_name,'
                                 ' prefix="ACCT ", within=3h)'),
             rule_from_text("c", "count(by=[mcc, amount_cents], within=1h) >= 2")]
    ev = LiveEvaluator(rules, horizon_ms=DAY_MS)
    # value: age_days; field: amount_cents (a property of the event)
    assert {name[0] for name in ev._forms} == {"key", "where", "value", "field"}
    formed = column_cache(ev._column_fns, evs, ev._forms)
    plain = column_cache(ev._column_fns, evs)
    for name in ev._forms:
        if name[0] != "value":
            assert formed(name) == plain(name), name


def test_travel_comparisons_are_decided_for_the_batch() -> None:
    rules = [rule_from_text("fast", "travel_speed_kmh(by=card_id, within=1h, slack_km=10,"
                                    " slack_h=0.01) > 900")]
    dicts = [event(0, 0, card_id="c1", geo={"lat": 51.5, "lon": -0.12}),
             event(1, 60_000, card_id="c1", geo={"lat": 40.7, "lon": -74.0}),  # 5570 km/min
             event(2, 60_000, card_id="c2", geo={"lat": 1.3, "lon": 103.8}),
             event(3, 60_000, card_id="c2", geo={"lat": 1.4, "lon": 103.8}),  # 11 km, 0 h
             event(4, 120_000, card_id="c1", geo={"lat": 40.7, "lon": -74.0}),  # 0 km
             event(5, 130_000, card_id="c1")]  # no place
    batch = parse(dicts)
    ev = LiveEvaluator(rules, horizon_ms=DAY_MS)
    column = column_cache(ev._column_fns, batch, ev._forms,
                          {"ms": [0, 60_000, 60_000, 60_000, 120_000, 130_000],
                           "eid": [e.event_id for e in batch]})
    ev._feed.store(column("ms"), column("eid"), batch, column)
    codes, _ = ev._lanes.plan(batch, column, column("eid"))
    assert codes == [1]  # decided in one loop: the closure runs for the hit only
    ev = LiveEvaluator(rules, horizon_ms=DAY_MS)
    one = LiveEvaluator(rules, horizon_ms=DAY_MS)
    one._lanes = Lanes([r.expr for r in rules], one._compile_scalar)
    assert ([(h.event.event_id, h.evidence) for h in ev.process(batch)]
            == [(h.event.event_id, h.evidence) for h in one.process(batch)])
    assert [h.event.event_id for h in one.process(batch)] == ["e000001"]  # re-delivered


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05),
                          st.sampled_from([1, 30_000, 60_000, 600_000])), min_size=2,
                max_size=30),
       st.sampled_from([0.0, 60.0, 89.9]))
def test_speeds_skipped_by_the_bound_never_reach_it(steps: list[tuple[float, float, int]],
                                                    lat0: float) -> None:
    # places a few km apart, speeds on both sides of the threshold, near the pole too
    dicts, t = [], 0
    for i, (dlat, dlon, dt_ms) in enumerate(steps):
        t += dt_ms
        dicts.append(event(i, t, card_id="c1", geo={"lat": min(90.0, lat0 + dlat),
                                                    "lon": 10.0 + dlon}))
    evs = parse(dicts)
    rules = [rule_from_text("s", "travel_speed_kmh(by=card_id, within=1h, slack_km=1,"
                                 " slack_h=0.01) > 50"),
             rule_from_text("q", "travel_speed_kmh(by=card_id, within=1h, slack_km=1,"
                                 " slack_h=0.01) >= 120.5")]
    ev = LiveEvaluator(rules, horizon_ms=DAY_MS)
    one = LiveEvaluator(rules, horizon_ms=DAY_MS)
    one._lanes = Lanes([r.expr for r in rules], one._compile_scalar)
    assert ([(h.rule.id, h.event.event_id, h.evidence) for h in ev.process(evs)]
            == [(h.rule.id, h.event.event_id, h.evidence) for h in one.process(evs)])
