"""Slice counts of a small count table with plain dictionaries.

pandas' per-call overhead dominates the lattice search of a table of a few hundred
rows (the live trigger miner's, every monitor pass): :class:`SmallTable` gives the
same level tables as :func:`driftwatch.mining.lattice._level` after the parents'
merge, from column lists. The counts are ``n, k, n_ref, k_ref`` in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SmallTable"]


class SmallTable:
    """A small count table as column lists, for fast slice counts.

    >>> t = pd.DataFrame({"a": ["x", "x", ""], "n": [1, 2, 3], "k": [1, 1, 1],
    ...                   "n_ref": [0, 0, 0], "k_ref": [0, 1, 0]})
    >>> SmallTable(t, ["a"], ["n", "k", "n_ref", "k_ref"]).level(("a",), None, 2, False
    ...     ).values.tolist()
    [['x', 3, 2, 0, 1]]
    """

    def __init__(self, tab: pd.DataFrame, attrs: list[str], counts: Sequence[str]) -> None:
        self.names = list(counts)
        self.cols = {a: tab[a].tolist() for a in attrs}
        self.counts = list(zip(*(tab[c].astype(np.int64).tolist() for c in counts),
                               strict=True))

    def level(self, combo: tuple[str, ...], parents: pd.DataFrame | None, min_support: int,
              current_only: bool) -> pd.DataFrame:
        """Counts of every slice over ``combo`` whose first items form one of the
        ``parents`` slices, with enough support (``""`` items skipped; support on the
        current suspicious records only when ``current_only``)."""
        allowed = (None if parents is None else
                   set(zip(*(parents[a].tolist() for a in combo[:-1]), strict=True)))
        acc: dict[tuple[Any, ...], list[int]] = {}
        for key, c in zip(zip(*(self.cols[a] for a in combo), strict=True), self.counts,
                          strict=True):
            if "" in key or (allowed is not None and key[:-1] not in allowed):
                continue
            got = acc.get(key)
            if got is None:
                acc[key] = list(c)
            else:
                for j in range(len(c)):
                    got[j] += c[j]
        rows = [(*key, *c) for key, c in acc.items()
                if (c[1] if current_only else c[1] + c[3]) >= min_support]
        out = pd.DataFrame(rows, columns=[*combo, *self.names])
        for col in self.names:
            out[col] = out[col].astype(np.int64)
        return out

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
        rows = [i for i in range(len(self.counts))
                if all(self.cols[a][i] == v for a, v in searched.items())]
        conj = dict(searched)
        k_all = sum(self.counts[i][1] for i in rows)
        for a in attrs:
            if a in conj or k_all == 0:
                continue
            per: dict[Any, int] = {}
            col = self.cols[a]
            for i in rows:
                per[col[i]] = per.get(col[i], 0) + self.counts[i][1]
            top, best = "", -1
            for value, k in per.items():  # the first of the largest, as idxmax
                if k > best:
                    top, best = value, k
            if top != "" and best >= closure * k_all:
                conj[a] = top
                rows = [i for i in rows if col[i] == top]
        totals = tuple(sum(self.counts[i][j] for i in rows) for j in range(len(self.names)))
        return {a: conj[a] for a in attrs if a in conj}, totals
