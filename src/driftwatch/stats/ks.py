"""Two-sample Kolmogorov–Smirnov test, from raw samples or from binned counts.

:func:`ks_2samp` takes two raw samples; :func:`ks_from_counts` takes counts over
shared bin edges (so ClickHouse can send histograms instead of rows) and is
vectorised over segments. Both give the statistic ``D = max |F_ref - F_cur|``
and a two-sided p-value: exact for small samples (lattice-path counting, the
distribution scipy's ``method='exact'`` computes), asymptotic otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from driftwatch.stats._arrays import BoolArray, FloatArray, IntArray, count_pair, out_int

__all__ = ["EXACT_AUTO_MAX_PRODUCT", "KSResult", "ks_2samp", "ks_from_counts", "ks_pvalue"]

KSMethod = Literal["auto", "exact", "asymp"]
_METHODS: tuple[str, ...] = ("auto", "exact", "asymp")

#: ``method='auto'`` is exact when ``n_ref * n_cur`` is at most this.
EXACT_AUTO_MAX_PRODUCT = 2_500
#: Rows x padded width of one exact block (bounds memory to a few tens of MB).
_BLOCK_CELLS = 1 << 21


@dataclass(frozen=True)
class KSResult:
    """Result of :func:`ks_2samp` / :func:`ks_from_counts` (arrays when vectorised).

    Attributes
    ----------
    statistic : float or ndarray
        ``D = max |F_ref(x) - F_cur(x)|``; NaN where a sample is empty.
    pvalue : float or ndarray
        Two-sided p-value; NaN where a sample is empty.
    n_ref, n_cur : int or ndarray
        Sample sizes.
    exact : bool or ndarray
        Whether the p-value is exact (lattice-path count) or asymptotic.
    """

    statistic: float | FloatArray
    pvalue: float | FloatArray
    n_ref: int | IntArray
    n_cur: int | IntArray
    exact: bool | BoolArray = False


def _exact_sf_bucket(small: IntArray, big: IntArray, h: IntArray) -> FloatArray:
    """P(D >= h / lcm) for rows of similar size, by counting lattice paths.

    A random ordering of the pooled sample is a lattice path from (0, 0) to
    (small, big); ``i / small - j / big = t / lcm`` with
    ``t = i * (big / g) - j * (small / g)``. Row ``i`` of the path counts that
    stay inside ``|t| < h`` is a cumulative sum over row ``i - 1``, restricted
    to the band; rows are rescaled to avoid overflow.
    """
    rows = small.size
    width = int(big.max()) + 1
    g = np.gcd(small, big)
    a = (big // g)[:, None]
    b = (small // g)[:, None]
    hh = h[:, None]
    j = np.arange(width, dtype=np.int64)[None, :]
    hi = np.minimum(-((-hh) // b) - 1, big[:, None])
    counts = (j <= hi).astype(np.float64)  # row 0: j * b < h
    log_scale = np.zeros(rows)
    last = np.zeros(rows)
    last_scale = np.zeros(rows)
    row_ix = np.arange(rows)
    for i in range(1, int(small.max()) + 1):
        # inside iff (i*a - h) / b < j < (i*a + h) / b, and 0 <= j <= big
        lo = (i * a - hh) // b + 1
        hi = np.minimum(-((-(i * a + hh)) // b) - 1, big[:, None])
        new = np.cumsum(np.where(j >= lo, counts, 0.0), axis=1)
        new = np.where(j <= hi, new, 0.0)
        top = new.max(axis=1)
        top = np.where(top > 0, top, 1.0)
        counts = new / top[:, None]
        log_scale += np.log(top)
        done = small == i
        last[done] = counts[row_ix[done], big[done]]
        last_scale[done] = log_scale[done]
    log_total = (
        special.gammaln(small + big + 1.0)
        - special.gammaln(small + 1.0)
        - special.gammaln(big + 1.0)
    )
    with np.errstate(divide="ignore"):
        inside = np.exp(np.log(last) + last_scale - log_total)
    return np.asarray(np.clip(1.0 - inside, 0.0, 1.0), dtype=np.float64)


def _exact_sf(m: IntArray, n: IntArray, h: IntArray) -> FloatArray:
    """Exact two-sided P(D >= h / lcm(m, n)), rows grouped by size to limit padding."""
    out = np.ones(m.shape, dtype=np.float64)
    todo = (h > 0) & (m > 0) & (n > 0)
    if not todo.any():
        return out
    small = np.minimum(m, n)
    big = np.maximum(m, n)
    # One observation against b: its rank r is uniform on 0..b and D * b = max(r, b - r).
    single = todo & (small == 1)
    if single.any():
        b1, h1 = big[single], h[single]
        hits = 2 * (b1 - h1 + 1) - np.maximum(0, b1 - 2 * h1 + 1)
        out[single] = np.clip(hits / (b1 + 1.0), 0.0, 1.0)
        todo = todo & ~single
    key = np.frexp(big.astype(np.float64))[1] * 64 + np.frexp(small.astype(np.float64))[1]
    for k in np.unique(key[todo]):
        idx = np.flatnonzero(todo & (key == k))
        step = max(1, _BLOCK_CELLS // (int(big[idx].max()) + 1))
        for start in range(0, idx.size, step):
            sel = idx[start : start + step]
            out[sel] = _exact_sf_bucket(small[sel], big[sel], h[sel])
    return out


def _asymp_sf(h: IntArray, m: IntArray, n: IntArray) -> FloatArray:
    """Kolmogorov limit with Stephens' correction, at D less half a lattice step."""
    g = np.gcd(m, n)
    lcm = (m // g).astype(np.float64) * n
    d = np.maximum(h - 0.5, 0.0) / lcm
    with np.errstate(invalid="ignore", divide="ignore"):
        en = np.sqrt(m * n / (m + n).astype(np.float64))
        z = (en + 0.12 + 0.11 / en) * d
    return np.asarray(np.clip(special.kolmogorov(z), 0.0, 1.0), dtype=np.float64)


def ks_pvalue(
    h: ArrayLike, n_ref: ArrayLike, n_cur: ArrayLike, method: KSMethod = "auto"
) -> tuple[FloatArray, BoolArray]:
    """Two-sided p-value ``P(D >= d)`` of the two-sample KS test, vectorised.

    Parameters
    ----------
    h : array_like of int
        The statistic as an integer: ``d = h / lcm(n_ref, n_cur)``, i.e.
        ``h = max |c_ref * n_cur - c_cur * n_ref| / gcd(n_ref, n_cur)`` with
        ``c_*`` the cumulative counts.
    n_ref, n_cur : array_like of int
        Sample sizes (> 0).
    method : {'auto', 'exact', 'asymp'}, optional
        As in :func:`ks_2samp`.

    Returns
    -------
    pvalue : ndarray
        Two-sided p-values.
    exact : ndarray of bool
        Which p-values are exact.

    Examples
    --------
    >>> p, exact = ks_pvalue([3], [3], [3])        # D = 1 with 3 + 3 rows
    >>> round(float(p[0]), 4), bool(exact[0])      # 2 / C(6, 3)
    (0.1, True)
    """
    if method not in _METHODS:
        raise ValueError(f"method={method!r}; allowed: {', '.join(_METHODS)}")
    hh, m, n = np.broadcast_arrays(
        np.asarray(h, dtype=np.int64),
        np.asarray(n_ref, dtype=np.int64),
        np.asarray(n_cur, dtype=np.int64),
    )
    hh, m, n = hh.ravel(), m.ravel(), n.ravel()
    if method == "exact":
        exact = np.ones(m.shape, dtype=bool)
    elif method == "asymp":
        exact = np.zeros(m.shape, dtype=bool)
    else:
        exact = m * n <= EXACT_AUTO_MAX_PRODUCT
    pval = np.empty(m.shape, dtype=np.float64)
    if exact.any():
        pval[exact] = _exact_sf(m[exact], n[exact], hh[exact])
    approx = ~exact
    if approx.any():
        pval[approx] = _asymp_sf(hh[approx], m[approx], n[approx])
    return pval, exact


def _result(t_max: IntArray, n_ref: IntArray, n_cur: IntArray, method: KSMethod) -> KSResult:
    """Build a KSResult from ``max |c_ref * n_cur - c_cur * n_ref|`` and the sizes."""
    shape = t_max.shape
    valid = (n_ref > 0) & (n_cur > 0)
    g = np.gcd(np.where(valid, n_ref, 1), np.where(valid, n_cur, 1))
    h = np.where(valid, t_max // g, 0)
    pval = np.full(shape, np.nan)
    exact = np.zeros(shape, dtype=bool)
    if valid.any():
        pv, ex = ks_pvalue(h[valid], n_ref[valid], n_cur[valid], method)
        pval[valid] = pv
        exact[valid] = ex
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = np.where(valid, t_max / (n_ref.astype(np.float64) * n_cur), np.nan)
    if stat.ndim == 0:
        return KSResult(float(stat), float(pval), int(n_ref), int(n_cur), bool(exact))
    return KSResult(stat, pval, out_int(n_ref), out_int(n_cur), exact)


def ks_2samp(x: ArrayLike, y: ArrayLike, method: KSMethod = "auto") -> KSResult:
    """Two-sample Kolmogorov–Smirnov test on raw samples (two-sided).

    Parameters
    ----------
    x, y : array_like
        The reference and current samples (1-D; NaN values are dropped).
    method : {'auto', 'exact', 'asymp'}, optional
        P-value computation (default ``'auto'``):

        ``'exact'``
            The exact null distribution of D for continuous data, by counting
            lattice paths (O(n_ref * n_cur) work).
        ``'asymp'``
            Kolmogorov's limit distribution at
            ``(sqrt(n_eff) + 0.12 + 0.11 / sqrt(n_eff)) * D'`` (Stephens'
            correction), ``n_eff = n_ref * n_cur / (n_ref + n_cur)``, where
            ``D' = D - 1 / (2 * lcm(n_ref, n_cur))`` is D less half a step of the
            lattice D lives on (a continuity correction).
        ``'auto'``
            Exact if ``n_ref * n_cur <= EXACT_AUTO_MAX_PRODUCT`` (2,500), else
            asymptotic. (scipy's ``'auto'`` goes exact up to 10,000 rows *each*;
            ours bounds the work, at most 2,500 lattice cells per segment, so
            that 10,000 segments stay well under a second.)

    Returns
    -------
    KSResult
        ``statistic``, ``pvalue``, ``n_ref``, ``n_cur``, ``exact``. An empty
        sample gives NaN statistic and p-value.

    Notes
    -----
    Null hypothesis: both samples come from the same continuous distribution;
    alternative: they differ (two-sided). ``D`` is computed exactly from integer
    cumulative counts. Without ties the exact p-value equals
    ``scipy.stats.ks_2samp(x, y, method='exact')``; the p-value is computed as
    one minus the probability of staying inside the band, so its absolute
    error is about 1e-15 (the relative error grows below ~1e-10).

    Ties (including binned data) lower ``D`` relative to the untied data it came
    from, while the p-value still uses the continuous null distribution: the test
    becomes conservative (p-values too large), never anti-conservative. scipy
    behaves the same way.

    Measured against the exact p-value for p between 1e-4 and 0.2, the
    asymptotic p-value was between -2 % and +17 % off for every size pair tried
    with both samples of 20 rows or more (e.g. (30, 40), (50, 50), (20, 1000),
    (200, 2000)); with 10 rows or fewer against hundreds it is up to 1.6x (10
    rows) or several times (3–7 rows) too large. It errs on the conservative
    side; ``'auto'`` computes the smallest cases exactly. (Without the half-step
    correction it was up to 25 % too low for equal sizes.)

    Where the p-value is accurate: the exact one at every level. The asymptotic
    one was checked against the exact distribution down to p = 1e-12 (the levels
    Benjamini–Hochberg reaches over thousands of tests at 1e-4), for (10, 300),
    (20, 1000), (30, 500), (40, 60), (60, 2000), (100, 3000), (200, 200): it was
    never more than 2 % below the exact p-value and up to orders of magnitude
    above it for the smallest samples, i.e. valid (conservative) far into the tail,
    at a loss of power for small samples against large references.

    References
    ----------
    .. [1] Hodges, J. L. (1958). The significance probability of the Smirnov
       two-sample test. Arkiv för Matematik 3, 469–486.
    .. [2] Stephens, M. A. (1970). Use of the Kolmogorov–Smirnov, Cramér–von
       Mises and related statistics without extensive tables. JRSS B 32, 115–122.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> x = rng.normal(0.0, 1.0, size=40)
    >>> y = rng.normal(1.0, 1.0, size=30)
    >>> res = ks_2samp(x, y)
    >>> round(res.statistic, 4), f"{res.pvalue:.2e}", res.exact
    (0.5417, '4.10e-05', True)
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    a = np.sort(a[~np.isnan(a)])
    b = np.sort(b[~np.isnan(b)])
    m, n = a.size, b.size
    if m == 0 or n == 0:
        return KSResult(math.nan, math.nan, m, n, False)
    pooled = np.concatenate([a, b])
    ca = np.searchsorted(a, pooled, side="right").astype(np.int64)
    cb = np.searchsorted(b, pooled, side="right").astype(np.int64)
    t_max = np.abs(ca * n - cb * m).max()
    return _result(np.asarray(t_max), np.asarray(m), np.asarray(n), method)


def ks_from_counts(
    ref_counts: ArrayLike, cur_counts: ArrayLike, method: KSMethod = "auto"
) -> KSResult:
    """Two-sample KS test from counts on shared bins, vectorised over segments.

    Parameters
    ----------
    ref_counts, cur_counts : array_like of int
        Counts of the two samples over the same ordered bins (last axis);
        leading axes are segments and broadcast together.
    method : {'auto', 'exact', 'asymp'}, optional
        As in :func:`ks_2samp`.

    Returns
    -------
    KSResult
        Arrays of shape ``counts.shape[:-1]`` (scalars for 1-D input).

    Notes
    -----
    The empirical CDFs are known only at the bin edges, so ``D`` is the maximum
    over the edges: exactly ``ks_2samp`` applied to the data with every value
    replaced by its bin index, and never larger than ``D`` of the unbinned
    data. The p-value uses the continuous null distribution (see
    :func:`ks_2samp`), so binning makes the test conservative; with 20 bins the
    loss of power is small for location and scale shifts.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.array([[10, 10, 10, 10], [10, 10, 10, 10]])
    >>> cur = np.array([[10, 10, 10, 10], [0, 0, 5, 35]])
    >>> res = ks_from_counts(ref, cur)
    >>> res.statistic
    array([0.   , 0.625])
    >>> [f"{p:.1e}" for p in res.pvalue]
    ['1.0e+00', '1.2e-07']
    """
    ref, cur = count_pair(ref_counts, cur_counts, integral=True)
    r = ref.astype(np.int64)
    c = cur.astype(np.int64)
    n_ref = r.sum(axis=-1)
    n_cur = c.sum(axis=-1)
    t = np.cumsum(r, axis=-1) * n_cur[..., None] - np.cumsum(c, axis=-1) * n_ref[..., None]
    t_max = np.abs(t).max(axis=-1)
    return _result(t_max, n_ref, n_cur, method)
