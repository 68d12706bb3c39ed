"""Pratt parser of rule expressions into the syntax tree of :mod:`~driftwatch.rules.nodes`.

Grammar (lowest to highest precedence)::

    expr    := expr 'or' expr | expr 'and' expr | 'not' expr
             | sum (cmp sum | ['not'] 'in' list)?          cmp: == != < <= > >=
    sum     := sum ('+' | '-') term | term
    term    := term ('*' | '/' | '%') unary | unary
    unary   := '-' unary | primary
    primary := NUMBER | DURATION | STRING | 'true' | 'false' | list | '(' expr ')'
             | IDENT ('.' IDENT)*  | IDENT '(' [arg (',' arg)*] ')'
    arg     := expr | IDENT ('=' | '>=' | '<=' | '>' | '<') expr
    list    := '[' [expr (',' expr)*] ']'

Comparisons do not chain (``a < b < c`` is an error). Nesting depth is bounded
(:data:`MAX_DEPTH`), so deep input fails with a clear error, never a
``RecursionError``. Nothing is ever evaluated here.

>>> parse('amount_cents == 37 and mcc in ["5967", "4829"]').op
'and'
>>> parse('count(by=ip, within=1h)').kwargs[0].name
'by'
>>> parse('a < b < c')
Traceback (most recent call last):
...
driftwatch.rules.lexer.RuleSyntaxError: comparisons do not chain; use 'and' at 6
"""

from __future__ import annotations

import dataclasses

from driftwatch.rules import nodes as n
from driftwatch.rules.lexer import RuleSyntaxError, Token, tokenize

MAX_DEPTH = 32
"""Deepest nesting of parentheses, calls, lists and unary operators."""

