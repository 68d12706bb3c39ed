"""Tokenizer of the rule expression language.

The language is closed and small: numbers, durations (``10m``), quoted strings,
identifiers, the keywords ``and or not in true false`` and a fixed set of
operators. Anything else is a :class:`RuleSyntaxError` with the offset where it
starts. The text length and the token count are bounded, so hostile input costs
at most linear time.

>>> [(t.kind, t.text) for t in tokenize('amount_minor % 100 == 37')]
[('ident', 'amount_minor'), ('op', '%'), ('num', '100'), ('op', '=='), ('num', '37'), ('end', '')]
>>> tokenize('within=1h')[2].value
3600000
>>> tokenize('a ? b')
Traceback (most recent call last):
...
driftwatch.rules.lexer.RuleSyntaxError: unexpected character '?' at 2
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from driftwatch.errors import RuleError

MAX_TEXT = 4000
"""Longest expression text accepted, in characters."""
MAX_TOKENS = 1000
"""Most tokens in one expression."""
MAX_STRING = 256
"""Longest string literal, in characters."""
MAX_INT = 10**15
"""Largest integer literal (well inside Int64 and exact in a double)."""

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)(?P<unit>ms|s|m|h|d)?(?![A-Za-z0-9_])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|[<>+\-*/%()\[\],.=])
  | (?P<quote>["'])
    """,
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


class RuleSyntaxError(RuleError):
    """A rule expression is not well formed; ``pos`` is the offset in its text."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} at {pos}")
        self.message = message
        self.pos = pos


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, source text, offset and (for literals) its value."""

    kind: str  # num, dur, str, ident, kw, op, end
    text: str
    pos: int
    value: int | float | str | None = None


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\n":
            break
        if ch == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt not in _ESCAPES:
                raise RuleSyntaxError(f"unknown escape '\\{nxt}' in string", i)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
        if len(out) > MAX_STRING:
            raise RuleSyntaxError(f"string literal longer than {MAX_STRING} characters", start)
    raise RuleSyntaxError("unterminated string", start)


def _number(text: str, pos: int) -> int | float:
    if re.fullmatch(r"[0-9]+", text):
        value = int(text)
        if value > MAX_INT:
            raise RuleSyntaxError(f"integer {text} is larger than {MAX_INT}", pos)
        return value
    number = float(text)
    if not math.isfinite(number) or abs(number) > MAX_INT:
        raise RuleSyntaxError(f"number {text} is out of range", pos)
    return number


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens, ending with an ``end`` token.

    Raises
    ------
    RuleSyntaxError
        On an unknown character, an unterminated string, a bad number or when the
        text or token count exceeds :data:`MAX_TEXT` / :data:`MAX_TOKENS`.
    """
    if len(text) > MAX_TEXT:
        raise RuleSyntaxError(f"expression longer than {MAX_TEXT} characters", MAX_TEXT)
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise RuleSyntaxError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup
        if kind == "ws":
            pos = m.end()
            continue
        if kind == "quote":
            value, end = _string(text, pos)
            tokens.append(Token("str", text[pos:end], pos, value))
            pos = end
        elif kind in ("num", "unit"):
            num_text, unit = m.group("num"), m.group("unit")
            number = _number(num_text, pos)
            if unit:
                if not isinstance(number, int):
                    raise RuleSyntaxError(f"duration {m.group()} must be a whole number", pos)
                tokens.append(Token("dur", m.group(), pos, number * UNITS_MS[unit]))
            else:
                tokens.append(Token("num", num_text, pos, number))
            pos = m.end()
        elif kind == "ident":
            word = m.group()
            tokens.append(Token("kw" if word in KEYWORDS else "ident", word, pos, None))
            pos = m.end()
        else:
            tokens.append(Token("op", m.group(), pos, None))
            pos = m.end()
        if len(tokens) > MAX_TOKENS:
            raise RuleSyntaxError(f"expression has more than {MAX_TOKENS} tokens", pos)
    tokens.append(Token("end", "", len(text), None))
    return tokens
