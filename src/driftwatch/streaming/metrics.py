"""Prometheus metrics of one worker, served on its web port at ``/metrics``.

Each worker runtime has its own registry (so tests can run several in one process).

>>> m = WorkerMetrics()
>>> m.events_in.labels(topic="transactions.scored").inc(3)
>>> b"driftwatch_events_in_total" in m.render()
True
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from driftwatch.events import ScoredTransaction
from driftwatch.store.client import Store

__all__ = ["CONTENT_TYPE", "TimedStore", "WorkerMetrics"]

# The exposition content type without its charset (aiohttp sets the charset itself).
CONTENT_TYPE = "; ".join(
    p.strip() for p in CONTENT_TYPE_LATEST.split(";") if not p.strip().startswith("charset")
)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """The metric families of a worker (names start with ``driftwatch_``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.events_in = Counter(
            "driftwatch_events_in", "Payloads read from Kafka", ["topic"], registry=r
        )
        self.events_out = Counter(
            "driftwatch_events_stored", "Valid payloads stored in ClickHouse", ["topic"],
            registry=r,
        )
        self.events_rejected = Counter(
            "driftwatch_events_rejected",
            "Payloads rejected by validation (dead-lettered), by reason",
            ["topic", "reason"],
            registry=r,
        )
        self.deadletters = Counter(
            "driftwatch_deadletter_published", "Messages published to the dead-letter topic",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "driftwatch_batch_seconds",
            "Wall time of one batch: validate, store, rules, publish and commit",
            ["topic"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "driftwatch_batch_events", "Payloads per batch", ["topic"],
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000),
            registry=r,
        )
        self.insert_seconds = Histogram(
            "driftwatch_clickhouse_insert_seconds", "Duration of one ClickHouse insert",
            ["table"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "driftwatch_clickhouse_errors", "ClickHouse failures (each one retried)",
            ["operation"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "driftwatch_kafka_errors", "Kafka publish/commit failures", ["operation"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "driftwatch_consumer_lag",
            "Fetch high-water mark minus the next offset to process, per partition",
            ["topic", "partition"],
            registry=r,
        )
        self.consumer_paused = Gauge(
            "driftwatch_consumer_paused", "1 while fetching is paused for a retry", registry=r
        )
        self.assigned_partitions = Gauge(
            "driftwatch_assigned_partitions", "Partitions assigned to this worker", ["topic"],
            registry=r,
        )
        self.pending_records = Gauge(
            "driftwatch_pending_events",
            "Payloads processed (rule hits published) whose batch is not yet stored "
            "and committed",
            registry=r,
        )
        self.commits = Counter(
            "driftwatch_offset_commits", "Offset commits after a stored batch", registry=r
        )
        self.rule_hits = Counter(
            "driftwatch_rule_hits", "Rule hits published", ["rule_id"], registry=r
        )
        self.rule_field_coverage = Gauge(
            "driftwatch_rule_field_coverage",
            "Share of the events seen that carry the fields a rule needs to evaluate",
            ["rule_id"], registry=r,
        )
        self.alerts = Counter(
            "driftwatch_alerts", "Alert state changes", ["alertname", "status"], registry=r
        )
        self.monitor_seconds = Histogram(
            "driftwatch_monitor_pass_seconds", "Duration of one monitor tick on the leader",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.leader = Gauge(
            "driftwatch_leader", "1 on the worker that runs the monitors", registry=r
        )
        # hostile input (issue 20)
        self.events_late = Counter(
            "driftwatch_events_late", "Events stored behind the watermark (late, plausible)",
            ["topic"], registry=r,
        )
        self.stage_errors = Counter(
            "driftwatch_stage_errors",
            "Events a rule (or stage) raised on, by reason rule_error:<rule id>",
            ["reason"], registry=r,
        )
        self.monitor_passes = Counter(
            "driftwatch_monitor_passes", "Monitor passes run on this worker", registry=r
        )
        self.monitor_behind = Gauge(
            "driftwatch_monitor_behind_passes",
            "Monitor passes due at the watermark and not run yet", registry=r,
        )
        self.outbox_pending = Gauge(
            "driftwatch_outbox_pending", "Alert states waiting for delivery on this worker",
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)

    def count_rule_hits(self, hits: Sequence[Mapping[str, Any]]) -> None:
        """Count published rule hits by rule id (one ``labels`` lookup per rule)."""
        for rule_id, n in Tally(str(hit.get("rule_id", "")) for hit in hits).items():
            self.rule_hits.labels(rule_id=rule_id).inc(n)

    def set_rule_coverage(self, rules: Iterable[Any]) -> None:
        """Set each rule's field coverage (``RuleCoverage``: ``rule_id``, ``share``)."""
        for c in rules:
            self.rule_field_coverage.labels(rule_id=c.rule_id).set(c.share)

    def count_alerts(self, alerts: Sequence[Any]) -> None:
        """Count alert state changes by alertname and status."""
        for alert in alerts:
            labels = getattr(alert, "labels", {}) or {}
            self.alerts.labels(
                alertname=str(labels.get("alertname", "")), status=str(alert.status)
            ).inc()


class TimedStore(Store):
    """The same store, with the duration of every insert observed in a histogram."""

    def __init__(self, store: Store, metrics: WorkerMetrics) -> None:
        super().__init__(store.client, store.database)
        self._lock = store._lock  # one lock per client, whoever holds the Store object
        self._metrics = metrics

    def _observe(self, table: str, started: float, rows: int) -> int:
        if rows:
            self._metrics.insert_seconds.labels(table=table).observe(
                time.perf_counter() - started
            )
        return rows

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        started = time.perf_counter()
        return self._observe(table, started, super().insert_columns(table, columns))

    def insert_scored_json(self, events: Sequence[ScoredTransaction], source: str = "") -> int:
        # the embedded store's scored inserts bypass insert_columns
        started = time.perf_counter()
        return self._observe(
            "scored_transactions", started, super().insert_scored_json(events, source)
        )
