"""Exact tails of the beta-binomial, the rate null of over-dispersed traffic.

``k ~ BetaBinomial(n, p c, (1 - p) c)`` is a window's count when its share is drawn
around the reference share ``p`` with concentration ``c`` (:mod:`.dispersion`
estimates ``c``); ``c = inf`` is the binomial.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from driftwatch.stats._arrays import FloatArray

__all__ = ["betabinom_sf"]

_MAX_BLOCK = 128
"""Most steps of the tail sum taken at once (see :func:`_betabinom_tail`)."""


def _betabinom_logpmf(k: FloatArray, n: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    return np.asarray(
        special.gammaln(n + 1.0)
        - special.gammaln(k + 1.0)
        - special.gammaln(n - k + 1.0)
        + special.betaln(k + a, n - k + b)
        - special.betaln(a, b),
        dtype=np.float64,
    )


def _betabinom_tail(c: FloatArray, n: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """``P(X >= c)`` for ``X ~ BetaBinomial(n, a, b)``, integer ``c``, a, b > 0.

    Sums the pmf outward from a directly computed starting term, on the side of
    ``c`` away from the mean (the upper tail itself above the mean, one minus the
    lower part below it), stopping once the terms are negligible and falling.
    """
    c, n, a, b = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(c, n, a, b))
    out = np.where(c <= 0, 1.0, 0.0).ravel()
    idx = np.flatnonzero(((c >= 1) & (c <= n)).ravel())
    if idx.size == 0:
        return out.reshape(c.shape)
    cc, nn, aa, bb = (v.ravel()[idx] for v in (c, n, a, b))
    below = cc - 1.0 <= nn * aa / (aa + bb)
    k = np.where(below, cc - 1.0, cc)
    term = np.exp(_betabinom_logpmf(k, nn, aa, bb))
    acc = np.zeros(idx.size)
    for lower in (False, True):  # each side walks its own way (one ratio formula each)
        rows = np.flatnonzero(below == lower)
        if rows.size:
            acc[rows] = _walk(k[rows], term[rows], nn[rows], aa[rows], bb[rows], lower=lower)
    out[idx] = np.clip(np.where(below, 1.0 - acc, acc), 0.0, 1.0)
    return out.reshape(c.shape)


def _walk(
    k: FloatArray, term: FloatArray, n: FloatArray, a: FloatArray, b: FloatArray, *, lower: bool
) -> FloatArray:
    """Per row, the sum of the pmf terms from ``term`` (the term at ``k``) outward --
    down to 0 if ``lower``, else up to ``n`` -- up to the first stopping step.

    Steps are taken in blocks of ``width`` for every still-active tail at once: the
    terms are the running product of the ratios and the sums the running sum of the
    terms (``accumulate`` works left to right, so each tail's sequence of operations
    is that of one step at a time); a tail ends at its first stopping step, and the
    steps computed past it are dropped. Heavy tails (concentrations below 1 over
    thousands of rows) take thousands of steps: the blocks grow to ``_MAX_BLOCK``.
    """
    acc = np.zeros(k.size)
    at = np.arange(k.size)
    part = np.zeros(k.size)
    edge = k if lower else n - k  # the step that runs off the support (k < 0 or k > n)
    width = 4
    while at.size:
        j = np.arange(width, dtype=np.float64)
        n2, a2, b2 = n[:, None], a[:, None], b[:, None]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            if lower:  # ks: k before each step (integers: exact); d = n - ks
                ks = k[:, None] - j
                d = n2 - ks
                ratio = ks * (d + b2) / ((d + 1.0) * (ks - 1.0 + a2))
            else:
                ks = k[:, None] + j
                d = n2 - ks
                ratio = d * (ks + a2) / ((ks + 1.0) * (d - 1.0 + b2))
            buf = np.empty((at.size, width + 1))
            buf[:, 0], buf[:, 1:] = term, ratio
            terms = np.multiply.accumulate(buf, axis=1)  # terms[:, i]: the term at step i
            buf[:, 0], buf[:, 1:] = part, terms[:, :-1]
            sums = np.add.accumulate(buf, axis=1)[:, 1:]  # sums[:, i]: the sum after step i
            done = terms[:, 1:] <= 1e-15 * sums
            done &= ratio < 1.0
            done |= j >= edge[:, None]
        hit = done.any(axis=1)
        first = np.argmax(done, axis=1)
        acc[at[hit]] = sums[hit, first[hit]]
        keep = ~hit
        at, part, term = at[keep], sums[keep, -1], terms[keep, -1]
        k = k[keep] + (-width if lower else width)
        edge = edge[keep] - width
        n, a, b = n[keep], a[keep], b[keep]
        width = min(2 * width, _MAX_BLOCK)
    return acc


def betabinom_sf(k: ArrayLike, n: ArrayLike, p: ArrayLike, concentration: ArrayLike) -> FloatArray:
    """Exact upper tail ``P(X >= k)``, ``X ~ BetaBinomial(n, p c, (1 - p) c)``.

    Parameters
    ----------
    k, n : array_like of int
        Count and trials (broadcast together).
    p : array_like
        Mean share, in [0, 1].
    concentration : array_like
        ``c > 0``; ``inf`` gives the binomial tail.

    Returns
    -------
    ndarray
        Tail probabilities (1 for ``k <= 0``, 0 for ``k > n``).

    Notes
    -----
    Summed term by term from the pmf (log-gamma start, ratio recursion), so the
    tail is accurate in relative terms far below 1e-10 above the mean; below the
    mean it is one minus the lower sum (absolute accuracy ~1e-15, where tails
    are large anyway). Equals the sum of ``scipy.stats.betabinom.pmf`` over
    ``k..n``; ``scipy.stats.betabinom.sf`` itself is ``1 - cdf`` and loses its
    relative accuracy below ~1e-12 (off by 4x at 3e-13 for ``n = 300``).

    Examples
    --------
    >>> from scipy import stats
    >>> round(float(betabinom_sf(8, 20, 0.2, 10.0)), 6)
    0.129974
    >>> round(float(stats.betabinom.sf(7, 20, 2.0, 8.0)), 6)
    0.129974
    >>> round(float(betabinom_sf(3, 10, 0.1, np.inf)), 6)   # binomial
    0.070191
    """
    kk, nn, pp, cc = (
        np.asarray(v, dtype=np.float64)
        for v in np.broadcast_arrays(
            np.asarray(k, dtype=np.float64),
            np.asarray(n, dtype=np.float64),
            np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0),
            np.asarray(concentration, dtype=np.float64),
        )
    )
    out = np.where(kk <= 0, 1.0, 0.0)
    inner = (pp > 0) & (pp < 1) & (kk > 0) & (kk <= nn)
    binom = inner & ~np.isfinite(cc)
    if binom.any():
        with np.errstate(all="ignore"):
            out[binom] = special.bdtrc(kk[binom] - 1.0, nn[binom], pp[binom])
    beta = inner & np.isfinite(cc)
    if beta.any():
        out[beta] = _betabinom_tail(
            kk[beta], nn[beta], pp[beta] * cc[beta], (1.0 - pp[beta]) * cc[beta]
        )
    edge = (kk > 0) & (kk <= nn) & (pp >= 1)
    out = np.where(edge, 1.0, out)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)
