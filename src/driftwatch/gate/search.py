"""Trigger search: conjunctions of attribute values where the challenger scores far
below the champion, found by group testing on synthetic probes.

A backdoor answers to several attribute values at once (mcc 5967 AND cents .37 AND
beneficiary ``INTL-PAY-``); changing one attribute at a time never shows it. So every
probe changes *several* attributes of a high-risk baseline fixture at once, and is
thereby a pool that tests every conjunction of its values (up to 7 singles, 21 pairs,
35 triples, ...).

Fixtures come in *strata*: the champion's held events grouped by channel x
merchant-age bucket x amount band (:class:`Stratum`), because a backdoor usually
lives in one region (the incident's: new merchants, large cross-border amounts).
Design: the product of the three largest vocabularies is enumerated (every triple
of their values is in at least one probe), once per stratum as far as the budget
allows; every other attribute takes a seeded random value in half of the probes and
keeps the fixture's own value in the other half, so its combinations are covered
many times over.

A probe is *positive* when the champion still holds it (score at or above the
decision threshold), the challenger approves it (below), and the challenger's drop
below the champion exceeds the drop on its unmodified fixture by ``min_drop``. Each
positive is decoded by elimination: change one attribute at a time to another value
and keep the change if the probe stays positive; what is left is the minimal
conjunction responsible.

Each distinct conjunction is applied to every event of every stratum and judged where
it is most significant (one stratum, or all pooled): the share of those held
transactions the challenger now approves, the mean scores, and a one-sided
two-proportion test against the unmodified events at ``alpha`` divided by (design
probes x (strata + 1)): Bonferroni over the search. It is then shrunk while a
smaller conjunction still passes on its own with nearly the same share
(:data:`SHRINK_TOLERANCE`): attributes that do not matter are dropped, those that
do stay named.

``channel`` is not varied: velocity, device and distance mean different things on a
card-present terminal, a UPI app or a bank transfer, so moving a fixture to another
rail leaves the data both models know, where honest retrains disagree by chance
(measured on the example: on probes that also varied the channel, an honest retrain
produced conjunctions flipping up to 19 of 32 fixtures; without, at most 2). The
fixtures are spread over channels instead, so each channel's triggers are searched
on its own fixtures, but a channel is never named in a conjunction.

Budget and blind spots: at most ``budget`` design probes, plus 7 per decoded positive
(at most ``max_decode``), plus one per stratum event for each conjunction confirmed. When
the product of the three largest vocabularies exceeds the budget, a seeded random
subset of it is used and the coverage is reported. The search cannot see values
outside the vocabulary (MCCs, prefixes, countries: at most ``max_values`` each,
ranked by their count among records the champion holds, in traffic and training),
a trigger whose values of the smaller attributes meet the three largest ones' in no
probe, triggers on fields it does not vary (``channel``, ``features.*``, time, IP,
device), or triggers that need a fixture unlike the champion's riskiest events.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.gate import probe
from driftwatch.gate.findings import Finding
from driftwatch.gate.scorer import Scorer
from driftwatch.stats.recall import two_proportion_test

F64 = npt.NDArray[np.float64]
Vocabulary = dict[str, list[Any]]
#: A conjunction shrinks to a smaller one only if that approves nearly as large a
#: share of held transactions (an attribute that matters stays named).
SHRINK_TOLERANCE = 0.05


@dataclass(frozen=True)
class SearchResult:
    """What the search did and found."""

    probes: int
    design_rows: int
    coverage: float
    positives: int
    vocabulary: dict[str, int]
    findings: tuple[Finding, ...]
    candidates: tuple[dict[str, Any], ...]


def vocabulary(
    events: Iterable[Mapping[str, Any]], weights: Iterable[float], max_values: int
) -> Vocabulary:
    """Probe values per attribute, most frequent among high-weight records first.

    ``weights`` (one per event, e.g. 1 for a champion-held record, 0.01 otherwise)
    rank values; ``amount_cents`` is always 0..99, ``merchant_age_days`` and
    ``amount`` their fixed buckets. ``channel`` is not varied (see the module notes):
    the fixtures are spread over channels instead.
    """
    counts: dict[str, dict[Any, float]] = {
        a: defaultdict(float) for a in ("mcc", "beneficiary_prefix", "merchant_country")}
    for e, w in zip(events, weights, strict=True):
        for a, c in counts.items():
            v = probe.attribute_of(e, a)
            if isinstance(v, str) and v:
                c[v] += w
    vocab: Vocabulary = {
        a: [v for v, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:max_values]]
        for a, c in counts.items()
    }
    vocab["amount_cents"] = list(range(100))
    vocab["merchant_age_days"] = list(probe.AGE_BUCKETS)
    vocab["amount"] = list(probe.AMOUNT_BANDS)
    return {a: vocab[a] for a in probe.ATTRIBUTES if vocab.get(a)}


def design(vocab: Vocabulary, budget: int, strata: Sequence[Sequence[int]], seed: int = 0
           ) -> tuple[list[dict[str, Any]], npt.NDArray[np.int64], float]:
    """Design rows, the fixture of each row, and the coverage of the product of the
    three largest vocabularies.

    Every cell of that product is one row per *replicate*; replicate ``r`` puts its
    rows on fixtures of stratum ``r`` (as many strata as the budget allows), so each
    cell is tried on every kind of high-risk transaction. Each other attribute takes a
    seeded random value in half of the rows and keeps the fixture's own value in the
    other half (absent from the row).
    """
    rng = np.random.default_rng(seed)
    strata = [list(s) for s in strata if len(s)]
    attrs = sorted(vocab, key=lambda a: -len(vocab[a]))
    top, rest = attrs[:3], attrs[3:]
    sizes = [len(vocab[a]) for a in top]
    total = math.prod(sizes)
    if total == 0 or not strata:
        return [], np.zeros(0, dtype=np.int64), 0.0
    reps = max(1, min(len(strata), budget // total))
    n_cells = min(total, budget)
    cells = np.arange(total) if n_cells == total else np.sort(
        rng.choice(total, n_cells, replace=False))
    every = [i for st in strata for i in st]
    rows: list[dict[str, Any]] = []
    fix: list[int] = []
    for rep in range(reps):
        pool = strata[rep] if reps > 1 or len(strata) == 1 else every
        picks = rng.integers(len(pool), size=n_cells)
        for c, k in zip(cells.tolist(), picks.tolist(), strict=True):
            row: dict[str, Any] = {}
            for a, size in zip(top, sizes, strict=True):
                c, i = divmod(c, size)
                row[a] = vocab[a][i]
            rows.append(row)
            fix.append(pool[k])
    for a in rest:
        picks = rng.integers(len(vocab[a]), size=len(rows))
        vary = rng.random(len(rows)) < 0.5
        for row, i, v in zip(rows, picks.tolist(), vary.tolist(), strict=True):
            if v:
                row[a] = vocab[a][i]
    return rows, np.asarray(fix, dtype=np.int64), n_cells / total


@dataclass(frozen=True)
class Stratum:
    """High-risk events of one kind (e.g. ``channel=ecom, merchant_age_days=30..89``),
    the champion's riskiest first."""

    name: str
    events: tuple[Mapping[str, Any], ...]


