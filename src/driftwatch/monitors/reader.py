"""Current windows of a block of passes from one query over pass-interval buckets.

Backfill (:mod:`driftwatch.monitors.backfill`) reads the current windows of a block of
passes at once. With :data:`~driftwatch.monitors.backfill.PASS_AT` every row is
repeated for each pass whose window holds it (``window_s / interval_s`` times: 12 for
an hour's window every 5 minutes) before ClickHouse groups it. For counts that add up
(``count()``, ``countIf``, ``sum`` of integers) that is not needed: a row belongs to
exactly one pass *interval* ``[p - interval_s, p)`` (the bucket of the pass ``p``), so
the query groups by bucket (:data:`BUCKET`), and each pass's window
``[at - window_s, at)`` is the sum of the ``window_s / interval_s`` buckets ending at
``at``, added up here in memory (:func:`window_sums`). The counts are the same
integers the pass's own query returns, and a key appears in a pass's table exactly
when the pass's query would return it (some row of it in the window).

Distinct counts (``uniqExact``) and float sums do not add up over buckets (or not bit
for bit): detectors that need them keep the ``arrayJoin`` grid. A window that is not a
whole number of intervals falls back to it too (:func:`query_windows`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from driftwatch.monitors.backfill import epoch_seconds, grid_sql, query_passes
from driftwatch.monitors.base import Columns, query_table
from driftwatch.monitors.segments import SegmentSpec, segment_sql
from driftwatch.store.client import Store

BUCKET_KEY = "pass_bucket"
"""Column (and ``GROUP BY`` key) naming a row's pass interval, in seconds since the epoch."""

BUCKET = (
    "(intDiv(toUnixTimestamp64Milli(event_time), {bf_step_ms:Int64}) + 1) * {bf_step:Int64} "
    f"AS {BUCKET_KEY}"
)
"""Select item: the pass ``p`` on the grid whose interval ``[p - step, p)`` holds the
row's ``event_time`` (to the millisecond, as :data:`~driftwatch.monitors.base.WINDOW`)."""

_ROWS = "_rows"


def bucket_sql(
    spec: SegmentSpec, *, select: str, source: str, where: str, keys: Sequence[str] = ()
) -> str:
    """:func:`~driftwatch.monitors.segments.segment_sql` grouped by pass bucket too, with a
    row count (``_rows``) that tells which keys a window holds."""
    return segment_sql(
        spec,
        select=f"{BUCKET}, {select}, count() AS {_ROWS}",
        source=source,
        where=where,
        keys=(BUCKET_KEY, *keys),
    )


def whole_buckets(passes: Sequence[dt.datetime], window_s: int, step_s: int) -> bool:
    """Whether every window of ``passes`` is a whole number of pass intervals on the grid."""
    return (
        window_s > 0
        and step_s > 0
        and window_s % step_s == 0
        and all(epoch_seconds(at) % step_s == 0 for at in passes)
    )


def query_windows(
    store: Store,
    sql: str,
    passes: Sequence[dt.datetime],
    window_s: int,
    step_s: int,
    keys: Sequence[str],
    values: Sequence[str],
    **extra: Any,
) -> dict[dt.datetime, Columns]:
    """The columns of each pass's window from ``sql`` (a :func:`bucket_sql` query with
    :data:`~driftwatch.monitors.base.WINDOW`), summed over its buckets by
    :func:`window_sums`. Needs :func:`whole_buckets`."""
    if not passes:
        return {}
    if not whole_buckets(passes, window_s, step_s):
        raise ValueError(f"window_s={window_s!r} is not whole intervals of {step_s!r} s")
    params = {
        "lo": min(passes) - dt.timedelta(seconds=window_s),
        "hi": max(passes),
        "bf_step_ms": step_s * 1000,
        "bf_step": step_s,
        **extra,
    }
    cols = query_table(store, sql, params)
    return window_sums(cols, passes, window_s, step_s, keys, values)


