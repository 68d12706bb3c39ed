"""Live evaluator: typed rules compiled once into Python closures, run over event batches.

Each rule's condition becomes a tree of small closures over the event
(:mod:`~driftwatch.rules.closures`: no tree-walking or name lookups per event);
aggregates read the shared :class:`~driftwatch.rules.window.KeyedWindow` state: one
window per (entity key, filter), as long as the longest aggregate that uses it.

Per batch, events are de-duplicated by ``event_id`` (an event seen before is not
counted again; its earlier hits are returned again, so a re-delivered batch re-inserts
the same hit rows) and sorted by ``(event_time, event_id)``. The whole batch is stored
column-wise (:class:`~driftwatch.rules.columns.ColumnFeed`) before any event is evaluated:
a read bisects on event time, so an event sees its window ``[t - within, t]`` and nothing
newer, and same-millisecond events see each other, as ClickHouse ``RANGE`` frames do.
Events with the same timestamp split across two batches are the one case where the
live result can differ from the SQL backtest. Each rule runs its aggregates only on
the events that pass its event-only guards (:class:`~driftwatch.rules.guards.Lanes`),
event by event in time order; then the windows evict what the batch kept (``settle``):
the state after a batch is the one of storing and evaluating its events one at a time.

>>> from driftwatch.events import EXAMPLE_EVENT, parse_scored_batch
>>> from driftwatch.rules.pack import rule_from_text
>>> rule = rule_from_text("r", "amount_cents == 37 and count(by=card_id, within=1h) >= 1")
>>> ev = LiveEvaluator([rule], horizon_ms=86_400_000)
>>> hits = ev.process(parse_scored_batch([EXAMPLE_EVENT]).events)
>>> [(h.rule.id, h.evidence) for h in hits]
[('r', {'count(by=card_id, within=1h)': 1})]
>>> ev.process(parse_scored_batch([EXAMPLE_EVENT]).events)[0].event.event_id  # re-delivery
'e-0001'
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from driftwatch.errors import RuleError
from driftwatch.events import EPOCH, ScoredTransaction
from driftwatch.rules import typed as t
from driftwatch.rules.closures import Compiler, Fn, KeyFn, haversine_km, key_function
from driftwatch.rules.columns import ColumnFeed, column_cache, window_columns
from driftwatch.rules.guards import Lanes
from driftwatch.rules.model import Hit, Rule
from driftwatch.rules.typed import Ty
from driftwatch.rules.window import KeyedWindow, distinct_values, reducer

__all__ = ["LiveEvaluator", "RuleFailure", "StateStats", "haversine_km"]

_MS = dt.timedelta(milliseconds=1)
EXPIRE_PER_EVENT = 4
"""Keys per window that may be looked at for idleness after a batch, per event of it."""
EXPIRE_MIN = 1024
"""... and at least this many (a short batch still drains what went idle)."""
MAX_ERRORS = 10_000
"""Rule failures remembered between two :meth:`LiveEvaluator.take_errors` calls."""


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised while evaluating one event (the event is rejected for it)."""

    rule_id: str
    event: ScoredTransaction
    error: str


_by_time = itemgetter(0, 1)
"""``(ms, event_id)`` of a ``(ms, event_id, hash, event)`` item (at C speed)."""


class _Cursor:
    """The event being evaluated: its time and id (read by aggregate closures)."""

    __slots__ = ("eid", "t")

    def __init__(self) -> None:
        self.t = 0
        self.eid = ""


@dataclass
class _Spec:
    """A window shared by every aggregate with the same key and filter (longest length)."""

    keys: tuple[t.T, ...]
    within_ms: int
    accept: t.T | None
    values: list[t.T]
    window: KeyedWindow | None = None
    prefix: str | None = None
    """Set for ``received_*``: entries are keyed by ``keys`` (the payee) minus this prefix."""

    def slot(self, value: t.T) -> int:
        if value not in self.values:
            self.values.append(value)
        return 2 + self.values.index(value)


