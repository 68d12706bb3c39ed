"""Backfill mode: the current windows of many monitor passes in one query per detector.

When the watermark is more than one pass behind (a replay, a catch-up after
downtime), running pass by pass costs one current-window query per detector per
pass (576 passes for two days at the default 300 s interval). In backfill mode the
monitor first asks every detector that implements :class:`BatchedWindows` for the
current windows of a whole block of passes at once: the pass grid becomes a
``GROUP BY`` key (:data:`PASS_AT` turns each row into the passes whose window
``[at - window_s, at)`` contains it with ``arrayJoin``), so distinct counts stay
exact (they are computed per pass, not summed over buckets). Then the passes still
run one after another in Python (:meth:`Monitor.run_pass`): the trailing
references slide, the reference hold and the alert lifecycle advance pass by pass
exactly as before; a detector only takes its current window from the block instead
of querying it. The ``drift_results`` rows of the block are written in one insert.

A detector opts in by inheriting :class:`BatchedWindows` and implementing
:meth:`BatchedWindows.window_batch` (a detector that runs every ``every_s`` gets the
passes it is due at); detectors that do not run pass by pass inside the block,
unchanged. A block whose batched
query fails falls back to pass-by-pass queries for that detector.

The references are read in blocks too (:func:`read_chunks`): while a block runs, each
sliding reference reads the hourly chunks it slides in or out for the block's whole
span in one query (:meth:`~driftwatch.monitors.reference.SlidingReference.look_ahead`),
and every dispersion refresh reads its chunks in one query, on both paths
(:class:`~driftwatch.monitors.dispersion.ReferenceDispersion` ``many``). Chunks are
read while the block runs, from the store as the passes one by one would see it, and
forgotten after the block.

Where the time went (cProfile of ``bench/backfill.py --quick``'s backfill replay, 2 h,
29,647 events, 36 passes, shared machine at load 5-14; monitor passes 104 s of 154 s
wall): beta-binomial tails of the cents and beneficiary max-cell tests 52 s
(:func:`driftwatch.stats.betabinom.betabinom_sf`: now summed in blocks of steps over
the still-active tails, bit for bit the same, ~7x faster), trigger mining 24 s
(:mod:`~driftwatch.monitors.trigger_mining`, its lattice search), detector queries
15 s (428 ``query_table`` calls: current windows in blocks, reference chunks one per
hour and detector, dispersion refreshes 24 chunk queries each), ``details`` JSON of
the ``drift_results`` rows 9.5 s (now column-wise), the block's insert 1.7 s. The same
for 8 h (72,847 events, 108 passes, load ~15, after the beta-binomial change): passes
699 s of 862 s wall, of which trigger mining 500 s (its lattice search 438 s: the
largest share by far), the blocks' current-window queries 60 s, reference tables 52 s
(29 s re-reading released segments' rows, now read once per window end), the
pre-deployment score drift 43 s, beneficiary 34 s, ``drift_results`` rows 32 s (30 s
``details`` JSON), inserts 15 s. After these changes (``bench/backfill.py --hours 8``,
load ~7, ``monitor_s``): backfill monitor time 145 s, of which trigger mining 85 s,
the blocks' current-window queries 17 s, pre-deployment score drift 13 s, beneficiary
9 s, cents 4 s, the ``drift_results`` insert 4 s, every other detector under 3 s.

Since then (session of 2026-12-07): additive current windows are read per pass
interval (:mod:`~driftwatch.monitors.reader`: one row per bucket instead of one per
pass whose window holds it), cents' distinct cards as rows minus repeats, the
pre-deployment score drift, benford's day windows and beneficiary's payers in blocks,
the max-cell tests of unchanged segments kept (``CellsMemo``) and the ``drift_results``
timestamps written as ticks. ``bench/backfill.py`` prints the block reads per detector
as ``_prefetch.<name>``. Stop 38: a sliding reference reads the chunks it slides in and
out in one query. In a 48 h profile a fifth of the backfill's samples were released
segments' rows since their release (``SlidingReference._fetch_cached``: all segments'
rows of ``[release, window end)``, one query per hour and release time); reading a
block's window ends in one grid query gave identical results but no measurable gain
(the reads are bound by rows, not by queries), so it was not kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from driftwatch.errors import StoreError
from driftwatch.events import EPOCH
from driftwatch.monitors.base import Columns, query_table
from driftwatch.monitors.reference import Fetch, SegmentTable
from driftwatch.monitors.segments import SegmentSpec, segment_sql
from driftwatch.pipeline import StageOutput
from driftwatch.store.client import Store

if TYPE_CHECKING:
    from driftwatch.monitors.monitor import Monitor

log = logging.getLogger(__name__)

FLUSH_ROWS = 100_000
"""Insert the collected ``drift_results`` rows of a block once there are this many."""

GRID_KEY = "pass_at"
"""Column (and ``GROUP BY`` key) naming the pass, in seconds since the epoch."""

_MS = "toUnixTimestamp64Milli(event_time)"
PASS_AT = (
    "arrayJoin(arrayFilter(p -> p >= {bf_first:Int64} AND p <= {bf_last:Int64} "
    f"AND p * 1000 <= {_MS} + {{bf_width_ms:Int64}} "
    "AND (empty({bf_only:Array(Int64)}) OR has({bf_only:Array(Int64)}, p)), "
    f"arrayMap(j -> (intDiv({_MS}, {{bf_step_ms:Int64}}) + 1 + j) * {{bf_step:Int64}}, "
    f"range({{bf_count:UInt32}})))) AS {GRID_KEY}"
)
"""Select item: every pass time ``p`` on the grid of the block whose window
``[p - width, p)`` contains the row's ``event_time`` (exact to the millisecond, like
:data:`~driftwatch.monitors.base.WINDOW`), and, if ``bf_only`` lists any, one of those.
Parameters from :func:`grid_params`."""


def grid_params(
    passes: Sequence[dt.datetime], window_s: int, step_s: int, **extra: Any
) -> dict[str, Any]:
    """Parameters of :data:`PASS_AT` and of the ``WINDOW`` spanning every window of
    ``passes`` (``lo``/``hi``), plus ``extra``.

    >>> t = dt.datetime(2026, 3, 1, 1, tzinfo=dt.UTC)
    >>> p = grid_params([t, t + dt.timedelta(seconds=300)], 3600, 300)
    >>> p["lo"].isoformat(), p["bf_count"], p["bf_last"] - p["bf_first"]
    ('2026-03-01T00:00:00+00:00', 12, 300)
    """
    if window_s <= 0 or step_s <= 0:
        raise ValueError(f"window_s={window_s!r}, step_s={step_s!r}; allowed: > 0")
    first, last = min(passes), max(passes)
    return {
        "lo": first - dt.timedelta(seconds=window_s),
        "hi": last,
        "bf_first": epoch_seconds(first),
        "bf_last": epoch_seconds(last),
        "bf_width_ms": window_s * 1000,
        "bf_step_ms": step_s * 1000,
        "bf_step": step_s,
        "bf_count": math.ceil(window_s / step_s),
        "bf_only": [],
        **extra,
    }


def epoch_seconds(t: dt.datetime) -> int:
    """Whole seconds of ``t`` since the epoch (the pass grid's unit)."""
    return int((t - EPOCH) // dt.timedelta(seconds=1))


def split_passes(cols: Columns, passes: Sequence[dt.datetime]) -> dict[dt.datetime, Columns]:
    """The rows of each pass of ``passes`` (without the pass column); a pass without
    rows gets an empty :class:`~driftwatch.monitors.base.Columns`."""
    out = {at: Columns() for at in passes}
    if not cols or not len(cols[GRID_KEY]):
        return out
    keys = np.asarray(cols[GRID_KEY], dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    names = [c for c in cols if c != GRID_KEY]
    for at in passes:
        sec = epoch_seconds(at)
        lo, hi = np.searchsorted(sorted_keys, [sec, sec + 1])
        if hi > lo:
            idx = order[lo:hi]
            out[at] = Columns({c: np.asarray(cols[c])[idx] for c in names})
    return out


def query_passes(
    store: Store,
    sql: str,
    passes: Sequence[dt.datetime],
    window_s: int,
    step_s: int,
    **extra: Any,
) -> dict[dt.datetime, Columns]:
    """Run ``sql`` (which selects :data:`PASS_AT` and groups by :data:`GRID_KEY`) once
    for every pass of ``passes``; its columns per pass."""
    cols = query_table(store, sql, grid_params(passes, window_s, step_s, **extra))
    return split_passes(cols, passes)


def read_chunks(
    store: Store,
    sql: str,
    spans: Sequence[tuple[dt.datetime, dt.datetime]],
    to_table: Callable[[Columns], SegmentTable],
    fallback: Fetch,
    **extra: Any,
) -> list[SegmentTable]:
    """The tables of the windows ``spans`` in one query: ``sql`` (as for
    :func:`query_passes`) with the pass grid of step and width one span, restricted to
    the spans' ends; ``to_table`` makes each span's table. Spans of unequal length, or
    whose ends are off that grid, are read one by one with ``fallback``.
    """
    width_s = chunk_grid(spans)
    if width_s is None:
        return [fallback(lo, hi) for lo, hi in spans]
    per = query_chunks(store, sql, spans, width_s, **extra)
    return [to_table(cols) for cols in per]


def chunk_grid(spans: Sequence[tuple[dt.datetime, dt.datetime]]) -> int | None:
    """The common length of ``spans`` in seconds if every one has it and ends on its
    grid (a multiple of it since the epoch); None otherwise (or no spans).

    >>> t = dt.datetime(2026, 3, 1, 5, tzinfo=dt.UTC)
    >>> hour = dt.timedelta(hours=1)
    >>> chunk_grid([(t - hour, t), (t - 3 * hour, t - 2 * hour)]), chunk_grid([(t, t + 2 * hour)])
    (3600, None)
    """
    if not spans:
        return None
    width = spans[0][1] - spans[0][0]
    if width <= dt.timedelta(0) or any(
        hi - lo != width or (hi - EPOCH) % width for lo, hi in spans
    ):
        return None
    return int(width.total_seconds())


def query_chunks(
    store: Store,
    sql: str,
    spans: Sequence[tuple[dt.datetime, dt.datetime]],
    width_s: int,
    **extra: Any,
) -> list[Columns]:
    """The columns of ``sql`` (as for :func:`query_passes`) for each of ``spans`` (of
    :func:`chunk_grid` ``width_s``), in one query."""
    ends = [hi for _, hi in spans]
    only = [epoch_seconds(t) for t in ends]
    per = query_passes(store, sql, ends, width_s, width_s, bf_only=only, **extra)
    return [per[hi] for hi in ends]


class BatchedWindows:
    """Opt-in interface: a detector that reads the current windows of many passes at once.

    Implement :meth:`window_batch`; in :meth:`evaluate` take the current window from
    :meth:`prefetched` (None: query it as usual).
    """

    _block: dict[dt.datetime, Any] | None = None
    batched_passes: int = 0
    """Passes whose current window came from a block (for tests and benchmarks)."""

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> Mapping[dt.datetime, Any]:
        """The current-window data of every pass of ``passes`` (exactly what the
        detector's pass-by-pass query would return at each pass)."""
        raise NotImplementedError

    def prefetch(self, store: Store, passes: Sequence[dt.datetime]) -> None:
        """Read the current windows of ``passes`` (one block) for :meth:`prefetched`."""
        self._block = dict(self.window_batch(store, passes)) if passes else None

    def prefetched(self, at: dt.datetime) -> Any | None:
        """The prefetched current window of the pass at ``at`` (None: not prefetched)."""
        found = None if self._block is None else self._block.pop(at, None)
        if found is not None:
            self.batched_passes += 1
        return found

    def drop_prefetched(self) -> None:
        """Forget what :meth:`prefetch` read (the block is over)."""
        self._block = None


def _look_ahead(monitor: Monitor, span_s: int) -> None:
    """Set every detector's read-ahead span; a detector that fails at it (or a plugin
    without it) reads its reference chunk by chunk, and the others go on."""
    for det in monitor.detectors:
        try:
            det.look_ahead(span_s)
        except Exception:  # a broken detector must not stop the others
            log.exception("detector %s: look-ahead failed", det.name)
            monitor.detector_errors[f"{det.name}:look_ahead"] += 1


def run_backfill(monitor: Monitor, passes: Sequence[dt.datetime], block: int) -> StageOutput:
    """Run ``passes`` (consecutive, oldest first) in blocks of at most ``block`` passes:
    batched current windows, then every pass in order, one ``drift_results`` insert
    per block (or per :data:`FLUSH_ROWS` rows). Returns the findings, as
    :meth:`Monitor.on_watermark` does."""
    out = StageOutput()
    size = max(1, block)
    for start in range(0, len(passes), size):
        chunk = passes[start : start + size]
        started = time.perf_counter()
        batched = _prefetch(monitor, chunk)
        monitor.seconds["_prefetch"] += time.perf_counter() - started
        monitor.results_buffer = {}
        span_s = int((chunk[-1] - chunk[0]).total_seconds())
        _look_ahead(monitor, span_s)
        try:
            for at in chunk:
                out.findings.extend(monitor.run_pass(at).findings)
                _flush(monitor, FLUSH_ROWS)
        finally:
            _look_ahead(monitor, 0)
            for det in batched:
                det.drop_prefetched()
            _flush(monitor, 0)
            monitor.results_buffer = None
    return out


def _flush(monitor: Monitor, min_rows: int) -> None:
    """Insert the collected ``drift_results`` rows if there are at least ``min_rows``."""
    cols = monitor.results_buffer
    if cols and len(cols["detector"]) >= min_rows:
        monitor.results_buffer = {}
        started = time.perf_counter()
        monitor.store.insert_columns("drift_results", cols)
        monitor.seconds["_insert"] += time.perf_counter() - started


def _prefetch(monitor: Monitor, passes: Sequence[dt.datetime]) -> list[BatchedWindows]:
    """Prefetch the block for every batchable detector, at the passes it is due."""
    done: list[BatchedWindows] = []
    for det in monitor.detectors:
        due = [at for at in passes if det.due(at)]
        if not isinstance(det, BatchedWindows) or not due:
            continue
        started = time.perf_counter()
        try:
            det.prefetch(monitor.store, due)
        except StoreError:
            raise
        except Exception:  # its passes then query pass by pass, as without backfill
            log.exception("detector %s: batched windows failed; pass by pass", det.name)
            monitor.detector_errors[f"{det.name}:backfill"] += 1
            det.drop_prefetched()
            continue
        finally:
            monitor.seconds[f"_prefetch:{det.name}"] += time.perf_counter() - started
        done.append(det)
    return done


def grid_sql(
    spec: SegmentSpec,
    *,
    batched: bool,
    select: str,
    source: str,
    where: str,
    keys: Sequence[str] = (),
) -> str:
    """:func:`~driftwatch.monitors.segments.segment_sql`, with the pass grid as one more
    key when ``batched`` (for :func:`query_passes`)."""
    if batched:
        select, keys = f"{PASS_AT}, {select}", (GRID_KEY, *keys)
    return segment_sql(spec, select=select, source=source, where=where, keys=keys)