_CMP = frozenset({"==", "!=", "<", "<=", ">", ">="})
_BP = {"or": 1, "and": 2, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
_KW_OPS = frozenset({"=", ">=", "<=", ">", "<"})


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def ahead(self) -> Token:
        """The token after the current one (the end token at the end)."""
        return self.tokens[min(self.i + 1, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_op(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def is_kw(self, text: str) -> bool:
        return self.tok.kind == "kw" and self.tok.text == text

    def expect_op(self, text: str) -> Token:
        if not self.is_op(text):
            raise RuleSyntaxError(f"expected '{text}', found {self.describe()}", self.tok.pos)
        return self.next()

    def describe(self) -> str:
        return "end of expression" if self.tok.kind == "end" else repr(self.tok.text)

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleSyntaxError(f"expression nested deeper than {MAX_DEPTH} levels", pos)

    def leave(self) -> None:
        self.depth -= 1

    # -- Pratt loop -----------------------------------------------------------------------
    def infix_bp(self) -> int:
        tok = self.tok
        if tok.kind == "kw" and tok.text in ("or", "and"):
            return _BP[tok.text]
        if tok.kind == "kw" and tok.text == "in":
            return _BP["cmp"]
        if tok.kind == "kw" and tok.text == "not":
            nxt = self.ahead()
            return _BP["cmp"] if nxt.kind == "kw" and nxt.text == "in" else 0
        if tok.kind == "op" and tok.text in _CMP:
            return _BP["cmp"]
        if tok.kind == "op" and tok.text in _BP:
            return _BP[tok.text]
        return 0

    def expr(self, min_bp: int = 0) -> n.Node:
        self.enter(self.tok.pos)
        left = self.prefix()
        while True:
            bp = self.infix_bp()
            if bp == 0 or bp <= min_bp:
                break
            tok = self.next()
            if bp == _BP["cmp"]:
                left = self.comparison(left, tok)
                if self.infix_bp() == _BP["cmp"]:
                    raise RuleSyntaxError("comparisons do not chain; use 'and'", self.tok.pos)
                continue
            right = self.expr(bp)
            left = n.Binary(left.pos, right.end, tok.text, left, right)
        self.leave()
        return left

    def comparison(self, left: n.Node, tok: Token) -> n.Node:
        negated = False
        if tok.kind == "kw" and tok.text == "not":
            self.next()  # the 'in'
            negated = True
        if tok.kind == "kw":
            if not self.is_op("["):
                raise RuleSyntaxError(
                    f"'in' needs a list like [\"a\", \"b\"], found {self.describe()}", self.tok.pos
                )
            items = self.list_lit()
            return n.InList(left.pos, items.end, left, items, negated)
        right = self.expr(_BP["cmp"])
        return n.Binary(left.pos, right.end, tok.text, left, right)

    def prefix(self) -> n.Node:
        tok = self.tok
        if tok.kind == "kw" and tok.text == "not":
            self.next()
            operand = self.expr(3)
            return n.Unary(tok.pos, operand.end, "not", operand)
        if tok.kind == "op" and tok.text == "-":
            self.next()
            self.enter(tok.pos)
            operand = self.prefix()
            self.leave()
            return n.Unary(tok.pos, operand.end, "-", operand)
        return self.primary()

    def primary(self) -> n.Node:
        tok = self.next()
        end = tok.pos + len(tok.text)
        if tok.kind == "num":
            assert isinstance(tok.value, int | float)
            return n.Num(tok.pos, end, tok.value)
        if tok.kind == "dur":
            assert isinstance(tok.value, int)
            return n.Duration(tok.pos, end, tok.value)
        if tok.kind == "str":
            assert isinstance(tok.value, str)
            return n.Str(tok.pos, end, tok.value)
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return n.Bool(tok.pos, end, tok.text == "true")
        if tok.kind == "op" and tok.text == "(":
            inner = self.expr()
            close = self.expect_op(")")
            return _with_span(inner, tok.pos, close.pos + 1)
        if tok.kind == "op" and tok.text == "[":
            self.i -= 1
            return self.list_lit()
        if tok.kind == "ident":
            if self.is_op("("):
                return self.call(tok)
            parts = [tok.text]
            while self.is_op("."):
                self.next()
                part = self.next()
                if part.kind not in ("ident", "kw"):
                    raise RuleSyntaxError("expected a name after '.'", part.pos)
                parts.append(part.text)
                end = part.pos + len(part.text)
            return n.Name(tok.pos, end, tuple(parts))
        where = "end of expression" if tok.kind == "end" else repr(tok.text)
        raise RuleSyntaxError(f"unexpected {where}", tok.pos)

    def list_lit(self) -> n.ListLit:
        start = self.expect_op("[")
        items: list[n.Node] = []
        while not self.is_op("]"):
            items.append(self.expr())
            if not self.is_op("]"):
                self.expect_op(",")
        close = self.expect_op("]")
        return n.ListLit(start.pos, close.pos + 1, tuple(items))

    def call(self, name: Token) -> n.Call:
        self.expect_op("(")
        args: list[n.Node] = []
        kwargs: list[n.KwArg] = []
        while not self.is_op(")"):
            nxt = self.ahead()
            if self.tok.kind == "ident" and nxt.kind == "op" and nxt.text in _KW_OPS:
                key = self.next()
                op = self.next().text
                value = self.expr() if op == "=" else self.expr(_BP["cmp"])
                if any(k.name == key.text for k in kwargs):
                    raise RuleSyntaxError(f"argument {key.text!r} given twice", key.pos)
                kwargs.append(n.KwArg(key.pos, value.end, key.text, op, value))
            else:
                if kwargs:
                    raise RuleSyntaxError(
                        "positional argument after keyword argument", self.tok.pos
                    )
                args.append(self.expr())
            if not self.is_op(")"):
                self.expect_op(",")
        close = self.expect_op(")")
        return n.Call(name.pos, close.pos + 1, name.text, tuple(args), tuple(kwargs))


def _with_span(node: n.Node, pos: int, end: int) -> n.Node:
    """The node with its span widened to include surrounding parentheses."""
    return dataclasses.replace(node, pos=pos, end=end)


def parse(text: str) -> n.Node:
    """Parse one rule expression.

    Raises
    ------
    RuleSyntaxError
        With the offset of the first problem.
    """
    p = _Parser(text)
    if p.tok.kind == "end":
        raise RuleSyntaxError("empty expression", 0)
    node = p.expr()
    if p.tok.kind != "end":
        raise RuleSyntaxError(f"unexpected {p.describe()}", p.tok.pos)
    return node
