"""Level-wise lattice search for over-represented attribute-value conjunctions.

A *slice* is a conjunction of ``attribute = value`` items (``mcc = 5967 AND
amount_cents = 37 AND beneficiary_prefix = INTL-PAY-``). The search is
SliceLine-style (Sagadeeva & Boehm 2021): level 1 holds the single items, level
``L + 1`` extends each surviving level-``L`` slice by one item of a later
attribute, and a slice survives only when it can still matter:

- **support**: its suspicious records in both data sets, ``t = k + k_ref``, are at
  least ``min_support``; ``t`` never grows under refinement, so neither can any
  refinement's;
- **bound** (``test="binomial"``): its smallest attainable p-value ``p0 ** t``
  reaches Tarone's corrected level, else no refinement can be a discovery.

Input is a table of *sufficient statistics*: one row per distinct combination of
the attribute values (a ``GROUP BY`` over the attributes, in ClickHouse or pandas),
with four counts: ``n`` records and ``k`` suspicious records in the current data,
``n_ref`` and ``k_ref`` in the reference. Every slice's counts are sums over the
rows it matches, so the search never touches individual records. Rows with no
suspicious records can be left out when ``test="binomial"`` (it reads ``k`` and
``k_ref`` only; pass the overall record totals instead).

Each examined slice gets an exact one-sided p-value (:mod:`driftwatch.mining.exact`);
the family is sized by the slices actually examined (Tarone's count for the
binomial test, every tested slice for the hypergeometric one), and a discovery
needs ``p * m <= alpha`` (Bonferroni over that family) plus the effect floors.
Discoveries are then *closed*: every attribute whose single value holds at least
``closure`` of the slice's suspicious current records is added, so the finding
names the whole shared conjunction, and duplicates after closing are merged.

How to call it (training data, the gate's probes, live traffic)
---------------------------------------------------------------
1. Pick categorical attributes (bucket numbers first: ``merchant_age_days`` as
   ranges, beneficiary names as data-derived prefixes, :mod:`.prefixes`).
2. Flag each record *suspicious* by a model-independent rule of your use: for
   training data "fraud-like features labelled legitimate"; for live traffic
   "rule-high-risk but approved by the model"; for the gate "challenger far below
   champion".
3. Group current and reference records by the attributes and sum ``n, k`` and
   ``n_ref, k_ref`` (:func:`count_table` does it for two pandas frames; a
   ClickHouse ``GROUP BY`` with ``countIf`` gives the same table).
4. ``mine(table, attributes, total=N, total_ref=N_ref)`` and read
   :attr:`MiningResult.findings`.

>>> import pandas as pd
>>> rows = pd.DataFrame({
...     "mcc": ["5967", "5967", "5411", "5411"], "cents": [37, 0, 37, 0],
...     "n": [60, 40, 500, 500], "k": [50, 1, 2, 3], "n_ref": [2, 40, 500, 500],
...     "k_ref": [0, 1, 2, 3]})
>>> res = mine(rows, ["mcc", "cents"], min_support=5, alpha=0.01)
>>> [(f.conjunction, f.k, f.k_ref) for f in res.findings]
[({'mcc': '5967', 'cents': 37}, 50, 0)]

References
----------
.. [1] Sagadeeva, S., & Boehm, M. (2021). SliceLine: Fast, linear-algebra-based
   slice finding for ML model debugging. SIGMOD.
.. [2] Tarone, R. E. (1990). A modified Bonferroni method for discrete data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from driftwatch.mining.small import Slices, SmallTable

__all__ = ["COUNTS", "MiningResult", "SliceFinding", "count_table", "mine"]

COUNTS = ("n", "k", "n_ref", "k_ref")
Test = Literal["binomial", "hypergeom", "surge"]


@dataclass(frozen=True)
class _Surge:
    """The null of ``test="surge"``: smoothed reference shares of every item, per value
    code of :class:`SmallTable` (every value of the table has one)."""

    shares: dict[str, np.ndarray[Any, np.dtype[np.float64]]]
    k_ref: float
    ratio: float
    weight: float
    floor: float

    @classmethod
    def of(cls, small: SmallTable, attrs: list[str], ratio: float, weight: float,
           floor: float) -> _Surge:
        kr = small.counts[:, 3]
        k_ref = float(kr.sum())
        shares: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
        for a in attrs:
            code = small.codes[a]
            ok = code >= 0
            per = np.zeros(len(small.values[a]), dtype=np.int64)
            np.add.at(per, code[ok], kr[ok])
            den = k_ref + 0.5 * max(small.distinct(a), 1)
            shares[a] = (per.astype(np.float64) + 0.5) / den
        return cls(shares, k_ref, ratio, weight, floor)

    def expected(self, s: Slices) -> np.ndarray[Any, Any]:
        """``ratio * (k_ref + max(weight * K_ref * prod(shares), floor))`` per slice."""
        prod = np.ones(len(s))
        for j, a in enumerate(s.combo):
            prod *= self.shares[a][s.codes[:, j]]
        prior = np.maximum(self.weight * self.k_ref * prod, self.floor)
        return np.asarray(self.ratio * (s.sums[:, 3].astype(np.float64) + prior))

    def expected_one(self, k_ref: float, conj: Mapping[str, Any], small: SmallTable) -> float:
        """:meth:`expected` of one slice ``conj`` with ``k_ref`` reference records."""
        prod = 1.0
        for a, v in conj.items():
            prod *= float(self.shares[a][small.index[a][v]])
        return self.ratio * (k_ref + max(self.weight * self.k_ref * prod, self.floor))


@dataclass(frozen=True)
class SliceFinding:
    """One discovered slice.

    Attributes
    ----------
    conjunction : dict
        ``{attribute: value}`` after closure (the searched items plus the values
        every suspicious current record of the slice shares).
    searched : dict
        The items the search found significant (before closure).
    n, k, n_ref, k_ref : int
        Records and suspicious records of the closed slice, current and reference.
    expected : float
        Suspicious current records H0 predicts (``p0 * (k + k_ref)`` for the
        binomial test, ``n * (k + k_ref) / (n + n_ref)`` for the hypergeometric).
    lift : float
        Rate ratio of suspicious records, current over reference per record of
        each data set (the reference count plus one half, so it stays finite).
    pvalue : float
        Exact one-sided p-value of the searched slice.
    pvalue_adjusted : float
        ``min(1, pvalue * examined)``.
    level : int
        Number of searched items.
    """

    conjunction: dict[str, Any]
    searched: dict[str, Any]
    n: int
    k: int
    n_ref: int
    k_ref: int
    expected: float
    lift: float
    pvalue: float
    pvalue_adjusted: float
    level: int


@dataclass(frozen=True)
class MiningResult:
    """What :func:`mine` found and how much it looked at.

    ``examined`` is the family size used for the correction; ``candidates`` the
    slices whose counts were computed; ``truncated`` tells that a level hit
    ``max_candidates`` and only the best-supported slices went on; ``pvalues``
    holds the raw p-value of every tested slice (for a caller that corrects them
    together with other tests, e.g. the monitor's Benjamini-Hochberg family).
    """

    findings: tuple[SliceFinding, ...]
    examined: int
    candidates: int
    levels: int
    truncated: bool
    pvalues: tuple[float, ...] = ()


def count_table(current: pd.DataFrame, reference: pd.DataFrame, attributes: Sequence[str],
                suspicious: str = "suspicious") -> pd.DataFrame:
    """Sufficient statistics of two record frames: one row per attribute combination.

    Both frames hold the ``attributes`` columns and a boolean ``suspicious``
    column. Missing values become ``""`` (an item the search skips).

    >>> cur = pd.DataFrame({"a": ["x", "x", "y"], "suspicious": [True, False, True]})
    >>> count_table(cur, cur.iloc[:1], ["a"]).values.tolist()
    [['x', 2, 1, 1, 1], ['y', 1, 1, 0, 0]]
    """
    cols = list(attributes)

    def side(df: pd.DataFrame, n: str, k: str) -> pd.DataFrame:
        frame = df[cols].fillna("").astype(object)
        frame[n] = 1
        frame[k] = df[suspicious].astype(np.int64).to_numpy()
        return frame.groupby(cols, sort=False, dropna=False)[[n, k]].sum()

    joined = side(current, "n", "k").join(side(reference, "n_ref", "k_ref"), how="outer")
    out = joined.fillna(0).astype(np.int64).reset_index()
    return out.sort_values(cols, kind="stable").reset_index(drop=True)


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
    small = SmallTable(table, attrs, COUNTS)
    if (small.counts < 0).any():
        raise ValueError("counts must be non-negative")
    n_tot = int(small.counts[:, 0].sum()) if total is None else int(total)
    r_tot = int(small.counts[:, 2].sum()) if total_ref is None else int(total_ref)
    if n_tot <= 0 or r_tot <= 0:
        raise ValueError(f"both data sets need records, got total={n_tot}, total_ref={r_tot}")
    p0 = n_tot / (n_tot + r_tot)
    depth = min(max_depth, len(attrs))
    surge = (_Surge.of(small, attrs, n_tot / r_tot, prior_weight, min_expected)
             if test == "surge" else None)
    own = surge is not None

    levels: list[list[Slices]] = []
    frontier = [small.level((a,), None, min_support, own) for a in attrs]
    truncated = False
    n_candidates = 0
    mins: list[np.ndarray[Any, np.dtype[np.float64]]] = []  # every computed slice's bound
    while frontier:
        frontier = [s for s in frontier if len(s)]
        n_candidates += sum(len(s) for s in frontier)
        if test == "binomial" and frontier:
            # Tarone's bound with the family known so far (it only grows, so a slice
            # pruned now stays untestable, and so do its refinements)
            bounds = [min_attainable_binomial(s.support, p0) for s in frontier]
            mins.extend(bounds)
            floor = alpha / tarone_family(np.concatenate(mins), alpha)
            frontier = [s.keep(b <= floor) for s, b in zip(frontier, bounds, strict=True)]
        size = sum(len(s) for s in frontier)
        if size > max_candidates:
            truncated = True
            cut = np.sort(np.concatenate([s.support for s in frontier]))[-max_candidates]
            frontier = [s.keep(s.support >= cut) for s in frontier]
        levels.append(frontier)
        if len(levels) >= depth:
            break
        frontier = [small.level((*s.combo, a), s, min_support, own)
                    for s in frontier if len(s)
                    for a in attrs[attrs.index(s.combo[-1]) + 1:]]

    tested = [s for lv in levels for s in lv if len(s)]
    if not tested:
        return MiningResult((), 0, n_candidates, len(levels), truncated)
    if test == "binomial":
        m = tarone_family(np.concatenate(mins), alpha)
    else:
        m = sum(len(s) for s in tested)
    findings: dict[tuple[tuple[str, Any], ...], SliceFinding] = {}
    # every tested slice in one call of the (elementwise) tests, in the search's order
    sums = np.concatenate([s.sums for s in tested])
    prior = (np.concatenate([surge.expected(s) for s in tested]) if surge is not None
             else None)
    stats = _slice_stats(sums, test, p0, n_tot, r_tot, prior)
    hit = ((stats["p"] * m <= alpha) & (stats["lift"] >= min_lift)
           & (sums[:, 1] - stats["expected"] >= min_excess))
    owner = np.repeat(np.arange(len(tested)), [len(s) for s in tested])
    start = np.cumsum([0, *(len(s) for s in tested)])
    for j in np.flatnonzero(hit):
        s, i = tested[owner[j]], int(j - start[owner[j]])
        f = _closed(small, small.items(s, i), small.rows_of(s, i), attrs, closure, test, p0,
                    n_tot, r_tot, float(stats["p"][j]), m, surge)
        key = tuple(sorted(f.conjunction.items(), key=lambda kv: attrs.index(kv[0])))
        old = findings.get(key)
        if old is None or (f.pvalue, -f.level) < (old.pvalue, -old.level):
            findings[key] = f
    ordered = sorted(findings.values(),
                     key=lambda f: (f.pvalue_adjusted, -f.k, -len(f.conjunction)))
    return MiningResult(tuple(_drop_covered(ordered)), m, n_candidates, len(levels), truncated,
                        tuple(stats["p"].tolist()))


def _slice_stats(sums: np.ndarray[Any, np.dtype[np.int64]], test: Test, p0: float, n_tot: int,
                 r_tot: int, surge_expected: np.ndarray[Any, Any] | None = None,
                 ) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
    """Per slice (rows of ``sums``: ``n, k, n_ref, k_ref``): its p-value ``p``,
    ``expected`` count and ``lift`` (arrays)."""
    k = sums[:, 1].astype(np.float64)
    kr = sums[:, 3].astype(np.float64)
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
        n = sums[:, 0].astype(np.float64)
        nr = sums[:, 2].astype(np.float64)
        p = hypergeometric(k, k + kr, n + nr, n)
        expected = np.where(n + nr > 0, n * (k + kr) / np.maximum(n + nr, 1), 0.0)
    else:
        raise ValueError(f"test must be one of ['binomial', 'hypergeom', 'surge'], got {test!r}")
    lift = (k / n_tot) / ((kr + 0.5) / r_tot)
    return {"p": np.asarray(p, dtype=np.float64), "expected": np.asarray(expected, np.float64),
            "lift": np.asarray(lift, dtype=np.float64)}


def _closed(small: SmallTable, searched: Mapping[str, Any], rows: np.ndarray[Any, Any],
            attrs: list[str], closure: float, test: Test, p0: float, n_tot: int, r_tot: int,
            pvalue: float, m: int, surge: _Surge | None = None) -> SliceFinding:
    """The finding of ``searched`` (table ``rows``), extended by the values its
    suspicious records share (:meth:`SmallTable.closed`)."""
    conj, (n, k, n_ref, k_ref) = small.closed(dict(searched), attrs, closure, rows)
    if surge is not None:
        expected = surge.expected_one(k_ref, conj, small)
        lift = k / expected
    else:
        st = _slice_stats(np.array([[n, k, n_ref, k_ref]], dtype=np.int64), test, p0,
                          n_tot, r_tot)
        expected, lift = float(st["expected"][0]), float(st["lift"][0])
    return SliceFinding(conj, dict(searched), n, k, n_ref, k_ref, expected, lift, pvalue,
                        min(1.0, pvalue * m), len(searched))


def _drop_covered(findings: list[SliceFinding]) -> list[SliceFinding]:
    """Keep the findings that say something new, in the input order.

    First a generalisation is dropped when a more specific finding holds at least
    80 % of its excess (the specific slice explains it); then a refinement of a kept
    finding is dropped (its records are already named).
    """
    def excess(f: SliceFinding) -> float:
        return f.k - f.expected

    specific: list[SliceFinding] = []
    for f in sorted(findings, key=lambda f: -len(f.conjunction)):
        items = set(f.conjunction.items())
        if not any(items < set(g.conjunction.items()) and excess(g) >= 0.8 * excess(f)
                   for g in specific):
            specific.append(f)
    kept: list[SliceFinding] = []
    for f in sorted(specific, key=lambda f: len(f.conjunction)):
        items = set(f.conjunction.items())
        if not any(set(g.conjunction.items()) < items for g in kept):
            kept.append(f)
    order = {id(f): i for i, f in enumerate(findings)}
    return sorted(kept, key=lambda f: order[id(f)])

