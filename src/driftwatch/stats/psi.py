"""Population Stability Index (PSI) over bins fixed by the reference window.

The bin edges come from the reference sample (its quantiles) and never move with
the current window; both windows are then reduced to counts over those bins and
:func:`psi` compares the two count vectors. Every function is vectorised over
leading axes: a ``(segments, bins)`` array of counts gives one PSI per segment.

PSI is biased upward on small samples: with ``k`` bins and no drift,
``PSI ≈ (k - 1) / n_eff``, about 0.3 for ten bins and 30 rows, so a fixed cut-off
such as 0.2 flags almost every small segment. Use :func:`psi_test` (a p-value
calibrated for the sample sizes) or at least :func:`psi_critical`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from driftwatch.stats._arrays import (
    FloatArray,
    IntArray,
    check_probability,
    count_pair,
    out_float,
    out_int,
)

__all__ = ["PSIResult", "bin_counts", "psi", "psi_critical", "psi_test", "quantile_edges"]

PSIMethod = Literal["pearson", "psi"]
_METHODS: tuple[str, ...] = ("pearson", "psi")


def quantile_edges(reference: ArrayLike, bins: int = 10) -> FloatArray:
    """Interior bin edges at the quantiles of a reference sample.

    Parameters
    ----------
    reference : array_like
        Reference values (e.g. model scores of the baseline window). NaN and
        infinite values are ignored.
    bins : int, optional
        Number of equal-frequency bins wanted (>= 2). Default 10.

    Returns
    -------
    edges : ndarray
        Strictly increasing interior edges, at most ``bins - 1`` of them. The bin
        of a value ``x`` is ``np.searchsorted(edges, x, side="right")``, so there
        are ``len(edges) + 1`` bins: ``(-inf, e0)``, ``[e0, e1)``, ...,
        ``[e_last, inf)``.

    Raises
    ------
    ValueError
        If ``bins < 2`` or the reference has no finite value.

    Notes
    -----
    Quantiles are ``np.quantile`` (linear interpolation) at ``1/bins, ...,
    (bins-1)/bins``. Ties in the reference (e.g. scores piled up at 0) produce equal
    quantiles; duplicates are removed, and an edge equal to the reference minimum is
    dropped because it would leave the first bin empty in the reference. So a
    reference with heavy ties yields fewer bins than asked for; a constant reference
    yields no edge at all (one bin, PSI always 0).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> edges = quantile_edges(rng.uniform(size=10_000), bins=4)
    >>> np.round(edges, 2)
    array([0.25, 0.5 , 0.75])
    >>> quantile_edges([0, 0, 0, 0, 0, 0, 1, 2, 3, 4], bins=5)
    array([0.4, 2.2])
    """
    if int(bins) != bins or bins < 2:
        raise ValueError(f"bins={bins!r}; allowed: an integer >= 2")
    x = np.asarray(reference, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError("reference has no finite value; cannot place bin edges")
    q = np.quantile(x, np.arange(1, int(bins)) / int(bins))
    edges = np.unique(q)
    return np.asarray(edges[edges > x.min()], dtype=np.float64)


def bin_counts(values: ArrayLike, edges: ArrayLike) -> IntArray:
    """Count values in the bins defined by interior ``edges``.

    Parameters
    ----------
    values : array_like
        Values to count (any shape, flattened). NaN values are ignored.
    edges : array_like
        Strictly increasing interior edges, e.g. from :func:`quantile_edges`.

    Returns
    -------
    counts : ndarray of int64, shape ``(len(edges) + 1,)``
        ``counts[i]`` is the number of values with
        ``np.searchsorted(edges, value, side="right") == i``.

    Examples
    --------
    >>> bin_counts([0.1, 0.5, 0.5, 0.9, float("nan")], [0.5])
    array([1, 3])
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or (e.size > 1 and not (np.diff(e) > 0).all()):
        raise ValueError("edges must be a 1-D strictly increasing array")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    idx = np.searchsorted(e, v, side="right")
    return np.bincount(idx, minlength=e.size + 1).astype(np.int64)


def _proportions(counts: FloatArray) -> tuple[FloatArray, FloatArray]:
    n = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / n[..., None]
    return p, n


