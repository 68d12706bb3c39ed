"""The detectors' null models: beta-binomial / max-cell tails against scipy, the
reference chunks they read, and their false-positive rate on clean null counts
(cents- and beneficiary-shaped, iid and over-dispersed)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from scipy import stats

from driftwatch.monitors.dispersion import (
    ReferenceDispersion,
    between_concentration,
    cells_estimator,
    cells_vs_reference,
    combine_concentrations,
    homogeneity_pvalue,
    pooled_prior,
    rate_estimator,
    rate_pvalue,
)
from driftwatch.monitors.reference import SegmentTable
from driftwatch.stats.dispersion import chi2_inflation
from driftwatch.stats.psi import psi_test

T = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)


def test_rate_pvalue_is_the_beta_binomial_predictive_tail() -> None:
    k, n = np.array([4.0, 9.0]), np.array([30.0, 30.0])
    k_ref, n_ref = np.array([20.0, 20.0]), np.array([1000.0, 1000.0])
    p, rate, pmin = rate_pvalue(k, n, k_ref, n_ref, 0.05, 100.0, np.array([np.inf, 200.0]))
    r = (20 + 100 * 0.05) / 1100
    c0 = 1100.0  # no dispersion: concentration of the reference + prior rows
    # the reference is chunks of about a window's rows (30): design effect 1 + 29 rho
    c1 = 1 / ((1 + 29 / 201) / 1101 + 1 / 201) - 1
    assert rate.tolist() == pytest.approx([r, r])
    assert p[0] == pytest.approx(stats.betabinom.sf(3, 30, r * c0, (1 - r) * c0), rel=1e-8)
    assert p[1] == pytest.approx(stats.betabinom.sf(8, 30, r * c1, (1 - r) * c1), rel=1e-8)
    assert pmin[0] == pytest.approx(stats.betabinom.pmf(30, 30, r * c0, (1 - r) * c0), rel=1e-6)


def test_reference_dispersion_reads_spread_chunks_once_a_day() -> None:
    calls: list[tuple[dt.datetime, dt.datetime]] = []
    rng = np.random.default_rng(0)

    def fetch(lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        calls.append((lo, hi))
        n = 200
        k_calm = rng.binomial(n, 0.1)
        k_wild = rng.binomial(n, rng.choice([0.02, 0.3]))
        return SegmentTable.from_wide(["calm", "wild"], [[n, n], [k_calm, k_wild]])

    disp = ReferenceDispersion(fetch, rate_estimator, chunk_s=3600)
    week = dt.timedelta(days=7)
    conc = disp.concentration(["calm", "wild", "unknown"], T - week, T)
    assert len(calls) == 24 and all((hi - lo).total_seconds() == 3600 for lo, hi in calls)
    assert {lo.hour for lo, _ in calls} == set(range(24))
    # the wild segment is strongly over-dispersed; calm and unknown get the median
    assert conc[1] < 10 and conc[0] == conc[2] and conc[0] > conc[1]
    disp.concentration(["calm"], T - week + dt.timedelta(hours=5), T + dt.timedelta(hours=5))
    assert len(calls) == 24  # not yet a day later
    disp.concentration(["calm"], T - week + dt.timedelta(days=1), T + dt.timedelta(days=1))
    assert len(calls) == 48


def test_combine_uses_the_pool_where_chunks_are_too_few() -> None:
    stack = np.zeros((3, 4, 2))
    stack[0, :, 0], stack[0, :, 1] = 100, [10, 10, 10, 10]
    stack[1, :, 0], stack[1, :, 1] = 100, [0, 30, 0, 30]
    stack[2, 0, 0] = 5  # one chunk only
    conc, pool = combine_concentrations(stack, rate_estimator)
    assert math.isfinite(pool)
    assert conc[0] == conc[2] == pool
    assert conc[1] < pool


def test_sparse_segments_borrow_the_pool_instead_of_their_own_noise() -> None:
    """Six chunks of three rows over 100 cents cells say next to nothing about a
    segment's dispersion; with the pooled estimate it gets the busy segments'."""
    rng = np.random.default_rng(4)
    prof = np.full(100, 0.6 / 99)
    prof[0] = 0.4
    busy = np.stack([rng.multinomial(500, rng.dirichlet(prof * 300)) for _ in range(6 * 40)])
    sparse = np.stack([rng.multinomial(3, prof) for _ in range(6 * 40)])
    stack = np.concatenate([busy.reshape(40, 6, 100), sparse.reshape(40, 6, 100)]).astype(float)
    own = cells_estimator(stack)
    # what the sparse segments say alone: an estimate with a huge sampling variance
    assert np.all(own.variance[40:] > 100 * np.median(own.variance[:40]))
    conc, pool = combine_concentrations(stack, cells_estimator)
    # the pool recovers the busy segments' concentration (300) within a factor ~2
    assert 100 < pool < 700
    assert conc[40:] == pytest.approx(np.full(40, pool), rel=1e-3)
    assert np.all(conc[:40] <= pool)


def _cents_null(rng: np.random.Generator, segments: int, windows: int, disp: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    prof = np.ones((segments, 100))
    prof[:, 0] = rng.uniform(10, 40, segments)
    prof[:, 99] = rng.uniform(3, 15, segments)
    prof /= prof.sum(axis=1, keepdims=True)
    vol = np.array([5.0, 20.0, 100.0, 400.0])[np.arange(segments) % 4]

    def shares(p: np.ndarray) -> np.ndarray:
        if math.isinf(disp):
            return p
        g = rng.gamma(p * disp)
        return np.asarray(g / g.sum(axis=-1, keepdims=True))

    ref = np.stack([rng.multinomial(int(v * 168), p) for v, p in zip(vol, prof, strict=True)])
    chunks = np.stack([
        rng.multinomial(rng.poisson(np.full(24, v)), shares(np.tile(p, (24, 1))))
        for v, p in zip(vol, prof, strict=True)
    ]).astype(float)
    seg = np.repeat(np.arange(segments), windows)
    cur = rng.multinomial(rng.poisson(vol[seg]), shares(prof[seg])).astype(float)
    return ref.astype(float), chunks, cur, seg


@pytest.mark.parametrize("disp", [math.inf, 300.0])
def test_cents_null_false_positive_rate_at_most_nominal(disp: float) -> None:
    rng = np.random.default_rng(5)
    ref, chunks, cur, seg = _cents_null(rng, 200, 100, disp)
    conc, _ = combine_concentrations(chunks, cells_estimator)
    total = ref.sum(axis=0)
    overall = (total + 0.5) / (total.sum() + 50)
    keep = cur.sum(axis=1) >= 5
    p = cells_vs_reference(cur[keep], ref[seg[keep]], overall, 100.0, conc[seg[keep]]).pvalue
    assert len(p) > 15_000
    for alpha in (1e-2, 1e-3):
        assert (p <= alpha).mean() <= 1.5 * alpha
    # the same data against the binomial with the reference's point shares: too many
    if not math.isinf(disp):
        plain = cells_vs_reference(cur[keep], ref[seg[keep]], overall, 1e-9).pvalue
        assert (plain <= 1e-3).mean() > 3e-3

@pytest.mark.parametrize("disp", [math.inf, 300.0])
def test_new_merchant_stratum_null_false_positive_rate_at_most_nominal(disp: float) -> None:
    """The cents detector's ``new_merchant_cell``: the window's rows at young merchants
    (here a random tenth of each window's rows, which is the null: merchant age says
    nothing about cents) against the whole segment's reference shares and dispersion.
    Busy segments give the stratum tens of rows, sparse ones a handful."""
    rng = np.random.default_rng(8)
    ref, chunks, cur, seg = _cents_null(rng, 200, 100, disp)
    young = rng.binomial(cur.astype(np.int64), 0.1).astype(float)
    conc, _ = combine_concentrations(chunks, cells_estimator)
    total = ref.sum(axis=0)
    overall = (total + 0.5) / (total.sum() + 50)
    keep = young.sum(axis=1) >= 4  # min_count_new: fewer rows are not tested
    p = cells_vs_reference(young[keep], ref[seg[keep]], overall, 100.0, conc[seg[keep]]).pvalue
    assert len(p) > 4_000
    for alpha in (1e-2, 1e-3):
        assert (p <= alpha).mean() <= 1.5 * alpha


def test_beneficiary_shaped_null_false_positive_rate_at_most_nominal() -> None:
    rng = np.random.default_rng(6)
    segments, windows = 200, 100
    ranks = np.argsort(rng.random((segments, 128)), axis=1) + 1.0
    prof = 1.0 / ranks**1.1 + 0.002
    prof /= prof.sum(axis=1, keepdims=True)
    vol = np.array([5.0, 20.0, 100.0])[np.arange(segments) % 3]
    ref = np.stack([rng.multinomial(int(v * 168), p) for v, p in zip(vol, prof, strict=True)])
    seg = np.repeat(np.arange(segments), windows)
    cur = rng.multinomial(rng.poisson(vol[seg]), prof[seg]).astype(float)
    total = ref.sum(axis=0)
    overall = (total + 0.5) / (total.sum() + 64)
    keep = cur.sum(axis=1) >= 5
    p = cells_vs_reference(cur[keep], ref[seg[keep]].astype(float), overall, 50.0).pvalue
    for alpha in (1e-2, 1e-3):
        assert (p <= alpha).mean() <= 1.5 * alpha


def test_reference_dispersion_rereads_ever_less_often_while_the_store_is_young() -> None:
    calls: list[dt.datetime] = []
    first = T - dt.timedelta(hours=30)  # the store's first event

    def fetch(lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        calls.append(lo)
        if lo < first:
            return SegmentTable.empty(2)
        return SegmentTable.from_wide(["a"], [[100], [10]])

    disp = ReferenceDispersion(fetch, rate_estimator, chunk_s=3600)
    week = dt.timedelta(days=7)
    h = dt.timedelta(hours=1)
    disp.concentration(["a"], T - week, T)
    assert len(calls) == 24  # the day's anchor: some chunks were empty
    disp.concentration(["a"], T - week + 0.5 * h, T + 0.5 * h)
    assert len(calls) == 24
    disp.concentration(["a"], T - week + h, T + h)
    assert len(calls) == 48  # read again an hour into the day
    disp.concentration(["a"], T - week + 2 * h, T + 2 * h)
    assert len(calls) == 72  # two hours
    disp.concentration(["a"], T - week + 3 * h, T + 3 * h)
    assert len(calls) == 72  # not three
    disp.concentration(["a"], T - week + 4 * h, T + 4 * h)
    assert len(calls) == 96  # then four hours in, eight, sixteen
    disp.concentration(["a"], T - week + 7 * h, T + 7 * h)
    assert len(calls) == 96
    assert disp.anchor(T - week + 7 * h, T + 7 * h) == T + 4 * h
    assert disp.anchor(T - week + 17 * h, T + 17 * h) == T + 16 * h


@pytest.mark.parametrize("store_age_h", [30.0, 24.0 * 9])
def test_a_cold_first_pass_gets_the_estimate_of_a_warm_one(store_age_h: float) -> None:
    """A detector started at any pass (a restart, a backfill from there) reads the
    estimate a process running since long before uses at that pass: live and
    backfill agree whatever their start (young and mature stores)."""
    first = T - dt.timedelta(hours=store_age_h)

    def fetch(lo: dt.datetime, hi: dt.datetime) -> SegmentTable:
        if lo < first:
            return SegmentTable.empty(2)
        # a deterministic, over-dispersed share per chunk and segment
        rng = np.random.default_rng(int(lo.timestamp()))
        n = rng.integers(50, 200, 3)
        k = rng.binomial(n, rng.beta(2.0, 18.0, 3))
        return SegmentTable.from_wide(["a", "b", "c"], [n, k])

    week = dt.timedelta(days=7)
    step = dt.timedelta(minutes=5)
    passes = [T + i * step for i in range(0, 12 * 40, 7)]  # 40 hours, every 35 min
    warm = ReferenceDispersion(fetch, rate_estimator, chunk_s=3600)
    seen = [warm.concentration(["a", "b", "c"], at - week, at) for at in passes]
    for i in range(0, len(passes), 5):
        cold = ReferenceDispersion(fetch, rate_estimator, chunk_s=3600)
        for j in range(i, min(i + 3, len(passes))):
            at = passes[j]
            assert cold.concentration(["a", "b", "c"], at - week, at).tolist() == seen[j].tolist()
    assert len({tuple(x.tolist()) for x in seen}) > 1  # the estimate did move


def test_between_concentration_recovers_how_alike_segments_are() -> None:
    """Segments' reference shares drawn Dirichlet(overall * 40) around all traffic."""
    rng = np.random.default_rng(6)
    overall = np.full(20, 1 / 20)
    shares = rng.dirichlet(overall * 40.0, 800)
    ref = np.stack([rng.multinomial(2000, s) for s in shares]).astype(float)
    assert between_concentration(ref) == pytest.approx(40.0, rel=0.25)
    alike = np.stack([rng.multinomial(2000, overall) for _ in range(800)]).astype(float)
    assert between_concentration(alike) > 2000
    assert math.isinf(between_concentration(ref[:1]))


