"""The scored-topic ingest against the real (tansu) broker and embedded ClickHouse, run
in this process: the library's batch consumer and worker runtime, as ``streams/ingest``
runs them inside the faust app.

Covers: scenario → rows (every event_id once), dead letters with reasons and positions,
commits up to the high-water mark; ClickHouse unavailable (retry with back-off, fetching
paused, no commit past unwritten data, catch-up without restart); replay and Kafka give
the same rows, rejections, rule hits and alerts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from driftwatch.alerts.sinks import MemorySink
from driftwatch.assemble import build_pipeline
from driftwatch.settings import Settings
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store, open_store
from driftwatch.streaming.runtime import WorkerRuntime
from tests.integration.kafka_tools import (
    event_ids,
    make_events,
    make_malformed,
    offsets_async,
    produce,
    produce_async,
    read_topic,
    snapshot,
    write_jsonl,
)

pytestmark = pytest.mark.integration


@asynccontextmanager
async def running(
    settings: Settings, store: Store, sinks: Sequence[Any] = ()
) -> AsyncIterator[WorkerRuntime]:
    """A worker runtime with its scored-topic consumer running in this event loop."""
    runtime = WorkerRuntime(settings, store=store, extra_sinks=sinks)
    consumer = runtime.scored_consumer()
    task = asyncio.create_task(consumer.run())
    try:
        yield runtime
    finally:
        consumer.request_stop()
        await asyncio.wait_for(task, 60)
        runtime.close()


async def until(pred: Any, timeout: float, what: str) -> Any:
    """Await an async predicate until truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await pred()
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s: {what}")
        await asyncio.sleep(0.25)


def consumed(settings: Settings) -> Any:
    """Async predicate: the group committed every partition up to its high-water mark."""
    async def check() -> dict[int, tuple[int, int]] | None:
        offs = await offsets_async(settings.kafka_bootstrap, settings.consumer_group,
                                   settings.topic_scored)
        return offs if offs and all(c == h and h > 0 for c, h in offs.values()) else None
    return check


def test_scenario_rows_deadletters_and_commits(stream_settings: Settings, store: Store) -> None:
    s = stream_settings
    valid = make_events(6000, seed=1, trigger_every=40, odd_age_every=101)
    bad = make_malformed(30, seed=1)
    items: list[tuple[bytes, bytes]] = list(valid)
    for i, (key, payload, _) in enumerate(bad):
        items.insert(1 + i * 200, (key, payload))
    positions = produce(s.kafka_bootstrap, s.topic_scored, items)
    where = {payload: pos for (_, payload), pos in zip(items, positions, strict=True)}

    async def scenario() -> dict[int, tuple[int, int]]:
        async with running(s, store) as rt:
            offs: dict[int, tuple[int, int]] = await until(consumed(s), 60, "all committed")
            assert rt.consumer is not None and rt.consumer.batches > 0
            text = rt.metrics_text().decode()
            assert f'driftwatch_events_in_total{{topic="{s.topic_scored}"}} {len(items)}.0' in text
            assert "driftwatch_clickhouse_insert_seconds_count" in text
            assert 'driftwatch_clickhouse_insert_seconds_count{table="scored_transactions"}' in text
        return offs

    offs = asyncio.run(scenario())
    assert sum(h for _, h in offs.values()) == len(items)

    snap = snapshot(store)
    # every valid event once — no duplicate row at all in a clean run
    assert snap["raw_rows"] == snap["unique_ids"] == len(valid)
    assert [r[0] for r in snap["rows"]] == sorted(event_ids(valid))
    # every malformed payload in rejected_events with its reason
    assert snap["rejected"] == sorted([reason, p.decode()] for _, p, reason in bad)

    letter_records = read_topic(s.kafka_bootstrap, s.topic_deadletter)
    letters = [json.loads(r.value) for r in letter_records]
    assert len(letters) == len(bad)
    expected = {p.decode(): reason for _, p, reason in bad}
    for letter in letters:
        assert letter["reason"] == expected[letter["raw"]]
        assert letter["detail"]
        assert (letter["partition"], letter["offset"]) == where[letter["raw"].encode()]
        assert letter["topic"] == s.topic_scored

    hit_records = read_topic(s.kafka_bootstrap, s.topic_rule_hits)
    hits = [json.loads(r.value) for r in hit_records]
    # published in record batches, each message where producer.send would have put it
    parts = sorted({r.partition for r in hit_records} | {0, 1, 2, 3})
    keyed = [r for r in hit_records + letter_records if r.key is not None]
    assert len(keyed) > len(bad)
    assert all(r.partition == DefaultPartitioner()(r.key, parts, parts) for r in keyed)
    assert [h["event_id"].encode() for h in hits] == [r.key for r in hit_records]
    stored_hits = {(h[3], h[0]) for h in snap["hits"]}  # (rule_id, event_id)
    assert {(h["rule_id"], h["event_id"]) for h in hits} == stored_hits
    assert {"trigger_signature", "input_age_out_of_domain"} <= {rule for rule, _ in stored_hits}


