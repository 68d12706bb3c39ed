"""Field coverage: which optional fields a rule needs, and how often traffic has them.

The contract makes most fields optional (``ip``, ``device_id``, ``geo``, ``channel``,
``features`` ...). A rule that compares ``features.new_device`` or measures
``travel_km`` cannot evaluate on an event without them: the comparison is null, so
false, and the rule is silent -- on traffic built elsewhere, silent everywhere.

:func:`field_needs` reads a rule's typed condition and returns its *alternatives*:
sets of optional fields, any one of which, present in full, lets the rule evaluate
(``a or b`` needs the fields of ``a`` or those of ``b``; ``a and b`` needs both).
Required contract fields (``card_id``, ``amount``, ``mcc`` ...) are always there and
never listed. What is inside ``present(...)`` is a test of presence, not a need, and
so is ``s not in [...]`` on a string (an absent string reads as ``""``, which is not
in the list); an aggregate needs its key fields (and a ``monotonic_*`` its value,
``travel_*`` the coordinates): its value and ``where`` read the *other* events.

:func:`coverage_expr` turns the alternatives into an ordinary typed condition made of
``present(field)`` tests, which both back ends compile: :func:`coverage_sql` counts it
over stored history (the backtest); :class:`FieldCoverage` counts it live, per rule,
evaluating each field's compiled ``present`` test once per event (numpy arrays per
batch, combined per alternative), so the two report the same share on the same events.

>>> from driftwatch.rules.pack import rule_from_text
>>> rule = rule_from_text(
...     "r", "features.new_device == 1 and count(by=[card_id, ip], within=1h) >= 2")
>>> [sorted(a) for a in field_needs(rule)]
[['features.new_device', 'ip']]
>>> [sorted(a) for a in field_needs(rule_from_text("r", "amount_minor <= 300 or present(ip)"))]
[[]]
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftwatch.events import ScoredTransaction
from driftwatch.rules import typed as t
from driftwatch.rules.closures import Compiler, Fn
from driftwatch.rules.model import Rule
from driftwatch.rules.typed import Ty

log = logging.getLogger(__name__)

REQUIRED_FIELDS = frozenset({"event_id", "txn_id", "amount_minor", "amount_cents", "amount",
                             "currency", "mcc", "merchant_id", "card_id"})
"""Fields every valid event carries (``contracts/scored_transaction.schema.json``)."""
MAX_ALTERNATIVES = 32
"""More alternatives than this (a very wide ``or``) collapse into one: all the fields."""
_GEO = (t.Field(Ty.FLOAT, True, "geo_lat"), t.Field(Ty.FLOAT, True, "geo_lon"))

Leaf = t.Field | t.Feature
Alternatives = list[frozenset[Leaf]]


def leaf_name(leaf: Leaf) -> str:
    """``ip``, ``geo_lat``, ``features.new_device`` or ``features_str.<name>``."""
    if isinstance(leaf, t.Feature):
        return f"{'features' if leaf.ty is Ty.FLOAT else 'features_str'}.{leaf.name}"
    return leaf.name


def _minimal(alts: Alternatives) -> Alternatives:
    """Drop duplicates and any alternative that contains another one."""
    unique = sorted(set(alts), key=lambda a: (len(a), sorted(leaf_name(x) for x in a)))
    out: Alternatives = []
    for a in unique:
        if not any(b <= a for b in out):
            out.append(a)
    return out


def _all_of(parts: Iterable[Alternatives]) -> Alternatives:
    """Alternatives of a conjunction: one alternative of each part, united."""
    out: Alternatives = [frozenset()]
    for alts in parts:
        out = _minimal([a | b for a, b in itertools.product(out, alts)])
        if len(out) > MAX_ALTERNATIVES:
            out = [frozenset().union(*out)]
    return out


def _needs(node: t.T) -> Alternatives:
    if isinstance(node, t.Field):
        return [frozenset() if node.name in REQUIRED_FIELDS else frozenset({node})]
    if isinstance(node, t.Feature):
        return [frozenset({node})]
    if isinstance(node, t.Const):
        return [frozenset()]
    if isinstance(node, t.Func) and node.name == "present":
        return [frozenset()]
    if isinstance(node, t.Or):
        alts = _minimal([a for item in node.items for a in _needs(item)])
        return alts if len(alts) <= MAX_ALTERNATIVES else [frozenset().union(*alts)]
    if isinstance(node, t.And):
        return _all_of(_needs(item) for item in node.items)
    if isinstance(node, t.Neg | t.Not):
        return _needs(node.operand)
    if isinstance(node, t.Arith | t.Cmp):
        return _all_of((_needs(node.left), _needs(node.right)))
    if isinstance(node, t.In):
        if node.negated and not node.operand.nullable:
            return [frozenset()]  # an absent string reads as "": "not in" still decides
        return _needs(node.operand)
    if isinstance(node, t.Func):
        return _all_of(_needs(a) for a in node.args)
    if isinstance(node, t.Agg):
        parts = [_needs(k) for k in node.keys]
        if node.value is not None and node.kind.startswith("monotonic_"):
            parts.append(_needs(node.value))  # other aggregates read the value of others
        if node.kind in ("travel_km", "travel_speed_kmh"):
            parts.extend(_needs(g) for g in _GEO)
        return _all_of(parts)
    return [frozenset()]  # pragma: no cover - every typed node is handled above


def field_needs(rule: Rule) -> list[frozenset[str]]:
    """The rule's alternatives of optional fields, by name (an empty set: always evaluable)."""
    return [frozenset(leaf_name(x) for x in a) for a in _needs(rule.expr)]


