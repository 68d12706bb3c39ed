"""FROZEN copy of ``driftwatch.mining.lattice`` as of commit cb90ba6 (before the numpy search):
the reference the regression tests compare the fast search with. Do not edit. The parts
the rewrite left unchanged (the result dataclasses, ``count_table``, ``_drop_covered``) are
imported from the live module; its docstring describes the search.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftwatch.mining.exact import (
    conditional_binomial,
    hypergeometric,
    min_attainable_binomial,
    poisson_surge,
    tarone_family,
)
from driftwatch.mining.lattice import MiningResult, SliceFinding, _drop_covered, count_table
from tests.unit.mining.old_small import SmallTable

__all__ = ["COUNTS", "MiningResult", "SliceFinding", "count_table", "mine"]

COUNTS = ("n", "k", "n_ref", "k_ref")
Test = Literal["binomial", "hypergeom", "surge"]


@dataclass(frozen=True)
class _Surge:
    """The null of ``test="surge"``: smoothed reference shares of every item."""

    shares: dict[str, dict[Any, float]]
    k_ref: float
    ratio: float
    weight: float
    floor: float

    @classmethod
    def of(cls, tab: pd.DataFrame, attrs: list[str], ratio: float, weight: float,
           floor: float) -> _Surge:
        k_ref = float(tab["k_ref"].sum())
        shares: dict[str, dict[Any, float]] = {}
        for a in attrs:
            per = tab[tab[a] != ""].groupby(a, sort=False)["k_ref"].sum()
            den = k_ref + 0.5 * max(len(per), 1)
            shares[a] = {v: (float(c) + 0.5) / den for v, c in per.items()}
            shares[a][None] = 0.5 / den  # a value the reference never saw
        return cls(shares, k_ref, ratio, weight, floor)

    def expected(self, g: pd.DataFrame, combo: Sequence[str]) -> np.ndarray[Any, Any]:
        """``ratio * (k_ref + max(weight * K_ref * prod(shares), floor))`` per row."""
        prod = np.ones(len(g))
        for a in combo:
            table = self.shares[a]
            prod *= np.array([table.get(v, table[None]) for v in g[a]], dtype=np.float64)
        prior = np.maximum(self.weight * self.k_ref * prod, self.floor)
        return np.asarray(self.ratio * (g["k_ref"].to_numpy(np.float64) + prior))

    def expected_one(self, k_ref: float, conj: Mapping[str, Any]) -> float:
        """:meth:`expected` of one slice ``conj`` with ``k_ref`` reference records."""
        prod = 1.0
        for a, v in conj.items():
            table = self.shares[a]
            prod *= table.get(v, table[None])
        return self.ratio * (k_ref + max(self.weight * self.k_ref * prod, self.floor))


def _check(table: pd.DataFrame, attributes: Sequence[str], max_depth: int, min_support: int,
           alpha: float, closure: float) -> None:
    missing = [c for c in (*attributes, *COUNTS) if c not in table.columns]
    if missing:
        raise ValueError(f"count table lacks columns {missing}; it has {list(table.columns)}")
    if len(set(attributes)) != len(attributes) or not attributes:
        raise ValueError(f"attributes must be distinct and non-empty, got {list(attributes)}")
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth!r}")
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0.5 < closure <= 1.0:
        raise ValueError(f"closure must be in (0.5, 1], got {closure!r}")
    if (table[list(COUNTS)] < 0).any().any():
        raise ValueError("counts must be non-negative")


SMALL_TABLE = 2_000_000
"""Count tables up to this many rows are searched with integer codes and numpy
(:class:`SmallTable`: pandas' per-call overhead dominates a search's thousands of
group-bys); larger ones with pandas group-bys."""


def _level(table: pd.DataFrame, combo: tuple[str, ...], min_support: int,
           current_only: bool = False) -> pd.DataFrame:
    """Counts of every slice over ``combo`` with enough support (``""`` items skipped;
    support counts the current suspicious records only when ``current_only``)."""
    sub = table
    for a in combo:
        sub = sub[sub[a] != ""]
    if sub.empty:
        return sub.iloc[:0][[*combo, *COUNTS]]
    g = sub.groupby(list(combo), sort=False, dropna=False)[list(COUNTS)].sum().reset_index()
    support = g["k"] if current_only else g["k"] + g["k_ref"]
    return g[support >= min_support]


def mine(
    table: pd.DataFrame,
    attributes: Sequence[str],
    *,
    total: int | None = None,
    total_ref: int | None = None,
    test: Test = "binomial",
    max_depth: int = 3,
    min_support: int = 10,
    min_lift: float = 2.0,
    min_excess: float = 5.0,
    alpha: float = 0.01,
    closure: float = 0.95,
    max_candidates: int = 200_000,
    prior_weight: float = 1.0,
    min_expected: float = 0.5,
) -> MiningResult:
    """Find slices with more suspicious current records than the reference predicts.

    Parameters
    ----------
    table : DataFrame
        The attributes and the counts ``n, k, n_ref, k_ref`` (see the module doc).
    attributes : sequence of str
        Categorical attributes to combine (search order: put the most selective
        first). Values ``""`` mean "missing" and never form an item.
    total, total_ref : int, optional
        Records in the current and reference data (default: the table's sums of
        ``n`` and ``n_ref``); they fix ``p0 = total / (total + total_ref)``.
    test : {"binomial", "hypergeom", "surge"}
        The exact test (:mod:`driftwatch.mining.exact`). ``"surge"`` (live traffic):
        the slice's suspicious current records against a Poisson count of mean
        ``total / total_ref * (k_ref + max(prior_weight * K_ref * prod(shares), floor))``,
        its own reference count plus a prior from the reference marginals (the
        product of its items' smoothed shares among all ``K_ref`` suspicious
        reference records, the independence estimate), never below
        ``min_expected`` reference records; support is then counted on current records only and
        the family is every tested slice (Bonferroni).
    max_depth : int
        Most items in a searched conjunction (default 3).
    min_support : int
        Least suspicious records (current plus reference) of a slice.
    min_lift : float
        Least rate ratio of suspicious records (current over reference, per record;
        the reference count plus one half).
    min_excess : float
        Least suspicious current records above the H0 expectation.
    alpha : float
        Family-wise error rate of the whole search.
    closure : float
        Share of a slice's suspicious current records one value of another
        attribute must hold to be added to the named conjunction.
    max_candidates : int
        Most slices carried from one level to the next (best supported first).
    prior_weight, min_expected : float
        The marginal prior's weight and the least expected reference count of a
        slice (``test="surge"`` only).

    Returns
    -------
    MiningResult
        Findings by adjusted p-value (smallest first), then by suspicious records.

    Notes
    -----
    H0 (binomial): every slice's suspicious records fall into the current data at
    the overall record ratio ``p0``. Under H0 the chance of *any* finding is at most
    ``alpha`` (Tarone-Bonferroni over the examined slices).
    """
    attrs = list(attributes)
    _check(table, attrs, max_depth, min_support, alpha, closure)
    tab = table[[*attrs, *COUNTS]].copy()
    for a in attrs:
        tab[a] = tab[a].fillna("").astype(object)
    n_tot = int(tab["n"].sum()) if total is None else int(total)
    r_tot = int(tab["n_ref"].sum()) if total_ref is None else int(total_ref)
    if n_tot <= 0 or r_tot <= 0:
        raise ValueError(f"both data sets need records, got total={n_tot}, total_ref={r_tot}")
    p0 = n_tot / (n_tot + r_tot)
    depth = min(max_depth, len(attrs))
    surge = (_Surge.of(tab, attrs, n_tot / r_tot, prior_weight, min_expected)
             if test == "surge" else None)
    own = surge is not None
    small = SmallTable(tab, attrs, COUNTS) if len(tab) <= SMALL_TABLE else None

    def level(combo: tuple[str, ...], parents: pd.DataFrame | None) -> pd.DataFrame:
        if small is not None:
            return small.level(combo, parents, min_support, own)
        base = tab if parents is None else tab.merge(parents[list(combo[:-1])],
                                                     on=list(combo[:-1]), how="inner")
        return _level(base, combo, min_support, own)

    levels: list[list[tuple[tuple[str, ...], pd.DataFrame]]] = []
    frontier: list[tuple[tuple[str, ...], pd.DataFrame]] = [
        ((a,), level((a,), None)) for a in attrs
    ]
    truncated = False
    n_candidates = 0
    mins: list[np.ndarray[Any, np.dtype[np.float64]]] = []  # every computed slice's bound
    while frontier:
        frontier = [(c, g) for c, g in frontier if not g.empty]
        n_candidates += sum(len(g) for _, g in frontier)
        if test == "binomial" and frontier:
            # Tarone's bound with the family known so far (it only grows, so a slice
            # pruned now stays untestable, and so do its refinements)
            mins.extend(min_attainable_binomial(g["k"] + g["k_ref"], p0) for _, g in frontier)
            floor = alpha / tarone_family(np.concatenate(mins), alpha)
            frontier = [
                (c, g[min_attainable_binomial(g["k"] + g["k_ref"], p0) <= floor])
                for c, g in frontier
            ]
        size = sum(len(g) for _, g in frontier)
        if size > max_candidates:
            truncated = True
            cut = np.sort(np.concatenate([(g["k"] + g["k_ref"]).to_numpy()
                                          for _, g in frontier]))[-max_candidates]
            frontier = [(c, g[(g["k"] + g["k_ref"]) >= cut]) for c, g in frontier]
        levels.append(frontier)
        if len(levels) >= depth:
            break
        nxt: list[tuple[tuple[str, ...], pd.DataFrame]] = []
        for combo, g in frontier:
            if g.empty:
                continue
            for a in attrs[attrs.index(combo[-1]) + 1:]:
                nxt.append(((*combo, a), level((*combo, a), g)))
        frontier = nxt

    tested = [(c, g) for lv in levels for c, g in lv if not g.empty]
    if not tested:
        return MiningResult((), 0, n_candidates, len(levels), truncated)
    if test == "binomial":
        m = tarone_family(np.concatenate(mins), alpha)
    else:
        m = sum(len(g) for _, g in tested)
    findings: dict[tuple[tuple[str, Any], ...], SliceFinding] = {}
    raw: list[float] = []
    for combo, g in tested:
        prior = surge.expected(g, combo) if surge is not None else None
        stats = _slice_stats(g, test, p0, n_tot, r_tot, prior)
        raw.extend(stats["p"].tolist())
        hit = ((stats["p"] * m <= alpha) & (stats["lift"] >= min_lift)
               & (g["k"].to_numpy() - stats["expected"] >= min_excess))
        for i in np.flatnonzero(hit):
            row = g.iloc[i]
            searched = {a: _plain(row[a]) for a in combo}
            f = _closed(tab, searched, attrs, closure, test, p0, n_tot, r_tot,
                        float(stats["p"][i]), m, surge, small)
            key = tuple(sorted(f.conjunction.items(), key=lambda kv: attrs.index(kv[0])))
            old = findings.get(key)
            if old is None or (f.pvalue, -f.level) < (old.pvalue, -old.level):
                findings[key] = f
    ordered = sorted(findings.values(),
                     key=lambda f: (f.pvalue_adjusted, -f.k, -len(f.conjunction)))
    return MiningResult(tuple(_drop_covered(ordered)), m, n_candidates, len(levels), truncated,
                        tuple(raw))


def _slice_stats(g: pd.DataFrame, test: Test, p0: float, n_tot: int, r_tot: int,
                 surge_expected: np.ndarray[Any, Any] | None = None,
                 ) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
    """Per slice of ``g``: its p-value ``p``, ``expected`` count and ``lift`` (arrays)."""
    k = g["k"].to_numpy(np.float64)
    kr = g["k_ref"].to_numpy(np.float64)
    if test == "surge":
        if surge_expected is None:
            raise ValueError("test='surge' needs the expected counts")
        expected = np.asarray(surge_expected, dtype=np.float64)
        p = poisson_surge(k, expected)
        return {"p": np.asarray(p, dtype=np.float64), "expected": expected,
                "lift": k / expected}
    if test == "binomial":
        p = conditional_binomial(k, kr, p0)
        expected = p0 * (k + kr)
    elif test == "hypergeom":
        n = g["n"].to_numpy(np.float64)
        nr = g["n_ref"].to_numpy(np.float64)
        p = hypergeometric(k, k + kr, n + nr, n)
        expected = np.where(n + nr > 0, n * (k + kr) / np.maximum(n + nr, 1), 0.0)
    else:
        raise ValueError(f"test must be one of ['binomial', 'hypergeom', 'surge'], got {test!r}")
    lift = (k / n_tot) / ((kr + 0.5) / r_tot)
    return {"p": np.asarray(p, dtype=np.float64), "expected": np.asarray(expected, np.float64),
            "lift": np.asarray(lift, dtype=np.float64)}


def _closed(tab: pd.DataFrame, searched: Mapping[str, Any], attrs: list[str], closure: float,
            test: Test, p0: float, n_tot: int, r_tot: int, pvalue: float,
            m: int, surge: _Surge | None = None,
            small: SmallTable | None = None) -> SliceFinding:
    """The finding of ``searched``, extended by the values its suspicious records share
    (the same from :meth:`SmallTable.closed` when the table is ``small``)."""
    if small is not None and surge is not None:
        conj, (n, k, n_ref, k_ref) = small.closed(dict(searched), attrs, closure)
        expected = surge.expected_one(k_ref, conj)
        return SliceFinding(conj, dict(searched), n, k, n_ref, k_ref, expected, k / expected,
                            pvalue, min(1.0, pvalue * m), len(searched))
    mask = np.ones(len(tab), dtype=bool)
    for a, v in searched.items():
        mask &= (tab[a] == v).to_numpy()
    conj = dict(searched)
    sub = tab[mask]
    k_all = int(sub["k"].sum())
    for a in attrs:
        if a in conj or k_all == 0:
            continue
        per = sub.groupby(a, sort=False)["k"].sum()
        top = per.idxmax()
        if top != "" and int(per.max()) >= closure * k_all:
            conj[a] = _plain(top)
            sub = sub[sub[a] == top]
    conj = {a: conj[a] for a in attrs if a in conj}
    row = sub[list(COUNTS)].sum()
    record: dict[str, Any] = {str(c): v for c, v in row.items()}
    one = pd.DataFrame([{**record, **conj}])
    prior = surge.expected(one, list(conj)) if surge is not None else None
    st = {c: v[0] for c, v in _slice_stats(pd.DataFrame([row]), test, p0, n_tot, r_tot,
                                           prior).items()}
    return SliceFinding(conj, dict(searched), int(row["n"]), int(row["k"]), int(row["n_ref"]),
                        int(row["k_ref"]), float(st["expected"]), float(st["lift"]), pvalue,
                        min(1.0, pvalue * m), len(searched))


def _plain(value: Hashable) -> Any:
    """numpy scalars to Python ones (JSON-ready)."""
    return value.item() if isinstance(value, np.generic) else value
