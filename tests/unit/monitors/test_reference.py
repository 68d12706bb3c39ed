"""Sliding reference tables: incremental sums equal a full recount."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.monitors.reference import SegmentTable, SlidingReference, floor_time

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _events(seed: int, n: int = 3000, hours: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, hours * 3600, n))
    seg = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), n, p=[0.5, 0.3, 0.15, 0.05])
    cell = rng.integers(0, 5, n)
    return t, seg, cell


def _fetcher(t: np.ndarray, seg: np.ndarray, cell: np.ndarray):  # type: ignore[no-untyped-def]
    def fetch(lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        a, b = (lo - T0).total_seconds(), (hi - T0).total_seconds()
        m = (t >= a) & (t < b)
        return SegmentTable.from_long(seg[m], cell[m], np.ones(int(m.sum())), cells=5)

    return fetch


def _dense(table: SegmentTable) -> dict[str, list[float]]:
    return {k: table.rows([k])[0].tolist() for k in sorted(table.keys)}


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 7), min_size=1, max_size=12))
def test_incremental_sums_equal_full_recount(seed: int, steps: list[int]) -> None:
    t, seg, cell = _events(seed)
    fetch = _fetcher(t, seg, cell)
    ref = SlidingReference(fetch, chunk_s=3600, rebuild_s=10**9)
    end = T0 + dt.timedelta(hours=30)
    for step in steps:
        end += dt.timedelta(hours=step)
        lo, hi = ref.bounds(end + dt.timedelta(minutes=17), 24 * 3600)
        assert _dense(ref.table(lo, hi)) == _dense(fetch(lo, hi))


def test_sliding_fetches_only_the_chunks_that_moved() -> None:
    t, seg, cell = _events(1)
    ref = SlidingReference(_fetcher(t, seg, cell), chunk_s=3600, rebuild_s=86400)
    lo, hi = ref.bounds(T0 + dt.timedelta(hours=40, minutes=5), 24 * 3600)
    ref.table(lo, hi)
    assert ref.fetches == 1
    ref.table(lo, hi)  # same window: cached
    assert ref.fetches == 1
    lo2, hi2 = ref.bounds(T0 + dt.timedelta(hours=41, minutes=5), 24 * 3600)
    ref.table(lo2, hi2)
    assert ref.fetches == 3  # one chunk in, one chunk out
    lo3, hi3 = ref.bounds(T0 + dt.timedelta(hours=66), 24 * 3600)
    ref.table(lo3, hi3)  # a day later: rebuilt from scratch
    assert ref.fetches == 4


def test_look_ahead_reads_a_block_of_chunks_at_once_and_gives_the_same_tables() -> None:
    t, seg, cell = _events(2)
    fetch = _fetcher(t, seg, cell)
    asked: list[int] = []

    def many(spans: Sequence[tuple[dt.datetime, dt.datetime]]) -> list[SegmentTable]:
        asked.append(len(spans))
        return [fetch(lo, hi) for lo, hi in spans]

    plain = SlidingReference(fetch, chunk_s=3600, rebuild_s=10**9)
    ahead = SlidingReference(fetch, chunk_s=3600, rebuild_s=10**9, many=many)
    ahead.look_ahead(6 * 3600)  # a block of six hours of passes
    for minute in range(0, 12 * 60, 5):
        end = T0 + dt.timedelta(hours=30, minutes=minute)
        lo, hi = plain.bounds(end, 24 * 3600)
        want, got = plain.table(lo, hi), ahead.table(lo, hi)
        assert got.keys == want.keys == sorted(want.keys)  # chunks in sorted key order
        assert got.values.tolist() == want.values.tolist()
    assert plain.fetches == ahead.fetches == plain.reads == 1 + 2 * 11
    # after the first build, 11 chunks in and 11 out, read 7 chunks of each side at a
    # time, both sides in one query
    assert asked == [14, 14] and ahead.reads == 1 + len(asked)
    ahead.look_ahead(0)  # the block is over: chunks read ahead are forgotten
    assert not ahead._read_ahead


def test_segment_table_rows_and_combine() -> None:
    a = SegmentTable.from_long(["x", "y", "x"], [0, 1, 0], [2, 3, 1], cells=2)
    assert a.rows(["x", "y", "z"]).tolist() == [[3, 0], [0, 3], [0, 0]]
    b = SegmentTable.from_wide(["y", "z"], [[1, 4], [0, 5]])
    c = a.combine(b, sign=-1)
    assert c.rows(["x", "y", "z"]).tolist() == [[3, 0], [0, 3], [0, 0]]  # clipped at 0
    assert "z" not in c.keys
    with pytest.raises(ValueError, match="cell index"):
        SegmentTable.from_long(["x"], [5], [1], cells=2)


def test_floor_time_and_bad_arguments() -> None:
    assert floor_time(T0 + dt.timedelta(minutes=61), 1800) == T0 + dt.timedelta(minutes=60)
    with pytest.raises(ValueError, match="rebuild_s"):
        SlidingReference(lambda lo, hi: SegmentTable.empty(1), chunk_s=3600, rebuild_s=60)


def test_held_segment_keeps_its_last_clean_counts_until_released() -> None:
    t, seg, cell = _events(2)
    fetch = _fetcher(t, seg, cell)
    ref = SlidingReference(fetch, chunk_s=3600, rebuild_s=86400)
    lo, hi = ref.bounds(T0 + dt.timedelta(hours=30), 24 * 3600)
    clean = _dense(ref.table(lo, hi))
    ref.hold({"b"})  # "b" alerted in the pass that used this table
    assert ref.held == frozenset({"b"})
    lo2, hi2 = ref.bounds(T0 + dt.timedelta(hours=40), 24 * 3600)
    moved = _dense(fetch(lo2, hi2))
    held = _dense(ref.table(lo2, hi2))
    assert held["b"] == clean["b"] != moved["b"]  # frozen, although the window moved
    assert {k: v for k, v in held.items() if k != "b"} == {
        k: v for k, v in moved.items() if k != "b"}  # the others slide on
    ref.hold({"b", "c"})  # "b" stays frozen at its first snapshot; "c" freezes now
    lo3, hi3 = ref.bounds(T0 + dt.timedelta(hours=50), 24 * 3600)
    both = _dense(ref.table(lo3, hi3))
    assert both["b"] == clean["b"] and both["c"] == held["c"]
    ref.hold(set())  # resolved: back to the trailing window
    assert _dense(ref.table(lo3, hi3)) == _dense(fetch(lo3, hi3))


def test_hold_freezes_every_key_of_the_segment() -> None:
    tables = iter([
        SegmentTable(["mcc=1\x1fv1", "mcc=1\x1fv2", "mcc=2"], np.ones((3, 2))),
        SegmentTable(["mcc=1\x1fv1", "mcc=1\x1fv2", "mcc=2"], np.full((3, 2), 5.0)),
    ])
    ref = SlidingReference(lambda lo, hi: next(tables), chunk_s=3600, rebuild_s=3600)
    ref.table(T0, T0 + dt.timedelta(hours=1))
    ref.hold(["mcc=1"])
    out = ref.table(T0, T0 + dt.timedelta(hours=2))  # a rebuild: the second table
    assert out.rows(["mcc=1\x1fv1", "mcc=1\x1fv2", "mcc=2"]).tolist() == [
        [1.0, 1.0], [1.0, 1.0], [5.0, 5.0]]


def test_with_rows_rejects_a_row_of_the_wrong_width() -> None:
    t = SegmentTable(["a"], np.ones((1, 3)))
    with pytest.raises(ValueError, match="has 2 cells, expected 3"):
        t.with_rows({"a": np.ones(2)})


def test_released_segment_keeps_its_alerting_period_out_until_it_slides_out() -> None:
    t, seg, cell = _events(3, hours=120)
    fetch = _fetcher(t, seg, cell)
    ref = SlidingReference(fetch, chunk_s=3600, rebuild_s=86400)
    _, since = ref.bounds(T0 + dt.timedelta(hours=30), 24 * 3600)
    clean = _dense(ref.table(*ref.bounds(T0 + dt.timedelta(hours=30), 24 * 3600)))
    ref.hold({"b"}, T0 + dt.timedelta(hours=30))
    ref.table(*ref.bounds(T0 + dt.timedelta(hours=35), 24 * 3600))
    released = T0 + dt.timedelta(hours=40, minutes=5)
    ref.hold(set(), released)  # the alert resolved at 40:05
    assert ref.excluded == {"b": (since, released)}
    lo, hi = ref.bounds(T0 + dt.timedelta(hours=45), 24 * 3600)
    got = _dense(ref.table(lo, hi))
    full = _dense(fetch(lo, hi))
    after = _dense(fetch(released, hi))  # clean evidence since the release
    assert got["b"] == [x + y for x, y in zip(clean["b"], after["b"], strict=True)]
    assert {k: v for k, v in got.items() if k != "b"} == {
        k: v for k, v in full.items() if k != "b"}
    # once the window starts after the alerting period, the window alone again
    lo, hi = ref.bounds(T0 + dt.timedelta(hours=65), 24 * 3600)
    assert _dense(ref.table(lo, hi)) == _dense(fetch(lo, hi))
    assert ref.excluded == {}


def test_released_rows_are_extended_hour_by_hour_not_read_again() -> None:
    """A released segment's rows since its release, kept and extended as the window
    slides (by the chunk the window reads in, or one read of a longer step), equal a
    read of the whole span at every pass; a second release keeps its own span."""
    t, seg, cell = _events(5, hours=120)
    fetch = _fetcher(t, seg, cell)
    spans: list[tuple[dt.datetime, dt.datetime]] = []

    def counted(lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        spans.append((lo, hi))
        return fetch(lo, hi)

    ref = SlidingReference(counted, chunk_s=3600, rebuild_s=10**9)
    day = 24 * 3600
    clean = _dense(ref.table(*ref.bounds(T0 + dt.timedelta(hours=30), day)))
    ref.hold({"b", "c"}, T0 + dt.timedelta(hours=30))
    ref.table(*ref.bounds(T0 + dt.timedelta(hours=31), day))
    first, second = T0 + dt.timedelta(hours=31, minutes=5), T0 + dt.timedelta(hours=33, minutes=40)
    ref.hold({"c"}, first)
    ref.table(*ref.bounds(T0 + dt.timedelta(hours=32), day))
    ref.hold(set(), second)
    hours = [*range(34, 48), 51, 52, 53]  # hour by hour, a jump of 3 hours, then on
    for h in hours:
        spans.clear()
        lo, hi = ref.bounds(T0 + dt.timedelta(hours=h, minutes=10), day)
        got = _dense(ref.table(lo, hi))
        for key, at in (("b", first), ("c", second)):
            since = _dense(fetch(at, hi)).get(key, [0.0] * 5) if hi > at else [0.0] * 5
            assert got[key] == [x + y for x, y in zip(clean[key], since, strict=True)], (h, key)
        # the window's chunk in and out, and each release's first read (or a jump)
        assert len(spans) <= 2 + sum(hi - at <= dt.timedelta(hours=1) for at in (first, second)) + (
            h == 51) * 2, (h, spans)
    assert set(ref.excluded) == {"b", "c"}
