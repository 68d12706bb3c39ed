"""The processing core shared by every source: batch → validate → store → stages.

A file replay and the Kafka workers both call :meth:`Pipeline.process_events`,
:meth:`Pipeline.process_labels` and :meth:`Pipeline.advance`, so the same input gives
the same rows, rule hits and alerts whichever way it arrives.

Ordering inside one batch of events:

1. parse and validate every payload (never raises; rejections keep their reason),
   and order the valid events by event time;
2. insert the valid events and the rejections into ClickHouse (one insert each);
3. run the event stages (the rule layer) on the valid events;
4. hand their findings to the alert book and the sinks.

If step 2 raises :class:`~driftwatch.errors.StoreError` nothing after it has run and
the caller retries the same batch (inserts are idempotent on ``event_id``). Event
stages must be idempotent per ``event_id`` too, because an at-least-once source can
deliver a batch again after a crash.

Time is event time: the watermark is the newest event time seen minus the allowed
lateness; clock stages (the monitors) run as the watermark advances.
"""

from __future__ import annotations

import datetime as dt
import operator
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from driftwatch.alerts.model import Alert, Finding
from driftwatch.alerts.sinks import AlertSink
from driftwatch.events import (
    Rejection,
    ScoredBatch,
    ScoredTransaction,
    parse_label_batch,
    parse_scored_batch,
)
from driftwatch.store.client import Store

_event_ms = operator.attrgetter("event_ms")  # the sort key, without a Python call per event


@dataclass
class StageOutput:
    """What a stage produced for one batch or one clock tick."""

    findings: list[Finding] = field(default_factory=list)
    rule_hits: list[dict[str, Any]] = field(default_factory=list)


class EventStage(Protocol):
    """Runs on every stored batch of valid events (e.g. the rule layer)."""

    name: str

    def on_events(self, events: Sequence[ScoredTransaction]) -> StageOutput:
        """Process one batch; must be idempotent per event_id."""


class ClockStage(Protocol):
    """Runs as the event-time watermark advances (e.g. the monitors)."""

    name: str

    def on_watermark(self, watermark: dt.datetime) -> StageOutput:
        """Run whatever is due at ``watermark``; return findings."""


class AlertBook(Protocol):
    """The alert lifecycle: findings in, alert state changes out."""

    def update(self, findings: Sequence[Finding], now: dt.datetime) -> list[Alert]:
        """Feed findings observed at event time ``now``; return new/changed alerts."""

    def flush(self) -> None:
        """Write whatever state is still waiting to be written."""


@dataclass
class BatchResult:
    """The outcome of one batch through the pipeline."""

    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rule_hits: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class PipelineStats:
    """Running totals of one pipeline (what `replay` prints at the end)."""

    accepted: int = 0
    labels: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rule_hits: int = 0
    alerts: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        """Number of rejected payloads of any kind."""
        return sum(self.rejected.values())


