"""Live evaluator: typed rules compiled once into Python closures, run over event batches.

Each rule's condition becomes a tree of small closures over the event
(:mod:`~driftwatch.rules.closures`: no tree-walking or name lookups per event);
aggregates (:mod:`~driftwatch.rules.sequences`) read the shared
:class:`~driftwatch.rules.window.KeyedWindow` state: one window per (entity key,
filter), as long as the longest aggregate that uses it; sequences keyed by a card and
something else, and counts, sums and extremes over a card with a ``where=``, are read
from the card's unfiltered window (:mod:`~driftwatch.rules.sharing`).

Per batch, events are de-duplicated by ``event_id`` (an event seen before is not
counted again; its earlier hits are returned again, so a re-delivered batch re-inserts
the same hit rows) and sorted by ``(event_time, event_id)``, then cut into chunks of a
few hundred events that never split a millisecond
(:func:`~driftwatch.rules.timeorder.bounds`: the working set stays in the CPU cache;
a batch already in time order is not sorted again). A whole chunk is stored
column-wise (:class:`~driftwatch.rules.columns.ColumnFeed`) before any event is evaluated:
a read bisects on event time, so an event sees its window ``[t - within, t]`` and nothing
newer, and same-millisecond events see each other, as ClickHouse ``RANGE`` frames do.
Events with the same timestamp split across two batches are the one case where the
live result can differ from the SQL backtest (with late events and keys over
``max_per_key``, whose windows no longer hold everything). Each rule runs its
aggregates only on the events that pass its event-only guards
(:class:`~driftwatch.rules.guards.Lanes`; guards and ``where=`` filters computed over
the whole batch in column form where they allow it) and whose keys hold enough
entries for it (:func:`~driftwatch.rules.batchforms.narrowing`; travel comparisons are
decided there for the whole batch), event by event in time order; then the windows
evict what the batch kept (``settle``): the state after a batch is the one of storing
and evaluating its events one at a time.

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
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from operator import attrgetter
from typing import Any, cast

from driftwatch.events import EPOCH, ScoredTransaction
from driftwatch.rules import typed as t
from driftwatch.rules.batchforms import Form, ValuesFor, event_form, field_column, key_form
from driftwatch.rules.closures import Compiler, Fn, haversine_km, key_function
from driftwatch.rules.columns import ColumnFeed, Plan, column_cache, window_columns
from driftwatch.rules.guards import Lanes
from driftwatch.rules.model import Hit, Rule
from driftwatch.rules.sequences import (
    Cursor,
    Spec,
    aggregate,
    at_least,
    no_aggregate,
    strip_key,
    travel_values,
)
from driftwatch.rules.sharing import FilteredWindow, SharedWindow, share, share_filtered
from driftwatch.rules.timeorder import bounds, in_time_order
from driftwatch.rules.typed import Ty
from driftwatch.rules.window import KeyedWindow

__all__ = ["LiveEvaluator", "RuleFailure", "StateStats", "haversine_km"]

_MS = dt.timedelta(milliseconds=1)
_event_id = attrgetter("event_id")
_event_ms = attrgetter("event_ms")
EXPIRE_PER_EVENT = 4
"""Keys per window that may be looked at for idleness after a batch, per event of it."""
EXPIRE_MIN = 1024
"""... and at least this many (a short batch still drains what went idle)."""
CHUNK = 250
"""Events of a batch stored and evaluated together (see
:func:`~driftwatch.rules.timeorder.bounds`)."""
MAX_ERRORS = 10_000
"""Rule failures remembered between two :meth:`LiveEvaluator.take_errors` calls."""


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised while evaluating one event (the event is rejected for it)."""

    rule_id: str
    event: ScoredTransaction
    error: str


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
    chunk : int
        Events of a batch processed together (>= 1; see :func:`chunks`).
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        horizon_ms: int,
        max_per_key: int = 10_000,
        max_seen: int = 200_000,
        expire: bool = True,
        chunk: int = CHUNK,
    ) -> None:
        if horizon_ms <= 0:
            raise ValueError(f"horizon_ms must be > 0, got {horizon_ms}")
        if max_seen < 1:
            raise ValueError(f"max_seen must be >= 1, got {max_seen}")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.chunk = chunk
        self.rules = list(rules)
        self.horizon_ms = horizon_ms
        self.max_per_key = max_per_key
        self.max_seen = max_seen
        self.expire = expire
        self._cur = Cursor()
        self._specs: dict[tuple[Any, ...], Spec] = {}
        self._compile_scalar = Compiler(self._agg_fn, self._at_least)
        for rule in self.rules:
            for agg in t.aggregates(rule.expr):
                self._register(agg)
        shared = share(self._specs)
        for spec, base in shared:  # the base stores the composite's values and key parts
            for v in (*spec.values, *spec.keys[1:]):
                base.slot(v)
            spec.base = base
        filtered = share_filtered(self._specs)
        for spec, base in filtered:  # ... the filtered window's values and filter's truth
            for v in (*spec.values, cast(t.T, spec.accept)):
                base.slot(v)
            spec.base = base
        self._windows: list[KeyedWindow] = []
        for spec in self._specs.values():
            if spec.base is None:
                spec.window = self._build_window(spec)
                self._windows.append(spec.window)
        self._views = [SharedWindow(cast(KeyedWindow, base.window),
                                    key_function(spec.keys, Compiler(no_aggregate)),
                                    tuple(base.slot(p) for p in spec.keys[1:]))
                       for spec, base in shared]
        for (spec, _), view in zip(shared, self._views, strict=True):
            spec.view = view
        for spec, base in filtered:
            spec.view = FilteredWindow(cast(KeyedWindow, base.window),
                                       base.slot(cast(t.T, spec.accept)), spec.within_ms)
        columns: dict[Hashable, Callable[[Any], Any]] = {}
        self._feed = ColumnFeed(
            [window_columns(cast(KeyedWindow, s.window), s.keys, s.prefix, s.accept, s.values,
                            columns) for s in self._specs.values() if s.base is None], columns)
        self._key_columns = {id(w): key for w, key, *_ in self._feed.windows}
        self._evidence = [[(a.text, self._agg_fn(a)) for a in t.aggregates(rule.expr)]
                          for rule in self.rules]
        self._lanes = Lanes([rule.expr for rule in self.rules], self._compile_scalar,
                            self._resolve, lambda node: event_form(node) is not None)
        self._column_fns = {**self._lanes.columns, **self._feed.columns}
        self._forms: dict[Hashable, Form] = {}
        for name in self._column_fns:
            form = (None if not isinstance(name, tuple)
                    else event_form(name[1], self._forms) if name[0] == "where"
                    else key_form(name[1], name[2], self._forms) if name[0] == "key"
                    else None)
            if form is not None:
                self._forms[name] = form
        for field in ScoredTransaction.__struct_fields__:  # what the forms read
            self._column_fns.setdefault(field_column(field), attrgetter(field))
        minor = field_column("amount_minor")
        if field_column("amount_cents") in self._column_fns:  # (a property: a call an event)
            self._forms[field_column("amount_cents")] = lambda column: tuple(
                [v % 100 for v in column(minor)])
        self._plans: dict[Hashable, Plan] = {}
        """How each column is computed (kept across batches; see ``column_cache``)."""
        self._seen: dict[int, int] = {}
        self._order: deque[list[int]] = deque()
        """The keys of ``_seen``, oldest first, a list per chunk."""
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

    def _register(self, agg: t.Agg) -> Spec:
        key = self._spec_key(agg)
        spec = self._specs.get(key)
        if spec is None:
            if agg.payee is not None:
                spec = Spec((agg.payee,), agg.within_ms, agg.where, [], prefix=agg.prefix)
            else:
                spec = Spec(agg.keys, agg.within_ms, key[1], [])
            self._specs[key] = spec
        if spec.window is None:
            spec.within_ms = max(spec.within_ms, agg.within_ms)
        spec.kinds.add(agg.kind)
        if agg.kind in ("travel_km", "travel_speed_kmh"):
            spec.slot(t.Field(Ty.FLOAT, True, "geo_lat"))
            spec.slot(t.Field(Ty.FLOAT, True, "geo_lon"))
        elif agg.value is not None:
            spec.slot(agg.value)
        return spec

    def _resolve(self, agg: t.Agg) -> tuple[Callable[[Hashable], Any], Hashable, ValuesFor | None
                                            ] | None:
        """The window ``agg`` reads: its ``held``, key column and (``travel_*`` of a window
        of its own) values over a batch; None for ``received_*`` (read under another key
        than the window's)."""
        spec = self._specs.get(self._spec_key(agg))
        view = None if spec is None else spec.view
        if spec is not None and spec.base is not None:  # shared: the base holds at least
            spec = spec.base
        if agg.payee is not None or spec is None or spec.window is None:
            return None
        key = self._key_columns[id(spec.window)]
        values: ValuesFor | None = None
        if agg.kind in ("travel_km", "travel_speed_kmh") and spec.keys == agg.keys:
            values = partial(travel_values, spec, agg, key)
        if isinstance(view, FilteredWindow):  # the base's entries that pass the filter
            return view.held, key, values
        return spec.window.held, key, values

    def _build_window(self, spec: Spec) -> KeyedWindow:
        comp = Compiler(no_aggregate)
        key = key_function(spec.keys, comp)
        if spec.prefix is not None:
            key = strip_key(key, spec.prefix)
        accept: Callable[[Any], bool] | None = None
        if isinstance(spec.accept, t.T):
            accept = comp(spec.accept)
        values = tuple(comp(v) for v in spec.values)
        return KeyedWindow(spec.within_ms, key, accept, values, self.max_per_key)

    def _at_least(self, agg: t.Agg, need: int) -> Fn | None:
        """``agg >= need`` in one closure, or None (see
        :func:`~driftwatch.rules.sequences.at_least`)."""
        return at_least(self._register(agg), agg, need, self._cur)

    def _agg_fn(self, agg: t.Agg) -> Fn:
        """The closure computing ``agg`` for the event under the cursor."""
        return aggregate(self._register(agg), agg, self._cur)

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
        ids = list(map(_event_id, events))
        hashes = list(map(hash, ids))
        if len(set(hashes)) == len(hashes) and seen.keys().isdisjoint(hashes):
            # the usual batch, nothing delivered before: column-wise (event_ms is set by
            # the parser; 0: not set, e.g. events rebuilt from rows)
            batch = list(events)
            ms = list(map(_event_ms, batch))
            if 0 in ms:
                ms = [m or (e.event_time - EPOCH) // _MS for m, e in zip(ms, batch, strict=True)]
        else:
            batch, ms, kept_ids, kept_hashes = [], [], [], []
            batch_ids: set[int] = set()
            for e, i, h in zip(events, ids, hashes, strict=True):
                if h in seen or h in batch_ids:
                    if emit:
                        hits.extend(self._hit_cache.get(i, ()))
                    continue
                batch_ids.add(h)
                batch.append(e)
                ms.append(e.event_ms or (e.event_time - EPOCH) // _MS)
                kept_ids.append(i)
                kept_hashes.append(h)
            ids, hashes = kept_ids, kept_hashes
        if not batch:
            return hits
        ms, ids, hashes, batch = in_time_order(ms, ids, hashes, batch)
        for start, end in bounds(ms, self.chunk):
            self._step(tuple(ms[start:end]), tuple(ids[start:end]), hashes[start:end],
                       tuple(batch[start:end]), emit, hits)
        self._forget_seen()
        if self.expire:
            self._expire(len(batch))
        return hits

    def _step(self, ms_col: tuple[int, ...], eid_col: tuple[str, ...], h_col: list[int],
              batch: tuple[ScoredTransaction, ...], emit: bool, hits: list[Hit]) -> None:
        """Store, evaluate and settle one chunk of new events (sorted by time); the
        batch's idle keys and oldest ids are dropped after its last chunk."""
        column = column_cache(self._column_fns, batch, self._forms,
                              {"ms": ms_col, "eid": eid_col}, self._plans)
        self._feed.store(ms_col, eid_col, batch, column)
        for view in self._views:
            view.clear()
        self._seen.update(zip(h_col, ms_col, strict=True))
        self._order.append(h_col)
        if emit:
            self._evaluate(ms_col, eid_col, batch, column, hits)
        self._feed.settle()
        newest = ms_col[-1]
        if self.newest_ms is None or newest > self.newest_ms:
            self.newest_ms = newest

    def _evaluate(self, ms_col: Sequence[int], eid_col: Sequence[str],
                  batch: Sequence[ScoredTransaction],
                  column: Callable[[Hashable], tuple[Any, ...]], hits: list[Hit]) -> None:
        """Decide every rule on every event of a stored batch, event by event in order
        (:class:`~driftwatch.rules.guards.Lanes`: only the events that pass a rule's
        guards run the rest of it; each rule and event isolated: one that raises is
        recorded by :meth:`_failed`)."""
        codes, fns = self._lanes.plan(batch, column, eid_col)
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
        order = self._order  # (a dict's oldest keys are found past every slot deleted)
        while excess > 0 and order:  # whole chunks' ids at C speed, not one by one
            drop = order.popleft()
            if len(drop) > excess:
                order.appendleft(drop[excess:])
                drop = drop[:excess]
            deque(map(seen.pop, drop, repeat(None)), maxlen=0)
            excess -= len(drop)
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