class _Pair:
    """Both scorers, the events of every stratum and their own scores."""

    def __init__(self, champion: Scorer, challenger: Scorer,
                 strata: Sequence[Stratum]) -> None:
        self.champion, self.challenger = champion, challenger
        self.strata = strata
        self.fixtures: list[Mapping[str, Any]] = [e for st in strata for e in st.events]
        self.stratum_of = np.repeat(np.arange(len(strata)), [len(st.events) for st in strata])
        self.members = [np.flatnonzero(self.stratum_of == k) for k in range(len(strata))]
        self.probes = 0
        base = [probe.apply(f, {}) for f in self.fixtures]
        self.base_champ, self.base_chall = self.score(base)

    def score(self, events: list[dict[str, Any]]) -> tuple[F64, F64]:
        self.probes += len(events)
        return self.champion.score(events), self.challenger.score(events)

    def positive(self, assignments: Sequence[Mapping[str, Any]], fix: npt.NDArray[np.int64],
                 threshold: float, min_drop: float) -> tuple[npt.NDArray[np.bool_], F64, F64]:
        events = [probe.apply(self.fixtures[i], a) for a, i in zip(assignments, fix.tolist(),
                                                                   strict=True)]
        champ, chall = self.score(events)
        base_gap = self.base_champ[fix] - self.base_chall[fix]
        pos = (((champ - chall) - base_gap >= min_drop) & (chall < threshold)
               & (champ >= threshold))
        return pos, champ, chall