def test_homogeneity_pvalue_f_tail_where_a_spread_is_estimated() -> None:
    """Against scipy: the chi-square where the inflation is 1, F(df, (chunks - 1) df)
    of the corrected statistic over df where it was estimated."""
    rng = np.random.default_rng(11)
    ref = rng.multinomial(7000, np.full(10, 0.1), size=3).astype(float)
    cur = rng.multinomial(1000, [0.2] + [0.8 / 9] * 9, size=3).astype(float)
    conc = np.array([np.inf, 400.0, 50.0])
    chunk_n = ref.sum(axis=1) / 168.0
    stat, p = homogeneity_pvalue(ref, cur, chunk_n, conc, 24.0)
    _, p_chi2 = homogeneity_pvalue(ref, cur, chunk_n, conc)
    raw = np.asarray(psi_test(ref, cur).statistic)
    phi = chi2_inflation(cur.sum(axis=1), ref.sum(axis=1), chunk_n, conc)
    assert stat == pytest.approx(raw / phi, rel=1e-12)
    assert p[0] == p_chi2[0] == pytest.approx(stats.chi2.sf(stat[0], 9), rel=1e-9)
    for i in (1, 2):
        assert p[i] == pytest.approx(stats.f.sf(stat[i] / 9, 9, 23 * 9), rel=1e-9)
        assert p_chi2[i] == pytest.approx(stats.chi2.sf(stat[i], 9), rel=1e-9)
    # in the tail the estimated spread's own noise makes the F tail heavier
    assert p_chi2[1] < 1e-2 and p[1] > p_chi2[1]


