"""The event-time guard: 2099 and 2001 are quarantined, clean traffic never is."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.events import epoch_ms
from driftwatch.timeguard import TOO_FAR_AHEAD, TOO_OLD, EventTimeGuard

NOW = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
NOW_MS = epoch_ms(NOW)
DAY_MS = 86_400_000


def wall() -> float:
    return NOW_MS / 1000


def test_2099_and_2001_among_normal_traffic() -> None:
    g = EventTimeGuard(300, 8 * 86400, wall=wall)
    normal = [NOW_MS - 60_000 + i * 100 for i in range(50)]
    times = [*normal[:20], epoch_ms(dt.datetime(2099, 1, 1, tzinfo=dt.UTC)), *normal[20:]]
    times.append(epoch_ms(dt.datetime(2001, 1, 1, tzinfo=dt.UTC)))
    v = g.check(times)
    assert v.quarantined == [(20, TOO_FAR_AHEAD), (51, TOO_OLD)]
    assert len(v.accepted) == 50
    assert g.clock_ms == max(normal)  # the clock never saw 2099


def test_wall_clock_bounds_the_future_in_a_stream() -> None:
    g = EventTimeGuard(300, 8 * 86400, wall=wall)
    v = g.check([NOW_MS, NOW_MS + 299_000, NOW_MS + 301_000])
    assert v.quarantined == [(2, TOO_FAR_AHEAD)]
    # a replay has no wall clock: an hour ahead of the previous event is fine there
    r = EventTimeGuard(300, 8 * 86400, wall=None)
    assert r.check([NOW_MS, NOW_MS + 3_600_000]).quarantined == []


def test_old_data_replays_against_its_own_clock() -> None:
    r = EventTimeGuard(300, 8 * 86400, wall=None)
    old = epoch_ms(dt.datetime(2019, 5, 1, tzinfo=dt.UTC))
    for day in range(20):  # 20 days of old traffic, a batch a day
        batch = [old + day * DAY_MS + i * 60_000 for i in range(100)]
        assert r.check(batch).quarantined == []
    # now an event a month behind the replay's clock is too old
    assert r.check([old]).quarantined == [(0, TOO_OLD)]


def test_late_events_are_counted_not_rejected() -> None:
    g = EventTimeGuard(300, 86400, wall=wall)
    g.check([NOW_MS])
    v = g.check([NOW_MS - 3_600_000, NOW_MS - 1000], watermark_ms=NOW_MS - 60_000)
    assert (v.accepted, v.late, g.late) == ([0, 1], 1, 1)


def test_first_batch_uses_its_median() -> None:
    g = EventTimeGuard(300, 86400, wall=None)
    v = g.check([NOW_MS + 10 * DAY_MS, NOW_MS, NOW_MS + 1, NOW_MS + 2])
    assert v.quarantined == [(0, TOO_FAR_AHEAD)]


@pytest.mark.parametrize(("future", "age"), [(-1, 10), (10, 0), (float("nan"), 10)])
def test_bad_parameters(future: float, age: float) -> None:
    with pytest.raises(ValueError, match="max_"):
        EventTimeGuard(future, age)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 400), st.integers(1, 20))
def test_clean_traffic_is_never_quarantined(seed: int, n: int, batches: int) -> None:
    """Null data: gaps up to an hour, jitter within the batch, events up to the wall
    clock -- nothing is quarantined, ever (false-positive rate 0)."""
    rng = random.Random(seed)
    t = NOW_MS - 30 * DAY_MS
    batches_ms = []
    for _ in range(batches):
        batch = []
        for _ in range(n):
            t += rng.randint(0, 3_600_000)
            batch.append(t - rng.randint(0, 30_000))  # out of order by up to 30 s
        batches_ms.append(batch)
    g = EventTimeGuard(300, 8 * 86400, wall=lambda: t / 1000)
    for batch in batches_ms:
        assert g.check(batch).quarantined == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**45), min_size=1, max_size=60), st.booleans())
def test_partition_and_clock_invariants(times: list[int], replay: bool) -> None:
    g = EventTimeGuard(300, 86400, wall=None if replay else wall)
    v = g.check(times)
    assert sorted(v.accepted + [i for i, _ in v.quarantined]) == list(range(len(times)))
    if not replay and g.clock_ms is not None:
        assert g.clock_ms <= NOW_MS + 300_000
    if v.accepted:
        assert g.clock_ms == max(times[i] for i in v.accepted)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(NOW_MS - 3 * DAY_MS, NOW_MS + DAY_MS), min_size=1,
                         max_size=30), min_size=1, max_size=5),
       st.booleans())
def test_presorted_fast_path_agrees_with_the_walk(batches: list[list[int]], replay: bool) -> None:
    fast = EventTimeGuard(300, 86400, wall=None if replay else wall)
    slow = EventTimeGuard(300, 86400, wall=None if replay else wall)
    for batch in batches:
        batch = sorted(batch)
        wm = batch[len(batch) // 2]
        a, b = fast.check(batch, wm, presorted=True), slow.check(batch, wm)
        assert a == b
        assert fast.clock_ms == slow.clock_ms
