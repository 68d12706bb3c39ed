"""Rule expressions compiled once into Python closures over the event.

:class:`Compiler` turns a typed tree (:mod:`~driftwatch.rules.typed`) into nested
closures: field reads are ``operator.attrgetter``, comparisons with constants are
single lambdas, several comparisons of one feature share one dictionary lookup, and
the operands of ``and``/``or`` are ordered so cheap event-only tests run before
windowed aggregates (there are no side effects, so the result is the same).
Aggregates are delegated to a callback (the live evaluator owns the windows).

>>> from driftwatch.events import EXAMPLE_EVENT, parse_scored_batch
>>> from driftwatch.rules.checker import check_condition
>>> from driftwatch.rules.parser import parse
>>> ev = parse_scored_batch([EXAMPLE_EVENT]).events[0]
>>> text = 'amount_minor % 100 == 37 and features.transactions_24h >= 10'
>>> Compiler(lambda agg: None)(check_condition(parse(text), 86_400_000))(ev)
True
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter
from typing import Any

from driftwatch.errors import RuleError
from driftwatch.events import ScoredTransaction
from driftwatch.rules import typed as t
from driftwatch.rules.regex_guard import HAYSTACK, compile_bounded
from driftwatch.rules.typed import Ty

Fn = Callable[[ScoredTransaction], Any]
KeyFn = Callable[[Any], Hashable | None]
EARTH_RADIUS_KM = 6371.0088


class TextTooLong(RuleError):
    """``matches`` met a string longer than the bounded regex guard allows."""


def _bounded(value: str) -> bool:
    """True, or :class:`TextTooLong` for a string longer than :data:`HAYSTACK` characters:
    a pattern's backtracking cost is bounded for strings up to that length only (string
    features may be as long as the payload). The live evaluator isolates the error to
    this rule and event (``rule_error:<rule_id>``); the SQL backtest (RE2, linear) still
    evaluates such a string.

    >>> _bounded("INTL-PAY-X")
    True
    """
    if len(value) > HAYSTACK:
        raise TextTooLong(f"matches() on a string of {len(value)} characters (> {HAYSTACK})")
    return True


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (the same formula as the SQL back end).

    >>> round(haversine_km(51.5074, -0.1278, 40.7128, -74.0060))
    5570
    """
    p1 = lat1 * (math.pi / 180.0)
    p2 = lat2 * (math.pi / 180.0)
    s1 = math.sin((lat2 - lat1) * (math.pi / 180.0) / 2.0)
    s2 = math.sin((lon2 - lon1) * (math.pi / 180.0) / 2.0)
    a = s1 * s1 + math.cos(p1) * math.cos(p2) * s2 * s2
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


# ------------------------------------------------------------------------------------------
def _feature_num(name: str) -> Fn:
    def get(e: ScoredTransaction) -> float | None:
        v = e.features.get(name)
        if v is None or isinstance(v, str):
            return None
        if isinstance(v, bool):
            return 1.0 if v else 0.0
        return float(v)

    return get


def _feature_str(name: str) -> Fn:
    def get(e: ScoredTransaction) -> str | None:
        v = e.features.get(name)
        return v if isinstance(v, str) else None

    return get


def _field(name: str) -> Fn:
    if name == "amount":
        return lambda e: e.amount_minor / 100
    if name == "amount_cents":
        return lambda e: e.amount_minor % 100
    return attrgetter(name)


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_SWAP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _cmp_const(op: str, g: Fn, c: Any, nullable: bool) -> Fn:
    if not nullable:
        if op == "==":
            return lambda e: g(e) == c
        if op == "!=":
            return lambda e: g(e) != c
        if op == "<":
            return lambda e: g(e) < c
        if op == "<=":
            return lambda e: g(e) <= c
        if op == ">":
            return lambda e: g(e) > c
        return lambda e: g(e) >= c
    if op == "==":
        return lambda e: (v := g(e)) is not None and v == c
    if op == "!=":
        return lambda e: (v := g(e)) is not None and v != c
    if op == "<":
        return lambda e: (v := g(e)) is not None and v < c
    if op == "<=":
        return lambda e: (v := g(e)) is not None and v <= c
    if op == ">":
        return lambda e: (v := g(e)) is not None and v > c
    return lambda e: (v := g(e)) is not None and v >= c


