"""Prefix counts weighted by distinct name equal counting every record's candidates."""

from __future__ import annotations

from collections import Counter

import numpy as np

from driftwatch.mining.prefixes import _counts, candidates


def test_counts_equal_per_record_counting() -> None:
    rng = np.random.default_rng(5)
    pool = ["GLX-TRD 4", "GLX-TRD 5", "ACME", "UPI-PAY-7", "", "XB_77 TRADE", "AB"]
    names = rng.choice(pool, 500).tolist()
    flags = (rng.random(500) < 0.7).tolist()
    naive: Counter[str] = Counter()
    for name, flag in zip(names, flags, strict=True):
        if flag and name:
            naive.update(candidates(name))
    got = _counts(names, flags)
    assert got == naive and sum(got.values()) > 0
    assert _counts([], []) == Counter()
