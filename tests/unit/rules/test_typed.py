"""Typed nodes cache their hash (rules/typed.py): equal nodes hash alike, and a copy or
pickle carries no cached hash (a string's hash differs between processes)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

from driftwatch.rules import typed as t
from driftwatch.rules.pack import load_rules

PACKS = Path(__file__).resolve().parents[3] / "rules"


def test_shipped_trees_hash_as_their_copies_and_pickles() -> None:
    for rule in load_rules([str(PACKS)]).rules:
        expr = rule.expr
        h = hash(expr)
        assert expr.hash_ == h  # cached by the first hash()
        for other in (pickle.loads(pickle.dumps(expr)), copy.deepcopy(expr)):
            assert other.hash_ is None  # not carried over
            assert other == expr and hash(other) == h


def test_equal_nodes_hash_alike_and_hash_is_not_compared() -> None:
    a = t.Cmp(t.Ty.BOOL, False, ">=", t.Field(t.Ty.INT, False, "amount_minor"),
              t.Const(t.Ty.INT, False, 1000))
    b = t.Cmp(t.Ty.BOOL, False, ">=", t.Field(t.Ty.INT, False, "amount_minor"),
              t.Const(t.Ty.INT, False, 1000))
    hash(a)
    assert a == b and a.hash_ is not None and b.hash_ is None  # hash_ plays no part
    assert hash(a) == hash(b)
    assert {a: 1}[b] == 1
    c = t.Cmp(t.Ty.BOOL, False, ">=", t.Field(t.Ty.INT, False, "amount_minor"),
              t.Const(t.Ty.INT, False, 1001))
    assert c != a and c not in {a: 1}
