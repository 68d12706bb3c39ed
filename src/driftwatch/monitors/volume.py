"""Volume and velocity per segment: sudden growth, and the share of new merchants.

Two tests from one query per window:

``volume``
    (segments without the ``model_version`` dimension: a new version taking over
    is a deployment) The segment's share of all traffic in the current window against its share
    in the trailing reference (exact tail of the segment's count out of the
    window's total). Working with shares rather than raw counts takes the daily and
    weekly traffic curve out of the comparison, but not the segment's own movement
    within it (a lunch-time merchant category is a larger share at noon): the count
    is beta-binomial, with a concentration from the segment's share in reference
    chunks as long as the window, spread over every hour of the week
    (:func:`driftwatch.monitors.dispersion.rate_pvalue`). Alerts need the count to
    be at least ``ratio_floor`` times the expectation and ``min_excess`` rows above
    it: effect sizes, not the null.
``new_merchants``
    The share of the segment's transactions at merchants registered less than
    ``new_merchant_days`` before the transaction (``merchant_registered_at``),
    against the segment's reference share, shrunk toward the all-traffic share;
    beta-binomial with the segment's own spread of that share, likewise.

Both dispersion estimates read the same reference chunks, fetched once.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from driftwatch.alerts.model import iso
from driftwatch.monitors.backfill import (
    GRID_KEY,
    PASS_AT,
    BatchedWindows,
    chunk_grid,
    grid_sql,
    query_chunks,
    query_passes,
)
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
from driftwatch.monitors.reader import (
    BUCKET,
    BUCKET_KEY,
    query_windows,
    read_windows,
    whole_buckets,
)
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec, pretty_segment
from driftwatch.settings import Settings
from driftwatch.store.client import Store

TOTAL = "\x1f*"
"""Key of the all-traffic row in the count tables."""

NEW = (
    "merchant_registered_at IS NOT NULL AND "
    "dateDiff('day', assumeNotNull(merchant_registered_at), toDate(event_time)) "
    "< {new_days:UInt32}"
)
TOTALS_SQL = (
    f"SELECT {PASS_AT}, count() AS n, countIf({NEW}) AS k FROM {SCORED} "
    f"WHERE {WINDOW} GROUP BY {GRID_KEY}"
)
"""All traffic's rows and rows at new merchants per pass (:func:`query_passes`)."""


