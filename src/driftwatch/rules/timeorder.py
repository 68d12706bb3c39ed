"""A batch in time order, and cut into chunks: the order the live evaluator stores and
evaluates events in (:class:`~driftwatch.rules.live.LiveEvaluator`)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, islice
from operator import eq, itemgetter, le, lt
from typing import TypeVar

__all__ = ["bounds", "in_time_order"]

_E = TypeVar("_E")
_by_time = itemgetter(0, 1)
"""``(ms, event_id)`` of a ``(ms, event_id, hash, event)`` item (at C speed)."""


def in_time_order(ms: list[int], ids: list[str], hashes: list[int], events: list[_E]
                  ) -> tuple[list[int], list[str], list[int], list[_E]]:
    """The four parallel columns of a batch (distinct ids) ordered by ``(ms, event_id)``.

    A batch usually arrives in time order already (the pipeline sorts by event time;
    a simulation emits in order): then only the runs of one millisecond are looked at
    (put in id order where they are not), a check at C speed otherwise; anything else
    is sorted as a whole. Same order as ``sorted(zip(ms, ids, ...))`` either way.

    >>> in_time_order([5, 3, 3], ["a", "c", "b"], [1, 2, 3], ["A", "C", "B"])
    ([3, 3, 5], ['b', 'c', 'a'], [3, 2, 1], ['B', 'C', 'A'])
    """
    n = len(ms)
    if n < 2:
        return ms, ids, hashes, events
    if not all(map(le, ms, islice(ms, 1, None))):  # out of time order: sort it all
        fresh = sorted(zip(ms, ids, hashes, events, strict=True), key=_by_time)
        ms, ids, hashes, events = (list(c) for c in zip(*fresh, strict=True))
        return ms, ids, hashes, events
    ties = list(compress(range(1, n), map(eq, ms, islice(ms, 1, None))))
    if not ties:
        return ms, ids, hashes, events
    ids, hashes, events = list(ids), list(hashes), list(events)
    k, nt = 0, len(ties)
    while k < nt:  # each run of one millisecond: [start, end)
        start = ties[k] - 1
        end = ties[k] + 1
        k += 1
        while k < nt and ties[k] == end:
            end += 1
            k += 1
        run = ids[start:end]
        if all(map(lt, run, islice(run, 1, None))):
            continue
        order = sorted(range(start, end), key=ids.__getitem__)
        ids[start:end] = [ids[i] for i in order]
        hashes[start:end] = [hashes[i] for i in order]
        events[start:end] = [events[i] for i in order]
    return ms, ids, hashes, events


def bounds(ms: Sequence[int], size: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the runs of about ``size`` items that the sorted times ``ms``
    are cut into, never between two items of the same time.

    A batch is processed chunk by chunk, each stored, evaluated and settled before the
    next: the same hits and state as the whole batch at once (events see their window
    ``[t - within, t]``; a chunk holds every event of its last millisecond, so the
    events of one millisecond still see each other), and as a run of smaller batches.
    What it saves is memory traffic: each chunk's columns, entries and events are
    read some thirty times (one pass per column, window and rule) and stay in the
    core's cache between passes when the chunk is small; the events of a large batch
    do not (they are spread over the heap wherever the parser found free memory).

    >>> bounds([0, 1, 1, 1, 2], 2)
    [(0, 4), (4, 5)]
    """
    n = len(ms)
    if n <= size:
        return [(0, n)]
    out: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = start + size
        if end >= n:
            end = n
        else:
            last = ms[end - 1]
            while end < n and ms[end] == last:
                end += 1
        out.append((start, end))
        start = end
    return out
