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
the others run it as before, so hits and evidence are unchanged.

>>> from driftwatch.rules.pack import rule_from_text
>>> rule = rule_from_text("r", "count(by=card_id, within=1h) >= 3")
>>> held = {"c1": [(0, "a"), (1, "b"), (2, "c")], "c2": (0, "d")}.get
>>> narrow = narrowing(rule.expr, lambda agg: (held, "card"))
>>> keys = ("c1", "c2", "c3")
>>> narrow([0, 1, 2], lambda name: keys, ("a", "d", "e"))
[0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from driftwatch.rules import typed as t

__all__ = ["Narrow", "Resolve", "narrowing"]

Narrow = Callable[[list[int], Callable[[Hashable], tuple[Any, ...]], Sequence[str]], list[int]]
"""``narrow(indices, column, event_ids)``: the indices (in order) that may still hit."""
Resolve = Callable[[t.Agg], "tuple[Callable[[Hashable], Any], Hashable] | None"]
"""Aggregate -> (its window's ``held``, the name of its window's key column), or None."""

_SWAP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_COUNTS = ("count", "count_distinct")
_TRAVEL = ("travel_km", "travel_speed_kmh")
_RUNS = ("monotonic_increase", "monotonic_decrease")


def _at_least(held: Callable[[Hashable], Any], key: Hashable, need: int) -> Narrow:
    """Keep the events whose key holds at least ``need`` (>= 1) entries."""
    if need <= 1:
        def any_entry(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
                      eids: Sequence[str]) -> list[int]:
            keys = column(key)
            return [i for i in idx if held(keys[i]) is not None]

        return any_entry

    def many(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
             eids: Sequence[str]) -> list[int]:
        keys = column(key)
        return [i for i in idx
                if (got := held(keys[i])).__class__ is list and len(got) >= need]

    return many


def _another(held: Callable[[Hashable], Any], key: Hashable) -> Narrow:
    """Keep the events whose key holds an entry other than the event's own."""

    def another(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
                eids: Sequence[str]) -> list[int]:
        keys = column(key)
        return [i for i in idx if (got := held(keys[i])) is not None
                and (got.__class__ is list or got[1] != eids[i])]

    return another


def _comparison(node: t.Cmp, resolve: Resolve) -> Narrow | None:
    op, left, right = node.op, node.left, node.right
    if isinstance(left, t.Const) and not isinstance(right, t.Const):
        op, left, right = _SWAP[op], right, left
    if not isinstance(left, t.Agg) or not isinstance(right, t.Const):
        return None
    got = resolve(left)
    if got is None:
        return None
    held, key = got
    if left.kind in _TRAVEL:  # null unless the key holds an earlier entry: false
        return _another(held, key)
    c = right.value
    if (left.kind not in _COUNTS or op not in (">=", ">") or isinstance(c, bool)
            or not isinstance(c, int | float)):
        return None
    need = math.ceil(c) if op == ">=" else math.floor(c) + 1
    return _at_least(held, key, need) if need >= 1 else None


def _both(parts: list[Narrow]) -> Narrow:
    def both(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
             eids: Sequence[str]) -> list[int]:
        for part in parts:
            if not idx:
                break
            idx = part(idx, column, eids)
        return idx

    return both


def _either(parts: list[Narrow]) -> Narrow:
    def either(idx: list[int], column: Callable[[Hashable], tuple[Any, ...]],
               eids: Sequence[str]) -> list[int]:
        keep: set[int] = set()
        for part in parts:
            keep.update(part(idx, column, eids))
        return [i for i in idx if i in keep]

    return either


def narrowing(node: t.T, resolve: Resolve) -> Narrow | None:
    """A necessary condition for ``node`` to be true, tested over a batch; None when
    none is known (every event may hit).

    ``and``: each operand's, in turn; ``or``: the union of its operands' (none when
    one operand has none); a comparison of a ``count``/``count_distinct`` with a
    constant ``>= n`` or ``> n``: the key holds at least ``n`` entries; a comparison of
    a ``travel_*`` with a constant: the key holds an entry other than the event's
    (else the distance is null and the comparison false); ``monotonic_*`` of ``n``:
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