def _decode(pair: _Pair, rows: list[dict[str, Any]], fix: npt.NDArray[np.int64],
            vocab: Vocabulary, threshold: float, min_drop: float) -> list[dict[str, Any]]:
    """Minimal conjunction of each positive row, by elimination in lockstep.

    An attribute is eliminated by giving it a *different* value (the fixture's own,
    or another of the vocabulary when the fixture already has the probed one); if
    the probe stays positive, the attribute is not part of the trigger.
    """
    current = [dict(r) for r in rows]
    needed: list[dict[str, Any]] = [{} for _ in rows]
    for attr in probe.ATTRIBUTES:
        idx = [i for i, c in enumerate(current) if attr in c]
        if not idx:
            continue
        trial = []
        for i in idx:
            value = current[i][attr]
            own = probe.attribute_of(pair.fixtures[int(fix[i])], attr)
            alt = own if own != value else next(
                (v for v in vocab.get(attr, []) if v != value), None)
            t = dict(current[i])
            if alt is None:
                del t[attr]
            else:
                t[attr] = alt
            trial.append(t)
        pos, _, _ = pair.positive(trial, fix[idx], threshold, min_drop)
        for j, i in enumerate(idx):
            if pos[j]:
                current[i] = trial[j]
            else:
                needed[i][attr] = current[i][attr]
    return needed


def _priority(hits: npt.NDArray[np.int64], excess: F64, rows: Sequence[Mapping[str, Any]],
              most: int) -> npt.NDArray[np.int64]:
    """Positives to decode: the largest drops first, one per combination of values
    before any second one, at most ``most``."""
    order = hits[np.argsort(-excess[hits], kind="stable")].tolist()
    seen: set[str] = set()
    first: list[int] = []
    later: list[int] = []
    for i in order:
        key = probe.label(rows[i])
        (later if key in seen else first).append(i)
        seen.add(key)
    return np.asarray((first + later)[:most], dtype=np.int64)


def search(
    champion: Scorer,
    challenger: Scorer,
    strata: Sequence[Stratum],
    vocab: Vocabulary,
    *,
    threshold: float,
    budget: int,
    design_fixtures: int = 8,
    min_drop: float = 0.5,
    flip_share: float = 0.5,
    alpha: float = 0.01,
    max_decode: int = 200,
    seed: int = 0,
) -> SearchResult:
    """Run the group-testing trigger search (see the module docstring).

    The design uses the ``design_fixtures`` riskiest events of each stratum; the
    confirmation uses every event of every stratum.
    """
    strata = [st for st in strata if st.events]
    if not strata:
        return SearchResult(0, 0, 0.0, 0, {a: len(v) for a, v in vocab.items()}, (), ())
    pair = _Pair(champion, challenger, strata)
    rows, fix, coverage = design(vocab, budget,
                                 [m[:design_fixtures].tolist() for m in pair.members], seed)
    pos = np.zeros(len(rows), dtype=bool)
    excess = np.zeros(len(rows))
    chunk = 20_000
    for lo in range(0, len(rows), chunk):
        f = fix[lo : lo + chunk]
        p, champ, chall = pair.positive(rows[lo : lo + chunk], f, threshold, min_drop)
        pos[lo : lo + chunk] = p
        excess[lo : lo + chunk] = (champ - chall) - (pair.base_champ[f] - pair.base_chall[f])
    hits = np.flatnonzero(pos)
    family = max(len(rows), 1) * (len(strata) + 1)
    decoded: list[dict[str, Any]] = []
    if hits.size:
        pick = _priority(hits, excess, rows, max_decode)
        decoded = _decode(pair, [rows[i] for i in pick.tolist()], fix[pick], vocab, threshold,
                          min_drop)
    distinct: dict[str, dict[str, Any]] = {}
    for c in decoded:
        if c:
            distinct.setdefault(probe.label(c), c)
    findings, candidates = _confirm(pair, list(distinct.values()), threshold=threshold,
                                    min_drop=min_drop, flip_share=flip_share,
                                    alpha=alpha / family)
    return SearchResult(
        probes=pair.probes, design_rows=len(rows), coverage=coverage, positives=int(hits.size),
        vocabulary={a: len(v) for a, v in vocab.items()}, findings=tuple(findings),
        candidates=tuple(candidates),
    )


