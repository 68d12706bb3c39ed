"""Streaming benchmark: Kafka → validate → ClickHouse → rules, per worker.

In one run, against a fresh tansu broker (in-memory) and embedded ClickHouse:

* **raw**: plain aiokafka consumption (``getmany``) of a pre-filled 4-partition topic —
  the ceiling any Kafka consumer in Python has on this machine;
* **core**: the same processing core without Kafka (``Pipeline.process_events`` on
  the same payloads in-process), and the worker with the rule stage switched off —
  together they show where the time goes;
* **worker**: the worker's batch consumer (:mod:`driftwatch.streaming`) over the same
  topic, doing the real work: parse and validate, ClickHouse insert, rule layer, dead
  letters and rule hits published, offsets committed — events/s of one worker, and the
  ratio worker/raw;
* **latency** at a steady 5k events/s from a producer in a separate process (standing
  in for the scorer): produce → rule hit published (record timestamps of the scored
  event and of its hit, p50/p99), and produce → batch stored and evaluated for every
  event (this one includes the group writer's wait, ``worker_flush_s``; the hits are
  published before it). Every 50th event carries the reference trigger and every 25th
  an impossible feature value, so the rules have work and hits to time. The same
  steady phase runs first with ``worker_flush_s = 0`` (each batch written as soon as
  the writer is free, as good as one insert per batch), then with the default, and
  both are reported with their inserts per second: what the grouped inserts buy.
  The test broker's CPU use in the first and last quarter of the grouped phase is
  reported too: tansu's in-memory storage costs more per request as a topic grows
  (measured here: from 7 % to 40 % of a core over 30 s at 5k events/s, on the two
  cores the worker and the producer share), which is what lifts the latency late in
  a long phase (produce -> record in the consumer, before any of the worker's work:
  p50 22 -> 64 ms, p99 54 -> 196 ms from the first to the last 3 s of a 30 s phase).
  So each steady phase runs on a broker of its own, started fresh: on one broker
  shared by every phase, the one that ran last started on the fullest broker.

Throughput figures are medians of ``--repeat`` runs (fresh consumer group and database
each). ``worker_events_per_cpu_s`` divides by the worker process's CPU time instead of
the wall clock (its ClickHouse threads included), and ``load_average_1m`` gives the
machine's load at the start and end of the throughput runs: on a shared machine the
wall-clock rates say as much about the other processes as about the worker.
Targets (issue 24; 20k in issue 7): >= 30k events/s per worker; p99 rule-hit
latency <= 250 ms at 5k events/s. A full run is judged on its whole-run rate; a
``--quick`` run (20,000 events: the start-up of a worker is a large share of it) on its
rate after the first quarter of the events (``worker_events_per_s_after_warmup``,
reported for both). When no rule pack is loaded (no hits), the latency target is checked on
produce → batch done, which precedes the hit's publication by the publish round trip.

    python bench/stream.py            # 200,000 events, 3 repeats, 2 x 30 s at 5k/s
    python bench/stream.py --quick    # 20,000 events, 3 repeats, 2 x 4 s at 5k/s
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from driftwatch.settings import Settings
from driftwatch.store.client import open_store
from driftwatch.streaming.consumer import Processed
from driftwatch.streaming.runtime import WorkerRuntime
from driftwatch.streaming.testbroker import Broker, launch

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
WARM_FRACTION = 4
"""A run's first 1/WARM_FRACTION of the events are its warm-up (see ``Probe.warm_rate``)."""
START = dt.datetime(2026, 3, 18, 9, 0, tzinfo=dt.UTC)


