"""Process-level helpers of a worker: its Kafka client id, opening the store at
start-up, and tuning the garbage collector."""

from __future__ import annotations

import gc
import logging
import os
import socket
import time

from driftwatch.assemble import store_from
from driftwatch.backoff import Backoff
from driftwatch.errors import StoreError
from driftwatch.settings import Settings
from driftwatch.store.client import Store

log = logging.getLogger(__name__)


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
    :meth:`~driftwatch.streaming.runtime.WorkerRuntime.close` undoes this.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    return old