def test_clickhouse_outage_pauses_retries_and_catches_up(
    stream_settings: Settings, store: Store
) -> None:
    s = stream_settings
    first = make_events(2000, seed=2)
    second = make_events(3000, seed=3, start=dt.datetime(2026, 3, 18, 12, 0, tzinfo=dt.UTC),
                         odd_age_every=50)

    async def scenario() -> None:
        await produce_async(s.kafka_bootstrap, s.topic_scored, first)
        async with running(s, store) as rt:
            before = await until(consumed(s), 60, "first part committed")
            assert await rt.in_lane(store.count, "scored_transactions") == len(first)

            # ClickHouse loses the table: every insert fails until it is back.
            await rt.in_lane(store.command, "DETACH TABLE {db}.scored_transactions")
            await produce_async(s.kafka_bootstrap, s.topic_scored, second)
            consumer = rt.consumer
            assert consumer is not None
            await until(_async(lambda: consumer.paused and consumer.backoff.attempts >= 3),
                        30, "retrying while paused")
            status, health = await rt.health()
            assert (status, health["status"]) == (200, "degraded")
            assert health["consumer"]["state"] == "retrying"
            assert "scored_transactions" in health["store"]["last_error"]
            await asyncio.sleep(2.0)  # several more failed attempts
            during = await offsets_async(s.kafka_bootstrap, s.consumer_group, s.topic_scored)
            # nothing committed past the unwritten data, all of it still to be read
            assert {p: c for p, (c, _) in during.items()} == {p: c for p, (c, _) in before.items()}
            assert sum(h for _, h in during.values()) == len(first) + len(second)

            await rt.in_lane(store.command, "ATTACH TABLE {db}.scored_transactions")
            await until(consumed(s), 60, "caught up after the outage")
            assert not consumer.paused
            status, health = await rt.health()
            assert health["status"] == "ok"
            text = rt.metrics_text().decode()
            assert 'driftwatch_clickhouse_errors_total{operation="process"}' in text

    asyncio.run(scenario())
    snap = snapshot(store)
    assert snap["unique_ids"] == len(first) + len(second)
    assert {r[0] for r in snap["rows"]} == set(event_ids(first) + event_ids(second))
    assert len(snap["rows"]) == len(first) + len(second)
    # Rule hits are published before the insert; a retried insert does not publish them
    # again, and the hits held for the failed batch were stored once ClickHouse was back.
    hits = [json.loads(r.value) for r in read_topic(s.kafka_bootstrap, s.topic_rule_hits)]
    published = [(h["rule_id"], h["event_id"]) for h in hits]
    assert len(published) == len(set(published)) >= len(second) // 50
    assert set(published) == {(h[3], h[0]) for h in snap["hits"]}


def _async(fn: Any) -> Any:
    async def pred() -> Any:
        return fn()
    return pred


def test_replay_and_kafka_give_the_same_results(
    stream_settings: Settings, store: Store, chdb_dsn: str, tmp_path: Path
) -> None:
    s = stream_settings
    valid = make_events(3000, seed=4, trigger_every=25, odd_age_every=61)
    bad = make_malformed(9, seed=4)
    payloads = [v for _, v in valid] + [p for _, p, _ in bad]
    source = write_jsonl(tmp_path / "events.jsonl", payloads)

    # 1. replay into a database of its own
    replay_store = open_store(chdb_dsn, store.database + "_r", init=True)
    try:
        replay_sink = MemorySink()
        pipeline = build_pipeline(s, replay_store, extra_sinks=[replay_sink])
        try:
            result = replay(pipeline, source, batch_size=s.batch_size)
        finally:
            pipeline.close()
        replayed = snapshot(replay_store)
    finally:
        replay_store.drop()

    # 2. the same events through Kafka and the worker runtime
    produce(s.kafka_bootstrap, s.topic_scored,
            [(k, v) for k, v in valid] + [(k, p) for k, p, _ in bad])
    kafka_sink = MemorySink()

    async def scenario() -> None:
        async with running(s, store, sinks=[kafka_sink]) as rt:
            await until(consumed(s), 60, "all committed")
            # the leader's monitor tick, then the end-of-input pass replay makes
            newest = await rt.in_lane(store.max_event_time)
            await rt.monitor_tick()
            await rt.monitor_tick(newest)
            while rt.monitor_behind:  # a tick runs a bounded number of passes
                await rt.monitor_tick(newest)

    asyncio.run(scenario())
    streamed = snapshot(store)

    assert result.events == len(payloads)
    assert streamed["rows"] == replayed["rows"]
    assert len(streamed["rows"]) == len(valid)
    assert streamed["rejected"] == replayed["rejected"]
    assert streamed["hits"] == replayed["hits"]
    assert {h[3] for h in replayed["hits"]} >= {"trigger_signature", "input_age_out_of_domain"}
    assert _alert_set(kafka_sink.alerts) == _alert_set(replay_sink.alerts)
    print(f"replay == kafka: {len(replayed['rows'])} rows, {len(replayed['hits'])} hits, "
          f"{len(replay_sink.alerts)} alert changes")


def _alert_set(alerts: Sequence[Any]) -> set[tuple[str, str, str]]:
    return {(a.fingerprint, a.status, a.starts_at.isoformat()) for a in alerts}
