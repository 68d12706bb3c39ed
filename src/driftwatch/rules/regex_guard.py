"""Bounded regular expressions for ``matches(field, "pattern")``.

Rule authors get a small, safe subset of regular expressions that means the same
thing in Python's ``re`` (the live evaluator) and in RE2 (ClickHouse ``match``,
the backtests), and whose worst case is bounded:

- printable ASCII only, at most :data:`MAX_PATTERN` characters;
- literals, ``.``, ``^``, ``$``, classes ``[a-z0-9_-]`` / ``[^...]``, the escapes
  ``\\d \\D \\w \\W`` and escaped punctuation;
- groups ``(...)`` and ``(?:...)``, alternation ``|``;
- quantifiers ``* + ? {n} {n,} {n,m}`` (``n, m <= 100``), optionally lazy (``*?``);
- no back-references, look-arounds, flags, named groups or possessive quantifiers;
- no quantified group that contains a quantifier or an alternation (the classic
  catastrophic-backtracking shapes ``(a+)+`` and ``(a|a)*``);
- an estimated backtracking cost (product of the repetition ranges of the
  quantifiers, times the haystack length for an unanchored search) of at most
  :data:`MAX_COST` on a :data:`HAYSTACK`-character field.

The search is unanchored (``re.search``, like ClickHouse ``match``); ``.`` matches
a newline in both engines (``re.DOTALL``, as ClickHouse configures RE2) and ``$``
means the end of the text (translated to ``\\Z`` for Python).

>>> compile_bounded(r"^INTL-PAY-[A-Z]+$").search("INTL-PAY-GLOBAL") is not None
True
>>> compile_bounded(r"(a+)+b")
Traceback (most recent call last):
...
driftwatch.rules.regex_guard.UnsafeRegex: quantified group contains a quantifier or '|' at 4
"""

from __future__ import annotations

import re

from driftwatch.errors import RuleError

MAX_PATTERN = 200
"""Longest accepted pattern, in characters."""
MAX_REPEAT = 100
"""Largest bound in ``{n,m}``."""
HAYSTACK = 256
"""Longest string field a pattern runs on (``beneficiary_name``)."""
MAX_COST = 2_000_000
"""Largest estimated backtracking cost of one search."""
MAX_GROUP_DEPTH = 5
"""Deepest group nesting."""

_META = set("\\^$.|?*+()[]{}")
_ESC_CLASSES = set("dDwW")
_ESC_LITERAL = set("\\.-+*?()[]{}|^$/")


