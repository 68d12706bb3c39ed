"""Rule warm-up per assigned partition (issue 23), against the real (tansu) broker and
embedded ClickHouse: a worker that takes partitions over warms its rule windows with
the stored history of exactly those partitions' cards, before their first batch."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.partitioner import murmur2

from driftwatch.assemble import build_pipeline
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from tests.integration.kafka_tools import make_events, offsets_async, produce
from tests.integration.test_stream_ingest import running, until

pytestmark = pytest.mark.integration


def partition_of(card: str, n: int) -> int:
    return (murmur2(card.encode()) & 0x7FFFFFFF) % n


def test_taken_over_partitions_are_warmed_with_their_cards_history(
    stream_settings: Settings, store: Store
) -> None:
    s = stream_settings
    events = make_events(1600, seed=23)  # 200 ms apart, 400 cards
    history, live = events[:1000], events[1000:]
    card = {v: json.loads(v)["card_id"] for _, v in events}
    n = s.topic_partitions
    # the previous owner stored the history of every partition
    pipeline = build_pipeline(s, store)
    try:
        pipeline.store_events(pipeline.parse_events([v for _, v in history]), "before")
    finally:
        pipeline.close()
    # only partitions 0 and 1 deliver anything now
    mine = [(k, v) for k, v in live if partition_of(card[v], n) in (0, 1)]
    assert mine and len(mine) < len(live)
    produce(s.kafka_bootstrap, s.topic_scored, mine)
    expected = sum(1 for _, v in history if partition_of(card[v], n) in (0, 1))

    async def committed() -> bool:
        offs = await offsets_async(s.kafka_bootstrap, s.consumer_group, s.topic_scored)
        return all(offs.get(p, (0, -1))[0] == offs.get(p, (0, -1))[1] > 0 for p in (0, 1))

    async def scenario() -> int:
        async with running(s, store) as rt:
            await until(committed, 60, "partitions 0 and 1 committed")
            return rt.warmed_events

    warmed = asyncio.run(scenario())
    # exactly the stored history of the two partitions' cards, nothing of the others
    assert warmed == expected
    assert 0 < expected < len(history)
