"""Batch forms of rule conditions: what can be decided for a whole batch at once.

:func:`narrowing` derives from a rule's aggregate operands a *necessary* condition on
the window state that is cheap to test for many events at once: ``count(...) >= 4``
cannot hold for an event whose key holds fewer than 4 entries, a ``travel_*``
comparison or a ``monotonic_*`` run of ``n`` cannot hold for one whose key holds the
event alone (or fewer than ``n`` entries). The state is read once per event of the
batch, in a list comprehension over the key column the windows were stored from
(one dictionary lookup, no closure call per event), after the whole batch was stored
and before any event is evaluated -- so a key holds at least what any event of the
batch can see. Events that fail it are decided (no hit) without running their rule;
the others run it as before, so hits and evidence are unchanged. A ``travel_*``
comparison is decided outright for the batch in one loop, when the window gives its
values (:func:`~driftwatch.rules.sequences.travel_values`).

>>> from driftwatch.rules.pack import rule_from_text
>>> rule = rule_from_text("r", "count(by=card_id, within=1h) >= 3")
>>> held = {"c1": [(0, "a"), (1, "b"), (2, "c")], "c2": (0, "d")}.get
>>> narrow = narrowing(rule.expr, lambda agg: (held, "card", None))
>>> from driftwatch.rules.columns import column_cache
>>> column = column_cache({}, [None] * 3, given={"card": ("c1", "c2", "c3")})
>>> narrow([0, 1, 2], column, ("a", "d", "e"))
[0]
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from itertools import repeat
from typing import Any

from driftwatch.rules import typed as t
from driftwatch.rules.columns import entries_column as _entries
from driftwatch.rules.typed import Ty

__all__ = ["Form", "Narrow", "Resolve", "Values", "ValuesFor", "event_form",
           "feature_column", "field_column", "key_form", "narrowing"]

Narrow = Callable[[list[int], Callable[[Hashable], tuple[Any, ...]], Sequence[str]], list[int]]
"""``narrow(indices, column, event_ids)``: the indices (in order) that may still hit."""
Values = Callable[[list[int], Callable[[Hashable], tuple[Any, ...]]],
                  tuple[list[int], list[Any]]]
"""``values(indices, column)``: those events whose aggregate is not null, and its values."""
Resolve = Callable[[t.Agg], "tuple[Callable[[Hashable], Any], Hashable, ValuesFor | None] | None"]
"""Aggregate -> (its window's ``held``, the name of its window's key column, its values
over the batch or None), or None."""
ValuesFor = Callable[[float | None], Values]
"""``values_for(above)``: the values over a batch, those that cannot exceed ``above``
(when given) left out as if null."""


_SWAP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_COUNTS = ("count", "count_distinct")
_TRAVEL = ("travel_km", "travel_speed_kmh")
_RUNS = ("monotonic_increase", "monotonic_decrease")


class _AtLeast:
    """Keep the events whose key holds at least ``need`` (>= 1) entries."""

    __slots__ = ("held", "key", "need")

    def __init__(self, held: Callable[[Hashable], Any], key: Hashable, need: int) -> None:
        self.held, self.key, self.need = held, key, need

    def same_window(self, other: Any) -> bool:
        return isinstance(other, _AtLeast) and other.held == self.held and other.key == self.key

    def __call__(self, idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
                 eids: Sequence[str]) -> list[int]:
        held, keys, need = self.held, column(self.key), self.need
        got = _entries(column, held, self.key, len(idx) == len(keys))
        if got is not None:  # the entries of every key, looked up once per batch
            if need <= 1:
                return [i for i in idx if got[i] is not None]
            return [i for i in idx if (d := got[i]).__class__ is list and len(d) >= need]
        if need <= 1:
            return [i for i in idx if held(keys[i]) is not None]
        return [i for i in idx if (d := held(keys[i])).__class__ is list and len(d) >= need]


def _at_least(held: Callable[[Hashable], Any], key: Hashable, need: int) -> Narrow:
    bound = getattr(held, "bound", None)  # a cheaper bound on what ``held`` gives
    if bound is not None:  # (a filtered window read from an unfiltered one)
        return _Both([_AtLeast(bound, key, need), _Recent(held, key, need)])
    return _AtLeast(held, key, need)


class _Recent:
    """Keep the events whose key holds at least ``need`` entries since the event's time
    minus the window's length (``held.recent``, ``held.within``: a filtered window read
    from an unfiltered one, :class:`~driftwatch.rules.sharing.FilteredHeld`)."""

    __slots__ = ("held", "key", "need")

    def __init__(self, held: Any, key: Hashable, need: int) -> None:
        self.held, self.key, self.need = held, key, need

    def same_window(self, other: Any) -> bool:
        return isinstance(other, _Recent) and other.held == self.held and other.key == self.key

    def __call__(self, idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
                 eids: Sequence[str]) -> list[int]:
        keys, ms, need = column(self.key), column("ms"), self.need
        held, within = self.held, self.held.within
        got = _entries(column, held.bound, self.key, len(idx) == len(keys))
        if got is not None:  # from the entries looked up once per batch
            recent_in = held.recent_in
            return [i for i in idx if recent_in(got[i], ms[i] - within, need)]
        recent = held.recent
        return [i for i in idx if recent(keys[i], ms[i] - within, need)]


def _another(held: Callable[[Hashable], Any], key: Hashable) -> Narrow:
    """Keep the events whose key holds an entry other than the event's own."""

    def another(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
                eids: Sequence[str]) -> list[int]:
        keys = column(key)
        return [i for i in idx if (got := held(keys[i])) is not None
                and (got.__class__ is list or got[1] != eids[i])]

    return another


