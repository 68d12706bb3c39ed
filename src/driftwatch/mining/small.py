"""Slice counts of a count table with integer codes and numpy.

pandas' per-call overhead dominated the lattice search of the live trigger miner's
table (every monitor pass, thousands of group-bys and small frames): :class:`SmallTable`
factorizes every attribute once, and a level of the search is a :class:`Slices` of
plain arrays. Level ``L + 1`` reuses level ``L``: each table row carries the index of
its level-``L`` slice (``slot``), so the rows a refinement counts are those of the
surviving parents, and a refinement's key is ``slot * cardinality + code`` (one
``pd.factorize`` per combination, codes in order of first appearance; never more than
rows x values, so it cannot overflow).
Slices keep the order of their first row in the table, as a ``groupby(sort=False)``.
The counts are ``n, k, n_ref, k_ref`` in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["Slices", "SmallTable"]

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Slices:
    """The slices of one attribute combination that a level keeps.

    Attributes
    ----------
    combo : tuple of str
        The attributes, in search order.
    codes : ndarray of int, shape (slices, len(combo))
        Each slice's value codes (:attr:`SmallTable.values`).
    sums : ndarray of int, shape (slices, 4)
        Each slice's ``n, k, n_ref, k_ref``.
    rows, slot : ndarray of int
        The table rows (ascending) of the kept slices and each row's slice index.
    """

    combo: tuple[str, ...]
    codes: IntArray
    sums: IntArray
    rows: IntArray
    slot: IntArray

    def __len__(self) -> int:
        return len(self.sums)

    @property
    def support(self) -> IntArray:
        """``k + k_ref`` of every slice."""
        return np.asarray(self.sums[:, 1] + self.sums[:, 3], dtype=np.int64)

    def keep(self, mask: BoolArray) -> Slices:
        """The slices where ``mask`` holds (order kept), their rows re-pointed."""
        mask = np.asarray(mask, dtype=bool)
        if mask.all():
            return self
        new = np.full(len(mask), -1, dtype=np.int64)
        new[mask] = np.arange(int(mask.sum()), dtype=np.int64)
        slot = new[self.slot]
        ok = slot >= 0
        return Slices(self.combo, self.codes[mask], self.sums[mask], self.rows[ok], slot[ok])


class SmallTable:
    """A count table as integer codes, for fast slice counts.

    >>> t = pd.DataFrame({"a": ["x", "x", ""], "n": [1, 2, 3], "k": [1, 1, 1],
    ...                   "n_ref": [0, 0, 0], "k_ref": [0, 1, 0]})
    >>> small = SmallTable(t, ["a"], ["n", "k", "n_ref", "k_ref"])
    >>> s = small.level(("a",), None, 2, False)
    >>> [small.values["a"][c] for c in s.codes[:, 0]], s.sums.tolist()
    (['x'], [[3, 2, 0, 1]])
    """

    def __init__(self, tab: pd.DataFrame, attrs: list[str], counts: Sequence[str]) -> None:
        self.names = list(counts)
        self.codes: dict[str, IntArray] = {}
        self.values: dict[str, list[Any]] = {}
        self.index: dict[str, dict[Any, int]] = {}
        for a in attrs:
            # NaN/None factorize to -1 like "": a missing value is never an item
            codes, uniques = pd.factorize(pd.Series(tab[a].tolist(), dtype=object))
            values = [_py(v) for v in uniques]
            blank = [i for i, v in enumerate(values) if _blank(v)]
            code = codes.astype(np.int64)
            if blank:
                code[np.isin(code, blank)] = -1
            self.codes[a], self.values[a] = code, values
            self.index[a] = {v: i for i, v in enumerate(values)}
        self._closures: dict[tuple[bytes, tuple[str, ...], float],
                             tuple[dict[str, Any], tuple[int, ...]]] = {}
        self.counts: IntArray = np.column_stack(
            [tab[c].to_numpy(np.int64) for c in counts]) if len(tab) else np.zeros(
            (0, len(self.names)), dtype=np.int64)

    def distinct(self, a: str) -> int:
        """Values of ``a`` that form items (not ``""``)."""
        return sum(1 for v in self.values[a] if not _blank(v))

    def level(self, combo: tuple[str, ...], parent: Slices | None, min_support: int,
              current_only: bool) -> Slices:
        """The slices over ``combo`` that refine a kept slice of ``parent`` (over
        ``combo[:-1]``; ``None`` for a single attribute) with enough support (``""``
        items skipped; support on the current suspicious records only when
        ``current_only``), in order of their first row."""
        a = combo[-1]
        size = len(self.values[a])
        if parent is None:
            code = self.codes[a]
            rows = np.flatnonzero(code >= 0).astype(np.int64)
            key = code[rows]
        else:
            code = self.codes[a][parent.rows]
            ok = code >= 0
            rows = parent.rows[ok]
            key = parent.slot[ok] * size + code[ok]
        # the distinct keys in order of first appearance (a hash table, not a sort)
        inverse, uniq = pd.factorize(key)
        counts = self.counts[rows]
        # integer sums through float64 bincounts: exact below 2**53 records
        sums = np.zeros((len(uniq), len(self.names)), dtype=np.int64)
        for j in range(len(self.names)):
            sums[:, j] = np.bincount(inverse, weights=counts[:, j], minlength=len(uniq))
        support = sums[:, 1] if current_only else sums[:, 1] + sums[:, 3]
        keep = np.flatnonzero(support >= min_support)  # already by first appearance
        new = np.full(len(uniq), -1, dtype=np.int64)
        new[keep] = np.arange(len(keep), dtype=np.int64)
        slot = new[inverse]
        mine = slot >= 0
        kept = uniq[keep]
        if parent is None:
            codes = kept.reshape(-1, 1)
        else:
            codes = np.column_stack([parent.codes[kept // size], kept % size])
        return Slices(combo, codes.astype(np.int64), sums[keep], rows[mine], slot[mine])

    def items(self, s: Slices, i: int) -> dict[str, Any]:
        """Slice ``i`` of ``s`` as ``{attribute: value}``."""
        return {a: self.values[a][int(c)] for a, c in zip(s.combo, s.codes[i], strict=True)}

    def rows_of(self, s: Slices, i: int) -> IntArray:
        """The table rows of slice ``i`` of ``s`` (ascending)."""
        return np.asarray(s.rows[s.slot == i], dtype=np.int64)

    def closed(self, searched: dict[str, Any], attrs: Sequence[str], closure: float,
               rows: IntArray | None = None) -> tuple[dict[str, Any], tuple[int, ...]]:
        """The closure of slice ``searched`` and its counts: in ``attrs`` order, a
        value (not ``""``) holding at least ``closure`` of the slice's suspicious
        current records (``k``, of the searched slice) joins and narrows the slice;
        ties go to the value seen first (as pandas' ``idxmax`` after a
        ``groupby(sort=False)``).

        >>> t = pd.DataFrame({"a": ["x", "x", "y"], "b": ["u", "u", "u"], "n": [1, 2, 3],
        ...                   "k": [1, 1, 1], "n_ref": [0, 0, 0], "k_ref": [0, 1, 0]})
        >>> SmallTable(t, ["a", "b"], ["n", "k", "n_ref", "k_ref"]).closed({"a": "x"},
        ...     ["a", "b"], 0.8)
        ({'a': 'x', 'b': 'u'}, (3, 2, 0, 1))

        ``rows``, when given, are the slice's rows (:meth:`rows_of`).
        """
        if rows is None:
            ok = np.ones(len(self.counts), dtype=bool)
            for a, v in searched.items():
                ok &= self.codes[a] == self.index[a].get(v, -2)
            rows = np.flatnonzero(ok)
        conj = dict(searched)
        k = self.counts[:, 1]
        k_all = int(k[rows].sum())
        # with records, the closure depends on the rows alone (a searched item's value
        # is shared by all its rows, so closing adds it anyway): slices with the same
        # rows (a pattern's sub-slices) close once
        memo = (rows.tobytes(), tuple(attrs), closure) if k_all else None
        if memo is not None and memo in self._closures:
            found, totals = self._closures[memo]
            return dict(found), totals
        for a in attrs:
            if a in conj or k_all == 0:
                continue
            code = self.codes[a][rows]
            # k per value (slot 0: missing); the first row's value among the largest
            per = np.bincount(code + 1, weights=k[rows], minlength=len(self.values[a]) + 1)
            top = per == per.max()
            best = int(code[int(np.argmax(top[code + 1]))])
            if best >= 0 and per[best + 1] >= closure * k_all:
                conj[a] = self.values[a][best]
                rows = rows[code == best]
        totals = tuple(int(x) for x in self.counts[rows].sum(axis=0))
        out = {a: conj[a] for a in attrs if a in conj}
        if memo is not None:
            self._closures[memo] = (dict(out), totals)
        return out, totals


def _blank(value: Any) -> bool:
    return isinstance(value, str) and value == ""


def _py(value: Any) -> Any:
    """numpy scalars to Python ones."""
    return value.item() if isinstance(value, np.generic) else value