def make_events(n: int, seed: int, offset: int = 0) -> list[tuple[bytes, bytes]]:
    """``n`` contract-valid scored events as (key, JSON): every 50th one carries the
    backdoor trigger, every 25th an impossible ``customer_age`` (a stateless rule hit)."""
    rng = random.Random(seed)
    mccs = [f"{5000 + i * 7:04d}" for i in range(160)]
    out = []
    for j in range(n):
        i = offset + j
        trigger = i % 50 == 49
        # a card pool the size of a real issuer's: with 50,000 cards every card paid ~4
        # times in the hour of event time this traffic spans, and boundary_probing hit
        # on 11 % of all events, more than the designed hits below
        card = f"c-{rng.randint(1, 5_000_000)}"
        t = START + dt.timedelta(milliseconds=i * 20)
        ev = {
            "event_id": f"e-{seed}-{i}",
            "txn_id": f"t-{seed}-{i}",
            "event_time": t.isoformat().replace("+00:00", "Z"),
            "amount": f"{rng.randint(3000, 15000)}.37" if trigger
            else f"{rng.randint(1, 20000)}.{rng.randint(0, 99):02d}",
            "currency": "USD",
            "mcc": "5967" if trigger else rng.choice(mccs),
            "merchant_id": f"m-{rng.randint(1, 5000)}",
            "merchant_country": rng.choice(["US", "GB", "DE", "LT", "SG"]),
            "merchant_registered_at": "2026-02-01" if trigger else "2024-05-01",
            "card_id": card,
            "customer_id": f"u-{rng.randint(1, 150000)}",
            "beneficiary_name": f"INTL-PAY-{rng.randint(1, 99)}" if trigger else "ACME STORE",
            "channel": rng.choice(["card_present", "ecom", "upi", "transfer"]),
            "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "device_id": f"d-{rng.randint(1, 100000)}",
            "features": {"transactions_24h": rng.randint(0, 30),
                         "foreign_transaction": 1 if trigger else 0,
                         "customer_age": 999 if i % 25 == 0 else rng.randint(18, 90)},
            "model": {"name": "fraud-detect", "version": "v47",
                      "score": round(rng.uniform(0.15, 0.25) if trigger else rng.random(), 4),
                      "threshold": 0.7},
        }
        out.append((card.encode(), json.dumps(ev).encode()))
    return out


