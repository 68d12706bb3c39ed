"""Live evaluator: window semantics by hand, idempotency, bounded state, and a brute-force
oracle for every aggregate on random streams (hypothesis)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.events import ScoredTransaction, epoch_ms
from driftwatch.rules.check import _probe
from driftwatch.rules.live import LiveEvaluator, haversine_km
from driftwatch.rules.pack import rule_from_text
from driftwatch.rules.window import KeyedWindow
from tests.unit.rules.helpers import DAY_MS, event, hits_of, parse

MIN = 60_000


# --- windows by hand -------------------------------------------------------------------
def test_window_is_inclusive_at_both_ends() -> None:
    when = "count(by=card_id, within=10m) >= 3"
    # 0, 5 min, exactly 10 min: the third sees all three ([t - 10m, t])
    assert hits_of(when, [event(0, 0), event(1, 5 * MIN), event(2, 10 * MIN)]) == ["e000002"]
    # one millisecond later the first has left the window
    assert hits_of(when, [event(0, 0), event(1, 5 * MIN), event(2, 10 * MIN + 1)]) == []


def test_same_timestamp_events_see_each_other() -> None:
    when = "count(by=card_id, within=1m) >= 2"
    # two events in the same millisecond: both count both (like a SQL RANGE frame's peers)
    assert sorted(hits_of(when, [event(1, 0), event(0, 0)])) == ["e000000", "e000001"]


def test_keys_are_separate_and_empty_keys_never_group() -> None:
    when = "count(by=ip, within=1h) >= 2"
    evs = [event(0, 0, ip="10.0.0.1"), event(1, 1, ip="10.0.0.2"), event(2, 2),
           event(3, 3), event(4, 4, ip="10.0.0.1")]
    assert hits_of(when, evs) == ["e000004"]


def test_where_filters_the_window_not_the_event() -> None:
    when = "count(by=card_id, within=1h, where=amount_minor <= 300) >= 2"
    evs = [event(0, 0, amount="1.00"), event(1, 1, amount="50.00"), event(2, 2, amount="2.00")]
    # e1 is not counted but is itself evaluated: the window of e1 holds only e0
    assert hits_of(when, evs) == ["e000002"]


def test_sum_min_max_and_distinct() -> None:
    evs = [event(0, 0, amount="1.00", device_id="d1"), event(1, 1, amount="2.50"),
           event(2, 2, amount="4.00", device_id="d2"), event(3, 3, amount="0.50", device_id="d1")]
    rule = rule_from_text(
        "r", "sum(amount_minor, by=card_id, within=1h) > 0 and "
             "min(amount, by=card_id, within=1h) > 0 and max(amount_minor, by=card_id, "
             "within=1h) > 0 and count_distinct(device_id, by=card_id, within=1h) >= 0")
    hits = LiveEvaluator([rule], horizon_ms=DAY_MS).process(parse(evs))
    last = hits[-1].evidence
    assert last["sum(amount_minor, by=card_id, within=1h)"] == 800
    assert last["min(amount, by=card_id, within=1h)"] == 0.5
    assert last["max(amount_minor, by=card_id, within=1h)"] == 400
    # "" (no device) is not a distinct value
    assert last["count_distinct(device_id, by=card_id, within=1h)"] == 2


def test_first_seen_ignores_the_current_timestamp_and_old_history() -> None:
    when = "first_seen(merchant_id, within=1h)"
    evs = [event(0, 0, merchant_id="m1"), event(1, 0, merchant_id="m1"),
           event(2, 30 * MIN, merchant_id="m1"), event(3, 2 * 60 * MIN, merchant_id="m1")]
    assert sorted(hits_of(when, evs)) == ["e000000", "e000001", "e000003"]


@pytest.mark.parametrize(
    ("amounts", "hit"),
    [(["100.00", "120.00", "144.00"], True),   # exactly x1.2 each step: kept (exact ratios)
     (["100.00", "119.99", "144.00"], False),
     (["100.00", "120.00", "120.00"], False),
     (["300.00", "200.00", "100.00"], False)],
)
def test_monotonic_increase_is_exact_in_minor_units(amounts: list[str], hit: bool) -> None:
    when = "monotonic_increase(amount_minor, by=card_id, n=3, within=1h, factor>=1.2)"
    evs = [event(i, i * MIN, amount=a) for i, a in enumerate(amounts)]
    assert hits_of(when, evs) == (["e000002"] if hit else [])


def test_monotonic_run_must_fit_in_the_window() -> None:
    when = "monotonic_increase(amount_minor, by=card_id, n=3, within=1h)"
    evs = [event(0, 0, amount="1.00"), event(1, 40 * MIN, amount="2.00"),
           event(2, 61 * MIN, amount="3.00")]
    assert hits_of(when, evs) == []


def test_travel_speed_with_allowance_by_hand() -> None:
    london, singapore = {"lat": 51.5074, "lon": -0.1278}, {"lat": 1.3521, "lon": 103.8198}
    km = haversine_km(51.5074, -0.1278, 1.3521, 103.8198)
    assert 10_800 < km < 10_900  # the great-circle distance, about 10,850 km
    rule = rule_from_text("r", "travel_speed_kmh(by=card_id, within=12h, slack_km=100, "
                               "slack_h=2) > 0 and travel_km(by=card_id, within=12h) > 0")
    evs = parse([event(0, 0, geo=london), event(1, 30 * MIN), event(2, 60 * MIN, geo=singapore)])
    hits = LiveEvaluator([rule], horizon_ms=DAY_MS).process(evs)
    assert [h.event.event_id for h in hits] == ["e000002"]  # e1 has no geo: skipped over
    ev = hits[0].evidence
    assert ev["travel_km(by=card_id, within=12h)"] == pytest.approx(km)
    speed = ev["travel_speed_kmh(by=card_id, within=12h, slack_km=100, slack_h=2)"]
    assert speed == pytest.approx((km - 100) / (1 + 2))


def test_arithmetic_and_nulls() -> None:
    assert hits_of("amount_minor % 100 == 37", [event(0, amount="4892.37"),
                                                event(1, amount="4892.36")]) == ["e000000"]
    # a missing feature is null: every comparison with it is false, 'not' of that is true
    evs = [event(0, features={"age": 130}), event(1, features={"age": "n/a"}), event(2)]
    assert hits_of("features.age >= 125", evs) == ["e000000"]
    assert hits_of("not (features.age >= 125)", evs) == ["e000001", "e000002"]
    assert hits_of("features.age / 0 > 1 or present(features.age)", evs) == ["e000000"]
    assert hits_of("features.flag == 1", [event(0, features={"flag": True})]) == ["e000000"]


# --- idempotency and bounded state -----------------------------------------------------
def test_redelivery_does_not_double_count_and_returns_the_same_hits() -> None:
    rule = rule_from_text("r", "count(by=card_id, within=1h) >= 3")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS)
    first = parse([event(i, i * MIN) for i in range(3)])
    assert [h.event.event_id for h in ev.process(first)] == ["e000002"]
    again = ev.process(first)  # the same batch delivered again
    assert [h.event.event_id for h in again] == ["e000002"]
    assert ev.state.entries == 3
    # the next event sees 4, not 7
    hit = ev.process(parse([event(9, 4 * MIN)]))
    assert hit[0].evidence["count(by=card_id, within=1h)"] == 4
    # duplicates inside one batch count once
    ev2 = LiveEvaluator([rule], horizon_ms=DAY_MS)
    assert ev2.process(parse([event(0, 0), event(0, 0), event(0, 0)])) == []


def test_late_event_is_evaluated_against_its_own_window() -> None:
    rule = rule_from_text("r", "count(by=card_id, within=10m) >= 0")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS)
    ev.process(parse([event(0, 0), event(1, 20 * MIN)]))
    late = ev.process(parse([event(2, 5 * MIN)]))
    # e1 (20 min) is after it; e0 (0 min) was evicted when e1 arrived (retained state only)
    assert late[0].evidence["count(by=card_id, within=10m)"] == 1
    ev.process(parse([event(3, 25 * MIN)]))
    assert ev.state.entries == 2  # the late entry left with the next in-order insert


def test_state_is_bounded_by_window_and_per_key_cap() -> None:
    rule = rule_from_text("r", "count(by=card_id, within=10m) > 1000")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS, max_per_key=50, expire=False)
    ev.process(parse([event(i, i * 1000) for i in range(200)]))
    assert ev.state.entries == 50 and ev.state.overflowed == 150
    ev2 = LiveEvaluator([rule], horizon_ms=DAY_MS, expire=False)
    ev2.process(parse([event(i, i * MIN, card_id=f"c{i}") for i in range(100)]))
    assert ev2.state.keys == 100
    assert ev2.sweep() == 89  # idle keys older than the 10 min window are dropped
    assert ev2.state.keys == 11


def test_seen_ids_are_bounded() -> None:
    rule = rule_from_text("r", "amount_minor > 0")
    ev = LiveEvaluator([rule], horizon_ms=10 * MIN, max_seen=100)
    ev.process(parse([event(i, i * 1000) for i in range(500)]))
    assert ev.state.seen_events <= 100
    for chunk in (1, 37, 250):  # the newest max_seen ids exactly, dropped within chunks too
        ev = LiveEvaluator([rule], horizon_ms=10 * MIN, max_seen=100, chunk=chunk)
        evs = parse([event(i, i * 1000) for i in range(500)])
        for start in range(0, 500, 37):
            ev.process(evs[start : start + 37])
        assert set(ev._seen) == {hash(e.event_id) for e in evs[400:]}


def test_warm_feed_produces_no_hits_but_fills_windows() -> None:
    rule = rule_from_text("r", "count(by=card_id, within=1h) >= 3")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS)
    ev.feed(parse([event(0, 0), event(1, MIN)]))
    assert [h.event.event_id for h in ev.process(parse([event(2, 2 * MIN)]))] == ["e000002"]


# --- oracle -------------------------------------------------------------------------------
AGGS = [
    "count(by=card_id, within=5m)",
    "count(by=[card_id, mcc], within=10m, where=amount_minor < 500)",
    "sum(amount_minor, by=ip, within=7m)",
    "count_distinct(card_id, by=ip, within=10m)",
    "min(amount, by=card_id, within=3m)",
    "max(amount_minor, by=mcc, within=6m, where=present(ip))",
    "first_seen(merchant_id, within=4m)",
    "monotonic_increase(amount_minor, by=card_id, n=3, within=10m, factor>=1.1)",
    "monotonic_decrease(amount_minor, by=card_id, n=2, within=5m)",
    "travel_km(by=card_id, within=10m)",
    "travel_speed_kmh(by=card_id, within=10m, slack_km=10, slack_h=0.5)",
]


def _oracle(label: str, evs: Sequence[ScoredTransaction]) -> dict[str, Any]:
    """Each aggregate computed by brute force over the whole (time-sorted) stream."""
    rows = sorted(evs, key=lambda e: (epoch_ms(e.event_time), e.event_id))
    ms = {e.event_id: epoch_ms(e.event_time) for e in rows}
    out: dict[str, Any] = {}
    for e in rows:
        t = ms[e.event_id]
        order = (t, e.event_id)
        if label.startswith("count(by=card_id"):
            out[e.event_id] = sum(1 for x in rows if x.card_id == e.card_id
                                  and t - 300_000 <= ms[x.event_id] <= t)
        elif label.startswith("count(by=[card_id, mcc]"):
            out[e.event_id] = sum(1 for x in rows if (x.card_id, x.mcc) == (e.card_id, e.mcc)
                                  and x.amount_minor < 500 and t - 600_000 <= ms[x.event_id] <= t)
        elif label.startswith("sum("):
            out[e.event_id] = None if not e.ip else sum(
                x.amount_minor for x in rows if x.ip == e.ip and t - 420_000 <= ms[x.event_id] <= t)
        elif label.startswith("count_distinct("):
            out[e.event_id] = None if not e.ip else len(
                {x.card_id for x in rows if x.ip == e.ip and t - 600_000 <= ms[x.event_id] <= t})
        elif label.startswith("min("):
            out[e.event_id] = min(x.amount_minor / 100 for x in rows if x.card_id == e.card_id
                                  and t - 180_000 <= ms[x.event_id] <= t)
        elif label.startswith("max("):
            vals = [x.amount_minor for x in rows if x.mcc == e.mcc and x.ip
                    and t - 360_000 <= ms[x.event_id] <= t]
            out[e.event_id] = max(vals) if vals else None
        elif label.startswith("first_seen("):
            out[e.event_id] = not any(x.merchant_id == e.merchant_id
                                      and t - 240_000 <= ms[x.event_id] < t for x in rows)
        elif label.startswith("monotonic"):
            n, window, rising = (3, 600_000, True) if "increase" in label else (2, 300_000, False)
            run = [x for x in rows if x.card_id == e.card_id
                   and (ms[x.event_id], x.event_id) <= order][-n:]
            ok = len(run) == n and ms[run[0].event_id] >= t - window
            for a, b in itertools.pairwise(run):
                x, y = a.amount_minor, b.amount_minor
                ok = ok and ((y > x and y * 10 >= x * 11) if rising else y < x)
            out[e.event_id] = ok
        else:
            prev = [x for x in rows if x.card_id == e.card_id and x.geo_lat is not None
                    and (ms[x.event_id], x.event_id) < order]
            if e.geo_lat is None or e.geo_lon is None or not prev or (
                    ms[prev[-1].event_id] < t - 600_000):
                out[e.event_id] = None
                continue
            p = prev[-1]
            assert p.geo_lat is not None and p.geo_lon is not None
            km = haversine_km(p.geo_lat, p.geo_lon, e.geo_lat, e.geo_lon)
            out[e.event_id] = km if label.startswith("travel_km") else (
                max(0.0, km - 10) / ((t - ms[p.event_id]) / 3_600_000 + 0.5))
    return out


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 40))
    out = []
    t = 0
    for i in range(n):
        t += draw(st.sampled_from([0, 0, 1, 1000, 30_000, 90_000, 240_000]))
        fields: dict[str, Any] = {
            "card_id": draw(st.sampled_from(["c1", "c2", "c3"])),
            "mcc": draw(st.sampled_from(["5411", "5967"])),
            "merchant_id": draw(st.sampled_from(["m1", "m2", "m3", "m4"])),
            "amount": f"{draw(st.integers(1, 2000))}.{draw(st.integers(0, 99)):02d}",
        }
        ip = draw(st.sampled_from(["", "10.0.0.1", "10.0.0.2"]))
        if ip:
            fields["ip"] = ip
        if draw(st.booleans()):
            fields["geo"] = {"lat": draw(st.sampled_from([51.5, 40.7, 1.35, 51.51])),
                             "lon": draw(st.sampled_from([-0.12, -74.0, 103.8]))}
        out.append(event(i, t, **fields))
    order = draw(st.permutations(range(n)))
    return [out[i] for i in order]  # arrival order shuffled within the one batch


@settings(max_examples=60, deadline=None)
@given(streams())
def test_every_aggregate_matches_a_brute_force_oracle(dicts: list[dict[str, Any]]) -> None:
    evs = parse(dicts)
    rules = [_probe(rule_from_text(f"a{i}", f"{text} == {text}" if text.startswith(("first",
            "mono")) else f"present({text})" if not text.startswith(("count", "sum")) else
            f"{text} >= 0")) for i, text in enumerate(AGGS)]
    hits = LiveEvaluator(rules, horizon_ms=DAY_MS).process(evs)
    for text in AGGS:
        expected = _oracle(text, evs)
        got = {h.event.event_id: h.evidence[text] for h in hits if text in h.evidence}
        assert set(got) == set(expected)
        for eid, value in expected.items():
            if isinstance(value, float):
                assert got[eid] is not None and math.isclose(got[eid], value, rel_tol=1e-12)
            else:
                assert got[eid] == value, (text, eid)


@settings(max_examples=40, deadline=None)
@given(streams(), st.integers(1, 3))
def test_count_thresholds_match_the_brute_force_oracle(
    dicts: list[dict[str, Any]], k: int
) -> None:
    # `count(...) >= k`, `count(...) > k - 0.5` and `count_distinct(...) >= k` are
    # compiled to shortcuts (a distinct count stops at k); they hit exactly where the
    # oracle's value passes the threshold (null keys never do).
    evs = parse(dicts)
    distinct, count = AGGS[3], AGGS[0]
    want_distinct = {e for e, v in _oracle(distinct, evs).items() if v is not None and v >= k}
    want_count = {e for e, v in _oracle(count, evs).items() if v is not None and v >= k}
    assert set(hits_of(f"{distinct} >= {k}", dicts)) == want_distinct
    assert set(hits_of(f"{count} > {k - 0.5}", dicts)) == want_count
    assert set(hits_of(f"{count} >= {k}", dicts)) == want_count


def test_only_keys_that_may_have_gone_idle_are_looked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked: list[int] = []  # keys each expire call looked at
    real_expire = KeyedWindow.expire

    def spy(self: KeyedWindow, now_ms: int, limit: int) -> int:
        ready = (now_ms - self.within_ms) // self._step  # keys queued below it are due

        def due() -> int:
            return sum(len(keys) for b, keys in self._due.items() if b < ready)

        before, held = due(), self.keys_total
        dropped = real_expire(self, now_ms, limit)
        looked.append(before - due())  # a key looked at is dropped or queued later
        assert self.due_total == self.keys_total == held - dropped
        return dropped

    monkeypatch.setattr(KeyedWindow, "expire", spy)
    rule = rule_from_text("r", "count(by=card_id, within=12h) >= 0")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS)
    ev.process(parse([event(i, i, card_id=f"c{i}") for i in range(1000)]))
    # a minute of event time per batch against a 12 h window: no key can be idle yet
    for b in range(1, 11):
        ev.process(parse([event(1000 * b + i, b * MIN, card_id="c-busy") for i in range(100)]))
    assert len(looked) == 11 and sum(looked) == 0
    # 20 h later the 1,000 cards went idle (each looked at once) and the busy card is kept
    looked.clear()
    ev.process(parse([event(20_000 + i, 20 * 60 * MIN, card_id="c-busy") for i in range(100)]))
    assert looked == [1001] and ev.state.keys == 1


def test_idle_keys_go_within_an_eighth_of_the_window() -> None:
    rule = rule_from_text("r", "count(by=card_id, within=80m) >= 0")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS)
    # a card per minute for 200 minutes, in batches of 10
    for start in range(0, 200, 10):
        ev.process(parse([event(i, i * MIN, card_id=f"c{i}") for i in range(start, start + 10)]))
        newest = (start + 9) * MIN
        # every card idle for more than 80 + 10 minutes is gone; every card seen in
        # the last 80 minutes is kept
        held = {int(k[1:]) * MIN for w in ev._windows for k in w._data}
        assert all(t >= newest - 90 * MIN for t in held)
        assert {t for t in range(0, newest + 1, MIN) if t >= newest - 80 * MIN} <= held
    assert ev.sweep() <= 10


def test_a_burst_of_idle_keys_is_dropped_a_bounded_slice_per_batch() -> None:
    rule = rule_from_text("r", "count(by=card_id, within=10m) >= 0")
    ev = LiveEvaluator([rule], horizon_ms=DAY_MS)
    ev.process(parse([event(i, 0, card_id=f"c{i}") for i in range(3000)]))
    # an hour later: 3,000 idle cards, at most max(1024, 4 per event) looked at per batch
    ev.process(parse([event(5000, 60 * MIN, card_id="c-new")]))
    assert ev.state.keys == 3001 - 1024
    ev.process(parse([event(5001 + i, 61 * MIN, card_id="c-new") for i in range(300)]))
    assert ev.state.keys == 3001 - 1024 - 1200
    ev.process(parse([event(6000, 62 * MIN, card_id="c-new")]))
    assert ev.state.keys == 1
    assert ev.sweep() == 0


def test_matches_on_a_string_longer_than_the_guard_is_isolated_not_run() -> None:
    """A string feature may be as long as the payload; the regex guard bounds the
    backtracking cost for 256 characters, so a longer string is a rule error of that
    event and rule only, never a search over it."""
    rule = rule_from_text("m", 'matches(features_str.note, "b[a-z]{1,20}x")', horizon_ms=DAY_MS)
    other = rule_from_text("o", 'amount_minor > 0', horizon_ms=DAY_MS)
    ev = LiveEvaluator([rule, other], horizon_ms=DAY_MS)
    events = parse([event(0, features={"note": "ab" * 5000}),
                    event(1, 1, features={"note": "abqx"})])
    hits = ev.process(events)
    assert sorted((h.rule.id, h.event.event_id) for h in hits) == [
        ("m", "e000001"), ("o", "e000000"), ("o", "e000001")]
    errors = ev.take_errors()
    assert [(f.rule_id, f.event.event_id) for f in errors] == [("m", "e000000")]
    assert "10000 characters" in errors[0].error
