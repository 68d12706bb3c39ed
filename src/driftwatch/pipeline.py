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
lateness; clock stages (the monitors) run as the watermark advances. Only events the
:class:`~driftwatch.timeguard.EventTimeGuard` accepts are stored and evaluated, so
an event dated 2099 or 2001 never moves the watermark, a rule clock or a window: it
is rejected with ``event_time:too_far_ahead`` / ``event_time:too_old`` (stored in
``rejected_events`` and dead-lettered like any other rejection).

An error evaluating one event never stops the pipeline (see :meth:`Pipeline._run_stage`):
the event is stored, rejected with ``rule_error:<rule id>`` and counted in
``PipelineStats.stage_errors``; the other events and rules go on. Such rejections are
added to ``batch.rejected`` by :meth:`Pipeline.evaluate_events`, after
:meth:`Pipeline.store_events` may already have run: callers that store first insert
the rejections added since (see :meth:`Pipeline.process_events`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import operator
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from driftwatch.alerts.model import Alert, Finding
from driftwatch.alerts.sinks import AlertSink
from driftwatch.event_dicts import scored_to_dict
from driftwatch.events import (
    EPOCH,
    Rejection,
    ScoredBatch,
    ScoredTransaction,
    epoch_ms,
    parse_label_batch,
    parse_scored,
    parse_scored_batch,
)
from driftwatch.store.client import Store
from driftwatch.timeguard import EventTimeGuard

log = logging.getLogger(__name__)

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
    findings: list[Finding] = field(default_factory=list)
    """The stages' findings, before the alert book saw them (see :meth:`Pipeline.alert`)."""
    event_time: dt.datetime | None = None
    """The pipeline's newest event time once the batch was evaluated (the alerts' clock)."""


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
    late: int = 0
    stage_errors: Counter[str] = field(default_factory=Counter)

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
    time_guard : EventTimeGuard, optional
        Quarantines implausible event times before anything else sees them.
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
        time_guard: EventTimeGuard | None = None,
    ) -> None:
        self.store = store
        self.event_stages = list(event_stages)
        self.clock_stages = list(clock_stages)
        self.alert_book = alert_book
        self.sinks = list(sinks)
        self.lateness = lateness
        self.time_guard = time_guard
        self.max_event_time: dt.datetime | None = None
        self.stats = PipelineStats()
        self._alert_lock = threading.Lock()  # the monitor may run on a thread of its own

    @property
    def watermark(self) -> dt.datetime | None:
        """Newest event time seen minus the allowed lateness."""
        return None if self.max_event_time is None else self.max_event_time - self.lateness

    def process_events(self, raws: Iterable[bytes | str], source: str = "") -> BatchResult:
        """Validate, store and run event stages on one batch of raw scored events."""
        started = time.perf_counter()
        batch = self.parse_events(raws)
        self.store_events(batch, source)
        return self.evaluate_and_store_errors(batch, source, started)

    def evaluate_and_store_errors(
        self, batch: ScoredBatch, source: str = "", started: float | None = None
    ) -> BatchResult:
        """Step 3 after step 2 has run: also insert the rejections step 3 added."""
        before = len(batch.rejected)
        result = self.evaluate_events(batch, started)
        if len(batch.rejected) > before:
            self.store.insert_rejected(batch.rejected[before:], source)
        return result

    # The three steps of process_events, for a streaming source that overlaps them: it
    # may run evaluate_events while store_events of the same batch is still running
    # (event stages do not read the stored events; they are idempotent per event_id),
    # as long as it acknowledges the batch only once store_events has succeeded.
    def parse_events(self, raws: Iterable[bytes | str]) -> ScoredBatch:
        """Step 1: parse and validate; the valid events with a plausible event time,
        in event-time order (the others are rejected with their reason)."""
        raws = raws if isinstance(raws, list) else list(raws)
        batch = parse_scored_batch(raws)
        batch.events.sort(key=_event_ms)
        if self.time_guard is not None and batch.events:
            self._guard(batch, raws)
        return batch

    def _guard(self, batch: ScoredBatch, raws: Sequence[bytes | str]) -> None:
        """Move the events the time guard quarantines from ``batch.events`` to
        ``batch.rejected``, each with the payload it came from."""
        assert self.time_guard is not None
        events = batch.events
        wm = self.watermark
        verdict = self.time_guard.check(
            [e.event_ms for e in events], None if wm is None else epoch_ms(wm), presorted=True
        )
        self.stats.late += verdict.late
        if not verdict.quarantined:
            return
        bad: dict[tuple[str, int], list[str]] = {}
        for i, reason in verdict.quarantined:
            bad.setdefault((events[i].event_id, events[i].event_ms), []).append(reason)
        batch.events = [events[i] for i in verdict.accepted]
        for raw in raws:  # rare: find the payloads of the quarantined events
            data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
            ev = parse_scored(data)
            if not isinstance(ev, ScoredTransaction):
                continue
            reasons = bad.get((ev.event_id, ev.event_ms))
            if reasons:
                reason = reasons.pop()
                batch.rejected.append(Rejection(
                    reason,
                    f"event_time {ev.event_time.isoformat()} is implausible: "
                    f"{reason.split(':')[1].replace('_', ' ')} (guard clock "
                    f"{_iso(self.time_guard.clock_ms)})",
                    data, "scored", ev.event_id,
                ))

    def store_events(self, batch: ScoredBatch, source: str = "") -> None:
        """Step 2: insert the valid events and the rejections (idempotent on event_id)."""
        self.store.insert_scored(batch.events, source)
        self.store.insert_rejected(batch.rejected, source)

    def evaluate_events(
        self, batch: ScoredBatch, started: float | None = None, *, alert: bool = True
    ) -> BatchResult:
        """Step 3: run the event stages, advance the event time and raise alerts.

        With ``alert=False`` the findings are left in ``result.findings`` for the
        caller to hand to :meth:`alert` later (a worker publishes the rule hits first:
        the alert book reads and writes ClickHouse, tens of milliseconds a batch).
        """
        if started is None:
            started = time.perf_counter()
        result = BatchResult(accepted=len(batch.events), rejected=batch.rejected)
        for stage in self.event_stages:
            out = self._run_stage(stage, batch)
            result.findings.extend(out.findings)
            result.rule_hits.extend(out.rule_hits)
        if batch.events:
            newest = max(e.event_time for e in batch.events)
            if self.max_event_time is None or newest > self.max_event_time:
                self.max_event_time = newest
        result.event_time = self.max_event_time
        if alert:
            result.alerts = self.alert(result.findings, result.event_time)
        result.seconds = time.perf_counter() - started
        self._count(result)
        return result

    def alert(self, findings: Sequence[Finding], now: dt.datetime | None) -> list[Alert]:
        """Hand event-stage findings observed up to event time ``now`` to the alert
        book and the sinks; return the alert state changes (counted in the stats)."""
        if not findings or now is None:
            return []
        return self._alert(findings, now)

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
        return self._alert(findings, at)

    def close(self) -> None:
        """Write the alert book's waiting state and close every sink."""
        if self.alert_book is not None:
            self.alert_book.flush()
        for sink in self.sinks:
            sink.close()

    def _run_stage(self, stage: EventStage, batch: ScoredBatch) -> StageOutput:
        """``stage.on_events`` with per-event isolation.

        A rule that raises on one event is caught inside the live evaluator (the other
        rules and events go on) and reported here; a stage that raises on the whole
        batch is run again one event at a time. Either way each failing event stays
        stored (it is valid) and is also rejected with ``rule_error:<rule id>`` (or
        ``rule_error:<stage>``), so it is dead-lettered and counted.
        """
        try:
            out = stage.on_events(batch.events)
        except Exception:
            log.warning("stage %s failed on a batch; evaluating it event by event",
                        stage.name, exc_info=True)
            out = StageOutput()
            for ev in batch.events:
                try:
                    one = stage.on_events([ev])
                except Exception as exc:
                    self._stage_error(batch, f"rule_error:{stage.name}", ev,
                                      f"{type(exc).__name__}: {exc}")
                    continue
                out.findings.extend(one.findings)
                out.rule_hits.extend(one.rule_hits)
        take = getattr(getattr(stage, "evaluator", None), "take_errors", None)
        if callable(take):
            for failure in take():
                self._stage_error(batch, f"rule_error:{failure.rule_id}", failure.event,
                                  failure.error)
        return out

    def _stage_error(
        self, batch: ScoredBatch, reason: str, ev: ScoredTransaction, error: str
    ) -> None:
        log.warning("%s on event %s: %s", reason, ev.event_id, error,
                    extra={"reason": reason, "event_id": ev.event_id})
        self.stats.stage_errors[reason] += 1
        batch.rejected.append(Rejection(reason, error[:500], _event_json(ev), "scored",
                                        ev.event_id))

    def _alert(self, findings: Sequence[Finding], now: dt.datetime) -> list[Alert]:
        if self.alert_book is None:
            return []
        with self._alert_lock:  # the worker's alert and monitor lanes both come here
            alerts = self.alert_book.update(findings, now)
            if alerts:
                for sink in self.sinks:
                    sink.send(alerts)
            self.stats.alerts += len(alerts)
        return alerts

    def _count(self, result: BatchResult) -> None:
        s = self.stats
        s.accepted += result.accepted
        s.rejected.update(r.reason for r in result.rejected)
        s.rule_hits += len(result.rule_hits)
        s.batches += 1
        s.seconds += result.seconds


def _iso(ms: int | None) -> str:
    if ms is None:
        return "none"
    return (EPOCH + dt.timedelta(milliseconds=ms)).isoformat()


def _event_json(ev: ScoredTransaction) -> bytes:
    """The contract form of a validated event (for a rejection of a parsed event)."""
    return json.dumps(scored_to_dict(ev), sort_keys=True, default=str).encode()

