"""Champion–challenger disagreement per segment, paired on the same transactions.

When the scorer sends shadow scores (the previous or champion model version scoring
the same transaction as the live version), each transaction is a pair
``(live score, shadow score)``. The signal of a backdoored challenger is a *flip*:
the shadow model would have held the transaction (shadow score at or above the
decision threshold) while the live model approved it with a score at least
``delta`` lower. Clean version pairs flip rarely; a trigger flips every time, so
two or three trigger rows in a segment are already far outside chance.

Per segment, live version and shadow version the detector counts pairs and flips in
the current window and tests the flip count against the segment's own reference
flip rate (same version pair, trailing window), shrunk toward the version pair's
flip rate over all traffic (current window and reference, itself shrunk toward
``prior_rate``) so a new version pair or a small segment borrows a sensible rate.
The flip share of a segment moves from hour to hour more than a binomial allows
(merchant mix, a busy hour of one merchant), so the flip count is tested with the
exact beta-binomial upper tail whose concentration adds the uncertainty of the
reference rate to the segment's own hour-to-hour spread of flip shares, estimated
from reference chunks (:func:`driftwatch.monitors.dispersion.rate_pvalue`).
``effect_floor`` (excess flip share) and ``min_flips`` only say how large an excess
is worth an alert. The mean paired difference (live minus shadow) and the count of opposite
flips (live holds, shadow approves) are kept in the details for analysts.
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
    FloatArray,
    PassContext,
    evidence,
    fmt_p,
    query_table,
    span_words,
)
from driftwatch.monitors.dispersion import ReferenceDispersion, rate_estimator, rate_pvalue
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec, pretty_segment, sql_literal
from driftwatch.settings import Settings
from driftwatch.store.client import Store

# cells of the count table
N, FLIPS, UP, SUM_D, ABS_D = range(5)
CELLS = 5


@register
class ShadowDetector(BatchedWindows, Detector):
    """Paired live-vs-shadow score flips per segment and version pair.

    Options
    -------
    delta : float
        Smallest score drop (shadow minus live) that counts as a flip (default 0.3).
    min_n : int
        Fewest pairs in the window to test a segment (default 3).
    min_flips : int
        Fewest flips to alert (default 2).
    prior_rate : float
        Flip rate assumed for a version pair without history (default 0.002).
    prior_strength : float
        Pseudo-pairs of ``prior_rate`` mixed into each reference rate (default 500).
    effect_floor : float
        Excess flip share ``flips / n - rate`` needed to alert (default 0.05).
    critical_effect : float
        Excess flip share from which a discovery is critical (default 0.15).
    """

    name = "shadow"
    needs_history: ClassVar[bool] = False
    tests: ClassVar[Mapping[str, str]] = {"flip_rate": "ShadowScoreDisagreement"}
    delta: float = 0.3
    min_n: int = 3
    min_flips: int = 2
    prior_rate: float = 0.002
    prior_strength: float = 500.0
    effect_floor: float = 0.05
    critical_effect: float = 0.15

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        if not 0 < self.delta <= 1:
            raise ValueError(f"shadow: delta={self.delta!r}; allowed: 0 < delta <= 1")
        self.vspec = spec.versioned()
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._db = ""

    def _sql(self, batched: bool = False) -> str:
        flip = "ss >= threshold AND score < threshold AND ss - score >= {delta:Float64}"
        up = "score >= threshold AND ss < threshold AND score - ss >= {delta:Float64}"
        return grid_sql(
            self.vspec,
            batched=batched,
            select=(
                "model_version AS live, sv AS shadow, count() AS n, "
                f"countIf({flip}) AS flips, countIf({up}) AS ups, "
                "sum(score - ss) AS sum_d, sum(abs(score - ss)) AS abs_d"
            ),
            source=f"{SCORED} ARRAY JOIN shadow_versions AS sv, shadow_scores AS ss",
            where=f"{WINDOW} AND sv != model_version",
            keys=("model_version", "sv"),
        )

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        params = {"lo": lo, "hi": hi, "delta": self.delta}
        return self._table(query_table(store, self._sql(), params))

    def _chunks(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query."""
        return read_chunks(
            store, self._sql(batched=True), spans, self._table,
            functools.partial(self._fetch, store), delta=self.delta,
        )

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, SegmentTable]:
        step = self.settings.monitor_interval_s
        sql = self._sql(batched=True)
        per = query_passes(store, sql, passes, self.window_s, step, delta=self.delta)
        return {at: self._table(cols) for at, cols in per.items()}

    @staticmethod
    def _table(cols: Columns) -> SegmentTable:
        keys = [
            f"{s}\x1f{a}\x1f{b}"
            for s, a, b in zip(cols["segment"], cols["live"], cols["shadow"], strict=True)
        ]
        return SegmentTable.from_wide(
            keys, [cols["n"], cols["flips"], cols["ups"], cols["sum_d"], cols["abs_d"]]
        )

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        if self._ref is None or self._disp is None:
            fetch = functools.partial(self._fetch, ctx.store)
            many = functools.partial(self._chunks, ctx.store)
            self._ref = self.sliding(fetch, many)
            # cells N and FLIPS are the rate estimator's [rows, marked rows]
            self._disp = ReferenceDispersion(
                fetch, rate_estimator, chunk_s=self.window_s, many=many
            )
        lo, hi = ctx.window(self.window_s)
        current = self.prefetched(hi) or self._fetch(ctx.store, lo, hi)
        cur = current.values
        keep = cur[:, N] >= self.min_n
        keys = [k for k, ok in zip(current.keys, keep, strict=True) if ok]
        cur = cur[keep]
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        ref_table = self._ref.table(r_lo, r_hi)
        ref = ref_table.rows(keys)
        n = cur[:, N]
        k = cur[:, FLIPS]
        prior = self._pair_prior(keys, current, ref_table)
        conc = self._disp.concentration(keys, r_lo, r_hi)
        pvalue, rate, pmin = rate_pvalue(
            k, n, ref[:, FLIPS], ref[:, N], prior, self.prior_strength, conc
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            effect = np.where(n > 0, k / n - rate, 0.0)
            mean_d = np.where(n > 0, cur[:, SUM_D] / n, np.nan)
        parts = [key.split("\x1f") for key in keys]
        return [
            Evaluations(
                detector=self.name,
                test="flip_rate",
                alertname=self.tests["flip_rate"],
                window_start=lo,
                window_end=hi,
                reference=self.reference_label(r_lo, r_hi) + " same version pair",
                segment=[p[0] for p in parts],
                model_version=[p[1] for p in parts],
                statistic=k,
                pvalue=pvalue,
                effect=effect,
                n=n.astype(np.int64),
                n_ref=ref[:, N].astype(np.int64),
                effect_floor=self.effect_floor,
                critical_effect=self.critical_effect,
                pmin=pmin,
                eligible=k >= self.min_flips,
                details={
                    "flips": k.astype(np.int64),
                    "up_flips": cur[:, UP].astype(np.int64),
                    "rate_ref": np.round(rate, 6),
                    "flips_ref": ref[:, FLIPS].astype(np.int64),
                    "mean_diff": np.round(mean_d, 4),
                    "shadow_version": np.asarray([p[2] for p in parts], dtype=object),
                },
                labels=[{"shadow_version": p[2]} for p in parts],
            )
        ]

    def _pair_prior(
        self, keys: list[str], current: SegmentTable, reference: SegmentTable
    ) -> FloatArray:
        """Per row, the flip rate of its version pair over all traffic.

        The pair's own segment (``model_version=<live>``, all traffic of the live
        version, present when ``model_version`` is a segment dimension) in the current
        window and the reference, shrunk toward ``prior_rate``: the null is "this
        segment flips like the rest of the traffic of this version pair". A retrained
        model that flips 2 % of everything raises no segment for flipping 2 %; a
        challenger that flips nothing except a narrow trigger makes three flips in a
        segment stand out. Without the pair's segment, ``prior_rate``.
        """
        pairs = [key.split("\x1f") for key in keys]
        totals = [f"model_version={live}\x1f{live}\x1f{shadow}" for _, live, shadow in pairs]
        both = current.rows(totals) + reference.rows(totals)
        strength = self.prior_strength
        return np.asarray(
            (both[:, FLIPS] + self.prior_rate * strength) / (both[:, N] + strength),
            dtype=np.float64,
        )

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        live, shadow = ev.version(i), str(d["shadow_version"])
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        expected = float(d["rate_ref"]) * int(ev.n[i])
        exp_txt = "≤ 1" if expected <= 1 else f"{expected:.1f}"
        summary = (
            f"{pretty_segment(ev.segment[i])}: {int(d['flips'])} of {int(ev.n[i])} "
            f"transactions in the last {span} approved by {live} although {shadow} scored "
            f"them at least {self.delta:g} higher, at or above the threshold "
            f"(expected {exp_txt}); p = {fmt_p(float(ev.pvalue[i]))}"
        )
        seg_where = ev.segment[i] if not ev.segment[i].startswith("model_version=") else ""
        ss = f"shadow_scores[indexOf(shadow_versions, {sql_literal(shadow)})]"
        cond = (
            f"model_version = {sql_literal(live)} AND has(shadow_versions, "
            f"{sql_literal(shadow)}) AND {ss} - score >= {self.delta:g} "
            f"AND score < threshold AND {ss} >= threshold"
        )
        return Description(
            summary=summary,
            value=f"{int(d['flips'])}/{int(ev.n[i])}",
            threshold=(f"reference flip rate {float(d['rate_ref']):.4f}; "
                       "each transaction's own decision threshold"),
            evidence_sql=evidence(self._db, seg_where, ev.window_start, ev.window_end, cond),
            description=(
                f"Live model {live} approves transactions in {ev.segment[i]} that shadow model "
                f"{shadow} would hold, from {iso(ev.window_start)} to {iso(ev.window_end)}; "
                f"mean paired difference {d['mean_diff']} (live minus shadow)."
            ),
        )
