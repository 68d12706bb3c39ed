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
``worker_flush_s`` as one insert per table on a thread of its own. The rule stage's
findings then go to the alert book on the alert lane (a third thread: opening a rule
alert reads its hits back from ClickHouse). Rule hits are published without waiting
for either; the batch's offsets are committed only once its rows are written and its
findings are in the alert book (:class:`~driftwatch.streaming.consumer.Processed`).
The consumer meanwhile fetches and evaluates the next batches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gc
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY, generate_latest

from driftwatch.alerts.lifecycle import StoreAlertBook
from driftwatch.alerts.sinks import AlertSink
from driftwatch.assemble import build_pipeline
from driftwatch.backoff import Backoff
from driftwatch.errors import StoreError
from driftwatch.events import ScoredBatch
from driftwatch.pipeline import BatchResult
from driftwatch.rules.stage import HIT_TABLE, RuleStage
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.consumer import BatchConsumer
from driftwatch.streaming.delivery import DeliveryThread
from driftwatch.streaming.held import HeldInserts, Written, merge_held, written_rows
from driftwatch.streaming.kafka import client_options
from driftwatch.streaming.messages import Processed
from driftwatch.streaming.metrics import TimedStore, WorkerMetrics
from driftwatch.streaming.monitoring import MonitorDuties, no_election
from driftwatch.streaming.ordering import event_time_key
from driftwatch.streaming.outputs import deadletter_messages, rule_hit_messages
from driftwatch.streaming.process import client_id, open_store_waiting, tune_collector
from driftwatch.streaming.progress import PartitionProgress
from driftwatch.streaming.warmup import PartitionWarmUp
from driftwatch.streaming.writer import GroupWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


def _retrieve_cf(future: Future[Any]) -> None:
    """Mark an insert's exception as retrieved (``durable`` raises it when awaited)."""
    if not future.cancelled():
        future.exception()



