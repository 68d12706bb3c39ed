"""Benjamini–Hochberg with Tarone's filter over one monitor pass."""

from __future__ import annotations

import numpy as np
import pytest

from driftwatch.monitors.family import tarone_bh, tarone_keep
from driftwatch.stats.fdr import benjamini_hochberg


def test_without_pmin_it_is_plain_bh() -> None:
    rng = np.random.default_rng(4)
    p = np.concatenate([rng.uniform(size=200), [1e-8, 1e-6, 2e-4]])
    res = tarone_bh(p, np.zeros_like(p), 0.05)
    ref = benjamini_hochberg(p, q=0.05)
    assert res.m == p.size
    assert res.rejected.tolist() == np.asarray(ref.rejected).tolist()
    assert np.allclose(res.adjusted, ref.adjusted)


def test_hand_checkable_tarone_selection() -> None:
    # pmin sorted: 0, 0, 1e-6, 0.2 -> K=3 is the first with m(K)=#{pmin <= q/K} <= K
    assert tarone_keep([0.0, 0.0, 0.2, 1e-6], 0.05).tolist() == [True, True, False, True]


def test_tests_that_cannot_reach_significance_do_not_dilute_the_family() -> None:
    # one strong test among 5000 that can never be significant (tiny segments)
    p = np.concatenate([[2e-6], np.ones(5000)])
    pmin = np.concatenate([[1e-12], np.full(5000, 0.3)])
    assert not benjamini_hochberg(p, q=0.01).rejected[0]
    res = tarone_bh(p, pmin, 0.01)
    assert res.rejected[0] and res.m == 1
    assert np.isnan(tarone_bh([np.nan], [0.0], 0.01).adjusted[0])


def test_bad_q() -> None:
    with pytest.raises(ValueError, match="q="):
        tarone_keep([0.0], 1.5)


def test_fdr_is_controlled_on_null_pvalues() -> None:
    rng = np.random.default_rng(11)
    rejections = 0
    for _ in range(400):
        n = rng.integers(1, 40, 300)
        prob = 0.01
        k = rng.binomial(n, prob)
        from driftwatch.stats.rates import binom_sf

        p = binom_sf(k, n, prob)
        rejections += int(tarone_bh(p, prob**n, 0.05).rejected.any())
    # all nulls: any rejection is a false discovery; FDR = P(any) <= q
    assert rejections / 400 <= 0.05
