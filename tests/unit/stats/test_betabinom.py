"""Beta-binomial tails: scipy's pmf summed into the far tail, and hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from driftwatch.stats.betabinom import betabinom_sf


def test_betabinom_sf_matches_scipy_into_the_far_tail() -> None:
    for n, p, c in [(20, 0.2, 10.0), (300, 0.01, 50.0), (1000, 0.3, 400.0), (5, 0.5, 1.0)]:
        ks = np.arange(0, n + 1)
        ours = betabinom_sf(ks, n, p, c)
        # the tail summed from scipy's pmf (scipy's sf is 1 - cdf: inexact below 1e-12)
        logpmf = stats.betabinom.logpmf(np.arange(n + 1), n, p * c, (1 - p) * c)
        want = np.exp([logsumexp(logpmf[k:]) for k in ks])
        big = want > 1e-280
        assert ours[big] == pytest.approx(want[big], rel=1e-8, abs=1e-15)
    assert betabinom_sf([0, 3, 11], 10, 0.1, np.inf).tolist() == pytest.approx(
        [1.0, stats.binom.sf(2, 10, 0.1), 0.0]
    )


def test_betabinom_sf_hand_case() -> None:
    # BetaBinomial(1, 1, 1): P(X >= 1) = 1/2; (2, 1, 1) is uniform on {0, 1, 2}
    assert float(betabinom_sf(1, 1, 0.5, 2.0)) == pytest.approx(0.5)
    assert float(betabinom_sf(2, 2, 0.5, 2.0)) == pytest.approx(1 / 3)