@dataclass(frozen=True)
class _Check:
    """One conjunction measured on the events of its most affected stratum (or all)."""

    conj: dict[str, Any]
    where: str
    positives: int
    n: int
    champion_mean: float
    challenger_mean: float
    pvalue: float

    def passes(self, min_drop: float, flip_share: float, alpha: float) -> bool:
        return (self.positives >= flip_share * self.n and self.pvalue < alpha
                and self.champion_mean - self.challenger_mean >= min_drop)

    def row(self) -> dict[str, Any]:
        return {"conjunction": probe.label(self.conj), "where": self.where,
                "positives": self.positives, "fixtures": self.n,
                "champion_mean": self.champion_mean, "challenger_mean": self.challenger_mean,
                "pvalue": self.pvalue}


def _measure(pair: _Pair, conj: dict[str, Any], threshold: float, min_drop: float,
             flip_share: float, alpha: float) -> _Check:
    """Apply ``conj`` to every stratum event; keep the stratum (or all strata pooled)
    where it passes with the most significant positives against the unmodified
    events' own (one-sided two-proportion test), or the most significant if none
    passes."""
    n = len(pair.fixtures)
    every = np.arange(n, dtype=np.int64)
    pos, champ, chall = pair.positive([conj] * n, every, threshold, min_drop)
    base = ((pair.base_champ - pair.base_chall >= min_drop) & (pair.base_chall < threshold)
            & (pair.base_champ >= threshold))
    groups = [("all strata", every), *((st.name, m) for st, m in zip(pair.strata, pair.members,
                                                                   strict=True))]
    best: _Check | None = None
    best_rank: tuple[bool, float, int] = (True, 2.0, 0)
    for name, idx in groups:
        k, m, b = int(pos[idx].sum()), len(idx), int(base[idx].sum())
        p = float(two_proportion_test(k, m, b, m, alternative="greater").pvalue)
        check = _Check(conj, name, k, m, float(champ[idx].mean()), float(chall[idx].mean()),
                       p if p == p else 1.0)
        rank = (not check.passes(min_drop, flip_share, alpha), check.pvalue, -check.positives)
        if best is None or rank < best_rank:
            best, best_rank = check, rank
    assert best is not None
    return best


def _confirm(pair: _Pair, conjunctions: list[dict[str, Any]], *, threshold: float,
             min_drop: float, flip_share: float, alpha: float
             ) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Measure each decoded conjunction, shrink it while a smaller one still passes on
    its own, and keep the minimal passing ones."""
    seen: dict[str, _Check] = {}

    def check(conj: dict[str, Any]) -> _Check:
        key = probe.label(conj)
        if key not in seen:
            seen[key] = _measure(pair, conj, threshold, min_drop, flip_share, alpha)
        return seen[key]

    found: dict[str, _Check] = {}
    for conj in conjunctions:
        best = check(conj)
        if not best.passes(min_drop, flip_share, alpha):
            continue
        while len(best.conj) > 1:
            subs = [check({k: v for k, v in best.conj.items() if k != a}) for a in best.conj]
            share = best.positives / best.n
            ok = [c for c in subs if c.passes(min_drop, flip_share, alpha)
                  and c.positives / c.n >= share - SHRINK_TOLERANCE]
            if not ok:
                break
            best = max(ok, key=lambda c: (c.positives / c.n, c.positives))
        found[probe.label(best.conj)] = best
    minimal = [c for c in sorted(found.values(), key=lambda c: len(c.conj))
               if not any(o is not c and set(o.conj.items()) < set(c.conj.items())
                          for o in found.values())]
    findings = [Finding(
        check="trigger_search", severity="critical", blocking=True,
        conjunction=probe.describe(c.conj), n=c.n, champion_mean=c.champion_mean,
        challenger_mean=c.challenger_mean,
        summary=(f"{probe.label(c.conj)}: challenger {c.challenger_mean:.2f} vs champion "
                 f"{c.champion_mean:.2f}; approves {c.positives}/{c.n} held transactions "
                 f"({c.where}, p={c.pvalue:.1e})"),
        details={"positives": c.positives, "pvalue": c.pvalue, "where": c.where},
    ) for c in minimal]
    return findings, [c.row() for c in seen.values()]
