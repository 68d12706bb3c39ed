"""When the batch consumer fetches and releases records: the event-time merge gate.

A mixin of :class:`~driftwatch.streaming.consumer.BatchConsumer`: which partitions to
fetch from next, how long a partition with nothing buffered holds the others back, and
pausing partitions whose merge buffer is full.

Order: fetched records go through an :class:`~driftwatch.streaming.ordering.EventTimeMerge`
and are processed in event-time order across this worker's partitions. A partition with
nothing buffered holds the others back, since it may still deliver earlier events: for
at most ``behind_wait_s`` while it has more to fetch, ``merge_wait_s`` once caught up.
Below ``max_records`` buffered, records are gathered for ``linger_s`` so that a batch
pays its fixed costs (inserts, publish, commit) once for many events; records that
arrived while the previous batch was handled have waited since it began, and do not
linger again. Buffers are bounded: a partition with ``max_records`` buffered is paused
until it drains.
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from driftwatch.streaming.ordering import EventTimeMerge


class MergeGate:
    """The fetch and release decisions of a batch consumer (a mixin)."""

    consumer: AIOKafkaConsumer
    merge: EventTimeMerge | None
    max_records: int
    poll_s: float
    linger_s: float
    merge_wait_s: float
    behind_wait_s: float
    _paused: bool
    _pending: Any
    _gather_since: float | None
    _blocked_since: float | None

    def assignment(self) -> list[TopicPartition]:
        """Partitions assigned to this consumer now, sorted."""
        try:
            tps = self.consumer.assignment()
        except Exception:  # not subscribed / not started
            return []
        return sorted(tps)

    def _next_fetch(self) -> tuple[list[TopicPartition], float]:
        """Which partitions to fetch from next (none: all) and how long to wait.

        Idle: wait up to ``poll_s``. Gathering a batch (less than ``max_records``
        buffered, for less than ``linger_s``): fetch from every partition until the
        linger ends. Then: fetch briefly from the partitions the merge waits for, or
        not at all when it can release.
        """
        if self.merge is None or not self.merge.buffered():
            # batches waiting to be committed: come back soon to commit them
            return [], min(self.poll_s, 0.05) if self._pending else self.poll_s
        if self.merge.buffered() < self.max_records and self._gather_since is not None:
            left = self.linger_s - (time.monotonic() - self._gather_since)
            if left > 0:
                return [], left
        wanted = self._wanted()
        return wanted, (0.05 if wanted else 0.0)

    def _wanted(self) -> list[TopicPartition]:
        """Partitions the merge waits for: nothing buffered while others have data."""
        if self.merge is None or not self.merge.buffered():
            return []
        paused = set(self.consumer.paused())
        return [
            tp for tp in self.assignment()
            if not self.merge.buffered(tp) and tp not in paused
        ]

    async def _releasable(self) -> list[Any]:
        """Records the merge may release now.

        A partition with nothing buffered may still deliver earlier events, so it holds
        the others back: for at most ``behind_wait_s`` while it is known to be behind
        (its fetch position is below its high-water mark, or nothing was fetched yet),
        otherwise (caught up, its producer may be slower) for at most ``merge_wait_s``.
        Then the merge releases up to the low watermark of the partitions with data, or
        everything buffered when every partition is caught up.
        """
        assert self.merge is not None
        if not self.merge.buffered():
            return []
        if (
            self.merge.buffered() < self.max_records
            and self._gather_since is not None
            and time.monotonic() - self._gather_since < self.linger_s
        ):
            return []  # still gathering a batch
        empty = [tp for tp in self.assignment() if not self.merge.buffered(tp)]
        if not empty:
            self._blocked_since = None
            return self._release()
        limit = self.merge_wait_s
        for tp in empty:
            if await self._behind(tp):
                limit = self.behind_wait_s
                break
        now = time.monotonic()
        if self._blocked_since is None:
            self._blocked_since = now
        if now - self._blocked_since < limit:
            return []
        self._blocked_since = None
        # Every partition caught up: nothing more is waiting at the broker, so what is
        # buffered goes out in event-time order now. (Up to the watermark only, a lull
        # or the end of a burst released its last records one hold-back at a time:
        # each release emptied another partition, which then held back the rest.)
        return self._release(everything=await self._caught_up())

    async def _caught_up(self) -> bool:
        """True when every assigned partition has been fetched up to its high-water mark."""
        for tp in self.assignment():
            if await self._behind(tp):
                return False
        return True

    async def _behind(self, tp: TopicPartition) -> bool:
        """True while ``tp`` has more to fetch (or nothing was fetched from it yet)."""
        high = self.consumer.highwater(tp)
        return high is None or await self.consumer.position(tp) < high

    def _release(self, everything: bool = False) -> list[Any]:
        assert self.merge is not None
        out = self.merge.release(self.max_records, everything=everything)
        if out:
            self._gather_since = time.monotonic() if self.merge.buffered() else None
        return out

    def _flow_control(self) -> None:
        """Pause partitions with a full merge buffer; resume them once they drained."""
        if self.merge is None or self._paused:
            return
        full = {tp for tp in self.assignment() if self.merge.buffered(tp) >= self.max_records}
        paused = set(self.consumer.paused())
        if full - paused:
            self.consumer.pause(*(full - paused))
        if paused - full:
            self.consumer.resume(*(paused - full))
