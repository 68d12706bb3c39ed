"""Model-vs-rules disagreement per segment: rule-high-risk transactions the model approved.

The rule layer runs beside the model and never uses its score to decide a hit; it
records the model's score and decision next to each hit (``{db}.rule_hits``). Per
segment, among the distinct transactions with a high-severity rule hit in the
window, the share the model approved is tested against the segment's reference
share (shrunk toward ``prior_rate``) with the exact beta-binomial upper tail, its
concentration from the reference's size and the share's own spread between
reference windows (:mod:`driftwatch.monitors.dispersion`). A model
that waves through what the rules call high risk — a backdoor, or a model that has
gone blind in one segment — shows up here with very few rows.

Until the rule layer's table exists the detector is registered but reports no data.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import ClassVar

from driftwatch.alerts.model import iso
from driftwatch.monitors.backfill import BatchedWindows, grid_sql, query_passes, read_chunks
from driftwatch.monitors.base import (
    WINDOW,
    Columns,
    Description,
    Detector,
    Evaluations,
    PassContext,
    fmt_p,
    query_table,
    span_words,
    sql_time,
)
from driftwatch.monitors.dispersion import ReferenceDispersion, rate_estimator, rate_pvalue
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import (
    SegmentSpec,
    pretty_segment,
    segment_where,
    sql_literal,
)
from driftwatch.settings import Settings
from driftwatch.store.client import Store

RULE_HITS = "{db}.rule_hits FINAL"
RULE_HIT_DIMENSIONS = ("mcc", "merchant_country", "channel", "model_version")


def rule_hits_exist(store: Store) -> bool:
    """Whether ``{db}.rule_hits`` exists in the store's database."""
    rows = store.query(
        "SELECT count() FROM system.tables WHERE database = {d:String} AND name = 'rule_hits'",
        {"d": store.database},
    )
    return bool(rows and rows[0][0])


