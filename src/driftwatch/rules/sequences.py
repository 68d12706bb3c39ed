"""Aggregate closures over the live evaluator's windows (moved out of
:mod:`~driftwatch.rules.live`): counts, sums, extremes, distinct counts, first
sightings, monotonic runs and travel, each reading the window of its
:class:`Spec` at the time and id of the event under the :class:`Cursor`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Any

from driftwatch.errors import RuleError
from driftwatch.events import ScoredTransaction
from driftwatch.rules import typed as t
from driftwatch.rules.batchforms import Values
from driftwatch.rules.closures import (
    EARTH_RADIUS_KM,
    Compiler,
    Fn,
    KeyFn,
    haversine_km,
    key_function,
)
from driftwatch.rules.columns import held_column
from driftwatch.rules.sharing import FilteredWindow, SharedWindow
from driftwatch.rules.typed import Ty
from driftwatch.rules.window import KeyedWindow, distinct_values, reducer

__all__ = ["Cursor", "Spec", "aggregate", "at_least", "no_aggregate", "sequence", "strip_key",
           "travel_values"]


class Cursor:
    """The event being evaluated: its time and id (read by aggregate closures)."""

    __slots__ = ("eid", "t")

    def __init__(self) -> None:
        self.t = 0
        self.eid = ""


@dataclass
class Spec:
    """A window shared by every aggregate with the same key and filter (longest length)."""

    keys: tuple[t.T, ...]
    within_ms: int
    accept: t.T | None
    values: list[t.T]
    window: KeyedWindow | None = None
    prefix: str | None = None
    """Set for ``received_*``: entries are keyed by ``keys`` (the payee) minus this prefix."""
    kinds: set[str] = field(default_factory=set)
    """The kinds of the aggregates reading this window."""
    base: Spec | None = None
    """Set when this window is served by ``base``'s (:mod:`~driftwatch.rules.sharing`):
    no window of its own, its values are ``base``'s."""
    view: SharedWindow | FilteredWindow | None = None
    """The reads of this window from ``base``'s."""

    def slot(self, value: t.T) -> int:
        """The index of ``value`` in this window's entries (added if new)."""
        if self.base is not None:
            return self.base.slot(value)
        if value not in self.values:
            self.values.append(value)
        return 2 + self.values.index(value)


def strip_key(key: KeyFn, prefix: str) -> KeyFn:
    """The key of the receiver: ``key(e)`` without ``prefix``; None unless it starts
    with ``prefix`` and something follows it."""
    size = len(prefix)

    def strip(e: Any) -> str | None:
        k = key(e)
        if isinstance(k, str) and len(k) > size and k.startswith(prefix):
            return k[size:]
        return None

    return strip


def no_aggregate(agg: t.Agg) -> Fn:
    """The aggregate callback of compilers of window definitions (which have none)."""
    raise RuleError(f"aggregate {agg.text} inside a window definition")  # pragma: no cover


def at_least(spec: Spec, agg: t.Agg, need: int, cur: Cursor) -> Fn | None:
    """``count(...) >= need`` in one closure, and ``count_distinct(...) >= need``
    without building the whole set: false when the window holds fewer entries, true
    as soon as ``need`` distinct values were seen."""
    if agg.kind not in ("count", "count_distinct"):
        return None
    w: KeyedWindow | FilteredWindow | None = spec.window
    if isinstance(spec.view, FilteredWindow):
        w = spec.view
    assert w is not None, "windows are built before aggregates are compiled"
    key, span, held, within = w.key, w.span, w.held, agg.within_ms
    if need <= 0:  # any count is >= need, but a missing key gives null (false)
        return lambda e: key(e) is not None
    distinct = agg.kind == "count_distinct"
    slot = spec.slot(agg.value) if agg.value is not None else 0

    def at_least(e: ScoredTransaction) -> bool:
        k = key(e)
        if k is None:
            return False
        if need > 1:  # the usual case: a key holding fewer entries than needed
            got = held(k)
            if got is None or got.__class__ is tuple or len(got) < need:
                return False
        d = span(k, cur.t, within)
        if not distinct:
            return len(d) >= need
        if len(d) < need:
            return False
        if len(d) <= 4 * need:  # short: a set at C speed
            return len(distinct_values(d, slot)) >= need
        found: set[Any] = set()
        add = found.add
        for x in d:
            v = x[slot]
            if v is not None and v != "":
                add(v)
                if len(found) >= need:
                    return True
        return False

    return at_least


