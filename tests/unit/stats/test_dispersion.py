"""Over-dispersion: beta-binomial tails against scipy, moment estimators recovering the
concentration they were simulated with, and the false-positive rate they give."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftwatch.stats.betabinom import betabinom_sf
from driftwatch.stats.dispersion import (
    MIN_CONCENTRATION,
    DispersionMoments,
    cell_concentration,
    cell_moments,
    chi2_inflation,
    pooled_rho,
    predictive_concentration,
    rate_concentration,
    rate_moments,
)
from driftwatch.stats.psi import psi_test


def test_rate_concentration_recovers_the_simulated_one() -> None:
    rng = np.random.default_rng(1)
    for c in (10.0, 100.0, 1000.0):
        p = rng.beta(0.05 * c, 0.95 * c, (400, 168))
        n = rng.poisson(80, (400, 168))
        est = rate_concentration(rng.binomial(n, p), n)
        assert np.median(est) == pytest.approx(c, rel=0.15)
    # binomial chunks: mostly inf (no dispersion), never a small concentration
    n = np.full((400, 168), 80)
    est = rate_concentration(rng.binomial(n, 0.05), n)
    assert np.mean(np.isinf(est)) > 0.4 and np.min(est) > 150


def test_cell_concentration_recovers_the_simulated_one() -> None:
    rng = np.random.default_rng(2)
    base = np.log10(1 + 1 / np.arange(1, 10))
    c = 200.0
    shares = rng.dirichlet(base * c, (100, 48))
    counts = np.stack([[rng.multinomial(150, s) for s in seg] for seg in shares])
    est = cell_concentration(counts)
    assert np.median(est) == pytest.approx(c, rel=0.15)
    flat = np.stack([rng.multinomial(150, base, 48) for _ in range(100)])
    assert np.mean(np.isinf(cell_concentration(flat))) > 0.3


def test_predictive_and_inflation_hand_cases() -> None:
    assert predictive_concentration(99.0, np.inf).tolist() == pytest.approx(99.0)
    # equal variances add: 1/(c+1) = 2/100
    assert float(predictive_concentration(99.0, 99.0)) == pytest.approx(49.0)
    assert float(chi2_inflation(500, 5000, 500, np.inf)) == 1.0
    # rho = 0.01, phi_cur = 1 + 499 rho, phi_ref = 1 + 499 rho as well
    assert float(chi2_inflation(500, 5000, 500, 99.0)) == pytest.approx(5.99)
    with pytest.raises(ValueError, match="concentration"):
        predictive_concentration(10.0, -1.0)
    # all-or-nothing reference chunks (concentration 0): the floor, never a crash
    assert float(predictive_concentration(1.0, 0.0)) == MIN_CONCENTRATION
    assert float(predictive_concentration(10.0, 0.0)) == MIN_CONCENTRATION
    with pytest.raises(ValueError, match="k <= n"):
        rate_concentration([[3]], [[2]])


def test_dispersed_null_is_calibrated_only_with_its_concentration() -> None:
    # Hourly shares vary (c = 300) around 5 %: the binomial tail rejects far too
    # often, the beta-binomial with the estimated concentration does not.
    rng = np.random.default_rng(3)
    c, p, rows = 300.0, 0.05, 40_000
    n = rng.poisson(200, rows)
    k = rng.binomial(n, rng.beta(p * c, (1 - p) * c, rows))
    ref_n = rng.poisson(200, (200, 168))
    ref_k = rng.binomial(ref_n, rng.beta(p * c, (1 - p) * c, (200, 168)))
    est = float(np.median(rate_concentration(ref_k, ref_n)))
    binom = betabinom_sf(k, n, p, np.inf)
    beta = betabinom_sf(k, n, p, est)
    alpha = 1e-3
    assert (binom <= alpha).mean() > 5 * alpha
    assert (beta <= alpha).mean() <= 1.5 * alpha


def test_inflated_chi_square_is_calibrated_on_dirichlet_chunks() -> None:
    rng = np.random.default_rng(4)
    base = np.log10(1 + 1 / np.arange(1, 10))
    c, chunks, m, rows = 500.0, 7, 400, 4000
    ref = np.zeros((rows, 9))
    for _ in range(chunks):
        for i, s in enumerate(rng.dirichlet(base * c, rows)):
            ref[i] += rng.multinomial(m, s)
    cur = np.stack([rng.multinomial(m, s) for s in rng.dirichlet(base * c, rows)])
    res = psi_test(ref, cur)
    phi = chi2_inflation(m, ref.sum(axis=1), m, c)
    plain = np.asarray(res.pvalue)
    fixed = stats.chi2.sf(np.asarray(res.statistic) / phi, 8)
    alpha = 1e-2
    assert (plain <= alpha).mean() > 2 * alpha
    assert (fixed <= alpha).mean() <= 1.5 * alpha


def test_moment_variance_matches_the_spread_of_the_estimate_on_binomial_chunks() -> None:
    """The variance the pooling weighs by is the sampling variance of the estimate."""
    rng = np.random.default_rng(11)
    n = np.full((4000, 24), 60.0)
    m = rate_moments(rng.binomial(60, 0.05, n.shape), n)
    ok = np.isfinite(m.rho)
    assert float(np.var(m.rho[ok])) == pytest.approx(float(np.median(m.variance[ok])), rel=0.2)
    counts = rng.multinomial(40, np.full(10, 0.1), (3000, 24)).astype(float)
    mc = cell_moments(counts)
    assert float(np.var(mc.rho)) == pytest.approx(float(np.median(mc.variance)), rel=0.2)
    # unbiased under no dispersion
    assert abs(float(np.mean(m.rho[ok]))) < 3 * float(np.sqrt(np.median(m.variance[ok]) / ok.sum()))


def test_pooled_rho_hand_case() -> None:
    """DerSimonian-Laird by hand: estimates 0.01 and 0.03 with variances 1e-4 each:
    fixed mean 0.02, Q = 2 * 0.01**2 / 1e-4 = 2, tau2 = (2 - 1) / (2e4 - 1e4) = 1e-4,
    B = 1e-4 / 2e-4 = 1/2: shrunk 0.015 and 0.025, pool 0.02."""
    m = DispersionMoments(np.array([0.01, 0.03]), np.array([1e-4, 1e-4]))
    rho, pool = pooled_rho(m)
    assert pool == pytest.approx(0.02)
    assert rho.tolist() == pytest.approx([0.015, 0.025])
    # alike estimates (Q below its degrees of freedom): everyone gets the pool
    same = DispersionMoments(np.array([0.02, 0.021, np.nan]), np.array([1e-4, 1e-4, np.inf]))
    rho2, pool2 = pooled_rho(same)
    assert rho2.tolist() == pytest.approx([pool2] * 3)
    assert pooled_rho(DispersionMoments(np.array([np.nan]), np.array([np.inf])))[1] == 0.0


def test_pooled_rho_recovers_a_common_dispersion_from_sparse_segments() -> None:
    """Hundreds of segments of a few rows per chunk: each alone says little, the pool
    recovers the concentration they share (beta-binomial, c = 50)."""
    rng = np.random.default_rng(12)
    shares = rng.beta(0.1 * 50, 0.9 * 50, (600, 24))
    n = rng.poisson(15, (600, 24)).astype(float)
    k = rng.binomial(n.astype(int), shares).astype(float)
    _, pool = pooled_rho(rate_moments(k, n))
    assert 1 / pool - 1 == pytest.approx(50, rel=0.35)


def test_predictive_with_a_young_reference_of_one_chunk_is_calibrated() -> None:
    # null: the reference is ONE chunk (a young segment: hours of history) and the
    # window another, each drawing its own share around p (beta, concentration 100).
    # Without the chunk's design effect the predictive forgets that the reference
    # share wanders too and rejects far too often; with it the rate is nominal.
    from scipy import stats as st

    from driftwatch.stats.dispersion import predictive_concentration

    rng = np.random.default_rng(11)
    trials, m, n, p, c, alpha = 20_000, 300, 300, 0.1, 100.0, 0.01
    k_ref = rng.binomial(m, rng.beta(p * c, (1 - p) * c, trials)).astype(float)
    k = rng.binomial(n, rng.beta(p * c, (1 - p) * c, trials)).astype(float)
    rate = (k_ref + 0.5) / (m + 1.0)

    def reject(chunk_n: float) -> float:
        conc = predictive_concentration(np.full(trials, m + 1.0), np.full(trials, c), chunk_n)
        pv = st.betabinom.sf(k - 1, n, rate * conc, (1 - rate) * conc)
        return float(np.mean(pv <= alpha))

    assert reject(1.0) > 2 * alpha  # measured 2.9x
    assert reject(float(m)) <= 1.5 * alpha