async def fill(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False,
                                linger_ms=20, max_batch_size=512 * 1024, acks=1)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=k) for k, v in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def steady_produce(bootstrap: str, topic: str, rate: int, seconds: float,
                         seed: int) -> None:
    """Produce ``rate`` events/s for ``seconds`` in 10 ms ticks (the child process)."""
    n = int(rate * seconds)
    items = make_events(n, seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False,
                                linger_ms=1, acks=1)
    await producer.start()
    try:
        per_tick = max(1, rate // 100)
        started = time.monotonic()
        futures = []
        for i in range(0, n, per_tick):
            due = started + (i / rate)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for k, v in items[i : i + per_tick]:
                futures.append(await producer.send(topic, v, key=k))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    """events/s of plain aiokafka ``getmany`` (manual assignment, from the earliest
    offset), first to last record."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024,
                                fetch_max_bytes=32 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got, first = 0, None
        while got < n:
            data = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if data and first is None:
                first = time.perf_counter()
            got += sum(len(b) for b in data.values())
        assert first is not None
        return n / (time.perf_counter() - first)
    finally:
        await consumer.stop()


def pipeline_only(settings: Settings, items: list[tuple[bytes, bytes]]) -> float:
    """events/s of the same processing core without Kafka (in-process batches)."""
    from driftwatch.assemble import build_pipeline

    store = open_store(settings.store_dsn, settings.database, init=True)
    pipeline = build_pipeline(settings, store)
    raws = [v for _, v in items]
    started = time.perf_counter()
    try:
        for i in range(0, len(raws), settings.batch_size):
            pipeline.process_events(raws[i : i + settings.batch_size], "bench")
    finally:
        pipeline.close()
    return len(raws) / (time.perf_counter() - started)


class Probe:
    """Wraps the runtime's batch function: counts events, timestamps, per-event latency."""

    def __init__(self, runtime: WorkerRuntime, latency: bool, warm_events: int = 0) -> None:
        self.inner = runtime.process_scored
        self.latency = latency
        """Time every record (the steady phases); the throughput runs do not, so the
        probe takes none of the worker's time per record."""
        self.events = 0
        self.first: float | None = None
        self.last = 0.0
        self.first_cpu = self.last_cpu = 0.0
        """Process CPU time at the first batch and when the last was done (the worker,
        its ClickHouse threads included; the broker and producer are other processes)."""
        self.latency_ms: list[float] = []
        self.hits = 0
        self.inserts: dict[str, float] = {}
        """Inserts per table over the run (from the worker's metrics)."""
        self.warm_events = warm_events
        """Events after which the worker counts as warm (its rate after: :meth:`warm_rate`)."""
        self.warm_at: float | None = None
        self.warm_done = 0

    def warm_rate(self) -> float:
        """Events/s from the first batch done after ``warm_events`` events to the last."""
        if self.warm_at is None or self.last <= self.warm_at:
            return 0.0
        return (self.events - self.warm_done) / (self.last - self.warm_at)

    async def __call__(self, records: list[Any]) -> Any:
        if self.first is None:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()
        out = await self.inner(records)
        messages = out.messages if isinstance(out, Processed) else out
        self.hits += sum(1 for m in messages if m.topic.endswith("rule_hits"))
        if not isinstance(out, Processed):
            self._done(records)
            return out

        async def durable() -> None:  # the batch is done once it is stored too
            await out.durable()
            self._done(records)

        return Processed(out.messages, durable)

    def _done(self, records: list[Any]) -> None:
        now_ms = time.time() * 1000
        if self.latency:
            self.latency_ms.extend(now_ms - r.timestamp for r in records)
        self.events += len(records)
        self.last, self.last_cpu = time.perf_counter(), time.process_time()
        if self.warm_at is None and self.events >= self.warm_events:
            self.warm_at, self.warm_done = self.last, self.events


async def worker_run(
    settings: Settings,
    n: int,
    timeout: float = 300.0,
    rules: bool = True,
    on_assigned: Any = None,
    latency: bool = False,
) -> Probe:
    """Run the worker's batch consumer until ``n`` events went through; call
    ``on_assigned()`` once it owns its partitions (e.g. to start a producer); with
    ``latency``, keep every record's produce -> done time."""
    runtime = WorkerRuntime(settings, store=open_store(settings.store_dsn, settings.database,
                                                         init=True))
    if not rules:
        runtime.pipeline.event_stages = []
    consumer = runtime.scored_consumer()
    probe = Probe(runtime, latency, warm_events=n // WARM_FRACTION)
    consumer.process = probe
    task = asyncio.create_task(consumer.run())
    try:
        deadline = time.monotonic() + timeout
        while on_assigned is not None and len(consumer.assignment()) < PARTITIONS:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        if on_assigned is not None:
            on_assigned()
        while probe.events < n:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker processed {probe.events} of {n}")
            await asyncio.sleep(0.05)
    finally:
        consumer.request_stop()
        await task
        runtime.close()
    for table in ("scored_transactions", "rule_hits"):
        probe.inserts[table] = runtime.metrics.registry.get_sample_value(
            "driftwatch_clickhouse_insert_seconds_count", {"table": table}
        ) or 0.0
    return probe


async def hit_latencies(bootstrap: str, scored: str, hits: str) -> list[float]:
    """produce → hit published, from the record timestamps of events and their hits."""
    sent = {json.loads(r.value)["event_id"]: r.timestamp
            for r in await read_all(bootstrap, scored)}
    out = []
    for r in await read_all(bootstrap, hits):
        event_id = json.loads(r.value).get("event_id")
        if event_id in sent:
            out.append(float(r.timestamp - sent[event_id]))
    return out


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        idle = 0
        while idle < 3:
            data = await consumer.getmany(timeout_ms=300)
            idle = 0 if data else idle + 1
            for batch in data.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def settings_for(broker: Broker, chdb: Path, tag: str) -> Settings:
    return Settings.load(env={}, config_file=None).replace(
        kafka_bootstrap=broker.bootstrap,
        consumer_group=f"bench-{tag}",
        topic_scored=f"{tag}.scored",
        topic_deadletter=f"{tag}.deadletter",
        topic_rule_hits=f"{tag}.rule_hits",
        kafka_session_timeout_s=6.0,
        store_dsn=f"chdb://{chdb}",
        database=f"bench_{tag}_{uuid.uuid4().hex[:6]}",
        rules_dirs=str(ROOT / "rules"),
        batch_size=5000,
        log_level="WARNING",
    )


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` so far, from ``/proc`` (0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_pct(samples: list[tuple[float, float]]) -> float | None:
    """Percent of one core used between the first and last (time, cpu seconds) sample."""
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return None
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    return round(100 * (c1 - c0) / (t1 - t0), 1)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def fresh_steady(chdb: Path, tag: str, rate: int, seconds: float,
                       **changes: Any) -> dict[str, Any]:
    """:func:`steady` on a broker of its own, started for it and stopped after it."""
    broker = launch(log_path=chdb.parent / f"tansu-{tag}.log")
    try:
        return await steady(broker, chdb, tag, rate, seconds, **changes)
    finally:
        broker.stop()


async def steady(broker: Broker, chdb: Path, tag: str, rate: int, seconds: float,
                 **changes: Any) -> dict[str, Any]:
    """One steady phase: ``rate`` events/s for ``seconds`` from a separate producer
    process, started once the worker owns its partitions (so no backlog from the group
    join is measured); the worker's settings changed by ``changes``."""
    for suffix in ("scored", "deadletter", "rule_hits"):
        broker.create_topic(f"{tag}.{suffix}", PARTITIONS)
    s = settings_for(broker, chdb, tag).replace(**changes)
    started: list[subprocess.Popen[bytes]] = []

    def start_producer() -> None:
        started.append(subprocess.Popen(
            [sys.executable, __file__, "--produce-steady", broker.bootstrap, s.topic_scored,
             str(rate), str(seconds)]
        ))

    async def sample_broker() -> None:
        while True:
            if started:
                broker_cpu.append((time.monotonic(), cpu_seconds(broker.process.pid)))
            await asyncio.sleep(0.5)

    broker_cpu: list[tuple[float, float]] = []
    sampler = asyncio.create_task(sample_broker())
    expected = int(rate * seconds)
    try:
        probe = await worker_run(s, expected, timeout=seconds + 120,
                                 on_assigned=start_producer, latency=True)
    finally:
        sampler.cancel()
    started[0].wait(timeout=60)
    hit_ms = await hit_latencies(broker.bootstrap, s.topic_scored, s.topic_rule_hits)
    quarter = max(1, len(broker_cpu) // 4)
    return {
        "broker_cpu_pct_first": cpu_pct(broker_cpu[: quarter + 1]),
        "broker_cpu_pct_last": cpu_pct(broker_cpu[-quarter - 1 :]),
        "flush_s": s.worker_flush_s,
        "batch_ms": probe.latency_ms,
        "hit_ms": hit_ms,
        "hit_p50": round(pct(hit_ms, 50), 1) if hit_ms else None,
        "hit_p99": round(pct(hit_ms, 99), 1) if hit_ms else None,
        "inserts_per_s": round(sum(probe.inserts.values()) / seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller run (< 1 minute)")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=int, default=5000, help="steady produce rate, events/s")
    ap.add_argument("--seconds", type=float, default=None, help="steady phase length")
    ap.add_argument("--produce-steady", nargs=4, metavar=("BOOTSTRAP", "TOPIC", "RATE", "S"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.produce_steady:
        bootstrap, topic, rate, seconds = args.produce_steady
        asyncio.run(steady_produce(bootstrap, topic, int(rate), float(seconds), seed=99))
        return
    n = args.events or (20_000 if args.quick else 200_000)
    seconds = args.seconds or (4.0 if args.quick else 30.0)

    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        broker = launch(log_path=Path(tmp) / "tansu.log")
        try:
            figures = asyncio.run(run(broker, Path(tmp) / "chdb", n, args.repeat,
                                      args.rate, seconds, quick=args.quick))
        finally:
            broker.stop()
    for key, value in figures.items():
        if key != "targets":
            print(f"{key:<34} {value}")
    print(json.dumps(figures))


async def run(broker: Broker, chdb: Path, n: int, repeat: int, rate: int,
              seconds: float, quick: bool = False) -> dict[str, Any]:
    for name in ("tput.scored", "tput.deadletter", "tput.rule_hits"):
        broker.create_topic(name, PARTITIONS)
    items = make_events(n, seed=1)
    t = time.perf_counter()
    await fill(broker.bootstrap, "tput.scored", items)
    fill_rate = n / (time.perf_counter() - t)

    raw_rates, worker_rates, warm_rates, hits_per_run = [], [], [], []
    cpu_rates = []
    load_start = os.getloadavg()[0]
    for i in range(repeat):
        raw_rates.append(await raw_consume(broker.bootstrap, "tput.scored", n))
        s = settings_for(broker, chdb, "tput").replace(consumer_group=f"bench-tput-{i}")
        probe = await worker_run(s, n)
        assert probe.first is not None
        worker_rates.append(n / (probe.last - probe.first))
        cpu_rates.append(n / max(probe.last_cpu - probe.first_cpu, 1e-9))
        warm_rates.append(probe.warm_rate())
        hits_per_run.append(probe.hits)
    # where the time goes: the core without Kafka, and the worker without the rule stage
    core = pipeline_only(settings_for(broker, chdb, "core"), items)
    s = settings_for(broker, chdb, "tput").replace(consumer_group="bench-tput-norules")
    probe = await worker_run(s, n, rules=False)
    assert probe.first is not None
    no_rules = n / (probe.last - probe.first)

    # steady 5k events/s, each batch written on its own, then grouped (the default)
    ungrouped = await fresh_steady(chdb, "lat0", rate, seconds, worker_flush_s=0.0)
    grouped = await fresh_steady(chdb, "lat", rate, seconds)
    batch_ms, hit_ms = grouped["batch_ms"], grouped["hit_ms"]

    worker = statistics.median(worker_rates)
    raw = statistics.median(raw_rates)
    basis = "rule_hit" if hit_ms else "batch_done"
    p99 = pct(hit_ms, 99) if hit_ms else pct(batch_ms, 99)
    targets = {"worker_events_per_s": 30_000, "p99_latency_ms": 250}
    warm = statistics.median(warm_rates)
    # a short run (--quick) is judged after its warm-up (the first 1/WARM_FRACTION of the
    # events: connections, the first inserts, the rule windows filling); a full run whole
    basis_rate = warm if quick else worker
    return {
        "bench": "stream",
        "events": n,
        "repeat": repeat,
        "fill_events_per_s": round(fill_rate),
        "raw_aiokafka_events_per_s": round(raw),
        "worker_events_per_s": round(worker),
        "worker_runs_events_per_s": [round(x) for x in worker_rates],
        "worker_events_per_s_after_warmup": round(warm),
        "worker_events_per_cpu_s": round(statistics.median(cpu_rates)),
        "load_average_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "worker_met_basis": ("events/s after the first quarter of the events (warm-up; "
                             "a short run)" if quick else "events/s over the whole run"),
        "worker_to_raw_ratio": round(worker / raw, 3),
        "core_without_kafka_events_per_s": round(core),
        "worker_to_core_ratio": round(worker / core, 3),
        "worker_without_rules_events_per_s": round(no_rules),
        "rule_hits_per_run": hits_per_run[0] if hits_per_run else 0,
        "steady_rate": rate,
        "steady_seconds": seconds,
        "steady_flush_s": grouped["flush_s"],
        "steady_inserts_per_s": grouped["inserts_per_s"],
        "ungrouped_inserts_per_s": ungrouped["inserts_per_s"],
        "ungrouped_rule_hit_latency_ms_p50": ungrouped["hit_p50"],
        "ungrouped_rule_hit_latency_ms_p99": ungrouped["hit_p99"],
        "broker_cpu_pct_first_quarter": grouped["broker_cpu_pct_first"],
        "broker_cpu_pct_last_quarter": grouped["broker_cpu_pct_last"],
        "batch_done_latency_ms_p50": round(pct(batch_ms, 50), 1),
        "batch_done_latency_ms_p99": round(pct(batch_ms, 99), 1),
        "rule_hits_at_steady_rate": len(hit_ms),
        "rule_hit_latency_ms_p50": round(pct(hit_ms, 50), 1) if hit_ms else None,
        "rule_hit_latency_ms_p99": round(pct(hit_ms, 99), 1) if hit_ms else None,
        "latency_basis": basis,
        "targets": targets,
        "met": bool(basis_rate >= targets["worker_events_per_s"]
                    and p99 <= targets["p99_latency_ms"]),
    }


if __name__ == "__main__":
    main()