# ------------------------------------------------------------------------------------------
# scalar expressions
# ------------------------------------------------------------------------------------------
def _strip_key(key: KeyFn, prefix: str) -> KeyFn:
    """The key of the receiver: ``key(e)`` without ``prefix``; None unless it starts
    with ``prefix`` and something follows it."""
    size = len(prefix)

    def strip(e: Any) -> str | None:
        k = key(e)
        if isinstance(k, str) and len(k) > size and k.startswith(prefix):
            return k[size:]
        return None

    return strip


@dataclass(frozen=True)
class StateStats:
    """Size of the evaluator's state."""

    windows: int
    keys: int
    entries: int
    seen_events: int
    overflowed: int


class LiveEvaluator:
    """Evaluates rules over batches of events with bounded windowed state.

    Parameters
    ----------
    rules : sequence of Rule
        Type-checked rules (all of them are evaluated; the caller filters by mode).
    horizon_ms : int
        State horizon; no window is longer (the type checker enforces it).
    max_per_key : int
        Most entries kept per key and window.
    max_seen : int
        Event ids remembered (the newest) to recognise re-delivered events; an event
        delivered again after more than ``max_seen`` newer events counts again.
    expire : bool
        Drop idle keys after each batch (see :meth:`_expire`); off, only :meth:`sweep`
        drops them.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        horizon_ms: int,
        max_per_key: int = 10_000,
        max_seen: int = 200_000,
        expire: bool = True,
    ) -> None:
        if horizon_ms <= 0:
            raise ValueError(f"horizon_ms must be > 0, got {horizon_ms}")
        if max_seen < 1:
            raise ValueError(f"max_seen must be >= 1, got {max_seen}")
        self.rules = list(rules)
        self.horizon_ms = horizon_ms
        self.max_per_key = max_per_key
        self.max_seen = max_seen
        self.expire = expire
        self._cur = _Cursor()
        self._specs: dict[tuple[Any, ...], _Spec] = {}
        self._compile_scalar = Compiler(self._agg_fn, self._at_least)
        for rule in self.rules:
            for agg in t.aggregates(rule.expr):
                self._register(agg)
        self._windows: list[KeyedWindow] = []
        for spec in self._specs.values():
            spec.window = self._build_window(spec)
            self._windows.append(spec.window)
        columns: dict[Hashable, Callable[[Any], Any]] = {}
        self._feed = ColumnFeed(
            [window_columns(cast(KeyedWindow, s.window), s.keys, s.prefix, s.accept, s.values,
                            columns) for s in self._specs.values()], columns)
        self._evidence = [[(a.text, self._agg_fn(a)) for a in t.aggregates(rule.expr)]
                          for rule in self.rules]
        self._lanes = Lanes([rule.expr for rule in self.rules], self._compile_scalar)
        self._column_fns = {**self._lanes.columns, **self._feed.columns}
        self._seen: dict[int, int] = {}
        self.errors: list[RuleFailure] = []
        self._hit_cache: dict[str, list[Hit]] = {}
        self.newest_ms: int | None = None

    # -- construction ------------------------------------------------------------------
    @staticmethod
    def _spec_key(agg: t.Agg) -> tuple[Any, ...]:
        if agg.kind in ("travel_km", "travel_speed_kmh", "first_seen", "monotonic_increase",
                        "monotonic_decrease"):
            return (agg.keys, None)
        if agg.payee is not None:
            return ((agg.payee,), agg.where, agg.prefix)
        return (agg.keys, agg.where)

    def _register(self, agg: t.Agg) -> _Spec:
        key = self._spec_key(agg)
        spec = self._specs.get(key)
        if spec is None:
            if agg.payee is not None:
                spec = _Spec((agg.payee,), agg.within_ms, agg.where, [], prefix=agg.prefix)
            else:
                spec = _Spec(agg.keys, agg.within_ms, key[1], [])
            self._specs[key] = spec
        if spec.window is None:
            spec.within_ms = max(spec.within_ms, agg.within_ms)
        if agg.kind in ("travel_km", "travel_speed_kmh"):
            spec.slot(t.Field(Ty.FLOAT, True, "geo_lat"))
            spec.slot(t.Field(Ty.FLOAT, True, "geo_lon"))
        elif agg.value is not None:
            spec.slot(agg.value)
        return spec

    def _build_window(self, spec: _Spec) -> KeyedWindow:
        comp = Compiler(self._no_agg)
        key = key_function(spec.keys, comp)
        if spec.prefix is not None:
            key = _strip_key(key, spec.prefix)
        accept: Callable[[Any], bool] | None = None
        if isinstance(spec.accept, t.T):
            accept = comp(spec.accept)
        values = tuple(comp(v) for v in spec.values)
        return KeyedWindow(spec.within_ms, key, accept, values, self.max_per_key)

    @staticmethod
    def _no_agg(agg: t.Agg) -> Fn:
        raise RuleError(f"aggregate {agg.text} inside a window definition")  # pragma: no cover

    def _at_least(self, agg: t.Agg, need: int) -> Fn | None:
        """``count(...) >= need`` in one closure, and ``count_distinct(...) >= need``
        without building the whole set: false when the window holds fewer entries, true
        as soon as ``need`` distinct values were seen."""
        if agg.kind not in ("count", "count_distinct"):
            return None
        spec = self._register(agg)
        w = spec.window
        assert w is not None, "windows are built before aggregates are compiled"
        key, span, held, cur, within = w.key, w.span, w.held, self._cur, agg.within_ms
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

    def _agg_fn(self, agg: t.Agg) -> Fn:
        spec = self._register(agg)
        w = spec.window
        assert w is not None, "windows are built before aggregates are compiled"
        key = w.key
        cur = self._cur
        kind = agg.kind
        within = agg.within_ms
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
            lookup = key_function(agg.keys, Compiler(self._no_agg))
            return lambda e: None if (k := lookup(e)) is None else reduce(span(k, cur.t, within))
        if kind == "first_seen":
            def first_seen(e: ScoredTransaction) -> bool:
                k = key(e)
                if k is None:
                    return False
                d = w.span(k, cur.t, within)
                return not d or d[0][0] >= cur.t

            return first_seen
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
            if got is None or (got.__class__ is tuple and got[1] == cur.eid):
                return None  # the key holds this event only
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

    # -- processing --------------------------------------------------------------------
    def process(self, events: Sequence[ScoredTransaction]) -> list[Hit]:
        """Update state with a batch and return the hits (re-delivered events: cached hits)."""
        return self._run(events, emit=True)

    def feed(self, events: Sequence[ScoredTransaction]) -> None:
        """Update state only (warm-up from history); no hits are produced."""
        self._run(events, emit=False)

    def _run(self, events: Sequence[ScoredTransaction], emit: bool) -> list[Hit]:
        hits: list[Hit] = []
        seen = self._seen
        fresh: list[tuple[int, str, int, ScoredTransaction]] = []
        batch_ids: set[int] = set()
        for e in events:
            h = hash(e.event_id)
            if h in seen or h in batch_ids:
                if emit:
                    hits.extend(self._hit_cache.get(e.event_id, ()))
                continue
            batch_ids.add(h)
            # event_ms is set by the parser (0: not set, e.g. events rebuilt from rows)
            fresh.append((e.event_ms or (e.event_time - EPOCH) // _MS, e.event_id, h, e))
        if not fresh:
            return hits
        fresh.sort(key=_by_time)
        ms_col, eid_col, h_col, batch = zip(*fresh, strict=True)
        column = column_cache(self._column_fns, batch)
        self._feed.store(ms_col, eid_col, batch, column)
        seen.update(zip(h_col, ms_col, strict=True))
        if emit:
            self._evaluate(ms_col, eid_col, batch, column, hits)
        self._feed.settle()
        newest = fresh[-1][0]
        if self.newest_ms is None or newest > self.newest_ms:
            self.newest_ms = newest
        self._forget_seen()
        if self.expire:
            self._expire(len(batch))
        return hits

    def _evaluate(self, ms_col: Sequence[int], eid_col: Sequence[str],
                  batch: Sequence[ScoredTransaction],
                  column: Callable[[Hashable], tuple[Any, ...]], hits: list[Hit]) -> None:
        """Decide every rule on every event of a stored batch, event by event in order
        (:class:`~driftwatch.rules.guards.Lanes`: only the events that pass a rule's
        guards run the rest of it; each rule and event isolated: one that raises is
        recorded by :meth:`_failed`)."""
        codes, fns = self._lanes.plan(batch, column)
        nr = len(fns)
        cur = self._cur
        at = -1  # the event the cursor is on (codes come event by event)
        for code in codes:
            i, r = divmod(code, nr)
            e = batch[i]
            fn = fns[r]
            if fn is not None:
                if i != at:
                    at, cur.t, cur.eid = i, ms_col[i], eid_col[i]
                try:
                    if not fn(e):
                        continue
                except Exception as exc:  # isolate: this rule, this event only
                    self._failed(r, e, exc)
                    continue
            self._record(r, e, hits)

    def _record(self, r: int, e: ScoredTransaction, hits: list[Hit]) -> None:
        """A hit of rule ``r`` (its index), with its aggregates as evidence."""
        hit = Hit(self.rules[r], e, {label: f(e) for label, f in self._evidence[r]})
        hits.append(hit)
        self._hit_cache.setdefault(e.event_id, []).append(hit)

    def _failed(self, r: int, e: ScoredTransaction, exc: Exception) -> None:
        """Remember that rule ``r`` raised on one event (the other rules and events go on)."""
        if len(self.errors) < MAX_ERRORS:
            error = f"{type(exc).__name__}: {exc}"[:500]
            self.errors.append(RuleFailure(self.rules[r].id, e, error))

    def take_errors(self) -> list[RuleFailure]:
        """The rule failures since the last call (and forget them)."""
        out, self.errors = self.errors, []
        return out

    def _forget_seen(self) -> None:
        """Keep the ids of the newest ``max_seen`` events (and the hits of those only)."""
        seen = self._seen
        excess = len(seen) - self.max_seen
        if excess <= 0:
            return
        drop = []
        for h in seen:
            drop.append(h)
            if len(drop) >= excess:
                break
        for h in drop:
            del seen[h]
        cache = self._hit_cache
        while cache:
            oldest = next(iter(cache))
            if hash(oldest) in seen:
                break
            del cache[oldest]

    def sweep(self) -> int:
        """Drop idle keys from every window; return how many keys were dropped."""
        if self.newest_ms is None:
            return 0
        return sum(w.sweep(self.newest_ms) for w in self._windows)

    def _expire(self, events: int) -> None:
        """After a batch of ``events`` events: drop the keys that went idle, looking at
        no more than :data:`EXPIRE_PER_EVENT` keys per event per window (or
        :data:`EXPIRE_MIN`).

        Each window queues its keys by the event time of their newest entry
        (:meth:`KeyedWindow.expire <driftwatch.rules.window.KeyedWindow.expire>`), so
        only keys that may have gone idle are looked at. Passes over all keys, a slice
        per batch, took a sixth of the rule layer's time in the bench/stream.py traffic
        (668,000 keys looked at to drop 11,000, 450 ns each, over 100,000 events).
        A window takes in at most one new key per event and looks again at a key in
        use about once per window length, so the limit keeps up with steady traffic;
        it bounds the pause after a batch when many keys go idle at once.
        """
        assert self.newest_ms is not None
        limit = max(EXPIRE_MIN, EXPIRE_PER_EVENT * events)
        for w in self._windows:
            w.expire(self.newest_ms, limit)

    @property
    def state(self) -> StateStats:
        """Current size of the windows and the de-duplication memory."""
        return StateStats(
            windows=len(self._windows),
            keys=sum(w.keys_total for w in self._windows),
            entries=sum(w.entries_total for w in self._windows),
            seen_events=len(self._seen),
            overflowed=sum(w.overflowed for w in self._windows),
        )
