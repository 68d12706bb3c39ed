"""Keyed windows: the per-value tally behind ``distinct`` against counting the span."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.rules import window as window_module
from driftwatch.rules.window import KeyedWindow

SLOT = 2  # the first value after (ms, event_id)


def by_hand(w: KeyedWindow, k: str, t: int, within: int) -> int:
    values = {x[SLOT] for x in w.span(k, t, within)} - {None, ""}
    return len(values)


def test_a_long_key_keeps_a_tally_that_follows_evictions() -> None:
    w = KeyedWindow(1000, key=lambda e: e["k"], values=(lambda e: e["v"],))
    for i in range(100):  # 100 entries 1 ms apart, values cycling over 10 (one is "")
        w.insert({"k": "a", "v": "" if i % 10 == 0 else f"v{i % 10}"}, i, f"e{i:03d}")
    assert w.distinct("a", 99, 1000, SLOT) == 9
    assert "a" in w._counted  # the tally was built
    # 50 entries at 1049..1098 ms: all but e098 (v8) and e099 (v9) of the first 100
    # fall out, and the new ones are v1 but for one new value
    for i in range(100, 150):
        w.insert({"k": "a", "v": "new" if i == 149 else "v1"}, 1049 + i - 100, f"e{i:03d}")
    assert w.entries_total == 52
    assert w.distinct("a", 1098, 1000, SLOT) == by_hand(w, "a", 1098, 1000) == 4
    assert w._counted["a"][SLOT] == {"v8": 1, "v9": 1, "v1": 49, "new": 1}
    # a shorter span than the window is counted from the span itself
    assert w.distinct("a", 1098, 5, SLOT) == by_hand(w, "a", 1098, 5) == 2
    w.sweep(10**9)
    assert not w._counted and w.distinct("a", 10**9, 1000, SLOT) == 0


@st.composite
def inserts(draw: st.DrawFn) -> list[tuple[str, int, str, Any]]:
    n = draw(st.integers(1, 120))
    t, out = 0, []
    for i in range(n):
        t += draw(st.sampled_from([0, 1, 3, 10, 40]))
        late = draw(st.sampled_from([0, 0, 0, 0, 25]))  # some events arrive late
        value = draw(st.sampled_from([None, "", "a", "b", "c", "d", 1.5]))
        out.append((draw(st.sampled_from(["k1", "k2"])), max(0, t - late), f"e{i:04d}", value))
    return out


@settings(max_examples=150, deadline=None)
@given(inserts(), st.integers(1, 8), st.sampled_from([20, 50]))
def test_distinct_matches_counting_the_span(
    stream: list[tuple[str, int, str, Any]], cap: int, within: int
) -> None:
    # a tally from 2 entries on, so that short random streams exercise it: evictions by
    # time and by the per-key cap, late inserts, lone entries replaced, keys swept
    with mock.patch.object(window_module, "_TALLY_FROM", 2):
        w = KeyedWindow(within, key=lambda e: e[0], values=(lambda e: e[1],), max_per_key=cap)
        for i, (k, ms, eid, value) in enumerate(stream):
            w.insert((k, value), ms, eid)
            for t, span in ((ms, within), (ms, within // 2), (ms + 30, within)):
                assert w.distinct(k, t, span, SLOT) == by_hand(w, k, t, span)
            if i % 17 == 16:
                w.sweep(ms)


def value_at(j: int) -> Any:
    return lambda e: e["v"][j]


def test_entries_hold_time_id_and_every_value_in_order() -> None:
    # 0 to 6 values: the unrolled entry makers (up to 4) and the general one agree
    for n in range(7):
        getters = tuple(value_at(j) for j in range(n))
        w = KeyedWindow(1000, key=lambda e: e["k"], values=getters)
        w.insert({"k": "a", "v": list(range(10, 10 + n))}, 5, "e1")
        w.insert({"k": "a", "v": list(range(20, 20 + n))}, 7, "e2")
        assert w.entries("a") == [(5, "e1", *range(10, 10 + n)), (7, "e2", *range(20, 20 + n))]