@register
class DisagreementDetector(BatchedWindows, Detector):
    """Share of rule-high-risk transactions the model approved, per segment.

    Options
    -------
    severities : str
        Rule severities that count as high risk, comma separated
        (default ``"high,critical"``).
    modes : str
        Rule modes that count, comma separated (default ``"enforce"``; add
        ``shadow`` to let rules on trial contribute).
    min_n : int
        Fewest high-risk transactions in the window to test (default 3).
    min_count : int
        Fewest approved high-risk transactions to alert (default 3).
    prior_rate : float
        Approval share assumed without history (default 0.2).
    prior_strength : float
        Pseudo-transactions of ``prior_rate`` in each reference (default 50).
    effect_floor : float
        Excess approved share needed to alert (default 0.3).
    critical_effect : float
        Excess approved share from which a discovery is critical (default 0.5).
    """

    name = "disagreement"
    tests: ClassVar[Mapping[str, str]] = {"approved_share": "RuleModelDisagreement"}
    severities: str = "high,critical"
    modes: str = "enforce"
    min_n: int = 3
    min_count: int = 3
    prior_rate: float = 0.2
    prior_strength: float = 50.0
    effect_floor: float = 0.3
    critical_effect: float = 0.5

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        self.rspec = spec.restricted(RULE_HIT_DIMENSIONS)
        self._levels = [s.strip() for s in self.severities.split(",") if s.strip()]
        self._modes = [s.strip() for s in self.modes.split(",") if s.strip()]
        if not self._levels or not self._modes:
            raise ValueError(
                "disagreement: severities and modes must not be empty; "
                "e.g. severities='high,critical', modes='enforce'"
            )
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._exists = False
        self._db = ""

    def _sql(self, batched: bool = False) -> str:
        assert self.rspec is not None
        high = "severity IN {levels:Array(String)} AND mode IN {modes:Array(String)}"
        return grid_sql(
            self.rspec,
            batched=batched,
            select=(
                f"uniqExactIf(txn_id, {high}) AS n, "
                f"uniqExactIf(txn_id, {high} AND decision = 'approve') AS k"
            ),
            source=RULE_HITS,
            where=WINDOW,
        )

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        params = {"lo": lo, "hi": hi, "levels": self._levels, "modes": self._modes}
        return self._table(query_table(store, self._sql(), params))

    def _chunks(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query."""
        return read_chunks(
            store, self._sql(True), spans, self._table, functools.partial(self._fetch, store),
            levels=self._levels, modes=self._modes,
        )

    @staticmethod
    def _table(cols: Columns) -> SegmentTable:
        return SegmentTable.from_wide(cols["segment"], [cols["n"], cols["k"]])

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, SegmentTable]:
        if self.rspec is None or not self._exists:
            return {}  # evaluate() looks for rule hits first: pass by pass until found
        step = self.settings.monitor_interval_s
        per = query_passes(
            store, self._sql(True), passes, self.window_s, step,
            levels=self._levels, modes=self._modes,
        )
        return {at: self._table(cols) for at, cols in per.items()}

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        if self.rspec is None:
            return []
        if not self._exists:
            self._exists = rule_hits_exist(ctx.store)
            if not self._exists:
                return []
        if self._ref is None or self._disp is None:
            fetch = functools.partial(self._fetch, ctx.store)
            many = functools.partial(self._chunks, ctx.store)
            self._ref = self.sliding(fetch, many)
            self._disp = ReferenceDispersion(
                fetch, rate_estimator, chunk_s=self.window_s, many=many
            )
        lo, hi = ctx.window(self.window_s)
        current = self.prefetched(hi) or self._fetch(ctx.store, lo, hi)
        cur = current.values
        keep = cur[:, 0] >= self.min_n
        segs = [s for s, ok in zip(current.keys, keep, strict=True) if ok]
        cur = cur[keep]
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        ref = self._ref.table(r_lo, r_hi).rows(segs)
        n, k = cur[:, 0], cur[:, 1]
        conc = self._disp.concentration(segs, r_lo, r_hi)
        pvalue, rate, pmin = rate_pvalue(
            k, n, ref[:, 1], ref[:, 0], self.prior_rate, self.prior_strength, conc
        )
        return [
            self.rate_test(
                "approved_share", (lo, hi), (r_lo, r_hi), segs, n, k, rate, ref[:, 0],
                min_count=self.min_count, count_name="approved", rate_digits=4,
                pvalue=pvalue, pmin=pmin,
            )
        ]

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        expected = float(d["rate_ref"]) * int(ev.n[i])
        summary = (
            f"{pretty_segment(ev.segment[i])}: the model approved {int(d['approved'])} of "
            f"{int(ev.n[i])} transactions that rules rated high risk in the last {span} "
            f"(expected {expected:.1f}); p = {fmt_p(float(ev.pvalue[i]))}"
        )
        levels = ", ".join(sql_literal(x) for x in self._levels)
        modes = ", ".join(sql_literal(x) for x in self._modes)
        sql = (
            f"SELECT event_time, txn_id, rule_id, rule_version, severity, mode, mcc, "
            f"merchant_country, channel, model_version, score, decision, "
            f"amount_minor / 100 AS amount FROM {self._db}.rule_hits FINAL "
            f"WHERE event_time >= {sql_time(ev.window_start)} "
            f"AND event_time < {sql_time(ev.window_end)} AND {segment_where(ev.segment[i])} "
            f"AND severity IN ({levels}) AND mode IN ({modes}) AND decision = 'approve' "
            "ORDER BY event_time"
        )
        return Description(
            summary=summary,
            value=f"{int(d['approved'])}/{int(ev.n[i])}",
            threshold=f"reference share {float(d['rate_ref']):.3f}",
            evidence_sql=sql,
            description=(
                f"Model-vs-rules disagreement in {ev.segment[i]} from {iso(ev.window_start)} "
                f"to {iso(ev.window_end)} against {ev.reference}."
            ),
        )
