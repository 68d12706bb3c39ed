"""Retrying a batch's step: pause fetching, back off, keep the group alive.

A mixin of :class:`~driftwatch.streaming.consumer.BatchConsumer` (see its module notes
on the guarantees): a retryable failure pauses every assigned partition and waits with
bounded exponential back-off while still polling the paused consumer, until the step
succeeds, the batch's partitions are all revoked, or the stop deadline passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from driftwatch.backoff import Backoff
from driftwatch.errors import StoreError
from driftwatch.streaming.metrics import WorkerMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class Abandoned(Exception):
    """The batch in flight was given up (stop deadline, or all its partitions revoked)."""


class RetryPause:
    """Retries of a batch consumer's steps (a mixin)."""

    consumer: AIOKafkaConsumer
    backoff: Backoff
    retry_on: tuple[type[BaseException], ...]
    metrics: WorkerMetrics
    stop_timeout_s: float
    state: str
    last_error: str
    _paused: bool
    _stop_at: float | None

    def assignment(self) -> list[TopicPartition]:
        raise NotImplementedError

    async def _attempt(
        self, what: str, step: Callable[[], Awaitable[T]], records: list[Any]
    ) -> T:
        """Run ``step`` until it succeeds; pause fetching and back off between tries
        (a caller that already saw the first failure passes it to :meth:`_failed` first)."""
        if not self._paused:
            self.backoff.reset()
        while True:
            try:
                result = await step()
            except self.retry_on as exc:
                await self._failed(what, exc, records)
                continue
            if self._paused:
                self._resume()
                log.info("%s succeeded after retries; consuming again", what)
            self.state = "running"
            self.last_error = ""
            return result

    async def _failed(self, what: str, exc: BaseException, records: list[Any]) -> None:
        """Count and log a retryable failure, pause fetching and wait out the back-off;
        drop the records of partitions revoked meanwhile (all gone: ``Abandoned``)."""
        self.last_error = f"{what}: {exc}"[:500]
        kind = "store" if isinstance(exc, StoreError) else "kafka"
        (self.metrics.store_errors if kind == "store" else self.metrics.kafka_errors)\
            .labels(operation=what).inc()
        delay = self.backoff.next()
        log.warning(
            "%s failed (attempt %d), retrying in %.2fs: %s",
            what, self.backoff.attempts, delay, exc,
            extra={"step": what, "attempt": self.backoff.attempts, "delay_s": delay},
        )
        self.state = "retrying"
        self._pause()
        await self._hold(delay)
        keep = set(self.assignment())
        records[:] = [r for r in records if TopicPartition(r.topic, r.partition) in keep]
        if not records:
            raise Abandoned("its partitions were revoked") from None

    def _stop_expired(self) -> bool:
        left = self._stop_left()
        return left is not None and left <= 0

    def _stop_left(self) -> float | None:
        """Seconds until the stop deadline (None: no stop requested)."""
        if self._stop_at is None:
            return None
        return max(0.0, self._stop_at + self.stop_timeout_s - time.monotonic())

    async def _hold(self, seconds: float) -> None:
        """Wait ``seconds`` while polling the paused consumer (keeps the group alive)."""
        deadline = time.monotonic() + seconds
        while True:
            if self._stop_expired():
                raise Abandoned("stop timeout reached while retrying")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            data = await self.consumer.getmany(
                timeout_ms=max(1, int(min(left, 0.5) * 1000)), max_records=1
            )
            for tp, batch in data.items():
                # A partition assigned during the retry: rewind and pause it too.
                self.consumer.seek(tp, batch[0].offset)
                self.consumer.pause(tp)

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.metrics.consumer_paused.set(1)
            self.consumer.pause(*self.assignment())

    def _resume(self) -> None:
        self._paused = False
        self.metrics.consumer_paused.set(0)
        self.consumer.resume(*self.assignment())
