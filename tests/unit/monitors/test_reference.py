"""Sliding reference tables: incremental sums equal a full recount."""

from __future__ import annotations

import datetime as dt

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
