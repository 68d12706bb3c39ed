"""Type checker: the untyped syntax tree in, the typed tree of :mod:`~driftwatch.rules.typed` out.

This is where the vocabulary is closed: every field, function and argument is
checked here, at load time, and an error names the offending text's offset.
Model outputs (``score``, ``decision``, ``model_version``, shadow scores) are not
in the vocabulary on purpose: the rule layer is model-independent.

The vocabulary itself (fields, functions, limits) is :mod:`~driftwatch.rules.vocabulary`.

>>> from driftwatch.rules.parser import parse
>>> check(parse("amount_cents == 37"), 86_400_000).ty
<Ty.BOOL: 'bool'>
>>> check(parse("score < 0.3"), 86_400_000)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
driftwatch.rules.checker.RuleTypeError: 'score' is a model output; rules are model-...
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from driftwatch.errors import RuleError
from driftwatch.rules import nodes as n
from driftwatch.rules import typed as t
from driftwatch.rules.regex_guard import UnsafeRegex, compile_bounded
from driftwatch.rules.typed import Ty
from driftwatch.rules.vocabulary import (
    AGGREGATES,
    FIELDS,
    MAX_IN_LIST,
    MAX_PREFIX,
    MAX_SEQUENCE,
    MODEL_FIELDS,
    RECEIVED_FUNCTIONS,
    SCALAR_FUNCTIONS,
    SEQUENCE_FUNCTIONS,
    WINDOW_FUNCTIONS,
    format_ms,
    suggest,
)


class RuleTypeError(RuleError):
    """A rule expression is well formed but wrong: unknown name, bad type or argument."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} at {pos}")
        self.message = message
        self.pos = pos


