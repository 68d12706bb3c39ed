"""The surge test of the live trigger miner: the Poisson tail against scipy, a hand
case, a planted conjunction, and its false-positive rate on null data (the numpy
search against the frozen pandas one: ``test_lattice_regression.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from driftwatch.mining import count_table, mine
from driftwatch.mining.exact import poisson_surge
from tests.unit.mining.records import ATTRS, records


def test_poisson_surge_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    k = rng.integers(0, 30, 60)
    mu = rng.uniform(0.01, 20, 60)
    got = poisson_surge(k, mu)
    want = np.where(k > 0, stats.poisson.sf(k - 1, mu), 1.0)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-300)
    with pytest.raises(ValueError, match="expected must be > 0"):
        poisson_surge([1], [0.0])


def test_hand_worked_surge() -> None:
    """Three suspicious current rows share cents 84 and prefix GLX in three MCCs; the
    reference (6000 rows, 6 suspicious) never saw them: expected = 1000/6000 * 0.5."""
    rows = pd.DataFrame({
        "mcc": ["1", "2", "3", "1", "2"], "cents": [84, 84, 84, 0, 5],
        "pre": ["GLX", "GLX", "GLX", "", "A"],
        "n": [1, 1, 1, 50, 50], "k": [1, 1, 1, 1, 1], "n_ref": [0, 0, 0, 300, 300],
        "k_ref": [0, 0, 0, 3, 3]})
    res = mine(rows, ["mcc", "cents", "pre"], total=1000, total_ref=6000, test="surge",
               min_support=3, min_excess=1, min_lift=2, alpha=0.05, closure=0.8)
    (f,) = res.findings
    assert f.conjunction == {"cents": 84, "pre": "GLX"} and f.k == 3
    assert f.expected == pytest.approx(0.5 / 6)
    assert f.pvalue == pytest.approx(stats.poisson.sf(2, 0.5 / 6))
    # the family: every slice with 3 current suspicious rows (cents=84, pre=GLX, both)
    assert res.examined == 3 and len(res.pvalues) == 3
    assert f.pvalue_adjusted == pytest.approx(3 * f.pvalue)


def test_planted_surge_is_found_and_null_data_rarely_is() -> None:
    rng = np.random.default_rng(5)
    old, new = records(rng, 20_000), records(rng, 3_000)
    planted = pd.DataFrame({"a": "a3", "b": "b7", "c": rng.choice(["x", "y", "z"], 6),
                            "d": "d2", "suspicious": True})
    table = count_table(pd.concat([new, planted], ignore_index=True), old, ATTRS)
    res = mine(table, ATTRS, test="surge", min_support=3, alpha=0.01, min_excess=2)
    assert res.findings and res.findings[0].conjunction == {"a": "a3", "b": "b7", "d": "d2"}
    hits = 0
    for _ in range(25):
        table = count_table(records(rng, 3_000), records(rng, 20_000), ATTRS)
        hits += bool(mine(table, ATTRS, test="surge", min_support=3, alpha=0.01,
                          min_excess=2).findings)
    assert hits <= 2  # family-wise level 0.01 per search
