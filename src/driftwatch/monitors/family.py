"""Multiple testing over one monitor pass: Benjamini–Hochberg with Tarone's filter.

One pass tests every segment with every detector: thousands of p-values at once.
They are corrected together with Benjamini–Hochberg at the false-discovery rate
``q`` (the ``fdr_q`` setting, default 0.01: among the alerts of a pass, at most 1 %
are expected to be false discoveries; on clean traffic, where every discovery is
false, that is also the chance that a pass has any discovery at all).

Most segments are small, and an exact test on a handful of rows often *cannot*
produce a small p-value whatever the data (five rows cannot be more surprising
than all five landing on the rarest cents value). Such tests only dilute the
family. Following Tarone (1990) and Gilbert (2005), tests whose smallest
attainable p-value ``pmin`` is too large to ever be rejected are left out before
BH: with ``m(K) = #{i : pmin_i <= q / K}``, the smallest ``K`` with ``m(K) <= K``
is found and BH runs over those ``m(K)`` tests only. The FDR stays controlled
because the selection depends only on sample sizes and references, never on the
current counts' pattern.

References
----------
.. [1] Tarone, R. E. (1990). A modified Bonferroni method for discrete data.
   Biometrics 46, 515–522.
.. [2] Gilbert, P. B. (2005). A modified false discovery rate multiple-comparisons
   procedure for discrete data, applied to human immunodeficiency virus genetics.
   JRSS C 54, 143–158.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftwatch.stats.fdr import benjamini_hochberg


@dataclass(frozen=True)
class FamilyResult:
    """Outcome of :func:`tarone_bh`.

    Attributes
    ----------
    rejected : ndarray of bool
        Discoveries.
    adjusted : ndarray of float
        BH-adjusted p-values over the kept family (1 for tests left out, NaN for
        NaN input).
    in_family : ndarray of bool
        Tests kept in the family.
    m : int
        Size of the family.
    """

    rejected: NDArray[np.bool_]
    adjusted: NDArray[np.float64]
    in_family: NDArray[np.bool_]
    m: int


def tarone_keep(pmin: ArrayLike, q: float) -> NDArray[np.bool_]:
    """Which tests stay in the family: ``pmin <= q / K*`` (Gilbert's choice of K*).

    Parameters
    ----------
    pmin : array_like
        Smallest attainable p-value of each test (0 when unknown, NaN: not a test).
    q : float
        Target false-discovery rate, ``0 < q < 1``.

    Examples
    --------
    >>> tarone_keep([0.0, 0.0, 0.2, 1e-6, float("nan")], 0.05).tolist()
    [True, True, False, True, False]
    """
    if not 0 < q < 1:
        raise ValueError(f"q={q!r}; allowed: 0 < q < 1")
    p = np.asarray(pmin, dtype=np.float64)
    valid = np.isfinite(p)
    s = np.sort(p[valid])
    m = s.size
    if m == 0:
        return np.zeros(p.shape, dtype=bool)
    ks = np.arange(1, m + 1, dtype=np.float64)
    counts = np.searchsorted(s, q / ks, side="right")
    ok = np.flatnonzero(counts <= ks)
    k_star = float(ks[ok[0]]) if ok.size else float(m)
    return np.asarray(valid & (np.where(valid, p, np.inf) <= q / k_star), dtype=bool)


def tarone_bh(pvalues: ArrayLike, pmin: ArrayLike, q: float) -> FamilyResult:
    """Benjamini–Hochberg at level ``q`` over the tests kept by :func:`tarone_keep`.

    Examples
    --------
    >>> res = tarone_bh([1e-9, 0.3, 0.01, 0.5], [0.0, 0.0, 0.2, 0.0], 0.05)
    >>> res.rejected.tolist(), res.m
    ([True, False, False, False], 3)
    """
    p = np.asarray(pvalues, dtype=np.float64)
    keep = tarone_keep(pmin, q) & np.isfinite(p)
    adjusted = np.where(np.isfinite(p), 1.0, np.nan)
    rejected = np.zeros(p.shape, dtype=bool)
    m = int(keep.sum())
    if m:
        res = benjamini_hochberg(p[keep], q=q)
        rejected[keep] = np.asarray(res.rejected, dtype=bool)
        adjusted[keep] = np.asarray(res.adjusted, dtype=np.float64)
    return FamilyResult(rejected, np.asarray(adjusted, dtype=np.float64), keep, m)
