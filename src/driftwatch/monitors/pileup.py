"""Score pile-up just below the decision threshold (boundary probing) per segment.

Someone probing the model (splitting an amount until the score drops under the
hold threshold, then repeating just below it) leaves an excess of scores in the
band ``[threshold - band, threshold)``. Per segment the share of the window's
transactions in that band is tested against the segment's reference share
(shrunk toward the all-traffic share) with the exact beta-binomial upper tail whose
concentration combines the reference's size and the band share's own hour-to-hour
spread in the reference (:mod:`driftwatch.monitors.dispersion`): the band share of
real traffic wanders far more than a binomial allows, and a binomial null called
hundreds of clean windows a week significant. The threshold is each transaction's
own (``threshold`` column).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import ClassVar

from driftwatch.alerts.model import iso
from driftwatch.monitors.backfill import BatchedWindows, grid_sql, read_chunks
from driftwatch.monitors.base import (
    SCORED,
    WINDOW,
    Columns,
    Description,
    Detector,
    Evaluations,
    PassContext,
    evidence,
    fmt_p,
    query_table,
    span_words,
)
from driftwatch.monitors.dispersion import ReferenceDispersion, rate_estimator, rate_pvalue
from driftwatch.monitors.reader import read_windows
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec, pretty_segment
from driftwatch.settings import Settings
from driftwatch.store.client import Store

BAND = "score >= threshold - {band:Float64} AND score < threshold"


@register
class PileupDetector(BatchedWindows, Detector):
    """Excess of scores just under the decision threshold.

    Options
    -------
    band : float
        Width of the band below the threshold (default 0.05).
    min_count : int
        Fewest rows in the band to alert (default 5).
    prior_strength : float
        Pseudo-rows of the all-traffic band share in each reference (default 200).
    effect_floor : float
        Excess band share needed to alert (default 0.15).
    critical_effect : float
        Excess band share from which a discovery is critical (default 0.4).
    """

    name = "pileup"
    tests: ClassVar[Mapping[str, str]] = {"band_share": "ScorePileupBelowThreshold"}
    band: float = 0.05
    min_count: int = 5
    prior_strength: float = 200.0
    effect_floor: float = 0.15
    critical_effect: float = 0.4

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        if not 0 < self.band < 1:
            raise ValueError(f"pileup: band={self.band!r}; allowed: 0 < band < 1")
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._db = ""

    def _sql(self, batched: bool = False) -> str:
        select = f"count() AS n, countIf({BAND}) AS k"
        return grid_sql(self.spec, batched=batched, select=select, source=SCORED, where=WINDOW)

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        cols = query_table(store, self._sql(), {"lo": lo, "hi": hi, "band": self.band})
        return self._table(cols)

    def _chunks(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query."""
        return read_chunks(
            store, self._sql(True), spans, self._table, functools.partial(self._fetch, store),
            band=self.band,
        )

    @staticmethod
    def _table(cols: Columns) -> SegmentTable:
        return SegmentTable.from_wide(cols["segment"], [cols["n"], cols["k"]])

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, SegmentTable]:
        per = read_windows(
            store, self.spec, passes, self.window_s, self.settings.monitor_interval_s,
            select=f"count() AS n, countIf({BAND}) AS k", source=SCORED, where=WINDOW,
            values=("n", "k"), band=self.band,
        )
        return {at: self._table(cols) for at, cols in per.items()}

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
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
        keep = cur[:, 1] >= 1
        segs = [s for s, ok in zip(current.keys, keep, strict=True) if ok]
        cur = cur[keep]
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        reference = self._ref.table(r_lo, r_hi)
        ref = reference.rows(segs)
        tot = reference.total()
        # every definition counts each row once: the shares are the all-traffic ones
        overall = (tot[1] + 0.5) / (tot[0] + 1.0)
        n, k = cur[:, 0], cur[:, 1]
        conc = self._disp.concentration(segs, r_lo, r_hi)
        pvalue, rate, pmin = rate_pvalue(
            k, n, ref[:, 1], ref[:, 0], overall, self.prior_strength, conc
        )
        return [
            self.rate_test(
                "band_share", (lo, hi), (r_lo, r_hi), segs, n, k, rate, ref[:, 0],
                min_count=self.min_count, count_name="in_band", pvalue=pvalue, pmin=pmin,
            )
        ]

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        expected = float(d["rate_ref"]) * int(ev.n[i])
        summary = (
            f"{pretty_segment(ev.segment[i])}: {int(d['in_band'])} of {int(ev.n[i])} scores in "
            f"the last {span} fall within {self.band:g} below the decision threshold "
            f"(expected {expected:.1f}); p = {fmt_p(float(ev.pvalue[i]))}"
        )
        return Description(
            summary=summary,
            value=f"{int(d['in_band'])}/{int(ev.n[i])}",
            threshold=f"reference share {float(d['rate_ref']):.4f}",
            evidence_sql=evidence(
                self._db,
                ev.segment[i],
                ev.window_start,
                ev.window_end,
                f"score >= threshold - {self.band:g} AND score < threshold",
            ),
            description=(
                f"Possible probing of the decision boundary in {ev.segment[i]} from "
                f"{iso(ev.window_start)} to {iso(ev.window_end)} against {ev.reference}."
            ),
        )
