"""The event-time guard: implausible event times are quarantined, never trusted as a clock.

Event time drives everything downstream: the pipeline's watermark, the monitor's pass
grid, the rule windows' expiry. An event dated 2099 is valid by the contract, and if
it were believed, the watermark would jump 73 years (the monitor would walk millions of
passes and every rule window would expire at once); an event dated 2001 would land far
behind every window. So before any of that sees a batch, the guard splits it:

- **too far ahead** (``event_time:too_far_ahead``): later than the wall clock plus
  ``max_future_s`` (streaming only: a replay of old data has no wall clock to be
  ahead of), or later than the guard's own clock plus ``max_age_s`` -- an event that
  far ahead would make everything at the current clock "too old";
- **too old** (``event_time:too_old``): more than ``max_age_s`` behind the guard's own
  clock (past the reference horizon, no window can use it);
- otherwise accepted; accepted events behind the watermark are counted as *late*
  (stored and evaluated like any other).

The guard's own clock is the newest *accepted* event time so far (in a replay: the
replay's own plausible clock, so replays of old data work). Before the first batch it
has none, and the batch's median event time stands in (a few outliers cannot move a
median): the first batch keeps the events linked to its median by gaps of at most
``max_age_s``. Inside a batch, events are checked in time order and each accepted one
moves the clock, so sparse data with gaps shorter than ``max_age_s`` passes.

>>> g = EventTimeGuard(max_future_s=300, max_age_s=86400, wall=None)
>>> day = 86_400_000
>>> v = g.check([day * 1000 + i for i in range(5)] + [day * 47_000])
>>> v.accepted, [r for _, r in v.quarantined]
([0, 1, 2, 3, 4], ['event_time:too_far_ahead'])
>>> g.check([day * 1000 - 2 * day, day * 1000 + 10]).quarantined
[(0, 'event_time:too_old')]
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TOO_FAR_AHEAD = "event_time:too_far_ahead"
TOO_OLD = "event_time:too_old"


@dataclass(frozen=True)
class GuardVerdict:
    """What the guard decided for one batch (indices into the times it was given)."""

    accepted: list[int]
    quarantined: list[tuple[int, str]]
    late: int


class EventTimeGuard:
    """Quarantine event times that are implausible against the wall or the stream clock.

    Parameters
    ----------
    max_future_s : float
        Largest lead over the wall clock accepted (``>= 0``).
    max_age_s : float
        Largest distance from the guard's own clock accepted, backwards and forwards
        (``> 0``).
    wall : callable or None
        The wall clock in epoch seconds (default :func:`time.time`); None for a replay,
        which judges only against its own clock.
    """

    def __init__(
        self,
        max_future_s: float,
        max_age_s: float,
        *,
        wall: Callable[[], float] | None = time.time,
    ) -> None:
        if not max_future_s >= 0:
            raise ValueError(f"max_future_s must be >= 0, got {max_future_s!r}")
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s!r}")
        self.max_future_s = max_future_s
        self.max_age_s = max_age_s
        self.wall = wall
        self.clock_ms: int | None = None
        self.quarantined = 0
        self.late = 0

    def seed(self, clock_ms: int | None) -> None:
        """Start from a known plausible clock (e.g. the newest stored event time)."""
        if clock_ms is not None and (self.clock_ms is None or clock_ms > self.clock_ms):
            self.clock_ms = clock_ms

    def check(
        self,
        times_ms: Sequence[int],
        watermark_ms: int | None = None,
        *,
        presorted: bool = False,
    ) -> GuardVerdict:
        """Judge one batch of event times (epoch milliseconds, any order).

        Parameters
        ----------
        times_ms : sequence of int
            The batch's event times.
        watermark_ms : int, optional
            Accepted events before it are counted as late.
        presorted : bool
            The times are in ascending order (the pipeline sorts its batches): a batch
            entirely inside the bounds is then judged without a loop in Python.

        Returns
        -------
        GuardVerdict
            Indices of the accepted and quarantined times (with their reasons).
        """
        if not times_ms:
            return GuardVerdict([], [], 0)
        span = int(self.max_age_s * 1000)
        ceiling = None if self.wall is None else int((self.wall() + self.max_future_s) * 1000)
        anchor = self.clock_ms
        if presorted and anchor is not None:
            first, last = times_ms[0], times_ms[-1]
            if first >= anchor - span and last <= anchor + span and (
                ceiling is None or last <= ceiling
            ):  # the usual batch: all inside, nothing to walk
                late = 0 if watermark_ms is None else bisect.bisect_left(times_ms, watermark_ms)
                self.seed(last)
                self.late += late
                return GuardVerdict(list(range(len(times_ms))), [], late)
        order = (
            list(range(len(times_ms))) if presorted
            else sorted(range(len(times_ms)), key=times_ms.__getitem__)
        )
        if anchor is None:  # no clock yet: the median, and what connects to it
            j = len(order) // 2
            anchor = times_ms[order[j]]
            while j > 0 and times_ms[order[j]] - times_ms[order[j - 1]] <= span:
                j -= 1
            floor = times_ms[order[j]]
        else:
            floor = anchor - span
        accepted: list[int] = []
        quarantined: list[tuple[int, str]] = []
        late = 0
        newest = anchor
        for i in order:
            t = times_ms[i]
            if t < floor:
                quarantined.append((i, TOO_OLD))
            elif t > newest + span or (ceiling is not None and t > ceiling):
                quarantined.append((i, TOO_FAR_AHEAD))
            else:
                accepted.append(i)
                newest = max(newest, t)
                if watermark_ms is not None and t < watermark_ms:
                    late += 1
        if accepted:
            self.seed(max(times_ms[i] for i in accepted))
        accepted.sort()
        quarantined.sort()
        self.quarantined += len(quarantined)
        self.late += late
        return GuardVerdict(accepted, quarantined, late)