@register
class VolumeDetector(BatchedWindows, Detector):
    """Segment growth and new-merchant share per segment.

    Options
    -------
    ratio_floor : float
        Count over expectation needed to alert on growth (default 3).
    critical_ratio : float
        Ratio from which growth is critical (default 10).
    min_excess : int
        Rows above expectation needed to alert on growth (default 20).
    new_merchant_days : int
        A merchant registered fewer days ago than this is new (default 180).
    new_floor : float
        Excess new-merchant share needed to alert (default 0.2).
    new_critical : float
        Excess new-merchant share from which it is critical (default 0.5).
    min_new : int
        Fewest rows at new merchants to alert (default 3).
    min_new_merchants : int
        Fewest distinct new merchants, and distinct cards paying them, to alert
        (default 2): one young merchant having a good hour is ordinary business.
    prior_strength : float
        Pseudo-rows of the all-traffic new-merchant share mixed into each
        segment's reference share (default 200).
    """

    name = "volume"
    tests: ClassVar[Mapping[str, str]] = {
        "volume": "SegmentVolumeSpike",
        "new_merchants": "NewMerchantShare",
    }
    ratio_floor: float = 3.0
    critical_ratio: float = 10.0
    min_excess: int = 20
    new_merchant_days: int = 180
    new_floor: float = 0.2
    new_critical: float = 0.5
    min_new: int = 3
    min_new_merchants: int = 2
    prior_strength: float = 200.0

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        # a new model version taking over its traffic is a deployment, not a spike
        self.qspec = spec.without("model_version") or spec
        self._ref: SlidingReference | None = None
        self._disp_volume: ReferenceDispersion | None = None
        self._disp_new: ReferenceDispersion | None = None
        self._chunks: dict[tuple[dt.datetime, dt.datetime], SegmentTable] = {}
        self._db = ""

    def _sql(self, distinct: bool, batched: bool = False) -> str:
        extra = (
            f", uniqExactIf(merchant_id, {NEW}) AS new_merchants, "
            f"uniqExactIf(card_id, {NEW}) AS new_cards"
        )
        return grid_sql(
            self.qspec,
            batched=batched,
            select=f"count() AS n, countIf({NEW}) AS k_new{extra if distinct else ''}",
            source=SCORED,
            where=WINDOW,
        )

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        table, _ = self._counts(store, lo, hi, distinct=False)
        return table

    def _counts(
        self, store: Store, lo: dt.datetime, hi: dt.datetime, *, distinct: bool
    ) -> tuple[SegmentTable, SegmentTable]:
        """Counts per segment plus the all-traffic row; distinct new merchants/cards."""
        params = {"lo": lo, "hi": hi, "new_days": self.new_merchant_days}
        cols = query_table(store, self._sql(distinct), params)
        tot = store.query(f"SELECT count(), countIf({NEW}) FROM {SCORED} WHERE {WINDOW}", params)
        return self._tables(cols, (int(tot[0][0]), int(tot[0][1])), distinct=distinct)

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, tuple[SegmentTable, SegmentTable]]:
        step, days = self.settings.monitor_interval_s, self.new_merchant_days
        # (merchant_id as a segment dimension: its pairs would not name their segment)
        if whole_buckets(passes, self.window_s, step) and "merchant_id" not in (
            self.qspec.dimensions
        ):
            return self._bucket_batch(store, passes)
        per = query_passes(
            store, self._sql(True, batched=True), passes, self.window_s, step, new_days=days
        )
        totals = query_passes(
            store, TOTALS_SQL, passes, self.window_s, step, new_days=days
        )
        out = {}
        for at, cols in per.items():
            tot = totals[at]
            n, k = (int(tot[c][0]) if len(tot[c]) else 0 for c in ("n", "k"))
            out[at] = self._tables(cols, (n, k), distinct=True)
        return out

    def _bucket_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, tuple[SegmentTable, SegmentTable]]:
        """:meth:`window_batch` over pass buckets: counts summed per window, and the
        distinct new merchants and cards as the (segment, merchant or card) pairs of
        rows at new merchants present in each window."""
        step, days = self.settings.monitor_interval_s, self.new_merchant_days

        def windows(select: str, where: str, keys: tuple[str, ...], columns: tuple[str, ...],
                    values: tuple[str, ...]) -> dict[dt.datetime, Columns]:
            return read_windows(store, self.qspec, passes, self.window_s, step, select=select,
                                source=SCORED, where=where, keys=keys, columns=columns,
                                values=values, new_days=days)

        counts = windows(f"count() AS n, countIf({NEW}) AS k_new", WINDOW, (), ("segment",),
                         ("n", "k_new"))
        totals = query_windows(
            store, f"SELECT {BUCKET}, count() AS n, countIf({NEW}) AS k, count() AS _rows "
            f"FROM {SCORED} WHERE {WINDOW} GROUP BY {BUCKET_KEY}", passes, self.window_s, step,
            (), ("n", "k"), new_days=days)
        new = f"{WINDOW} AND {NEW}"
        merchants = windows("merchant_id AS m, count() AS r", new, ("merchant_id",),
                            ("segment", "m"), ("r",))
        cards = windows("card_id AS m, count() AS r", new, ("card_id",), ("segment", "m"),
                        ("r",))
        out = {}
        for at in passes:
            cols, tot = counts[at], totals[at]
            n, k = (int(tot[c][0]) if len(tot[c]) else 0 for c in ("n", "k"))
            segs = [str(x) for x in cols["segment"]]
            found = [SegmentTable.from_wide(t[at]["segment"], [np.ones(len(t[at]["segment"]))])
                     for t in (merchants, cards)]
            wide = Columns({"segment": np.asarray(segs, dtype=object), "n": cols["n"],
                            "k_new": cols["k_new"],
                            "new_merchants": found[0].rows(segs)[:, 0],
                            "new_cards": found[1].rows(segs)[:, 0]})
            out[at] = self._tables(wide, (n, k), distinct=True)
        return out

    @staticmethod
    def _tables(
        cols: Columns, tot: tuple[int, int], *, distinct: bool
    ) -> tuple[SegmentTable, SegmentTable]:
        """Counts per segment plus the all-traffic row ``tot``; distinct new merchants
        and cards."""
        keys = [*cols["segment"].tolist(), TOTAL]
        n = [*cols["n"].tolist(), tot[0]]
        k = [*cols["k_new"].tolist(), tot[1]]
        table = SegmentTable.from_wide(keys, [n, k])
        if not distinct:
            return table, SegmentTable.empty(2)
        return table, SegmentTable.from_wide(
            cols["segment"], [cols["new_merchants"], cols["new_cards"]]
        )

    def _chunk(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        """:meth:`_fetch`, memoised within one pass."""
        key = (lo, hi)
        if key not in self._chunks:
            self._chunks[key] = self._fetch(store, lo, hi)
        return self._chunks[key]

    def _many(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many chunks in two queries (segments, all traffic),
        memoised within one pass like :meth:`_chunk`."""
        todo = [s for s in dict.fromkeys(spans) if s not in self._chunks]
        width_s = chunk_grid(todo)
        if width_s is None:
            return [self._chunk(store, lo, hi) for lo, hi in spans]
        days = self.new_merchant_days
        segs = query_chunks(store, self._sql(False, True), todo, width_s, new_days=days)
        tots = query_chunks(store, TOTALS_SQL, todo, width_s, new_days=days)
        for span, cols, tot in zip(todo, segs, tots, strict=True):
            n, k = (int(tot[c][0]) if len(tot[c]) else 0 for c in ("n", "k"))
            self._chunks[span] = self._tables(cols, (n, k), distinct=False)[0]
        return [self._chunks[s] for s in spans]

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        if self._ref is None or self._disp_volume is None or self._disp_new is None:
            fetch = functools.partial(self._fetch, ctx.store)
            many = functools.partial(self._many, ctx.store)
            self._ref = self.sliding(fetch, many)
            # both estimates read the same chunks at the same refreshes: fetch each once
            # per pass (the memo is emptied every pass: a chunk read again later is read
            # anew, as without it)
            chunk = functools.partial(self._chunk, ctx.store)
            self._disp_volume = ReferenceDispersion(
                lambda a, b: share_of_total(chunk(a, b)), rate_estimator, chunk_s=self.window_s,
                many=lambda spans: [share_of_total(t) for t in many(spans)],
            )
            self._disp_new = ReferenceDispersion(
                lambda a, b: without_total(chunk(a, b)), rate_estimator, chunk_s=self.window_s,
                many=lambda spans: [without_total(t) for t in many(spans)],
            )
        self._chunks.clear()
        lo, hi = ctx.window(self.window_s)
        current, distinct = self.prefetched(hi) or self._counts(ctx.store, lo, hi, distinct=True)
        total_cur = current.rows([TOTAL])[0]
        segs = [k for k in current.keys if k != TOTAL]
        if not segs or total_cur[0] <= 0:
            return []
        cur = current.rows(segs)
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        reference = self._ref.table(r_lo, r_hi)
        ref = reference.rows(segs)
        total_ref = reference.rows([TOTAL])[0]
        label = self.reference_label(r_lo, r_hi)
        n, k_new = cur[:, 0], cur[:, 1]
        dist = distinct.rows(segs)
        new_merchants, new_cards = dist[:, 0], dist[:, 1]
        # -- growth: segment count out of the window total, vs its reference share
        vol_conc = self._disp_volume.concentration(segs, r_lo, r_hi)
        vol_p, share, _ = rate_pvalue(
            n, np.full(len(segs), total_cur[0]), ref[:, 0], np.full(len(segs), total_ref[0]),
            1.0, 1.0, vol_conc,
        )  # share (n_ref + 1) / (total_ref + 1)
        expected = total_cur[0] * share
        ratio = n / np.maximum(expected, 1e-9)
        volume = Evaluations(
            detector=self.name,
            test="volume",
            alertname=self.tests["volume"],
            window_start=lo,
            window_end=hi,
            reference=label,
            segment=segs,
            statistic=n,
            pvalue=vol_p,
            effect=ratio,
            n=n.astype(np.int64),
            n_ref=ref[:, 0].astype(np.int64),
            effect_floor=self.ratio_floor,
            critical_effect=self.critical_ratio,
            # a segment without any reference row is new, not growing: not tested
            eligible=(n - expected >= self.min_excess) & (ref[:, 0] > 0),
            details={"expected": np.round(expected, 2), "total": np.full(len(segs), total_cur[0])},
        )
        # -- new merchants: share of rows at recently registered merchants
        overall = (total_ref[1] + 0.5) / (total_ref[0] + 1.0)
        new_conc = self._disp_new.concentration(segs, r_lo, r_hi)
        new_p, rate, new_pmin = rate_pvalue(
            k_new, n, ref[:, 1], ref[:, 0], overall, self.prior_strength, new_conc
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            excess = np.where(n > 0, k_new / n - rate, 0.0)
        new = Evaluations(
            detector=self.name,
            test="new_merchants",
            alertname=self.tests["new_merchants"],
            window_start=lo,
            window_end=hi,
            reference=label,
            segment=segs,
            statistic=k_new,
            pvalue=new_p,
            effect=excess,
            n=n.astype(np.int64),
            n_ref=ref[:, 0].astype(np.int64),
            effect_floor=self.new_floor,
            critical_effect=self.new_critical,
            pmin=new_pmin,
            eligible=(k_new >= self.min_new)
            & (new_merchants >= self.min_new_merchants)
            & (new_cards >= self.min_new_merchants),
            details={
                "new": k_new.astype(np.int64),
                "new_merchants": new_merchants.astype(np.int64),
                "new_cards": new_cards.astype(np.int64),
                "rate_ref": np.round(rate, 5),
            },
        )
        return [volume, new]

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        seg = pretty_segment(ev.segment[i])
        p = fmt_p(float(ev.pvalue[i]))
        if ev.test == "volume":
            summary = (
                f"{seg}: {int(ev.n[i])} transactions in the last {span}, "
                f"{float(ev.effect[i]):.1f}x the {float(d['expected']):.1f} expected from its "
                f"share of traffic; p = {p}"
            )
            extra = ""
            value, threshold = f"{int(ev.n[i])}", f"ratio {self.ratio_floor:g}"
        else:
            expected = float(d["rate_ref"]) * int(ev.n[i])
            summary = (
                f"{seg}: {int(d['new'])} of {int(ev.n[i])} transactions in the last {span} "
                f"at merchants registered less than {self.new_merchant_days} days earlier "
                f"(expected {expected:.1f}); p = {p}"
            )
            extra = (
                "merchant_registered_at IS NOT NULL AND dateDiff('day', "
                "assumeNotNull(merchant_registered_at), toDate(event_time)) < "
                f"{self.new_merchant_days}"
            )
            value = f"{int(d['new'])}/{int(ev.n[i])}"
            threshold = f"reference share {float(d['rate_ref']):.4f}"
        return Description(
            summary=summary,
            value=value,
            threshold=threshold,
            evidence_sql=evidence(self._db, ev.segment[i], ev.window_start, ev.window_end, extra),
            description=(
                f"{ev.alertname} in {ev.segment[i]} from {iso(ev.window_start)} to "
                f"{iso(ev.window_end)} against {ev.reference}."
            ),
        )


def share_of_total(table: SegmentTable) -> SegmentTable:
    """Per segment ``[window total, segment rows]``: the volume test's rate table."""
    total = table.rows([TOTAL])[0, 0]
    segs = [k for k in table.keys if k != TOTAL]
    return SegmentTable.from_wide(segs, [np.full(len(segs), total), table.rows(segs)[:, 0]])


def without_total(table: SegmentTable) -> SegmentTable:
    """The segments' ``[rows, rows at new merchants]`` without the all-traffic row."""
    segs = [k for k in table.keys if k != TOTAL]
    return SegmentTable(segs, table.rows(segs))
