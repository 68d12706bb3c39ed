"""Conjunction mining: which rare attribute-value combinations hold too many suspicious records.

One core serves three places: training data (fraud-like records labelled
legitimate, over-represented in a new snapshot), the gate's probes and live
traffic. It is pure: count tables in, frozen findings out; no I/O.

- :func:`mine` (:mod:`.lattice`): the level-wise lattice search with exact tails
  and a family sized by the slices examined;
- :func:`count_table`: the sufficient statistics from two pandas frames;
- :mod:`.prefixes`: data-derived beneficiary-name prefixes;
- :mod:`.exact`: the exact tests and Tarone's family size.
"""

from __future__ import annotations

from driftwatch.mining.lattice import COUNTS, MiningResult, SliceFinding, count_table, mine
from driftwatch.mining.prefixes import assign_prefixes, candidates, select_prefixes

__all__ = [
    "COUNTS",
    "MiningResult",
    "SliceFinding",
    "assign_prefixes",
    "candidates",
    "count_table",
    "mine",
    "select_prefixes",
]
