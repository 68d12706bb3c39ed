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


def newest(w: KeyedWindow, k: Any) -> int:
    return int(w.entries(k)[-1][0])


@st.composite
def traffic(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    """(key, ms, expire limit) per insert: many keys, time jumps, late events."""
    n = draw(st.integers(1, 150))
    t, out = 0, []
    for _ in range(n):
        t += draw(st.sampled_from([0, 1, 5, 20, 80, 300]))
        late = draw(st.sampled_from([0, 0, 0, 60, 400]))
        out.append((f"k{draw(st.integers(0, 12))}", max(0, t - late), draw(st.integers(1, 5))))
    return out


@settings(max_examples=200, deadline=None)
@given(traffic(), st.sampled_from([7, 64, 200]), st.booleans())
def test_expire_drops_only_idle_keys_and_every_key_stays_queued_once(
    stream: list[tuple[str, int, int]], within: int, with_sweeps: bool
) -> None:
    w = KeyedWindow(within, key=lambda e: e)
    now = 0
    for i, (k, ms, limit) in enumerate(stream):
        w.insert(k, ms, f"e{i:04d}")
        now = max(now, ms)
        kept = {x for x in w._data if newest(w, x) >= now - within}
        held = set(w._data)
        dropped = w.expire(now, limit)
        assert dropped <= limit
        assert kept <= set(w._data) <= held and len(w._data) == len(held) - dropped
        if with_sweeps and i % 23 == 22:
            w.sweep(now)
            assert all(newest(w, x) >= now - within for x in w._data)
        queued = [x for keys in w._due.values() for x in keys]
        assert sorted(queued) == sorted(w._data)  # each key held, queued once
    # with a limit that keeps up, no key is left idle for more than a step
    w.expire(now, 10**6)
    assert all(newest(w, x) >= now - within - w._step for x in w._data)


def queued_under(w: KeyedWindow) -> dict[Any, list[int]]:
    """Key -> the steps it is queued under for :meth:`KeyedWindow.expire`."""
    out: dict[Any, list[int]] = {}
    for b, keys in w._due.items():
        for k in keys:
            out.setdefault(k, []).append(b)
    return out


@settings(max_examples=200, deadline=None)
@given(traffic(), st.sampled_from([7, 64, 200]), st.integers(1, 40), st.integers(-700, 0))
def test_a_batch_stores_and_queues_keys_as_inserting_one_by_one(
    stream: list[tuple[str, int, int]], within: int, size: int, shift: int
) -> None:
    # store() of a batch's sorted pairs (new keys of a batch share a step's queue) and
    # settle() against insert() event by event; times from -700 on (steps below zero)
    one, batch = KeyedWindow(within, key=lambda e: e), KeyedWindow(within, key=lambda e: e)
    rows = [(ms + shift, f"e{i:04d}", k) for i, (k, ms, _) in enumerate(stream)]
    for start in range(0, len(rows), size):
        part = sorted(rows[start : start + size])
        for ms, eid, k in part:
            one.insert(k, ms, eid)
        batch.store(((k, (ms, eid)) for ms, eid, k in part), part[0][0] - within)
        batch.settle()
    assert batch._data == one._data
    under = queued_under(batch)
    assert under == queued_under(one)
    assert sorted(under) == sorted(batch._data) and all(len(b) == 1 for b in under.values())