class Pipeline:
    """Validate, store and analyse batches of raw events.

    Parameters
    ----------
    store : Store
        An initialised store.
    event_stages : sequence of EventStage
        Run on every batch of valid events, in order (the rule layer).
    clock_stages : sequence of ClockStage
        Run as the watermark advances (the monitors).
    alert_book : AlertBook, optional
        Turns findings into alert state changes; without one, findings are dropped.
    sinks : sequence of AlertSink
        Receive every alert state change.
    lateness : timedelta
        Allowed lateness: the watermark trails the newest event time by this much.
    """

    def __init__(
        self,
        store: Store,
        *,
        event_stages: Sequence[EventStage] = (),
        clock_stages: Sequence[ClockStage] = (),
        alert_book: AlertBook | None = None,
        sinks: Sequence[AlertSink] = (),
        lateness: dt.timedelta = dt.timedelta(seconds=60),
    ) -> None:
        self.store = store
        self.event_stages = list(event_stages)
        self.clock_stages = list(clock_stages)
        self.alert_book = alert_book
        self.sinks = list(sinks)
        self.lateness = lateness
        self.max_event_time: dt.datetime | None = None
        self.stats = PipelineStats()

    @property
    def watermark(self) -> dt.datetime | None:
        """Newest event time seen minus the allowed lateness."""
        return None if self.max_event_time is None else self.max_event_time - self.lateness

    def process_events(self, raws: Iterable[bytes | str], source: str = "") -> BatchResult:
        """Validate, store and run event stages on one batch of raw scored events."""
        started = time.perf_counter()
        batch = self.parse_events(raws)
        self.store_events(batch, source)
        return self.evaluate_events(batch, started)

    # The three steps of process_events, for a streaming source that overlaps them: it
    # may run evaluate_events while store_events of the same batch is still running
    # (event stages do not read the stored events; they are idempotent per event_id),
    # as long as it acknowledges the batch only once store_events has succeeded.
    def parse_events(self, raws: Iterable[bytes | str]) -> ScoredBatch:
        """Step 1: parse and validate; the valid events in event-time order."""
        batch = parse_scored_batch(raws)
        batch.events.sort(key=_event_ms)
        return batch

    def store_events(self, batch: ScoredBatch, source: str = "") -> None:
        """Step 2: insert the valid events and the rejections (idempotent on event_id)."""
        self.store.insert_scored(batch.events, source)
        self.store.insert_rejected(batch.rejected, source)

    def evaluate_events(self, batch: ScoredBatch, started: float | None = None) -> BatchResult:
        """Step 3: run the event stages, advance the event time and raise alerts."""
        if started is None:
            started = time.perf_counter()
        result = BatchResult(accepted=len(batch.events), rejected=batch.rejected)
        findings: list[Finding] = []
        for stage in self.event_stages:
            out = stage.on_events(batch.events)
            findings.extend(out.findings)
            result.rule_hits.extend(out.rule_hits)
        if batch.events:
            newest = max(e.event_time for e in batch.events)
            if self.max_event_time is None or newest > self.max_event_time:
                self.max_event_time = newest
        if findings and self.max_event_time is not None:
            result.alerts = self._alert(findings, self.max_event_time)
        result.seconds = time.perf_counter() - started
        self._count(result)
        return result

    def process_labels(self, raws: Iterable[bytes | str], source: str = "") -> BatchResult:
        """Validate and store one batch of raw labels."""
        started = time.perf_counter()
        batch = parse_label_batch(raws)
        self.store.insert_labels(batch.labels)
        self.store.insert_rejected(batch.rejected, source)
        result = BatchResult(rejected=batch.rejected, seconds=time.perf_counter() - started)
        self.stats.labels += len(batch.labels)
        self._count(result)
        return result

    def advance(self, watermark: dt.datetime | None = None) -> list[Alert]:
        """Run the clock stages at ``watermark`` (default: the pipeline's own)."""
        at = watermark or self.watermark
        if at is None:
            return []
        findings: list[Finding] = []
        for stage in self.clock_stages:
            findings.extend(stage.on_watermark(at).findings)
        alerts = self._alert(findings, at)
        self.stats.alerts += len(alerts) if alerts else 0
        return alerts

    def close(self) -> None:
        """Write the alert book's waiting state and close every sink."""
        if self.alert_book is not None:
            self.alert_book.flush()
        for sink in self.sinks:
            sink.close()

    def _alert(self, findings: Sequence[Finding], now: dt.datetime) -> list[Alert]:
        if self.alert_book is None:
            return []
        alerts = self.alert_book.update(findings, now)
        if alerts:
            for sink in self.sinks:
                sink.send(alerts)
        return alerts

    def _count(self, result: BatchResult) -> None:
        s = self.stats
        s.accepted += result.accepted
        s.rejected.update(r.reason for r in result.rejected)
        s.rule_hits += len(result.rule_hits)
        s.alerts += len(result.alerts)
        s.batches += 1
        s.seconds += result.seconds
