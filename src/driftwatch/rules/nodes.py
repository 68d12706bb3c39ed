"""The untyped syntax tree produced by :mod:`driftwatch.rules.parser`.

Every node keeps ``pos`` and ``end``, the offsets of its source text, so the type
checker can point at the exact place of an error and print the original text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every syntax node."""

    pos: int
    end: int


@dataclass(frozen=True, slots=True)
class Num(Node):
    """An integer or decimal literal."""

    value: int | float


@dataclass(frozen=True, slots=True)
class Str(Node):
    """A quoted string literal."""

    value: str


@dataclass(frozen=True, slots=True)
class Bool(Node):
    """``true`` or ``false``."""

    value: bool


@dataclass(frozen=True, slots=True)
class Duration(Node):
    """A duration literal such as ``10m``, in milliseconds."""

    ms: int


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    """``[a, b, c]``."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A field reference: ``mcc`` or ``features.age`` (parts split on dots)."""

    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """``not x`` or ``-x``."""

    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """Arithmetic, comparison and boolean operators."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class InList(Node):
    """``x in [..]`` or ``x not in [..]``."""

    operand: Node
    items: ListLit
    negated: bool


@dataclass(frozen=True, slots=True)
class KwArg(Node):
    """A keyword argument ``name=value`` (or ``name>=value`` for bounds)."""

    name: str
    op: str
    value: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A function call with positional and keyword arguments."""

    name: str
    args: tuple[Node, ...]
    kwargs: tuple[KwArg, ...]
