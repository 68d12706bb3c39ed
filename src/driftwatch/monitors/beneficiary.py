"""Beneficiary-name prefix concentration per segment.

A campaign that pays out through one family of beneficiary accounts
(``INTL-PAY-*``) concentrates a segment's transactions on one name prefix. The
prefix is the first ``prefix_tokens`` words of the upper-cased name (split on
whitespace and punctuation, ClickHouse's ``splitByNonAlpha``:
``"INTL-PAY-GLOBALSERV-07"`` → ``INTL-PAY``, ``"GREEN CENTER 15841"`` →
``GREEN-CENTER``). Prefixes are hashed into ``buckets``
cells so that each segment's reference is a small fixed-size count vector (like
the cents detector's); the current window's most surprising bucket is then
tested against the segment's own reference shares with the exact max-cell test
under the beta-binomial predictive with the reference's own dispersion
(:func:`driftwatch.monitors.dispersion.cells_vs_reference`). Hash collisions only make the
test more conservative. The finding names the actual prefixes of the bucket.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from driftwatch.alerts.model import iso
from driftwatch.events import EPOCH
from driftwatch.monitors.backfill import BatchedWindows, grid_sql, read_chunks
from driftwatch.monitors.base import (
    SCORED,
    WINDOW,
    Columns,
    Description,
    Detector,
    Evaluations,
    FloatArray,
    IntArray,
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
    cells_vs_reference,
)
from driftwatch.monitors.reader import BUCKET, BUCKET_KEY, read_windows, whole_buckets
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import (
    SegmentSpec,
    pretty_segment,
    segment_filter,
    segment_sql,
)
from driftwatch.settings import Settings
from driftwatch.stats.maxcell import CellTest
from driftwatch.store.client import Store


def prefix_expr(tokens: int) -> str:
    """SQL for the name prefix: the first ``tokens`` words of the upper-cased name."""
    return (
        "arrayStringConcat(arraySlice(splitByNonAlpha(upper(beneficiary_name)), "
        f"1, {int(tokens)}), '-')"
    )


PAIR = "cityHash64(card_id, beneficiary_name)"
"""One (card, beneficiary name) pair: a card's choice of a payee."""


def by_payers(
    test: CellTest, cur: FloatArray, ref: FloatArray, overall: FloatArray, strength: float,
    conc: FloatArray, between: float, payers: IntArray, candidate: NDArray[np.bool_],
) -> FloatArray:
    """The p-values of the max-cell test with the candidate rows' cell counting
    distinct (card, beneficiary name) pairs instead of rows.

    A card paying the same payee again is not a new draw: a scam victim pays one
    ``UPI-PAY-*`` handle three to eight times in minutes, a card tester hits one
    digital-goods merchant ten times, and the rows of such a burst are one choice of a
    payee, not ten. The null counts rows as independent; on clean traffic these bursts
    made most of the 64-151 beneficiary discoveries a week per span and beneficiary
    alerts (seed 316: 13 of 32 UPI rows under ``UPI-PAY-*`` from three cards paying one
    handle each, p = 1e-7). Here the tested cell's count becomes its distinct pairs
    (the window's rows lose the difference) and the row is tested again; its p-value
    is the larger of the two. It can only grow (the other cells are unchanged), so rows
    that were not candidates (p above the FDR level, too few rows) keep theirs. A
    payout family spread over several names by a few cards keeps most of its count.
    The effect (excess share of rows) is left as it is: how much of the segment's
    traffic pays the prefix is what an alert is worth, the pairs how sure it is not
    chance.
    """
    pvalue = test.pvalue.copy()
    redo = np.flatnonzero(candidate & (payers >= 0) & (payers < test.count))
    if len(redo) == 0:
        return pvalue
    cur2 = cur[redo].astype(np.float64)
    cur2[np.arange(len(redo)), test.cell[redo]] = payers[redo]
    again = cells_vs_reference(cur2, ref[redo], overall, strength, conc[redo], between)
    pvalue[redo] = np.maximum(again.pvalue, test.pvalue[redo])
    return pvalue


