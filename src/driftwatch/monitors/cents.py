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

A second test, ``new_merchant_cell``, looks only at the window's rows at merchants
registered less than ``new_merchant_days`` before the transaction (the
model-independent new-merchant stratum of :mod:`driftwatch.monitors.volume`) and
compares their cents with the *same* null shares of the segment's whole reference:
whether a merchant is young says nothing about the cents its customers pay, so under
the null the stratum's cents follow the segment's. A trigger paid at young merchants
(a handful of rows an hour) is diluted in a busy segment's hour but dominates the
stratum: offline on development variant 1001 (a mid MCC) the stratum's p-value was
2e-9 at 5 trigger rows (5 of 5 rows) where the whole segment's was 1e-4 (5 of 28).
Its rows form their own evaluations in the pass's Benjamini-Hochberg family, and it
alerts only from ``min_cards_new`` distinct cards (one customer paying one young
payee again and again is ordinary scam traffic) at ``min_merchants_new`` distinct
merchants (one young shop's own price point is not a shift of the segment's cents),
or from one card at ``spread_merchants_new`` distinct young merchants (an attacker's
first trigger rows often come in bursts from one card, to several of its merchants).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    FloatArray,
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
from driftwatch.monitors.volume import NEW
from driftwatch.settings import Settings
from driftwatch.stats.digits import LAST_TWO_MIN_MINOR
from driftwatch.store.client import Store

CELLS = 100

Current = tuple[SegmentTable, SegmentTable, SegmentTable, SegmentTable, SegmentTable]
"""Counts and distinct cards per (segment, cents value) of a window: all rows, then
the rows at new merchants, and those rows' distinct merchants."""


