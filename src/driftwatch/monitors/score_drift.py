"""Score distribution drift per segment: PSI on reference-fixed bins and binned KS.

One query per window returns, for every segment, the histogram of model scores on
100 shared fine bins (equal width on the square-root scale, so the mass of
low fraud scores near 0 is resolved). From the reference histogram each segment
gets its own 10 equal-frequency PSI bins (the fine bins grouped by the reference's
cumulative share; they never move with the current window), and
:func:`driftwatch.stats.psi.psi_test` gives PSI with a p-value calibrated for the
sample sizes (PSI is biased upward on small windows, so it is never compared with
a fixed cut-off), its chi-square divided by its inflation under the hour-to-hour
spread of the segment's own score mix in the reference
(:func:`driftwatch.monitors.dispersion.homogeneity_pvalue`). The same fine
histograms give the two-sample KS statistic on shared edges
(:func:`driftwatch.stats.ks.ks_from_counts`; exact for small samples, otherwise a
conservative asymptotic), its p-value taken at sample sizes shrunk by the same
inflation (:func:`driftwatch.monitors.dispersion.ks_dispersed_pvalue`).

Reference: the same segment over the trailing ``reference_window_s`` (default), or
with ``reference="champion"`` the champion version's scores in that trailing window
against each other version's current scores.

With the trailing reference a segment's scores are first replaced by their ranks within
all traffic of their window (:mod:`~driftwatch.monitors.score_ranks`; option ``rank``):
a new model version recalibrated as a whole moves every score but no rank, and raised
about 157 warning/critical alerts on development control 1003 (logit scale 0.895,
shift +0.20) when scores were compared directly; by rank, none. PSI bins are then the
reference's rank quantiles, and KS is taken between the two rank CDFs. A version's
whole traffic (``model_version=<v>``, its rank histogram being flat by definition) is
still compared by score: within one version a moved distribution is drift. The rank
tests are conservative on null traffic (a segment is ranked within a total that holds
it: 0.15x (KS) and 0.10x (PSI) of nominal at 1e-2 in ``test_score_ranks.py``'s setting).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

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
    ks_dispersed_pvalue,
)
from driftwatch.monitors.reader import read_windows
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.score_ranks import rank_hist, rank_ks
from driftwatch.monitors.segments import SegmentSpec, pretty_segment, sql_literal
from driftwatch.settings import Settings
from driftwatch.stats.dispersion import chi2_inflation
from driftwatch.stats.ks import ks_from_counts
from driftwatch.stats.psi import psi_test
from driftwatch.store.client import Store

FINE = 100
FINE_BIN = "least(99, toUInt8(floor(sqrt(score) * 100)))"
"""Fine bin of a score: 100 bins of equal width in sqrt(score)."""

REFERENCES = ("trailing", "champion")


def reference_bins(ref: FloatArray, bins: int) -> NDArray[np.int64]:
    """Map fine bins to ``bins`` equal-frequency bins of each reference row.

    A fine bin goes to the coarse bin holding the reference quantile of its
    midpoint, so the coarse edges are reference quantiles snapped to fine edges.

    >>> reference_bins(np.array([[10.0, 10, 10, 10]]), 2).tolist()
    [[0, 0, 1, 1]]
    """
    n = ref.sum(axis=1, keepdims=True)
    cum = np.cumsum(ref, axis=1) - ref / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(n > 0, cum / n, 0.0)
    return np.asarray(np.clip(np.floor(q * bins), 0, bins - 1), dtype=np.int64)


def regroup(counts: FloatArray, mapping: NDArray[np.int64], bins: int) -> FloatArray:
    """Sum fine-bin ``counts`` into coarse bins by per-row ``mapping``."""
    onehot = mapping[:, :, None] == np.arange(bins)[None, None, :]
    return np.asarray(np.einsum("sf,sfk->sk", counts, onehot), dtype=np.float64)


@register
class ScoreDriftDetector(BatchedWindows, Detector):
    """PSI and KS of the score distribution per segment.

    Options
    -------
    bins : int
        PSI bins per segment, fixed from the reference (default 10).
    min_n : int
        Fewest scores in the current window to test (default 100).
    min_ref : int
        Fewest scores in the reference to test (default 100).
    psi_floor, psi_critical : float
        Bias-corrected PSI needed to alert / to be critical (0.25 / 0.5).
    ks_floor, ks_critical : float
        KS distance needed to alert / to be critical (0.2 / 0.4).
    min_shift : float
        Wasserstein distance in score units the distributions must be apart to
        alert (default 0.01): with scores piled near zero a move from 0.006 to
        0.007 crosses fine bins and can be "significant", but it is no drift
        anyone needs to know about.
    reference : {'trailing', 'champion'}
        What the current window is compared with (default 'trailing').
    rank : bool
        With the trailing reference, compare a segment's scores by their rank within
        all traffic of their window (:mod:`~driftwatch.monitors.score_ranks`), so a new
        version's global monotone recalibration raises nothing (default True). A
        version's whole traffic (``model_version=<v>``) is compared by score; needs the
        ``model_version`` segment dimension (without it, scores).
    """

    name = "score_drift"
    tests: ClassVar[Mapping[str, str]] = {"psi": "ScoreDriftPSI", "ks": "ScoreDriftKS"}
    bins: int = 10
    min_n: int = 100
    min_ref: int = 100
    psi_floor: float = 0.25
    psi_critical: float = 0.5
    ks_floor: float = 0.2
    ks_critical: float = 0.4
    min_shift: float = 0.01
    reference: str = "trailing"
    rank: bool = True

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        if self.reference not in REFERENCES:
            raise ValueError(
                f"score_drift: reference={self.reference!r}; allowed: {', '.join(REFERENCES)}"
            )
        if self.bins < 2:
            raise ValueError(f"score_drift: bins={self.bins!r}; allowed: >= 2")
        self.qspec = spec.versioned() if self.reference == "champion" else spec
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._champion = settings.champion_version
        self._db = ""

    def _sql(self, extra_where: str, batched: bool = False) -> str:
        keys: tuple[str, ...] = ("b", "model_version") if self.qspec.per_version else ("b",)
        return grid_sql(
            self.qspec,
            batched=batched,
            select=f"{'model_version AS ver, ' if self.qspec.per_version else ''}"
            f"{FINE_BIN} AS b, count() AS c",
            source=SCORED,
            where=f"{WINDOW}{extra_where}",
            keys=keys,
        )

    def _fetch(
        self, store: Store, lo: dt.datetime, hi: dt.datetime, *, current: bool = False
    ) -> SegmentTable:
        where, params = self._versions(current)
        return self._table(query_table(store, self._sql(where), {"lo": lo, "hi": hi, **params}),
                           current)

    def _versions(self, current: bool) -> tuple[str, dict[str, object]]:
        """The model-version condition of the current window or the reference, and its
        parameters."""
        if self.reference != "champion":
            return "", {}
        op = "!=" if current else "="
        return f" AND model_version {op} {{champion:String}}", {"champion": self._champion}

    def _chunks(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query."""
        where, params = self._versions(False)
        return read_chunks(
            store, self._sql(where, batched=True), spans,
            functools.partial(self._table, current=False),
            functools.partial(self._fetch, store), **params,
        )

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, SegmentTable]:
        if self.reference == "champion" and not self._champion:
            return {}  # known from the first pass on: until then, pass by pass
        where, params = self._versions(True)
        versioned = self.qspec.per_version
        per = read_windows(
            store, self.qspec, passes, self.window_s, self.settings.monitor_interval_s,
            select=f"{'model_version AS ver, ' if versioned else ''}{FINE_BIN} AS b, count() AS c",
            source=SCORED, where=f"{WINDOW}{where}",
            keys=("b", "model_version") if versioned else ("b",),
            columns=("segment", "b", "ver") if versioned else None, values=("c",), **params,
        )
        return {at: self._table(cols, True) for at, cols in per.items()}

    def _table(self, cols: Columns, current: bool) -> SegmentTable:
        keys = cols["segment"]
        if self.qspec.per_version:
            if current:
                keys = np.asarray(
                    [f"{s}\x1f{v}" for s, v in zip(cols["segment"], cols["ver"], strict=True)],
                    dtype=object,
                )
            else:
                # the champion's own rows name their version in the all-traffic segment
                keys = np.asarray(
                    [
                        "model_version=" if str(s).startswith("model_version=") else str(s)
                        for s in cols["segment"]
                    ],
                    dtype=object,
                )
        return SegmentTable.from_long(keys, cols["b"], cols["c"], FINE)

    def _resolve_champion(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> bool:
        if self._champion:
            return True
        rows = store.query(
            f"SELECT model_version FROM {SCORED} WHERE {WINDOW} "
            "GROUP BY model_version ORDER BY min(event_time) LIMIT 1",
            {"lo": lo, "hi": hi},
        )
        if not rows:
            return False
        self._champion = str(rows[0][0])
        return True

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        lo, hi = ctx.window(self.window_s)
        if self._ref is None or self._disp is None:
            fetch = functools.partial(self._fetch, ctx.store)
            many = functools.partial(self._chunks, ctx.store)
            self._ref = self.sliding(fetch, many)
            self._disp = ReferenceDispersion(
                fetch, cells_estimator, chunk_s=self.window_s, many=many
            )
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        if self.reference == "champion" and not self._resolve_champion(ctx.store, r_lo, r_hi):
            return []
        current = self.prefetched(hi) or self._fetch(ctx.store, lo, hi, current=True)
        cur = current.values
        keep = cur.sum(axis=1) >= self.min_n
        keys = [k for k, ok in zip(current.keys, keep, strict=True) if ok]
        cur = cur[keep]
        if self.qspec.per_version:
            segs = [k.split("\x1f")[0] for k in keys]
            versions = [k.split("\x1f")[1] for k in keys]
            ref_keys = ["model_version=" if s.startswith("model_version=") else s for s in segs]
        else:
            segs, versions, ref_keys = keys, [""] * len(keys), keys
        ref_table = self._ref.table(r_lo, r_hi)
        ref = ref_table.rows(ref_keys)
        n_ref = ref.sum(axis=1)
        ok = n_ref >= self.min_ref
        if not ok.all():
            idx = np.flatnonzero(ok)
            ref_keys = [ref_keys[i] for i in idx]
            segs = [segs[i] for i in idx]
            versions = [versions[i] for i in idx]
            cur, ref, n_ref = cur[idx], ref[idx], n_ref[idx]
        if not segs:
            return []
        n = cur.sum(axis=1)
        raw_cur, raw_ref = cur, ref
        ranked = self._ranked(segs)
        cur_g = ref_g = np.zeros(FINE)
        if ranked.any():
            cur_g = _all_traffic(current)
            ref_g = _all_traffic(ref_table)
            if cur_g.sum() > 0 and ref_g.sum() > 0:
                # a new version's global recalibration moves no rank (score_ranks)
                cur, ref = cur.copy(), ref.copy()
                cur[ranked] = rank_hist(raw_cur[ranked], cur_g, FINE)
                ref[ranked] = rank_hist(raw_ref[ranked], ref_g, FINE)
            else:
                ranked = np.zeros(len(segs), dtype=bool)
        mapping = reference_bins(ref, self.bins)
        ref_c = regroup(ref, mapping, self.bins)
        cur_c = regroup(cur, mapping, self.bins)
        pres = psi_test(ref_c, cur_c)
        # the score mix wanders from hour to hour: judge against its own spread
        conc = self._disp.concentration(ref_keys, r_lo, r_hi)
        chunk_n = n_ref * self.window_s / ctx.settings.reference_window_s
        # the F tail: the spread is estimated from the chunks the dispersion read
        spread_chunks = len(self._disp.chunks(r_lo, r_hi))
        _, psi_p = homogeneity_pvalue(ref_c, cur_c, chunk_n, conc, spread_chunks)
        phi = chi2_inflation(n, n_ref, chunk_n, conc)
        psi_v = np.atleast_1d(np.asarray(pres.psi, dtype=np.float64))
        occupied = np.atleast_1d(np.asarray(pres.bins, dtype=np.float64))
        n_eff = n * n_ref / (n + n_ref)
        psi_eff = psi_v - np.maximum(occupied - 1, 0) / n_eff
        kres = ks_from_counts(raw_ref.astype(np.int64), raw_cur.astype(np.int64))
        ks_d = np.atleast_1d(np.asarray(kres.statistic, dtype=np.float64))
        ks_raw_p = np.atleast_1d(np.asarray(kres.pvalue, dtype=np.float64))
        if ranked.any():
            ks_d, ks_raw_p = ks_d.copy(), ks_raw_p.copy()
            ks_d[ranked], ks_raw_p[ranked] = rank_ks(
                raw_ref[ranked], ref_g, raw_cur[ranked], cur_g)
        ks_p = ks_dispersed_pvalue(ks_d, n, n_ref, ks_raw_p, phi)
        w1 = wasserstein_fine(raw_ref, raw_cur)
        material = w1 >= self.min_shift
        mean_cur = mean_score(raw_cur)
        mean_ref = mean_score(raw_ref)
        label = self.reference_label(r_lo, r_hi)
        if self.reference == "champion":
            label += f" champion {self._champion}"
        common = {
            "window_start": lo,
            "window_end": hi,
            "reference": label,
            "segment": segs,
            "model_version": versions,
            "n": n.astype(np.int64),
            "n_ref": n_ref.astype(np.int64),
            "eligible": material,
        }
        details = {
            "psi": np.round(psi_v, 4),
            "ks": np.round(ks_d, 4),
            "mean_score": np.round(mean_cur, 4),
            "mean_score_ref": np.round(mean_ref, 4),
            "w1": np.round(w1, 4),
        }
        return [
            Evaluations(
                detector=self.name,
                test="psi",
                alertname=self.tests["psi"],
                statistic=psi_v,
                pvalue=psi_p,
                effect=psi_eff,
                effect_floor=self.psi_floor,
                critical_effect=self.psi_critical,
                details=dict(details),
                **common,
            ),
            Evaluations(
                detector=self.name,
                test="ks",
                alertname=self.tests["ks"],
                statistic=ks_d,
                pvalue=ks_p,
                effect=ks_d,
                effect_floor=self.ks_floor,
                critical_effect=self.ks_critical,
                details=dict(details),
                **common,
            ),
        ]

    def _ranked(self, segs: Sequence[str]) -> NDArray[np.bool_]:
        """Which segments are compared by rank (:attr:`rank`): all but a version's
        whole traffic (``model_version=<v>``, compared with its own version's scores)."""
        on = self.rank and self.reference == "trailing"
        return np.asarray([on and not s.startswith("model_version=") for s in segs],
                          dtype=bool)

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        of = " of ranks" if self._ranked([ev.segment[i]])[0] else ""
        what = (
            f"PSI{of} {float(d['psi']):.2f} on {self.bins} reference-fixed bins"
            if ev.test == "psi"
            else f"KS D{of} = {float(d['ks']):.2f}"
        )
        summary = (
            f"{pretty_segment(ev.segment[i])}: score distribution shifted in the last {span} "
            f"({what}; mean score {float(d['mean_score']):.3f} vs "
            f"{float(d['mean_score_ref']):.3f}; n = {int(ev.n[i])} vs {int(ev.n_ref[i])} "
            f"reference); p = {fmt_p(float(ev.pvalue[i]))}"
        )
        version = ev.version(i)
        seg = ev.segment[i] if not ev.segment[i].startswith("model_version=") else ""
        extra = f"model_version = {sql_literal(version)}" if version else ""
        floor = ev.effect_floor
        return Description(
            summary=summary,
            value=f"{float(ev.statistic[i]):.4f}",
            threshold=f"effect floor {floor:g}, BH q = {self.settings.fdr_q:g}",
            evidence_sql=evidence(self._db, seg, ev.window_start, ev.window_end, extra),
            description=(
                f"Score distribution of {ev.segment[i]} from {iso(ev.window_start)} to "
                f"{iso(ev.window_end)} compared with {ev.reference}."
            ),
        )


def _all_traffic(table: SegmentTable) -> FloatArray:
    """Fine histogram of all traffic in ``table``: the sum of its ``model_version=<v>``
    rows (every row has a version; zeros when the segments have no version dimension)."""
    keys = [k for k in table.keys if str(k).startswith("model_version=")]
    if not keys:
        return np.zeros(FINE)
    return np.asarray(table.rows(keys).sum(axis=0), dtype=np.float64)


def wasserstein_fine(ref: FloatArray, cur: FloatArray) -> FloatArray:
    """Wasserstein-1 distance, in score units, between rows of fine histograms.

    >>> a = np.zeros((1, FINE)); b = np.zeros((1, FINE)); a[0, 10] = b[0, 50] = 1
    >>> wasserstein_fine(a, b).round(3).tolist()
    [0.248]
    """
    edges = (np.arange(FINE + 1) / FINE) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        fr = np.cumsum(ref, axis=1) / ref.sum(axis=1, keepdims=True)
        fc = np.cumsum(cur, axis=1) / cur.sum(axis=1, keepdims=True)
    gap = np.abs(fr - fc)[:, :-1] @ np.diff(edges)[1:]
    return np.asarray(np.nan_to_num(gap), dtype=np.float64)


def mean_score(counts: FloatArray) -> FloatArray:
    """Mean score of rows of fine histograms (bin midpoints; NaN for empty rows)."""
    mid = ((np.arange(FINE) + 0.5) / FINE) ** 2
    # row by row over a contiguous copy, not ``counts @ mid``: a matrix product's last
    # bits depend on the matrix's shape (BLAS blocking), so a segment's mean could
    # differ with the other segments of the pass -- and flip a rounded digit
    weighted = (np.ascontiguousarray(counts, dtype=np.float64) * mid).sum(axis=1)
    n = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(n > 0, weighted / n, np.nan), dtype=np.float64)