def aggregate(spec: Spec, agg: t.Agg, cur: Cursor) -> Fn:
    """The closure computing ``agg`` (its window is ``spec``'s) for the event under ``cur``."""
    kind = agg.kind
    within = agg.within_ms
    if isinstance(spec.view, SharedWindow):
        return sequence(spec, spec.view, agg, cur)
    if isinstance(spec.view, FilteredWindow):  # count, sum, min, max of its entries
        slot = spec.slot(agg.value) if agg.value is not None else 0
        reduce, view = reducer(kind, slot), spec.view
        return lambda e: (None if (k := view.key(e)) is None
                          else reduce(view.span(k, cur.t, within)))
    w = spec.window
    assert w is not None, "windows are built before aggregates are compiled"
    key = w.key
    if kind == "count_distinct":
        assert agg.value is not None
        slot = spec.slot(agg.value)
        distinct = w.distinct
        return lambda e: None if (k := key(e)) is None else distinct(k, cur.t, within, slot)
    if kind in ("count", "sum", "min", "max"):
        slot = spec.slot(agg.value) if agg.value is not None else 0
        reduce = reducer(kind, slot)
        span = w.span
        return lambda e: None if (k := key(e)) is None else reduce(span(k, cur.t, within))
    if kind == "received_max":
        assert agg.value is not None
        slot = spec.slot(agg.value)
        reduce = reducer("max", slot)
        span = w.span
        lookup = key_function(agg.keys, Compiler(no_aggregate))
        return lambda e: None if (k := lookup(e)) is None else reduce(span(k, cur.t, within))
    if kind == "first_seen":
        def first_seen(e: ScoredTransaction) -> bool:
            k = key(e)
            if k is None:
                return False
            d = w.span(k, cur.t, within)
            return not d or d[0][0] >= cur.t

        return first_seen
    return sequence(spec, w, agg, cur)


def sequence(spec: Spec, w: KeyedWindow | SharedWindow, agg: t.Agg, cur: Cursor) -> Fn:
    """The closure of a ``monotonic_*`` or ``travel_*`` aggregate reading ``w``."""
    key, kind, within = w.key, agg.kind, agg.within_ms
    if kind in ("monotonic_increase", "monotonic_decrease"):
        assert agg.value is not None
        slot = spec.slot(agg.value)
        n = agg.n
        num, den = agg.factor
        rising = kind == "monotonic_increase"

        def monotonic(e: ScoredTransaction) -> bool:
            k = key(e)
            if k is None:
                return False
            run = w.before(k, cur.t, cur.eid, n)
            if len(run) < n or run[0][0] < cur.t - within:
                return False
            for prev, nxt in itertools.pairwise(run):
                a, b = prev[slot], nxt[slot]
                if rising:
                    if not (b > a and b * den >= a * num):
                        return False
                elif not (b < a and b * den <= a * num):
                    return False
            return True

        return monotonic
    lat_slot = spec.slot(t.Field(Ty.FLOAT, True, "geo_lat"))
    lon_slot = spec.slot(t.Field(Ty.FLOAT, True, "geo_lon"))
    speed, held = kind == "travel_speed_kmh", w.held
    slack_km, slack_h = agg.slack_km, agg.slack_h

    def travel(e: ScoredTransaction) -> float | None:
        if e.geo_lat is None or e.geo_lon is None:
            return None
        k = key(e)
        if k is None:
            return None
        got = held(k)
        if got is None:
            return None
        prev: Any = None
        if got.__class__ is list and got[-1][1] == cur.eid and got[-1][0] == cur.t:
            i = len(got) - 1  # the usual case, the event is its key's newest: inline
            while i > 0:
                i -= 1
                if got[i][lat_slot] is not None:
                    prev = got[i]
                    break
        elif got.__class__ is tuple and got[1] == cur.eid:
            return None  # the key holds this event only
        else:
            prev = w.previous(k, cur.t, cur.eid, lat_slot)
        if prev is None or prev[0] < cur.t - within:
            return None
        plat, plon = prev[lat_slot], prev[lon_slot]
        if plat == e.geo_lat and plon == e.geo_lon:
            km = 0.0  # same place (haversine gives exactly 0.0 too)
        else:
            km = haversine_km(float(plat), float(plon), e.geo_lat, e.geo_lon)
        if not speed:
            return km
        hours: float = (cur.t - prev[0]) / 3_600_000
        return max(0.0, km - slack_km) / (hours + slack_h)

    return travel


