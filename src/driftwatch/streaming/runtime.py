"""One worker process: the processing core, its Kafka clients, metrics and health.

The faust app in ``streams/`` creates one :class:`WorkerRuntime` and wires it to
topics, timers and web pages. The runtime assembles the pipeline with
:func:`driftwatch.assemble.build_pipeline` — the same assembly the file replay uses —
so a Kafka worker and ``driftwatch replay`` produce the same rows, rule hits and alerts.

Every call into the pipeline runs on one dedicated thread (the "lane"): the pipeline
and the ClickHouse client are synchronous, and one lane keeps the batches of the
ingest, the labels and the monitor ticks strictly ordered and off the event loop
(heartbeats and fetches go on while a batch is handled). A scored batch is parsed
and its rules are evaluated on the lane; its rows (events, rejections and the rule
stage's own ``rule_hits``, held back by :class:`HeldInserts`) then go to a
:class:`~driftwatch.streaming.writer.GroupWriter`, which writes the batches of up to
``worker_flush_s`` as one insert per table on a thread of its own. Rule hits are
published without waiting for it; the batch's offsets are committed only once its
rows are written (:class:`~driftwatch.streaming.consumer.Processed`). The consumer
meanwhile fetches and evaluates the next batches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gc
import logging
import math
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from mode import Service
from prometheus_client import REGISTRY, generate_latest

from driftwatch.alerts.model import Alert
from driftwatch.alerts.sinks import AlertSink
from driftwatch.assemble import build_pipeline, store_from
from driftwatch.errors import StoreError
from driftwatch.events import ScoredBatch
from driftwatch.pipeline import BatchResult
from driftwatch.rules.stage import HIT_TABLE, RuleStage
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.backoff import Backoff
from driftwatch.streaming.consumer import BatchConsumer, OutMessage, Processed
from driftwatch.streaming.kafka import client_options
from driftwatch.streaming.metrics import TimedStore, WorkerMetrics
from driftwatch.streaming.ordering import event_time_key
from driftwatch.streaming.writer import GroupWriter

log = logging.getLogger(__name__)
_MESSAGE = msgspec.json.Encoder(enc_hook=str, order="sorted")
"""Dead letters and rule hits as JSON objects with sorted keys (times in RFC 3339)."""

T = TypeVar("T")


def client_id() -> str:
    """A Kafka client id naming this host and process."""
    return f"driftwatch-{socket.gethostname()}-{os.getpid()}"


def open_store_waiting(settings: Settings) -> Store:
    """Open and migrate the configured store; while a ClickHouse *server* does not
    answer, wait with back-off instead of exiting (no crash loop). An embedded (chdb)
    store that cannot be opened is an error at once."""
    backoff = Backoff(initial_s=0.5, max_s=settings.store_retry_max_s)
    while True:
        try:
            return store_from(settings)
        except StoreError as exc:
            if settings.store_dsn.startswith("chdb://"):
                raise
            delay = backoff.next()
            log.warning("ClickHouse unavailable at start-up, retrying in %.1fs: %s", delay, exc)
            time.sleep(delay)


def _retrieve_cf(future: Future[Any]) -> None:
    """Mark an insert's exception as retrieved (``durable`` raises it when awaited)."""
    if not future.cancelled():
        future.exception()


Held = list[tuple[str, Mapping[str, Sequence[Any]]]]
Written = tuple[ScoredBatch, str, Held]
"""What the writer writes for one batch: its parsed events, their source, held rows."""


def _written_rows(item: Written) -> int:
    batch, _, held = item
    return len(batch.events) + len(batch.rejected) + sum(
        len(next(iter(columns.values()), ())) for _, columns in held
    )


