"""Exact tail p-values for slice over-representation, and Tarone's testable family.

Two one-sided exact tests of "slice S holds more suspicious records in the current
data than the reference predicts", both conditional on margins, so they are valid
for small counts (no normal approximation):

- :func:`conditional_binomial` (``test="binomial"``): given the ``t = k + k_ref``
  suspicious records of S in both data sets together, under H0 each lands in the
  current data with probability ``p0 = N / (N + N_ref)`` (the overall record
  ratio). ``P(X >= k)``, ``X ~ Binom(t, p0)``. This is the classic exact test of
  two Poisson rates; it sees extra suspicious records even when the slice's
  suspicious *share* does not move.
- :func:`hypergeometric` (``test="hypergeom"``): given the slice's records
  ``n + n_ref`` and its suspicious records ``k + k_ref``, ``P(X >= k)`` for the
  ``n`` current records drawn without replacement (one-sided Fisher exact test:
  the suspicious share of S rose).

:func:`min_attainable_binomial` and :func:`tarone_family` implement Tarone's
(1990) trick for the binomial test: a slice whose smallest attainable p-value
``p0 ** t`` cannot reach the corrected level is never a discovery and need not
count in the family, and since ``t`` only shrinks when a conjunction is refined,
none of its refinements can either (the pruning bound of the lattice search).

>>> round(float(conditional_binomial(5, 0, 0.5)), 5)  # all 5 in the current half: 1/32
0.03125
>>> round(float(hypergeometric(2, 2, 4, 2)), 4)  # 2 of 2 suspicious in 2 of 4 rows
0.1667
>>> tarone_family([1e-6, 1e-3, 0.5], alpha=0.01)
2
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike
from scipy import stats

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "conditional_binomial",
    "hypergeometric",
    "min_attainable_binomial",
    "poisson_surge",
    "tarone_family",
]


def _check_p0(p0: float) -> float:
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0 must be in (0, 1), got {p0!r}")
    return float(p0)


def conditional_binomial(k: ArrayLike, k_ref: ArrayLike, p0: float) -> FloatArray:
    """One-sided exact p-value ``P(X >= k)``, ``X ~ Binom(k + k_ref, p0)``.

    Parameters
    ----------
    k, k_ref : array_like of int
        Suspicious records of each slice in the current and the reference data.
    p0 : float
        Probability, under H0, that a suspicious record is a current one
        (``N / (N + N_ref)``), ``0 < p0 < 1``.

    Returns
    -------
    ndarray of float
        The p-values, shaped like ``k``; 1.0 where ``k == 0``.

    Notes
    -----
    H0: the slice's suspicious records arrive at the same rate per record in both
    data sets. The test is exact for any count (scipy's ``binom.sf``).

    Examples
    --------
    >>> from scipy.stats import binomtest
    >>> p = conditional_binomial([7], [1], 0.5)[0]
    >>> bool(np.isclose(p, binomtest(7, 8, 0.5, alternative="greater").pvalue))
    True
    """
    p = _check_p0(p0)
    kk = np.asarray(k, dtype=np.float64)
    t = kk + np.asarray(k_ref, dtype=np.float64)
    out: FloatArray = np.asarray(stats.binom.sf(kk - 1, t, p), dtype=np.float64)
    return np.where(kk <= 0, 1.0, np.minimum(out, 1.0))


def hypergeometric(k: ArrayLike, k_total: ArrayLike, m_total: ArrayLike,
                   n: ArrayLike) -> FloatArray:
    """One-sided exact p-value ``P(X >= k)`` of the hypergeometric distribution.

    Parameters
    ----------
    k : array_like of int
        Suspicious records of the slice in the current data.
    k_total : array_like of int
        Suspicious records of the slice in both data sets.
    m_total : array_like of int
        Records of the slice in both data sets.
    n : array_like of int
        Records of the slice in the current data.

    Returns
    -------
    ndarray of float
        ``P(X >= k)`` for ``X ~ Hypergeom(M=m_total, K=k_total, N=n)``.

    Examples
    --------
    >>> from scipy.stats import fisher_exact
    >>> p = hypergeometric([8], [9], [30], [12])[0]
    >>> ref = fisher_exact([[8, 12 - 8], [1, 18 - 1]], alternative="greater").pvalue
    >>> bool(np.isclose(p, ref))
    True
    """
    kk = np.asarray(k, dtype=np.float64)
    out: FloatArray = np.asarray(
        stats.hypergeom.sf(kk - 1, np.asarray(m_total), np.asarray(k_total), np.asarray(n)),
        dtype=np.float64,
    )
    return np.where(kk <= 0, 1.0, np.clip(out, 0.0, 1.0))


def poisson_surge(k: ArrayLike, expected: ArrayLike) -> FloatArray:
    """One-sided exact p-value ``P(X >= k)``, ``X ~ Poisson(expected)``.

    The test of the live trigger miner (``test="surge"`` of
    :func:`driftwatch.mining.lattice.mine`): a slice's suspicious records in the
    current window against the count its history and the reference marginals predict.

    Parameters
    ----------
    k : array_like of int
        Suspicious current records of each slice.
    expected : array_like of float
        Their expected number under H0 (``> 0``).

    Returns
    -------
    ndarray of float
        The p-values, shaped like ``k``; 1.0 where ``k == 0``.

    Examples
    --------
    >>> round(float(poisson_surge([2], [1.0])[0]), 6)  # 1 - e^-1 (1 + 1)
    0.264241
    """
    kk = np.asarray(k, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    if np.any(~(mu > 0)):
        raise ValueError(f"expected must be > 0, got {mu[~(mu > 0)][:3].tolist()}")
    out: FloatArray = np.asarray(stats.poisson.sf(kk - 1, mu), dtype=np.float64)
    return np.where(kk <= 0, 1.0, np.clip(out, 0.0, 1.0))


def min_attainable_binomial(t: ArrayLike, p0: float) -> FloatArray:
    """Smallest p-value :func:`conditional_binomial` can give with ``t`` records: ``p0**t``.

    >>> min_attainable_binomial([1, 10], 0.5).tolist()
    [0.5, 0.0009765625]
    """
    p = _check_p0(p0)
    return np.asarray(np.power(p, np.asarray(t, dtype=np.float64)), dtype=np.float64)


def tarone_family(min_pvalues: ArrayLike, alpha: float) -> int:
    """Tarone's family size: the smallest ``m`` with ``#{i: min_p_i <= alpha/m} <= m``.

    Parameters
    ----------
    min_pvalues : array_like of float
        The smallest attainable p-value of every candidate hypothesis.
    alpha : float
        Family-wise error rate, ``0 < alpha < 1``.

    Returns
    -------
    int
        The number of hypotheses that must be counted (at least 1). Testing each of
        them at ``alpha / m`` and ignoring the rest controls the family-wise error
        rate at ``alpha`` (Tarone 1990); hypotheses whose minimum exceeds
        ``alpha / m`` can never be rejected.

    References
    ----------
    .. [1] Tarone, R. E. (1990). A modified Bonferroni method for discrete data.
       Biometrics 46(2), 515-522.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    mins = np.sort(np.asarray(min_pvalues, dtype=np.float64).ravel())
    total = len(mins)
    for m in range(1, total + 1):
        if int(np.searchsorted(mins, alpha / m, side="right")) <= m:
            return m
    return max(total, 1)