def _decided(values: Values, f: Callable[[Any, Any], Any], c: Any) -> Narrow:
    """Keep the events whose value compares true with ``c`` (a null value: false)."""

    def decided(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
                eids: Sequence[str]) -> list[int]:
        kept, got = values(idx, column)
        return [i for i, v in zip(kept, got, strict=True) if f(v, c)]

    return decided


def _comparison(node: t.Cmp, resolve: Resolve) -> Narrow | None:
    op, left, right = node.op, node.left, node.right
    if isinstance(left, t.Const) and not isinstance(right, t.Const):
        op, left, right = _SWAP[op], right, left
    if not isinstance(left, t.Agg) or not isinstance(right, t.Const):
        return None
    got = resolve(left)
    if got is None:
        return None
    held, key, values_for = got
    c = right.value
    if left.kind in _TRAVEL and values_for is not None:  # the comparison itself, in one pass
        above = (float(c) if op in (">", ">=") and isinstance(c, int | float)
                 and not isinstance(c, bool) and c > 0 else None)
        return _decided(values_for(above), _OPS[op], c)
    if left.kind in _TRAVEL:  # null unless the key holds an earlier entry: false
        return _another(held, key)
    if (left.kind not in _COUNTS or op not in (">=", ">") or isinstance(c, bool)
            or not isinstance(c, int | float)):
        return None
    need = math.ceil(c) if op == ">=" else math.floor(c) + 1
    return _at_least(held, key, need) if need >= 1 else None


def _both(parts: list[Narrow]) -> Narrow:
    merged: list[Narrow] = []  # of one window, the largest need
    flat = [p for part in parts for p in (part.parts if isinstance(part, _Both) else [part])]
    for part in flat:
        same = [i for i, m in enumerate(merged)
                if isinstance(m, _AtLeast | _Recent) and m.same_window(part)]
        if same and isinstance(part, _AtLeast | _Recent):
            m = merged[same[0]]
            assert isinstance(m, _AtLeast | _Recent)
            merged[same[0]] = type(m)(m.held, m.key, max(m.need, part.need))
        else:
            merged.append(part)
    if len(merged) == 1:
        return merged[0]
    return _Both(merged)


