"""Several batches in flight, against the real (tansu) broker: the batch consumer
commits them in batch order and bounds what waits.

The durable step of the first batch is held open while the later ones finish at once:
nothing may be committed past the first batch, the consumer stops taking batches once
``max_pending_records`` wait, and everything is committed once the first batch is
durable. At a stop whose deadline passes while the first batch is still held, nothing
after it is committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from driftwatch.settings import Settings
from driftwatch.streaming.consumer import BatchConsumer, Processed
from tests.integration.kafka_tools import make_events, offsets_async, produce

pytestmark = pytest.mark.integration

MAX_RECORDS = 100
MAX_PENDING = 300


class HeldFirst:
    """``process`` whose first batch stays non-durable until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sizes: list[int] = []
        self.durable_done = 0

    async def __call__(self, records: list[Any]) -> Processed:
        first = not self.sizes
        self.sizes.append(len(records))

        async def durable() -> None:
            if first:
                await self.release.wait()
            self.durable_done += 1

        return Processed([], durable)


def consumer_for(s: Settings, process: HeldFirst, **kwargs: Any) -> BatchConsumer:
    session_ms = int(s.kafka_session_timeout_s * 1000)
    return BatchConsumer(
        AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=s.consumer_group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=session_ms, heartbeat_interval_ms=session_ms // 4,
        ),
        AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, enable_idempotence=False),
        process,
        topics=[s.topic_scored],
        max_records=MAX_RECORDS,
        max_pending_records=MAX_PENDING,
        linger_s=0.0,
        **kwargs,
    )


async def settled(value: Callable[[], Awaitable[Any]], quiet_s: float, timeout: float) -> Any:
    """Poll ``value()`` until it is truthy and has not changed for ``quiet_s``."""
    deadline = time.monotonic() + timeout
    last, since = await value(), time.monotonic()
    while not last or time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise TimeoutError(f"still changing after {timeout}s: {last!r}")
        await asyncio.sleep(0.1)
        now = await value()
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_a_held_batch_blocks_commits_after_it_until_it_is_durable(
    stream_settings: Settings,
) -> None:
    s = stream_settings
    produce(s.kafka_bootstrap, s.topic_scored, make_events(1500, seed=31, spacing_ms=10))
    process = HeldFirst()

    async def scenario() -> None:
        consumer = consumer_for(s, process)
        task = asyncio.create_task(consumer.run())
        try:
            async def taken() -> int:
                return sum(process.sizes)

            held = await settled(taken, quiet_s=1.5, timeout=60)
            # later batches were processed and made durable while the first is held ...
            assert len(process.sizes) >= 3 and process.durable_done == len(process.sizes) - 1
            # ... until no more than max_pending_records (plus the batch that crossed it)
            assert MAX_PENDING < held <= MAX_PENDING + MAX_RECORDS
            status = consumer.status()
            assert status["pending_records"] == held
            assert status["pending_batches"] == len(process.sizes)
            assert f"driftwatch_pending_events {held}.0" in consumer.metrics.render().decode()
            # and nothing was committed past the first batch, on any partition
            offs = await offsets_async(s.kafka_bootstrap, s.consumer_group, s.topic_scored)
            assert {p: c for p, (c, _) in offs.items()} == {p: -1 for p in offs}

            process.release.set()

            async def committed() -> dict[int, tuple[int, int]]:
                return await offsets_async(s.kafka_bootstrap, s.consumer_group, s.topic_scored)

            deadline = time.monotonic() + 60
            while not all(c == h for c, h in (await committed()).values()):
                assert time.monotonic() < deadline, "not all committed after the release"
                await asyncio.sleep(0.2)
            assert sum(process.sizes) == 1500
            assert consumer.status()["pending_records"] == 0
        finally:
            consumer.request_stop()
            process.release.set()
            await asyncio.wait_for(task, 60)

    asyncio.run(scenario())


def test_past_the_stop_deadline_nothing_after_a_held_batch_is_committed(
    stream_settings: Settings,
) -> None:
    s = stream_settings
    produce(s.kafka_bootstrap, s.topic_scored, make_events(600, seed=32, spacing_ms=10))
    process = HeldFirst()

    async def scenario() -> None:
        consumer = consumer_for(s, process, stop_timeout_s=1.0)
        task = asyncio.create_task(consumer.run())

        async def taken() -> int:
            return sum(process.sizes)

        await settled(taken, quiet_s=1.5, timeout=60)
        assert process.durable_done >= 1  # a later batch is durable and waiting
        stopped = time.monotonic()
        consumer.request_stop()
        await asyncio.wait_for(task, 30)  # never waits for the held batch itself
        assert time.monotonic() - stopped < 20
        assert consumer.state == "stopped"
        offs = await offsets_async(s.kafka_bootstrap, s.consumer_group, s.topic_scored)
        assert {p: c for p, (c, _) in offs.items()} == {p: -1 for p in offs}
        process.release.set()

    asyncio.run(scenario())