def psi(ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = 1e-4) -> float | FloatArray:
    """Population Stability Index between two count vectors on the same bins.

    Parameters
    ----------
    ref_counts, cur_counts : array_like
        Counts of the reference and current windows. The last axis is the bins
        (the same bins for both); leading axes are segments and broadcast
        against each other, so a ``(segments, bins)`` array gives one PSI per
        segment.
    eps : float, optional
        Floor applied to every proportion before the logarithm (default 1e-4).

    Returns
    -------
    psi : float or ndarray
        ``sum((q - p) * log(q / p))`` over bins, with ``p`` and ``q`` the
        reference and current proportions after the floor. NaN where either
        window is empty.

    Notes
    -----
    PSI is the symmetrised Kullback–Leibler (Jeffreys) divergence of the two
    binned distributions. An empty bin has proportion 0 and ``log(0)`` is
    undefined, so each proportion is replaced by ``max(proportion, eps)``; the
    proportions are not renormalised afterwards. Every term ``(q - p) log(q / p)``
    is still >= 0, so PSI >= 0 and ``PSI(x, x) == 0``. An empty bin on one side
    and a share ``s`` on the other contributes about ``s * log(s / eps)``
    (0.69 for ``s = 0.1``), which is why small current windows, where some bins
    are empty by chance, inflate PSI; see :func:`psi_test`.

    The usual rule of thumb (< 0.1 stable, 0.1–0.25 moderate, > 0.25 major shift)
    holds only for large samples.

    References
    ----------
    .. [1] Yurdakul, B. (2018). Statistical properties of population stability
       index. Western Michigan University, Dissertations 3208.

    Examples
    --------
    >>> round(psi([25, 25, 25, 25], [10, 20, 30, 40]), 4)
    0.2282
    >>> psi([25, 25, 25, 25], [25, 25, 25, 25])
    0.0
    >>> psi([[25, 25], [10, 40]], [[25, 25], [40, 10]]).round(3)
    array([0.   , 1.664])
    """
    if not eps > 0:
        raise ValueError(f"eps={eps!r}; allowed: eps > 0")
    ref, cur = count_pair(ref_counts, cur_counts)
    p, n_ref = _proportions(ref)
    q, n_cur = _proportions(cur)
    p = np.maximum(p, eps)
    q = np.maximum(q, eps)
    value = np.sum((q - p) * np.log(q / p), axis=-1)
    value = np.where((n_ref > 0) & (n_cur > 0), value, np.nan)
    return out_float(value)


@dataclass(frozen=True)
class PSIResult:
    """Result of :func:`psi_test` (arrays when the input was vectorised).

    Attributes
    ----------
    psi : float or ndarray
        The PSI of :func:`psi` with the same ``eps``.
    pvalue : float or ndarray
        P-value of the null "both windows come from the same distribution".
    n_ref, n_cur : int or ndarray
        Sample sizes of the reference and current windows.
    bins : int or ndarray
        Bins with at least one observation in either window; the test has
        ``bins - 1`` degrees of freedom.
    statistic : float or ndarray
        The chi-square statistic the p-value was computed from.
    """

    psi: float | FloatArray
    pvalue: float | FloatArray
    n_ref: int | IntArray
    n_cur: int | IntArray
    bins: int | IntArray
    statistic: float | FloatArray = float("nan")