class _Both:
    """Keep the events that pass every one of ``parts``, in turn."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Narrow]) -> None:
        self.parts = parts

    def __call__(self, idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
                 eids: Sequence[str]) -> list[int]:
        for part in self.parts:
            if not idx:
                break
            idx = part(idx, column, eids)
        return idx


def _floors(part: Narrow) -> list[_AtLeast | _Recent]:
    """The entry counts ``part`` requires (its :class:`_AtLeast` or :class:`_Recent`
    and those of a :class:`_Both`)."""
    if isinstance(part, _AtLeast | _Recent):
        return [part]
    if isinstance(part, _Both):
        return [p for p in part.parts if isinstance(p, _AtLeast | _Recent)]
    return []


def _either(parts: list[Narrow]) -> Narrow:
    first = parts[0]
    if isinstance(first, _AtLeast) and all(first.same_window(p) for p in parts):
        return _AtLeast(first.held, first.key,
                        min(p.need for p in parts if isinstance(p, _AtLeast)))
    # a window every part needs entries of: its smallest need holds for the union, and
    # is tested first (one pass over the batch; the parts run on what is left)
    tests: list[Narrow] = []
    floors = [_floors(p) for p in parts]
    for f in floors[0]:
        needs = [[g.need for g in fs if g.same_window(f)] for fs in floors]
        if all(needs):
            tests.append(type(f)(f.held, f.key, min(min(n) for n in needs)))
    first_pass = None if not tests else tests[0] if len(tests) == 1 else _Both(tests)

    def either(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
               eids: Sequence[str]) -> list[int]:
        if first_pass is not None:
            idx = first_pass(idx, column, eids)
        keep: set[int] = set()
        for part in parts:
            if idx:
                keep.update(part(idx, column, eids))
        return [i for i in idx if i in keep]

    return either


def narrowing(node: t.T, resolve: Resolve) -> Narrow | None:
    """A necessary condition for ``node`` to be true, tested over a batch; None when
    none is known (every event may hit).

    ``and``: each operand's, in turn; ``or``: the union of its operands' (none when
    one operand has none); a comparison of a ``count``/``count_distinct`` with a
    constant ``>= n`` or ``> n``: the key holds at least ``n`` entries; a comparison of
    a ``travel_*`` with a constant: the comparison itself when the window gives the
    values over a batch (exact: the same arithmetic as the closure), else the key
    holds an entry other than the event's (else the distance is null and the
    comparison false); ``monotonic_*`` of ``n``:
    the key holds at least ``n`` entries. Anything else (``not``, arithmetic, the
    event's own fields): none."""
    if isinstance(node, t.And):
        parts = [p for p in (narrowing(i, resolve) for i in node.items) if p is not None]
        return None if not parts else parts[0] if len(parts) == 1 else _both(parts)
    if isinstance(node, t.Or):
        either = [narrowing(i, resolve) for i in node.items]
        if any(p is None for p in either):
            return None
        return _either([p for p in either if p is not None])
    if isinstance(node, t.Cmp):
        return _comparison(node, resolve)
    if isinstance(node, t.Agg) and node.kind in _RUNS and node.n >= 1:
        got = resolve(node)
        return None if got is None else _at_least(got[0], got[1], node.n)
    return None


# ------------------------------------------------------------------------------------------
# event-only conditions over a whole batch
# ------------------------------------------------------------------------------------------
Column = Callable[[Hashable], tuple[Any, ...]]
Form = Callable[[Column], tuple[Any, ...]]
"""``form(column)``: a value per event of the batch, from the batch's named columns."""

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def field_column(name: str) -> tuple[str, str]:
    """The column name of contract field ``name`` read as it is (``attrgetter``)."""
    return ("field", name)


def feature_column(name: str) -> tuple[str, str]:
    """The column name of feature ``name`` as sent (None when absent; see
    :func:`~driftwatch.rules.columns.column_cache`)."""
    return ("feature", name)


def key_form(keys: Sequence[t.T], prefix: str | None,
             shared: dict[Hashable, Form] | None = None) -> Form | None:
    """The keys of a window keyed by one computed part (``prefix(beneficiary_name, 9)``,
    or a payee minus ``prefix``) over the batch, as
    :func:`~driftwatch.rules.closures.key_function` (and ``strip_key``) give them: None
    for a null or empty part, or a payee without ``prefix``; None when ``keys`` has
    no such form."""
    if len(keys) != 1:
        return None
    values = _value(keys[0], shared)
    if values is None:
        return None
    if prefix is None:
        return lambda column: tuple([None if v is None or v == "" else v
                                     for v in values(column)])
    size = len(prefix)
    return lambda column: tuple([
        k[size:] if isinstance(k, str) and len(k) > size and k.startswith(prefix) else None
        for k in values(column)])


def _value(node: t.T, shared: dict[Hashable, Form] | None = None) -> Form | None:
    """Values of an event-only operand over the batch (as the closures compute them)."""
    if isinstance(node, t.Field):
        if node.name == "amount":
            return None
        if node.name == "amount_cents":
            minor = field_column("amount_minor")
            return lambda column: tuple([v % 100 for v in column(minor)])
        name = field_column(node.name)
        return lambda column: column(name)
    if isinstance(node, t.Feature):
        raw = feature_column(node.name)
        if node.ty is not Ty.FLOAT:
            return lambda column: tuple([v if isinstance(v, str) else None
                                         for v in column(raw)])
        return lambda column: tuple([
            None if v is None or isinstance(v, str)
            else (1.0 if v else 0.0) if isinstance(v, bool) else float(v)
            for v in column(raw)])
    if (isinstance(node, t.Func) and node.name == "prefix" and len(node.args) == 2
            and isinstance(node.args[1], t.Const) and isinstance(node.args[1].value, int)):
        text, size = _value(node.args[0], shared), node.args[1].value
        if text is None:
            return None
        return lambda column: tuple([None if v is None else v[:size] for v in text(column)])
    if isinstance(node, t.Func) and node.name == "age_days" and len(node.args) == 1:
        dates = _value(node.args[0], shared)
        if dates is None:
            return None
        times = field_column("event_time")

        def ages(column: Column) -> tuple[Any, ...]:  # (date - d).days: ordinals apart
            return tuple([None if d is None else et.toordinal() - d.toordinal()
                          for et, d in zip(column(times), dates(column), strict=True)])

        if shared is None:
            return ages
        value = ("value", node)  # computed once per batch for every comparison of it
        shared[value] = ages
        return lambda column: column(value)
    return None


def _compare(node: t.Cmp, shared: dict[Hashable, Form] | None) -> Form | None:
    op, left, right = node.op, node.left, node.right
    if isinstance(left, t.Const) and not isinstance(right, t.Const):
        op, left, right = _SWAP[op], right, left
    if not isinstance(right, t.Const) or isinstance(left, t.Const):
        return None
    f, c = _OPS[op], right.value
    if isinstance(left, t.Feature) and left.ty is Ty.FLOAT:  # raw values: bool == 1, no str
        raw = feature_column(left.name)
        return lambda column: tuple([v is not None and v.__class__ is not str and f(v, c)
                                     for v in column(raw)])
    values = _value(left, shared)
    if values is None:
        return None
    if not left.nullable:
        return lambda column: tuple(map(f, values(column), repeat(c)))
    return lambda column: tuple([v is not None and f(v, c) for v in values(column)])


def _member(node: t.In, shared: dict[Hashable, Form] | None) -> Form | None:
    values, members = _value(node.operand, shared), frozenset(node.values)
    if values is None:
        return None
    if not node.operand.nullable:
        test = members.__contains__
        if node.negated:
            return lambda column: tuple([not test(v) for v in values(column)])
        return lambda column: tuple(map(test, values(column)))
    if node.negated:
        return lambda column: tuple([v is not None and v not in members
                                     for v in values(column)])
    return lambda column: tuple([v is not None and v in members for v in values(column)])


def event_form(node: t.T, shared: dict[Hashable, Form] | None = None) -> Form | None:
    """``node`` (event-only: no aggregate) computed over a whole batch, each value with
    the truth of the node's closure on that event; None for nodes without such a form
    (they keep their closure). Comparisons of fields, features and ``age_days`` with
    constants, ``in``, ``present``, ``and``, ``or`` and ``not`` of those. Values that
    several forms read (``age_days``) are added to ``shared`` when given, under names
    the forms read from their ``column`` (so pass the dictionary of forms that the
    batch's :func:`~driftwatch.rules.columns.column_cache` gets)."""
    if isinstance(node, t.Cmp):
        return _compare(node, shared)
    if isinstance(node, t.In):
        return _member(node, shared)
    if isinstance(node, t.Func) and node.name == "present" and len(node.args) == 1:
        values = _value(node.args[0], shared)
        if values is None:
            return None
        if node.args[0].ty is Ty.STR:
            return lambda column: tuple([v is not None and v != "" for v in values(column)])
        return lambda column: tuple([v is not None for v in values(column)])
    if isinstance(node, t.Not):
        inner = event_form(node.operand, shared)
        if inner is None:
            return None
        return lambda column: tuple([not v for v in inner(column)])
    if isinstance(node, t.And | t.Or):
        parts = [event_form(i, shared) for i in node.items]
        if any(p is None for p in parts) or t.aggregates(node):
            return None
        forms = [_named(i, p, shared) for i, p in zip(node.items, parts, strict=True)
                 if p is not None]
        joined = _joined(forms, isinstance(node, t.And))
        ranges = _ranges(node) if isinstance(node, t.Or) else None
        return joined if ranges is None else partial(_ranged, ranges, joined)
    return None


def _named(node: t.T, form: Form, shared: dict[Hashable, Form] | None) -> Form:
    """``form`` of ``node`` (in an ``and``/``or``) read as column ``("where", node)``
    with ``shared``: once per batch, also for the guards and filters of ``node``."""
    if shared is None:
        return form
    name = ("where", node)
    shared.setdefault(name, form)
    return lambda column: column(name)


def _joined(forms: list[Form], conjunction: bool) -> Form:
    """The ``and`` (``conjunction``) or ``or`` of ``forms`` (columns of bools)."""
    if len(forms) == 2:
        a, b = forms
        if conjunction:
            return lambda c: tuple([x and y for x, y in zip(a(c), b(c), strict=True)])
        return lambda c: tuple([x or y for x, y in zip(a(c), b(c), strict=True)])
    join = all if conjunction else any
    return lambda column: tuple(map(join, zip(*[p(column) for p in forms], strict=True)))


_RANGE = frozenset({"<", "<=", ">", ">="})
_not_none = partial(operator.is_not, None)


def _ranges(node: t.Or) -> dict[str, list[tuple[str, Any]]] | None:
    """Per feature, the ``(op, number)`` tests of an ``or`` of range comparisons of
    numeric features with numbers (``features.age >= 125 or features.age < 0``), else
    None."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for item in node.items:
        if not isinstance(item, t.Cmp):
            return None
        op, left, right = item.op, item.left, item.right
        if isinstance(left, t.Const) and not isinstance(right, t.Const):
            op, left, right = _SWAP[op], right, left
        if (not isinstance(left, t.Feature) or left.ty is not Ty.FLOAT
                or not isinstance(right, t.Const) or op not in _RANGE):
            return None
        c = right.value
        if isinstance(c, bool) or not isinstance(c, int | float) or c != c:
            return None
        out.setdefault(left.name, []).append((op, c))
    return out


def _ranged(ranges: dict[str, list[tuple[str, Any]]], exact: Form,
            column: Column) -> tuple[Any, ...]:
    """An ``or`` of range tests (:func:`_ranges`) over a batch: all false at once when
    each feature's smallest and largest value over the batch pass none of its tests
    (the usual batch: every input in its domain), else ``exact`` (event by event).

    A null value passes no test (left out); a string, or anything that does not
    order with numbers, goes to ``exact``; NaN passes no test and, as the smallest
    or largest, fails every "decided" check below (so goes to ``exact`` too)."""
    n = 0
    try:
        for name, tests in ranges.items():
            col = column(feature_column(name))
            n = len(col)
            try:
                lo, hi = min(col), max(col)
            except TypeError:  # nulls (or strings: they raise again)
                lo = min(filter(_not_none, col), default=None)
                hi = max(filter(_not_none, col), default=None)
                if lo is None:
                    continue  # no value: no test passes
            for op, c in tests:  # decided false for the batch, else exact
                if not (lo >= c if op == "<" else lo > c if op == "<="
                        else hi <= c if op == ">" else hi < c):
                    return exact(column)
    except TypeError:
        return exact(column)
    return (False,) * n
