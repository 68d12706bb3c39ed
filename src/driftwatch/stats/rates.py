"""Rates of marked rows: exact binomial tails and reference rates shrunk toward a prior.

:func:`binom_sf` is the exact binomial upper tail (vectorised); :func:`shrunk_rate`
a reference rate with pseudo-rows of a prior; :func:`upper_rate` an upper credible
bound of it. The detectors test against the beta-binomial predictive
(:mod:`driftwatch.stats.dispersion`), which takes the reference's noise and
dispersion into account; these remain for plain binomial questions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from driftwatch.stats._arrays import FloatArray

__all__ = ["binom_sf", "shrunk_rate", "upper_rate"]


def binom_sf(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> FloatArray:
    """Exact upper tail ``P(X >= k)`` for ``X ~ Binomial(n, p)``, vectorised.

    >>> round(float(binom_sf(3, 10, 0.1)), 6)
    0.070191
    >>> binom_sf([0, 11], 10, 0.5).tolist()
    [1.0, 0.0]
    """
    kk = np.asarray(k, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    pp = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    kk, nn, pp = np.broadcast_arrays(kk, nn, pp)
    out = np.ones(kk.shape)
    inside = (kk > 0) & (kk <= nn)
    with np.errstate(all="ignore"):
        out = np.where(inside, special.bdtrc(np.maximum(kk - 1, 0), nn, pp), out)
    out = np.where(kk > nn, 0.0, out)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)


def shrunk_rate(
    k_ref: ArrayLike, n_ref: ArrayLike, prior: float | ArrayLike, strength: float
) -> FloatArray:
    """A reference rate shrunk toward ``prior`` by ``strength`` pseudo-observations.

    ``(k_ref + strength * prior) / (n_ref + strength)``: a segment with a long clean
    history keeps its own rate; a new or tiny segment borrows the prior.

    >>> shrunk_rate([0, 50], [0, 1000], 0.01, 100).round(4).tolist()
    [0.01, 0.0464]
    """
    k = np.asarray(k_ref, dtype=np.float64)
    n = np.asarray(n_ref, dtype=np.float64)
    return np.asarray((k + strength * np.asarray(prior)) / (n + strength), dtype=np.float64)


def upper_rate(
    k_ref: ArrayLike,
    n_ref: ArrayLike,
    prior: float | ArrayLike,
    strength: float,
    quantile: float = 0.9,
) -> FloatArray:
    """A cautious null rate: an upper credible bound of the reference rate.

    The posterior of a rate seen ``k_ref`` times in ``n_ref`` rows, with a
    Beta prior of mean ``prior`` worth ``strength`` pseudo-rows, is
    ``Beta(k_ref + strength * prior, n_ref - k_ref + strength * (1 - prior))``;
    its ``quantile`` is used as the null rate. A share estimated from one or two
    reference rows is uncertain, and testing against its point estimate alone
    would call ordinary luck significant; a long history makes the bound tight.

    >>> upper_rate([1, 100], [800, 64000], 0.01, 100).round(5).tolist()
    [0.00432, 0.00178]
    """
    k = np.asarray(k_ref, dtype=np.float64)
    n = np.asarray(n_ref, dtype=np.float64)
    pr = np.asarray(prior, dtype=np.float64)
    a = k + strength * pr
    b = np.maximum(n - k, 0.0) + strength * (1.0 - pr)
    return np.asarray(special.betaincinv(a, b, quantile), dtype=np.float64)