def travel_values(spec: Spec, agg: t.Agg, key_column: Hashable, above: float | None = None,
                  ) -> Values:
    """``values(indices, column)``: ``agg`` (a ``travel_*`` of ``spec``'s own window)
    for those events of a stored batch, from its columns (key, ``geo_lat``,
    ``geo_lon``, ``"ms"``, ``"eid"``, the key's entries): the closure of
    :func:`sequence` in one loop over the batch, with the same arithmetic (no cursor,
    no call per event); the events whose value is null are left out.

    A key holding a lone entry while a batch is evaluated holds the event's own (the
    batch is stored, and nothing of it is evicted but entries older than its earliest
    event's window) or, over ``max_per_key``, a later one: no earlier entry, a null
    value. Those events (most: a card's first in the window) are left out at C speed
    before the loop.

    ``above`` (> 0, for ``travel_speed_kmh > above`` or ``>= above``): a speed that
    cannot reach it is left out (the comparison is false either way) without the
    haversine, when even the distance along the meridian and then the parallel
    (``R * (|dlat| + |dlon|)``, never shorter than the great circle) with a margin
    of 1e-9 is below what the speed needs (``slack_km + above * (hours + slack_h)``)."""
    w = spec.window
    assert w is not None, "windows are built before aggregates are compiled"
    lat_slot = spec.slot(t.Field(Ty.FLOAT, True, "geo_lat"))
    lon_slot = spec.slot(t.Field(Ty.FLOAT, True, "geo_lon"))
    speed, held, previous = agg.kind == "travel_speed_kmh", w.held, w.previous
    slack_km, slack_h, within = agg.slack_km, agg.slack_h, agg.within_ms
    names = (key_column, ("field", "geo_lat"), ("field", "geo_lon"), "ms", "eid",
             held_column(held, key_column))
    above_ = above if above is not None and above > 0 else 0.0
    bound = EARTH_RADIUS_KM * math.pi / 180.0 if speed and above_ > 0 else 0.0

    def values(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
               ) -> tuple[list[int], list[Any]]:
        keys, lats, lons, ms, eids, helds = map(column, names)  # (entries: looked up once)
        idx = list(compress(idx, map(isinstance, map(helds.__getitem__, idx),
                                     repeat(list))))  # keys holding several entries
        kept: list[int] = []
        out: list[Any] = []
        keep, add = kept.append, out.append
        for i in idx:
            got = helds[i]
            lat, lon = lats[i], lons[i]
            if lat is None or lon is None:
                continue
            now, eid = ms[i], eids[i]
            prev: Any = None
            if got[-1][1] == eid and got[-1][0] == now:
                j = len(got) - 1
                while j > 0:
                    j -= 1
                    if got[j][lat_slot] is not None:
                        prev = got[j]
                        break
            else:  # (a later event of the batch holds the same key, or a late event)
                prev = previous(keys[i], now, eid, lat_slot)
            if prev is None or prev[0] < now - within:
                continue
            plat, plon = prev[lat_slot], prev[lon_slot]
            hours: float = (now - prev[0]) / 3_600_000
            if bound and (abs(lat - plat) + abs(lon - plon)) * bound * 1.000000001 + 1e-9 < (
                    slack_km + above_ * (hours + slack_h)):
                continue  # too slow for ``above``: no need to know how slow
            if plat == lat and plon == lon:
                km = 0.0
            else:
                km = haversine_km(float(plat), float(plon), lat, lon)
            keep(i)
            add(km if not speed else max(0.0, km - slack_km) / (hours + slack_h))
        return kept, out

    return values