class UnsafeRegex(RuleError):
    """A ``matches`` pattern is outside the safe subset; ``pos`` is its offset."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} at {pos}")
        self.message = message
        self.pos = pos


class _Checker:
    """Recursive-descent walk of the subset; computes cost and the Python form."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        self.depth = 0
        self._group_cost = 1
        self._anchor = False

    def peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def fail(self, message: str, pos: int | None = None) -> UnsafeRegex:
        return UnsafeRegex(message, self.i if pos is None else pos)

    # alternation := sequence ('|' sequence)*  -> (cost, has_quantifier_or_alt)
    def alternation(self) -> tuple[int, bool]:
        cost, risky = self.sequence()
        branches = 1
        while self.peek() == "|":
            self.out.append("|")
            self.i += 1
            more, _ = self.sequence()
            cost += more
            branches += 1
        return cost, risky or branches > 1

    def sequence(self) -> tuple[int, bool]:
        cost, risky = 1, False
        while self.peek() not in ("", "|", ")"):
            atom_start = self.i
            atom_risky = self.atom()
            reps = self.quantifier(atom_start, atom_risky)
            if reps is not None:
                risky = True
                cost *= reps
            risky = risky or atom_risky
            if cost > MAX_COST:
                raise self.fail("pattern is too expensive (too many repetitions)", atom_start)
        return cost, risky

    def atom(self) -> bool:
        ch = self.peek()
        start = self.i
        if ch == "(":
            self.depth += 1
            if self.depth > MAX_GROUP_DEPTH:
                raise self.fail(f"groups nested deeper than {MAX_GROUP_DEPTH}")
            self.i += 1
            if self.p.startswith("?:", self.i):
                self.i += 2
                self.out.append("(?:")
            elif self.peek() == "?":
                raise self.fail("look-arounds, flags and named groups are not allowed")
            else:
                self.out.append("(")
            cost, risky = self.alternation()
            if self.peek() != ")":
                raise self.fail("missing ')'", start)
            self.i += 1
            self.out.append(")")
            self.depth -= 1
            self._group_cost = cost
            return risky
        self._group_cost = 1
        self._anchor = ch in "^$"
        if ch == "[":
            self.char_class()
            return False
        if ch == "\\":
            nxt = self.p[self.i + 1 : self.i + 2]
            if nxt in _ESC_CLASSES or nxt in _ESC_LITERAL:
                self.out.append("\\" + nxt)
                self.i += 2
                return False
            raise self.fail(f"escape '\\{nxt}' is not allowed")
        if ch == "$":
            self.out.append(r"\Z")
            self.i += 1
            return False
        if ch in "^.":
            self.out.append(ch)
            self.i += 1
            return False
        if ch in "?*+{":
            raise self.fail(f"nothing to repeat before {ch!r}")
        if ch in "]}":
            raise self.fail(f"unbalanced {ch!r}")
        self.out.append(re.escape(ch))
        self.i += 1
        return False

    def char_class(self) -> None:
        start = self.i
        self.i += 1
        body = ["["]
        if self.peek() == "^":
            body.append("^")
            self.i += 1
        first = True
        while True:
            ch = self.peek()
            if ch == "":
                raise self.fail("missing ']'", start)
            if ch == "]":
                if first:
                    raise self.fail("empty class; write \\] for a literal ']'")
                self.i += 1
                break
            if ch == "[":
                raise self.fail("nested '[' or POSIX classes are not allowed")
            if ch == "\\":
                nxt = self.p[self.i + 1 : self.i + 2]
                if nxt not in _ESC_CLASSES and nxt not in _ESC_LITERAL:
                    raise self.fail(f"escape '\\{nxt}' is not allowed")
                body.append("\\" + nxt)
                self.i += 2
            else:
                if self.p.startswith(("&&", "--", "~~", "||"), self.i):
                    raise self.fail("set operations in classes are not allowed")
                body.append(ch)
                self.i += 1
            first = False
        body.append("]")
        self.out.append("".join(body))

    def quantifier(self, atom_start: int, atom_risky: bool) -> int | None:
        ch = self.peek()
        if ch not in ("*", "+", "?", "{"):
            return None
        qpos = self.i
        if self._anchor:
            raise self.fail(f"nothing to repeat before {ch!r}", qpos)
        if atom_risky:
            raise self.fail("quantified group contains a quantifier or '|'", qpos)
        if ch == "{":
            m = re.compile(r"\{([0-9]{1,3})(,([0-9]{0,3}))?\}").match(self.p, self.i)
            if m is None:
                raise self.fail("bad repetition; use {n}, {n,} or {n,m}")
            low = int(m.group(1))
            high = HAYSTACK if m.group(2) and not m.group(3) else int(m.group(3) or low)
            if low > MAX_REPEAT or (m.group(3) and high > MAX_REPEAT) or high < low:
                raise self.fail(f"repetition bounds must satisfy n <= m <= {MAX_REPEAT}")
            self.out.append(m.group())
            self.i = m.end()
            reps = high - low + 1
        else:
            self.out.append(ch)
            self.i += 1
            reps = 2 if ch == "?" else HAYSTACK
        if self.peek() == "?":
            self.out.append("?")
            self.i += 1
        if self.peek() in ("*", "+", "?", "{"):
            raise self.fail("possessive or repeated quantifiers are not allowed")
        return max(1, reps) * max(1, self._group_cost)


def check_pattern(pattern: str) -> str:
    """Validate ``pattern`` against the safe subset; return its Python form.

    Raises
    ------
    UnsafeRegex
        Naming the problem and its offset.
    """
    if len(pattern) > MAX_PATTERN:
        raise UnsafeRegex(f"pattern longer than {MAX_PATTERN} characters", MAX_PATTERN)
    for pos, ch in enumerate(pattern):
        if not " " <= ch <= "~":
            raise UnsafeRegex("pattern must be printable ASCII", pos)
    if not pattern:
        raise UnsafeRegex("empty pattern", 0)
    c = _Checker(pattern)
    cost, _ = c.alternation()
    if c.i != len(pattern):
        raise UnsafeRegex("unbalanced ')'", c.i)
    anchored = pattern.startswith("^")
    total = cost if anchored else cost * HAYSTACK
    if total > MAX_COST:
        raise UnsafeRegex("pattern is too expensive (too many repetitions)", 0)
    return "".join(c.out)


def compile_bounded(pattern: str) -> re.Pattern[str]:
    """Check ``pattern`` and compile its Python form (ASCII classes, dot matches all)."""
    try:
        return re.compile(check_pattern(pattern), re.ASCII | re.DOTALL)
    except re.error as exc:
        raise UnsafeRegex(f"invalid pattern: {exc.msg}", exc.pos or 0) from None
