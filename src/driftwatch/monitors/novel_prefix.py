"""Never-seen beneficiary prefixes shared by many new names, over all traffic.

A trigger spread over many MCCs leaves each MCC a trickle, but its payout names share
one prefix (``AODK5-PCGLOBALSERV-01``, ``AODK5-PCWORLDPAY-02``, ...) that the
reference never saw. Ordinary traffic makes new names all the time (hundreds an hour:
new payees, rarely used merchants), and now and then two of them share a prefix no
earlier name had (``NOAH LOPEZ 2``); several at once is what a payout family looks
like. This detector counts, every pass and over the whole window (not per MCC):

1. **New names.** The window's beneficiary names that no row of the preceding
   ``ref_s`` seconds carried.
2. **Novel shared prefixes.** Each new name's candidate prefixes
   (:func:`driftwatch.mining.prefixes.candidates`: leading tokens and character
   n-grams, no shape assumed); its group key is the shortest candidate that at most
   ``max_ref`` reference names start with. New names whose keys nest form one group;
   the group is named by the longest common prefix of its names.
3. **The count test.** A group of ``S`` distinct new names is tested against the chance
   groups of the detector's own history: the same two steps on the ``history_s``
   seconds of windows before the current one (each against its own reference), their
   groups per new name and how fast their sizes thin out
   (:func:`driftwatch.stats.group_tail.group_tail`). The Bonferroni scan over every
   possible prefix is in the test (the number of new names now).

The alert (``NovelPrefixSpread``) names the prefix and every value at least ``closure``
of the group's rows share (cents, merchant age, amount band, country, channel, MCC) in
its ``conjunction`` label, like trigger mining's, so both correlate into one incident.
A reference never absorbs an attack: while a prefix alerts (and after, until its period
slid out of the history), rows under it since the alert's window stay out of every
reference, and history groups under it are left out of the chance groups.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from driftwatch.alerts.model import iso
from driftwatch.events import epoch_ms
from driftwatch.mining.prefixes import candidates
from driftwatch.monitors.base import (
    EVIDENCE_COLUMNS,
    SCORED,
    WINDOW,
    Description,
    Detector,
    Evaluations,
    PassContext,
    fmt_p,
    query_table,
    span_words,
    sql_time,
)
from driftwatch.monitors.registry import register
from driftwatch.monitors.segments import SegmentSpec, sql_literal
from driftwatch.monitors.trigger_keys import (
    AGE_EDGES,
    AGE_SQL,
    BAND_EDGES,
    buckets_sql,
    conjunction_text,
    spread_segment,
)
from driftwatch.settings import Settings
from driftwatch.stats.group_tail import combine, group_tail, shared_value
from driftwatch.store.client import Store

_MS = "toUnixTimestamp64Milli(event_time)"
REFERENCE_NAMES = (
    "SELECT DISTINCT beneficiary_name AS name FROM {db}.scored_transactions "
    "WHERE event_time >= {r_lo:DateTime64(3, 'UTC')} AND event_time < {r_hi:DateTime64(3, 'UTC')} "
    "AND beneficiary_name != '' AND NOT arrayExists((p, s, u) -> startsWith(beneficiary_name, p)"
    f" AND {_MS} >= s AND {_MS} < u, {{hp:Array(String)}}, {{hs:Array(Int64)}}, "
    "{hu:Array(Int64)})"
)
"""Distinct names of the reference ``[r_lo, r_hi)`` without the rows of held prefixes'
periods (``hp``, from ``hs`` to ``hu`` in epoch milliseconds); no ``FINAL`` (a
duplicate row names nothing new)."""
NEW_NAMES_SQL = (
    "SELECT beneficiary_name AS name, groupUniqArray(card_id) AS cards, "
    f"groupUniqArray(merchant_id) AS merchants FROM {SCORED} "
    f"WHERE {WINDOW} AND beneficiary_name != '' AND beneficiary_name NOT IN ({REFERENCE_NAMES}) "
    "GROUP BY name"
)
"""The window's names that no reference row carried, with their distinct cards and
merchants."""
SEEN_SQL = (
    f"SELECT p, count() AS c FROM ({REFERENCE_NAMES}) "
    "ARRAY JOIN arrayMap(n -> substringUTF8(name, 1, n), {lengths:Array(UInt32)}) AS p "
    "WHERE p IN {cands:Array(String)} GROUP BY p"
)
"""How many reference names start with each candidate prefix (of the given lengths) that
any does."""
ATTRIBUTES_SQL = (
    "SELECT beneficiary_name AS name, toString(amount_cents) AS amount_cents, "
    f"{buckets_sql('age_days', AGE_EDGES, 1)} AS merchant_age, "
    f"{buckets_sql('amount_minor', BAND_EDGES, 100)} AS amount_band, "
    f"merchant_country, channel, mcc FROM (SELECT *, {AGE_SQL} AS age_days FROM {SCORED} "
    f"WHERE {WINDOW} AND beneficiary_name IN {{names:Array(String)}})"
)
"""The mined attributes (trigger mining's buckets) of the rows of ``names``."""
SHARED = ("amount_cents", "merchant_age", "amount_band", "merchant_country", "channel", "mcc")
VALUES = {"amount_cents": 100, "merchant_age": len(AGE_EDGES) + 1,
          "amount_band": len(BAND_EDGES) + 1, "merchant_country": 2, "channel": 2, "mcc": 2}
"""Values each attribute can take (at least; the scan uses the values seen if more)."""
FAR = 2**62
"""An open hold's end, in epoch milliseconds."""


@dataclass(frozen=True)
class Group:
    """New names of one window sharing a novel prefix."""

    prefix: str
    names: frozenset[str]
    cards: int
    merchants: int


@dataclass(frozen=True)
class WindowGroups:
    """One window: its new names (``founders`` of them) and their groups of two or more."""

    founders: int
    groups: tuple[Group, ...]
    new_names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PrefixHold:
    """An alerting prefix: rows under it from ``since`` to ``until`` stay out of references."""

    prefix: str
    since: dt.datetime
    until: dt.datetime | None = None


def related(a: str, b: str) -> bool:
    """Whether one prefix extends the other.

    >>> related("AODK5-PC", "AODK5-PCWORLD"), related("AB", "AC")
    (True, False)
    """
    return a.startswith(b) or b.startswith(a)


def common_prefix(names: Sequence[str]) -> str:
    """The longest character prefix all ``names`` share.

    >>> common_prefix(["QZV-PAY07-X", "QZV-PAY12-X"]), common_prefix(["AB", "CD"])
    ('QZV-PAY', '')
    """
    if not names:
        return ""
    lo, hi = min(names), max(names)
    n = 0
    while n < min(len(lo), len(hi)) and lo[n] == hi[n]:
        n += 1
    return lo[:n]


def group_names(new: Mapping[str, tuple[set[str], set[str]]], seen: Mapping[str, int],
                max_ref: int = 0) -> list[Group]:
    """Groups of two or more ``new`` names (name -> (cards, merchants)) whose shortest
    candidate prefix that at most ``max_ref`` reference names start with (``seen``:
    prefix -> reference names, absent when none) nests.

    >>> new = {n: ({n[-1]}, {n}) for n in ("QZX-A-1", "QZX-B-2", "QZX-C-3", "ANN LEE 7")}
    >>> seen = {c: 1 for c in candidates("ANN LEE 1") + ["QZ"]}
    >>> [(g.prefix, len(g.names), g.cards) for g in group_names(new, seen)]
    [('QZX-', 3, 3)]
    """
    keyed: dict[str, list[str]] = {}
    for name in new:
        for cand in sorted(candidates(name), key=len):
            if seen.get(cand, 0) <= max_ref:
                keyed.setdefault(cand, []).append(name)
                break
    roots: dict[str, list[str]] = {}
    for key in sorted(keyed, key=lambda k: (len(k), k)):
        root = next((r for r in roots if key.startswith(r)), key)
        roots.setdefault(root, []).extend(keyed[key])
    out = []
    for members in roots.values():
        if len(members) < 2:
            continue
        cards: set[str] = set()
        merchants: set[str] = set()
        for name in members:
            cards |= new[name][0]
            merchants |= new[name][1]
        out.append(Group(common_prefix(members), frozenset(members), len(cards),
                         len(merchants)))
    return sorted(out, key=lambda g: (-len(g.names), g.prefix))


@register
class NovelPrefixDetector(Detector):
    """New names sharing a never-seen beneficiary prefix, counted over all traffic.

    Options
    -------
    ref_s : int
        How far back a name counts as seen (default 0: the ``reference_window_s``
        setting, a week; a store with less history uses all of it).
    history_s : int
        Span of the earlier windows whose chance groups make the null (default 24 h);
        they end on the last multiple of ``window_s`` before the current window.
    min_names, min_cards : int
        Fewest distinct new names (3) and cards paying them (2) to alert.
    max_ref : int
        Reference names a prefix may have and still be novel (default 0).
    prior : float
        Pseudo-counts of :func:`~driftwatch.stats.group_tail.group_tail` (0.5).
    closure : float
        Share of the group's rows a value must hold to join the label (0.8).
    effect_floor, critical_effect : float
        Names beyond a chance pair, as a share of the group: ``(S - 2) / S``
        (0.3: three names; 0.75: eight).
    """

    name = "novel_prefix"
    tests: ClassVar[Mapping[str, str]] = {"prefix": "NovelPrefixSpread"}
    window_s: int = 10800
    ref_s: int = 0
    history_s: int = 86400
    min_names: int = 3
    min_cards: int = 2
    max_ref: int = 0
    prior: float = 0.5
    closure: float = 0.8
    effect_floor: float = 0.3
    critical_effect: float = 0.75

    def __init__(self, settings: Settings, spec: SegmentSpec, **options: object) -> None:
        super().__init__(settings, spec, **options)
        if self.ref_s == 0:
            self.ref_s = settings.reference_window_s
        for key in ("ref_s", "history_s", "min_names", "min_cards"):
            if getattr(self, key) < 1:
                raise ValueError(f"{self.name}: {key}={getattr(self, key)!r}; allowed: >= 1")
        if self.max_ref < 0 or self.prior <= 0 or not 0 < self.closure <= 1:
            raise ValueError(f"{self.name}: max_ref={self.max_ref!r}, prior={self.prior!r}, "
                             f"closure={self.closure!r}; allowed: max_ref >= 0, prior > 0, "
                             "0 < closure <= 1")
        self._db = ""
        self._history: dict[tuple[dt.datetime, dt.datetime], WindowGroups] = {}
        self._holds: dict[str, PrefixHold] = {}
        self._last: dict[str, str] = {}  # segment -> prefix of the last pass's rows

    # -- windows ----------------------------------------------------------------------
    def _holds_params(self) -> dict[str, Any]:
        holds = list(self._holds.values())
        return {"hp": [h.prefix for h in holds], "hs": [epoch_ms(h.since) for h in holds],
                "hu": [FAR if h.until is None else epoch_ms(h.until) for h in holds]}

    def groups(self, store: Store, lo: dt.datetime, hi: dt.datetime) -> WindowGroups:
        """The new names of ``[lo, hi)`` and their groups (against ``ref_s`` before it)."""
        ref = {"r_lo": lo - dt.timedelta(seconds=self.ref_s), "r_hi": lo,
               **self._holds_params()}
        cols = query_table(store, NEW_NAMES_SQL, {"lo": lo, "hi": hi, **ref})
        new = {str(n): ({str(c) for c in cs}, {str(m) for m in ms})
               for n, cs, ms in zip(cols["name"], cols["cards"], cols["merchants"], strict=True)}
        cands = sorted({c for name in new for c in candidates(name)})
        seen: dict[str, int] = {}
        if cands:
            found = query_table(store, SEEN_SQL, {
                **ref, "cands": cands, "lengths": sorted({len(c) for c in cands})})
            seen = {str(p): int(c) for p, c in zip(found["p"], found["c"], strict=True)}
        return WindowGroups(len(new), tuple(group_names(new, seen, self.max_ref)),
                            frozenset(new))

    def _null(self, store: Store, lo: dt.datetime) -> tuple[list[int], int, int]:
        """Chance-group sizes and new names of the history windows before ``lo`` (held
        prefixes' groups left out), and how many windows."""
        step = dt.timedelta(seconds=self.window_s)
        end = lo - (lo - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) % step
        spans = [(end - (i + 1) * step, end - i * step)
                 for i in range(max(1, self.history_s // self.window_s))]
        self._history = {s: g for s, g in self._history.items() if s in spans}
        sizes: list[int] = []
        founders = 0
        for span in spans:
            if span not in self._history:
                self._history[span] = self.groups(store, *span)
            found = self._history[span]
            founders += found.founders
            sizes.extend(len(g.names) for g in found.groups
                         if not any(related(g.prefix, h.prefix) for h in self._holds.values()))
        return sizes, founders, len(spans)

    # -- the pass ---------------------------------------------------------------------
    def evaluate(self, ctx: PassContext) -> list[Evaluations]:
        self._db = ctx.store.database
        lo, hi = ctx.window(self.window_s)
        now = self.groups(ctx.store, lo, hi)
        sizes, ref_founders, windows = self._null(ctx.store, lo)
        if not now.groups:
            self._last = {}
            return []
        groups = list(now.groups)
        size = np.array([len(g.names) for g in groups], dtype=np.int64)
        cards = np.array([g.cards for g in groups], dtype=np.int64)
        tails = [group_tail(int(k), now.founders, sizes, ref_founders, prior=self.prior)
                 for k in size]
        eligible = (size >= self.min_names) & (cards >= self.min_cards)
        shared = self._shared(ctx.store, now, [g for g, ok in zip(groups, eligible, strict=True)
                                              if ok], lo, hi)
        p_names = np.array([t.pvalue for t in tails], dtype=np.float64)
        p_values = np.array([shared.get(g.prefix, ({}, 1.0))[1] for g in groups])
        pvalue = np.minimum(1.0, 2 * np.minimum(
            p_names, [combine(a, b) for a, b in zip(p_names, p_values, strict=True)]))
        segments, labels = [], []
        for g in groups:
            held = next((s for s, h in self._holds.items() if related(g.prefix, h.prefix)), None)
            segments.append(held or spread_segment({"beneficiary_prefix": g.prefix}))
            conj = shared.get(g.prefix, ({"beneficiary_prefix": g.prefix}, 1.0))[0]
            lab = {"conjunction": conjunction_text(conj)}
            if conj.get("mcc"):
                lab["mcc"] = str(conj["mcc"])
            labels.append(lab)
        self._last = {seg: g.prefix for seg, g in zip(segments, groups, strict=True)}
        count = len(groups)
        return [Evaluations(
            detector=self.name, test="prefix", alertname=self.tests["prefix"],
            window_start=lo, window_end=hi,
            reference=f"new names against the previous {span_words(self.ref_s)}; chance groups "
                      f"of {windows} windows before {iso(lo)}",
            segment=segments, statistic=size.astype(np.float64),
            pvalue=pvalue, effect=(size - 2) / size, n=size,
            n_ref=np.full(count, len(sizes), dtype=np.int64),
            effect_floor=self.effect_floor, critical_effect=self.critical_effect,
            pmin=np.zeros(count), eligible=eligible, labels=labels,
            details={
                "prefix": np.array([g.prefix for g in groups], dtype=object),
                "conjunction": np.array([lab["conjunction"] for lab in labels], dtype=object),
                "names": size, "cards": cards,
                "merchants": np.array([g.merchants for g in groups], dtype=np.int64),
                "new_names": np.full(count, now.founders, dtype=np.int64),
                "ref_groups": np.full(count, len(sizes), dtype=np.int64),
                "ref_new_names": np.full(count, ref_founders, dtype=np.int64),
                "expected": np.array([t.expected for t in tails], dtype=np.float64),
                "p_names": p_names, "p_shared": p_values,
            })]

    def _shared(self, store: Store, now: WindowGroups, groups: Sequence[Group],
                lo: dt.datetime, hi: dt.datetime) -> dict[str, tuple[dict[str, Any], float]]:
        """Per group: its conjunction (the prefix and every attribute value at least
        ``closure`` of its rows share) and the p-value of its names sharing their most
        common value of some attribute more than the window's new names' rows do
        (:func:`~driftwatch.stats.group_tail.shared_value`, Bonferroni over the values
        and the attributes)."""
        if not groups:
            return {}
        cols = query_table(store, ATTRIBUTES_SQL, {"lo": lo, "hi": hi,
                                                   "names": sorted(now.new_names)})
        names = np.asarray(cols["name"]).astype(str)
        values = {a: np.asarray(cols[a]).astype(str) for a in SHARED}
        out = {}
        for g in groups:
            mask = np.isin(names, sorted(g.names))
            conj: dict[str, Any] = {"beneficiary_prefix": g.prefix}
            best = 1.0
            for attr, col in values.items():
                mine, own = col[mask], names[mask]
                if not len(mine):
                    continue
                kinds, counts = np.unique(mine, return_counts=True)
                top = str(kinds[int(np.argmax(counts))])
                if counts.max() >= self.closure * len(mine) and top:
                    conj[attr] = top
                whole = {n for n in set(own.tolist()) if (col[mask & (names == n)] == top).all()}
                share = (float((col == top).sum()) + 0.5) / (len(col) + 0.5 * VALUES[attr])
                best = min(best, shared_value(len(whole), len(g.names), min(share, 1.0),
                                              max(VALUES[attr], len(set(col.tolist())))))
            out[g.prefix] = (conj, min(1.0, best * len(SHARED)))
        return out

    def hold_references(self, segments: Collection[str], at: dt.datetime | None = None) -> None:
        """Alerting prefixes of this detector: their rows since the alert's window stay
        out of every reference; released ones until their period leaves the history."""
        held = set(segments)
        for seg, prefix in self._last.items():
            hold = self._holds.get(seg)
            if seg in held and hold is None and at is not None:
                self._holds[seg] = PrefixHold(prefix, at - dt.timedelta(seconds=self.window_s))
            elif hold is not None and len(prefix) < len(hold.prefix):
                # the family's names share less than its first few did: hold all of them
                self._holds[seg] = PrefixHold(prefix, hold.since, hold.until)
        for seg, hold in list(self._holds.items()):
            if seg not in held and hold.until is None:
                self._holds[seg] = PrefixHold(hold.prefix, hold.since, at or hold.since)
            horizon = dt.timedelta(seconds=self.ref_s + self.history_s + self.window_s)
            end = self._holds[seg].until
            if end is not None and at is not None and at - end > horizon:
                del self._holds[seg]

    def describe(self, ev: Evaluations, i: int) -> Description:
        d = ev.detail(i)
        span = span_words((ev.window_end - ev.window_start).total_seconds())
        summary = (
            f"{int(d['names'])} new beneficiary names share the never-seen prefix "
            f"{d['prefix']!r} in the last {span}, paid by {int(d['cards'])} cards at "
            f"{int(d['merchants'])} merchants ({d['conjunction']}); chance groups that large: "
            f"{float(d['expected']):.2g} expected; p = {fmt_p(float(ev.pvalue[i]))}"
        )
        return Description(
            summary=summary,
            value=f"{int(d['names'])}",
            threshold=f"{int(d['ref_groups'])} chance groups among {int(d['ref_new_names'])} "
                      "new names before",
            evidence_sql=(
                f"SELECT {EVIDENCE_COLUMNS} FROM {self._db or '{db}'}.scored_transactions FINAL "
                f"WHERE event_time >= {sql_time(ev.window_start)} AND event_time < "
                f"{sql_time(ev.window_end)} AND startsWith(beneficiary_name, "
                f"{sql_literal(str(d['prefix']))}) ORDER BY event_time"),
            description=(
                f"{int(d['names'])} of the {int(d['new_names'])} beneficiary names first seen "
                f"from {iso(ev.window_start)} to {iso(ev.window_end)} (none in the "
                f"{span_words(self.ref_s)} before) start with {d['prefix']!r}, which no "
                f"earlier name did; {ev.reference} predict {float(d['expected']):.2g} "
                "such groups."
            ),
        )