def psi_test(
    ref_counts: ArrayLike,
    cur_counts: ArrayLike,
    eps: float = 1e-4,
    method: PSIMethod = "pearson",
) -> PSIResult:
    """PSI with a p-value calibrated for the two sample sizes.

    Parameters
    ----------
    ref_counts, cur_counts : array_like
        Counts on the same bins, last axis = bins, leading axes = segments.
    eps : float, optional
        Proportion floor of :func:`psi` (default 1e-4).
    method : {'pearson', 'psi'}, optional
        How the chi-square statistic is formed (default ``'pearson'``):

        ``'pearson'``
            ``n_eff * sum((p - q)**2 / m)`` with ``m`` the pooled proportions,
            i.e. Pearson's chi-square test of homogeneity of the 2 x k table.
        ``'psi'``
            ``n_eff * PSI`` itself.

    Returns
    -------
    PSIResult
        ``psi``, ``pvalue``, ``n_ref``, ``n_cur``, ``bins`` and ``statistic``.
        ``pvalue`` is NaN where a window is empty; with a single occupied bin
        there is nothing to compare and it is 1.

    Notes
    -----
    Null hypothesis: the reference and current windows are independent samples
    from the same distribution over the bins. With
    ``n_eff = n_ref * n_cur / (n_ref + n_cur)`` and ``k`` occupied bins,
    ``n_eff * PSI`` and the Pearson statistic are asymptotically equivalent
    (PSI is, to second order, ``sum((q - p)**2 / m)``) and both approach
    ``chi2(k - 1)``. Hence ``E[PSI] ≈ (k - 1) / n_eff`` under the null, and a
    threshold on PSI must shrink with ``n`` (:func:`psi_critical`).

    On small windows the two differ sharply. An empty current bin adds about
    ``p * log(p / eps)`` to PSI, so ``n_eff * PSI`` is far heavier-tailed than
    chi-square: on seeded null simulations with 10 equiprobable bins and
    ``n_ref = 1000``, the ``'psi'`` method rejected 35 % (n_cur = 30) and 7 %
    (n_cur = 50) of clean windows at alpha = 0.01, against 0.9–1.0 % for
    ``'pearson'`` (0.6–1.4 % for every n_cur from 5 to 1000 and n_ref from 200
    to 10,000). Hence the default.
    ``psi`` is reported either way as the effect size.

    Where the p-value is accurate: the chi-square tail is asymptotic. With every
    bin expecting about 10 or more current rows (10 reference-quantile bins and
    ``n_cur >= 100``, the score-drift minimum) the measured false-positive rate
    stayed at or below nominal at alpha = 1e-2, 1e-3 and 1e-4
    (``bench/calibration.py``); with a few rows per bin, far tails (1e-4 and
    below) are not reliable: one row in a rare bin then weighs too much. For
    windows that vary more than multinomially between hours, divide the statistic
    by :func:`driftwatch.stats.dispersion.chi2_inflation`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> ref = rng.multinomial(1000, [0.1] * 10, size=3)
    >>> cur = rng.multinomial(30, [0.1] * 10, size=3)
    >>> cur[2] = [0, 0, 0, 0, 0, 0, 0, 0, 10, 20]          # drifted segment
    >>> res = psi_test(ref, cur)
    >>> res.n_cur
    array([30, 30, 30])
    >>> bool(res.pvalue[2] < 1e-10), bool((res.pvalue[:2] > 0.01).all())
    (True, True)
    """
    if method not in _METHODS:
        raise ValueError(f"method={method!r}; allowed: {', '.join(_METHODS)}")
    ref, cur = count_pair(ref_counts, cur_counts)
    value = np.asarray(psi(ref, cur, eps), dtype=np.float64)
    p, n_ref = _proportions(ref)
    q, n_cur = _proportions(cur)
    pooled = ref + cur
    occupied = (pooled > 0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = n_ref * n_cur / (n_ref + n_cur)
        if method == "pearson":
            total = (n_ref + n_cur)[..., None]
            terms = np.where(pooled > 0, (p - q) ** 2 / (pooled / total), 0.0)
            stat = n_eff * terms.sum(axis=-1)
        else:
            stat = n_eff * value
    valid = (n_ref > 0) & (n_cur > 0)
    df = occupied - 1
    pval = np.where(df > 0, special.chdtrc(np.maximum(df, 1), stat), 1.0)
    pval = np.where(valid, np.clip(pval, 0.0, 1.0), np.nan)
    stat = np.where(valid, stat, np.nan)
    return PSIResult(
        psi=out_float(value),
        pvalue=out_float(pval),
        n_ref=out_int(np.rint(n_ref)),
        n_cur=out_int(np.rint(n_cur)),
        bins=out_int(occupied),
        statistic=out_float(stat),
    )


def psi_critical(
    n_ref: ArrayLike, n_cur: ArrayLike, bins: ArrayLike, alpha: float = 0.05
) -> float | FloatArray:
    """PSI threshold calibrated for the sample sizes (large-sample approximation).

    Parameters
    ----------
    n_ref, n_cur : array_like of int
        Sample sizes of the reference and current windows (broadcast together).
    bins : array_like of int
        Number of bins (``len(edges) + 1``), >= 2.
    alpha : float, optional
        False-positive rate wanted per test, ``0 < alpha < 1`` (default 0.05).

    Returns
    -------
    critical : float or ndarray
        ``chi2.isf(alpha, bins - 1) / n_eff`` with
        ``n_eff = n_ref * n_cur / (n_ref + n_cur)``; NaN where a size is 0.

    Notes
    -----
    Null hypothesis and approximation as in :func:`psi_test`: under the null
    ``n_eff * PSI`` is approximately ``chi2(bins - 1)``, so ``PSI > critical``
    has false-positive rate about ``alpha`` *when every bin expects several
    observations in both windows* (roughly ``n_cur >= 5 * bins``). Below that
    the eps floor makes PSI heavy-tailed and this threshold is exceeded far
    more often than ``alpha`` (see :func:`psi_test`); decide on
    ``psi_test(...).pvalue`` instead. Never use a fixed cut-off such as 0.2:
    with 10 bins the 5 % threshold is 0.56 at ``n_eff = 30`` and 0.017 at
    ``n_eff = 1000``.

    Examples
    --------
    >>> round(psi_critical(10_000, 1000, 10, alpha=0.05), 4)
    0.0186
    >>> psi_critical(1_000_000, [30, 100, 1000], 10, alpha=0.05).round(3)
    array([0.564, 0.169, 0.017])
    """
    a = check_probability(alpha, "alpha")
    nr = np.asarray(n_ref, dtype=np.float64)
    nc = np.asarray(n_cur, dtype=np.float64)
    k = np.asarray(bins, dtype=np.float64)
    if (k < 2).any():
        raise ValueError(f"bins={bins!r}; allowed: integers >= 2")
    if (nr < 0).any() or (nc < 0).any():
        raise ValueError("n_ref and n_cur must be >= 0")
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = nr * nc / (nr + nc)
        crit = special.chdtri(k - 1, a) / n_eff
    crit = np.where((nr > 0) & (nc > 0), crit, np.nan)
    return out_float(crit)