@register
class BeneficiaryDetector(BatchedWindows, Detector):
    """One beneficiary-name prefix over-represented in a segment.

    Options
    -------
    prefix_tokens : int
        Words of the name forming its prefix (default 2).
    buckets : int
        Hash cells per segment (default 128).
    min_n : int
        Fewest named beneficiaries in the window to test (default 5).
    min_count : int
        Fewest rows with the prefix to alert (default 3).
    min_cards, min_merchants : int
        Fewest distinct cards / merchant accounts among those rows to alert
        (default 2 each): one customer paying one merchant repeatedly is ordinary;
        several merchant accounts paying out under one name family is not.
    min_others : int
        Fewest of those rows outside the busiest merchant account (default 2):
        one merchant's busy hour plus a stray namesake is not a pattern.
        These three are counted (second query) only for rows that could alert at
        all (enough rows, p-value within the pass's FDR level); ``drift_results``
        shows -1 for the others.
    prior_strength : float
        Pseudo-rows of all-traffic bucket shares in each reference (default 50).
    effect_floor : float
        Excess share of the prefix needed to alert (default 0.25).
    critical_effect : float
        Excess share from which a discovery is critical (default 0.5).
    """

    name = "beneficiary"
    tests: ClassVar[Mapping[str, str]] = {"prefix": "BeneficiaryPrefixConcentration"}
    prefix_tokens: int = 2
    buckets: int = 128
    min_n: int = 5
    min_count: int = 3
    min_cards: int = 2
    min_merchants: int = 2
    min_others: int = 2
    prior_strength: float = 50.0
    effect_floor: float = 0.25
    critical_effect: float = 0.5

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        if self.prefix_tokens < 1 or self.buckets < 2:
            raise ValueError(
                f"beneficiary: prefix_tokens={self.prefix_tokens!r}, buckets={self.buckets!r};"
                " allowed: prefix_tokens >= 1, buckets >= 2"
            )
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._cells = CellsMemo()
        self._store: Store | None = None
        self._payer_block: list[dt.datetime] = []
        # cell -> segment -> (pass bucket, merchant, rows, cards, pairs) of the block
        self._payer_rows: dict[int, dict[str, list[tuple[int, str, int, Any, Any]]]] = {}
        self.block_payer_reads = 0
        """Block queries of who pays under candidate prefixes (tests, benchmarks)."""

    def _bucket(self) -> str:
        return f"toUInt16(cityHash64({prefix_expr(self.prefix_tokens)}) % {int(self.buckets)})"

    def _sql(self, distinct: bool, batched: bool = False) -> str:
        if not distinct:
            return grid_sql(
                self.spec,
                batched=batched,
                select=f"{self._bucket()} AS cell, count() AS c",
                source=SCORED,
                where=f"{WINDOW} AND beneficiary_name != ''",
                keys=("cell",),
            )
        # per (segment, cell, merchant) first, so that the rows a single merchant
        # contributes can be told apart from a spread over several merchants; only
        # for the candidate cells (parameter ``cells``), the rest cannot alert
        inner = segment_sql(
            self.spec,
            select=f"{self._bucket()} AS cell, merchant_id AS m, count() AS k, "
            f"groupUniqArray(card_id) AS cs, groupUniqArray({PAIR}) AS ps",
            source=SCORED,
            where=f"{WINDOW} AND beneficiary_name != '' "
            f"AND {self._bucket()} IN {{cells:Array(UInt16)}}",
            keys=("cell", "merchant_id"),
        )
        return (
            "SELECT segment, cell, sum(k) AS c, length(groupUniqArrayArray(cs)) AS cards, "
            "length(groupUniqArrayArray(ps)) AS pairs, "
            f"count() AS merchants, max(k) AS top FROM ({inner}) GROUP BY segment, cell"
        )

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        return self._table(query_table(store, self._sql(False), {"lo": lo, "hi": hi}))

    def _chunks(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query."""
        fallback = functools.partial(self._fetch, store)
        return read_chunks(store, self._sql(False, True), spans, self._table, fallback)

    def _table(self, cols: Columns) -> SegmentTable:
        return SegmentTable.from_long(cols["segment"], cols["cell"], cols["c"], self.buckets)

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, SegmentTable]:
        """The counts per cell of every pass (who pays under a candidate prefix is
        still asked pass by pass: candidates are rare and depend on the reference)."""
        per = read_windows(
            store, self.spec, passes, self.window_s, self.settings.monitor_interval_s,
            select=f"{self._bucket()} AS cell, count() AS c", source=SCORED,
            where=f"{WINDOW} AND beneficiary_name != ''", keys=("cell",), values=("c",),
        )
        return {at: self._table(cols) for at, cols in per.items()}

    def prefetch(self, store: Store, passes: Sequence[dt.datetime]) -> None:
        """:meth:`BatchedWindows.prefetch`; who pays under a candidate prefix is then
        read per cell for the whole block, in pass buckets (:meth:`_block_payers`)."""
        super().prefetch(store, passes)
        whole = whole_buckets(passes, self.window_s, self.settings.monitor_interval_s)
        self._payer_block, self._payer_rows = (list(passes) if whole else []), {}

    def drop_prefetched(self) -> None:
        super().drop_prefetched()
        self._payer_block, self._payer_rows = [], {}

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._store = ctx.store
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
        n = cur.sum(axis=1)
        keep = n >= self.min_n
        segs = [s for s, ok in zip(current.keys, keep, strict=True) if ok]
        cur, n = cur[keep], n[keep]
        if not segs:
            return []
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        reference = self._ref.table(r_lo, r_hi)
        ref = reference.rows(segs)
        n_ref = ref.sum(axis=1)
        tot = reference.total()
        overall = (tot + 0.5) / (tot.sum() + 0.5 * self.buckets)
        conc = self._disp.concentration(segs, r_lo, r_hi)
        between = between_concentration(reference.values)
        test = self._cells(segs, cur, ref, overall, self.prior_strength, conc, between)
        cell, count, expected = test.cell, test.count, test.expected
        # who pays under the prefix matters only where an alert is possible at all: a
        # discovery needs p <= fdr_q, and the counts must pass; elsewhere -1 (unknown)
        candidate = (
            (count >= self.min_count)
            & (count - expected >= self.min_count - 1)
            & (test.pvalue <= ctx.settings.fdr_q)
        )
        cards, merchants, others, pairs = self._payers(ctx.store, lo, hi, segs, cell, candidate)
        pvalue = by_payers(
            test, cur, ref, overall, self.prior_strength, conc, between, pairs, candidate)
        return [
            Evaluations(
                detector=self.name,
                test="prefix",
                alertname=self.tests["prefix"],
                window_start=lo,
                window_end=hi,
                reference=self.reference_label(r_lo, r_hi),
                segment=segs,
                statistic=count,
                pvalue=pvalue,
                effect=(count - expected) / n,
                n=n.astype(np.int64),
                n_ref=n_ref.astype(np.int64),
                effect_floor=self.effect_floor,
                critical_effect=self.critical_effect,
                pmin=test.pmin,
                eligible=candidate
                & (pvalue <= ctx.settings.fdr_q)
                & (cards >= self.min_cards)
                & (merchants >= self.min_merchants)
                & (others >= self.min_others),
                details={
                    "bucket": cell,
                    "cards": cards,
                    "payers": pairs,
                    "merchants": merchants,
                    "not_top_merchant": others,
                    "count": count.astype(np.int64),
                    "expected": np.round(expected, 3),
                    "share_ref": np.round(test.share, 5),
                },
            )
        ]

    def _payers(
        self,
        store: Store,
        lo: dt.datetime,
        hi: dt.datetime,
        segs: list[str],
        cell: IntArray,
        candidate: NDArray[np.bool_],
    ) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Distinct cards, distinct merchants, rows outside the busiest merchant and
        distinct (card, beneficiary name) pairs in each candidate row's cell (one query
        for all candidates; -1 elsewhere)."""
        size = len(segs)
        cards, merchants, others, pairs = (np.full(size, -1, dtype=np.int64) for _ in range(4))
        if not candidate.any():
            return cards, merchants, others, pairs
        cells = sorted({int(c) for c in cell[candidate]})
        if hi in self._payer_block:
            wanted = {(segs[i], int(cell[i])) for i in np.flatnonzero(candidate)}
            found = self._block_payers(store, hi, cells, wanted)
        else:
            cols = query_table(store, self._sql(True), {"lo": lo, "hi": hi, "cells": cells})
            found = {
                (str(s), int(c)): (int(a), int(m), int(k) - int(t), int(q))
                for s, c, a, m, k, t, q in zip(
                    cols["segment"], cols["cell"], cols["cards"], cols["merchants"],
                    cols["c"], cols["top"], cols["pairs"], strict=True,
                )
            }
        for i in np.flatnonzero(candidate):
            a, m, o, q = found.get((segs[i], int(cell[i])), (0, 0, 0, 0))
            cards[i], merchants[i], others[i], pairs[i] = a, m, o, q
        return cards, merchants, others, pairs

    def _block_payers(
        self, store: Store, hi: dt.datetime, cells: list[int], wanted: set[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int, int, int]]:
        """What :meth:`_payers`' query returns for ``wanted`` (segment, cell) pairs of the
        pass at ``hi`` of a block: each cell's rows per (pass bucket, segment,
        merchant) with their cards are read once for the whole block, then the
        buckets of the window are added up (distinct cards as a set union)."""
        step = self.settings.monitor_interval_s
        missing = [c for c in cells if c not in self._payer_rows]
        if missing:
            sql = segment_sql(
                self.spec,
                select=f"{BUCKET}, {self._bucket()} AS cell, merchant_id AS m, count() AS k, "
                f"groupUniqArray(card_id) AS cs, groupUniqArray({PAIR}) AS ps",
                source=SCORED,
                where=f"{WINDOW} AND beneficiary_name != '' "
                f"AND {self._bucket()} IN {{cells:Array(UInt16)}}",
                keys=(BUCKET_KEY, "cell", "merchant_id"),
            )
            first = min(self._payer_block) - dt.timedelta(seconds=self.window_s)
            cols = query_table(store, sql, {
                "lo": first, "hi": max(self._payer_block), "bf_step_ms": step * 1000,
                "bf_step": step, "cells": missing})
            self.block_payer_reads += 1
            for c in missing:
                self._payer_rows[c] = {}
            for b, s, c, m, k, cs, ps in zip(cols[BUCKET_KEY], cols["segment"], cols["cell"],
                                             cols["m"], cols["k"], cols["cs"], cols["ps"],
                                             strict=True):
                self._payer_rows[int(c)].setdefault(str(s), []).append(
                    (int(b), str(m), int(k), cs, ps))
        end = int((hi - EPOCH).total_seconds())
        start = end - self.window_s
        agg: dict[tuple[str, int], tuple[list[int], dict[str, int], set[Any], set[Any]]] = {}
        for s, c in wanted:  # only the wanted segments' rows of each cell (issue 24)
            for b, m, k, cs, ps in self._payer_rows[c].get(s, ()):
                if start < b <= end:
                    total, merchants, cards, pairs = agg.setdefault(
                        (s, c), ([0], {}, set(), set()))
                    total[0] += k
                    merchants[m] = merchants.get(m, 0) + k
                    cards.update(cs)
                    pairs.update(ps)
        return {
            key: (len(cards), len(merchants), total[0] - max(merchants.values()), len(pairs))
            for key, (total, merchants, cards, pairs) in agg.items()
        }

    def _prefixes(self, segment: str, lo: dt.datetime, hi: dt.datetime, bucket: int) -> str:
        if self._store is None:
            return ""
        where, params = segment_filter(segment)
        rows = self._store.query(
            f"SELECT {prefix_expr(self.prefix_tokens)} AS p, count() AS c FROM {SCORED} "
            f"WHERE {WINDOW} AND {where} AND {self._bucket()} = {{b:UInt16}} "
            "GROUP BY p ORDER BY c DESC LIMIT 3",
            {"lo": lo, "hi": hi, "b": bucket, **params},
        )
        return ", ".join(f"{p}-* ({c})" for p, c in rows)

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        bucket = int(d["bucket"])
        names = self._prefixes(ev.segment[i], ev.window_start, ev.window_end, bucket)
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        expected = float(d["expected"])
        exp_txt = "≤ 1" if expected <= 1 else f"{expected:.1f}"
        cards = int(d.get("cards", -1))
        by = f" from {cards} cards" if cards >= 0 else ""
        summary = (
            f"{pretty_segment(ev.segment[i])}: {int(d['count'])} of {int(ev.n[i])} "
            f"transactions in the last {span}{by} pay beneficiaries named {names or '?'} "
            f"(expected {exp_txt}); p = {fmt_p(float(ev.pvalue[i]))}"
        )
        db = self._store.database if self._store else "{db}"
        return Description(
            summary=summary,
            value=f"{int(d['count'])}/{int(ev.n[i])}",
            threshold=f"reference share {float(d['share_ref']):.4f}",
            evidence_sql=evidence(
                db,
                ev.segment[i],
                ev.window_start,
                ev.window_end,
                f"{self._bucket()} = {bucket}",
            ),
            description=(
                f"Beneficiary-name prefix concentration in {ev.segment[i]} from "
                f"{iso(ev.window_start)} to {iso(ev.window_end)} against {ev.reference}."
            ),
        )