def _feature_cmp(op: str, name: str, c: Any) -> Fn:
    """``features.<name> <op> c`` in one closure (booleans compare as 1/0; strings never)."""
    if op == "==":
        return lambda e: (v := e.features.get(name)) is not None and v.__class__ is not str and (
            v == c)
    if op == "!=":
        return lambda e: (v := e.features.get(name)) is not None and v.__class__ is not str and (
            v != c)
    if op == "<":
        return lambda e: (v := e.features.get(name)) is not None and v.__class__ is not str and (
            v < c)
    if op == "<=":
        return lambda e: (v := e.features.get(name)) is not None and v.__class__ is not str and (
            v <= c)
    if op == ">":
        return lambda e: (v := e.features.get(name)) is not None and v.__class__ is not str and (
            v > c)
    return lambda e: (v := e.features.get(name)) is not None and v.__class__ is not str and (
        v >= c)


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}
"""The comparisons as C functions (a lambda per test cost a Python call more)."""


def _feature_range(name: str, tests: list[tuple[str, Any]], any_of: bool) -> Fn:
    """Several comparisons of one numeric feature with constants, one lookup."""
    checks = [(_OPS[op], c) for op, c in tests]
    if len(checks) == 2 and any_of:
        (f1, c1), (f2, c2) = checks
        return lambda e: (v := e.features.get(name)) is not None and v.__class__ is not str and (
            f1(v, c1) or f2(v, c2))

    def test(e: ScoredTransaction) -> bool:
        v = e.features.get(name)
        if v is None or v.__class__ is str:
            return False
        for f, c in checks:  # a loop, not any()/all() of a generator: no frame per event
            if f(v, c):
                if any_of:
                    return True
            elif not any_of:
                return False
        return not any_of

    return test


def _feature_const(node: t.T) -> tuple[str, str, Any] | None:
    """(feature, op, constant) when ``node`` compares a numeric feature with a constant."""
    if not isinstance(node, t.Cmp):
        return None
    left, right, op = node.left, node.right, node.op
    if isinstance(left, t.Const) and not isinstance(right, t.Const):
        op, left, right = _SWAP[op], right, left
    if isinstance(left, t.Feature) and left.ty is Ty.FLOAT and isinstance(right, t.Const):
        return left.name, op, right.value
    return None


def _and(fns: list[Fn]) -> Fn:
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda e: a(e) and b(e)
    if len(fns) == 3:
        a, b, c = fns
        return lambda e: a(e) and b(e) and c(e)
    a, b, c, rest = fns[0], fns[1], fns[2], _and(fns[3:])
    return lambda e: a(e) and b(e) and c(e) and rest(e)


def _or(fns: list[Fn]) -> Fn:
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda e: a(e) or b(e)
    if len(fns) == 3:
        a, b, c = fns
        return lambda e: a(e) or b(e) or c(e)
    a, b, c, rest = fns[0], fns[1], fns[2], _or(fns[3:])
    return lambda e: a(e) or b(e) or c(e) or rest(e)


# Relative cost of an aggregate (only the order of and/or operands depends on it):
# a count or first_seen is a bisect over the window; the others walk the entries.
_AGG_COST = {"count": 60, "first_seen": 60, "monotonic_increase": 80,
             "monotonic_decrease": 80}


def cost(node: t.T) -> int:
    """Relative cost of evaluating ``node`` (aggregates dominate); orders and/or operands."""
    total = 0
    for sub in t.walk(node):
        if isinstance(sub, t.Agg):
            total += _AGG_COST.get(sub.kind, 100)
        elif isinstance(sub, t.Func) and sub.name == "matches":
            total += 5
        else:
            total += 1
    return total


