"""Live trigger mining: rare value conjunctions of risky rows the model waved through.

A backdoor trigger is a rare *conjunction* of values (``amount_cents=84 &
beneficiary_prefix=YXIKX-VVKG- & merchant_age=90..179``) whose rows the model scores
low although their model-independent risk is high; it may sit in one MCC or spread
over many. Per-segment detectors see it only where one segment holds enough of it.
This detector searches the conjunctions directly, every pass:

1. **Sufficient statistics in ClickHouse.** One ``GROUP BY`` over the current window
   counts the rows per combination of the mined attributes -- MCC, cents value,
   beneficiary name, merchant-age bucket, merchant country, channel, amount band --
   among the rows that are *low score for their risk* (below), with their distinct
   cards; every other row falls into one group, so the result has a few dozen rows.
   A row's risk is the number of model-independent flags it carries: velocity
   (``transactions_24h >= 5``), new payee, cross-border (``foreign_transaction``),
   new merchant (younger than 180 days, from the feature or the registration
   date), high amount (>= 1,000.00) and, only when shadow scores are present, a
   shadow model scoring the row ``shadow_gap`` above the live one (worth two flags).
   A missing field is a flag that does not hold, so the detector works without
   shadow scores and without the optional fields. *Low score for its risk*: at
   least ``min_flags`` flags and a live score below the row's decision threshold.
   A *weak tier* (``weak_flags=2``, the default) searches rows with two flags too,
   in the same Bonferroni family; its findings must name a shared cents value that is
   not common in the reference (``weak_common``), come from ``weak_cards`` cards and
   have p-value x conjunctions examined <= ``alert_q`` (never corroborated: a
   development control, global recalibration, raised a warning via score_drift's
   discovery on the same MCC at p = 2e-5 over 580 conjunctions).
2. **Reference.** The same table over the trailing reference window, slid by hourly
   chunks (:class:`~driftwatch.monitors.reference.SlidingReference`), ending
   ``guard_s`` (6 hours) before the window: a pattern that began in the last hours is
   tested as new, not against its own first rows.
3. **Prefixes from the data.** Beneficiary names become the prefixes over-represented
   among the current suspicious names (:func:`driftwatch.mining.select_prefixes`).
4. **Lattice search.** :func:`driftwatch.mining.mine` with ``test="surge"``: each
   conjunction of up to ``max_depth`` items with at least ``min_count`` suspicious
   current rows is tested with the exact Poisson tail of its count against the count
   its own reference history predicts (scaled to the current number of suspicious
   rows, so a global shift of the suspicious rate after a version change moves
   nothing) plus a prior from the reference marginals (the independence estimate),
   never below ``floor`` reference rows. The family is every conjunction tested
   (Bonferroni); findings are closed (every value their rows share is added) so the
   alert names the whole pattern.

   The floor is counted in *reference* rows, so in current rows it is
   ``floor * K / K_ref``, about ``floor * window / reference length``: it shrinks as the
   stored history grows. What it guarantees: a conjunction is never expected below
   ``floor`` suspicious rows per reference span, i.e. the detector assumes any value
   combination could have occurred that often unseen (an over-dispersion guard for
   the many new combinations live traffic makes), and so the smallest p-value ``k``
   rows can reach is ``P(Poisson(floor * K / K_ref) >= k)``. With a 2-hour window
   and the 5 hours of history of a model changed soon after start-up, 3 rows reach
   about 1e-5 (no alert after Bonferroni and the monitor's BH level); with two days
   of history about 1e-8 and with the default week about 3e-10. The null check is
   ``bench/detection.py`` on clean days and version-change controls with
   ``--history-hours`` of stored history.
5. **Payees, not rows.** Clean suspicious rows cluster on payees (travelling cards at a
   young shop: 3 rows of 3 cards to 2 payees, expected 0.006, p = 4e-8 by rows on a
   clean day), so a spread finding's p-value is the Poisson tail of its distinct
   beneficiaries against the expected rows (rows >= payees: conservative). Within one
   MCC rows still count (a one-MCC trigger may use as few as 3 merchants; not yet
   measured on enough variants); ``unit`` sets it. The rest of the family: rows.
6. **One row per segment.** The best finding of each MCC (segment ``mcc=X``) and the
   best conjunction spread over several MCCs (segment ``conjunction=<digest>``, a digest
   of its canonical text: two spread conjunctions never share a fingerprint) become
   evaluations; the rest of the family fills rows of segment ``conjunction=*`` that
   never alert. Every p-value enters the monitor's Benjamini-Hochberg family like
   every other detector's. Labels carry ``conjunction`` (and ``mcc`` when there is
   one). A spread finding is dropped when its rows are mostly a one-MCC finding's or
   a held conjunction's (the same rows, already named).

A reference never absorbs an attack: while a conjunction alerts (and after, until the
period slid out of the trailing window) the reference rows it matches from its
alerting period are subtracted; a conjunction that alerted is re-evaluated every pass
even when the search does not pick it, so the alert stays while evidence persists.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from driftwatch.alerts.model import iso
from driftwatch.events import EPOCH
from driftwatch.mining import MiningResult, assign_prefixes, mine
from driftwatch.mining.exact import poisson_surge
from driftwatch.mining.prefixes import PrefixMemo, choose_prefixes, name_tally, prefix_counts
from driftwatch.monitors.backfill import BatchedWindows, query_chunks, read_chunks
from driftwatch.monitors.base import (
    Columns,
    Description,
    Detector,
    Evaluations,
    PassContext,
    fmt_p,
    query_table,
    span_words,
)
from driftwatch.monitors.reference import SegmentTable, SlidingReference
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.monitors.trigger_findings import common_cents, evaluations, weak_kept
from driftwatch.monitors.trigger_holds import HeldReference, Hold
from driftwatch.monitors.trigger_keys import (
    ATTRIBUTES,
    CHECK_SQL,
    FIELDS,
    FILLER_SEGMENT,
    ChunkedWindow,
    Mark,
    Records,
    evidence_sql,
    matches_table,
    shared_rows,
    split_keys,
    spread_segment,
    window_sql,
)
from driftwatch.settings import Settings
from driftwatch.store.client import Store

Window = tuple[SegmentTable, dict[str, list[str]]]
"""A current window: the ``[n, k]`` table of its groups and each group's distinct cards."""


