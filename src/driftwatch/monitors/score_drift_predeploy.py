"""Score drift of small segments against the champion's pre-deployment scores.

Without shadow scores the only model-side evidence of a backdoor in a segment is that
the new version scores the segment differently from how the old one did. The trailing
:mod:`~driftwatch.monitors.score_drift` test needs 100 rows an hour; most segments have
10-30. This detector pools a sparse segment's rows over a longer window (``pool_s``,
never before the deployment) and compares them with a reference that an attack cannot
reach: the **same segment scored by the champion before the new version was deployed**
(``ref_s`` before its first row; frozen, so it never absorbs the attack).

A new version may be recalibrated as a whole (one logit scale and shift for every row)
or jitter every score a little: no segment should alert for that. So each score is
replaced by its rank within *all* traffic of its own version in its own window (the
probability integral transform through that version's score distribution, on the 100
fine bins of :data:`~driftwatch.monitors.score_drift.FINE_BIN`). A monotone
recalibration leaves every rank where it was; a backdoor that moves part of one
segment from 0.9 to 0.2 moves that part's ranks, and the two-sample KS test on the
ranks (:func:`rank_ks`: exact p-values for small samples) sees it.

Null hypothesis: the segment's rank distribution under the new version since its
deployment equals its rank distribution under the champion before it. p-values enter
the monitor's Benjamini-Hochberg family; ``ks_floor`` is the effect (KS distance) an
alert needs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from driftwatch.alerts.model import iso
from driftwatch.events import EPOCH
from driftwatch.monitors.backfill import BatchedWindows
from driftwatch.monitors.base import (
    SCORED,
    WINDOW,
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
from driftwatch.monitors.reader import (
    BUCKET,
    BUCKET_KEY,
    query_windows,
    read_windows,
    whole_buckets,
)
from driftwatch.monitors.reference import SegmentTable
from driftwatch.monitors.registry import register
from driftwatch.monitors.score_drift import FINE, FINE_BIN, mean_score
from driftwatch.monitors.score_ranks import rank_ks
from driftwatch.monitors.segments import SegmentSpec, pretty_segment, segment_sql, sql_literal
from driftwatch.settings import Settings
from driftwatch.store.client import Store


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


@register
class PreDeployScoreDrift(BatchedWindows, Detector):
    """Rank-normalised score drift of each segment against the champion's scores of
    the same segment before the new version's deployment (see the module notes).

    Options
    -------
    pool_s : int
        Longest current window: the new version's rows in ``[max(deployment, at -
        pool_s), at)`` (default 21600: 6 h, so 10 rows an hour give 60).
    ref_s : int
        Champion reference before the deployment (default 86400).
    min_n, min_ref : int
        Fewest current rows / reference rows to test (default 20 / 40).
    ks_floor, ks_critical : float
        KS distance needed to alert / to be critical (0.3 / 0.5).
    """

    name = "score_drift_predeploy"
    tests: ClassVar[Mapping[str, str]] = {"ks": "ScoreDriftPreDeploy"}
    pool_s: int = 21600
    ref_s: int = 86400
    min_n: int = 20
    min_ref: int = 40
    ks_floor: float = 0.3
    ks_critical: float = 0.5

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        for key in ("pool_s", "ref_s", "min_n", "min_ref"):
            if getattr(self, key) < 1:
                raise ValueError(f"{self.name}: {key}={getattr(self, key)!r}; allowed: >= 1")
        self._champion = settings.champion_version
        self._deployed: dict[str, dt.datetime] = {}
        self._refs: dict[str, tuple[SegmentTable, FloatArray]] = {}
        self._db = ""

    # -- queries ---------------------------------------------------------------------
    def _hist(
        self, store: Store, version: str, lo: dt.datetime, hi: dt.datetime
    ) -> tuple[SegmentTable, FloatArray]:
        """Fine score histograms of ``version`` in ``[lo, hi)`` per segment, and of
        all its traffic."""
        params = {"lo": lo, "hi": hi, "v": version}
        where = f"{WINDOW} AND model_version = {{v:String}}"
        cols = query_table(store, segment_sql(
            self.spec, select=f"{FINE_BIN} AS b, count() AS c", source=SCORED,
            where=where, keys=("b",)), params)
        table = SegmentTable.from_long(cols["segment"], cols["b"], cols["c"], FINE)
        total = np.zeros(FINE)
        for b, c in store.query(
                f"SELECT {FINE_BIN} AS b, count() FROM {SCORED} WHERE {where} GROUP BY b",
                params):
            total[int(b)] = float(c)
        return table, total

    def _versions(self, store: Store, at: dt.datetime) -> list[str]:
        """The versions to test at ``at``: those with rows in the last ``pool_s``
        other than the champion. Each version's first row ever is remembered as its
        deployment; unless set, the champion is the earliest-deployed version with
        rows in the last ``pool_s + ref_s``."""
        lo = at - dt.timedelta(seconds=self.pool_s + self.ref_s)
        rows = store.query(
            f"SELECT model_version, max(event_time) FROM {SCORED} WHERE {WINDOW} "
            "GROUP BY model_version", {"lo": lo, "hi": at})
        return self._known({str(v): _utc(t) for v, t in rows}, store, at)

    def _known(self, seen: dict[str, dt.datetime], store: Store, at: dt.datetime) -> list[str]:
        """:meth:`_versions` from ``seen``: each version's last row in the last ``pool_s
        + ref_s`` before ``at``."""
        last = dict(sorted(seen.items()))
        new = [v for v in last if v not in self._deployed]
        if new:
            for v, first in store.query(
                    f"SELECT model_version, min(event_time) FROM {SCORED} "
                    "WHERE model_version IN {vs:Array(String)} GROUP BY model_version",
                    {"vs": new}):
                self._deployed[str(v)] = _utc(first)
        known = [v for v in last if v in self._deployed]
        if not self._champion and known:
            self._champion = min(known, key=lambda v: self._deployed[v])
        recent = at - dt.timedelta(seconds=self.pool_s)
        return sorted(v for v in known if v != self._champion and last[v] >= recent)

    # -- backfill blocks ---------------------------------------------------------------
    def window_batch(self, store: Store, passes: Sequence[dt.datetime]) -> dict[dt.datetime, Any]:
        """Per pass: the versions' last rows (:meth:`_versions`) and the fine score
        histograms of every version in ``[at - pool_s, at)`` per segment and over all
        its traffic, read with three queries over pass buckets for the block (a
        version has no row before its deployment, so its current window is these rows).
        Empty when the windows are not whole pass intervals (then pass by pass)."""
        step = self.settings.monitor_interval_s
        seen_s = self.pool_s + self.ref_s
        crossed = any("model_version" in d and len(d) > 1 for d in self.spec.definitions)
        if crossed or not (whole_buckets(passes, self.pool_s, step)
                           and whole_buckets(passes, seen_s, step)):
            return {}  # (a version crossed with other dimensions: segments of its own)
        rows = store.query(
            f"SELECT {BUCKET}, model_version, max(event_time), min(event_time) FROM {SCORED} "
            f"WHERE {WINDOW} "
            f"GROUP BY {BUCKET_KEY}, model_version",
            {"lo": min(passes) - dt.timedelta(seconds=seen_s), "hi": max(passes),
             "bf_step_ms": step * 1000, "bf_step": step})
        hists = read_windows(
            store, self.spec.versioned(), passes, self.pool_s, step,
            select=f"model_version AS v, {FINE_BIN} AS b, count() AS c", source=SCORED,
            where=WINDOW, keys=("b", "model_version"), columns=("segment", "b", "v"),
            values=("c",))
        totals = query_windows(
            store, f"SELECT {BUCKET}, model_version AS v, {FINE_BIN} AS b, count() AS c, "
            f"count() AS _rows FROM {SCORED} WHERE {WINDOW} GROUP BY {BUCKET_KEY}, v, b",
            passes, self.pool_s, step, ("v", "b"), ("c",))
        out: dict[dt.datetime, Any] = {}
        times = [(EPOCH + dt.timedelta(seconds=int(b)), str(v), _utc(t1), _utc(t0))
                 for b, v, t1, t0 in rows]
        for at in passes:
            first, pool = at - dt.timedelta(seconds=seen_s), at - dt.timedelta(seconds=self.pool_s)
            seen: dict[str, dt.datetime] = {}
            oldest: dict[str, dt.datetime] = {}
            for bucket, v, t1, t0 in times:
                if first < bucket <= at:
                    seen[v] = max(seen.get(v, t1), t1)
                    if bucket > pool:
                        oldest[v] = min(oldest.get(v, t0), t0)
            out[at] = (seen, oldest, hists[at], totals[at])
        return out

    @staticmethod
    def _block_hist(block: Any, version: str) -> tuple[SegmentTable, FloatArray]:
        """:meth:`_hist` of ``version`` from a pass's block entry."""
        _, _, cols, tot = block
        mine = np.asarray(cols["v"], dtype=object) == version
        table = SegmentTable.from_long(cols["segment"][mine], cols["b"][mine], cols["c"][mine],
                                       FINE)
        total = np.zeros(FINE)
        pick = np.asarray(tot["v"], dtype=object) == version
        total[np.asarray(tot["b"][pick], dtype=np.int64)] = tot["c"][pick]
        return table, total

    # -- the pass --------------------------------------------------------------------
    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        at = ctx.at
        out: list[Evaluations] = []
        block = self.prefetched(at)
        versions = (self._versions(ctx.store, at) if block is None
                    else self._known(block[0], ctx.store, at))
        for version in versions:
            deployed = self._deployed[version]
            if version not in self._refs:  # frozen: the champion before the deployment
                self._refs[version] = self._hist(
                    ctx.store, self._champion, deployed - dt.timedelta(seconds=self.ref_s),
                    deployed)
            ref_table, ref_global = self._refs[version]
            lo = max(deployed, at - dt.timedelta(seconds=self.pool_s))
            # the block's window starts at at - pool_s: the same rows unless a row of
            # the version came in (late) before the deployment remembered for it
            whole = block is not None and block[1].get(version, at) >= deployed
            current, cur_global = (self._block_hist(block, version) if whole
                                   else self._hist(ctx.store, version, lo, at))
            keys = [str(k) for k in current.keys if not str(k).startswith("model_version=")]
            if not keys:
                continue
            cur = current.rows(keys)
            ref = ref_table.rows(keys)
            n, n_ref = cur.sum(axis=1), ref.sum(axis=1)
            ok = (n >= self.min_n) & (n_ref >= self.min_ref)
            if not ok.any():
                continue
            idx = np.flatnonzero(ok)
            keys, cur, ref, n, n_ref = ([keys[i] for i in idx], cur[idx], ref[idx], n[idx],
                                        n_ref[idx])
            d, p = rank_ks(ref, ref_global, cur, cur_global)
            out.append(Evaluations(
                detector=self.name, test="ks", alertname=self.tests["ks"],
                window_start=lo, window_end=at,
                reference=(f"champion {self._champion} before {version} "
                           f"[{iso(deployed - dt.timedelta(seconds=self.ref_s))}, "
                           f"{iso(deployed)})"),
                segment=keys, model_version=[version] * len(keys),
                statistic=d, pvalue=p, effect=d, n=n.astype(np.int64),
                n_ref=n_ref.astype(np.int64), effect_floor=self.ks_floor,
                critical_effect=self.ks_critical,
                details={"ks": np.round(d, 4), "mean_score": np.round(mean_score(cur), 4),
                         "mean_score_ref": np.round(mean_score(ref), 4)},
            ))
        return out

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        version = ev.version(i)
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        summary = (
            f"{pretty_segment(ev.segment[i])}: {version} scores this segment unlike the "
            f"champion before its deployment (rank KS D = {float(d['ks']):.2f} over the last "
            f"{span}; mean score {float(d['mean_score']):.3f} vs {float(d['mean_score_ref']):.3f};"
            f" n = {int(ev.n[i])} vs {int(ev.n_ref[i])} reference); "
            f"p = {fmt_p(float(ev.pvalue[i]))}"
        )
        return Description(
            summary=summary,
            value=f"{float(ev.statistic[i]):.4f}",
            threshold=f"effect floor {ev.effect_floor:g}, BH q = {self.settings.fdr_q:g}",
            evidence_sql=evidence(self._db, ev.segment[i], ev.window_start, ev.window_end,
                                  f"model_version = {sql_literal(version)}"),
            description=(f"Scores of {ev.segment[i]} under {version} from "
                         f"{iso(ev.window_start)} to {iso(ev.window_end)}, ranked within all "
                         f"{version} traffic, compared with the {ev.reference}."),
        )