class Compiler:
    """Turns typed nodes into closures; aggregates come from the runtime's windows.

    ``at_least(agg, n)``, when given, may return a test for ``agg >= n`` (an integer
    ``n``) that is cheaper than computing the aggregate (e.g. stopping a distinct count
    at ``n``), or None; comparisons ``agg >= c`` and ``agg > c`` use it.
    """

    def __init__(
        self,
        agg: Callable[[t.Agg], Fn],
        at_least: Callable[[t.Agg, int], Fn | None] | None = None,
    ) -> None:
        self.agg = agg
        self.at_least = at_least

    def __call__(self, node: t.T) -> Fn:
        if isinstance(node, t.Const):
            value = node.value
            return lambda e: value
        if isinstance(node, t.Field):
            return _field(node.name)
        if isinstance(node, t.Feature):
            return _feature_num(node.name) if node.ty is Ty.FLOAT else _feature_str(node.name)
        if isinstance(node, t.Neg):
            g = self(node.operand)
            if node.operand.nullable:
                return lambda e: None if (v := g(e)) is None else -v
            return lambda e: -g(e)
        if isinstance(node, t.Arith):
            return self.arith(node)
        if isinstance(node, t.Cmp):
            return self.compare(node)
        if isinstance(node, t.In):
            g = self(node.operand)
            values = frozenset(node.values)
            if not node.operand.nullable:
                if node.negated:
                    return lambda e: g(e) not in values
                return lambda e: g(e) in values
            if node.negated:
                return lambda e: (v := g(e)) is not None and v not in values
            return lambda e: (v := g(e)) is not None and v in values
        if isinstance(node, t.And):
            return _and(self.fused(sorted(node.items, key=cost), any_of=False))
        if isinstance(node, t.Or):
            return _or(self.fused(sorted(node.items, key=cost), any_of=True))
        if isinstance(node, t.Not):
            g = self(node.operand)
            return lambda e: not g(e)
        if isinstance(node, t.Func):
            return self.func(node)
        if isinstance(node, t.Agg):
            return self.agg(node)
        raise RuleError(f"cannot compile {type(node).__name__}")  # pragma: no cover

    def fused(self, items: list[t.T], any_of: bool) -> list[Fn]:
        """Closures of ``items``; comparisons of one feature with constants share a lookup."""
        groups: dict[str, list[tuple[str, Any]]] = {}
        for item in items:
            fc = _feature_const(item)
            if fc is not None:
                groups.setdefault(fc[0], []).append((fc[1], fc[2]))
        out: list[Fn] = []
        done: set[str] = set()
        for item in items:
            fc = _feature_const(item)
            if fc is None or len(groups[fc[0]]) == 1:
                out.append(self(item))
            elif fc[0] not in done:
                done.add(fc[0])
                out.append(_feature_range(fc[0], groups[fc[0]], any_of))
        return out

    def arith(self, node: t.Arith) -> Fn:
        a, b = self(node.left), self(node.right)
        op = node.op
        if op == "/":
            def div(e: ScoredTransaction) -> float | None:
                x, y = a(e), b(e)
                if x is None or y is None or y == 0:
                    return None
                return float(x / y)

            return div
        if op == "%":
            assert isinstance(node.right, t.Const)
            m = node.right.value
            if node.left.nullable:
                return lambda e: None if (v := a(e)) is None else v % m
            return lambda e: a(e) % m
        f: Callable[[Any, Any], Any] = {
            "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y
        }[op]
        if not node.nullable:
            return lambda e: f(a(e), b(e))

        def arith(e: ScoredTransaction) -> Any:
            x, y = a(e), b(e)
            return None if x is None or y is None else f(x, y)

        return arith

    def compare(self, node: t.Cmp) -> Fn:
        op, left, right = node.op, node.left, node.right
        if isinstance(left, t.Const) and not isinstance(right, t.Const):
            op, left, right = _SWAP[op], right, left
        if isinstance(right, t.Const):
            if isinstance(left, t.Feature) and left.ty is Ty.FLOAT:
                return _feature_cmp(op, left.name, right.value)
            c = right.value
            if (
                self.at_least is not None
                and isinstance(left, t.Agg)
                and op in (">=", ">")
                and isinstance(c, int | float)
                and not isinstance(c, bool)
            ):
                # agg >= c  <=>  agg >= ceil(c);  agg > c  <=>  agg >= floor(c) + 1
                need = math.ceil(c) if op == ">=" else math.floor(c) + 1
                fast = self.at_least(left, need)
                if fast is not None:
                    return fast
            return _cmp_const(op, self(left), right.value, left.nullable)
        a, b = self(left), self(right)
        f = _CMP[op]

        def cmp(e: ScoredTransaction) -> bool:
            x, y = a(e), b(e)
            return x is not None and y is not None and f(x, y)

        return cmp

    def func(self, node: t.Func) -> Fn:
        name = node.name
        args = [self(a) for a in node.args]
        nullable = bool(node.args) and node.args[0].nullable
        if name in ("starts_with", "ends_with", "contains", "matches"):
            s = args[0]
            lit = node.args[1]
            assert isinstance(lit, t.Const) and isinstance(lit.value, str)
            text = lit.value
            if name == "starts_with":
                test: Callable[[str], bool] = lambda v: v.startswith(text)  # noqa: E731
            elif name == "ends_with":
                test = lambda v: v.endswith(text)  # noqa: E731
            elif name == "contains":
                test = lambda v: text in v  # noqa: E731
            else:
                search = compile_bounded(text).search
                test = lambda v: _bounded(v) and search(v) is not None  # noqa: E731
            if nullable:
                return lambda e: (v := s(e)) is not None and test(v)
            return lambda e: test(s(e))
        if name == "prefix":
            s = args[0]
            k = node.args[1]
            assert isinstance(k, t.Const) and isinstance(k.value, int)
            size = k.value
            return lambda e: None if (v := s(e)) is None else v[:size]
        if name == "length":
            s = args[0]
            return lambda e: None if (v := s(e)) is None else len(v)
        if name == "age_days":
            d = args[0]
            return lambda e: None if (v := d(e)) is None else (e.event_time.date() - v).days
        if name == "hour_of_day":
            return lambda e: e.event_time.hour
        if name == "day_of_week":
            return lambda e: e.event_time.isoweekday()
        if name == "abs":
            x = args[0]
            return lambda e: None if (v := x(e)) is None else abs(v)
        if name == "present":
            x = args[0]
            if node.args[0].ty is Ty.STR:
                return lambda e: (v := x(e)) is not None and v != ""
            return lambda e: x(e) is not None
        if name == "distance_km":
            la1, lo1, la2, lo2 = args

            def dist(e: ScoredTransaction) -> float | None:
                v = (la1(e), lo1(e), la2(e), lo2(e))
                if None in v:
                    return None
                return haversine_km(float(v[0]), float(v[1]), float(v[2]), float(v[3]))

            return dist
        raise RuleError(f"unknown function {name}")  # pragma: no cover


