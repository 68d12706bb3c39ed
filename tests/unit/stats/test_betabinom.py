"""Beta-binomial tails: scipy's pmf summed into the far tail, and hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from driftwatch.stats.betabinom import _betabinom_logpmf, _betabinom_tail, betabinom_sf


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


def _one_step_at_a_time(c: float, n: float, a: float, b: float) -> float:
    """The tail sum of :func:`driftwatch.stats.betabinom._betabinom_tail` for one tail,
    one step at a time (the operations of the block-wise sum, in the same order)."""
    if c <= 0:
        return 1.0
    if c > n:
        return 0.0
    lower = c - 1.0 <= n * a / (a + b)
    k = c - 1.0 if lower else c
    term = float(np.exp(_betabinom_logpmf(np.array([k]), np.array([n]), np.array([a]),
                                          np.array([b]))[0]))
    acc = 0.0
    with np.errstate(all="ignore"):
        while True:
            acc = acc + term
            if lower:
                ratio = np.float64(k) * (n - k + b) / ((n - k + 1.0) * (k - 1.0 + a))
            else:
                ratio = np.float64(n - k) * (k + a) / ((k + 1.0) * (n - k - 1.0 + b))
            k += -1.0 if lower else 1.0
            term = term * ratio
            if (k < 0 if lower else k > n) or (ratio < 1.0 and term <= 1e-15 * acc):
                break
    return float(min(max(1.0 - acc if lower else acc, 0.0), 1.0))


def test_block_wise_tail_sum_is_the_step_by_step_sum_bit_for_bit() -> None:
    # heavy tails (concentration < 1: thousands of steps) next to light ones, both sides
    # of the mean: the block-wise sum must give exactly the one-step-at-a-time result
    rng = np.random.default_rng(11)
    size = 400
    n = rng.integers(1, 6000, size).astype(float)
    p = rng.beta(0.5, 10.0, size)
    conc = rng.choice([0.05, 0.5, 3.0, 50.0, 1e4], size)
    c = np.minimum(n, rng.poisson(n * p * rng.choice([0.3, 1.0, 3.0], size)) + 1.0)
    a, b = p * conc + 1e-6, (1.0 - p) * conc
    got = _betabinom_tail(c, n, a, b)
    want = [_one_step_at_a_time(*v) for v in zip(c, n, a, b, strict=True)]
    assert got.tolist() == want
    # and the tails agree with scipy's pmf summed (relative 1e-8 where it matters)
    for i in range(0, size, 40):
        logpmf = stats.betabinom.logpmf(np.arange(n[i] + 1), n[i], a[i], b[i])
        tail = float(np.exp(logsumexp(logpmf[int(c[i]):])))
        assert got[i] == pytest.approx(tail, rel=1e-8, abs=1e-13)
