"""Which rule to run on which event of a batch: event-only guards, column-wise.

A rule's condition is split at its top-level ``and`` into *guards* (operands that read
the event only, no windowed aggregate) and the *rest*. Most events fail a guard of
most rules (``amount_minor <= 300``, ``age_days(merchant_registered_at) <= 90``,
``channel not in [...]``), so per batch the cheapest guard of each rule is computed
once over the whole batch as a named column -- shared with the windows' ``where=``
filters of the same expression (:class:`~driftwatch.rules.columns.ColumnFeed`) and
with the other rules -- the other guards only on the events that passed it, and the
rest only on the events that passed every guard. A rule made of guards only (input
checks) hits where they all hold. The result is the same as running the whole
condition on every event (operands have no side effects).

The columns are named like the windows' filters (``("where", node)``), so one cache
per batch (:func:`~driftwatch.rules.columns.column_cache`) serves both.

A guard that raises on some event of the batch (e.g. ``matches`` on an over-long
string) turns its rule back to running the whole condition event by event on that
batch, each event isolated (``rule_error:<rule_id>`` for the ones that raise), as if
there were no guards.

>>> from driftwatch.events import EXAMPLE_EVENT, parse_scored_batch
>>> from driftwatch.rules.pack import rule_from_text
>>> from driftwatch.rules.closures import Compiler
>>> from driftwatch.rules.columns import column_cache
>>> rule = rule_from_text("r", "amount_minor % 100 == 37 and features.transactions_24h >= 10")
>>> lanes = Lanes([rule.expr], Compiler(lambda agg: None))
>>> batch = parse_scored_batch([EXAMPLE_EVENT]).events
>>> lanes.plan(batch, column_cache(lanes.columns, batch))
([0], [None])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from itertools import compress
from typing import Any

from driftwatch.rules import typed as t
from driftwatch.rules.batchforms import Narrow, Resolve, narrowing
from driftwatch.rules.closures import Compiler, Fn, cost

__all__ = ["Lane", "Lanes", "split"]


def split(expr: t.T) -> tuple[list[t.T], list[t.T]]:
    """``(guards, rest)``: the top-level ``and`` operands of ``expr`` that read the event
    only (cheapest first) and those with an aggregate.

    >>> from driftwatch.rules.pack import rule_from_text
    >>> rule = rule_from_text("r", "amount_minor <= 300 and count(by=ip, within=1h) >= 3")
    >>> g, r = split(rule.expr)
    >>> len(g), len(r)
    (1, 1)
    """
    items = expr.items if isinstance(expr, t.And) else (expr,)
    guards = sorted((i for i in items if not t.aggregates(i)), key=cost)
    rest = [i for i in items if t.aggregates(i)]
    return guards, rest


@dataclass(frozen=True)
class Lane:
    """One rule, split for a batch (see the module docstring)."""

    first: Hashable | None
    """Column name of the cheapest guard (computed over the whole batch), or None."""
    more: Fn | None
    """The other guards in one closure (run on the events that passed the columns)."""
    rest: Fn | None
    """The aggregate operands in one closure; None when the rule is guards only."""
    whole: Fn
    """The whole condition (the fallback, event by event)."""
    narrow: Narrow | None = None
    """A necessary condition on the window state of the aggregate operands, tested for
    the events that passed the guards (:func:`~driftwatch.rules.batchforms.narrowing`)."""
    also: tuple[Hashable, ...] = ()
    """Column names of the other guards computed over the whole batch (those with a
    batch form, :func:`~driftwatch.rules.batchforms.event_form`); ``more`` holds the rest."""


class Lanes:
    """The lanes of a list of rule conditions and the columns their guards name.

    Parameters
    ----------
    exprs : sequence of typed conditions
        One per rule, in rule order.
    compile_node : Compiler
        Compiles a typed node into a closure over the event (aggregates included).
    resolve : callable, optional
        Aggregate -> its window's ``held`` and key column
        (:data:`~driftwatch.rules.batchforms.Resolve`); given, each rule's aggregate
        operands are narrowed down per batch before they run.
    """

    def __init__(self, exprs: Sequence[t.T], compile_node: Compiler,
                 resolve: Resolve | None = None,
                 formable: Callable[[t.T], bool] | None = None) -> None:
        self.columns: dict[Hashable, Fn] = {}
        self.lanes: list[Lane] = []
        for expr in exprs:
            guards, rest = split(expr)
            # guards with a batch form are columns (all of them); the others one closure
            at = [i for i, g in enumerate(guards) if formable is not None and formable(g)]
            if guards and not at:
                at = [0]  # the cheapest guard as a column of closure calls
            names = [("where", guards[i]) for i in at]
            for i, name in zip(at, names, strict=True):
                self.columns.setdefault(name, compile_node(guards[i]))
            more = self._and([g for i, g in enumerate(guards) if i not in at], expr,
                             compile_node)
            rest_fn = self._and(rest, expr, compile_node)
            narrow = (None if resolve is None or not rest
                      else narrowing(t.And(expr.ty, expr.nullable, tuple(rest)), resolve))
            self.lanes.append(Lane(names[0] if names else None, more, rest_fn,
                                   compile_node(expr), narrow, tuple(names[1:])))
        self._order = sorted(range(len(self.lanes)), key=lambda r: self.lanes[r].first
                             is not None)
        """Rules without guards first (they read every event: a window's entries per
        event that their narrowing looks up are then there for the other rules')."""

    @staticmethod
    def _and(items: list[t.T], expr: t.T, compile_node: Compiler) -> Fn | None:
        if not items:
            return None
        if len(items) == 1:
            return compile_node(items[0])
        return compile_node(t.And(expr.ty, expr.nullable, tuple(items)))

    def plan(self, events: Sequence[Any], column: Callable[[Hashable], tuple[Any, ...]],
             eids: Sequence[str] = ()) -> tuple[list[int], list[Fn | None]]:
        """``(codes, fns)`` for a batch: ``event index * rules + rule index`` of each
        (event, rule) still to decide, sorted (by event, then rule order), and per rule
        the closure that decides it (None: a hit already; the whole condition for a
        rule whose guards raised on this batch). ``eids``: the events' ids (needed
        when the lanes narrow: the batch must be stored in the windows already)."""
        n, nr = len(events), len(self.lanes)
        codes: list[int] = []
        fns: list[Fn | None] = [None] * nr
        for r in self._order:  # (any order: the codes are sorted)
            lane = self.lanes[r]
            try:
                idx: list[int] = (list(range(n)) if lane.first is None
                                  else list(compress(range(n), column(lane.first))))
                for name in lane.also:
                    if not idx:
                        break
                    passed = column(name)
                    idx = [i for i in idx if passed[i]]
                if lane.more is not None and idx:
                    more = lane.more
                    idx = [i for i in idx if more(events[i])]
                if lane.narrow is not None and idx:
                    with suppress(Exception):  # a key column that raises: no narrowing
                        idx = lane.narrow(idx, column, eids)
                fns[r] = lane.rest
            except Exception:  # a guard raised: the whole rule, event by event
                idx = list(range(n))
                fns[r] = lane.whole
            codes.extend([i * nr + r for i in idx])
        codes.sort()
        return codes, fns
