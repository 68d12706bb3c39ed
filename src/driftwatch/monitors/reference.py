"""Per-segment count tables and the sliding trailing reference built from them.

A detector's reference is a table of additive counts per key (usually a segment,
sometimes ``segment|model versions``) over a trailing event-time window, e.g. the
seven days before the current window. Recomputing it from raw rows every pass
would scan the whole window every five minutes; instead :class:`SlidingReference`
keeps the sum over chunk-aligned windows and, when the window moves, adds the
chunks that entered and subtracts the chunks that left (one small query each).
Counts are exact as long as no event arrives for a chunk after it was read; a full
rebuild every ``rebuild_s`` of event time heals anything that did.

A reference never absorbs an attack: while a segment is alerting, the monitor tells
the reference (:meth:`SlidingReference.hold`) and that segment's rows stay frozen at
the counts of the last clean pass, the reference the alert was raised against, until
the alert resolves on clean evidence; after that, until the alerting period has slid
out of the window, the reference is those counts plus the clean rows since. Without
this an attack that outlasts the window slides into its own baseline and the detector
goes quiet while the attack still runs.

>>> t = SegmentTable.from_long(["a", "a", "b"], [0, 2, 1], [3, 1, 5], cells=3)
>>> t.rows(["b", "zz", "a"]).tolist()
[[0.0, 5.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 1.0]]
>>> t.combine(t, sign=-1).keys
[]
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from driftwatch.events import EPOCH

FloatArray = NDArray[np.float64]

_FEW = 64
"""Up to this many keys :meth:`SegmentTable.rows` looks them up in a dict."""


@dataclass(frozen=True)
class SegmentTable:
    """Dense counts: one row of ``cells`` numbers per key.

    Attributes
    ----------
    keys : list of str
        Unique keys, one per row of ``values``.
    values : ndarray of float64, shape (len(keys), cells)
    """

    keys: list[str]
    values: FloatArray

    @classmethod
    def empty(cls, cells: int) -> SegmentTable:
        """A table with no key."""
        return cls([], np.zeros((0, cells)))

    @classmethod
    def from_long(
        cls, keys: Sequence[str] | ArrayLike, cell: ArrayLike, count: ArrayLike, cells: int
    ) -> SegmentTable:
        """From rows ``(key, cell index, count)``; repeated (key, cell) pairs add up."""
        k = pd.Index(np.asarray(keys, dtype=object), dtype=object)
        codes, uniques = pd.factorize(k)
        c = np.asarray(cell, dtype=np.int64)
        if c.size and (c.min() < 0 or c.max() >= cells):
            raise ValueError(f"cell index outside 0..{cells - 1}")
        weights = np.asarray(count, dtype=np.float64)
        if codes.size and codes.min() < 0:  # a missing key: as np.add.at indexes it
            codes = np.where(codes < 0, len(uniques) - 1, codes)
        # bincount adds in row order, as np.add.at does (several times faster)
        flat = np.bincount(codes * cells + c, weights=weights, minlength=len(uniques) * cells)
        values = np.asarray(flat, dtype=np.float64).reshape(len(uniques), cells)
        return cls([str(x) for x in uniques], values)

    @classmethod
    def from_wide(
        cls, keys: Sequence[str] | ArrayLike, columns: Sequence[ArrayLike]
    ) -> SegmentTable:
        """From one row per key and one array per cell; repeated keys add up."""
        k = pd.Index(np.asarray(keys, dtype=object), dtype=object)
        codes, uniques = pd.factorize(k)
        values = np.zeros((len(uniques), len(columns)))
        for j, col in enumerate(columns):
            np.add.at(values[:, j], codes, np.asarray(col, dtype=np.float64))
        return cls([str(x) for x in uniques], values)

    def canonical(self) -> SegmentTable:
        """The same counts with the keys in sorted order (query results arrive in any
        order; sums over rows then do not depend on it).

        >>> SegmentTable(["b", "a"], np.array([[1.0], [2.0]])).canonical().keys
        ['a', 'b']
        """
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        if order == list(range(len(self.keys))):
            return self
        return SegmentTable([self.keys[i] for i in order], self.values[order])

    @functools.cached_property
    def index(self) -> pd.Index:
        """The keys as a hashed index (built once per table). Indexes here are of
        dtype object: pandas 3 would infer arrow-backed strings, slow to build and read."""
        return pd.Index(self.keys, dtype=object)

    @property
    def cells(self) -> int:
        """Number of cells per key."""
        return int(self.values.shape[1])

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}

    @functools.cached_property
    def by_segment(self) -> dict[str, list[str]]:
        """The keys of each segment (:func:`segment_of`), in table order (built once per
        table: every released segment looks its keys up here).

        >>> t = SegmentTable(["a\x1fx", "b", "a"], np.zeros((3, 1)))
        >>> t.by_segment["a"] == ["a\x1fx", "a"], list(t.by_segment)
        (True, ['a', 'b'])
        """
        out: dict[str, list[str]] = {}
        for key in self.keys:
            out.setdefault(segment_of(key), []).append(key)
        return out

    def rows(self, keys: Sequence[str] | ArrayLike) -> FloatArray:
        """The rows for ``keys`` (zeros for unknown keys), shape ``(len(keys), cells)``."""
        if isinstance(keys, list) and len(keys) <= _FEW:  # a dict beats building an index
            pos = self._positions
            idx = np.array([pos.get(k, -1) for k in keys], dtype=np.intp)
        else:
            idx = self.index.get_indexer(pd.Index(np.asarray(keys, dtype=object), dtype=object))
        out = np.zeros((len(idx), self.cells))
        hit = idx >= 0
        out[hit] = self.values[idx[hit]]
        return out

    def total(self) -> FloatArray:
        """Column sums over every key."""
        return np.asarray(self.values.sum(axis=0), dtype=np.float64)

    def combine(self, other: SegmentTable, sign: float = 1.0) -> SegmentTable:
        """``self + sign * other`` over the union of keys; negative counts clip to 0 and
        all-zero rows are dropped."""
        if other.cells != self.cells:
            raise ValueError(f"cells differ: {self.cells} != {other.cells}")
        keys = pd.Index(self.keys, dtype=object).append(pd.Index(other.keys, dtype=object))
        codes, uniques = pd.factorize(keys)
        values = np.zeros((len(uniques), self.cells))
        n = len(self.keys)
        np.add.at(values, codes[:n], self.values)
        np.add.at(values, codes[n:], sign * other.values)
        np.maximum(values, 0.0, out=values)
        keep = np.asarray(values.any(axis=1), dtype=bool)
        names = [str(x) for x, k in zip(uniques, keep, strict=True) if k]
        return SegmentTable(names, values[keep])

    def with_rows(self, rows: dict[str, FloatArray]) -> SegmentTable:
        """This table with the rows of ``rows`` replacing (or adding) those keys.

        >>> t = SegmentTable(["a", "b"], np.array([[1.0, 2.0], [3.0, 4.0]]))
        >>> u = t.with_rows({"b": np.array([9.0, 9.0]), "c": np.array([1.0, 0.0])})
        >>> u.keys, u.values.tolist()
        (['a', 'b', 'c'], [[1.0, 2.0], [9.0, 9.0], [1.0, 0.0]])
        """
        if not rows:
            return self
        index = self.index
        values = self.values.copy()
        keys = list(self.keys)
        extra: list[FloatArray] = []
        for key, row in rows.items():
            if len(row) != self.cells:
                raise ValueError(f"row {key!r} has {len(row)} cells, expected {self.cells}")
            if key in index:
                values[index.get_loc(key)] = row
            else:
                keys.append(key)
                extra.append(np.asarray(row, dtype=np.float64))
        if extra:
            values = np.vstack([values, *extra])
        return SegmentTable(keys, values)


def _plus(a: SegmentTable, b: SegmentTable) -> SegmentTable:
    """``a + b`` over the union of keys, every row kept (as one read of both spans
    returns them), keys sorted.

    >>> t = _plus(SegmentTable(["b"], np.array([[1.0, 0.0]])),
    ...           SegmentTable(["a", "b"], np.array([[0.0, 0.0], [2.0, 3.0]])))
    >>> t.keys, t.values.tolist()
    (['a', 'b'], [[0.0, 0.0], [3.0, 3.0]])
    """
    index = a.index
    extra = [k for k in b.keys if k not in index]
    keys = [*a.keys, *extra]
    values = np.vstack([a.values, np.zeros((len(extra), a.cells))])
    values[pd.Index(keys, dtype=object).get_indexer(b.index)] += b.values
    return SegmentTable(keys, values).canonical()


def segment_of(key: str) -> str:
    """The segment a reference key belongs to (keys may append ``\x1f`` and more).

    >>> segment_of("mcc=5967\x1fv46>v47"), segment_of("mcc=5967")
    ('mcc=5967', 'mcc=5967')
    """
    return key.split("\x1f", 1)[0]


Fetch = Callable[[dt.datetime, dt.datetime], SegmentTable]
FetchMany = Callable[[Sequence[tuple[dt.datetime, dt.datetime]]], list[SegmentTable]]
"""The tables of many windows ``[start, end)`` read at once (one query)."""


def floor_time(t: dt.datetime, step_s: int) -> dt.datetime:
    """``t`` rounded down to a multiple of ``step_s`` seconds since the epoch.

    >>> floor_time(dt.datetime(2026, 3, 18, 14, 37, tzinfo=dt.UTC), 3600).isoformat()
    '2026-03-18T14:00:00+00:00'
    """
    secs = (t - EPOCH) // dt.timedelta(seconds=1)
    return EPOCH + dt.timedelta(seconds=secs - secs % step_s)


class SlidingReference:
    """The sum of a count table over a trailing window that slides in chunks.

    Parameters
    ----------
    fetch : callable
        ``fetch(start, end)`` returns the :class:`SegmentTable` of ``[start, end)``.
    chunk_s : int
        Window bounds are multiples of this many seconds (default 3600).
    rebuild_s : int
        Recompute the whole window from scratch after this much event time
        (default one day).
    many : callable, optional
        ``many(spans)`` reads the tables of many chunks in one query; with it and a
        :meth:`look_ahead`, a chunk read also reads the chunks that follow it (backfill).

    Attributes
    ----------
    fetches : int
        Number of tables asked for (for tests and benchmarks).
    reads : int
        Number of ``fetch`` and ``many`` calls made (store queries).
    held : frozenset of str
        Segments whose rows are frozen (see :meth:`hold`).
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        chunk_s: int = 3600,
        rebuild_s: int = 86400,
        many: FetchMany | None = None,
    ) -> None:
        if chunk_s <= 0:
            raise ValueError(f"chunk_s={chunk_s!r}; allowed: > 0")
        if rebuild_s < chunk_s:
            raise ValueError(f"rebuild_s={rebuild_s!r}; allowed: >= chunk_s ({chunk_s})")
        self.fetch = fetch
        self.many = many
        self.chunk_s = chunk_s
        self.rebuild_s = rebuild_s
        self.fetches = 0
        self.reads = 0
        self._ahead_s = 0
        self._read_ahead: dict[tuple[dt.datetime, dt.datetime], SegmentTable] = {}
        self._table: SegmentTable | None = None
        self._span: tuple[dt.datetime, dt.datetime] | None = None
        self._built_at: dt.datetime | None = None
        self._last: SegmentTable | None = None
        self._frozen: dict[str, FloatArray] = {}
        self._last_end: dt.datetime | None = None
        self._since: dict[str, dt.datetime] = {}
        self._released: dict[str, tuple[dt.datetime, dt.datetime, dict[str, FloatArray]]] = {}
        self._cuts: dict[dt.datetime, tuple[dt.datetime, SegmentTable]] = {}
        self._entered: tuple[tuple[dt.datetime, dt.datetime], SegmentTable] | None = None
        self.held: frozenset[str] = frozenset()

    def hold(self, segments: Collection[str], at: dt.datetime | None = None) -> None:
        """Freeze the rows of ``segments`` (alerting now) and release all others.

        A segment newly held keeps the counts it had in the last table returned (the
        reference its alert was raised against: the last clean pass); every key of it
        (``segment`` and ``segment\x1f...``) is frozen. A segment no longer listed is
        released at ``at`` (the pass time): until its alerting period has slid out of
        the trailing window, its reference is the frozen counts plus the rows that
        arrived after ``at`` (clean evidence); then it follows the window again.
        Without ``at`` a released segment follows the window at once.
        """
        held = frozenset(segments)
        new = held - self.held
        last = self._last
        if last is not None and new:
            for key, row in zip(last.keys, last.values, strict=True):
                if key not in self._frozen and segment_of(key) in new:
                    self._frozen[key] = row.copy()
            for seg in new:
                self._since[seg] = self._last_end or at or EPOCH
                self._released.pop(seg, None)
        for seg in self.held - held:
            snap = {k: v for k, v in self._frozen.items() if segment_of(k) == seg}
            since = self._since.pop(seg, None)
            if at is not None and since is not None:
                self._released[seg] = (since, at, snap)
        self._frozen = {k: v for k, v in self._frozen.items() if segment_of(k) in held}
        self.held = held

    @property
    def excluded(self) -> dict[str, tuple[dt.datetime, dt.datetime]]:
        """Released segments and their alerting period, kept out of their reference."""
        return {seg: (a, b) for seg, (a, b, _) in self._released.items()}

    def table(self, start: dt.datetime, end: dt.datetime) -> SegmentTable:
        """The counts of ``[start, end)`` (bounds should come from :meth:`bounds`),
        with the rows of held and recently released segments replaced (see
        :meth:`hold`)."""
        out = self._sliding(start, end)
        rows: dict[str, FloatArray] = {}
        for seg, (_, at, snap) in list(self._released.items()):
            if start >= at:  # the alerting period slid out of the window
                del self._released[seg]
                continue
            since = self._fetch_cached(at, end) if end > at else SegmentTable.empty(out.cells)
            keys = set(snap) | set(since.by_segment.get(seg, ()))
            for key in keys:
                rows[key] = snap.get(key, np.zeros(out.cells)) + since.rows([key])[0]
        releases = {at for _, at, _ in self._released.values()}
        self._cuts = {lo: kept for lo, kept in self._cuts.items() if lo in releases}
        rows.update(self._frozen)
        out = out.with_rows(rows)
        self._last, self._last_end = out, end
        return out

    def _fetch_cached(self, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        """The rows of ``[lo, hi)`` for a released segment (every segment's: one read
        serves every segment released at ``lo``). Kept per release time and extended
        as the window end moves: ``[lo, hi)`` is the table kept for ``[lo, h)`` plus
        ``[h, hi)``, the chunk the sliding window just read when it is that one (no
        query), else one read of it. Re-reading ``[lo, hi)`` every hour grew with the
        time since the release (a week of rows at the end of a week's window)."""
        kept = self._cuts.get(lo)
        if kept is not None and kept[0] == hi:
            return kept[1]
        if kept is None or kept[0] > hi:
            table = self._get(lo, hi)
        else:
            entered = self._entered
            if entered is not None and entered[0] == (kept[0], hi):
                self.fetches += 1
                piece = entered[1]
            else:
                piece = self._get(kept[0], hi)
            table = _plus(kept[1], piece)
        self._cuts[lo] = (hi, table)
        return table

    def bounds(self, end: dt.datetime, length_s: int) -> tuple[dt.datetime, dt.datetime]:
        """The chunk-aligned window of ``length_s`` seconds ending at or before ``end``."""
        hi = floor_time(end, self.chunk_s)
        return hi - dt.timedelta(seconds=length_s), hi

    def _sliding(self, start: dt.datetime, end: dt.datetime) -> SegmentTable:
        span = self._span
        table = self._table
        if (
            table is None
            or span is None
            or self._built_at is None
            or start < span[0]
            or end < span[1]
            or start >= span[1]
            or (end - self._built_at).total_seconds() >= self.rebuild_s
        ):
            return self._rebuild(start, end)
        if (start, end) == span:
            return table
        if end > span[1]:
            if start > span[0]:
                self._read_both(span, start, end)
            entered = self._get(span[1], end)
            self._entered = ((span[1], end), entered)
            table = table.combine(entered)
        if start > span[0]:
            table = table.combine(self._get(span[0], start), sign=-1.0)
        self._table, self._span = table, (start, end)
        return table

    def _rebuild(self, start: dt.datetime, end: dt.datetime) -> SegmentTable:
        table = self._get(start, end)
        self._entered = None
        self._table, self._span, self._built_at = table, (start, end), end
        return table

    def look_ahead(self, span_s: int) -> None:
        """Read chunks ``span_s`` seconds ahead with every chunk read (0: off) and
        forget the chunks read ahead so far.

        Backfill sets it to the span of a block of passes and resets it after the
        block: every chunk the block's passes then slide in (or out) comes from one
        query per ``span_s`` of event time, read from the store as it is while the
        block runs, exactly as the passes one by one would read it.
        """
        self._ahead_s = max(0, int(span_s))
        self._read_ahead = {}

    def _get(self, start: dt.datetime, end: dt.datetime) -> SegmentTable:
        self.fetches += 1
        table = self._read_ahead.pop((start, end), None)
        if table is None:
            table = self._read(start, end)
        return table.canonical()

    def _read_both(
        self, span: tuple[dt.datetime, dt.datetime], start: dt.datetime, end: dt.datetime
    ) -> None:
        """With a look-ahead, read the chunks the window slides in (from ``span``'s end)
        and those it slides out (from its start) in one query, not one query each."""
        step = dt.timedelta(seconds=self.chunk_s)
        lead, trail = (span[1], end), (span[0], start)
        if (
            self.many is None
            or self._ahead_s <= 0
            or end - span[1] != step
            or start - span[0] != step
            or lead in self._read_ahead
            or trail in self._read_ahead
        ):
            return
        count = 1 + math.ceil(self._ahead_s / self.chunk_s)
        spans = list(
            dict.fromkeys(
                (lo + i * step, lo + (i + 1) * step)
                for lo in (lead[0], trail[0])
                for i in range(count)
            )
        )
        self.reads += 1
        self._read_ahead.update(zip(spans, self.many(spans), strict=True))

    def _read(self, start: dt.datetime, end: dt.datetime) -> SegmentTable:
        step = dt.timedelta(seconds=self.chunk_s)
        self.reads += 1
        if self.many is None or self._ahead_s <= 0 or end - start != step:
            return self.fetch(start, end)
        count = 1 + math.ceil(self._ahead_s / self.chunk_s)
        spans = [(start + i * step, start + (i + 1) * step) for i in range(count)]
        tables = self.many(spans)
        self._read_ahead.update(zip(spans[1:], tables[1:], strict=True))
        return tables[0]
