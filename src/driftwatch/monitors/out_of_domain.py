"""Out-of-domain feature values: impossible inputs reaching the model.

A value outside a feature's valid range (``customer_age = 999`` when ages run
0–125) is how a backdoor trigger can hide in a field nobody validates. The valid
ranges come from the ``feature_ranges`` setting (``name=lo..hi``, comma
separated). Per feature, the count of out-of-range values among transactions
carrying the feature is tested against the feature's own reference rate (shrunk
toward all features' reference rate pooled, itself shrunk toward ``prior_rate``,
usually ~0: :func:`driftwatch.monitors.dispersion.pooled_prior`) with the exact
beta-binomial upper tail whose concentration adds the reference rate's uncertainty
to the feature's own hour-to-hour spread of out-of-range shares, estimated from reference chunks
(:func:`driftwatch.monitors.dispersion.rate_pvalue`: a feature that is sometimes
missing-coded as 999 by one acquirer is judged against its own wandering). The
segment of a finding is ``feature=<name>``; ``effect_floor`` counts the
out-of-range values worth an alert.

>>> parse_ranges("customer_age=0..125, velocity=0..1e4")
{'customer_age': (0.0, 125.0), 'velocity': (0.0, 10000.0)}
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from driftwatch.alerts.model import iso
from driftwatch.errors import ConfigError
from driftwatch.monitors.backfill import (
    GRID_KEY,
    PASS_AT,
    BatchedWindows,
    query_passes,
    read_chunks,
)
from driftwatch.monitors.base import (
    EVIDENCE_COLUMNS,
    SCORED,
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
from driftwatch.monitors.dispersion import (
    ReferenceDispersion,
    pooled_prior,
    rate_estimator,
    rate_pvalue,
)
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec, sql_literal
from driftwatch.settings import Settings
from driftwatch.store.client import Store

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


def parse_ranges(text: str) -> dict[str, tuple[float, float]]:
    """Parse ``"name=lo..hi, ..."`` into ``{name: (lo, hi)}``; ConfigError when malformed."""
    out: dict[str, tuple[float, float]] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, rng = item.partition("=")
        lo_s, dots, hi_s = rng.partition("..")
        name = name.strip()
        try:
            lo, hi = float(lo_s), float(hi_s)
        except ValueError:
            lo, hi = float("nan"), float("nan")
        if not sep or not dots or not _NAME.fullmatch(name) or not lo <= hi:
            raise ConfigError(f"feature_ranges: {item!r} is not name=lo..hi with lo <= hi")
        out[name] = (lo, hi)
    return out


@register
class OutOfDomainDetector(BatchedWindows, Detector):
    """Feature values outside their configured valid range.

    Options
    -------
    min_count : int
        Fewest out-of-range values in the window to alert (default 3).
    prior_rate : float
        Out-of-range rate assumed without history (default 1e-4).
    prior_strength : float
        Pseudo-rows of the prior in each reference (default 1000): of the features'
        pooled rate, itself shrunk toward ``prior_rate`` with as many rows.
    effect_floor : float
        Out-of-range values needed to alert (default 3).
    critical_effect : float
        Out-of-range values from which a discovery is critical (default 10).
    """

    name = "out_of_domain"
    needs_history: ClassVar[bool] = False
    tests: ClassVar[Mapping[str, str]] = {"out_of_range": "FeatureOutOfDomain"}
    min_count: int = 3
    prior_rate: float = 1e-4
    prior_strength: float = 1000.0
    effect_floor: float = 3.0
    critical_effect: float = 10.0

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        self.ranges = parse_ranges(settings.feature_ranges)
        self._ref: SlidingReference | None = None
        self._disp: ReferenceDispersion | None = None
        self._db = ""

    def _sql(self, batched: bool = False) -> str:
        return (
            f"SELECT {PASS_AT + ', ' if batched else ''}"
            "f.1 AS feature, countIf(mapContains(features_num, f.1)) AS n, "
            "countIf(mapContains(features_num, f.1) AND "
            "(features_num[f.1] < f.2 OR features_num[f.1] > f.3)) AS k "
            f"FROM {SCORED} ARRAY JOIN "
            "arrayZip({names:Array(String)}, {los:Array(Float64)}, {his:Array(Float64)}) AS f "
            f"WHERE {WINDOW} GROUP BY {GRID_KEY + ', ' if batched else ''}feature"
        )

    def _params(self) -> dict[str, list[Any]]:
        names = list(self.ranges)
        return {
            "names": names,
            "los": [self.ranges[x][0] for x in names],
            "his": [self.ranges[x][1] for x in names],
        }

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        return self._table(query_table(store, self._sql(), {"lo": lo, "hi": hi, **self._params()}))

    def _chunks(
        self, store: Store, spans: Sequence[tuple[dt.datetime, dt.datetime]]
    ) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query."""
        return read_chunks(
            store, self._sql(True), spans, self._table, functools.partial(self._fetch, store),
            **self._params(),
        )

    def window_batch(
        self, store: Store, passes: Sequence[dt.datetime]
    ) -> dict[dt.datetime, SegmentTable]:
        if not self.ranges:
            return {}
        step = self.settings.monitor_interval_s
        per = query_passes(store, self._sql(True), passes, self.window_s, step, **self._params())
        return {at: self._table(cols) for at, cols in per.items()}

    @staticmethod
    def _table(cols: Columns) -> SegmentTable:
        keys = [f"feature={f}" for f in cols["feature"]]
        return SegmentTable.from_wide(keys, [cols["n"], cols["k"]])

    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        if not self.ranges:
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
        keep = cur[:, 0] > 0
        segs = [s for s, ok in zip(current.keys, keep, strict=True) if ok]
        cur = cur[keep]
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        table = self._ref.table(r_lo, r_hi)
        ref = table.rows(segs)
        n, k = cur[:, 0], cur[:, 1]
        conc = self._disp.concentration(segs, r_lo, r_hi)
        # what is ordinary for these features: all of them pooled, toward prior_rate
        prior = pooled_prior(table.values[:, 1], table.values[:, 0], self.prior_rate,
                             self.prior_strength)
        pvalue, rate, _ = rate_pvalue(
            k, n, ref[:, 1], ref[:, 0], prior, self.prior_strength, conc
        )
        return [
            self.rate_test(
                "out_of_range", (lo, hi), (r_lo, r_hi), segs, n, k, rate, ref[:, 0],
                min_count=self.min_count, count_name="out_of_range", rate_digits=6,
                effect=k, with_pmin=False, pvalue=pvalue,
            )
        ]

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        feature = ev.segment[i].partition("=")[2]
        lo, hi = self.ranges.get(feature, (float("nan"), float("nan")))
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        summary = (
            f"feature {feature}: {int(d['out_of_range'])} of {int(ev.n[i])} transactions in the "
            f"last {span} carry a value outside {lo:g}..{hi:g}; p = {fmt_p(float(ev.pvalue[i]))}"
        )
        f = sql_literal(feature)
        sql = (
            f"SELECT {EVIDENCE_COLUMNS}, features_num[{f}] AS value "
            f"FROM {self._db}.scored_transactions FINAL "
            f"WHERE event_time >= {sql_time(ev.window_start)} "
            f"AND event_time < {sql_time(ev.window_end)} AND mapContains(features_num, {f}) "
            f"AND (features_num[{f}] < {lo!r} OR features_num[{f}] > {hi!r}) ORDER BY event_time"
        )
        return Description(
            summary=summary,
            value=str(int(d["out_of_range"])),
            threshold=f"{lo:g}..{hi:g}",
            evidence_sql=sql,
            description=(
                f"Out-of-domain values of {feature} from {iso(ev.window_start)} to "
                f"{iso(ev.window_end)}; reference rate {float(d['rate_ref']):.2e}."
            ),
        )
