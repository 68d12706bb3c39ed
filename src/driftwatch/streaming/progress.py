"""Event-time progress per partition: the low watermark the monitor may advance to.

A worker's monitor must not run ahead of what its partitions have delivered: a pass at
``t`` evaluates windows ending at ``t``, and a partition still behind would add events
to them afterwards. So every stored batch records, per partition, the event time of the
newest record it delivered -- capped at the time guard's plausible clock, so a record
dated 2099 counts as no later than the newest plausible event -- and the low watermark
is the minimum over the partitions that still hold something back:

- a partition with a backlog (lag > 0) holds the watermark at its own progress; one
  with a backlog and no progress yet blocks it (it may deliver anything);
- a caught-up partition (lag 0) or one never fetched holds nothing back: whatever it
  delivers later is late, like any late event (otherwise one idle partition would stop
  the monitor for good).

Group-wide (:func:`group_low_watermark`, from the rows every worker writes) a caught-up
partition still holds the watermark at its progress while it is *active*: its owner
reports its event time while it has a backlog or advanced within ``idle_s``
(:meth:`PartitionProgress.reported`), and nothing once it has been idle that long. A
partition caught up for a moment (its producer is between two sends, or it changes
owner in a rebalance) would otherwise let the group watermark run past events it is
about to deliver -- events the store-side rules would then never evaluate.

>>> p = PartitionProgress()
>>> p.record({"a": 100.0, "b": 90.0}, plausible_s=95.0)
>>> p.low_watermark(["a", "b"], {"a": 3, "b": 1})     # b capped at 95, then min
(True, 90.0)
>>> p.low_watermark(["a", "b"], {"a": 0, "b": 0})     # all caught up: no bound
(True, None)
>>> p.low_watermark(["a", "c"], {"a": 3, "c": 5})     # c has a backlog, no progress
(False, None)
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterable, Mapping


class PartitionProgress:
    """Newest stored event time per partition (epoch seconds)."""

    def __init__(self) -> None:
        self.times: dict[Hashable, float] = {}
        self.advanced: dict[Hashable, float] = {}
        """When (monotonic seconds) each partition's progress last moved forward."""

    def record(self, newest: Mapping[Hashable, float], plausible_s: float | None,
               now: float | None = None) -> None:
        """Note the newest event time each partition delivered in a stored batch
        (``now``: the monotonic clock, for tests)."""
        at = time.monotonic() if now is None else now
        cap = math.inf if plausible_s is None else plausible_s
        for part, t in newest.items():
            if t == -math.inf:
                continue  # unreadable payloads carry no time
            t = min(t, cap)
            if t > self.times.get(part, -math.inf):
                self.times[part] = t
                self.advanced[part] = at

    def reported(self, part: Hashable, lag: int, idle_s: float,
                 now: float | None = None) -> float | None:
        """The event time a worker reports for ``part`` in the group's progress rows:
        its progress while it has a backlog or moved within ``idle_s``, else None.

        >>> p = PartitionProgress()
        >>> p.record({"a": 100.0}, None, now=0.0)
        >>> p.reported("a", 0, 30.0, now=10.0), p.reported("a", 0, 30.0, now=40.0)
        (100.0, None)
        >>> p.reported("a", 4, 30.0, now=40.0), p.reported("b", 4, 30.0, now=40.0)
        (100.0, None)
        """
        t = self.times.get(part)
        if t is None:
            return None
        at = time.monotonic() if now is None else now
        return t if lag > 0 or at - self.advanced.get(part, -math.inf) < idle_s else None

    def forget(self, parts: Iterable[Hashable]) -> None:
        """Drop partitions no longer assigned."""
        for part in parts:
            self.times.pop(part, None)
            self.advanced.pop(part, None)

    def low_watermark(
        self, assigned: Iterable[Hashable], lag: Mapping[Hashable, int]
    ) -> tuple[bool, float | None]:
        """``(may_advance, bound)``: False while a partition with a backlog has no
        progress yet; otherwise the bound (None: no partition holds anything back)."""
        bound: float | None = None
        for part in assigned:
            if lag.get(part, 0) <= 0:
                continue
            t = self.times.get(part)
            if t is None:
                return False, None
            bound = t if bound is None else min(bound, t)
        return True, bound


def group_low_watermark(
    rows: Iterable[tuple[Hashable, float | None, int, float]], now_s: float, idle_s: float
) -> tuple[bool, float | None]:
    """The group-wide low watermark from every worker's progress rows
    ``(partition, newest event time or None, lag, written at)``, all epoch seconds.

    A row with an event time holds the watermark there, whatever its lag (its owner
    reports one while the partition is active: :meth:`PartitionProgress.reported`); a
    row without one blocks it while the partition has a backlog (it may deliver
    anything) and holds nothing back once caught up (idle). A row not renewed for
    ``idle_s`` holds nothing back (its owner left or stalled: the monitor waits at most
    that long for it; what it delivers later is late, counted in the passes whose
    windows still cover it).

    >>> rows = [(0, 100.0, 5, 50.0), (1, 80.0, 2, 50.0), (2, 10.0, 9, 0.0)]
    >>> group_low_watermark(rows, now_s=60.0, idle_s=30.0)   # 2 is stale
    (True, 80.0)
    >>> group_low_watermark([(0, None, 3, 59.0)], now_s=60.0, idle_s=30.0)
    (False, None)
    >>> group_low_watermark([(0, 100.0, 0, 59.0)], now_s=60.0, idle_s=30.0)  # active
    (True, 100.0)
    >>> group_low_watermark([(0, None, 0, 59.0)], now_s=60.0, idle_s=30.0)   # idle
    (True, None)
    """
    bound: float | None = None
    for _, t, behind, written in rows:
        if now_s - written > idle_s:
            continue
        if t is None:
            if behind > 0:
                return False, None
            continue
        bound = t if bound is None else min(bound, t)
    return True, bound
