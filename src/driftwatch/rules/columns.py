"""Storing a batch into the live evaluator's windows column by column.

Per batch, each distinct key, filter (``where=``) and stored value of the windows is
computed once over the whole batch (``map`` of its compiled closure, at C speed
between calls), shared by the windows that use it, and the entries
``(ms, event_id, *values)`` are built by ``zip``; each window then stores its
accepted, keyed entries in one call (:attr:`KeyedWindow.store
<driftwatch.rules.window.KeyedWindow.store>`). Per event and window that is a dictionary
lookup and a list append, instead of an insert call that read the key, the filter and
each value through calls of its own.

A batch is stored before any of its events is evaluated; while storing, an entry is
evicted only when it is older than the batch's earliest event minus the window, so
every event of the batch still sees its window (reads bisect on event time: entries
newer than the event being evaluated are not seen). :meth:`ColumnFeed.settle`, after
the batch is evaluated, evicts the rest: the state is then the same as after storing
and evaluating the events one by one.

>>> from driftwatch.rules.window import KeyedWindow
>>> w = KeyedWindow(60_000, key=lambda e: e["ip"] or None)
>>> feed = ColumnFeed([(w, "ip", (), ())], {"ip": lambda e: e["ip"] or None})
>>> batch = [{"ip": "10.0.0.1"}, {"ip": ""}]
>>> feed.store([0, 5], ["e0", "e1"], batch, column_cache(feed.columns, batch))
>>> w.entries("10.0.0.1")
[(0, 'e0')]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from itertools import compress, repeat
from operator import attrgetter, is_not
from typing import Any, cast

from driftwatch.rules import typed as t
from driftwatch.rules.typed import Ty
from driftwatch.rules.window import Entry, KeyedWindow

Column = Callable[[Any], Any]

__all__ = ["ColumnFeed", "column_cache", "entries_column", "held_column", "window_columns"]


def held_column(held: Callable[[Hashable], Any], key: Hashable) -> tuple[str, Any, Any]:
    """The column name of ``held(k)`` for the key ``k`` of each event of a stored batch
    (``key``: the name of the key column): a window's entries per event, looked up once
    per batch for every narrowing pass that reads most of them."""
    return ("held", key, held)


def entries_column(column: Callable[[Hashable], tuple[Any, ...]], held: Any, key: Hashable,
                   every: bool) -> tuple[Any, ...] | None:
    """``column(held_column(held, key))`` when ``every`` event is read or another pass
    made it already for this batch (``travel_*`` values, run first:
    :class:`~driftwatch.rules.guards.Lanes`), else None (the caller looks up its few)."""
    name = held_column(held, key)
    if every or name in getattr(column, "cache", ()):
        return column(name)
    return None


FEW = 8
"""A window keyed by several columns whose filter passes fewer than ``1 / FEW`` of a
batch builds the keys of those events only (not the batch's column of keys)."""

Plan = Callable[["_Columns"], tuple[Any, ...]]
"""How one named column is computed from a batch's column cache (see :func:`_plan`)."""


def column_cache(fns: dict[Hashable, Column], events: Sequence[Any],
                 forms: dict[Hashable, Callable[[Any], tuple[Any, ...]]] | None = None,
                 given: dict[Hashable, Sequence[Any]] | None = None,
                 plans: dict[Hashable, Plan] | None = None,
                 ) -> Callable[[Hashable], tuple[Any, ...]]:
    """``column(name)``: ``fns[name]`` over ``events`` as a list, computed once per name.

    A name in ``forms`` is computed over the whole batch by ``forms[name](column)``
    instead (:func:`~driftwatch.rules.batchforms.event_form`: the same values from
    other columns, without a closure call per event); should it raise, by ``fns[name]``
    event by event as before. ``given``: columns computed already (e.g. event times).
    ``plans``: how each name is computed, decided once per name and kept across batches
    when the caller keeps the dictionary (for the same ``fns`` and ``forms``): a name
    is then looked up once per batch, not once per kind of name and dictionary.

    Two kinds of names are made of other columns, without a call per event:
    ``("zip", (a, b, ...))`` is the tuples of columns ``a, b, ...`` and
    ``("notnull", a)`` tells which values of column ``a`` are not None,
    ``("all", (a, b, ...))`` is true (truthy) where every one of columns ``a, b, ...``
    is, ``("feature", f)`` is feature ``f`` as sent (None when absent) from column
    ``("field", "features")``. Columns are
    tuples: those of plain values leave the garbage collector's view at its first
    pass (a list stays in it and is re-scanned at every pass while the batch runs).
    """
    return _Columns(fns, events, forms, given, {} if plans is None else plans)


def _plan(name: Hashable, fns: dict[Hashable, Column],
          forms: dict[Hashable, Callable[[Any], tuple[Any, ...]]] | None) -> Plan:
    """How column ``name`` is computed (see :func:`column_cache`)."""
    if isinstance(name, tuple) and name[0] == "zip":
        parts = name[1]
        return lambda c: tuple(zip(*[c(part) for part in parts], strict=True))
    if isinstance(name, tuple) and name[0] == "notnull":
        inner = name[1]
        return lambda c: tuple(map(is_not, c(inner), repeat(None)))
    if isinstance(name, tuple) and name[0] == "all":  # a mask of several
        names = name[1]
        if len(names) == 2:
            a, b = names
            return lambda c: tuple([x and y for x, y in zip(c(a), c(b), strict=True)])
        if len(names) == 3:
            a, b, d = names
            return lambda c: tuple([x and y and z
                                    for x, y, z in zip(c(a), c(b), c(d), strict=True)])
        return lambda c: tuple(map(all, zip(*[c(part) for part in names], strict=True)))
    if isinstance(name, tuple) and name[0] == "held":  # a window's entries per event
        key, held = name[1], name[2]
        return lambda c: tuple(map(held, c(key)))  # (at C speed)
    if isinstance(name, tuple) and name[0] == "feature":
        feature, features = name[1], ("field", "features")
        return lambda c: tuple(map(dict.get, c(features), repeat(feature)))  # (at C speed)
    fn = fns.get(name)
    if forms is not None and name in forms:
        form = forms[name]

        def formed(c: _Columns) -> tuple[Any, ...]:
            try:
                return form(c)
            except Exception:  # the closures decide (and raise where they raise)
                if fn is None:
                    raise
                return tuple(map(fn, c.events))

        return formed
    if fn is None:
        raise KeyError(name)
    return lambda c: tuple(map(fn, c.events))


class _Columns:
    """The ``column`` of :func:`column_cache`: a callable object rather than a closure
    that calls itself, so that a chunk's columns (and events) form no reference cycle:
    they are freed by reference counting when the chunk is done, not by the collector
    (whose young passes then had each batch's garbage to walk and free: 1.35 s of
    collection over 400k bench events, 0.22 s without the cycle). With whole batches
    of 5,000 events this was slower all the same (the next batch was laid out in the
    freed, cache-cold memory); with chunks (:func:`~driftwatch.rules.timeorder.bounds`)
    the freed memory is reused while it is still in the cache."""

    __slots__ = ("cache", "events", "fns", "forms", "plans")

    def __init__(self, fns: dict[Hashable, Column], events: Sequence[Any],
                 forms: dict[Hashable, Callable[[Any], tuple[Any, ...]]] | None,
                 given: dict[Hashable, Sequence[Any]] | None,
                 plans: dict[Hashable, Plan]) -> None:
        self.cache: dict[Hashable, tuple[Any, ...]] = {} if given is None else {
            name: tuple(values) for name, values in given.items()}
        self.fns, self.events, self.forms, self.plans = fns, events, forms, plans

    def __call__(self, name: Hashable) -> tuple[Any, ...]:
        got = self.cache.get(name)
        if got is not None:
            return got
        plan = self.plans.get(name)
        if plan is None:
            plan = self.plans[name] = _plan(name, self.fns, self.forms)
        got = self.cache[name] = plan(self)
        return got


def _one_by_one(
    w: KeyedWindow, ms_col: Sequence[int], eid_col: Sequence[str], events: Sequence[Any]
) -> Iterator[tuple[Hashable | None, Entry]]:
    """``(key, entry)`` of each accepted event, computed event by event (the fallback
    when a column raised: the events before the one that raises are stored, as when
    every event was inserted on its own)."""
    accept, key, values = w.accept, w.key, w.values
    for ms, eid, e in zip(ms_col, eid_col, events, strict=True):
        if accept is not None and not accept(e):
            continue
        k = key(e)
        if k is not None:
            yield k, (ms, eid, *[f(e) for f in values])


class ColumnFeed:
    """Stores batches into windows, each shared column computed once per batch.

    Parameters
    ----------
    windows : sequence of (window, key column, filter columns, value columns)
        Column names are any hashable naming a function in ``columns`` (or made of
        them, see :func:`column_cache`); windows that name the same column share it.
        An event is stored when every filter column is true for it and its key is
        not None.
    columns : mapping of column name to event -> value
    """

    def __init__(
        self,
        windows: Sequence[tuple[KeyedWindow, Hashable, tuple[Hashable, ...],
                                tuple[Hashable, ...]]],
        columns: dict[Hashable, Column],
    ) -> None:
        def given(name: Hashable) -> bool:
            if isinstance(name, tuple) and name[0] == "zip":
                return all(given(part) for part in name[1])
            if isinstance(name, tuple) and name[0] == "notnull":
                return given(name[1])
            return name in columns

        for _, key, filters, values in windows:
            for name in (key, *filters, *values):
                if not given(name):
                    raise ValueError(f"column {name!r} is named by a window but not given")
        self.windows = list(windows)
        self.columns = dict(columns)

    def store(self, ms_col: Sequence[int], eid_col: Sequence[str], events: Sequence[Any],
              column: Callable[[Hashable], tuple[Any, ...]]) -> None:
        """Store a batch (sorted by ``(ms, event_id)``; ids distinct) in every window;
        ``column(name)`` gives a named column over ``events`` (see :func:`column_cache`)."""
        if not events:
            return
        first = ms_col[0]
        for w, key, filters, values in self.windows:
            low = first - w.within_ms
            try:
                parts: list[Any] = [ms_col, eid_col, *[column(v) for v in values]]
                mask = (None if not filters else column(filters[0]) if len(filters) == 1
                        else column(("all", filters)))
                keys: Any
                if (mask is not None and isinstance(key, tuple) and key[0] == "zip"
                        and FEW * len(list(compress(mask, mask))) < len(mask)):
                    # a composite key of the few events stored: made for those only
                    keys = zip(*[compress(column(p), mask) for p in key[1]], strict=True)
                    parts = [compress(p, mask) for p in parts]
                elif mask is not None and not all(mask):  # select first: no entry is built
                    keys = compress(column(key), mask)  # for an event not stored
                    parts = [compress(p, mask) for p in parts]
                else:  # (the card window's: every event has a card)
                    keys = column(key)
                pairs = zip(keys, zip(*parts, strict=True), strict=True)
            except Exception:  # a filter or value that raises: event by event, as before
                w.store(_one_by_one(w, ms_col, eid_col, events), low)
                continue
            w.store(pairs, low)

    def settle(self) -> None:
        """After a batch was evaluated: evict what the windows kept for it
        (:meth:`KeyedWindow.settle <driftwatch.rules.window.KeyedWindow.settle>`)."""
        for w, *_ in self.windows:
            w.settle()


def _plain(node: t.T) -> str | None:
    """The name of a contract field read as it is (C-level ``attrgetter``), else None."""
    return node.name if isinstance(node, t.Field) and node.name != "amount" else None


def window_columns(
    w: KeyedWindow, keys: Sequence[t.T], prefix: str | None, accept: t.T | None,
    values: Sequence[t.T], columns: dict[Hashable, Column],
) -> tuple[KeyedWindow, Hashable, tuple[Hashable, ...], tuple[Hashable, ...]]:
    """Window ``w`` (keyed by ``keys`` minus ``prefix``, filtered by ``accept``, storing
    ``values``; its closures compiled from them) as named columns for
    :class:`ColumnFeed`, adding their functions to ``columns``: a key of plain fields is
    their values as read (their tuple for several), stored where each string part is
    non-empty and each nullable part is not null -- what
    :func:`~driftwatch.rules.closures.key_function` gives, without a call per event."""
    for name in filter(None, map(_plain, (*keys, *values))):
        columns[("field", name)] = attrgetter(name)
    filters: list[Hashable] = []
    if accept is not None:
        filters.append(("where", accept))
        columns[filters[0]] = cast(Callable[[Any], bool], w.accept)
    names = list(map(_plain, keys))
    key: Hashable
    if prefix is not None or None in names:
        key = ("key", keys, prefix)
        columns[key] = w.key
        filters.append(("notnull", key))  # (a payee without the prefix: most events)
    else:
        parts = [("field", name) for name in names]
        key = parts[0] if len(parts) == 1 else ("zip", tuple(parts))
        for part, node in zip(parts, keys, strict=True):
            if node.ty is Ty.STR:
                filters.append(part)  # neither None nor ""
            elif node.nullable and len(parts) > 1:
                filters.append(("notnull", part))
    stored: list[Hashable] = []
    for v, f in zip(values, w.values, strict=True):
        plain = _plain(v)
        if plain is not None:
            stored.append(("field", plain))
        elif v.ty is Ty.BOOL:  # a filter's truth: the column of that filter (or guard)
            stored.append(("where", v))
            columns.setdefault(("where", v), f)
        else:
            stored.append(("value", v))
            columns[("value", v)] = f
    return w, key, tuple(filters), tuple(stored)
