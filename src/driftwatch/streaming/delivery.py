"""Alert delivery on a thread of its own, off the ingest path.

The worker's sinks are deferred (:attr:`~driftwatch.alerts.outbox.OutboxSink.deferred`):
the ingest lane and the monitor only queue alert states. This thread ticks every sink
when one has something queued (its ``wake`` event) or every ``interval_s``, so posts,
retries with each sink's own back-off and Alertmanager re-posts never hold up a batch,
however long a receiver takes to answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from driftwatch.alerts.outbox import tick_all

log = logging.getLogger(__name__)


class DeliveryThread:
    """Tick the outbox sinks of ``sinks`` from a daemon thread.

    Parameters
    ----------
    sinks : sequence
        The pipeline's sinks; those with a ``wake`` event wake the thread.
    interval_s : float
        Longest time between two ticks (retries, re-posts).
    on_tick : callable, optional
        Called after every tick (e.g. to update a gauge).
    """

    def __init__(
        self,
        sinks: Sequence[object],
        interval_s: float,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.interval_s = max(0.05, interval_s)
        self.on_tick = on_tick
        self.wakes = [w for s in self.sinks
                      if isinstance(w := getattr(s, "wake", None), threading.Event)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once; not after :meth:`stop`)."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="driftwatch-delivery",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Tick now (e.g. from a timer)."""
        for w in self.wakes:
            w.set()

    def stop(self, timeout_s: float) -> None:
        """Stop ticking; wait at most ``timeout_s`` for a post in flight."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def pending(self) -> int:
        """Alert states the sinks hold undelivered (never waits for a post)."""
        return sum(int(getattr(s, "pending_count", 0)) for s in self.sinks)

    def _run(self) -> None:
        while not self._stop.is_set():
            deadline = time.monotonic() + self.interval_s
            while not self._stop.is_set() and time.monotonic() < deadline:
                if any(w.is_set() for w in self.wakes):
                    break
                self._stop.wait(0.05)
            if self._stop.is_set():
                return
            try:
                tick_all(self.sinks)
            except Exception as exc:  # a delivery problem must never stop the worker
                log.warning("alert delivery tick failed: %s", exc)
            if self.on_tick is not None:
                self.on_tick()
