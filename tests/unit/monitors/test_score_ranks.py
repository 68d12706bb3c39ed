"""score_drift by rank (issue 21): a new version's global recalibration moves no
segment's rank histogram, a backdoor in one segment does; rank histograms keep their
totals and agree with scipy's ranks on exact cases."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from driftwatch.monitors.dispersion import homogeneity_pvalue
from driftwatch.monitors.score_drift import ScoreDriftDetector, reference_bins, regroup
from driftwatch.monitors.score_ranks import rank_hist, rank_ks
from driftwatch.stats.psi import psi_test
from tests.unit.monitors.test_score_drift_predeploy import fine, recalibrate, segment, traffic


def test_rank_hist_keeps_totals_and_matches_scipy_ranks() -> None:
    rng = np.random.default_rng(3)
    # one row per fine bin: a fine bin's rank interval holds exactly its rows
    glob = fine(np.asarray(((np.arange(100) + 0.5) / 100) ** 2))
    seg = np.zeros((1, 100))
    picks = rng.choice(100, 30, replace=False)
    seg[0, picks] = 1.0
    h = rank_hist(seg, glob, 100)
    assert abs(h.sum() - 30.0) < 1e-9
    # scipy: the rank (1-based) of each picked score among the 100 is its bin + 1
    ranks = stats.rankdata(np.arange(100))[picks] - 1
    assert np.array_equal(np.flatnonzero(h[0] > 0.5), np.sort(ranks.astype(int)))


def test_recalibration_is_invisible_backdoor_is_not() -> None:
    rng = np.random.default_rng(7)
    ref_glob, seg_ref = traffic(rng), segment(rng, 2000, 0.05, 0.9)
    cur_glob, seg_cur = traffic(rng), segment(rng, 300, 0.05, 0.9)
    new_glob = recalibrate(cur_glob, 0.895, 0.20)  # dev control 1003's recalibration
    new_seg = recalibrate(seg_cur, 0.895, 0.20)
    raw = stats.ks_2samp(seg_ref, new_seg)
    assert raw.statistic > 0.2  # by score the whole segment moved: the old false alert
    d, p = rank_ks(fine(seg_ref)[None, :], fine(ref_glob), fine(new_seg)[None, :],
                   fine(new_glob))
    assert d[0] < 0.1 and p[0] > 1e-3
    # PSI as the detector takes it: 10 equal-frequency bins of the reference's ranks
    ref_r = rank_hist(fine(seg_ref)[None, :], fine(ref_glob))
    cur_r = rank_hist(fine(new_seg)[None, :], fine(new_glob))
    mapping = reference_bins(ref_r, 10)
    psi = psi_test(regroup(ref_r, mapping, 10), regroup(cur_r, mapping, 10))
    assert float(np.atleast_1d(psi.psi)[0]) < ScoreDriftDetector.psi_floor / 2
    # a backdoor: the segment's risky rows (a fifth of it) scored 0.2, not 0.9
    bad = recalibrate(segment(rng, 300, 0.2, 0.2), 0.895, 0.20)
    ref_bad = segment(rng, 2000, 0.2, 0.9)
    d, p = rank_ks(fine(ref_bad)[None, :], fine(ref_glob), fine(bad)[None, :], fine(new_glob))
    assert d[0] > 0.15 and p[0] < 1e-6


def test_rank_tests_hold_their_level_on_null_traffic() -> None:
    """Eight segments of different score mixes, the same in the reference (24 hours)
    and the current hour: the rank KS and the rank PSI's chi-square reject no more
    often than nominal (they are conservative: a segment is ranked within a total that
    holds it; 500 such hours gave 0.15x (KS) and 0.10x (PSI) of nominal at 1e-2)."""
    rng = np.random.default_rng(11)
    means = np.array([-5, -4.5, -4, -3.5, -3, -4, -4.2, -3.8])
    sizes = np.array([100, 150, 200, 300, 400, 120, 500, 1000])
    ks_p, psi_p = [], []
    for _ in range(60):
        def draw(k: int) -> NDArray[np.float64]:
            return np.array([fine(1 / (1 + np.exp(-rng.normal(m, 1.2, n * k))))
                             for m, n in zip(means, sizes, strict=True)])
        ref, cur = draw(24), draw(1)
        rg, cg = ref.sum(axis=0), cur.sum(axis=0)
        ks_p.append(rank_ks(ref, rg, cur, cg)[1])
        rr, cr = rank_hist(ref, rg), rank_hist(cur, cg)
        mapping = reference_bins(rr, 10)
        psi_p.append(homogeneity_pvalue(regroup(rr, mapping, 10), regroup(cr, mapping, 10),
                                        ref.sum(axis=1) / 24, np.full(len(means), np.inf))[1])
    for p in (np.concatenate(ks_p), np.concatenate(psi_p)):
        assert np.mean(p < 0.05) <= 0.05
        assert np.mean(p < 0.5) > 0.2  # not degenerate: the p-values do spread