def key_function(parts: Sequence[t.T], compile_part: Callable[[t.T], Fn]) -> KeyFn:
    """Event -> entity key; None when any part is null or an empty string.

    Keys made of plain contract fields read them with one C-level ``attrgetter``.
    """
    plain = all(isinstance(p, t.Field) and p.name != "amount" for p in parts)
    has_str = any(p.ty is Ty.STR for p in parts)
    has_null = any(p.nullable for p in parts)
    if plain and len(parts) == 1:
        assert isinstance(parts[0], t.Field)
        g = attrgetter(parts[0].name)
        if has_str:
            return lambda e: g(e) or None
        return g
    if plain:
        names = [p.name for p in parts if isinstance(p, t.Field)]
        tup = attrgetter(*names)
        if has_str and has_null:
            return lambda e: None if "" in (k := tup(e)) or None in k else k
        if has_str:
            return lambda e: None if "" in (k := tup(e)) else k
        if has_null:
            return lambda e: None if None in (k := tup(e)) else k
        return tup
    fns = [compile_part(p) for p in parts]
    if len(fns) == 1:
        one = fns[0]
        return lambda e: None if (v := one(e)) is None or v == "" else v

    def key(e: ScoredTransaction) -> Hashable | None:
        out = tuple(g(e) for g in fns)
        if None in out or "" in out:
            return None
        return out

    return key


# ------------------------------------------------------------------------------------------
# aggregate computations over window entries
