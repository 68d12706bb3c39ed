"""``driftwatch worker`` processes (the faust app in ``streams/``) against the real
(tansu) broker, each with its own embedded ClickHouse path.

chdb allows one data path per process, so every worker process has its own store and the
test reads each one afterwards in a short child process (``snapshot_path``). With a
ClickHouse server (production) all workers share one store; here the union of the
per-worker stores stands for it.

Covers: kill -9 mid-stream and restart → every event exactly once; SIGTERM flushes and
commits, exit code 0; labels through the label agent; two workers in one group split the
partitions, exactly one is the monitor leader, and together they store exactly what one
worker stores.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from driftwatch.assemble import build_pipeline
from driftwatch.settings import Settings
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store
from driftwatch.streaming.runtime import WorkerRuntime
from driftwatch.streaming.testbroker import Broker, free_port
from tests.integration.kafka_tools import (
    START,
    WorkerProcess,
    all_committed,
    event_ids,
    make_events,
    make_malformed,
    offsets,
    produce,
    produce_async,
    snapshot,
    snapshot_path,
    wait_for,
    write_jsonl,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _worker_settings(s: Settings, path: Path) -> Settings:
    return s.replace(
        store_dsn=f"chdb://{path / 'chdb'}", database="dw", worker_web_port=free_port()
    )


def _stored(worker: WorkerProcess) -> float:
    """The worker's ``driftwatch_events_stored_total`` for the scored topic."""
    worker.check_alive()
    try:
        text = worker.metrics()
    except Exception:
        return 0.0
    topic = re.escape(worker.settings.topic_scored)
    m = re.search(r'driftwatch_events_stored_total\{topic="' + topic + r'"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def _labels(txn_ids: list[str]) -> list[tuple[bytes, bytes]]:
    t = (START + dt.timedelta(days=3)).isoformat().replace("+00:00", "Z")
    return [
        (x.encode(), json.dumps({"txn_id": x, "label": i % 2, "label_time": t,
                                 "source": "chargeback"}).encode())
        for i, x in enumerate(txn_ids)
    ]


def test_kill9_midstream_restart_every_event_once(
    stream_settings: Settings, store: Store, tmp_path: Path
) -> None:
    s = _worker_settings(stream_settings.replace(batch_size=500), tmp_path / "store")
    valid = make_events(20000, seed=7, trigger_every=100, odd_age_every=89)
    produce(s.kafka_bootstrap, s.topic_scored, valid)

    first = WorkerProcess("first", s, tmp_path / "first").start()
    try:
        wait_for(lambda: _stored(first) >= 3000, 90, step=0.1, what="first worker storing")
    finally:
        first.kill()  # SIGKILL mid-stream: no flush, no commit, no leave-group
    before = offsets(s.kafka_bootstrap, s.consumer_group, s.topic_scored)
    assert sum(max(c, 0) for c, _ in before.values()) < len(valid), "killed too late"

    second = WorkerProcess("second", s.replace(worker_web_port=free_port()),
                           tmp_path / "second").start()
    try:
        labels = _labels([json.loads(v)["txn_id"] for _, v in valid[:300]])
        produce(s.kafka_bootstrap, s.topic_labels, labels)
        wait_for(lambda: second.check_alive() or all_committed(
            s.kafka_bootstrap, s.consumer_group, s.topic_scored), 120, step=1.0,
            what="every scored event committed")
        wait_for(lambda: all_committed(s.kafka_bootstrap, f"{s.consumer_group}-app",
                                       s.topic_labels), 60, step=1.0,
                 what="every label committed")
        health = second.health()
        assert health is not None and health["status"] == "ok", health
    finally:
        code = second.terminate()
    assert code == 0, second.tail()
    snap = snapshot_path(s.store_dsn, s.database)
    assert snap["unique_ids"] == len(valid)
    assert [r[0] for r in snap["rows"]] == sorted(event_ids(valid))  # FINAL: each id once
    assert snap["raw_rows"] >= len(valid)  # re-delivered rows collapse on event_id
    assert snap["labels"] == len(labels)
    print(f"kill -9: {snap['raw_rows'] - len(valid)} re-delivered rows collapsed, "
          f"{len(snap['hits'])} rule hits")

    # the rule results equal an uninterrupted replay of the same events: the restarted
    # worker re-filled its rule windows from ClickHouse and re-evaluated what came again
    pipeline = build_pipeline(stream_settings, store)
    try:
        replay(pipeline, write_jsonl(tmp_path / "events.jsonl", [v for _, v in valid]),
               batch_size=s.batch_size)
    finally:
        pipeline.close()
    expected = snapshot(store)
    assert expected["hits"], "the input makes rules hit"
    got = {(h[3], h[0]): h for h in snap["hits"]}
    want = {(h[3], h[0]): h for h in expected["hits"]}
    assert sorted(got.keys() - want.keys()) == [], "hits replay does not have"
    assert sorted(want.keys() - got.keys()) == [], "hits the worker missed"
    assert snap["hits"] == expected["hits"]
    assert snap["rows"] == expected["rows"]


def test_two_workers_split_partitions_like_one(
    stream_settings: Settings, store: Store, kafka_broker: Broker, tmp_path: Path
) -> None:
    s = stream_settings.replace(batch_size=1000)
    # Rule state lives in each worker process. Card-keyed and stateless rules give the
    # same hits however the partitions (keyed by card_id) are split; rules keyed by
    # another entity (IP, merchant, cents value) see only their worker's share of the
    # keys, so this input avoids them (no backdoor triggers, random IPs).
    valid = make_events(8000, seed=8, odd_age_every=97)
    bad = make_malformed(12, seed=8)
    items = list(valid) + [(k, p) for k, p, _ in bad]

    workers = [
        WorkerProcess(f"w{i}", _worker_settings(s, tmp_path / f"store{i}"), tmp_path / f"w{i}")
        for i in (1, 2)
    ]
    for w in workers:
        w.start()
    try:
        def split() -> list[set[str]] | None:
            for w in workers:
                w.check_alive()
            parts = [set((w.health() or {}).get("consumer", {}).get("assigned", []))
                     for w in workers]
            if all(parts) and not parts[0] & parts[1] and len(parts[0] | parts[1]) == 4:
                return parts
            return None

        wait_for(split, 90, step=0.5, what="two workers sharing the 4 partitions")
        leaders = wait_for(
            lambda: (lambda ls: ls if sum(ls) == 1 else None)(
                [bool((w.health() or {}).get("leader")) for w in workers]),
            60, step=0.5, what="exactly one monitor leader")
        assert sum(leaders) == 1

        positions = produce(s.kafka_bootstrap, s.topic_scored, items)
        wait_for(lambda: all_committed(s.kafka_bootstrap, s.consumer_group, s.topic_scored),
                 90, step=0.5, what="every event committed")
        parts = split()
        assert parts is not None, "a rebalance happened while consuming"
    finally:
        codes = [w.terminate() for w in workers]
    assert codes == [0, 0], [w.tail() for w in workers]

    snaps = [snapshot_path(w.settings.store_dsn, w.settings.database) for w in workers]
    partition_of = {json.loads(v)["event_id"]: p
                    for (_, v), (p, _) in zip(valid, positions[: len(valid)], strict=True)}
    for snap, owned in zip(snaps, parts, strict=True):
        assert snap["rows"], "each worker stored events of its own partitions"
        mine = {f"{s.topic_scored}/{partition_of[r[0]]}" for r in snap["rows"]}
        assert mine <= owned
    union_rows = sorted(snaps[0]["rows"] + snaps[1]["rows"], key=lambda r: r[0])
    assert [r[0] for r in union_rows] == sorted(event_ids(valid))  # disjoint, complete

    # the same topic through one worker (this process, its own group and output topics)
    one = s.replace(consumer_group=s.consumer_group + "-one",
                    topic_deadletter=s.topic_deadletter + "-one",
                    topic_rule_hits=s.topic_rule_hits + "-one")
    for name in (one.topic_deadletter, one.topic_rule_hits):
        kafka_broker.create_topic(name, partitions=4)
    asyncio.run(_run_one_worker(one, store))
    single = snapshot(store)
    assert union_rows == single["rows"]
    assert sorted(snaps[0]["rejected"] + snaps[1]["rejected"]) == single["rejected"]
    assert len(single["rejected"]) == len(bad)
    union_hits = sorted(snaps[0]["hits"] + snaps[1]["hits"], key=lambda h: (h[3], h[0]))
    assert single["hits"], "the stateless rule hit"
    assert union_hits == sorted(single["hits"], key=lambda h: (h[3], h[0]))


async def _run_one_worker(settings: Settings, store: Store) -> None:
    runtime = WorkerRuntime(settings, store=store)
    consumer = runtime.scored_consumer()
    task = asyncio.create_task(consumer.run())
    try:
        deadline = time.monotonic() + 90
        while True:
            offs = await _offsets(settings)
            if offs and all(c == h for c, h in offs.values()):
                break
            assert time.monotonic() < deadline, "single worker did not finish"
            await asyncio.sleep(0.5)
    finally:
        consumer.request_stop()
        await asyncio.wait_for(task, 60)
        runtime.close()


async def _offsets(settings: Settings) -> Any:
    from tests.integration.kafka_tools import offsets_async

    return await offsets_async(settings.kafka_bootstrap, settings.consumer_group,
                               settings.topic_scored)


def test_sigterm_midstream_flushes_the_batch_and_commits_it(
    stream_settings: Settings, tmp_path: Path
) -> None:
    s = _worker_settings(stream_settings.replace(batch_size=1000), tmp_path / "store")
    valid = make_events(20000, seed=9)
    chunks = [valid[i : i + 1000] for i in range(0, len(valid), 1000)]
    worker = WorkerProcess("graceful", s, tmp_path / "graceful").start()
    try:
        worker.wait_assigned()

        async def steady() -> None:
            for chunk in chunks:
                await produce_async(s.kafka_bootstrap, s.topic_scored, chunk)
                await asyncio.sleep(0.2)

        producer = threading.Thread(target=lambda: asyncio.run(steady()))
        producer.start()
        wait_for(lambda: _stored(worker) >= 5000, 60, what="worker storing")
    finally:
        code = worker.terminate()  # SIGTERM while events keep arriving
    producer.join(timeout=60)
    assert code == 0, worker.tail()
    committed = offsets(s.kafka_bootstrap, s.consumer_group, s.topic_scored)
    done = sum(max(c, 0) for c, _ in committed.values())
    assert 0 < done < len(valid), "stopped mid-stream"
    snap = snapshot_path(s.store_dsn, s.database)
    # everything stored was committed and nothing more: no batch lost or left behind
    assert snap["raw_rows"] == snap["unique_ids"] == done