class _Checker:
    def __init__(self, source: str, horizon_ms: int) -> None:
        self.source = source
        self.horizon_ms = horizon_ms
        self.in_agg = False

    def err(self, message: str, node: n.Node) -> RuleTypeError:
        return RuleTypeError(message, node.pos)

    def text(self, node: n.Node) -> str:
        return " ".join(self.source[node.pos : node.end].split())

    # -- expressions ----------------------------------------------------------------------
    def expr(self, node: n.Node) -> t.T:
        if isinstance(node, n.Num):
            ty = Ty.INT if isinstance(node.value, int) else Ty.FLOAT
            return t.Const(ty, False, node.value)
        if isinstance(node, n.Str):
            return t.Const(Ty.STR, False, node.value)
        if isinstance(node, n.Bool):
            return t.Const(Ty.BOOL, False, node.value)
        if isinstance(node, n.Duration):
            raise self.err("a duration is only allowed as within=", node)
        if isinstance(node, n.ListLit):
            raise self.err("a list is only allowed after 'in' or as by=[...]", node)
        if isinstance(node, n.Name):
            return self.name(node)
        if isinstance(node, n.Unary):
            return self.unary(node)
        if isinstance(node, n.Binary):
            return self.binary(node)
        if isinstance(node, n.InList):
            return self.in_list(node)
        if isinstance(node, n.Call):
            return self.call(node)
        raise self.err(f"unsupported syntax {type(node).__name__}", node)  # pragma: no cover

    def boolean(self, node: n.Node, what: str) -> t.T:
        typed = self.expr(node)
        if typed.ty is not Ty.BOOL:
            raise self.err(f"{what} must be a condition (bool), got {typed.ty.value}", node)
        return typed

    def numeric(self, node: n.Node, what: str) -> t.T:
        typed = self.expr(node)
        if not typed.ty.numeric:
            raise self.err(f"{what} must be a number, got {typed.ty.value}", node)
        return typed

    def string(self, node: n.Node, what: str) -> t.T:
        typed = self.expr(node)
        if typed.ty is not Ty.STR:
            raise self.err(f"{what} must be a string, got {typed.ty.value}", node)
        return typed

    def name(self, node: n.Name) -> t.T:
        head = node.parts[0]
        if head in MODEL_FIELDS:
            raise self.err(
                f"{head!r} is a model output; rules are model-independent and cannot use it",
                node,
            )
        if head in ("features", "features_str"):
            if len(node.parts) != 2:
                raise self.err(f"write {head}.<name>, e.g. {head}.age", node)
            kind = Ty.FLOAT if head == "features" else Ty.STR
            return t.Feature(kind, True, node.parts[1])
        if len(node.parts) > 1:
            raise self.err(f"{'.'.join(node.parts)!r}: only features.* has sub-fields", node)
        if head not in FIELDS:
            if head in AGGREGATES or head in SCALAR_FUNCTIONS:
                raise self.err(f"{head!r} is a function; call it as {head}(...)", node)
            raise self.err(
                f"unknown field {head!r}" + suggest(head, [*FIELDS, "features.<name>"]), node
            )
        ty, nullable = FIELDS[head]
        return t.Field(ty, nullable, head)

    def unary(self, node: n.Unary) -> t.T:
        if node.op == "not":
            return t.Not(Ty.BOOL, False, self.boolean(node.operand, "the operand of 'not'"))
        operand = self.numeric(node.operand, "the operand of '-'")
        if isinstance(operand, t.Const) and isinstance(operand.value, int | float):
            return t.Const(operand.ty, False, -operand.value)
        return t.Neg(operand.ty, operand.nullable, operand)

    def binary(self, node: n.Binary) -> t.T:
        op = node.op
        if op in ("and", "or"):
            left = self.boolean(node.left, f"the left side of '{op}'")
            right = self.boolean(node.right, f"the right side of '{op}'")
            cls = t.And if op == "and" else t.Or
            items: list[t.T] = []
            for side in (left, right):
                items.extend(side.items if isinstance(side, cls) else (side,))
            return cls(Ty.BOOL, False, tuple(items))
        if op in ("+", "-", "*", "/", "%"):
            return self.arith(node)
        return self.compare(node)

    def arith(self, node: n.Binary) -> t.T:
        op = node.op
        left = self.numeric(node.left, f"the left side of '{op}'")
        right = self.numeric(node.right, f"the right side of '{op}'")
        nullable = left.nullable or right.nullable
        if op == "%":
            if left.ty is not Ty.INT:
                raise self.err("'%' needs an integer on the left (e.g. amount_minor)", node.left)
            if not (isinstance(right, t.Const) and right.ty is Ty.INT and int(right.value) > 0):
                raise self.err("'%' needs a positive integer constant on the right", node.right)
            return t.Arith(Ty.INT, left.nullable, op, left, right)
        if op == "/":
            return t.Arith(Ty.FLOAT, True, op, left, right)
        ty = Ty.INT if left.ty is Ty.INT and right.ty is Ty.INT else Ty.FLOAT
        return t.Arith(ty, nullable, op, left, right)

    def compare(self, node: n.Binary) -> t.T:
        op = node.op
        left, right = self.expr(node.left), self.expr(node.right)
        for side, raw in ((left, node.left), (right, node.right)):
            if side.ty is Ty.DATE:
                raise self.err("dates cannot be compared directly; use age_days(...)", raw)
        same = left.ty is right.ty or (left.ty.numeric and right.ty.numeric)
        if not same:
            raise self.err(
                f"cannot compare {left.ty.value} with {right.ty.value} using '{op}'", node
            )
        if op not in ("==", "!=") and left.ty is Ty.BOOL:
            raise self.err(f"'{op}' does not apply to conditions", node)
        return t.Cmp(Ty.BOOL, False, op, left, right)

    def in_list(self, node: n.InList) -> t.T:
        operand = self.expr(node.operand)
        if operand.ty is Ty.DATE:
            raise self.err("dates cannot be compared directly; use age_days(...)", node.operand)
        items = node.items.items
        if not items:
            raise self.err("'in' needs a non-empty list", node.items)
        if len(items) > MAX_IN_LIST:
            raise self.err(f"'in' list longer than {MAX_IN_LIST}", node.items)
        values: list[int | float | str | bool] = []
        for item in items:
            value = self.expr(item)
            if not isinstance(value, t.Const):
                raise self.err("'in' lists hold constants only", item)
            if operand.ty is Ty.FLOAT and value.ty is Ty.INT:
                value = t.Const(Ty.FLOAT, False, float(value.value))
            if value.ty is not operand.ty:
                raise self.err(
                    f"list item is {value.ty.value} but the left side is {operand.ty.value}",
                    item,
                )
            values.append(value.value)
        return t.In(Ty.BOOL, False, operand, tuple(values), node.negated)

    # -- calls -----------------------------------------------------------------------------
    def call(self, node: n.Call) -> t.T:
        name = node.name
        if name in MODEL_FIELDS:
            raise self.err(f"{name!r} is a model output; rules are model-independent", node)
        if name in AGGREGATES:
            if self.in_agg:
                raise self.err("aggregates cannot be nested", node)
            self.in_agg = True
            try:
                return self.aggregate(node)
            finally:
                self.in_agg = False
        if name not in SCALAR_FUNCTIONS:
            raise self.err(
                f"unknown function {name!r}" + suggest(name, [*SCALAR_FUNCTIONS, *AGGREGATES]),
                node,
            )
        if node.kwargs:
            raise self.err(f"{name}() takes no keyword arguments", node.kwargs[0])
        handler: Callable[[n.Call], t.T] = getattr(self, f"fn_{name}")
        return handler(node)

    def arity(self, node: n.Call, count: int) -> tuple[n.Node, ...]:
        if len(node.args) != count:
            raise self.err(
                f"{node.name}() takes {count} argument{'s' if count != 1 else ''}, "
                f"got {len(node.args)}",
                node,
            )
        return node.args

    def const_str(self, node: n.Node, what: str) -> str:
        if not isinstance(node, n.Str):
            raise self.err(f"{what} must be a string literal", node)
        return node.value

    def _text_predicate(self, node: n.Call) -> t.T:
        s_node, lit = self.arity(node, 2)
        s = self.string(s_node, f"the first argument of {node.name}()")
        value = self.const_str(lit, f"the second argument of {node.name}()")
        return t.Func(Ty.BOOL, False, node.name, (s, t.Const(Ty.STR, False, value)))

    fn_starts_with = fn_ends_with = fn_contains = _text_predicate

    def fn_matches(self, node: n.Call) -> t.T:
        s_node, lit = self.arity(node, 2)
        s = self.string(s_node, "the first argument of matches()")
        pattern = self.const_str(lit, "the pattern of matches()")
        try:
            compile_bounded(pattern)
        except UnsafeRegex as exc:
            raise RuleTypeError(f"unsafe pattern: {exc.message}", lit.pos + 1 + exc.pos) from None
        return t.Func(Ty.BOOL, False, "matches", (s, t.Const(Ty.STR, False, pattern)))

    def fn_prefix(self, node: n.Call) -> t.T:
        s_node, k = self.arity(node, 2)
        s = self.string(s_node, "the first argument of prefix()")
        if not (isinstance(k, n.Num) and isinstance(k.value, int) and 1 <= k.value <= MAX_PREFIX):
            raise self.err(f"prefix() length must be an integer 1..{MAX_PREFIX}", k)
        return t.Func(Ty.STR, s.nullable, "prefix", (s, t.Const(Ty.INT, False, k.value)))

    def fn_length(self, node: n.Call) -> t.T:
        (s_node,) = self.arity(node, 1)
        s = self.string(s_node, "the argument of length()")
        return t.Func(Ty.INT, s.nullable, "length", (s,))

    def fn_age_days(self, node: n.Call) -> t.T:
        (d_node,) = self.arity(node, 1)
        d = self.expr(d_node)
        if d.ty is not Ty.DATE:
            raise self.err("age_days() needs a date, e.g. merchant_registered_at", d_node)
        return t.Func(Ty.INT, True, "age_days", (d,))

    def fn_hour_of_day(self, node: n.Call) -> t.T:
        self.arity(node, 0)
        return t.Func(Ty.INT, False, "hour_of_day", ())

    def fn_day_of_week(self, node: n.Call) -> t.T:
        self.arity(node, 0)
        return t.Func(Ty.INT, False, "day_of_week", ())

    def fn_abs(self, node: n.Call) -> t.T:
        (x_node,) = self.arity(node, 1)
        x = self.numeric(x_node, "the argument of abs()")
        return t.Func(x.ty, x.nullable, "abs", (x,))

    def fn_present(self, node: n.Call) -> t.T:
        (x_node,) = self.arity(node, 1)
        return t.Func(Ty.BOOL, False, "present", (self.expr(x_node),))

    def fn_distance_km(self, node: n.Call) -> t.T:
        args = tuple(
            self.numeric(a, "each argument of distance_km()") for a in self.arity(node, 4)
        )
        return t.Func(Ty.FLOAT, any(a.nullable for a in args), "distance_km", args)

    # -- aggregates ------------------------------------------------------------------------
    def within(self, node: n.Call, kw: dict[str, n.KwArg], required: bool = True) -> int:
        arg = kw.get("within")
        if arg is None:
            if required:
                raise self.err(f"{node.name}() needs within=<duration>, e.g. within=1h", node)
            return self.horizon_ms
        if not isinstance(arg.value, n.Duration):
            raise self.err("within= must be a duration such as 30s, 10m, 2h or 1d", arg.value)
        ms = arg.value.ms
        if ms < 1000:
            raise self.err("within= must be at least 1s", arg.value)
        if ms > self.horizon_ms:
            raise self.err(
                f"window {format_ms(ms)} is longer than the state horizon "
                f"{format_ms(self.horizon_ms)} (setting rule_state_horizon_s)",
                arg.value,
            )
        return ms

    def keys(self, node: n.Call, kw: dict[str, n.KwArg]) -> tuple[t.T, ...]:
        arg = kw.get("by")
        if arg is None:
            raise self.err(f"{node.name}() needs by=<field> (the entity key)", node)
        parts = arg.value.items if isinstance(arg.value, n.ListLit) else (arg.value,)
        if not parts or len(parts) > 4:
            raise self.err("by= takes one field or a list of 1..4 fields", arg.value)
        return tuple(self.key_part(p) for p in parts)

    def key_part(self, node: n.Node) -> t.T:
        part = self.expr(node)
        if part.ty not in (Ty.STR, Ty.INT, Ty.FLOAT):
            raise self.err(f"a key must be a string or a number, got {part.ty.value}", node)
        if isinstance(part, t.Const):
            raise self.err("a key must depend on the event, not be a constant", node)
        return part

    def options(self, node: n.Call, allowed: tuple[str, ...]) -> dict[str, n.KwArg]:
        kw = {k.name: k for k in node.kwargs}
        for k in node.kwargs:
            if k.name not in allowed:
                raise self.err(
                    f"{node.name}() has no argument {k.name!r}; valid: {', '.join(allowed)}", k
                )
            if k.op != "=" and k.name != "factor":
                raise self.err(f"write {k.name}=<value>", k)
        return kw

    def const_number(self, arg: n.KwArg | None, default: float, what: str) -> float:
        if arg is None:
            return default
        value = arg.value
        if not isinstance(value, n.Num):
            raise self.err(f"{what} must be a number literal", value)
        return float(value.value)

    def aggregate(self, node: n.Call) -> t.T:
        name = node.name
        text = self.text(node)
        if name in WINDOW_FUNCTIONS:
            kw = self.options(node, ("by", "within", "where"))
            where = None
            if "where" in kw:
                where = self.boolean(kw["where"].value, "where=")
            value: t.T | None = None
            if name == "count":
                self.arity(node, 0)
                ty, nullable = Ty.INT, True
            else:
                (v_node,) = self.arity(node, 1)
                value = self.expr(v_node)
                if name == "count_distinct":
                    if value.ty not in (Ty.STR, Ty.INT, Ty.FLOAT):
                        raise self.err("count_distinct() counts strings or numbers", v_node)
                    ty = Ty.INT
                elif not value.ty.numeric:
                    raise self.err(f"{name}() needs a number", v_node)
                else:
                    ty = value.ty
                nullable = True
            return t.Agg(ty, nullable, name, value, self.keys(node, kw), self.within(node, kw),
                         where, text=text)
        if name == "first_seen":
            kw = self.options(node, ("within",))
            if not node.args:
                raise self.err("first_seen() needs the entity, e.g. first_seen(merchant_id)", node)
            keys = tuple(self.key_part(a) for a in node.args)
            return t.Agg(Ty.BOOL, False, name, None, keys, self.within(node, kw, False),
                         text=text)
        if name in SEQUENCE_FUNCTIONS:
            return self.sequence(node, text)
        if name in RECEIVED_FUNCTIONS:
            return self.received(node, text)
        kw = self.options(node, ("by", "within", "slack_km", "slack_h"))
        self.arity(node, 0)
        slack_km = self.const_number(kw.get("slack_km"), 0.0, "slack_km=")
        slack_h = self.const_number(kw.get("slack_h"), 0.25, "slack_h=")
        if slack_km < 0:
            raise self.err("slack_km= must be >= 0", kw["slack_km"].value)
        if name == "travel_speed_kmh" and slack_h <= 0:
            raise self.err("slack_h= must be > 0 (it also avoids dividing by zero)",
                           kw["slack_h"].value)
        if name == "travel_km" and ("slack_km" in kw or "slack_h" in kw):
            raise self.err("travel_km() takes no slack; compare its result instead", node)
        return t.Agg(Ty.FLOAT, True, name, None, self.keys(node, kw), self.within(node, kw),
                     slack_km=slack_km, slack_h=slack_h, text=text)

    def sequence(self, node: n.Call, text: str) -> t.T:
        kw = self.options(node, ("by", "n", "within", "factor"))
        (v_node,) = self.arity(node, 1)
        value = self.numeric(v_node, f"the value of {node.name}()")
        if value.nullable:
            raise self.err(f"{node.name}() needs a value that is never null", v_node)
        n_arg = kw.get("n")
        if n_arg is None:
            raise self.err(f"{node.name}() needs n=<length of the run>", node)
        count = n_arg.value
        if not (isinstance(count, n.Num) and isinstance(count.value, int)
                and 2 <= count.value <= MAX_SEQUENCE):
            raise self.err(f"n= must be an integer 2..{MAX_SEQUENCE}", count)
        factor = (1, 1)
        f_arg = kw.get("factor")
        if f_arg is not None:
            rising = node.name == "monotonic_increase"
            if f_arg.op not in ("=", ">=" if rising else "<="):
                raise self.err(f"write factor{'>=' if rising else '<='}<ratio>", f_arg)
            if not isinstance(f_arg.value, n.Num) or f_arg.value.value <= 0:
                raise self.err("factor must be a positive number literal", f_arg.value)
            frac = Fraction(str(f_arg.value.value)).limit_denominator(10**6)
            if (rising and frac < 1) or (not rising and frac > 1):
                raise self.err(
                    f"factor {f_arg.value.value} contradicts {node.name}()", f_arg.value
                )
            factor = (frac.numerator, frac.denominator)
        return t.Agg(Ty.BOOL, False, node.name, value, self.keys(node, kw),
                     self.within(node, kw), n=count.value, factor=factor, text=text)

    def received(self, node: n.Call, text: str) -> t.T:
        """``received_max(x, by=k, payee=p, prefix="..", within=, where=)``: the events
        of the window are keyed by ``p`` minus ``prefix``, looked up by ``k``."""
        kw = self.options(node, ("by", "payee", "prefix", "within", "where"))
        (v_node,) = self.arity(node, 1)
        value = self.numeric(v_node, f"the value of {node.name}()")
        keys = self.keys(node, kw)
        if len(keys) != 1 or keys[0].ty is not Ty.STR:
            raise self.err(f"{node.name}() needs one string field as by=, e.g. by=card_id",
                           kw["by"].value)
        p_arg = kw.get("payee")
        if p_arg is None:
            raise self.err(
                f"{node.name}() needs payee=<field naming the receiver>, "
                "e.g. payee=beneficiary_name", node)
        payee = self.key_part(p_arg.value)
        if payee.ty is not Ty.STR:
            raise self.err("payee= must be a string", p_arg.value)
        prefix = ""
        if "prefix" in kw:
            prefix = self.const_str(kw["prefix"].value, "prefix=")
        where = None
        if "where" in kw:
            where = self.boolean(kw["where"].value, "where=")
        return t.Agg(value.ty, True, node.name, value, keys, self.within(node, kw), where,
                     text=text, payee=payee, prefix=prefix)


def check(node: n.Node, horizon_ms: int, source: str = "") -> t.T:
    """Type-check a parsed expression.

    Parameters
    ----------
    node : Node
        From :func:`driftwatch.rules.parser.parse`.
    horizon_ms : int
        The state horizon: no window may be longer.
    source : str
        The expression text (used to label aggregates in evidence).

    Raises
    ------
    RuleTypeError
        With the offset of the offending node.
    """
    return _Checker(source, horizon_ms).expr(node)


def check_condition(node: n.Node, horizon_ms: int, source: str = "") -> t.T:
    """Like :func:`check`, and the result must be a condition (bool)."""
    checker = _Checker(source, horizon_ms)
    return checker.boolean(node, "a rule's 'when'")
