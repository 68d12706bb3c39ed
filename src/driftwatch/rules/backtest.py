"""Backtests: what a rule would have hit over stored history, split by outcome.

For each rule the compiled SQL (:mod:`~driftwatch.rules.sql`) runs over
``scored_transactions`` in ``[since, until)`` and its hits are joined with the
labels: fraud (label 1), legitimate (label 0) or unlabelled, per day, with the
amount involved -- and what the rule adds beyond the model: the hits the model
*approved* (and how many of those were fraud). Totals of the period (transactions,
labelled fraud, fraud the model approved) give each rule's recall and the share of
the model's misses it would have caught. Each rule's field coverage (the share of
the period's events that carry the optional fields it needs,
:mod:`~driftwatch.rules.coverage`) tells a silent rule from one that could not
evaluate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from typing import Any

from driftwatch.amounts import format_amount
from driftwatch.rules.coverage import RuleCoverage, coverage_sql, coverage_table, needs_text
from driftwatch.rules.model import Rule
from driftwatch.rules.sql import compile_rule
from driftwatch.store.client import Store

_LABELS = "(SELECT txn_id, label, toUInt8(1) AS has FROM {db}.labels FINAL)"
_PER_DAY = """SELECT
    toDate(h.event_time)                                   AS day,
    count()                                                AS hits,
    countIf(l.has = 1 AND l.label = 1)                     AS fraud,
    countIf(l.has = 1 AND l.label = 0)                     AS legit,
    countIf(l.has = 0)                                     AS unlabelled,
    countIf(h.decision = 'approve')                        AS model_approved,
    countIf(h.decision = 'approve' AND l.has = 1 AND l.label = 1) AS approved_fraud,
    sum(h.amount_minor)                                    AS amount_minor,
    sumIf(h.amount_minor, l.has = 1 AND l.label = 1)       AS fraud_amount_minor
FROM ({rule_sql}) AS h
LEFT JOIN {labels} AS l ON h.txn_id = l.txn_id
GROUP BY day
ORDER BY day"""
_TOTALS = """SELECT
    count()                                                AS transactions,
    countIf(l.has = 1 AND l.label = 1)                     AS fraud,
    countIf(l.has = 1 AND l.label = 0)                     AS legit,
    countIf(s.decision = 'approve' AND l.has = 1 AND l.label = 1) AS fraud_model_approved