def fields_read(rule: Rule) -> tuple[str, ...]:
    """Every field the rule reads (filters included), sorted, required ones too."""
    names = {leaf_name(n) for n in t.walk(rule.expr) if isinstance(n, t.Field | t.Feature)}
    if any(isinstance(n, t.Agg) and n.kind in ("travel_km", "travel_speed_kmh")
           for n in t.walk(rule.expr)):
        names |= {"geo_lat", "geo_lon"}
    return tuple(sorted(names))


def needs_text(rule: Rule) -> str:
    """The alternatives as text: ``ip + features.x | device_id`` or ``-`` (no optional field)."""
    alts = field_needs(rule)
    if alts == [frozenset()]:
        return "-"
    return " | ".join(" + ".join(sorted(a)) for a in alts)


def _present(leaf: Leaf) -> t.T:
    return t.Func(Ty.BOOL, False, "present", (leaf,))


def coverage_expr(rule: Rule) -> t.T:
    """A typed condition true exactly when the event has every field of some alternative."""
    alts = _needs(rule.expr)
    if any(not a for a in alts):
        return t.Const(Ty.BOOL, False, True)
    terms: list[t.T] = []
    for a in alts:
        tests = [_present(x) for x in sorted(a, key=leaf_name)]
        terms.append(tests[0] if len(tests) == 1 else t.And(Ty.BOOL, False, tuple(tests)))
    return terms[0] if len(terms) == 1 else t.Or(Ty.BOOL, False, tuple(terms))


def _no_agg(agg: t.Agg) -> Fn:  # pragma: no cover - coverage conditions have no aggregates
    raise AssertionError(f"aggregate {agg.text} in a coverage condition")


@dataclass(frozen=True)
class RuleCoverage:
    """The share of events on which one rule can evaluate."""

    rule_id: str
    needs: str
    events: int
    evaluable: int

    @property
    def share(self) -> float:
        """``evaluable / events`` (1.0 before any event)."""
        return self.evaluable / self.events if self.events else 1.0