def merge_held(helds: Iterable[Held]) -> Held:
    """Held inserts of several batches as one insert per table and column list.

    >>> a = [("rule_hits", {"id": [1], "rule": ["x"]})]
    >>> b = [("rule_hits", {"id": [2, 3], "rule": ["y", "z"]}), ("t", {"v": [0]})]
    >>> merge_held([a, b])
    [('rule_hits', {'id': [1, 2, 3], 'rule': ['x', 'y', 'z']}), ('t', {'v': [0]})]
    """
    merged: dict[tuple[str, tuple[str, ...]], dict[str, list[Any]]] = {}
    for held in helds:
        for table, columns in held:
            into = merged.setdefault((table, tuple(columns)), {c: [] for c in columns})
            for name, values in columns.items():
                into[name].extend(values)
    return [(table, columns) for (table, _), columns in merged.items()]


class HeldInserts(Store):
    """The same store, except that inserts into ``tables`` made inside :meth:`hold`
    are held back and returned instead of run.

    Given to the rule stage, so that evaluating a batch never waits for ClickHouse:
    the held rows are written with the batch's events by the group writer, before the
    batch's offsets are committed (the inserts are idempotent, so a retried batch may
    insert them again).
    """

    def __init__(self, store: Store, tables: Sequence[str]) -> None:
        super().__init__(store.client, store.database)
        self._lock = store._lock
        self.inner = store
        self.tables = frozenset(tables)
        self._held: Held | None = None

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        if self._held is None or table not in self.tables:
            return self.inner.insert_columns(table, columns)
        names = list(columns)
        n = len(columns[names[0]]) if names else 0
        if n:
            self._held.append((table, columns))
        return n

    def hold(self, fn: Callable[..., T], *args: Any) -> tuple[T, Held]:
        """``fn(*args)`` and the inserts it made into ``tables`` (not run)."""
        self._held = []
        try:
            out = fn(*args)
            return out, self._held
        finally:
            self._held = None


GC_YOUNG_THRESHOLD = 1_000_000
"""Net container allocations between two young collections in a worker."""