def test_pooled_prior_worked_cases() -> None:
    # nothing stored: the configured prior; a week of history: mostly the features' own
    assert pooled_prior(np.zeros(0), np.zeros(0), 1e-4, 1000.0) == pytest.approx(1e-4)
    k, n = np.array([20.0, 0.0, 4.0]), np.array([10_000.0, 10_000.0, 10_000.0])
    assert pooled_prior(k, n, 1e-4, 1000.0) == pytest.approx((24 + 0.1) / 31_000)


def test_out_of_domain_shaped_null_on_a_six_hour_reference() -> None:
    """Features whose ordinary out-of-range share is 1e-4..2e-3, each with 6 hours of
    reference: against the pooled prior the false-positive rate is at most nominal; the
    fixed prior of 1e-4 (the former null) made it several times nominal."""
    rng = np.random.default_rng(21)
    features, windows = 400, 150
    share = rng.uniform(1e-4, 2e-3, features)
    vol = np.array([100.0, 500.0, 2000.0])[np.arange(features) % 3]
    n_ref = rng.poisson(vol * 6)
    k_ref = rng.binomial(n_ref, share)
    seg = np.repeat(np.arange(features), windows)
    n = rng.poisson(vol[seg]).astype(float)
    k = rng.binomial(n.astype(np.int64), share[seg]).astype(float)
    prior = pooled_prior(k_ref.astype(float), n_ref.astype(float), 1e-4, 1000.0)
    args = (k, n, k_ref[seg].astype(float), n_ref[seg].astype(float))
    p, _, _ = rate_pvalue(*args, prior, 1000.0)
    fixed, _, _ = rate_pvalue(*args, 1e-4, 1000.0)
    assert (p <= 1e-2).mean() <= 1.5e-2
    assert (fixed <= 1e-2).mean() > 2.5e-2
