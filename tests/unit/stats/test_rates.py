"""Binomial tails and reference rates against scipy on the same values, hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftwatch.stats.rates import binom_sf, shrunk_rate, upper_rate


def test_binom_sf_matches_scipy_into_the_tail() -> None:
    k = np.arange(0, 41)
    ours = binom_sf(k, 40, 0.05)
    want = stats.binom.sf(k - 1, 40, 0.05)
    assert ours == pytest.approx(want, rel=1e-9, abs=1e-300)
    assert binom_sf([0, 41], 40, 0.05).tolist() == [1.0, 0.0]


def test_binom_sf_hand_case() -> None:
    # P(X >= 2) for Bin(3, 1/2) = (3 + 1) / 8
    assert float(binom_sf(2, 3, 0.5)) == pytest.approx(0.5)


def test_shrunk_rate_hand_case() -> None:
    assert shrunk_rate([5], [100], 0.1, 100).tolist() == pytest.approx([15 / 200])


def test_upper_rate_is_the_beta_posterior_quantile() -> None:
    got = upper_rate([3, 0], [200, 0], 0.02, 50, quantile=0.9)
    a = np.array([3 + 50 * 0.02, 50 * 0.02])
    b = np.array([197 + 50 * 0.98, 50 * 0.98])
    assert got == pytest.approx(stats.beta.ppf(0.9, a, b), rel=1e-9)
