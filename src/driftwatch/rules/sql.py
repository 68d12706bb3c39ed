"""SQL compiler: a typed rule -> one ClickHouse query returning the rule's would-be hits.

The query reads ``{db}.scored_transactions FINAL`` from ``since`` minus the rule's
longest window (so windows of the first events are full) up to ``until``, computes
every aggregate with a window function, then keeps the events at or after
``since`` whose condition holds. Windows map one-to-one onto the live evaluator:

=====================  ===================================================================
aggregate              window function
=====================  ===================================================================
count/sum/min/max/     ``countIf/sumIf/minIf/maxIf/uniqExactIf(...) OVER (PARTITION BY key
count_distinct         ORDER BY _ms RANGE BETWEEN w PRECEDING AND CURRENT ROW)``
first_seen             ``count() OVER (... RANGE BETWEEN w PRECEDING AND 1 PRECEDING) = 0``
monotonic_*            ``groupArray((_ms, x)) OVER (... ORDER BY _ms, event_id
                       ROWS BETWEEN n-1 PRECEDING AND CURRENT ROW)`` + ``arrayAll``
travel_*               ``groupArray((_ms, lat, lon)) OVER (PARTITION BY key, isNull(geo_lat)
                       ORDER BY _ms, event_id ROWS BETWEEN 1 PRECEDING AND 1 PRECEDING)``
received_max           a ``LEFT JOIN`` by ``event_id`` of a ``UNION ALL`` of the events
                       keyed by ``by`` (queries) and by ``payee`` minus ``prefix``
                       (receipts), with ``maxIf(x, receipt) OVER (PARTITION BY key
                       ORDER BY _ms RANGE BETWEEN w PRECEDING AND CURRENT ROW)``
=====================  ===================================================================

``_ms`` is the event time in epoch milliseconds. Every string literal of a rule is
passed as a server-side parameter (``{p3:String}``); numbers are validated
literals; nothing from rule text is concatenated into SQL unchecked.

>>> from driftwatch.rules.pack import rule_from_text
>>> q = compile_rule(rule_from_text("r", 'mcc == "5967" and count(by=ip, within=1h) >= 5'))
>>> q.parameters["r_0"], q.lookback_ms, q.evidence
('5967', 3600000, ['count(by=ip, within=1h)'])
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from driftwatch.errors import RuleError
from driftwatch.rules import typed as t
from driftwatch.rules.model import Rule
from driftwatch.rules.typed import Ty

HIT_COLUMNS = (
    "event_id", "txn_id", "event_time", "mcc", "merchant_country", "channel", "merchant_id",
    "card_id", "model_version", "score", "decision", "amount_minor",
)
"""Columns of every rule query, before the evidence columns ``_e0, _e1, ...``."""

_FIELD_SQL = {
    "amount_minor": "toInt64(amount_minor)",
    "amount_cents": "toInt64(amount_cents)",
    "amount": "(toInt64(amount_minor) / 100)",
}
_CMP_SQL = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass
class CompiledRule:
    """The query of one rule, its parameters (add ``since``/``lookback_since``/``until``)."""

    rule_id: str
    sql: str
    parameters: dict[str, Any] = field(default_factory=dict)
    lookback_ms: int = 0
    evidence: list[str] = field(default_factory=list)

    def bind(self, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
        """Parameters for hits with ``since <= event_time < until``."""
        return {
            **self.parameters,
            "since": since,
            "lookback_since": since - dt.timedelta(milliseconds=self.lookback_ms),
            "until": until,
        }


def _num(value: int | float | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f"({value})" if value < 0 else str(value)
    text = repr(float(value))
    return f"({text})" if value < 0 else text


def haversine_sql(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """The SQL of :func:`driftwatch.rules.live.haversine_km` (same operations)."""
    rad = "(pi() / 180.0)"
    s1 = f"sin((({lat2}) - ({lat1})) * {rad} / 2.0)"
    s2 = f"sin((({lon2}) - ({lon1})) * {rad} / 2.0)"
    a = f"({s1} * {s1} + cos(({lat1}) * {rad}) * cos(({lat2}) * {rad}) * {s2} * {s2})"
    return f"(2.0 * 6371.0088 * asin(sqrt(least(1.0, {a}))))"


class _Compiler:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.parameters: dict[str, Any] = {}
        self.windows: list[str] = []
        self.window_index: dict[str, int] = {}
        self.crosses: list[str] = []
        """Subqueries ``(_id<i>, _x<i>)`` per event, joined to the events by event_id."""
        self.cross_index: dict[tuple[Any, ...], int] = {}

    def param(self, value: str) -> str:
        for name, existing in self.parameters.items():
            if existing == value:
                return f"{{{name}:String}}"
        name = f"{self.prefix}_{len(self.parameters)}"
        self.parameters[name] = value
        return f"{{{name}:String}}"

    def const(self, node: t.Const) -> str:
        if isinstance(node.value, str):
            return self.param(node.value)
        return _num(node.value)

    def window(self, sql: str) -> str:
        """Register a window-function column; return its alias."""
        if sql not in self.window_index:
            self.window_index[sql] = len(self.windows)
            self.windows.append(sql)
        return f"_w{self.window_index[sql]}"

    # -- scalar ----------------------------------------------------------------------------
    def __call__(self, node: t.T) -> str:
        if isinstance(node, t.Const):
            return self.const(node)
        if isinstance(node, t.Field):
            return _FIELD_SQL.get(node.name, node.name)
        if isinstance(node, t.Feature):
            column = "features_num" if node.ty is Ty.FLOAT else "features_str"
            p = self.param(node.name)
            return f"if(mapContains({column}, {p}), {column}[{p}], NULL)"
        if isinstance(node, t.Neg):
            return f"(-({self(node.operand)}))"
        if isinstance(node, t.Arith):
            a, b = self(node.left), self(node.right)
            if node.op == "/":
                return f"if(({b}) = 0, NULL, ({a}) / ({b}))"
            if node.op == "%":
                return f"((({a}) % {b} + {b}) % {b})"
            return f"(({a}) {node.op} ({b}))"
        if isinstance(node, t.Cmp):
            sql = f"(({self(node.left)}) {_CMP_SQL[node.op]} ({self(node.right)}))"
            return self.definite(sql, node.left.nullable or node.right.nullable)
        if isinstance(node, t.In):
            values = ", ".join(self.const(t.Const(node.operand.ty, False, v)) for v in node.values)
            op = "NOT IN" if node.negated else "IN"
            return self.definite(f"(({self(node.operand)}) {op} ({values}))", node.operand.nullable)
        if isinstance(node, t.And):
            return "(" + " AND ".join(self(x) for x in node.items) + ")"
        if isinstance(node, t.Or):
            return "(" + " OR ".join(self(x) for x in node.items) + ")"
        if isinstance(node, t.Not):
            return f"(NOT {self(node.operand)})"
        if isinstance(node, t.Func):
            return self.func(node)
        if isinstance(node, t.Agg):
            return self.agg(node)
        raise RuleError(f"cannot compile {type(node).__name__} to SQL")  # pragma: no cover

    @staticmethod
    def definite(sql: str, nullable: bool) -> str:
        return f"ifNull({sql}, 0)" if nullable else sql

    def func(self, node: t.Func) -> str:
        name = node.name
        args = [self(a) for a in node.args]
        nullable = bool(node.args) and node.args[0].nullable
        if name == "starts_with":
            return self.definite(f"startsWith({args[0]}, {args[1]})", nullable)
        if name == "ends_with":
            return self.definite(f"endsWith({args[0]}, {args[1]})", nullable)
        if name == "contains":
            return self.definite(f"(position({args[0]}, {args[1]}) > 0)", nullable)
        if name == "matches":
            return self.definite(f"match({args[0]}, {args[1]})", nullable)
        if name == "prefix":
            return f"substringUTF8({args[0]}, 1, {args[1]})"
        if name == "length":
            return f"toInt64(lengthUTF8({args[0]}))"
        if name == "age_days":
            return f"dateDiff('day', {args[0]}, toDate(event_time))"
        if name == "hour_of_day":
            return "toInt64(toHour(event_time))"
        if name == "day_of_week":
            return "toInt64(toDayOfWeek(event_time))"
        if name == "abs":
            return f"abs({args[0]})"
        if name == "present":
            arg = node.args[0]
            if arg.ty is Ty.STR:
                return self.definite(f"(({args[0]}) != '')", arg.nullable)
            return f"isNotNull({args[0]})" if arg.nullable else "1"
        if name == "distance_km":
            return haversine_sql(*args)
        raise RuleError(f"unknown function {name}")  # pragma: no cover

    # -- aggregates --------------------------------------------------------------------------
    def empty_key(self, keys: tuple[t.T, ...]) -> str:
        parts = []
        for k in keys:
            sql = self(k)
            if k.ty is Ty.STR:
                parts.append(f"ifNull(({sql}) = '', 1)" if k.nullable else f"(({sql}) = '')")
            elif k.nullable:
                parts.append(f"isNull({sql})")
        return "(" + " OR ".join(parts) + ")" if parts else "0"

    def partition(self, keys: tuple[t.T, ...]) -> str:
        return ", ".join(self(k) for k in keys)

    def agg(self, node: t.Agg) -> str:
        empty = self.empty_key(node.keys)
        part = self.partition(node.keys)
        kind, within = node.kind, node.within_ms
        frame = f"PARTITION BY {part} ORDER BY _ms RANGE BETWEEN {within} PRECEDING AND CURRENT ROW"
        if kind in ("count", "sum", "count_distinct", "min", "max"):
            conds = []
            if node.where is not None:
                conds.append(self(node.where))
            value = self(node.value) if node.value is not None else ""
            if node.value is not None and node.value.nullable:
                conds.append(f"isNotNull({value})")
            if kind == "count_distinct" and node.value is not None and node.value.ty is Ty.STR:
                conds.append(f"(ifNull({value}, '') != '')")
            cond = " AND ".join(conds)
            if kind == "count":
                w = self.window(f"countIf({cond}) OVER ({frame})" if cond else
                                f"count() OVER ({frame})")
                return f"if({empty}, NULL, toInt64({w}))"
            fn = {"sum": "sum", "count_distinct": "uniqExact", "min": "min", "max": "max"}[kind]
            call = f"{fn}If({value}, {cond})" if cond else f"{fn}({value})"
            w = self.window(f"{call} OVER ({frame})")
            if kind == "sum":
                zero = "0" if node.ty is Ty.INT else "0.0"
                return f"if({empty}, NULL, ifNull({w}, {zero}))"
            if kind == "count_distinct":
                return f"if({empty}, NULL, toInt64({w}))"
            rows = self.window(f"countIf({cond}) OVER ({frame})" if cond else
                               f"count() OVER ({frame})")
            return f"if({empty} OR {rows} = 0, NULL, {w})"
        if kind == "received_max":
            return f"if({empty}, NULL, {self.received(node)})"
        if kind == "first_seen":
            w = self.window(
                f"count() OVER (PARTITION BY {part} ORDER BY _ms "
                f"RANGE BETWEEN {within} PRECEDING AND 1 PRECEDING)"
            )
            return f"if({empty}, 0, {w} = 0)"
        if kind in ("monotonic_increase", "monotonic_decrease"):
            assert node.value is not None
            n = node.n
            num, den = node.factor
            w = self.window(
                f"groupArray(tuple(_ms, {self(node.value)})) OVER (PARTITION BY {part} "
                f"ORDER BY _ms, event_id ROWS BETWEEN {n - 1} PRECEDING AND CURRENT ROW)"
            )
            cur, prev = "tupleElement(_y, 2)", "tupleElement(_x, 2)"
            if kind == "monotonic_increase":
                step = f"({cur} > {prev}) AND ({cur} * {den} >= {prev} * {num})"
            else:
                step = f"({cur} < {prev}) AND ({cur} * {den} <= {prev} * {num})"
            run = (
                f"(length({w}) = {n} AND tupleElement({w}[1], 1) >= _ms - {within} AND "
                f"arrayAll((_x, _y) -> {step}, arraySlice({w}, 1, {n - 1}), arraySlice({w}, 2)))"
            )
            return f"if({empty}, 0, {run})"
        w = self.window(
            f"groupArray(tuple(_ms, geo_lat, geo_lon)) OVER (PARTITION BY {part}, "
            f"isNull(geo_lat) ORDER BY _ms, event_id ROWS BETWEEN 1 PRECEDING AND 1 PRECEDING)"
        )
        prev = f"{w}[1]"
        km = haversine_sql(
            f"tupleElement({prev}, 2)", f"tupleElement({prev}, 3)", "geo_lat", "geo_lon"
        )
        if kind == "travel_speed_kmh":
            value = (
                f"(greatest(0.0, {km} - {_num(node.slack_km)}) / "
                f"((_ms - tupleElement({prev}, 1)) / 3600000 + {_num(node.slack_h)}))"
            )
        else:
            value = km
        missing = (
            f"{empty} OR isNull(geo_lat) OR length({w}) = 0 "
            f"OR tupleElement({prev}, 1) < _ms - {within}"
        )
        return f"if({missing}, NULL, {value})"

    def received(self, node: t.Agg) -> str:
        """Register the cross-keyed subquery of a ``received_*`` aggregate; its column."""
        assert node.value is not None and node.payee is not None
        cast = "Nullable(Int64)" if node.value.ty is Ty.INT else "Nullable(Float64)"
        payee, prefix = self(node.payee), self.param(node.prefix)
        conds = [f"startsWith({payee}, {prefix})",
                 f"lengthUTF8({payee}) > lengthUTF8({prefix})"]
        if node.where is not None:
            conds.append(self(node.where))
        key = (node.identity, self(node.keys[0]), payee, prefix, tuple(conds))
        i = self.cross_index.setdefault(key, len(self.cross_index))
        if i < len(self.crosses):
            return f"_x{i}"
        frame = (f"PARTITION BY _k ORDER BY _ms "
                 f"RANGE BETWEEN {node.within_ms} PRECEDING AND CURRENT ROW")
        self.crosses.append(f"""SELECT _id AS _id{i}, if(_n = 0, NULL, _m) AS _x{i}
        FROM (
            SELECT _id, _r, countIf(_r = 1) OVER ({frame}) AS _n,
                   maxIf(_v, _r = 1) OVER ({frame}) AS _m
            FROM (
                SELECT event_id AS _id, 0 AS _r, _ms, {self(node.keys[0])} AS _k,
                       CAST(NULL, '{cast}') AS _v
                FROM ({_BASE})
                UNION ALL
                SELECT '' AS _id, 1 AS _r, _ms,
                       substringUTF8({payee}, lengthUTF8({prefix}) + 1) AS _k,
                       CAST({self(node.value)}, '{cast}') AS _v
                FROM ({_BASE})
                WHERE {" AND ".join(f"ifNull({c}, 0)" for c in conds)}
            )
        )
        WHERE _r = 0""")
        return f"_x{i}"


_BASE = """
        SELECT *, toUnixTimestamp64Milli(event_time) AS _ms
        FROM {db}.scored_transactions FINAL
        WHERE event_time >= {lookback_since:DateTime64(3, 'UTC')}
          AND event_time < {until:DateTime64(3, 'UTC')}"""
"""The events a rule query reads (with the history its windows need)."""


def scalar_sql(node: t.T, prefix: str) -> tuple[str, dict[str, Any]]:
    """SQL of a condition without aggregates (e.g. a coverage test) and its parameters."""
    c = _Compiler(prefix)
    return c(node), c.parameters


def lookback_ms(rule: Rule) -> int:
    """The longest window of the rule (history needed before ``since``)."""
    return max((a.within_ms for a in t.aggregates(rule.expr)), default=0)


def compile_rule(rule: Rule, prefix: str | None = None) -> CompiledRule:
    """Compile one rule to a parameterised ClickHouse query over ``{db}.scored_transactions``.

    The result columns are :data:`HIT_COLUMNS` followed by one ``_e<i>`` column per
    aggregate of the rule (labelled in ``evidence``); parameters ``since``,
    ``lookback_since`` and ``until`` come from :meth:`CompiledRule.bind`.
    """
    c = _Compiler(prefix or rule.id)
    condition = c(rule.expr)
    aggs = t.aggregates(rule.expr)
    evidence_sql = [c(a) for a in aggs]
    windows = "".join(f",\n        {w} AS _w{i}" for i, w in enumerate(c.windows))
    evidence_cols = "".join(f",\n    {e} AS _e{i}" for i, e in enumerate(evidence_sql))
    cols = ", ".join(HIT_COLUMNS)
    base = f"({_BASE}\n    )"
    for i, cross in enumerate(c.crosses):
        base = f"{base} AS _b{i}\n    LEFT JOIN ({cross}) AS _c{i} ON _c{i}._id{i} = _b{i}.event_id"
        base = f"(SELECT * FROM {base})" if i + 1 < len(c.crosses) else base
    sql = f"""SELECT {cols}{evidence_cols}
FROM (
    SELECT *{windows}
    FROM {base}
)
WHERE event_time >= {{since:DateTime64(3, 'UTC')}}
  AND {condition}
ORDER BY event_time, event_id"""
    return CompiledRule(rule.id, sql, c.parameters, lookback_ms(rule), [a.text for a in aggs])
