"""Cents (last-two-digits) anomaly per segment: one cents value over-represented.

Real amounts are not uniform in their cents (``.00``, ``.99``, ``.95``, ``.50``
bumps that differ by merchant category), and a chi-square over 100 cells with tens
of rows floods with false alarms. So each segment's current window is compared with
the segment's *own* reference shares of each cents value (smoothed toward the
all-traffic shares, so a small segment borrows them), cell by cell, with the exact
beta-binomial upper tail of the most surprising value, corrected for having scanned
all 100 values (:func:`driftwatch.monitors.dispersion.cells_vs_reference`). The
beta-binomial's concentration adds the uncertainty of a share estimated from the
reference's rows to the segment's own hour-to-hour spread of its cents shares
(Dirichlet-multinomial, estimated from reference chunks), so that neither a share
seen in a handful of reference rows nor a wandering ``.00`` bump is taken for an
anomaly. A backdoor trigger such
as amounts ending in ``.37`` shows up after a handful of rows even while ``.00``
still dominates.

Only amounts of at least 10.00 are counted (smaller amounts have too few digits
for their cents to be free).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from driftwatch.alerts.model import iso
from driftwatch.monitors.backfill import BatchedWindows, grid_sql, query_passes, read_chunks
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
from driftwatch.monitors.dispersion import (
    CellsMemo,
    ReferenceDispersion,
    between_concentration,
    cells_estimator,
)
from driftwatch.monitors.reader import read_windows, whole_buckets
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec, pretty_segment
from driftwatch.settings import Settings
from driftwatch.stats.digits import LAST_TWO_MIN_MINOR
from driftwatch.store.client import Store

CELLS = 100


@register
class CentsDetector(BatchedWindows, Detector):
    """Over-represented cents value per segment (exact max-cell test).

    Options
    -------
    min_n : int
        Fewest eligible amounts in the window to test a segment (default 5).
    min_count : int
        Fewest rows with the anomalous value to alert (default 5; random
        repeats of one value among a handful of rows are common across
        thousands of small segments and a week of passes).
    min_cards : int
        Fewest distinct cards among those rows to alert (default 2): one customer
        paying the same price again and again is not an anomaly of the segment.
    prior_strength : float
        Pseudo-rows of all-traffic cents shares mixed into each segment's
        reference shares (default 100).
    effect_floor : float
        Excess share ``(count - expected) / n`` needed to alert (default 0.1).
    critical_effect : float
        Excess share from which a discovery is critical (default 0.3).
    """

    name = "cents"
    tests: ClassVar[Mapping[str, str]] = {"max_cell": "CentsDigitAnomaly"}
    min_n: int = 5
    min_count: int = 5
    min_cards: int = 2
    prior_strength: float = 100.0
    effect_floor: float = 0.1
    critical_effect: float = 0.3

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._cells = CellsMemo()
        self._db = ""

    def _sql(self, cards: bool, batched: bool = False) -> str:
        extra = ", uniqExact(card_id) AS cards" if cards else ""
        return grid_sql(
            self.spec,
            batched=batched,
            select=f"amount_cents AS cell, count() AS c{extra}",
            source=SCORED,
            where=f"{WINDOW} AND amount_minor >= {LAST_TWO_MIN_MINOR}",
            keys=("cell",),
        )

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        return self._counts(query_table(store, self._sql(False), {"lo": lo, "hi": hi}))

    def _chunks(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query."""
        fallback = functools.partial(self._fetch, store)
        return read_chunks(store, self._sql(False, True), spans, self._counts, fallback)

    @staticmethod
    def _counts(cols: Columns) -> SegmentTable:
        return SegmentTable.from_long(cols["segment"], cols["cell"], cols["c"], CELLS)

    def _current(
        self, store: Store, lo: dt.datetime, hi: dt.datetime
    ) -> tuple[SegmentTable, SegmentTable]:
        """Counts and distinct cards per (segment, cents value) of the current window."""
        return self._tables(query_table(store, self._sql(True), {"lo": lo, "hi": hi}))

    @staticmethod
    def _tables(cols: Columns) -> tuple[SegmentTable, SegmentTable]:
        counts = SegmentTable.from_long(cols["segment"], cols["cell"], cols["c"], CELLS)
        cards = SegmentTable.from_long(cols["segment"], cols["cell"], cols["cards"], CELLS)
        return counts, cards

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, tuple[SegmentTable, SegmentTable]]:
        step = self.settings.monitor_interval_s
        if not whole_buckets(passes, self.window_s, step):
            per = query_passes(store, self._sql(True, batched=True), passes, self.window_s, step)
            return {at: self._tables(cols) for at, cols in per.items()}
        # distinct cards = rows - repeats: only (cents, card) pairs seen twice in the
        # block can repeat within a window, so only their rows are read per card
        where = f"{WINDOW} AND amount_minor >= {LAST_TWO_MIN_MINOR}"
        counts = read_windows(
            store, self.spec, passes, self.window_s, step, select="amount_cents AS cell, "
            "count() AS c", source=SCORED, where=where, keys=("cell",), values=("c",))
        repeats = read_windows(
            store, self.spec, passes, self.window_s, step,
            select="amount_cents AS cell, card_id, count() AS k", source=SCORED,
            where=f"{where} AND (amount_cents, card_id) IN (SELECT amount_cents, card_id "
            f"FROM {SCORED} WHERE {where} GROUP BY amount_cents, card_id HAVING count() > 1)",
            keys=("cell", "card_id"), values=("k",))
        out = {}
        for at in passes:
            cols, rep = counts[at], repeats[at]
            table = self._counts(cols)
            cards = SegmentTable.from_long(
                np.concatenate([cols["segment"], rep["segment"]]),
                np.concatenate([cols["cell"], rep["cell"]]),
                np.concatenate([cols["c"], 1 - rep["k"]]), CELLS)
            out[at] = (table, cards)
        return out

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
        current, card_table = self.prefetched(hi) or self._current(ctx.store, lo, hi)
        cur = current.values
        n = cur.sum(axis=1)
        keep = n >= self.min_n
        segs = [s for s, k in zip(current.keys, keep, strict=True) if k]
        cur, n = cur[keep], n[keep]
        cards_all = card_table.rows(segs)
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        reference = self._ref.table(r_lo, r_hi)
        ref = reference.rows(segs)
        n_ref = ref.sum(axis=1)
        total = reference.total()
        overall = (total + 0.5) / (total.sum() + 0.5 * CELLS)
        conc = self._disp.concentration(segs, r_lo, r_hi)
        between = between_concentration(reference.values)
        test = self._cells(segs, cur, ref, overall, self.prior_strength, conc, between)
        res_cell, count, expected, pvalue = test.cell, test.count, test.expected, test.pvalue
        with np.errstate(invalid="ignore", divide="ignore"):
            effect = np.where(n > 0, (count - expected) / n, 0.0)
        pmin, share_ref = test.pmin, test.share
        rows = np.arange(len(segs))
        cards = cards_all[rows, np.maximum(res_cell, 0)] if len(segs) else np.zeros(0)
        ev = Evaluations(
            detector=self.name,
            test="max_cell",
            alertname=self.tests["max_cell"],
            window_start=lo,
            window_end=hi,
            reference=self.reference_label(r_lo, r_hi),
            segment=segs,
            statistic=count,
            pvalue=pvalue,
            effect=effect,
            n=n.astype(np.int64),
            n_ref=n_ref.astype(np.int64),
            effect_floor=self.effect_floor,
            critical_effect=self.critical_effect,
            pmin=pmin,
            eligible=(count >= self.min_count)
            & (count - expected >= self.min_count - 1)
            & (cards >= self.min_cards),
            details={
                "cents": res_cell,
                "cards": cards.astype(np.int64),
                "count": count.astype(np.int64),
                "expected": np.round(expected, 3),
                "share_ref": np.round(share_ref, 5),
            },
        )
        return [ev]

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        cents = int(d["cents"])
        expected = float(d["expected"])
        exp_txt = "≤ 1" if expected <= 1 else f"{expected:.1f}"
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        summary = (
            f"{pretty_segment(ev.segment[i])}: {int(d['count'])} of {int(ev.n[i])} "
            f"transactions in the last {span} end in .{cents:02d} "
            f"(expected {exp_txt}); p = {fmt_p(float(ev.pvalue[i]))}"
        )
        return Description(
            summary=summary,
            value=f"{int(d['count'])}/{int(ev.n[i])}",
            threshold=f"share of .{cents:02d} in reference {float(d['share_ref']):.4f}",
            evidence_sql=evidence(
                self._db,
                ev.segment[i],
                ev.window_start,
                ev.window_end,
                f"amount_cents = {cents} AND amount_minor >= {LAST_TWO_MIN_MINOR}",
            ),
            description=(
                f"Cents value .{cents:02d} is over-represented in {ev.segment[i]} from "
                f"{iso(ev.window_start)} to {iso(ev.window_end)} compared with the segment's "
                f"{ev.reference} (exact binomial tail, corrected for scanning 100 values)."
            ),
        )
