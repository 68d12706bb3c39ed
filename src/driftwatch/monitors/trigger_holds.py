"""The reference of trigger mining: held conjunctions cut out, a recent-hours guard.

A conjunction that alerts is *held*: its rows from the alert's window on stay out of
the reference until the alert resolves and its period slides out of the reference
window, so the reference never absorbs an attack (issue 21). The last ``guard_s``
seconds before the window are left out too, so a pattern that began in the last hours
is tested as new, not against its own first rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.trigger_keys import matches, parse_key

GUARD_HISTORY = 2
"""The guard applies when the reference without its hours still holds this many times
the suspicious rows of those hours (history beyond the guard at least twice as long as
it: 18 hours of reference with the 6-hour guard); with less, as in a store's first day,
its hours stay in (a reference of an hour or two makes the surge test's scaling noisy).
The test compares stored hours only, never the current window, so an attack's own
volume cannot switch the guard off."""


def _suspicious(table: SegmentTable) -> float:
    """Suspicious rows of a window table (every key but the empty one)."""
    keys = [k for k in table.keys if k]
    return float(table.rows(keys)[:, 1].sum()) if keys else 0.0



@dataclass(frozen=True)
class Hold:
    """An alerting conjunction: its rows from ``since`` to ``until`` (open while it
    alerts) stay out of the reference."""

    conjunction: dict[str, Any]
    since: dt.datetime
    until: dt.datetime | None = None



class HeldReference:
    """The reference-hold half of :class:`~driftwatch.monitors.trigger_mining.TriggerMiningDetector`
    (a mixin: the detector sets the attributes below in its constructor)."""

    window_s: int
    guard_s: int
    _last: dict[str, dict[str, Any]]
    _holds: dict[str, Hold]
    _cut: dict[tuple[dt.datetime, dt.datetime], SegmentTable]
    _guarded: dict[tuple[dt.datetime, dt.datetime], SegmentTable]

    def hold_references(self, segments: Collection[str], at: dt.datetime | None = None) -> None:
        """Alerting segments whose conjunction came from this detector: hold it."""
        held = set(segments)
        for seg, conj in self._last.items():
            if seg in held and seg not in self._holds and at is not None:
                since = at - dt.timedelta(seconds=self.window_s)
                self._holds[seg] = Hold(conj, since)
        for seg, hold in list(self._holds.items()):
            if seg not in held and hold.until is None:
                self._holds[seg] = Hold(hold.conjunction, hold.since, at or hold.since)

    def _reference(self, ref: SlidingReference, r_lo: dt.datetime,
                   r_hi: dt.datetime) -> SegmentTable:
        """The trailing reference without the rows of held conjunctions' periods."""
        return self._cut_holds(ref, ref.table(r_lo, r_hi), r_lo, r_hi)

    def _cut_holds(self, ref: SlidingReference, table: SegmentTable, r_lo: dt.datetime,
                   r_hi: dt.datetime, prune: bool = True) -> SegmentTable:
        """``table`` (the counts of ``[r_lo, r_hi)``) without the held conjunctions' rows
        (``prune``: the window is the whole reference, forget what slid out of it)."""
        for seg, hold in list(self._holds.items()):
            end = min(hold.until or r_hi, r_hi)
            if hold.until is not None and hold.until <= r_lo:
                if prune:
                    del self._holds[seg]  # the alerting period slid out of the window
                continue
            lo = max(hold.since, r_lo)
            if end <= lo:
                continue
            span = (lo, end)
            if span not in self._cut:
                self._cut[span] = ref.fetch(lo, end)
            cut = self._cut[span]
            keys = [k for k in cut.keys if k and matches(hold.conjunction, parse_key(k))]
            if keys:
                table = table.combine(SegmentTable(keys, cut.rows(keys)), sign=-1.0)
        if prune:
            # keep the spans of this window and of the guard's hours after it (read
            # next by the guard's call, which does not prune: evicting its span here
            # read it again at every pass)
            g_hi = r_hi + dt.timedelta(seconds=self.guard_s)
            live = {(max(h.since, lo), min(h.until or hi, hi))
                    for h in self._holds.values() for lo, hi in ((r_lo, r_hi), (r_hi, g_hi))}
            self._cut = {s: t for s, t in self._cut.items() if s in live}
        return table

    def _guarded_reference(self, ref: SlidingReference, r_lo: dt.datetime,
                           r_hi: dt.datetime) -> tuple[SegmentTable, dt.datetime]:
        """The reference ``[r_lo, r_hi)`` without its last ``guard_s`` seconds where
        enough history is left (:data:`GUARD_HISTORY`), held conjunctions cut out; and
        where it ends."""
        g_hi = max(r_lo, r_hi - dt.timedelta(seconds=self.guard_s))
        reference = self._reference(ref, r_lo, g_hi)
        if g_hi < r_hi:
            if (g_hi, r_hi) not in self._guarded:  # the guard's hours: one read an hour
                self._guarded = {(g_hi, r_hi): ref.fetch(g_hi, r_hi)}
            piece = self._guarded[(g_hi, r_hi)]
            if _suspicious(reference) < GUARD_HISTORY * _suspicious(piece):
                # too little history without the guard's hours (a young store): keep them
                return reference.combine(self._cut_holds(ref, piece, g_hi, r_hi,
                                                         prune=False)), r_hi
        return reference, g_hi
