"""Type checker and bounded regexes: the closed vocabulary, model independence, errors."""

from __future__ import annotations

import contextlib
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.errors import RuleError
from driftwatch.rules import typed as t
from driftwatch.rules.checker import RuleTypeError, check_condition
from driftwatch.rules.parser import parse
from driftwatch.rules.regex_guard import (
    HAYSTACK,
    MAX_PATTERN,
    UnsafeRegex,
    check_pattern,
    compile_bounded,
)
from driftwatch.rules.vocabulary import FIELDS, MODEL_FIELDS

DAY = 86_400_000


def check(text: str, horizon_ms: int = DAY) -> t.T:
    return check_condition(parse(text), horizon_ms, text)


@pytest.mark.parametrize("name", sorted(MODEL_FIELDS))
def test_model_outputs_are_rejected(name: str) -> None:
    with pytest.raises(RuleTypeError, match="model"):
        check(f"{name} == 1")


@pytest.mark.parametrize(
    "text",
    ["score < 0.3 and mcc == '5967'", "count(by=ip, within=1h, where=decision == 'approve') > 1",
     "sum(score, by=card_id, within=1h) > 1", "count(by=model_version, within=1h) > 1"],
)
def test_model_outputs_are_rejected_anywhere(text: str) -> None:
    with pytest.raises(RuleTypeError, match="model-independent"):
        check(text)


def test_every_contract_field_is_readable() -> None:
    for name, (ty, _nullable) in FIELDS.items():
        if ty is t.Ty.DATE:
            check(f"age_days({name}) > 1")
        elif ty is t.Ty.STR:
            check(f"{name} == 'x'")
        else:
            check(f"{name} > 1")
    assert isinstance(check("features.age >= 125"), t.Cmp)
    assert isinstance(check("features_str.segment == 'gold'"), t.Cmp)


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("amout > 3", "did you mean 'amount'", 0),
        ("mcc == 5967", "cannot compare str with int", 0),
        ("amount_minor % 0 == 1", "positive integer constant", 15),
        ("amount_minor % card_id == 1", "must be a number", 15),
        ("amount % 100 == 37", "integer on the left", 0),
        ("merchant_registered_at > 3", "age_days", 0),
        ("amount_minor > 10m", "duration is only allowed", 15),
        ("count(by=ip, within=2d) > 1", "longer than the state horizon 1d", 20),
        ("count(by=ip) > 1", "needs within=", 0),
        ("count(within=1h) > 1", "needs by=", 0),
        ("count(by=ip, within=1h, size=3) > 1", "no argument 'size'", 24),
        ("count(by=ip, within=1h, where=count(by=ip, within=1h) > 1) > 1",
         "cannot be nested", 30),
        ("sum(mcc, by=ip, within=1h) > 1", "needs a number", 4),
        ("frobnicate(mcc)", "unknown function", 0),
        ("matches(ip, '(a+)+')", "unsafe pattern", 17),
        ("matches(ip, ip)", "string literal", 12),
        ("starts_with(amount_minor, 'x')", "must be a string", 12),
        ("amount_minor", "must be a condition", 0),
        ("monotonic_increase(amount, by=card_id, n=1, within=1h)", "n= must be", 41),
        ("monotonic_increase(amount, by=card_id, n=3, within=1h, factor>=0.8)",
         "contradicts", 63),
        ("monotonic_decrease(amount, by=card_id, n=3, within=1h, factor>=0.8)",
         "factor<=", 55),
        ("monotonic_increase(features.x, by=card_id, n=3, within=1h)", "never null", 19),
        ("travel_speed_kmh(by=card_id, within=1h, slack_h=0) > 1", "slack_h", 48),
        ("count(by='x', within=1h) > 1", "constant", 9),
        ("count(by=[a, b, c, d, e], within=1h) > 1", "1..4", 9),
        ("mcc in [1, 2]", "list item is int", 8),
        ("mcc in [ip]", "constants only", 8),
        ("not amount", "condition", 4),
        ("features.a.b > 1", "features.<name>", 0),
        ("age_days(mcc) > 1", "needs a date", 9),
        ("count > 1", "is a function", 0),
        ("prefix(ip, 0) == 'a'", "1..256", 11),
        ("true < false", "does not apply", 0),
    ],
)
def test_type_errors_point_at_the_problem(text: str, message: str, pos: int) -> None:
    with pytest.raises(RuleTypeError) as info:
        check(text)
    assert message in info.value.message
    assert info.value.pos == pos


