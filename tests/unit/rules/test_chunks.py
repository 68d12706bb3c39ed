"""A batch processed chunk by chunk (timeorder.bounds) gives the hits, evidence and state of
the whole batch at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.pack import load_rules, rule_from_text
from driftwatch.rules.timeorder import bounds, in_time_order
from tests.unit.rules.helpers import DAY_MS, event, parse

PACKS = Path(__file__).resolve().parents[3] / "rules"
EXTRA = [
    "amount_minor <= 300 and count(by=card_id, within=15m, where=amount_minor <= 300) >= 3",
    "count_distinct(card_id, by=ip, within=1h) >= 2",
    "monotonic_increase(amount_minor, by=[card_id, ip], n=2, within=10m)",
    "travel_speed_kmh(by=card_id, within=1h, slack_km=10, slack_h=0.5) > 100",
    "sum(amount_minor, by=merchant_id, within=20m) >= 500",
]


def _rules() -> list[Any]:
    shipped = load_rules([str(PACKS)])
    return [*shipped.rules, *(rule_from_text(f"x{i}", text) for i, text in enumerate(EXTRA))]


def _run(batches: list[list[Any]], chunk: int) -> tuple[list[Any], Any]:
    ev = LiveEvaluator(_rules(), horizon_ms=DAY_MS, chunk=chunk)
    hits = [(h.rule.id, h.event.event_id, h.evidence) for b in batches for h in ev.process(b)]
    state = [sorted((repr(k), repr(v)) for k, v in w._data.items()) for w in ev._windows]
    return hits, (state, ev.state, ev.newest_ms)


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few cards, IPs and merchants; times rising by steps that are often 0 (events of
    one millisecond), sometimes going back (late events), some ids sent twice."""
    out: list[dict[str, Any]] = []
    t = 0
    for i in range(draw(st.integers(1, 50))):
        t = max(0, t + draw(st.sampled_from([0, 0, 1, 60_000, 300_000, -120_000])))
        fields: dict[str, Any] = {
            "card_id": draw(st.sampled_from(["c1", "c2", "c3"])),
            "merchant_id": draw(st.sampled_from(["m1", "m2"])),
            "amount": f"{draw(st.integers(1, 400))}.00",
            "ip": draw(st.sampled_from(["10.0.0.1", "10.0.0.2"])),
        }
        if draw(st.booleans()):
            fields["geo"] = {"lat": draw(st.sampled_from([51.5, 40.7])), "lon": -0.12}
        again = out and draw(st.integers(0, 9)) == 0
        out.append(event(i - 1 if again else i, t, **fields))
    return out


@settings(max_examples=30, deadline=None)
@given(streams(), st.integers(1, 30), st.integers(1, 8))
def test_chunked_batches_hit_as_whole_batches(dicts: list[dict[str, Any]], size: int,
                                              chunk: int) -> None:
    evs = parse(dicts)
    batches = [evs[i : i + size] for i in range(0, len(evs), size)]
    assert _run(batches, chunk) == _run(batches, 10**9)


def test_a_millisecond_is_never_split() -> None:
    ms = [0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 5, 5]
    parts = bounds(ms, 2)
    assert [b - a for a, b in parts] == [4, 3, 5]
    assert [a for a, _ in parts] == [0, *[b for _, b in parts[:-1]]]  # all, in order
    assert parts[-1][1] == len(ms)
    assert all(ms[b - 1] < ms[b] for _, b in parts[:-1])
    assert bounds(ms, 100) == [(0, len(ms))]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.text("abc", min_size=1, max_size=3)),
                unique_by=lambda x: x[1], max_size=40), st.booleans())
def test_time_order_is_the_sort_by_time_and_id(items: list[tuple[int, str]],
                                               presorted: bool) -> None:
    """Batches in time order (ties in any order: the fix-up of runs) and out of it
    (the whole sort) give the order of ``sorted`` by ``(ms, event_id)``."""
    if presorted:
        items = sorted(items, key=lambda x: x[0])  # stable: ties keep their draw order
    ms, ids = [m for m, _ in items], [i for _, i in items]
    got = in_time_order(ms, ids, [hash(i) for i in ids], [f"e-{i}" for i in ids])
    want = sorted(items)
    assert got == ([m for m, _ in want], [i for _, i in want], [hash(i) for _, i in want],
                   [f"e-{i}" for _, i in want])


def test_chunk_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk must be >= 1, got 0"):
        LiveEvaluator([], horizon_ms=DAY_MS, chunk=0)
