"""The leader's duties of a worker runtime: the monitor tick, its watermark, and
partition progress (a mixin of :class:`~driftwatch.streaming.runtime.WorkerRuntime`).

Every worker reports its partitions' progress; the leader takes the alert state over
at the start of its term and runs the monitors up to the group's low watermark.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from driftwatch.alerts.lifecycle import StoreAlertBook
from driftwatch.alerts.model import Alert
from driftwatch.errors import StoreError
from driftwatch.pipeline import Pipeline
from driftwatch.rules.storeside import StoreSideRules
from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.consumer import BatchConsumer
from driftwatch.streaming.messages import publish
from driftwatch.streaming.metrics import WorkerMetrics
from driftwatch.streaming.outputs import rule_hit_messages
from driftwatch.streaming.process import client_id
from driftwatch.streaming.progress import PartitionProgress, group_low_watermark

log = logging.getLogger(__name__)
T = TypeVar("T")


def no_election() -> bool:
    """The default leader check of a runtime outside a faust app (never elected; the
    caller of :meth:`WorkerRuntime.monitor_tick` leads while it calls it)."""
    return False


def _epoch(t: dt.datetime) -> float:
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


class MonitorDuties:
    """The monitor tick and partition progress of a worker runtime (a mixin)."""

    settings: Settings
    store: Store
    pipeline: Pipeline
    metrics: WorkerMetrics
    consumer: BatchConsumer | None
    progress: PartitionProgress
    book: StoreAlertBook | None
    is_leader: Callable[[], bool]
    leading: bool
    last_watermark: dt.datetime | None
    monitor_behind: int
    store_error: str
    _monitor_lane: ThreadPoolExecutor
    _passes_seen: int
    _detector_errors_seen: dict[str, int]
    _missing_since: dict[int, float]

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
        lag is known (fetched at least once), its lag and its newest stored event time
        while it is active (see :meth:`PartitionProgress.reported`)."""
        cols: dict[str, list[Any]] = {c: [] for c in (
            "consumer_group", "topic", "partition", "event_time", "lag", "worker",
            "updated_at")}
        if self.consumer is None:
            return cols
        now = dt.datetime.now(dt.UTC)
        me = client_id()
        idle_s = self.settings.progress_idle_s
        for tp, behind in sorted(self.consumer.lag().items()):
            t = self.progress.reported(tp, behind, idle_s)
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
        :func:`~driftwatch.streaming.progress.group_low_watermark`); it does not
        advance while a partition of the topic has never reported (its owner has not
        fetched it yet: at start-up, in a rebalance) -- for at most ``progress_idle_s``
        from when this leader first saw it missing (a partition without any data)."""
        rows = self.store.query(
            "SELECT partition, event_time, lag, updated_at FROM {db}.partition_progress "
            "FINAL WHERE consumer_group = {g:String} AND topic = {t:String}",
            {"g": self.settings.consumer_group, "t": self.settings.topic_scored},
        )
        now = time.time()
        if self._unreported({int(r[0]) for r in rows}, now):
            return False, None
        return group_low_watermark(
            ((p, None if t is None else _epoch(t), int(lag), _epoch(u))
             for p, t, lag, u in rows),
            now, self.settings.progress_idle_s,
        )

    def _unreported(self, reported: set[int], now: float) -> bool:
        """Whether a partition of the scored topic (per the consumer's metadata) has
        no progress row yet and has been missing for less than ``progress_idle_s``."""
        kafka = getattr(self.consumer, "consumer", None)
        counts = kafka.partitions_for_topic(self.settings.topic_scored) if kafka else None
        missing = set(counts or ()) - reported
        since = self._missing_since
        for part in list(since):
            if part not in missing:
                del since[part]
        for part in missing:
            since.setdefault(part, now)
        return any(now - since[part] < self.settings.progress_idle_s for part in missing)

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
                for stage in self.pipeline.clock_stages:
                    if hasattr(stage, "take_over"):
                        n = await self.in_monitor_lane(stage.take_over)
                        log.info("leader: store-side rules taken over", extra={"hits": n})
                self.leading = True
            idle_to: dt.datetime | None = None
            if watermark is None:
                newest = await self.in_monitor_lane(self.store.max_event_time)
                may_advance, bound = self.partition_bound()
                group_ok, group = await self.in_monitor_lane(self.group_bound)
                if newest is None or not may_advance or not group_ok:
                    return []
                if bound is None and group is None:  # every partition idle: all stored
                    idle_to = self.monitor_watermark(newest) + self.pipeline.lateness
                for b in (bound, group):
                    if b is not None:
                        newest = min(newest, dt.datetime.fromtimestamp(b, dt.UTC))
                watermark = self.monitor_watermark(newest)
            store_due = self._idle_store_rules(idle_to)
            if (self.last_watermark is not None and watermark <= self.last_watermark
                    and not self.monitor_behind and not store_due):
                return []
            alerts = await self.in_monitor_lane(self.pipeline.advance, watermark)
            await self.publish_store_hits()
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

    def _idle_store_rules(self, idle_to: dt.datetime | None) -> bool:
        """Let the store-side rules evaluate up to ``idle_to`` -- the newest stored
        event, when every partition of the group is idle (nothing is arriving that the
        allowed lateness would wait for) -- instead of the watermark; whether they
        have something to evaluate there."""
        due = False
        for stage in self.pipeline.clock_stages:
            if isinstance(stage, StoreSideRules):
                stage.idle_until = idle_to
                due = due or (idle_to is not None and bool(stage.behind(idle_to)))
        return due

    async def publish_store_hits(self) -> int:
        """Publish the hits the store-side rules stored in the last passes to the
        rule-hits topic, as a batch's in-stream hits are (they are in ``rule_hits``
        already: a failed publish loses only the message); returns how many."""
        rows = [row for stage in self.pipeline.clock_stages if hasattr(stage, "take_hits")
                for row in stage.take_hits()]
        if not rows:
            return 0
        self.metrics.count_rule_hits(rows)
        if self.consumer is None:
            return 0
        try:
            await publish(self.consumer.producer,
                          rule_hit_messages(rows, self.settings.topic_rule_hits))
        except Exception as exc:  # the hits are stored; the topic is a notification
            self.metrics.kafka_errors.labels(operation="publish").inc()
            log.warning("store-side rule hits not published: %s", exc)
            return 0
        return len(rows)

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

    def check_leadership(self) -> bool:
        """Step down when the group's election says this worker no longer leads (its
        book then stops writing detector alerts; the next term reloads them); returns
        whether it leads."""
        if self.leading and self.is_leader is not no_election and not self.is_leader():
            self.leading = False
            log.info("leader: stepped down; detector alerts left to the new leader")
        return self.leading