def test_types_of_arithmetic_and_aggregates() -> None:
    cents = check("amount_minor % 100 == 37")
    assert isinstance(cents, t.Cmp) and cents.left.ty is t.Ty.INT and not cents.left.nullable
    div = check("amount_minor / 2 > 1")
    assert isinstance(div, t.Cmp) and div.left.ty is t.Ty.FLOAT and div.left.nullable
    agg = check("count_distinct(card_id, by=ip, within=1h) >= 5")
    assert isinstance(agg, t.Cmp) and isinstance(agg.left, t.Agg)
    assert agg.left.within_ms == 3_600_000 and agg.left.text == (
        "count_distinct(card_id, by=ip, within=1h)")
    seq = check("monotonic_increase(amount_minor, by=card_id, n=3, within=2h, factor>=1.2)")
    assert isinstance(seq, t.Agg) and seq.factor == (6, 5) and seq.n == 3
    both = check("a_b_c() if true" if False else "mcc == 'a' and ip == 'b' and card_id == 'c'")
    assert isinstance(both, t.And) and len(both.items) == 3  # flattened


def test_equal_aggregates_share_identity() -> None:
    a = check("count(by=ip, within=1h) > 1")
    b = check("count( by = ip ,within=1h ) >= 5")
    assert isinstance(a, t.Cmp) and isinstance(b, t.Cmp)
    assert isinstance(a.left, t.Agg) and isinstance(b.left, t.Agg)
    assert a.left.text != b.left.text and a.left.identity == b.left.identity


@pytest.mark.parametrize(
    "text",
    ["__import__('os').system('id')", "eval('1')", "exec('x')", "().__class__",
     "open('/etc/passwd')", "globals()", "lambda: 1", "a; b", "import os", "x = 1",
     "getattr(mcc, 'upper')", "mcc.__class__ == 'x'", "{}", "`id`", "$(id)"],
)
def test_hostile_text_is_rejected(text: str) -> None:
    with pytest.raises(RuleError):
        check(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcmount_ ()[],.=<>!+-*/%'\"0123456789")),
               max_size=80))
def test_checker_never_crashes(text: str) -> None:
    with contextlib.suppress(RuleError):
        check(text)


# --- bounded regexes --------------------------------------------------------------------
@pytest.mark.parametrize(
    "pattern",
    ["^INTL-PAY-", "^[A-Z]{2,10}-\\d{1,5}$", "PAY", "^(ab)+c", "x|y|z", "[^a-z]", ".*@okbank$",
     "^\\d{4}$", "[-a]", "(?:ab){2}"],
)
def test_safe_patterns_are_accepted(pattern: str) -> None:
    check_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(a+)+b", "quantified group"),
        ("(a|a)*", "quantified group"),
        ("(a*)*", "quantified group"),
        ("(\\w+\\s?)+$", "not allowed"),
        ("(.*a){20}", "quantified group"),
        (".*a.*b.*c", "too expensive"),
        ("a{1,100}b{1,100}c{1,100}", "too expensive"),
        ("(a)\\1", "not allowed"),
        ("(?=a)", "look-arounds"),
        ("(?i)abc", "look-arounds"),
        ("(?P<n>a)", "look-arounds"),
        ("a++", "possessive"),
        ("a{1000}", "repetition"),
        ("a{5,2}", "repetition bounds"),
        ("^*", "nothing to repeat"),
        ("a$?", "nothing to repeat"),
        ("[[:alpha:]]", "nested"),
        ("[a--b]", "set operations"),
        ("é", "printable ASCII"),
        ("a" * (MAX_PATTERN + 1), "longer than"),
        ("(" * 10 + "a" + ")" * 10, "nested deeper"),
        ("(ab", "missing ')'"),
        ("ab)", "unbalanced"),
        ("*a", "nothing to repeat"),
        ("[]", "empty class"),
    ],
)
def test_unsafe_patterns_are_rejected(pattern: str, message: str) -> None:
    with pytest.raises(UnsafeRegex, match=re.escape(message)):
        check_pattern(pattern)


def test_dollar_means_end_of_text_like_re2() -> None:
    rx = compile_bounded("abc$")
    assert rx.search("xabc") and not rx.search("abc\n")
    assert compile_bounded("a.c").search("a\nc")  # dot matches newline, as in ClickHouse


@pytest.mark.parametrize(
    "pattern", ["^(ab)+c", ".*@okbank$", "[A-Z]{2,10}-\\d{1,5}x", "a.*b", "(?:ab){50}c",
                "x{1,100}y"]
)
def test_worst_case_is_fast(pattern: str) -> None:
    rx = compile_bounded(pattern)
    worst = 0.0
    for hay in ("a" * HAYSTACK, "ab" * (HAYSTACK // 2), "A" * HAYSTACK, "x" * HAYSTACK,
                "AB-1" * (HAYSTACK // 4), "@okbank" * 36):
        started = time.perf_counter()
        rx.search(hay)
        worst = max(worst, time.perf_counter() - started)
    assert worst < 0.05


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab.*+?{}()[]|^$\\d1,-")), max_size=30))
def test_pattern_checker_never_crashes_and_accepted_patterns_compile(pattern: str) -> None:
    try:
        rx = compile_bounded(pattern)
    except UnsafeRegex:
        return
    started = time.perf_counter()
    rx.search("ab" * 128)
    assert time.perf_counter() - started < 0.05
