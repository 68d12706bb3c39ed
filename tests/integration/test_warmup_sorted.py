"""The partition warm-up's read (issue 23): in the events table's sort order per MCC,
merged into event-time order, only the cold partitions' cards, bounded in memory (its
pages) and time (its deadline) -- against the plain time-ordered read of the same
stored events in embedded ClickHouse."""

from __future__ import annotations

import time

import pytest
from aiokafka.partitioner import murmur2

from driftwatch.rules.history import stored_events
from driftwatch.store.client import Store
from driftwatch.streaming.warmup import PartitionWarmUp
from tests.integration.rules_fixture import fixture_events

pytestmark = pytest.mark.integration


def test_sorted_merge_reads_the_partitions_events_in_event_time_order(store: Store) -> None:
    events = sorted(fixture_events(), key=lambda e: (e.event_time, e.event_id))[:6000]
    store.insert_scored(events)
    start, until = events[0].event_time, events[-1].event_time
    n, mine = 6, [1, 4]
    expected = [e.event_id for b in stored_events(store, start, until) for e in b
                if (murmur2(e.card_id.encode()) & 0x7FFFFFFF) % n in mine]
    assert 0 < len(expected) < len(events) - 1
    assert len({e.mcc for e in events}) > 5  # several cursors to merge
    warm = PartitionWarmUp(store, [], "t", page=700)
    batches = list(warm.history(start, until, (n, mine), time.perf_counter() + 60))
    got = [e.event_id for b in batches for e in b]
    assert got == expected
    assert max(len(b) for b in batches) <= 700
    # no partition filter: every stored event of the span
    everything = [e.event_id for b in warm.history(start, until, None,
                                                    time.perf_counter() + 60) for e in b]
    assert everything == [e.event_id for b in stored_events(store, start, until) for e in b]
    # past its deadline the read stops (the windows start with what was fed)
    assert list(warm.history(start, until, (n, mine), time.perf_counter() - 1)) == []


def test_bounds_are_validated(store: Store) -> None:
    with pytest.raises(ValueError, match="page"):
        PartitionWarmUp(store, [], "t", page=0)
    with pytest.raises(ValueError, match="max_s"):
        PartitionWarmUp(store, [], "t", max_s=0)