class WorkerRuntime(MonitorDuties):
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
        self.pipeline = build_pipeline(settings, self.store, extra_sinks=extra_sinks,
                                       workers=True)
        self.held = HeldInserts(self.store, [HIT_TABLE])
        for stage in self.pipeline.event_stages:
            if isinstance(stage, RuleStage) and stage.store is self.store:
                stage.store = self.held
        self.is_leader: Callable[[], bool] = no_election
        self.leading = False
        """Whether this worker writes detector alerts: set by its first monitor tick
        (which takes the alert state over from the store), cleared when the group's
        election says it no longer leads (:meth:`check_leadership`)."""
        book = self.pipeline.alert_book
        self.book = book if isinstance(book, StoreAlertBook) else None
        if self.book is not None:
            self.book.leads = lambda: self.leading
        self.consumer: BatchConsumer | None = None
        self.last_watermark: dt.datetime | None = None
        self.store_error = ""
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwatch-lane")
        # The monitors and alert delivery run off the ingest lane: a pass (or a
        # black-holed Alertmanager) never holds up a batch.
        self._monitor_lane = ThreadPoolExecutor(1, thread_name_prefix="driftwatch-monitor")
        self.monitor_behind = 0
        self.progress = PartitionProgress()
        for clock in self.pipeline.clock_stages:
            if hasattr(clock, "max_passes"):
                clock.max_passes = settings.monitor_max_passes_per_tick
        self.delivery = DeliveryThread(
            self.pipeline.sinks, settings.worker_tick_s,
            on_tick=lambda: self.metrics.outbox_pending.set(self.outbox_pending()),
        )
        for sink in self.pipeline.sinks:
            if hasattr(sink, "deferred"):
                sink.deferred = True
        self._writer: GroupWriter[Written] = GroupWriter(
            self._write,
            rows=written_rows,
            max_rows=settings.batch_size,
            max_delay_s=settings.worker_flush_s,
        )
        # Rule findings go to the alert book on a lane of their own, once their batch's
        # rows are written: the rule hits are published before, and the next batches'
        # rows are written meanwhile. The batch is committed after both.
        self._alerter: GroupWriter[BatchResult] = GroupWriter(
            self._raise_alerts,
            rows=lambda r: max(1, len(r.findings)),
            max_rows=settings.batch_size,
            max_delay_s=0.0,
            name="driftwatch-alerts",
        )
        self._closed = False
        self.warm = PartitionWarmUp(
            self.store,
            [s for s in self.pipeline.event_stages if isinstance(s, RuleStage)],
            settings.topic_scored,
            page=settings.rule_warmup_page,
            max_s=settings.rule_warmup_max_s,
        )
        self._late_seen = 0
        self._passes_seen = 0
        self._detector_errors_seen: dict[str, int] = {}
        self._missing_since: dict[int, float] = {}
        """Partitions with no progress row yet: when this worker first saw each missing."""
        self._consuming_since: float | None = None
        self._stage_errors_seen: dict[str, int] = {}
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
        self._consuming_since = time.monotonic()
        return self.consumer

    # -- batches -----------------------------------------------------------------------
    async def process_scored(self, records: list[Any]) -> Processed:
        """Validate one batch of scored-topic records, run the rule layer and hand the
        rows to the group writer; return the dead letters and rule hits to publish, and
        the step that waits for (or, after a failure, retries) the batch's write."""
        topic = self.settings.topic_scored
        source = f"kafka:{topic}"
        raws = [r.value if r.value is not None else b"" for r in records]
        last = {(r.topic, r.partition): r.value for r in records}  # plain tuples per record
        newest = {TopicPartition(*tp): event_time_key(value) for tp, value in last.items()}
        try:
            assigned = None if self.consumer is None else self.consumer.assignment()
            cold = self.warm.cold(records, assigned)
            if cold:
                kafka = getattr(self.consumer, "consumer", None)
                await self.in_lane(self.warm.warm_up, cold, kafka)
            item, insert, result = await self.in_lane(self._evaluate, raws, source)
        except StoreError as exc:
            self.store_error = str(exc)[:500]
            raise
        guard = self.pipeline.time_guard
        plausible = None if guard is None or guard.clock_ms is None else guard.clock_ms / 1000
        attempts = [asyncio.wrap_future(insert)]

        async def durable() -> None:
            """The batch's rows written: the group it went into, then fresh attempts."""
            step = attempts.pop() if attempts else asyncio.wrap_future(
                self._writer.submit(item)
            )
            try:
                await step
                if result.findings:  # after the rows: the book reads the batch's hits
                    await asyncio.wrap_future(self._alerter.submit(result))
            except StoreError as exc:
                self.store_error = str(exc)[:500]
                raise
            self.store_error = ""
            self.progress.record(newest, plausible)

        self._count(topic, result)
        dead = deadletter_messages(records, result, source_topic=topic,
                                   topic=self.settings.topic_deadletter)
        self.metrics.deadletters.inc(len(dead))
        hits = rule_hit_messages(result.rule_hits, self.settings.topic_rule_hits)
        return Processed(dead + hits, durable)

    @property
    def warmed_events(self) -> int:
        """Stored events fed into the rule windows by warm-ups so far."""
        return self.warm.events

    def _count_guard(self, topic: str) -> None:
        """Late events and stage errors since the last batch (pipeline stats → metrics)."""
        stats = self.pipeline.stats
        if stats.late > self._late_seen:
            self.metrics.events_late.labels(topic=topic).inc(stats.late - self._late_seen)
            self._late_seen = stats.late
        for reason, n in stats.stage_errors.items():
            seen = self._stage_errors_seen.get(reason, 0)
            if n > seen:
                self.metrics.stage_errors.labels(reason=reason).inc(n - seen)
                self._stage_errors_seen[reason] = n

    def _evaluate(
        self, raws: list[bytes], source: str
    ) -> tuple[Written, Future[None], BatchResult]:
        """On the lane: parse, run the rule layer (its findings wait for the alert
        lane), hand the rows to the writer."""
        started = time.perf_counter()
        batch = self.pipeline.parse_events(raws)
        result, held = self.held.hold(
            functools.partial(self.pipeline.evaluate_events, alert=False), batch, started
        )
        item: Written = (batch, source, held)
        insert = self._writer.submit(item)
        insert.add_done_callback(_retrieve_cf)
        return item, insert, result

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

    def _raise_alerts(self, results: list[BatchResult]) -> None:
        """On the alert lane: the findings of the batches whose rows are written, to
        the alert book in one update (which reads and writes ClickHouse: tens of
        milliseconds, a query per new rule alert) and the sinks."""
        findings = [f for r in results for f in r.findings]
        times = [r.event_time for r in results if r.event_time is not None]
        if findings and times:
            self.metrics.count_alerts(self.pipeline.alert(findings, max(times)))

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
        self._count_guard(topic)
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

    # -- timers ------------------------------------------------------------------------
    async def delivery_tick(self) -> None:
        """Make sure the delivery thread runs and wake it (every worker, every tick).

        Retries, re-posts and deferred sends all happen on that thread, with each
        sink's own back-off: this never waits for Alertmanager.
        """
        self.check_leadership()
        await self.report_progress()
        self.start_delivery()
        self.delivery.wake()

    def start_delivery(self) -> None:
        """Start the alert delivery thread (once)."""
        if not self._closed:
            self.delivery.start()

    def outbox_pending(self) -> int:
        """Alert states the delivery sinks hold undelivered (never waits for a post)."""
        return self.delivery.pending()

    # -- health ------------------------------------------------------------------------
    async def health(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/healthz``.

        ``ok``: ClickHouse answers, the consumer runs unpaused and nothing below holds.
        ``degraded`` (still HTTP 200: a restart would not help, recovery needs none):
        the store is down or retrying, or one of ``problems`` holds --
        ``consumer_stalled`` (lag > 0 and no batch finished for ``consumer_stall_s``),
        ``monitor_behind`` (more than ``monitor_behind_passes`` passes due and not
        run), ``outbox_backlog`` (more than ``outbox_backlog`` alert states waiting).
        ``down`` (HTTP 503): the consumer is not running.
        """
        try:
            reachable = await asyncio.wait_for(asyncio.to_thread(self.store.ping), 3.0)
        except TimeoutError:
            reachable = False
        consumer = self.consumer.status() if self.consumer else {"state": "not started"}
        leader = bool(self.is_leader())
        self.metrics.leader.set(1 if leader else 0)
        running = consumer.get("state") in ("running", "retrying")
        problems = self.problems(consumer)
        healthy = (reachable and consumer.get("state") == "running" and not self.store_error
                   and not problems)
        status = "ok" if healthy else ("degraded" if running else "down")
        body = {
            "status": status,
            "problems": problems,
            "store": {"reachable": reachable, "last_error": self.store_error},
            "consumer": consumer,
            "leader": leader,
            "watermark": self.last_watermark.isoformat() if self.last_watermark else None,
            "monitor_behind_passes": self.monitor_behind,
            "outbox_pending": self.outbox_pending(),
        }
        return (200 if running else 503), body

    def problems(self, consumer: dict[str, Any]) -> list[str]:
        """The degraded states of ``/healthz`` that hold now (see :meth:`health`)."""
        s = self.settings
        out = []
        since = consumer.get("seconds_since_batch")
        if since is None and self._consuming_since is not None:
            since = time.monotonic() - self._consuming_since
        if consumer.get("lag", 0) > 0 and since is not None and since > s.consumer_stall_s:
            out.append("consumer_stalled")
        if self.monitor_behind > s.monitor_behind_passes:
            out.append("monitor_behind")
        if self.outbox_pending() > s.outbox_backlog:
            out.append("outbox_backlog")
        return out

    def metrics_text(self) -> bytes:
        """This worker's metrics plus the process-wide default registry."""
        return self.metrics.render() + generate_latest(REGISTRY)

    def close(self, timeout_s: float | None = None) -> None:
        """Close the alert sinks, the writer and the threads (once), within
        ``timeout_s`` (default ``worker_stop_timeout_s``) whatever state they are in: a
        step still running at the deadline (a stalled store, a black-holed
        Alertmanager) is left behind -- what it did not store is not committed."""
        if self._closed:
            return
        self._closed = True
        limit = self.settings.worker_stop_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self.delivery.stop(0.0)  # no new ticks; a post in flight is joined below
        self._writer.close(left())
        self._alerter.close(left())
        try:
            self._lane.submit(self.pipeline.close).result(timeout=left())
        except Exception as exc:
            log.warning("closing the pipeline failed or timed out: %s", exc)
        self._lane.shutdown(wait=False, cancel_futures=True)
        self._monitor_lane.shutdown(wait=False, cancel_futures=True)
        # a daemon thread; a post still in flight (a receiver that does not answer) is
        # not waited for: what it did not deliver stays pending in ClickHouse
        self.delivery.stop(min(1.0, left()))
        gc.unfreeze()
        gc.set_threshold(*self._gc_thresholds)

