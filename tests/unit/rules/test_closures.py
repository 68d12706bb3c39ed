"""Fused feature comparisons (``_feature_range``) against the comparisons one by one."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from driftwatch.rules.closures import _feature_range

VALUES: list[Any] = [None, "7", -1, 0, 0.5, 3, 125, 10_000, float("inf"), float("nan"), True]
TESTS = [[(">=", 125), ("<", 0)], [("<", 0), (">=", 10_000), ("!=", 3)],
         [(">", 0), ("<=", 125)], [("==", 3), ("!=", 0), (">=", -1)]]
HAND = {"==": lambda v, c: v == c, "!=": lambda v, c: v != c, "<": lambda v, c: v < c,
        "<=": lambda v, c: v <= c, ">": lambda v, c: v > c, ">=": lambda v, c: v >= c}


def by_hand(v: Any, tests: list[tuple[str, Any]], any_of: bool) -> bool:
    """The comparisons one at a time, as the rule language defines them on a feature
    (null and strings never compare)."""
    if v is None or isinstance(v, str):
        return False
    got = [HAND[op](v, c) for op, c in tests]
    return any(got) if any_of else all(got)


@pytest.mark.parametrize(("tests", "any_of"), list(itertools.product(TESTS, [True, False])))
def test_feature_range_equals_the_comparisons_one_by_one(tests: list[tuple[str, Any]],
                                                         any_of: bool) -> None:
    test = _feature_range("x", tests, any_of)
    for v in VALUES:
        event = SimpleNamespace(features={} if v is None else {"x": v})
        assert test(event) is by_hand(v, tests, any_of), (v, tests, any_of)


def test_feature_range_hand_cases() -> None:
    out_of_domain = _feature_range("age", [(">=", 125), ("<", 0)], any_of=True)
    in_range = _feature_range("age", [(">=", 18), ("<", 125)], any_of=False)
    for age, outside, inside in [(130, True, False), (-2, True, False), (40, False, True),
                                 (17, False, False)]:
        event = SimpleNamespace(features={"age": age})
        assert out_of_domain(event) is outside
        assert in_range(event) is inside