def window_sums(
    cols: Columns,
    passes: Sequence[dt.datetime],
    window_s: int,
    step_s: int,
    keys: Sequence[str],
    values: Sequence[str],
) -> dict[dt.datetime, Columns]:
    """Per pass ``at``: the ``values`` columns summed over the buckets of
    ``(at - window_s, at]`` per distinct ``keys`` tuple, for the keys with rows
    (``_rows``) in that window; int64 columns.

    >>> from driftwatch.events import EPOCH
    >>> t = EPOCH + dt.timedelta(seconds=600)
    >>> cols = Columns({BUCKET_KEY: np.array([300, 600, 600]), "s": np.array(["a", "a", "b"]),
    ...                 "c": np.array([1, 2, 5]), "_rows": np.array([1, 2, 5])})
    >>> out = window_sums(cols, [t - dt.timedelta(seconds=300), t], 600, 300, ["s"], ["c"])
    >>> {str(at.time()): dict(zip(c["s"].tolist(), c["c"].tolist())) for at, c in out.items()}
    {'00:05:00': {'a': 1}, '00:10:00': {'a': 3, 'b': 5}}
    """
    out = {at: Columns() for at in passes}
    if not cols or not len(cols[BUCKET_KEY]):
        return out
    bucket = np.asarray(cols[BUCKET_KEY], dtype=np.int64)
    order = np.argsort(bucket, kind="stable")
    bucket = bucket[order]
    codes, key_cols = _key_codes(cols, keys, order)
    ncode = int(codes.max()) + 1
    weights = [np.asarray(cols[v], dtype=np.float64)[order] for v in (*values, _ROWS)]
    for at in passes:
        sec = epoch_seconds(at)
        lo, hi = np.searchsorted(bucket, [sec - window_s + step_s, sec + 1])
        if hi <= lo:
            continue
        sums = [
            np.bincount(codes[lo:hi], weights=w[lo:hi], minlength=ncode) for w in weights
        ]
        held = np.flatnonzero(sums[-1] > 0)
        result = Columns({k: v[held] for k, v in key_cols.items()})
        for name, total in zip(values, sums, strict=False):
            result[name] = np.rint(total[held]).astype(np.int64)
        out[at] = result
    return out


def _key_codes(
    cols: Columns, keys: Sequence[str], order: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
    """One code per distinct ``keys`` tuple of the rows (in ``order``), and each key
    column's value per code."""
    combined = np.zeros(len(order), dtype=np.int64)
    parts = []
    for key in keys:
        part, uniques = pd.factorize(np.asarray(cols[key])[order])
        parts.append((part, np.asarray(uniques)))
        combined = combined * max(len(uniques), 1) + part
    _, index, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return inverse.astype(np.int64).ravel(), {
        key: uniques[part[index]] for key, (part, uniques) in zip(keys, parts, strict=True)
    }


def read_windows(
    store: Store,
    spec: SegmentSpec,
    passes: Sequence[dt.datetime],
    window_s: int,
    step_s: int,
    *,
    select: str,
    source: str,
    where: str,
    values: Sequence[str],
    keys: Sequence[str] = (),
    columns: Sequence[str] | None = None,
    **extra: Any,
) -> dict[dt.datetime, Columns]:
    """The current window of every pass of ``passes`` for a per-segment query whose
    ``values`` (aliases in ``select``) add up over rows: one query over pass buckets
    (:func:`query_windows`) when the windows are whole intervals, else the
    ``arrayJoin`` grid. ``columns`` names the output key columns (default
    ``segment`` and ``keys``)."""
    if not whole_buckets(passes, window_s, step_s):
        sql = grid_sql(spec, batched=True, select=select, source=source, where=where, keys=keys)
        return query_passes(store, sql, passes, window_s, step_s, **extra)
    sql = bucket_sql(spec, select=select, source=source, where=where, keys=keys)
    names = ("segment", *keys) if columns is None else tuple(columns)
    return query_windows(store, sql, passes, window_s, step_s, names, values, **extra)