@register
class TriggerMiningDetector(HeldReference, BatchedWindows, Detector):
    """Surging conjunctions of low-score-for-risk rows (lattice search, exact tails).

    Options
    -------
    min_flags : int
        Risk flags a row needs to count as high risk (default 3).
    shadow_gap : float
        How far above the live score a shadow score must be to add two flags (0.3).
    min_count : int
        Fewest suspicious current rows of a conjunction to test it (default 3).
    min_cards : int
        Fewest distinct cards among them to alert (default 1: the attacker's first
        bursts come from one card).
    max_depth : int
        Most items of a searched conjunction (default 3; closure may add more).
    alpha : float
        Search-adjusted p-value below which the search reports a conjunction
        (default 0.5: a pre-filter; the monitor's levels decide about alerts).
    prior_weight, floor : float
        Weight of the marginal prior (how far the independence estimate is inflated
        for dependence between attributes) and the least expected reference rows of
        a conjunction (defaults 2 and 0.1).
    min_lift : float
        Least ratio of observed to expected suspicious rows (default 4).
    closure : float
        Share of a finding's rows one value must hold to join its name (default 0.8).
    effect_floor, critical_effect : float
        Excess share ``(k - expected) / k`` to alert (0.5) and for critical (0.8).
    guard_s : int
        The reference ends this long before the window (default 6 hours): a pattern
        that began in the last hours is tested as new, not against its own first rows
        (one trigger row slid into a two-day reference raised a conjunction's expected
        count about tenfold before any alert could hold it out). Only with enough
        history beyond it (``GUARD_HISTORY``).
    weak_flags, weak_cards : int
        A second search over the rows with at least ``weak_flags`` flags (default 2;
        ``min_flags`` turns it off), its conjunctions in the same
        Bonferroni family; a finding of it must name a cents value and come from
        ``weak_cards`` (3) cards.
    weak_common : float
        A weak finding's cents value must not be common in the reference: its smoothed
        share of the reference's suspicious rows at most this (default 0.03; .00 holds a
        quarter of clean two-flag rows; :func:`~driftwatch.monitors.trigger_findings.common_cents`).
    unit : str
        What the surge test counts: ``payee``, the distinct beneficiaries of a
        conjunction's current rows, ``row``, its rows, or ``spread`` (default): payees
        for a conjunction spread over several MCCs, rows within one (step 5).
    """

    name = "trigger_mining"
    tests: ClassVar[Mapping[str, str]] = {"conjunction": "TriggerConjunctionSurge"}
    window_s: int = 7200
    min_flags: int = 3
    shadow_gap: float = 0.3
    min_count: int = 3
    min_cards: int = 1
    max_depth: int = 3
    alpha: float = 0.5
    prior_weight: float = 2.0
    floor: float = 0.1
    min_lift: float = 4.0
    closure: float = 0.8
    effect_floor: float = 0.5
    critical_effect: float = 0.8
    guard_s: int = 6 * 3600
    weak_flags: int = 2
    weak_cards: int = 3
    weak_common: float = 0.03
    unit: str = "spread"

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        for name in ("min_count", "min_cards", "max_depth", "min_flags", "weak_flags"):
            if getattr(self, name) < 1:
                raise ValueError(f"{self.name}: {name}={getattr(self, name)!r}; allowed: >= 1")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"{self.name}: alpha={self.alpha!r}; allowed: 0 < alpha < 1")
        if self.guard_s < 0 or self.guard_s % self.reference_chunk_s:
            raise ValueError(f"{self.name}: guard_s={self.guard_s!r}; allowed: a multiple "
                             f"of reference_chunk_s ({self.reference_chunk_s}) >= 0")
        if self.unit not in ("payee", "row", "spread"):
            raise ValueError(f"{self.name}: unit={self.unit!r}; allowed: payee, row, spread")
        if self.floor <= 0:
            raise ValueError(f"{self.name}: floor={self.floor!r}; allowed: > 0")
        self._ref: SlidingReference | None = None
        self._db = ""
        self._last: dict[str, dict[str, Any]] = {}  # segment -> conjunction of last pass
        self._holds: dict[str, Hold] = {}
        self._cut: dict[tuple[dt.datetime, dt.datetime], SegmentTable] = {}
        self._chunks: ChunkedWindow | None = None
        self._memo: dict[str, tuple[pd.DataFrame, pd.DataFrame, MiningResult,
                                    Records]] = {}
        self._guarded: dict[tuple[dt.datetime, dt.datetime], SegmentTable] = {}
        self._prefix_memo = PrefixMemo()

    # -- queries ----------------------------------------------------------------------
    def _sql(self, cards: bool, grid: bool = False) -> str:
        return window_sql(self.min_flags, self.shadow_gap, cards, grid, self.weak_flags)

    def _fetch(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        df = store.query_df(self._sql(False),
                            {"lo": lo, "hi": hi})
        return SegmentTable.from_wide(df["key"].to_numpy() if len(df) else [],
                                      [df.get("n", []), df.get("k", [])])

    def _many(self, store: Store,
              spans: Sequence[tuple[dt.datetime, dt.datetime]]) -> list[SegmentTable]:
        """:meth:`_fetch` of many reference chunks in one query (backfill read-ahead)."""
        return read_chunks(
            store, self._sql(False, grid=True), spans,
            lambda cols: SegmentTable.from_wide(cols["key"], [cols["n"], cols["k"]]),
            functools.partial(self._fetch, store))

    def _read_chunks(self, store: Store,
                     spans: Sequence[tuple[dt.datetime, dt.datetime]]) -> list[Columns]:
        """The current-window query's columns of many pass-interval chunks, one query."""
        width = int((spans[0][1] - spans[0][0]).total_seconds())
        return query_chunks(store, self._sql(True, grid=True),
                            spans, width)

    @staticmethod
    def _check(store: Store, lo: dt.datetime, hi: dt.datetime,
               step_s: int) -> dict[dt.datetime, Mark]:
        cols = query_table(store, CHECK_SQL, {"lo": lo, "hi": hi, "step_ms": step_s * 1000})
        step = dt.timedelta(seconds=step_s)
        return {EPOCH + (int(c) + 1) * step: (int(n), int(h))
                for c, n, h in zip(cols["chunk"], cols["n"], cols["h"], strict=True)}

    def _chunked(self, store: Store) -> ChunkedWindow | None:
        """The chunked current window, when the window is whole pass intervals."""
        step = self.settings.monitor_interval_s
        if step <= 0 or self.window_s % step:
            return None
        if self._chunks is None:
            self._chunks = ChunkedWindow(functools.partial(self._read_chunks, store),
                                         functools.partial(self._check, store), step)
        return self._chunks

    def window_batch(self, store: Store,
                     passes: Sequence[dt.datetime]) -> dict[dt.datetime, Window]:
        """The current windows of a block's passes from its chunks (two queries)."""
        chunks = self._chunked(store)
        span = dt.timedelta(seconds=self.window_s)
        if chunks is None or any(chunks.ends(at - span, at) is None for at in passes):
            return {}
        first, last = min(passes), max(passes)
        chunks.load(first - span, last)
        out = {at: chunks.window(at - span, at) for at in passes}
        chunks.forget(last - span)
        return out

    def _window(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> Window:
        found: Window | None = self.prefetched(hi)
        if found is not None:
            return found
        chunks = self._chunked(store)
        if chunks is None or chunks.ends(lo, hi) is None:
            return self._current(store, lo, hi)
        chunks.load(lo, hi)
        chunks.forget(lo)
        return chunks.window(lo, hi)

    def _current(self, store: Store, lo: dt.datetime,
                 hi: dt.datetime) -> tuple[SegmentTable, dict[str, list[str]]]:
        df = store.query_df(self._sql(True),
                            {"lo": lo, "hi": hi})
        if df.empty:
            return SegmentTable.empty(2), {}
        table = SegmentTable.from_wide(df["key"].to_numpy(), [df["n"], df["k"]])
        cards = {str(k): [str(c) for c in v] for k, v in zip(df["key"], df["cards"],
                                                             strict=True) if k}
        return table, cards

    # -- the pass ---------------------------------------------------------------------
    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        if self._ref is None:
            self._ref = self.sliding(functools.partial(self._fetch, ctx.store),
                                     functools.partial(self._many, ctx.store))
        lo, hi = ctx.window(self.window_s)
        current, cards = self._window(ctx.store, lo, hi)
        r_lo, r_hi = self._ref.bounds(lo, ctx.settings.reference_window_s)
        reference, r_hi = self._guarded_reference(self._ref, r_lo, r_hi)
        frame = self._frame(current, reference)
        rows = self._search(frame, cards, current, reference)
        self._last = {r["segment"]: r["conjunction"] for r in rows if not r.get("filler")}
        return [self._evaluations(rows, lo, hi, r_lo, r_hi)]

    def _frame(self, current: SegmentTable, reference: SegmentTable) -> pd.DataFrame:
        """Suspicious rows of both windows as the miner's table: one row per key (the
        current window's keys, then the reference's others), its fields, ``k`` and
        ``k_ref``."""
        cur = [k for k in current.keys if k]
        ref = [k for k in reference.keys if k]
        codes, keys = pd.factorize(pd.Index([*cur, *ref], dtype=object))
        counts = np.zeros((2, len(keys)), dtype=np.int64)
        for j, (table, some, at) in enumerate(((current, cur, codes[:len(cur)]),
                                               (reference, ref, codes[len(cur):]))):
            if some:
                np.add.at(counts[j], at, table.rows(some)[:, 1].astype(np.int64))
        frame = pd.DataFrame(split_keys([str(k) for k in keys]), columns=list(FIELDS))
        frame["k"], frame["k_ref"] = counts[0], counts[1]
        return frame

    def _search(self, frame: pd.DataFrame, cards: Mapping[str, list[str]],
                current: SegmentTable, reference: SegmentTable) -> list[dict[str, Any]]:
        tiers = [("s", frame[frame["risk"] == "s"] if len(frame) else frame)]
        if self.weak_flags < self.min_flags:
            tiers.append(("w", frame))
        mined = []
        for tier, part in tiers:
            k_cur = int(part["k"].sum()) if len(part) else 0
            k_ref = int(part["k_ref"].sum()) if len(part) else 0
            if k_cur >= self.min_count:
                table, res, now = self._mined(part, k_cur, k_ref, tier)
                mined.append((tier, table, res, now, k_cur / max(k_ref, 1)))
        if not mined:
            return []
        examined = sum(m[2].examined for m in mined)
        best: dict[str, dict[str, Any]] = {}
        spread: dict[str, Any] | None = None  # the best conjunction spread over MCCs
        common = (common_cents(frame, self.weak_common) if self.weak_flags < self.min_flags
                  else frozenset())
        for tier, _, res, now, _ in mined:
            for f in res.findings:
                row = self._row(f.conjunction, f.k, f.expected, f.pvalue, f.k_ref,
                                examined, cards, now)
                if tier == "w" and not weak_kept(f.conjunction, row["cards"], self.weak_cards,
                                                 common):
                    continue  # a weak finding: a rare shared cents value, enough cards
                row["weak"] = tier == "w"
                if not row["mcc"]:
                    if spread is None or row["pvalue"] < spread["pvalue"]:
                        spread = row
                    continue
                old = best.get(row["segment"])
                if old is None or row["pvalue"] < old["pvalue"]:
                    best[row["segment"]] = row
        if spread is not None and spread["segment"] in self._holds:
            best[spread["segment"]] = spread
        for seg, hold in self._holds.items():  # held conjunctions: re-evaluated every pass
            if seg in best:
                continue
            for _, table, _, now, ratio in mined:  # the stronger evidence holds
                hit = matches_table(hold.conjunction, table)
                k, kr = int(table["k"][hit].sum()), int(table["k_ref"][hit].sum())
                expected = ratio * (kr + self.floor)
                p = float(poisson_surge([k], [expected])[0])
                if seg not in best or p < best[seg]["pvalue"]:
                    row = self._row(hold.conjunction, k, expected, p, kr, examined, cards, now)
                    best[seg] = row | {"segment": seg}
        every = mined[-1][3]  # the current rows of the widest tier
        if spread is not None and spread["segment"] not in best and not any(
                shared_rows(every, spread["conjunction"], r["conjunction"])
                >= 0.8 * (spread["k"] - spread["expected"]) for r in best.values()):
            # kept unless mostly the rows of a one-MCC finding or of a held conjunction
            best[spread["segment"]] = spread
        # the rest of the family: every other tested conjunction (both tiers), never alerting
        rest = sorted(p for m in mined for p in m[2].pvalues)[len(best):]
        fill = [{"segment": FILLER_SEGMENT, "conjunction": {}, "k": 0, "expected": 1.0, "k_ref": 0,
                 "pvalue": p, "cards": 0, "mccs": 0, "mcc": "", "examined": examined,
                 "filler": True} for p in rest]
        return [*best.values(), *fill]

    def _mined(self, frame: pd.DataFrame, k_cur: int, k_ref: int,
               tier: str = "s") -> tuple[pd.DataFrame, MiningResult, Records]:
        """The miner's table (prefixes assigned) of ``frame`` (one row per key, as
        :meth:`_frame` gives), its search and its current rows as text; the
        last pass's when its frame is the same (no suspicious row entered or left either
        window: a quarter of the passes of a replay): the search is a pure function of
        the frame."""
        memo = self._memo.get(tier)
        if memo is not None and memo[0].equals(frame):
            return memo[1:]
        names = frame["beneficiary_name"].tolist()
        pm = self._prefix_memo  # select_prefixes' counts, the reference's reused
        prefixes = choose_prefixes(
            prefix_counts(name_tally(names, frame["k"].tolist()), pm.candidates),
            pm.counts(name_tally(names, frame["k_ref"].tolist()), tier),
            max(k_cur, 1), max(k_ref, 1), min_support=self.min_count)
        # one row per key (:meth:`_frame`) and the prefix is the name's: nothing to group
        table = frame.assign(beneficiary_prefix=assign_prefixes(
            names, prefixes, pm.candidates))[[*ATTRIBUTES, "beneficiary_name", "risk", "k",
                                              "k_ref"]].reset_index(drop=True)
        table["n"], table["n_ref"] = table["k"], table["k_ref"]
        res = mine(table, list(ATTRIBUTES), total=k_cur, total_ref=max(k_ref, 1),
                   test="surge", max_depth=self.max_depth, min_support=self.min_count,
                   min_lift=self.min_lift, min_excess=self.min_count - 1, alpha=self.alpha,
                   closure=self.closure, prior_weight=self.prior_weight,
                   min_expected=self.floor)
        self._memo[tier] = (frame, table, res, Records.of(table[table["k"] > 0]))
        return self._memo[tier][1:]

    def _row(self, conj: Mapping[str, Any], k: int, expected: float, p: float, k_ref: int,
             examined: int, cards: Mapping[str, list[str]],
             now: Records) -> dict[str, Any]:
        hit = now.mask(conj)
        mccs = sorted(set(now.cols["mcc"][hit].tolist()))
        card_set: set[str] = set()
        for key in now.keys(hit):
            card_set.update(cards.get(key, []))
        one = len(mccs) == 1
        payees = len(set(now.cols["beneficiary_name"][hit & (now.k > 0)].tolist()))
        if self.unit == "payee" or (self.unit == "spread" and not one):  # issue 22
            p = max(p, float(poisson_surge([min(payees, k)], [expected])[0]))
        return {"segment": f"mcc={mccs[0]}" if one else spread_segment(conj),
                "conjunction": dict(conj), "k": k, "expected": expected, "k_ref": k_ref,
                "pvalue": p, "cards": len(card_set), "mccs": len(mccs), "payees": payees,
                "mcc": mccs[0] if one else "", "examined": examined}

    def _evaluations(self, rows: list[dict[str, Any]], lo: dt.datetime, hi: dt.datetime,
                     r_lo: dt.datetime, r_hi: dt.datetime) -> Evaluations:
        return evaluations(
            rows, detector=self.name, alertname=self.tests["conjunction"],
            reference=self.reference_label(r_lo, r_hi), lo=lo, hi=hi,
            alert_q=self.settings.alert_q, min_count=self.min_count, min_cards=self.min_cards,
            effect_floor=self.effect_floor, critical_effect=self.critical_effect)

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        conj: dict[str, Any] = np.asarray(ev.details["_items"])[i]
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        where = "in MCC " + ev.segment[i].partition("=")[2] if ev.segment[i].startswith(
            "mcc=") else f"spread over {int(d['mccs'])} MCCs"
        summary = (
            f"Trigger-like conjunction {d['conjunction']} ({where}): {int(d['count'])} "
            f"high-risk transactions the model approved in the last {span} from "
            f"{int(d['cards'])} cards to {int(d['payees'])} payees (expected "
            f"{float(d['expected']):.2g}); "
            f"p = {fmt_p(float(ev.pvalue[i]))} over {int(d['examined'])} conjunctions"
        )
        return Description(
            summary=summary,
            value=f"{int(d['count'])}",
            threshold=f"expected {float(d['expected']):.3g} from the reference",
            evidence_sql=self.evidence(conj, ev.window_start, ev.window_end),
            description=(
                f"The conjunction {d['conjunction']} ({where}) holds more transactions with "
                f"at least {self.min_flags} model-independent risk flags and an approving "
                f"score from {iso(ev.window_start)} to {iso(ev.window_end)} than its "
                f"{ev.reference} and the reference marginals predict (exact Poisson tail, "
                f"Bonferroni over the {int(d['examined'])} conjunctions examined)."
            ),
        )

    def evidence(self, conj: Mapping[str, Any], lo: dt.datetime, hi: dt.datetime) -> str:
        """Analyst SQL listing the rows of ``conj`` in ``[lo, hi)``."""
        return evidence_sql(self._db, conj, lo, hi)
