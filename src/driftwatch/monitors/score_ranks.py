"""Scores replaced by their rank within all traffic of their version and window.

A new model version may be recalibrated as a whole (one logit scale and shift for
every row): every score moves, but no row's rank within the version's traffic does.
Comparing a segment's *ranks* (the probability integral transform through the
window's whole score distribution, on the 100 fine bins of
:data:`~driftwatch.monitors.score_drift.FINE_BIN`) instead of its scores makes a drift
test blind to any monotone recalibration and keeps it sensitive to a change of one
segment relative to the rest (a backdoor).
"""

from __future__ import annotations

import numpy as np

from driftwatch.monitors.base import FloatArray
from driftwatch.stats.ks import ks_pvalue


def rank_cdf(counts: FloatArray, global_counts: FloatArray, at: FloatArray) -> FloatArray:
    """Empirical CDF, at the ranks ``at``, of rows of fine histograms ``counts`` whose
    scores are replaced by their rank within ``global_counts`` (the version's whole
    traffic): a row of fine bin ``b`` lies uniformly in the bin's rank interval
    ``[below_b, below_b + g_b] / total``.

    >>> rank_cdf(np.array([[1.0, 1.0]]), np.array([3.0, 1.0]), np.array([0.375, 0.875]))
    array([[0.25, 0.75]])
    """
    total = float(global_counts.sum())
    below = (np.cumsum(global_counts) - global_counts) / max(total, 1.0)
    width = global_counts / max(total, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (at[None, :] - below[:, None]) / width[:, None]
    share = np.where(width[:, None] > 0, np.clip(share, 0.0, 1.0),
                     (at[None, :] >= below[:, None]).astype(np.float64))
    n = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        # row by row (einsum, no BLAS): a row's last bits must not depend on how many
        # rows the pass's table has or their order (backfill blocks vs pass by pass)
        product = np.einsum("sf,fk->sk", counts, share)
        return np.asarray(np.where(n > 0, product / n, 0.0), dtype=np.float64)


def rank_ks(
    ref: FloatArray, ref_global: FloatArray, cur: FloatArray, cur_global: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """KS distance and p-value between rows of fine score histograms ``ref`` and
    ``cur``, each row's scores replaced by their ranks within their own version's
    traffic (``*_global``).

    ``D`` is the largest gap between the two rank CDFs (:func:`rank_cdf`, linear
    inside each fine bin, so a bin's rows are never ordered all before or all after
    the other version's rows of the same scores); the p-value is the two-sample KS
    tail at these sample sizes (:func:`driftwatch.stats.ks.ks_pvalue`: exact for small
    samples) of ``D`` rounded down to the lattice of attainable values. Spreading a
    bin's rows over its interval can only shrink ``D``, so the test is conservative.

    >>> g = np.ones(100) * 10
    >>> ref = np.zeros((1, 100)); ref[0, :50] = 1
    >>> d, p = rank_ks(ref, g, ref.copy(), g)
    >>> float(d[0]), float(p[0])
    (0.0, 1.0)
    """
    edges = []
    for g in (ref_global, cur_global):
        total = max(float(g.sum()), 1.0)
        edges.append(np.cumsum(g) / total)
    at = np.unique(np.concatenate([[0.0], *edges]))
    d = np.max(np.abs(rank_cdf(ref, ref_global, at) - rank_cdf(cur, cur_global, at)), axis=1)
    n_ref = np.rint(ref.sum(axis=1)).astype(np.int64)
    n_cur = np.rint(cur.sum(axis=1)).astype(np.int64)
    ok = (n_ref > 0) & (n_cur > 0)
    p = np.ones(len(d))
    if ok.any():
        g = np.gcd(n_ref[ok], n_cur[ok])
        h = np.floor(d[ok] * n_ref[ok] * n_cur[ok] / g + 1e-9).astype(np.int64)
        p[ok] = np.minimum(ks_pvalue(h, n_ref[ok], n_cur[ok])[0], 1.0)
    return np.asarray(d, dtype=np.float64), p


def rank_hist(counts: FloatArray, global_counts: FloatArray, bins: int = 100) -> FloatArray:
    """Rows of fine histograms ``counts`` as histograms of their ranks within
    ``global_counts`` on ``bins`` equal-width rank bins of ``[0, 1]`` (each fine bin's
    rows spread uniformly over its rank interval, as in :func:`rank_cdf`; the counts
    are fractional and each row keeps its total).

    >>> rank_hist(np.array([[2.0, 0.0]]), np.array([1.0, 1.0]), 2).tolist()
    [[2.0, 0.0]]
    >>> rank_hist(np.array([[1.0, 3.0]]), np.array([2.0, 2.0]), 4).tolist()
    [[0.5, 0.5, 1.5, 1.5]]
    """
    at = np.arange(bins + 1, dtype=np.float64) / bins
    cdf = rank_cdf(counts, global_counts, at)
    cdf[:, -1] = np.where(counts.sum(axis=1) > 0, 1.0, 0.0)
    n = counts.sum(axis=1, keepdims=True)
    return np.asarray(np.diff(cdf, axis=1) * n, dtype=np.float64)