class FieldCoverage:
    """Counts, per rule, the events that carry the fields the rule needs.

    Parameters
    ----------
    rules : sequence of Rule
        The rules to measure.
    warn_below : float
        A rule evaluable on less than this share of the events seen is logged as a
        warning, once per rule, after ``warn_after`` events; 0 never warns.
    warn_after : int
        Events to measure before judging.
    sample : int
        Measure one event in ``sample`` (the 1st, the ``sample+1``-th ... of the stream,
        across batches); 1 measures every event. ``events`` counts the measured ones.

    Each optional field's ``present`` test runs once per event whichever rules need it
    (about 0.1 us per field and event); rules with identical needs share one count, and
    a rule with no optional need is evaluable on every event at no cost.
    """

    def __init__(
        self, rules: Sequence[Rule], *, warn_below: float = 0.5, warn_after: int = 1000,
        sample: int = 1,
    ) -> None:
        if not 0.0 <= warn_below <= 1.0:
            raise ValueError(f"warn_below must be in [0, 1], got {warn_below}")
        if warn_after < 1:
            raise ValueError(f"warn_after must be >= 1, got {warn_after}")
        if sample < 1:
            raise ValueError(f"sample must be >= 1, got {sample}")
        self.warn_below = warn_below
        self.warn_after = warn_after
        self.sample = sample
        self.events = 0
        self._offset = 0
        compile_ = Compiler(_no_agg)
        self._needs = {r.id: needs_text(r) for r in rules}
        self._rule_alts: dict[str, tuple[frozenset[Leaf], ...]] = {}
        for r in rules:
            alts = _needs(r.expr)
            self._rule_alts[r.id] = () if any(not a for a in alts) else tuple(alts)
        leaves = sorted({x for alts in self._rule_alts.values() for a in alts for x in a},
                        key=leaf_name)
        self._present: dict[Leaf, Fn] = {x: compile_(_present(x)) for x in leaves}
        self._counts: dict[tuple[frozenset[Leaf], ...], int] = dict.fromkeys(
            (alts for alts in self._rule_alts.values() if alts), 0)
        self._warned: set[str] = set()

    def update(self, events: Sequence[ScoredTransaction]) -> FieldCoverage:
        """Count one batch; warn (once per rule) about rules that cannot evaluate on most."""
        if self.sample > 1:
            start = self._offset
            self._offset = (self._offset - len(events)) % self.sample
            events = events[start::self.sample]
        n = len(events)
        self.events += n
        if not n or not self._counts:
            return self._judge()
        has = {x: np.fromiter(map(test, events), dtype=bool, count=n)
               for x, test in self._present.items()}
        for alts in self._counts:
            ok = np.zeros(n, dtype=bool)
            for a in alts:
                ok |= np.logical_and.reduce([has[x] for x in a])
            self._counts[alts] += int(np.count_nonzero(ok))
        return self._judge()

    def _judge(self) -> FieldCoverage:
        if self.warn_below > 0 and self.events >= self.warn_after:
            for rule_id in self._rule_alts.keys() - self._warned:
                cov = self.rule(rule_id)
                if cov.share < self.warn_below:
                    self._warned.add(rule_id)
                    log.warning(
                        "rule %s can evaluate on only %.1f%% of %d events: it needs %s",
                        rule_id, 100 * cov.share, cov.events, cov.needs,
                        extra={"rule_id": rule_id, "coverage": round(cov.share, 4),
                               "needs": cov.needs},
                    )
        return self

    def rule(self, rule_id: str) -> RuleCoverage:
        """The coverage of one rule so far."""
        alts = self._rule_alts[rule_id]
        evaluable = self._counts[alts] if alts else self.events
        return RuleCoverage(rule_id, self._needs[rule_id], self.events, evaluable)

    @property
    def rules(self) -> list[RuleCoverage]:
        """Every rule's coverage so far, in rule order."""
        return [self.rule(r) for r in self._rule_alts]

    @property
    def warned(self) -> frozenset[str]:
        """Rules warned about so far."""
        return frozenset(self._warned)


def coverage_sql(rules: Sequence[Rule]) -> tuple[str, dict[str, Any]]:
    """A query of ``count()`` and one ``countIf`` per rule over ``{db}.scored_transactions``.

    Bind ``since`` and ``until`` (``[since, until)``); the columns are the event count
    and each rule's evaluable count, in rule order.
    """
    from driftwatch.rules.sql import scalar_sql

    params: dict[str, Any] = {}
    cols = ["count()"]
    for i, rule in enumerate(rules):
        sql, p = scalar_sql(coverage_expr(rule), f"cov{i}")
        params.update(p)
        cols.append(f"countIf({sql})")
    query = (
        f"SELECT {', '.join(cols)} FROM {{db}}.scored_transactions FINAL "
        "WHERE event_time >= {since:DateTime64(3, 'UTC')} "
        "AND event_time < {until:DateTime64(3, 'UTC')}"
    )
    return query, params


def coverage_table(rows: Iterable[RuleCoverage], *, warn_below: float = 0.5) -> str:
    """A plain-text table: rule, events, evaluable, share, needs (``LOW`` below the bar)."""
    lines = [f"{'rule':<34} {'events':>9} {'evaluable':>9} {'share':>7}  needs (any one of)"]
    for c in rows:
        flag = " LOW" if c.events and c.share < warn_below else ""
        lines.append(f"{c.rule_id:<34} {c.events:>9,} {c.evaluable:>9,} {c.share:>7.1%}  "
                     f"{c.needs}{flag}")
    return "\n".join(lines)


def coverage_dict(rows: Iterable[RuleCoverage]) -> dict[str, Mapping[str, Any]]:
    """JSON-ready coverage per rule id."""
    return {c.rule_id: {"events": c.events, "evaluable": c.evaluable,
                        "share": round(c.share, 4), "needs": c.needs} for c in rows}
