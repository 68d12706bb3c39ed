"""CellsMemo: the max-cell test pass after pass, unchanged rows taken over, equals
computing every row anew, bit for bit."""

from __future__ import annotations

import numpy as np

from driftwatch.monitors.dispersion import CellsMemo, cells_vs_reference

FIELDS = ("cell", "count", "expected", "pvalue", "share", "pmin")


def test_memo_equals_recomputing_every_row_through_moves_reorders_and_new_keys() -> None:
    rng = np.random.default_rng(4)
    size = 120
    keys = [f"mcc={i}" for i in range(size)]
    ref = rng.poisson(rng.uniform(0.1, 5, (size, 100))).astype(float)
    cur = rng.poisson(rng.uniform(0.0, 0.4, (size, 100))).astype(float)
    conc = rng.uniform(5, 500, size)
    conc[::6] = np.inf
    overall = (ref.sum(axis=0) + 0.5) / (ref.sum() + 50)
    memo = CellsMemo()
    reused = []
    for step in range(6):
        if step:  # a few rows move, rows come and go, the order changes
            moved = rng.choice(len(keys), 10, replace=False)
            cur[moved, rng.integers(0, 100, 10)] += 1
            order = rng.permutation(len(keys))[:-1]
            keys, cur, ref, conc = ([keys[i] for i in order], cur[order], ref[order],
                                    conc[order])
            keys[0] = f"new={step}"
        if step == 4:  # the reference moved on: every row again
            ref = ref + 1
        got = memo(keys, cur, ref, overall, 100.0, conc, 30.0)
        want = cells_vs_reference(cur, ref, overall, 100.0, conc, 30.0)
        for name in FIELDS:
            assert np.array_equal(getattr(got, name), getattr(want, name), equal_nan=True), name
        reused.append(memo.reused)
    gains = np.diff([0, *reused])
    assert gains[0] == 0 and gains[4] == 0  # first pass, moved reference
    assert all(g >= len(keys) - 12 for g in gains[[1, 2, 3, 5]]), gains
