"""FROZEN copy of ``driftwatch.mining.small`` as of commit cb90ba6 (before the numpy search):
the reference the regression tests compare the fast search with. Do not edit.

Slice counts of a count table with integer codes and numpy.

pandas' per-call overhead dominates the lattice search of the live trigger miner's
table (every monitor pass, thousands of group-bys), and a plain-Python loop over the
rows grows with the reference: :class:`SmallTable` factorizes every attribute once and
counts each slice level with ``np.unique`` over combined integer codes. It gives the
same level tables as :func:`driftwatch.mining.lattice._level` after the parents'
merge (slices in order of first appearance). The counts are ``n, k, n_ref, k_ref`` in
that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftwatch.mining.small import _py

__all__ = ["SmallTable"]

IntArray = NDArray[np.int64]


class SmallTable:
    """A count table as integer codes, for fast slice counts.

    >>> t = pd.DataFrame({"a": ["x", "x", ""], "n": [1, 2, 3], "k": [1, 1, 1],
    ...                   "n_ref": [0, 0, 0], "k_ref": [0, 1, 0]})
    >>> SmallTable(t, ["a"], ["n", "k", "n_ref", "k_ref"]).level(("a",), None, 2, False
    ...     ).values.tolist()
    [['x', 3, 2, 0, 1]]
    """

    def __init__(self, tab: pd.DataFrame, attrs: list[str], counts: Sequence[str]) -> None:
        self.names = list(counts)
        self.codes: dict[str, IntArray] = {}
        self.values: dict[str, list[Any]] = {}
        self.index: dict[str, dict[Any, int]] = {}
        for a in attrs:
            codes, uniques = pd.factorize(pd.Series(tab[a].tolist(), dtype=object))
            values = [_py(v) for v in uniques]
            blank = {i for i, v in enumerate(values) if v == ""}
            code = codes.astype(np.int64)
            if blank:
                code[np.isin(code, list(blank))] = -1  # a missing value is never an item
            self.codes[a], self.values[a] = code, values
            self.index[a] = {v: i for i, v in enumerate(values)}
        self.counts: IntArray = np.column_stack(
            [tab[c].to_numpy(np.int64) for c in counts]) if len(tab) else np.zeros(
            (0, len(self.names)), dtype=np.int64)

    def _key(self, combo: Sequence[str], rows: IntArray) -> IntArray:
        """One integer per row of ``rows`` for its values over ``combo`` (mixed radix)."""
        key = np.zeros(len(rows), dtype=np.int64)
        for a in combo:
            key = key * len(self.values[a]) + self.codes[a][rows]
        return key

    def level(self, combo: tuple[str, ...], parents: pd.DataFrame | None, min_support: int,
              current_only: bool) -> pd.DataFrame:
        """Counts of every slice over ``combo`` whose first items form one of the
        ``parents`` slices, with enough support (``""`` items skipped; support on the
        current suspicious records only when ``current_only``)."""
        ok = np.ones(len(self.counts), dtype=bool)
        for a in combo:
            ok &= self.codes[a] >= 0
        rows = np.flatnonzero(ok)
        if parents is not None:
            head = combo[:-1]
            allowed = np.zeros(len(parents), dtype=np.int64)
            known = np.ones(len(parents), dtype=bool)
            for a in head:
                idx = self.index[a]
                code = np.array([idx.get(v, -1) for v in parents[a].tolist()], dtype=np.int64)
                known &= code >= 0
                allowed = allowed * len(self.values[a]) + code
            rows = rows[np.isin(self._key(head, rows), allowed[known])]
        key = self._key(combo, rows)
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        sums = np.zeros((len(uniq), len(self.names)), dtype=np.int64)
        np.add.at(sums, inverse.ravel(), self.counts[rows])
        support = sums[:, 1] if current_only else sums[:, 1] + sums[:, 3]
        keep = np.flatnonzero(support >= min_support)
        keep = keep[np.argsort(first[keep], kind="stable")]  # first appearance, as a dict
        data: dict[str, Any] = {}
        rest = uniq[keep]
        decoded: list[list[Any]] = []
        for a in reversed(combo):
            size = len(self.values[a])
            decoded.append([self.values[a][int(c)] for c in rest % size])
            rest = rest // size
        for a, vals in zip(reversed(combo), decoded, strict=True):
            data[a] = pd.Series(vals, dtype=object)
        for j, col in enumerate(self.names):
            data[col] = sums[keep, j].astype(np.int64)
        return pd.DataFrame({c: data[c] for c in [*combo, *self.names]})

    def closed(self, searched: dict[str, Any], attrs: Sequence[str],
               closure: float) -> tuple[dict[str, Any], tuple[int, ...]]:
        """The closure of slice ``searched`` and its counts, as
        :func:`driftwatch.mining.lattice._closed` computes them: in ``attrs`` order, a
        value (not ``""``) holding at least ``closure`` of the slice's suspicious
        current records (``k``, of the searched slice) joins and narrows the slice;
        ties go to the value seen first.

        >>> t = pd.DataFrame({"a": ["x", "x", "y"], "b": ["u", "u", "u"], "n": [1, 2, 3],
        ...                   "k": [1, 1, 1], "n_ref": [0, 0, 0], "k_ref": [0, 1, 0]})
        >>> SmallTable(t, ["a", "b"], ["n", "k", "n_ref", "k_ref"]).closed({"a": "x"},
        ...     ["a", "b"], 0.8)
        ({'a': 'x', 'b': 'u'}, (3, 2, 0, 1))
        """
        ok = np.ones(len(self.counts), dtype=bool)
        for a, v in searched.items():
            ok &= self.codes[a] == self.index[a].get(v, -2)
        rows = np.flatnonzero(ok)
        conj = dict(searched)
        k = self.counts[:, 1]
        k_all = int(k[rows].sum())
        for a in attrs:
            if a in conj or k_all == 0:
                continue
            code = self.codes[a][rows]
            uniq, first, inverse = np.unique(code, return_index=True, return_inverse=True)
            per = np.bincount(inverse.ravel(), weights=k[rows], minlength=len(uniq))
            order = np.argsort(first, kind="stable")  # the first of the largest, as idxmax
            best = order[int(np.argmax(per[order]))]
            if uniq[best] >= 0 and per[best] >= closure * k_all:
                conj[a] = self.values[a][int(uniq[best])]
                rows = rows[code == uniq[best]]
        totals = tuple(int(x) for x in self.counts[rows].sum(axis=0))
        return {a: conj[a] for a in attrs if a in conj}, totals
