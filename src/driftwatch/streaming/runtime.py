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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2
from mode import Service
from prometheus_client import REGISTRY, generate_latest

from driftwatch.alerts.lifecycle import StoreAlertBook
from driftwatch.alerts.model import Alert
from driftwatch.alerts.sinks import AlertSink
from driftwatch.assemble import build_pipeline, store_from
from driftwatch.backoff import Backoff
from driftwatch.errors import StoreError
from driftwatch.events import ScoredBatch, ScoredTransaction
from driftwatch.pipeline import BatchResult
from driftwatch.rules.history import stored_events
from driftwatch.rules.stage import HIT_TABLE, RuleStage
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.consumer import BatchConsumer, OutMessage, Processed
from driftwatch.streaming.delivery import DeliveryThread
from driftwatch.streaming.kafka import client_options
from driftwatch.streaming.metrics import TimedStore, WorkerMetrics
from driftwatch.streaming.ordering import event_time_key
from driftwatch.streaming.progress import PartitionProgress, group_low_watermark
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


def no_election() -> bool:
    """The default leader check of a runtime outside a faust app (never elected; the
    caller of :meth:`WorkerRuntime.monitor_tick` leads while it calls it)."""
    return False


def _epoch(t: dt.datetime) -> float:
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


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
            rows=_written_rows,
            max_rows=settings.batch_size,
            max_delay_s=settings.worker_flush_s,
        )
        self._closed = False
        self._warm_parts: set[TopicPartition] = set()
        self.warmed_events = 0
        """Stored events fed into the rule windows by warm-ups so far."""
        self._late_seen = 0
        self._passes_seen = 0
        self._detector_errors_seen: dict[str, int] = {}
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
        last = {TopicPartition(r.topic, r.partition): r.value for r in records}
        newest = {tp: event_time_key(value) for tp, value in last.items()}
        try:
            cold = self._cold_partitions(records)
            if cold:
                await self.in_lane(self._warm_up, cold)
            batch, insert, result, held = await self.in_lane(self._evaluate, raws, source)
        except StoreError as exc:
            self.store_error = str(exc)[:500]
            raise
        guard = self.pipeline.time_guard
        plausible = None if guard is None or guard.clock_ms is None else guard.clock_ms / 1000
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
            self.progress.record(newest, plausible)

        self._count(topic, result)
        return Processed(self._deadletters(records, result) + self._rule_hits(result), durable)

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

    def _cold_partitions(self, records: list[Any]) -> dict[TopicPartition, list[bytes]]:
        """The records of partitions this worker has not warmed its rule windows for
        since they were assigned (every partition, on the first batch)."""
        if self.consumer is not None:  # revoked partitions are warmed again if they return
            self._warm_parts &= set(self.consumer.assignment())
        cold: dict[TopicPartition, list[bytes]] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in self._warm_parts:
                cold.setdefault(tp, []).append(r.value if r.value is not None else b"")
        return cold

    def _partition_filter(
        self, parts: Iterable[TopicPartition]
    ) -> Callable[[ScoredTransaction], bool] | None:
        """Whether a stored event belongs to one of ``parts``: its ``card_id`` key
        through Kafka's default partitioner (the scored topic's contract: keyed by
        card). None (keep every event) when the partition count is unknown."""
        wanted = {tp.partition for tp in parts}
        topic = self.settings.topic_scored
        kafka = getattr(self.consumer, "consumer", None)
        counts = kafka.partitions_for_topic(topic) if kafka is not None else None
        if not counts:
            return None
        n = len(counts)

        def keep(e: ScoredTransaction) -> bool:
            return ((murmur2(e.card_id.encode()) & 0x7FFFFFFF) % n) in wanted

        return keep

    def _warm_up(self, cold: Mapping[TopicPartition, Sequence[bytes]]) -> None:
        """Before the first batch of newly assigned partitions: fill the rule windows
        with the stored history of those partitions' cards *before* that batch
        (re-delivered events are then evaluated live, so their hits are produced again
        rather than taken as already seen). Reads the rule horizon in pages of
        ``stored_events`` (bounded memory) and feeds only the partitions' events."""
        times = [t for raws in cold.values() for t in map(event_time_key, raws)
                 if t != -math.inf]
        stages = [s for s in self.pipeline.event_stages if isinstance(s, RuleStage)]
        if not times or not stages or self.store.max_event_time() is None:
            self._warm_parts |= set(cold)  # nothing to warm up from
            return
        until = dt.datetime.fromtimestamp(min(times), dt.UTC)
        keep = self._partition_filter(cold)
        started = time.perf_counter()
        for stage in stages:
            start = until - dt.timedelta(milliseconds=stage.ruleset.horizon_ms)
            n = 0
            try:
                for batch in stored_events(self.store, start, until):
                    fed = batch if keep is None else [e for e in batch if keep(e)]
                    stage.evaluator.feed(fed)
                    n += len(fed)
                    self.warmed_events += len(fed)
            except StoreError:
                raise  # retried with the batch
            except Exception:  # a warm-up bug must not stop ingestion: start empty
                log.exception("rule warm-up failed; rule windows start empty")
                continue
            log.info(
                "rule windows warmed up from ClickHouse",
                extra={"events": n, "until": until.isoformat(),
                       "partitions": sorted(tp.partition for tp in cold),
                       "seconds": round(time.perf_counter() - started, 3)},
            )
        self._warm_parts |= set(cold)

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
    async def in_monitor_lane(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the monitor's own thread (never the ingest lane)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._monitor_lane, functools.partial(fn, *args))

    def partition_bound(self) -> tuple[bool, float | None]:
        """The low watermark of this worker's partitions (see
        :class:`~driftwatch.streaming.progress.PartitionProgress`)."""
        if self.consumer is None:
            return True, None
        lag: dict[Any, int] = dict(self.consumer.lag())
        return self.progress.low_watermark(self.consumer.assignment(), lag)

    def progress_rows(self) -> dict[str, list[Any]]:
        """This worker's rows of ``{db}.partition_progress``: per owned partition whose
        lag is known (fetched at least once), its newest stored event time and lag."""
        cols: dict[str, list[Any]] = {c: [] for c in (
            "consumer_group", "topic", "partition", "event_time", "lag", "worker",
            "updated_at")}
        if self.consumer is None:
            return cols
        now = dt.datetime.now(dt.UTC)
        me = client_id()
        for tp, behind in sorted(self.consumer.lag().items()):
            t = self.progress.times.get(tp)
            cols["consumer_group"].append(self.settings.consumer_group)
            cols["topic"].append(tp.topic)
            cols["partition"].append(tp.partition)
            cols["event_time"].append(None if t is None
                                      else dt.datetime.fromtimestamp(t, dt.UTC))
            cols["lag"].append(behind)
            cols["worker"].append(me)
            cols["updated_at"].append(now)
        return cols

    async def report_progress(self) -> int:
        """Write :meth:`progress_rows` (every worker, every tick; never on the ingest
        lane); returns the rows written (0 when the store is unavailable)."""
        cols = self.progress_rows()
        if not cols["partition"]:
            return 0
        try:
            return await asyncio.to_thread(self.store.insert_columns,
                                           "partition_progress", cols)
        except StoreError as exc:
            log.warning("partition progress not written: %s", exc)
            return 0

    def group_bound(self) -> tuple[bool, float | None]:
        """The group-wide low watermark over every worker's partitions, from
        ``{db}.partition_progress`` (see
        :func:`~driftwatch.streaming.progress.group_low_watermark`)."""
        rows = self.store.query(
            "SELECT partition, event_time, lag, updated_at FROM {db}.partition_progress "
            "FINAL WHERE consumer_group = {g:String} AND topic = {t:String}",
            {"g": self.settings.consumer_group, "t": self.settings.topic_scored},
        )
        return group_low_watermark(
            ((p, None if t is None else _epoch(t), int(lag), _epoch(u))
             for p, t, lag, u in rows),
            time.time(), self.settings.progress_idle_s,
        )

    def monitor_watermark(self, newest: dt.datetime) -> dt.datetime:
        """The monitor's watermark from the newest stored event time: never later than
        the wall clock allows (``max_future_s``), minus the allowed lateness.

        Only events the time guard accepted are stored, so one event dated 2099 cannot
        move it; the cap keeps even a row stored before the guard from dragging it.
        """
        cap = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.settings.max_future_s)
        return min(newest, cap) - self.pipeline.lateness

    async def monitor_tick(self, watermark: dt.datetime | None = None) -> list[Alert]:
        """Run the monitors (clock stages) up to ``watermark``; on the leader only.

        The default watermark is :meth:`monitor_watermark` of the newest event time in
        ClickHouse (written by every worker of the group), held back to the low
        watermark of this worker's partitions (:meth:`partition_bound`) and to the
        group-wide one every worker reports (:meth:`group_bound`; a partition whose
        owner has not reported for ``progress_idle_s`` holds nothing back). Rows that
        land after a pass ran past them are not re-run: they are counted by the later
        passes whose windows still cover them. A tick runs at most
        ``monitor_max_passes_per_tick`` passes, on the monitor's own thread: ingest
        goes on meanwhile, and a monitor that is behind catches up over the next ticks
        (``monitor_behind`` says by how many passes; ``/healthz`` reports it).
        """
        started = time.perf_counter()
        try:
            if not self.leading:  # a new term: take the alert state over from the store
                if self.book is not None:
                    n = await self.in_monitor_lane(self.book.take_over)
                    log.info("leader: alert state taken over", extra={"firing": n})
                self.leading = True
            if watermark is None:
                newest = await self.in_monitor_lane(self.store.max_event_time)
                may_advance, bound = self.partition_bound()
                group_ok, group = await self.in_monitor_lane(self.group_bound)
                if newest is None or not may_advance or not group_ok:
                    return []
                for b in (bound, group):
                    if b is not None:
                        newest = min(newest, dt.datetime.fromtimestamp(b, dt.UTC))
                watermark = self.monitor_watermark(newest)
            if (self.last_watermark is not None and watermark <= self.last_watermark
                    and not self.monitor_behind):
                return []
            alerts = await self.in_monitor_lane(self.pipeline.advance, watermark)
        except StoreError as exc:
            self.store_error = str(exc)[:500]
            self.metrics.store_errors.labels(operation="monitor").inc()
            log.warning("monitor tick skipped, store unavailable: %s", exc)
            return []
        before = self._monitor_passes()
        self.monitor_behind = sum(
            stage.behind(watermark) for stage in self.pipeline.clock_stages
            if hasattr(stage, "behind")
        )
        self.metrics.monitor_behind.set(self.monitor_behind)
        self.metrics.monitor_passes.inc(max(0, before - self._passes_seen))
        self._passes_seen = before
        self._count_detector_errors()
        if not self.monitor_behind:  # the watermark /healthz shows is one fully evaluated
            self.last_watermark = watermark
        self.metrics.count_alerts(alerts)
        self.metrics.monitor_seconds.observe(time.perf_counter() - started)
        return alerts

    def _count_detector_errors(self) -> None:
        for stage in self.pipeline.clock_stages:
            for name, n in getattr(stage, "detector_errors", {}).items():
                seen = self._detector_errors_seen.get(name, 0)
                if n > seen:
                    self.metrics.stage_errors.labels(reason=f"detector_error:{name}").inc(
                        n - seen
                    )
                    self._detector_errors_seen[name] = n

    def _monitor_passes(self) -> int:
        return sum(int(getattr(stage, "passes", 0)) for stage in self.pipeline.clock_stages)

    async def delivery_tick(self) -> None:
        """Make sure the delivery thread runs and wake it (every worker, every tick).

        Retries, re-posts and deferred sends all happen on that thread, with each
        sink's own back-off: this never waits for Alertmanager.
        """
        self.check_leadership()
        await self.report_progress()
        self.start_delivery()
        self.delivery.wake()

    def check_leadership(self) -> bool:
        """Step down when the group's election says this worker no longer leads (its
        book then stops writing detector alerts; the next term reloads them); returns
        whether it leads."""
        if self.leading and self.is_leader is not no_election and not self.is_leader():
            self.leading = False
            log.info("leader: stepped down; detector alerts left to the new leader")
        return self.leading

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
        self.runtime.start_delivery()
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
        """Stop within ``worker_stop_timeout_s`` in every state: the consumer finishes
        and commits what was stored until the deadline (it gives up a batch still being
        stored or retried then); the runtime closes with what time is left."""
        started = time.monotonic()
        limit = self.runtime.settings.worker_stop_timeout_s
        consumer = self.runtime.consumer
        if consumer is not None:
            consumer.request_stop()
        if self._task is not None:
            # the consumer leaves the group after its deadline: a little slack for that
            done, _ = await asyncio.wait([self._task], timeout=limit + 2.0)
            if not done:
                self._task.cancel()
                await asyncio.wait([self._task], timeout=1.0)
        left = max(1.0, limit - (time.monotonic() - started))
        await asyncio.to_thread(self.runtime.close, left)