def tune_collector() -> tuple[int, int, int]:
    """Tune CPython's cyclic garbage collector for a worker; return the old thresholds.

    A worker allocates millions of short-lived containers (Kafka records, batches)
    beside a large, slowly changing state: the rule windows, whose new entries are
    tuples that the collector scans once before it stops tracking them. With the
    default thresholds (a young collection every 700 allocations, full ones as the
    heap grows by a quarter) collection took about 13 % of a worker's time: 200,000
    events through the bench/stream.py worker ran at 17.4k events/s, 19.8k with the
    collector off. So the objects alive at start-up (modules, compiled rules) are
    frozen out of every collection and the young generation is collected only every
    million net allocations, which also scans the records in flight far less often:
    over the 200,000 events, 8 young collections took 1.5-1.9 us an event, against
    27 young and one middle collection taking 3.3-4.3 us an event every 50,000. Most
    of the containers die young by reference counting, so the memory held by
    uncollected cycles stays small. Cycles are still collected;
    :meth:`WorkerRuntime.close` undoes this.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    return old


class WorkerRuntime:
    """The state of one worker process.

    Parameters
    ----------
    settings : Settings
        Kafka, ClickHouse, topics, batch size and retry bounds.
    store : Store, optional
        An initialised store (default: :func:`~driftwatch.assemble.store_from`).
    extra_sinks : sequence of AlertSink
        Extra alert sinks (tests, demo); delivery sinks come from the settings.
    metrics : WorkerMetrics, optional
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        extra_sinks: Sequence[AlertSink] = (),
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()
        self.store: Store = TimedStore(store or open_store_waiting(settings), self.metrics)
        self.pipeline = build_pipeline(settings, self.store, extra_sinks=extra_sinks)
        self.held = HeldInserts(self.store, [HIT_TABLE])
        for stage in self.pipeline.event_stages:
            if isinstance(stage, RuleStage) and stage.store is self.store:
                stage.store = self.held
        self.is_leader: Callable[[], bool] = lambda: False
        self.consumer: BatchConsumer | None = None
        self.last_watermark: dt.datetime | None = None
        self.store_error = ""
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwatch-lane")
        self._writer: GroupWriter[Written] = GroupWriter(
            self._write,
            rows=_written_rows,
            max_rows=settings.batch_size,
            max_delay_s=settings.worker_flush_s,
        )
        self._closed = False
        self._warmed = False
        self._gc_thresholds = tune_collector()

    # -- plumbing ----------------------------------------------------------------------
    async def in_lane(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the pipeline thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._lane, functools.partial(fn, *args))

    def scored_consumer(self) -> BatchConsumer:
        """The batch consumer of the scored topic (not started)."""
        s = self.settings
        options = client_options(s)
        session_ms = int(s.kafka_session_timeout_s * 1000)
        consumer = AIOKafkaConsumer(
            group_id=s.consumer_group,
            client_id=client_id(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(300, session_ms // 4),
            # Short broker-side fetch wait: the event-time merge waits for the slowest
            # partition. Measured at 5k events/s on tansu: produce -> batch done p50
            # 260-290 ms with aiokafka's default 500 ms, 75 ms with 25 ms.
            fetch_max_wait_ms=25,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            **options,
        )
        producer = AIOKafkaProducer(
            client_id=client_id(),
            acks="all",
            enable_idempotence=False,
            linger_ms=2,
            **options,
        )
        self.consumer = BatchConsumer(
            consumer,
            producer,
            self.process_scored,
            topics=[s.topic_scored],
            max_records=s.batch_size,
            backoff=Backoff(initial_s=0.2, max_s=s.store_retry_max_s),
            stop_timeout_s=s.worker_stop_timeout_s,
            metrics=self.metrics,
        )
        return self.consumer

    # -- batches -----------------------------------------------------------------------
    async def process_scored(self, records: list[Any]) -> Processed:
        """Validate one batch of scored-topic records, run the rule layer and hand the
        rows to the group writer; return the dead letters and rule hits to publish, and
        the step that waits for (or, after a failure, retries) the batch's write."""
        topic = self.settings.topic_scored
        source = f"kafka:{topic}"
        raws = [r.value if r.value is not None else b"" for r in records]
        try:
            if not self._warmed:
                await self.in_lane(self._warm_up, raws)
            batch, insert, result, held = await self.in_lane(self._evaluate, raws, source)
        except StoreError as exc:
            self.store_error = str(exc)[:500]
            raise
        attempts = [asyncio.wrap_future(insert)]

        async def durable() -> None:
            """The batch's rows written: the group it went into, then fresh attempts."""
            step = attempts.pop() if attempts else asyncio.wrap_future(
                self._writer.submit((batch, source, held))
            )
            try:
                await step
            except StoreError as exc:
                self.store_error = str(exc)[:500]
                raise
            self.store_error = ""

        self._count(topic, result)
        return Processed(self._deadletters(records, result) + self._rule_hits(result), durable)

    def _evaluate(
        self, raws: list[bytes], source: str
    ) -> tuple[ScoredBatch, Future[None], BatchResult, Held]:
        """On the lane: parse, run the rule layer, hand the rows to the writer."""
        started = time.perf_counter()
        batch = self.pipeline.parse_events(raws)
        result, held = self.held.hold(self.pipeline.evaluate_events, batch, started)
        insert = self._writer.submit((batch, source, held))
        insert.add_done_callback(_retrieve_cf)
        return batch, insert, result, held

    def _write(self, group: list[Written]) -> None:
        """On the writer's thread: the events and rejections of several batches, then
        their held rule-stage rows, one insert per table and source."""
        for source in dict.fromkeys(src for _, src, _ in group):
            batches = [b for b, src, _ in group if src == source]
            self.pipeline.store_events(
                ScoredBatch(
                    [e for b in batches for e in b.events],
                    [r for b in batches for r in b.rejected],
                ),
                source,
            )
        for table, columns in merge_held(h for _, _, h in group):
            self.store.insert_columns(table, columns)

    def _warm_up(self, raws: Sequence[bytes]) -> None:
        """Before the first batch: fill the rule windows from ClickHouse with the history
        *before* that batch (re-delivered events are then evaluated live, so their hits
        are produced again rather than taken as already seen)."""
        times = [t for t in map(event_time_key, raws) if t != -math.inf]
        if not times:
            return
        stages = [s for s in self.pipeline.event_stages if hasattr(s, "warm_up")]
        if not stages or self.store.max_event_time() is None:  # nothing to warm up from
            self._warmed = True
            return
        until = dt.datetime.fromtimestamp(min(times), dt.UTC) - dt.timedelta(milliseconds=1)
        started = time.perf_counter()
        for stage in stages:
            try:
                n = stage.warm_up(self.store, until)
            except StoreError:
                raise  # retried with the batch
            except Exception:  # a warm-up bug must not stop ingestion: start empty
                log.exception("rule warm-up failed; rule windows start empty")
                continue
            log.info(
                "rule windows warmed up from ClickHouse",
                extra={"events": n, "until": until.isoformat(),
                       "seconds": round(time.perf_counter() - started, 3)},
            )
        self._warmed = True

    async def process_labels(self, raws: Sequence[bytes], source: str = "") -> BatchResult:
        """Validate and store one batch of labels, retrying (with back-off, for as long
        as it takes) while ClickHouse is unavailable."""
        topic = self.settings.topic_labels
        backoff = Backoff(initial_s=0.2, max_s=self.settings.store_retry_max_s)
        while True:
            try:
                result = await self.in_lane(
                    self.pipeline.process_labels, list(raws), source or f"kafka:{topic}"
                )
            except StoreError as exc:
                self.store_error = str(exc)[:500]
                self.metrics.store_errors.labels(operation="labels").inc()
                delay = backoff.next()
                log.warning("labels: store failed, retrying in %.2fs: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            self.store_error = ""
            self.metrics.events_in.labels(topic=topic).inc(len(raws))
            self._count(topic, result, stored=len(raws) - len(result.rejected))
            return result

    def _count(self, topic: str, result: BatchResult, stored: int | None = None) -> None:
        m = self.metrics
        m.events_out.labels(topic=topic).inc(result.accepted if stored is None else stored)
        reasons: dict[str, int] = defaultdict(int)
        for r in result.rejected:
            reasons[r.reason] += 1
        for reason, n in reasons.items():
            m.events_rejected.labels(topic=topic, reason=reason).inc(n)
        m.count_rule_hits(result.rule_hits)
        for stage in self.pipeline.event_stages:
            if isinstance(stage, RuleStage):
                m.set_rule_coverage(stage.coverage.rules)
        m.count_alerts(result.alerts)

    def _deadletters(self, records: list[Any], result: BatchResult) -> list[OutMessage]:
        if not result.rejected:
            return []
        where: dict[bytes, list[Any]] = defaultdict(list)
        for r in records:
            where[r.value if r.value is not None else b""].append(r)
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        out = []
        for rej in result.rejected:
            found = where.get(rej.raw)
            rec = found.pop(0) if found else None
            body = {
                "reason": rej.reason,
                "detail": rej.detail,
                "kind": rej.kind,
                "event_id": rej.event_id,
                "raw": rej.raw.decode("utf-8", "replace"),
                "topic": rec.topic if rec else self.settings.topic_scored,
                "partition": rec.partition if rec else None,
                "offset": rec.offset if rec else None,
                "rejected_at": now,
            }
            out.append(
                OutMessage(
                    self.settings.topic_deadletter,
                    _MESSAGE.encode(body),
                    rec.key if rec else None,
                )
            )
        self.metrics.deadletters.inc(len(out))
        return out

    def _rule_hits(self, result: BatchResult) -> list[OutMessage]:
        out = []
        for hit in result.rule_hits:
            key = hit.get("event_id")
            out.append(
                OutMessage(
                    self.settings.topic_rule_hits,
                    _MESSAGE.encode(hit),
                    str(key).encode() if key else None,
                )
            )
        return out

    # -- timers ------------------------------------------------------------------------
    async def monitor_tick(self, watermark: dt.datetime | None = None) -> list[Alert]:
        """Run the monitors (clock stages) up to ``watermark``; on the leader only.

        The default watermark is the newest event time in ClickHouse — written by every
        worker of the group — minus the allowed lateness. Nothing runs while the
        watermark has not moved.
        """
        started = time.perf_counter()
        try:
            if watermark is None:
                newest = await self.in_lane(self.store.max_event_time)
                if newest is None:
                    return []
                watermark = newest - self.pipeline.lateness
            if self.last_watermark is not None and watermark <= self.last_watermark:
                return []
            alerts = await self.in_lane(self.pipeline.advance, watermark)
        except StoreError as exc:
            self.store_error = str(exc)[:500]
            self.metrics.store_errors.labels(operation="monitor").inc()
            log.warning("monitor tick skipped, store unavailable: %s", exc)
            return []
        self.last_watermark = watermark
        self.metrics.count_alerts(alerts)
        self.metrics.monitor_seconds.observe(time.perf_counter() - started)
        return alerts

    async def delivery_tick(self) -> None:
        """Retry pending alert deliveries and re-post firing alerts (every worker)."""
        from driftwatch.alerts.outbox import tick_all

        try:
            await self.in_lane(tick_all, self.pipeline.sinks)
        except Exception as exc:  # a delivery problem must never stop the worker
            log.warning("alert delivery tick failed: %s", exc)

    # -- health ------------------------------------------------------------------------
    async def health(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/healthz``.

        ``ok``: ClickHouse answers and the consumer runs unpaused. ``degraded``: the
        worker is alive but waiting (store down, retrying) — still HTTP 200, because a
        restart would not help and recovery needs none. ``down`` (HTTP 503): the
        consumer is not running.
        """
        try:
            reachable = await asyncio.wait_for(asyncio.to_thread(self.store.ping), 3.0)
        except TimeoutError:
            reachable = False
        consumer = self.consumer.status() if self.consumer else {"state": "not started"}
        leader = bool(self.is_leader())
        self.metrics.leader.set(1 if leader else 0)
        running = consumer.get("state") in ("running", "retrying")
        healthy = reachable and consumer.get("state") == "running" and not self.store_error
        status = "ok" if healthy else ("degraded" if running else "down")
        body = {
            "status": status,
            "store": {"reachable": reachable, "last_error": self.store_error},
            "consumer": consumer,
            "leader": leader,
            "watermark": self.last_watermark.isoformat() if self.last_watermark else None,
        }
        return (200 if running else 503), body

    def metrics_text(self) -> bytes:
        """This worker's metrics plus the process-wide default registry."""
        return self.metrics.render() + generate_latest(REGISTRY)

    def close(self) -> None:
        """Close the alert sinks and the pipeline thread (once)."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            self._lane.submit(self.pipeline.close).result(timeout=30)
        except Exception as exc:
            log.warning("closing the pipeline failed: %s", exc)
        self._lane.shutdown(wait=True)
        gc.unfreeze()
        gc.set_threshold(*self._gc_thresholds)


class IngestService(Service):
    """The scored-topic batch consumer as a service of the faust app.

    Started with the app; on stop (SIGTERM) it finishes and commits the batch in
    flight, leaves the group and closes the runtime. If the consumer fails with an
    error that is not retryable, the service crashes, which stops the worker.
    """

    def __init__(self, runtime: WorkerRuntime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self._task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        consumer = self.runtime.scored_consumer()
        self._task = asyncio.ensure_future(self._run(consumer))

    async def _run(self, consumer: BatchConsumer) -> None:
        try:
            await consumer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the scored-topic consumer failed")
            await self.crash(exc)

    async def on_stop(self) -> None:
        consumer = self.runtime.consumer
        if consumer is not None:
            consumer.request_stop()
        if self._task is not None:
            done, _ = await asyncio.wait(
                [self._task], timeout=self.runtime.settings.worker_stop_timeout_s + 15
            )
            if not done:
                self._task.cancel()
        await asyncio.to_thread(self.runtime.close)
