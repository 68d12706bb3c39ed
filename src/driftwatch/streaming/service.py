"""The scored-topic consumer of a worker runtime as a service of the faust app."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from mode import Service

from driftwatch.streaming.consumer import BatchConsumer
from driftwatch.streaming.runtime import WorkerRuntime

log = logging.getLogger(__name__)


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
