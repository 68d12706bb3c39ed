"""Benford first-digit conformity per segment over a long window.

Amounts spread over several decades follow Benford's law in their first digit,
but a merchant category with a narrow price range need not, so the detector does
not alert on non-conformity itself: it alerts when a segment's *conformity gets
worse* than in its own reference. Per segment, over a long current window
(default 24 h, evaluated hourly), the first-digit counts of the current window and
of the segment's own reference are compared with the two-sample test of homogeneity
(Pearson's chi-square on the 2 x 9 table, :func:`driftwatch.stats.psi.psi_test`):
both windows are samples, and testing the current one against the reference's
*estimated* shares as if they were exact (a one-sample test) ignores the
reference's own noise and rejects too often. Amount mixes also wander from day to
day far more than a multinomial allows, so the statistic is divided by its
inflation under the Dirichlet-multinomial whose concentration is measured on the
segment's own reference days (:func:`~driftwatch.monitors.dispersion.homogeneity_pvalue`,
:mod:`driftwatch.monitors.dispersion`). The effect is the mean absolute
deviation between the current and the reference shares *beyond sampling noise*
(:func:`excess_mad`; MAD is large by chance on a few hundred amounts), and an alert
also needs the current window to be non-conforming to Benford (Nigrini's MAD) and
worse than the reference.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from driftwatch.alerts.model import iso
from driftwatch.monitors.backfill import BatchedWindows, grid_sql, read_chunks
from driftwatch.monitors.base import (
    SCORED,
    WINDOW,
    Columns,
    Description,
    Detector,
    Evaluations,
    FloatArray,
    PassContext,
    evidence,
    fmt_p,
    query_table,
    span_words,
)
from driftwatch.monitors.dispersion import (
    ReferenceDispersion,
    cells_estimator,
    homogeneity_pvalue,
)
from driftwatch.monitors.reader import read_windows
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec, pretty_segment
from driftwatch.settings import Settings
from driftwatch.stats.digit_test import digit_test, smoothed_shares
from driftwatch.stats.digits import expected_proportions
from driftwatch.store.client import Store

CELLS = 9
FIRST_DIGIT = "toUInt8(substring(toString(amount_minor), 1, 1)) - 1"
"""Cell 0..8 of the first significant digit 1..9 of the amount."""


def excess_mad(cur: FloatArray, ref: FloatArray) -> FloatArray:
    """MAD between current and reference digit shares minus its expectation under
    sampling noise alone, per row.

    With ``n_eff = n * n_ref / (n + n_ref)`` the difference of two share estimates
    of a cell with share ``p`` has standard deviation ``sqrt(p (1 - p) / n_eff)``
    and mean absolute value ``sqrt(2 p (1 - p) / (pi n_eff))``; the average over
    cells is subtracted.

    >>> ref = np.array([[300.0, 176, 125, 97, 79, 67, 58, 51, 46]])
    >>> bool(excess_mad(ref / 10, ref)[0] < 0)
    True
    """
    n = cur.sum(axis=1, keepdims=True)
    n_ref = ref.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_cur = cur / n
        p_ref = ref / n_ref
        n_eff = n * n_ref / (n + n_ref)
        noise = np.sqrt(2.0 * p_ref * (1.0 - p_ref) / (np.pi * n_eff)).mean(axis=1)
        mad = np.abs(p_cur - p_ref).mean(axis=1)
    return np.asarray(np.nan_to_num(mad - noise, nan=0.0), dtype=np.float64)


@register
class BenfordDetector(BatchedWindows, Detector):
    """First-digit conformity to Benford getting worse than the segment's reference.

    Options
    -------
    window_s : int
        Current window (default 86400).
    every_s : int
        Evaluate every this many seconds of event time (default 3600).
    min_n : int
        Fewest amounts in the window (default 200).
    min_ref : int
        Fewest amounts in the reference (default 500).
    min_mad : float
        The current MAD from Benford must exceed this to alert (default 0.015:
        Nigrini's "nonconformity" for first digits).
    min_rise : float
        ... and exceed the reference's MAD from Benford by this much (default 0.006).
    effect_floor : float
        Excess MAD between the current and the reference digit shares, beyond
        what sampling noise alone gives at these sample sizes, needed to alert
        (default 0.015, Nigrini's first-digit nonconformity bound).
    critical_effect : float
        Excess MAD from which a discovery is critical (default 0.03).
    """

    name = "benford"
    tests: ClassVar[Mapping[str, str]] = {"first_digit": "BenfordFirstDigit"}
    window_s: int = 86400
    every_s: int = 3600
    min_n: int = 200
    min_ref: int = 500
    min_mad: float = 0.015
    min_rise: float = 0.006
    effect_floor: float = 0.015
    critical_effect: float = 0.03

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._db = ""

    def _sql(self, batched: bool = False) -> str:
        return grid_sql(self.spec, batched=batched, select=f"{FIRST_DIGIT} AS d, count() AS c",
                        source=SCORED, where=WINDOW, keys=("d",))

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        return self._table(query_table(store, self._sql(), {"lo": lo, "hi": hi}))

    @staticmethod
    def _table(cols: Columns) -> SegmentTable:
        return SegmentTable.from_long(cols["segment"], cols["d"], cols["c"], CELLS)

    def _chunks(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query."""
        fallback = functools.partial(self._fetch, store)
        return read_chunks(store, self._sql(True), spans, self._table, fallback)

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, SegmentTable]:
        """The day-long current windows of the (hourly) passes of a block, from one
        query over pass buckets (:func:`~driftwatch.monitors.reader.read_windows`)."""
        per = read_windows(
            store, self.spec, passes, self.window_s, self.settings.monitor_interval_s,
            select=f"{FIRST_DIGIT} AS d, count() AS c", source=SCORED, where=WINDOW,
            keys=("d",), values=("c",),
        )
        return {at: self._table(cols) for at, cols in per.items()}

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        if self._ref is None or self._disp is None:
            fetch = functools.partial(self._fetch, ctx.store)
            many = functools.partial(self._chunks, ctx.store)
            self._ref = self.sliding(fetch, many)
            self._disp = ReferenceDispersion(
                fetch, cells_estimator, chunk_s=self.window_s, many=many
            )
        lo, hi = ctx.window(self.window_s)
        current = self.prefetched(hi) or self._fetch(ctx.store, lo, hi)
        cur = current.values
        keep = cur.sum(axis=1) >= self.min_n
        segs = [s for s, ok in zip(current.keys, keep, strict=True) if ok]
        cur = cur[keep]
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        ref = self._ref.table(r_lo, r_hi).rows(segs)
        ok = ref.sum(axis=1) >= self.min_ref
        segs = [s for s, good in zip(segs, ok, strict=True) if good]
        cur, ref = cur[ok], ref[ok]
        if not segs:
            return []
        benford = expected_proportions("first")
        chunks = max(ctx.settings.reference_window_s / self.window_s, 1.0)
        conc = self._disp.concentration(segs, r_lo, r_hi)
        stat, pvalue = homogeneity_pvalue(ref, cur, ref.sum(axis=1) / chunks, conc)
        drift = excess_mad(cur, ref)
        mad_cur = np.atleast_1d(np.asarray(digit_test(cur, "first").mad, dtype=np.float64))
        mad_ref = np.atleast_1d(
            np.asarray(digit_test(ref, "first", expected=benford).mad, dtype=np.float64)
        )
        conformity = digit_test(cur, "first").conformity
        return [
            Evaluations(
                detector=self.name,
                test="first_digit",
                alertname=self.tests["first_digit"],
                window_start=lo,
                window_end=hi,
                reference=self.reference_label(r_lo, r_hi),
                segment=segs,
                statistic=stat,
                pvalue=pvalue,
                effect=drift,
                eligible=(mad_cur > self.min_mad) & (mad_cur - mad_ref >= self.min_rise),
                n=cur.sum(axis=1).astype(np.int64),
                n_ref=ref.sum(axis=1).astype(np.int64),
                effect_floor=self.effect_floor,
                critical_effect=self.critical_effect,
                max_severity="warning",
                details={
                    "mad": np.round(mad_cur, 5),
                    "mad_ref": np.round(mad_ref, 5),
                    "excess_mad": np.round(drift, 5),
                    "conformity": np.atleast_1d(np.asarray(conformity, dtype=object)),
                    "top_digit": np.argmax(
                        cur / cur.sum(axis=1, keepdims=True) - smoothed_shares(ref), axis=1
                    )
                    + 1,
                },
            )
        ]

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        summary = (
            f"{pretty_segment(ev.segment[i])}: first digits of {int(ev.n[i])} amounts in the "
            f"last {span} drift from Benford (MAD {float(d['mad']):.4f}, {d['conformity']}; "
            f"reference {float(d['mad_ref']):.4f}); most over-represented first digit "
            f"{int(d['top_digit'])}; p = {fmt_p(float(ev.pvalue[i]))}"
        )
        return Description(
            summary=summary,
            value=f"{float(d['mad']):.4f}",
            threshold=f"MAD rise {self.effect_floor:g}",
            evidence_sql=evidence(
                self._db,
                ev.segment[i],
                ev.window_start,
                ev.window_end,
                f"substring(toString(amount_minor), 1, 1) = '{int(d['top_digit'])}'",
            ),
            description=(
                f"First-digit distribution of amounts in {ev.segment[i]} from "
                f"{iso(ev.window_start)} to {iso(ev.window_end)} against {ev.reference}."
            ),
        )
