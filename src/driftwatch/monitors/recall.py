"""Recall per segment and model version from delayed labels, joined in ClickHouse.

Labels arrive hours to weeks after the transaction, and not at random: a held
fraud gets an analyst label within hours, a missed one waits days for a chargeback.
Recall counted over "labels known now" therefore depends on how old the window is
(an older window has more of its slow, missed frauds labelled), so two windows of
different ages are not comparable. Every window is judged with the *same label-age
cutoff* ``label_age_s`` (default the ``label_maturity_s`` setting): a transaction's
label is the latest one whose ``label_time`` is before ``event_time + label_age_s``
(and before the pass time), selected with ``argMaxIf`` over every version of the
label in the append-only ``label_history`` (:mod:`driftwatch.store.labels`), not
from ``labels`` with ``FINAL`` (which keeps only the newest version and would drop a
transaction whose earlier label was known at that age but a later one exists; its
merges drop the earlier versions for good). The
current window ends ``label_age_s`` before the pass, so each of its transactions has
had the full age to be labelled. Recall is then "frauds held among frauds labelled
within ``label_age_s``" in both windows: biased toward fast-labelled (held) frauds
in the same way in both, so a *change* is real. A longer cutoff sees more chargebacks
at the cost of later detection. A pass replayed later therefore gives the same
result however the labels changed since. Per segment and live model version:

``drop``
    Recall (fraud labelled transactions the model held, score >= threshold) of the
    current mature window against the same segment's recall over the reference
    period before it (all versions pooled, so a new version is compared with what
    served before it): one-sided Fisher exact test (exact hypergeometric tail, valid
    at every alpha; the pooled z-test's tail was not). Daily recall also wanders
    more than binomially; where the segment's reference days show it, the p-value is
    the larger of Fisher's and the beta-binomial predictive tail with that day-to-day
    dispersion (:func:`drop_pvalue`).
``trend`` (info)
    Three consecutive daily recall values of a segment and version, each lower
    than the one before, with enough labelled fraud each day and a significant
    drop from the first to the last (small declines each inside tolerance are
    exactly what slipped through in the reference incident).
``version_trend`` (info)
    Recall per model version in the order the versions appeared, over the
    reference period: three consecutive versions each worse than the one before.

Precision among labelled flagged transactions is kept in the details (legitimate
labels are sparse, so it is indicative only).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from driftwatch.alerts.model import iso
from driftwatch.monitors.base import (
    Columns,
    Description,
    Detector,
    Evaluations,
    FloatArray,
    PassContext,
    evidence,
    fmt_p,
    query_table,
)
from driftwatch.monitors.dispersion import ReferenceDispersion, rate_estimator
from driftwatch.monitors.reference import SegmentTable
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec, pretty_segment, segment_sql, sql_literal
from driftwatch.settings import Settings
from driftwatch.stats.betabinom import betabinom_sf
from driftwatch.stats.dispersion import predictive_concentration
from driftwatch.stats.recall import two_proportion_test
from driftwatch.stats.trend import consecutive_declines
from driftwatch.store.client import Store

AGE_CUT = "l.label_time < s.first_time + toIntervalSecond({age:UInt32})"
"""A label counts if it was known within the label-age cutoff of its transaction."""
LABELS = (
    "(SELECT l.txn_id AS txn_id, argMaxIf(l.label, l.label_time, " + AGE_CUT + ") AS label "
    "FROM (SELECT txn_id, label, label_time FROM {db}.label_history UNION ALL "
    "SELECT txn_id, label, label_time FROM {db}.labels) AS l INNER JOIN "
    "(SELECT txn_id, min(event_time) AS first_time FROM {db}.scored_transactions "
    "WHERE event_time >= {r_lo:DateTime64(3, 'UTC')} AND event_time < {c_hi:DateTime64(3, 'UTC')}"
    " GROUP BY txn_id) AS s ON l.txn_id = s.txn_id "
    "WHERE l.label_time < {at:DateTime64(3, 'UTC')} "
    "GROUP BY l.txn_id HAVING countIf(" + AGE_CUT + ") > 0)"
)
"""Per transaction, the label known ``age`` seconds after it (every version in the
history: the newest version may be later than the cutoff while an earlier one is not;
plus ``labels``, which holds the labels stored before the history existed)."""
SOURCE = "{db}.scored_transactions FINAL INNER JOIN " + LABELS + " AS l USING (txn_id)"
CUR = "event_time >= {c_lo:DateTime64(3, 'UTC')} AND event_time < {c_hi:DateTime64(3, 'UTC')}"
REF = "event_time >= {r_lo:DateTime64(3, 'UTC')} AND event_time < {r_hi:DateTime64(3, 'UTC')}"
HELD = "score >= threshold"


def _pooled(segment: str) -> str:
    return "model_version=*" if segment.startswith("model_version=") else segment


def drop_pvalue(
    tp: FloatArray, pos: FloatArray, tp_ref: FloatArray, pos_ref: FloatArray,
    concentration: FloatArray,
) -> FloatArray:
    """One-sided p-value of a recall drop: ``tp`` of ``pos`` against ``tp_ref`` of ``pos_ref``.

    Fisher's exact test (hypergeometric ``P(K <= tp)`` given the margins); where the
    reference's daily recall is over-dispersed (finite ``concentration``), the larger
    of that and the beta-binomial predictive lower tail ``P(X <= tp)``,
    ``X ~ BetaBinomial(pos, r c, (1 - r) c)`` with ``r = (tp_ref + 0.5) / (pos_ref + 1)``
    and ``c`` the predictive concentration of ``pos_ref + 1`` rows and the daily
    dispersion. The larger of two valid p-values is valid.

    >>> p = drop_pvalue(np.array([30.0, 30.0]), np.array([40.0, 40.0]),
    ...                 np.array([360.0, 360.0]), np.array([400.0, 400.0]),
    ...                 np.array([np.inf, 100.0]))
    >>> [f"{x:.1e}" for x in p]
    ['8.7e-03', '2.2e-02']
    """
    fisher = np.atleast_1d(np.asarray(
        two_proportion_test(tp, pos, tp_ref, pos_ref, alternative="less", method="fisher").pvalue,
        dtype=np.float64,
    ))
    dispersed = np.isfinite(concentration)
    if not dispersed.any():
        return fisher
    share = (tp_ref + 0.5) / (pos_ref + 1.0)
    # a reference day holds about the current day's frauds: a young reference is few days
    conc = predictive_concentration(pos_ref + 1.0, concentration, pos)
    # P(X <= tp) = P(pos - X >= pos - tp), pos - X ~ BetaBinomial(pos, (1 - r) c, r c)
    lower = betabinom_sf(pos - tp, pos, 1.0 - share, conc)
    return np.asarray(np.where(dispersed, np.maximum(fisher, lower), fisher), dtype=np.float64)


@register
class RecallDetector(Detector):
    """Recall drop and recall trends per segment and model version.

    Options
    -------
    window_s : int
        Length of the mature current window (default 86400).
    every_s : int
        Evaluate every this many seconds of event time (default 3600).
    label_age_s : int
        Label-age cutoff applied to both windows, seconds (default 0: the
        ``label_maturity_s`` setting). The current window ends this long before
        the pass.
    min_pos : int
        Fewest labelled fraud transactions in the current window (default 20).
    min_pos_ref : int
        Fewest labelled fraud transactions in the reference (default 30).
    effect_floor : float
        Recall drop needed to alert (default 0.15).
    critical_effect : float
        Recall drop from which a discovery is critical (default 0.3).
    trend_min_pos : int
        Labelled fraud per value for the trend findings (default 100).
    trend_runs : int
        Values in a declining run that make a trend finding (default 3).
    trend_p : float
        A run of declining windows is a finding only if the drop from its first
        to its last window is significant at this level (default 0.01): daily
        recall on a few hundred labels moves by tenths of a point by chance.
    """

    name = "recall"
    tests: ClassVar[Mapping[str, str]] = {
        "drop": "RecallDrop",
        "trend": "RecallTrend",
        "version_trend": "RecallTrendAcrossVersions",
    }
    window_s: int = 86400
    every_s: int = 3600
    label_age_s: int = 0
    min_pos: int = 20
    min_pos_ref: int = 30
    effect_floor: float = 0.15
    critical_effect: float = 0.3
    trend_min_pos: int = 100
    trend_runs: int = 3
    trend_p: float = 0.01

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        self.vspec = spec.versioned()
        self._hist: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._last_day: dt.datetime | None = None
        self._disp: ReferenceDispersion | None = None
        self._age = 0
        self._db = ""

    def _sql(self) -> str:
        return segment_sql(
            self.vspec,
            select=(
                "model_version AS ver, min(event_time) AS first_seen, "
                f"countIf({CUR} AND label = 1) AS pos, "
                f"countIf({CUR} AND label = 1 AND {HELD}) AS tp, "
                f"countIf({CUR} AND {HELD}) AS held, "
                f"countIf({REF} AND label = 1) AS pos_ref, "
                f"countIf({REF} AND label = 1 AND {HELD}) AS tp_ref"
            ),
            source=SOURCE,
            where="event_time >= {r_lo:DateTime64(3, 'UTC')} "
            "AND event_time < {c_hi:DateTime64(3, 'UTC')}",
            keys=("model_version",),
        )

    def _fetch_days(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        """Labelled frauds and held ones per pooled segment in ``[lo, hi)``, labels
        within the label-age cutoff (one reference day, for the dispersion)."""
        sql = segment_sql(
            self.vspec,
            select=f"countIf(label = 1) AS pos, countIf(label = 1 AND {HELD}) AS tp",
            source=SOURCE,
            where=REF.replace("r_lo", "lo").replace("r_hi", "hi"),
            keys=("model_version",),
        )
        at = hi + dt.timedelta(seconds=self._age)
        cols = query_table(
            store, sql, {"at": at, "age": self._age, "lo": lo, "hi": hi, "r_lo": lo, "c_hi": hi}
        )
        keys = [_pooled(str(s)) for s in cols["segment"]]
        return SegmentTable.from_wide(keys, [cols["pos"], cols["tp"]])

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        age = self.label_age_s or ctx.settings.label_maturity_s
        self._age = age
        if self._disp is None:
            self._disp = ReferenceDispersion(
                lambda lo, hi: self._fetch_days(ctx.store, lo, hi), rate_estimator,
                chunk_s=self.window_s,
            )
        c_hi = ctx.at - dt.timedelta(seconds=age)
        c_lo = c_hi - dt.timedelta(seconds=self.window_s)
        r_hi = c_lo
        r_lo = r_hi - dt.timedelta(seconds=ctx.settings.reference_window_s)
        cols = query_table(
            ctx.store,
            self._sql(),
            {"at": ctx.at, "age": age, "c_lo": c_lo, "c_hi": c_hi, "r_lo": r_lo, "r_hi": r_hi},
        )
        segs = [str(s) for s in cols["segment"]]
        vers = [str(v) for v in cols["ver"]]
        if not segs:
            return []
        pos, tp = cols["pos"].astype(np.float64), cols["tp"].astype(np.float64)
        pos_ref_v = cols["pos_ref"].astype(np.float64)
        tp_ref_v = cols["tp_ref"].astype(np.float64)
        pooled_pos: dict[str, float] = {}
        pooled_tp: dict[str, float] = {}
        for s, pr, tr in zip(segs, pos_ref_v, tp_ref_v, strict=True):
            key = _pooled(s)
            pooled_pos[key] = pooled_pos.get(key, 0.0) + pr
            pooled_tp[key] = pooled_tp.get(key, 0.0) + tr
        pos_ref = np.array([pooled_pos[_pooled(s)] for s in segs])
        tp_ref = np.array([pooled_tp[_pooled(s)] for s in segs])
        out: list[Evaluations] = []
        keep = (pos >= self.min_pos) & (pos_ref >= self.min_pos_ref)
        if keep.any():
            idx = np.flatnonzero(keep)
            res = two_proportion_test(
                tp[idx], pos[idx], tp_ref[idx], pos_ref[idx], alternative="less", method="fisher"
            )
            conc = self._disp.concentration([_pooled(segs[i]) for i in idx], r_lo, r_hi)
            pvalue = drop_pvalue(tp[idx], pos[idx], tp_ref[idx], pos_ref[idx], conc)
            rec = tp[idx] / pos[idx]
            rec_ref = tp_ref[idx] / pos_ref[idx]
            out.append(
                Evaluations(
                    detector=self.name,
                    test="drop",
                    alertname=self.tests["drop"],
                    window_start=c_lo,
                    window_end=c_hi,
                    reference=f"all versions [{iso(r_lo)}, {iso(r_hi)}), labels within "
                    f"{age} s of each transaction",
                    segment=[segs[i] for i in idx],
                    model_version=[vers[i] for i in idx],
                    statistic=np.atleast_1d(np.asarray(res.z, dtype=np.float64)),
                    pvalue=pvalue,
                    effect=rec_ref - rec,
                    n=pos[idx].astype(np.int64),
                    n_ref=pos_ref[idx].astype(np.int64),
                    effect_floor=self.effect_floor,
                    critical_effect=self.critical_effect,
                    details={
                        "recall": np.round(rec, 4),
                        "recall_ref": np.round(rec_ref, 4),
                        "tp": tp[idx].astype(np.int64),
                        "precision_labelled": np.round(
                            tp[idx] / np.maximum(cols["held"][idx].astype(np.float64), 1), 4
                        ),
                    },
                )
            )
        out.extend(self._trends(ctx.at, c_lo, c_hi, r_lo, segs, vers, cols))
        return out

    def _trends(
        self,
        at: dt.datetime,
        c_lo: dt.datetime,
        c_hi: dt.datetime,
        r_lo: dt.datetime,
        segs: list[str],
        vers: list[str],
        cols: Columns,
    ) -> list[Evaluations]:
        out: list[Evaluations] = []
        pos, tp = cols["pos"], cols["tp"]
        # -- daily recall per (segment, version): fed once per window length
        day = at - dt.timedelta(seconds=(at.timestamp() % self.window_s))
        rows: list[tuple[str, str, float, int]] = []
        if self._last_day is None or day > self._last_day:
            self._last_day = day
            for s, v, p, t in zip(segs, vers, pos, tp, strict=True):
                if p < self.trend_min_pos:
                    continue
                hist = self._hist.setdefault((s, v), deque(maxlen=self.trend_runs))
                hist.append((float(t), float(p)))
                if len(hist) < self.trend_runs:
                    continue
                values = [a / b for a, b in hist]
                if not consecutive_declines(values, n=self.trend_runs):
                    continue
                (t0, p0), (t1, p1) = hist[0], hist[-1]
                test = two_proportion_test(t1, p1, t0, p0, alternative="less", method="fisher")
                if float(test.pvalue) <= self.trend_p:
                    rows.append((s, v, values[-1], int(p)))
        if rows:
            out.append(self._direct("trend", c_lo, c_hi, "previous windows", rows))
        # -- recall per version in order of appearance, per pooled segment
        by_seg: dict[str, list[tuple[float, str, float, int]]] = {}
        pos_all = cols["pos"] + cols["pos_ref"]
        tp_all = cols["tp"] + cols["tp_ref"]
        firsts = pd.to_datetime(pd.Series(cols["first_seen"]), utc=True)
        stamps = (firsts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        for s, v, stamp, p, t in zip(segs, vers, stamps, pos_all, tp_all, strict=True):
            if p >= self.trend_min_pos:
                by_seg.setdefault(_pooled(s), []).append(
                    (float(stamp), v, float(t) / float(p), int(p))
                )
        vrows: list[tuple[str, str, float, int]] = []
        for seg, items in by_seg.items():
            if len(items) < self.trend_runs:
                continue
            items.sort()
            values = [x[2] for x in items]
            if consecutive_declines(values, n=self.trend_runs):
                last = items[-1]
                name = seg if seg != "model_version=*" else f"model_version={last[1]}"
                vrows.append((name, last[1], last[2], last[3]))
        if vrows:
            out.append(self._direct("version_trend", r_lo, c_hi, "earlier versions", vrows))
        return out

    def _direct(
        self,
        test: str,
        lo: dt.datetime,
        hi: dt.datetime,
        reference: str,
        rows: list[tuple[str, str, float, int]],
    ) -> Evaluations:
        size = len(rows)
        return Evaluations(
            detector=self.name,
            test=test,
            alertname=self.tests[test],
            window_start=lo,
            window_end=hi,
            reference=reference,
            segment=[r[0] for r in rows],
            model_version=[r[1] for r in rows],
            statistic=np.array([r[2] for r in rows]),
            pvalue=np.full(size, math.nan),
            effect=np.zeros(size),
            n=np.array([r[3] for r in rows], dtype=np.int64),
            n_ref=np.zeros(size, dtype=np.int64),
            effect_floor=0.0,
            critical_effect=math.inf,
            direct=np.ones(size, dtype=bool),
            max_severity="info",
            details={"recall": np.array([round(r[2], 4) for r in rows])},
        )

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        seg = pretty_segment(ev.segment[i])
        version = ev.version(i)
        if ev.test == "drop":
            summary = (
                f"{seg}: recall of {version} fell to {float(d['recall']):.0%} "
                f"({int(d['tp'])} of {int(ev.n[i])} labelled frauds held) from "
                f"{float(d['recall_ref']):.0%} before; p = {fmt_p(float(ev.pvalue[i]))}"
            )
        elif ev.test == "trend":
            summary = (
                f"{seg}: recall of {version} declined {self.trend_runs - 1} windows in a row, "
                f"now {float(d['recall']):.1%} on {int(ev.n[i])} labelled frauds"
            )
        else:
            summary = (
                f"{seg}: recall declined over the last {self.trend_runs} model versions, "
                f"{version} now {float(d['recall']):.1%} on {int(ev.n[i])} labelled frauds"
            )
        seg_where = "" if ev.segment[i].startswith("model_version=") else ev.segment[i]
        cond = (
            f"model_version = {sql_literal(version)} AND txn_id IN "
            f"(SELECT txn_id FROM {self._db}.labels FINAL WHERE label = 1) AND score < threshold"
        )
        return Description(
            summary=summary,
            value=f"{float(d['recall']):.4f}",
            threshold=f"drop {self.effect_floor:g}" if ev.test == "drop" else "trend",
            evidence_sql=evidence(self._db, seg_where, ev.window_start, ev.window_end, cond),
            description=(
                f"Missed labelled frauds (approved) in {ev.segment[i]} from "
                f"{iso(ev.window_start)} to {iso(ev.window_end)}; reference: {ev.reference}."
            ),
        )
