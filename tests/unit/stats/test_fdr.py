"""Benjamini–Hochberg against scipy.stats.false_discovery_control."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftwatch.stats.fdr import benjamini_hochberg


def test_matches_scipy_false_discovery_control() -> None:
    rng = np.random.default_rng(0)
    for size in (1, 2, 10, 1000):
        p = np.concatenate([rng.uniform(size=size), rng.uniform(0, 1e-3, size // 10)])
        res = benjamini_hochberg(p, q=0.05)
        ref = stats.false_discovery_control(p, method="bh")
        np.testing.assert_allclose(res.adjusted, ref, rtol=1e-12)
        assert (res.rejected == (ref <= 0.05)).all()


def test_hand_case_step_up() -> None:
    # m = 4, q = 0.05: thresholds 0.0125, 0.025, 0.0375, 0.05. p_(3) = 0.03 <= 0.0375,
    # so the three smallest are rejected although p_(2) = 0.028 > 0.025 (step-up)
    res = benjamini_hochberg([0.01, 0.028, 0.03, 0.2], q=0.05)
    assert res.rejected.tolist() == [True, True, True, False]
    np.testing.assert_allclose(res.adjusted, [0.04, 0.04, 0.04, 0.2])


def test_nan_is_not_tested_and_not_counted() -> None:
    p = np.array([0.001, np.nan, 0.02, 0.04, np.nan])
    res = benjamini_hochberg(p, q=0.05)
    ref = stats.false_discovery_control(p[~np.isnan(p)], method="bh")
    np.testing.assert_allclose(res.adjusted[~np.isnan(p)], ref)
    assert np.isnan(res.adjusted[[1, 4]]).all()
    assert res.rejected.tolist() == [True, False, True, True, False]  # m = 3, not 5
    empty = benjamini_hochberg([np.nan, np.nan])
    assert not empty.rejected.any() and np.isnan(empty.adjusted).all()


def test_shape_preserved_and_validation() -> None:
    p = np.random.default_rng(1).uniform(size=(4, 5))
    res = benjamini_hochberg(p)
    assert res.rejected.shape == (4, 5) and res.adjusted.shape == (4, 5)
    flat = benjamini_hochberg(p.ravel())
    np.testing.assert_allclose(res.adjusted.ravel(), flat.adjusted)
    with pytest.raises(ValueError, match="q=0"):
        benjamini_hochberg([0.1], q=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg([1.2])


def test_controls_fdr_on_seeded_family() -> None:
    rng = np.random.default_rng(2)
    fdp = []
    for _ in range(200):
        null = rng.uniform(size=900)
        alt = rng.beta(0.05, 1.0, size=100)
        res = benjamini_hochberg(np.concatenate([null, alt]), q=0.1)
        rejected = res.rejected.sum()
        fdp.append(res.rejected[:900].sum() / max(rejected, 1))
    assert float(np.mean(fdp)) <= 0.1 * 0.9 + 0.02  # FDR <= q * m0 / m (+ noise)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=60))
def test_properties(values: list[float]) -> None:
    p = np.array(values)
    res = benjamini_hochberg(p, q=0.1)
    ok = ~np.isnan(p)
    assert (res.adjusted[ok] >= p[ok] - 1e-15).all()
    assert ((res.adjusted[ok] >= 0) & (res.adjusted[ok] <= 1)).all()
    order = np.argsort(p[ok], kind="stable")
    assert (np.diff(res.adjusted[ok][order]) >= -1e-15).all()
    assert not res.rejected[~ok].any()
