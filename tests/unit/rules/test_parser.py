"""Tokenizer and parser: shapes checkable by hand, positions, limits, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.errors import RuleError
from driftwatch.rules import nodes as n
from driftwatch.rules.lexer import MAX_TEXT, RuleSyntaxError, tokenize
from driftwatch.rules.parser import MAX_DEPTH, parse


def shape(node: n.Node) -> object:
    """A compact, position-free rendering of a syntax tree."""
    if isinstance(node, n.Num | n.Str | n.Bool):
        return node.value
    if isinstance(node, n.Duration):
        return ("dur", node.ms)
    if isinstance(node, n.Name):
        return ".".join(node.parts)
    if isinstance(node, n.Unary):
        return (node.op, shape(node.operand))
    if isinstance(node, n.Binary):
        return (node.op, shape(node.left), shape(node.right))
    if isinstance(node, n.InList):
        return ("not in" if node.negated else "in", shape(node.operand),
                [shape(i) for i in node.items.items])
    if isinstance(node, n.ListLit):
        return [shape(i) for i in node.items]
    assert isinstance(node, n.Call)
    return (node.name, [shape(a) for a in node.args],
            {k.name: (k.op, shape(k.value)) for k in node.kwargs})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a or b and c", ("or", "a", ("and", "b", "c"))),
        ("not a and b", ("and", ("not", "a"), "b")),
        ("not a == 1", ("not", ("==", "a", 1))),
        ("1 + 2 * 3 - 4", ("-", ("+", 1, ("*", 2, 3)), 4)),
        ("(1 + 2) * 3", ("*", ("+", 1, 2), 3)),
        ("-a * 2", ("*", ("-", "a"), 2)),
        ("amount_minor % 100 == 37", ("==", ("%", "amount_minor", 100), 37)),
        ("a - b - c", ("-", ("-", "a", "b"), "c")),
        ("x not in [1, 2]", ("not in", "x", [1, 2])),
        ("mcc in ['5967']", ("in", "mcc", ["5967"])),
        ("features.age >= 125", (">=", "features.age", 125)),
        ("f(a, by=[b, c], within=1h, where=x < 3 and y)",
         ("f", ["a"], {"by": ("=", ["b", "c"]), "within": ("=", ("dur", 3_600_000)),
                       "where": ("=", ("and", ("<", "x", 3), "y"))})),
        ("m(x, factor>=1.2)", ("m", ["x"], {"factor": (">=", 1.2)})),
        ('"a\\"b\\n"', 'a"b\n'),
        ("1.5e3", 1500.0),
        ("true or false", ("or", True, False)),
    ],
)
def test_shapes(text: str, expected: object) -> None:
    assert shape(parse(text)) == expected


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("a < b < c", "comparisons do not chain", 6),
        ("a ? b", "unexpected character '?'", 2),
        ("(a", "expected ')'", 2),
        ("a +", "unexpected end of expression", 3),
        ("'abc", "unterminated string", 0),
        ("'a\\qb'", "unknown escape", 2),
        ("f(x=1, 2)", "positional argument after keyword", 7),
        ("f(x=1, x=2)", "given twice", 7),
        ("1.5h", "whole number", 0),
        ("a in b", "'in' needs a list", 5),
        ("", "empty expression", 0),
        ("a b", "unexpected 'b'", 2),
        ("99999999999999999", "larger than", 0),
    ],
)
def test_errors_have_positions(text: str, message: str, pos: int) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.pos == pos


def test_durations() -> None:
    assert [t.value for t in tokenize("30s 10m 2h 1d 250ms")[:-1]] == [
        30_000, 600_000, 7_200_000, 86_400_000, 250]


def test_depth_limit_is_an_error_not_a_crash() -> None:
    ok = "(" * (MAX_DEPTH - 2) + "a" + ")" * (MAX_DEPTH - 2)
    assert shape(parse(ok)) == "a"
    for deep in ("(" * 5000 + "a" + ")" * 5000, "not " * 2000 + "a", "-" * 3000 + "a",
                 "[" * 500 + "]" * 500, "f(" * 400 + ")" * 400):
        with pytest.raises(RuleSyntaxError, match=r"nested deeper|longer than|tokens"):
            parse(deep)


def test_length_and_token_limits() -> None:
    with pytest.raises(RuleSyntaxError, match="longer than"):
        parse("a" * (MAX_TEXT + 1))
    with pytest.raises(RuleSyntaxError, match="tokens"):
        parse(" + ".join(["a"] * 600))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    with contextlib.suppress(RuleError):
        parse(text)


_atoms = st.sampled_from(["a", "mcc", "features.age", "12", "3.5", "'x'", "true", "10m"])


def _expr(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(
        [" and ", " or ", " + ", " * ", " - ", " % ", " == ", " < "]), children)
    return st.one_of(
        binary.map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        children.map(lambda c: f"not ({c})"),
        children.map(lambda c: f"f({c}, by=[{c}], within=1h)"),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: f"(a in [{', '.join(xs)}])"),
    )


@settings(max_examples=200, deadline=None)
@given(st.recursive(_atoms, _expr, max_leaves=12))
def test_generated_expressions_parse_and_spans_are_sane(text: str) -> None:
    node = parse(text)
    assert 0 <= node.pos <= node.end <= len(text)
