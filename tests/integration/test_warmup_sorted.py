"""The partition warm-up's read (issue 23): in the events table's sort order per MCC,
merged into event-time order, only the cold partitions' cards, bounded in memory (its
pages) and time (its deadline) -- against the plain time-ordered read of the same
stored events in embedded ClickHouse."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from aiokafka.partitioner import murmur2

from driftwatch.events import ScoredTransaction
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


class _Metadata:
    """The scored topic's partition count, as the aiokafka consumer's metadata gives it."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(6))


def test_each_cold_partition_is_warmed_up_to_its_own_first_record(store: Store) -> None:
    from aiokafka import TopicPartition

    from driftwatch.rules.stage import RuleStage
    from driftwatch.rules.storeside import split_rules
    from tests.integration.rules_fixture import shipped_rules

    events = sorted(fixture_events(), key=lambda e: (e.event_time, e.event_id))[:6000]
    store.insert_scored(events)

    def part(e: ScoredTransaction) -> int:
        return (murmur2(e.card_id.encode()) & 0x7FFFFFFF) % 6

    # partition 1's first record in the batch is far later than partition 4's
    first = {1: events[5000].event_time, 4: events[2000].event_time}
    in_stream, _ = split_rules(shipped_rules())
    warm = PartitionWarmUp(store, [RuleStage(in_stream, None)], "t", page=500)
    raw = {p: [json.dumps({"event_time": t.isoformat()}).encode()] for p, t in first.items()}
    warm.warm_up({TopicPartition("t", p): r for p, r in raw.items()}, _Metadata())
    horizon = dt.timedelta(milliseconds=in_stream.horizon_ms)
    expected = sum(1 for e in events if part(e) in first
                   and first[part(e)] - horizon <= e.event_time < first[part(e)])
    only_to_the_earliest = sum(1 for e in events if part(e) in first
                               and e.event_time < min(first.values()))
    assert warm.events == expected > only_to_the_earliest