@dataclass(frozen=True)
class _Null:
    """What both tests of a pass share: the segments' reference counts, all traffic's
    cents shares, how closely segments follow them, the window and the reference."""

    reference: SegmentTable
    overall: FloatArray
    between: float
    window: tuple[dt.datetime, dt.datetime]
    label: str
    reference_span: tuple[dt.datetime, dt.datetime]


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
    new_merchant_days : int
        ``new_merchant_cell`` tests the rows at merchants registered fewer days
        than this before the transaction (default 180, the new-merchant age of
        ``volume``; 0 turns the test off and reads none of its columns).
    min_count_new : int
        Fewest new-merchant rows with the anomalous value to alert (default 4).
    min_cards_new : int
        Fewest distinct cards among those rows to alert (default 2), unless they
        went to ``spread_merchants_new`` merchants.
    min_merchants_new : int
        Fewest distinct merchants among those rows to alert (default 2).
    spread_merchants_new : int
        Distinct young merchants among those rows that stand in for
        ``min_cards_new`` (default 3): one card paying three different young
        merchants the same cents is neither a customer's habit nor a scam burst to
        one payee, and an attacker's first trigger rows often come from one card.
    """

    name = "cents"
    tests: ClassVar[Mapping[str, str]] = {
        "max_cell": "CentsDigitAnomaly", "new_merchant_cell": "CentsAtNewMerchants"}
    min_n: int = 5
    min_count: int = 5
    min_cards: int = 2
    prior_strength: float = 100.0
    effect_floor: float = 0.1
    critical_effect: float = 0.3
    new_merchant_days: int = 180
    min_count_new: int = 4
    min_cards_new: int = 2
    min_merchants_new: int = 2
    spread_merchants_new: int = 3

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._cells = CellsMemo()
        self._cells_new = CellsMemo()
        self._db = ""

    @property
    def young(self) -> bool:
        """Whether ``new_merchant_cell`` runs (its columns are read only then)."""
        return self.new_merchant_days > 0

    def _sql(self, cards: bool, batched: bool = False) -> str:
        extra = ", uniqExact(card_id) AS cards" if cards else ""
        if cards and self.young:
            extra += (f", countIf({NEW}) AS c_new, uniqExactIf(card_id, {NEW}) AS cards_new, "
                      f"uniqExactIf(merchant_id, {NEW}) AS merchants_new")
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

    def _current(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> Current:
        """:data:`Current` of the window ``[lo, hi)``."""
        params = {"lo": lo, "hi": hi, "new_days": self.new_merchant_days}
        return self._tables(query_table(store, self._sql(True), params))

    @staticmethod
    def _tables(cols: Columns) -> Current:
        """Without the new-merchant columns (stratum off) their tables are empty."""
        seg, cell = cols["segment"], cols["cell"]
        tables = (SegmentTable.from_long(seg, cell, cols[c], CELLS) if c in cols
                  else SegmentTable.empty(CELLS)
                  for c in ("c", "cards", "c_new", "cards_new", "merchants_new"))
        return (next(tables), next(tables), next(tables), next(tables), next(tables))

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, Current]:
        step, days = self.settings.monitor_interval_s, self.new_merchant_days
        if not whole_buckets(passes, self.window_s, step):
            per = query_passes(store, self._sql(True, batched=True), passes, self.window_s,
                               step, new_days=days)
            return {at: self._tables(cols) for at, cols in per.items()}
        # distinct cards = rows - repeats: only (cents, card) pairs seen twice in the
        # block can repeat within a window, so only their rows are read per card
        where = f"{WINDOW} AND amount_minor >= {LAST_TWO_MIN_MINOR}"
        # (at new merchants alike: rows - repeats, a pair's young rows counted once;
        # with the stratum off none of its columns is read)
        new_c, new_k = (f", countIf({NEW}) AS c_new", f", countIf({NEW}) AS k_new"
                        ) if self.young else ("", "")
        counts = read_windows(
            store, self.spec, passes, self.window_s, step, select="amount_cents AS cell, "
            f"count() AS c{new_c}", source=SCORED, where=where, keys=("cell",),
            values=("c", "c_new") if self.young else ("c",), new_days=days)
        repeats = read_windows(
            store, self.spec, passes, self.window_s, step,
            select=f"amount_cents AS cell, card_id, count() AS k{new_k}",
            source=SCORED,
            where=f"{where} AND (amount_cents, card_id) IN (SELECT amount_cents, card_id "
            f"FROM {SCORED} WHERE {where} GROUP BY amount_cents, card_id HAVING count() > 1)",
            keys=("cell", "card_id"), values=("k", "k_new") if self.young else ("k",),
            new_days=days)
        shops = self._young_shops(store, passes, where) if self.young else None
        out = {}
        for at in passes:
            cols, rep = counts[at], repeats[at]
            segs = np.concatenate([cols["segment"], rep["segment"]])
            cells = np.concatenate([cols["cell"], rep["cell"]])
            cards = SegmentTable.from_long(
                segs, cells, np.concatenate([cols["c"], 1 - rep["k"]]), CELLS)
            if shops is None:
                empty = SegmentTable.empty(CELLS)
                out[at] = (self._counts(cols), cards, empty, empty, empty)
                continue
            c_new = np.minimum(rep["k_new"], 1) - rep["k_new"]
            out[at] = (
                self._counts(cols),
                cards,
                SegmentTable.from_long(cols["segment"], cols["cell"], cols["c_new"], CELLS),
                SegmentTable.from_long(segs, cells, np.concatenate([cols["c_new"], c_new]),
                                       CELLS),
                SegmentTable.from_long(
                    np.concatenate([cols["segment"], shops[at]["segment"]]),
                    np.concatenate([cols["cell"], shops[at]["cell"]]),
                    np.concatenate([cols["c_new"], 1 - shops[at]["k"]]), CELLS),
            )
        return out

    def _young_shops(
        self, store: Store, passes: Sequence[dt.datetime], where: str
    ) -> dict[dt.datetime, Columns]:
        """Per pass, the young (cents, merchant) pairs seen more than once in the block
        with their window's rows (distinct young merchants = rows - repeats)."""
        young = f"{where} AND {NEW}"
        return read_windows(
            store, self.spec, passes, self.window_s, self.settings.monitor_interval_s,
            select="amount_cents AS cell, merchant_id, count() AS k", source=SCORED,
            where=f"{young} AND (amount_cents, merchant_id) IN (SELECT amount_cents, "
            f"merchant_id FROM {SCORED} WHERE {young} GROUP BY amount_cents, merchant_id "
            "HAVING count() > 1)",
            keys=("cell", "merchant_id"), values=("k",), new_days=self.new_merchant_days)

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
        current, cards, current_new, cards_new, merchants_new = (
            self.prefetched(hi) or self._current(ctx.store, lo, hi))
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        reference = self._ref.table(r_lo, r_hi)
        total = reference.total()
        null = _Null(
            reference, (total + 0.5) / (total.sum() + 0.5 * CELLS),
            between_concentration(reference.values), (lo, hi),
            self.reference_label(r_lo, r_hi), (r_lo, r_hi),
        )
        out = [self._test("max_cell", current, cards, null, self._cells,
                          (self.min_n, self.min_count, self.min_cards))]
        if self.new_merchant_days > 0:
            out.append(self._test("new_merchant_cell", current_new, cards_new, null,
                                  self._cells_new,
                                  (self.min_count_new, self.min_count_new, self.min_cards_new),
                                  (merchants_new, self.min_merchants_new,
                                   self.spread_merchants_new)))
        return out

    def _test(self, test: str, current: SegmentTable, card_table: SegmentTable, null: _Null,
              memo: CellsMemo, minimum: tuple[int, int, int],
              merchants: tuple[SegmentTable, int, int] | None = None) -> Evaluations:
        """The max-cell test of ``current``'s rows against the segments' reference
        shares ``null``; ``minimum``: (rows to test, rows of the value and distinct
        cards among them to alert); ``merchants``: distinct merchants per cell, the
        fewest to alert and the number that stands in for the cards."""
        assert self._disp is not None
        min_n, min_count, min_cards = minimum
        cur = current.values
        n = cur.sum(axis=1)
        keep = n >= min_n
        segs = [s for s, k in zip(current.keys, keep, strict=True) if k]
        cur, n = cur[keep], n[keep]
        ref = null.reference.rows(segs)
        conc = self._disp.concentration(segs, *null.reference_span)
        res = memo(segs, cur, ref, null.overall, self.prior_strength, conc, null.between)
        count, expected = res.count, res.expected
        with np.errstate(invalid="ignore", divide="ignore"):
            effect = np.where(n > 0, (count - expected) / n, 0.0)
        rows = np.arange(len(segs))
        at_cell = (rows, np.maximum(res.cell, 0))
        cards = card_table.rows(segs)[at_cell] if len(segs) else np.zeros(0)
        eligible = (count >= min_count) & (count - expected >= min_count - 1)
        enough_cards = cards >= min_cards
        details = {"cents": res.cell, "cards": cards.astype(np.int64)}
        if merchants is not None:
            shops = merchants[0].rows(segs)[at_cell] if len(segs) else np.zeros(0)
            eligible &= shops >= merchants[1]
            enough_cards |= shops >= merchants[2]
            details["merchants"] = shops.astype(np.int64)
        eligible &= enough_cards
        return Evaluations(
            detector=self.name,
            test=test,
            alertname=self.tests[test],
            window_start=null.window[0],
            window_end=null.window[1],
            reference=null.label,
            segment=segs,
            statistic=count,
            pvalue=res.pvalue,
            effect=effect,
            n=n.astype(np.int64),
            n_ref=ref.sum(axis=1).astype(np.int64),
            effect_floor=self.effect_floor,
            critical_effect=self.critical_effect,
            pmin=res.pmin,
            eligible=eligible,
            details={
                **details,
                "count": count.astype(np.int64),
                "expected": np.round(expected, 3),
                "share_ref": np.round(res.share, 5),
            },
        )

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        cents = int(d["cents"])
        expected = float(d["expected"])
        exp_txt = "≤ 1" if expected <= 1 else f"{expected:.1f}"
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        where = f"amount_cents = {cents} AND amount_minor >= {LAST_TWO_MIN_MINOR}"
        rows, among = "transactions", ""
        if ev.test == "new_merchant_cell":
            days = self.new_merchant_days
            rows = f"transactions at merchants registered less than {days} days earlier"
            among = f" among its transactions at merchants younger than {days} days"
            where = f"{where} AND {NEW.replace('{new_days:UInt32}', str(days))}"
        summary = (
            f"{pretty_segment(ev.segment[i])}: {int(d['count'])} of {int(ev.n[i])} "
            f"{rows} in the last {span} end in .{cents:02d} "
            f"(expected {exp_txt}); p = {fmt_p(float(ev.pvalue[i]))}"
        )
        return Description(
            summary=summary,
            value=f"{int(d['count'])}/{int(ev.n[i])}",
            threshold=f"share of .{cents:02d} in reference {float(d['share_ref']):.4f}",
            evidence_sql=evidence(self._db, ev.segment[i], ev.window_start, ev.window_end,
                                  where),
            description=(
                f"Cents value .{cents:02d} is over-represented{among} in {ev.segment[i]} "
                f"from {iso(ev.window_start)} to {iso(ev.window_end)} compared with the "
                f"segment's {ev.reference} (exact binomial tail, corrected for scanning 100 "
                "values)."
            ),
        )