FROM {db}.scored_transactions AS s FINAL
LEFT JOIN {labels} AS l ON s.txn_id = l.txn_id
WHERE s.event_time >= {since:DateTime64(3, 'UTC')}
  AND s.event_time < {until:DateTime64(3, 'UTC')}"""
_COUNTS = ("hits", "fraud", "legit", "unlabelled", "model_approved", "approved_fraud",
           "amount_minor", "fraud_amount_minor")


@dataclass(frozen=True)
class DayCounts:
    """Would-be hits of one rule on one day."""

    day: dt.date
    hits: int
    fraud: int
    legit: int
    unlabelled: int
    model_approved: int
    approved_fraud: int
    amount_minor: int
    fraud_amount_minor: int


@dataclass(frozen=True)
class RuleBacktest:
    """Would-be hits of one rule over the period, with per-day counts."""

    rule_id: str
    version: int
    severity: str
    mode: str
    hits: int
    fraud: int
    legit: int
    unlabelled: int
    model_approved: int
    approved_fraud: int
    amount_minor: int
    fraud_amount_minor: int
    recall: float
    precision: float
    days: tuple[DayCounts, ...]
    evaluable: int = 0
    """Events of the period carrying the fields the rule needs."""
    needs: str = "-"
    """The optional fields it needs (``needs_text``)."""


@dataclass(frozen=True)
class BacktestReport:
    """Every rule's backtest over ``[since, until)`` and the period's totals."""

    since: dt.datetime
    until: dt.datetime
    transactions: int
    fraud: int
    legit: int
    fraud_model_approved: int
    rules: tuple[RuleBacktest, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["since"] = self.since.isoformat()
        out["until"] = self.until.isoformat()
        for r in out["rules"]:
            for d in r["days"]:
                d["day"] = d["day"].isoformat()
        return out

    def coverage(self) -> list[RuleCoverage]:
        """Each rule's field coverage over the period."""
        return [RuleCoverage(r.rule_id, r.needs, self.transactions, r.evaluable)
                for r in self.rules]

    def table(self, *, warn_below: float = 0.5) -> str:
        """A plain-text report (hits per rule and day, then field coverage)."""
        lines = [
            f"period {self.since.isoformat()} .. {self.until.isoformat()}: "
            f"{self.transactions:,} transactions, {self.fraud:,} labelled fraud "
            f"({self.fraud_model_approved:,} approved by the model), {self.legit:,} legitimate",
            "",
            f"{'rule':<32} {'mode':<8} {'hits':>7} {'fraud':>6} {'legit':>6} {'unlab':>6} "
            f"{'prec':>6} {'recall':>6} {'model-ok':>8} {'beyond':>6} {'amount':>14}",
        ]
        for r in self.rules:
            lines.append(
                f"{r.rule_id:<32} {r.mode:<8} {r.hits:>7,} {r.fraud:>6,} {r.legit:>6,} "
                f"{r.unlabelled:>6,} {r.precision:>6.1%} {r.recall:>6.1%} "
                f"{r.model_approved:>8,} {r.approved_fraud:>6,} "
                f"{format_amount(r.amount_minor):>14}"
            )
            for d in r.days:
                lines.append(
                    f"  {d.day.isoformat():<30} {'':<8} {d.hits:>7,} {d.fraud:>6,} "
                    f"{d.legit:>6,} {d.unlabelled:>6,} {'':>6} {'':>6} {d.model_approved:>8,} "
                    f"{d.approved_fraud:>6,} {format_amount(d.amount_minor):>14}"
                )
        lines.append("")
        lines.append("model-ok: hits the model approved; beyond: of those, labelled fraud "
                     "(fraud the rule adds beyond the model)")
        lines.append("")
        lines.append(coverage_table(self.coverage(), warn_below=warn_below))
        return "\n".join(lines)


def backtest_rule(
    store: Store, rule: Rule, since: dt.datetime, until: dt.datetime, fraud_total: int
) -> RuleBacktest:
    """Backtest one rule; ``fraud_total`` (labelled fraud in the period) gives recall."""
    compiled = compile_rule(rule)
    sql = _PER_DAY.replace("{rule_sql}", compiled.sql).replace("{labels}", _LABELS)
    rows = store.query(sql, compiled.bind(since, until))
    days = tuple(DayCounts(r[0], *(int(x) for x in r[1:])) for r in rows)
    sums = {k: sum(getattr(d, k) for d in days) for k in _COUNTS}
    labelled = sums["fraud"] + sums["legit"]
    return RuleBacktest(
        rule_id=rule.id,
        version=rule.version,
        severity=rule.severity,
        mode=rule.mode,
        recall=sums["fraud"] / fraud_total if fraud_total else 0.0,
        precision=sums["fraud"] / labelled if labelled else 0.0,
        days=days,
        **sums,
    )


def backtest(
    store: Store, rules: list[Rule] | tuple[Rule, ...], since: dt.datetime, until: dt.datetime
) -> BacktestReport:
    """Backtest every rule over ``[since, until)``."""
    total = store.query(_TOTALS.replace("{labels}", _LABELS), {"since": since, "until": until})
    transactions, fraud, legit, fraud_approved = (int(x) for x in total[0])
    rules = list(rules)
    sql, params = coverage_sql(rules)
    counts = [int(x) for x in store.query(sql, {**params, "since": since, "until": until})[0]]
    results = tuple(
        replace(backtest_rule(store, r, since, until, fraud), evaluable=counts[1 + i],
                needs=needs_text(r))
        for i, r in enumerate(rules)
    )
    return BacktestReport(
        since=since,
        until=until,
        transactions=transactions,
        fraud=fraud,
        legit=legit,
        fraud_model_approved=fraud_approved,
        rules=results,
    )
