"""The typed expression tree: what the type checker produces and both back ends consume.

The live evaluator (:mod:`~driftwatch.rules.live`) and the SQL compiler
(:mod:`~driftwatch.rules.sql`) read only this tree, so a rule means the same in
both. Nodes are frozen (hashable): identical aggregates in different rules share
one window of state.

Null semantics, identical in both back ends: arithmetic on a null gives null;
a comparison, ``in`` or predicate function with a null operand is *false*; every
boolean is therefore definite and ``not`` is ordinary negation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any


class Ty(enum.Enum):
    """Value types of the language."""

    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    DATE = "date"

    __hash__ = object.__hash__
    """Members are singletons compared by identity: hashed by identity too (C level).
    ``Enum.__hash__`` is a Python call, made for every node of a tree each time a
    column name holding the tree is looked up (a third of that lookup's time)."""

    @property
    def numeric(self) -> bool:
        """True for INT and FLOAT."""
        return self in (Ty.INT, Ty.FLOAT)


@dataclass(frozen=True, slots=True)
class T:
    """Base of typed nodes: the value type and whether it may be null."""

    ty: Ty
    nullable: bool
    hash_: int | None = field(default=None, init=False, repr=False, compare=False)
    """The node's hash once computed (see :func:`_cached_hash`)."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled and copied without :attr:`hash_` (a string's hash differs between
        processes): rebuilt from the fields ``__init__`` takes."""
        return type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init)


@dataclass(frozen=True, slots=True)
class Const(T):
    """A literal value."""

    value: int | float | str | bool


@dataclass(frozen=True, slots=True)
class Field(T):
    """A contract field of the event (``mcc``, ``amount_minor``, ``amount``...)."""

    name: str


@dataclass(frozen=True, slots=True)
class Feature(T):
    """``features.<name>`` (numeric) or ``features_str.<name>`` (string); null if absent."""

    name: str


@dataclass(frozen=True, slots=True)
class Neg(T):
    """Unary minus."""

    operand: T


@dataclass(frozen=True, slots=True)
class Arith(T):
    """``+ - * / %``; ``/`` gives a float and null on division by zero."""

    op: str
    left: T
    right: T


@dataclass(frozen=True, slots=True)
class Cmp(T):
    """``== != < <= > >=``; false when either side is null."""

    op: str
    left: T
    right: T


@dataclass(frozen=True, slots=True)
class In(T):
    """``x in [...]`` / ``x not in [...]`` over constants; false when ``x`` is null."""

    operand: T
    values: tuple[int | float | str | bool, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class And(T):
    """Conjunction (operands in evaluation order)."""

    items: tuple[T, ...]


@dataclass(frozen=True, slots=True)
class Or(T):
    """Disjunction."""

    items: tuple[T, ...]


@dataclass(frozen=True, slots=True)
class Not(T):
    """Negation of a definite boolean."""

    operand: T


@dataclass(frozen=True, slots=True)
class Func(T):
    """A scalar function of the current event (``starts_with``, ``age_days``...)."""

    name: str
    args: tuple[T, ...]


@dataclass(frozen=True, slots=True)
class Agg(T):
    """A windowed aggregate keyed by an entity.

    ``kind`` is one of ``count sum count_distinct min max first_seen
    monotonic_increase monotonic_decrease travel_km travel_speed_kmh received_max``.
    The window is ``[t - within_ms, t]`` in event time, both ends inclusive, over the
    events with the same key as the current one (``first_seen`` looks at
    ``[t - within, t)``). ``received_max`` keys the events of the window by another
    field, ``payee``: an event counts for the current one when its ``payee`` is
    ``prefix`` followed by the current event's key (money *received* by the key).
    ``text`` is the normalised source text, used as the evidence label.
    """

    kind: str
    value: T | None
    keys: tuple[T, ...]
    within_ms: int
    where: T | None = None
    n: int = 0
    factor: tuple[int, int] = (1, 1)
    slack_km: float = 0.0
    slack_h: float = 0.0
    text: str = ""
    payee: T | None = None
    prefix: str = ""

    @property
    def identity(self) -> Agg:
        """This aggregate without its source text (equal aggregates share state)."""
        return Agg(
            self.ty, self.nullable, self.kind, self.value, self.keys, self.within_ms,
            self.where, self.n, self.factor, self.slack_km, self.slack_h, "", self.payee,
            self.prefix,
        )


def walk(node: T) -> list[T]:
    """Every node of the tree, parents before children (aggregate arguments included)."""
    out: list[T] = []
    stack: list[T] = [node]
    while stack:
        cur = stack.pop()
        out.append(cur)
        if isinstance(cur, Neg | Not):
            stack.append(cur.operand)
        elif isinstance(cur, Arith | Cmp):
            stack.extend((cur.right, cur.left))
        elif isinstance(cur, In):
            stack.append(cur.operand)
        elif isinstance(cur, And | Or):
            stack.extend(reversed(cur.items))
        elif isinstance(cur, Func):
            stack.extend(reversed(cur.args))
        elif isinstance(cur, Agg):
            parts = [*cur.keys]
            if cur.value is not None:
                parts.append(cur.value)
            if cur.where is not None:
                parts.append(cur.where)
            if cur.payee is not None:
                parts.append(cur.payee)
            stack.extend(reversed(parts))
    return out


def aggregates(node: T) -> list[Agg]:
    """The aggregates used by an expression, in order of first appearance, unique."""
    seen: dict[Agg, Agg] = {}
    for sub in walk(node):
        if isinstance(sub, Agg) and sub.identity not in seen:
            seen[sub.identity] = sub
    return list(seen.values())


def _cached_hash(cls: type[T]) -> Any:
    """``cls.__hash__``: the hash of the compared fields (the dataclass's own), computed
    once per node. A tree is hashed each time a column or window named by it is looked
    up (per chunk of events): recomputed, that was a Python call per node of the tree."""
    compared = attrgetter(*[f.name for f in fields(cls) if f.compare])

    def __hash__(self: T) -> int:
        h = self.hash_
        if h is None:
            h = hash(compared(self))
            object.__setattr__(self, "hash_", h)
        return h

    return __hash__


for _cls in (T, Const, Field, Feature, Neg, Arith, Cmp, In, And, Or, Not, Func, Agg):
    _cls.__hash__ = _cached_hash(_cls)  # type: ignore[method-assign]
