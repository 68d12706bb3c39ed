"""Benjamini–Hochberg false-discovery-rate control across a family of p-values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from driftwatch.stats._arrays import BoolArray, FloatArray, check_probability

__all__ = ["FDRResult", "benjamini_hochberg"]


@dataclass(frozen=True)
class FDRResult:
    """Result of :func:`benjamini_hochberg`, same shape as the input.

    Attributes
    ----------
    rejected : ndarray of bool
        Hypotheses rejected at FDR level ``q`` (False for NaN p-values).
    adjusted : ndarray
        BH-adjusted p-values (q-values); NaN where the p-value was NaN.
    """

    rejected: BoolArray
    adjusted: FloatArray


def benjamini_hochberg(pvalues: ArrayLike, q: float = 0.05) -> FDRResult:
    """Benjamini–Hochberg step-up procedure.

    Parameters
    ----------
    pvalues : array_like
        P-values of the family (any shape), each in [0, 1] or NaN. NaN means
        "not tested" (e.g. below the minimum count): it is never rejected and
        does not count in the family size ``m``.
    q : float, optional
        False discovery rate to control, ``0 < q < 1`` (default 0.05).

    Returns
    -------
    FDRResult
        ``rejected`` and ``adjusted``, shaped like ``pvalues``.

    Notes
    -----
    With the ``m`` non-NaN p-values sorted, ``p_(1) <= ... <= p_(m)``, the
    adjusted value of ``p_(i)`` is ``min_{j >= i} min(1, m p_(j) / j)``; a
    hypothesis is rejected when its adjusted value is <= ``q``, which is the
    step-up rule "reject the ``i*`` smallest, ``i*`` the largest ``i`` with
    ``p_(i) <= i q / m``". It controls the FDR at ``q`` for independent or
    positively dependent tests (PRDS). Same as
    ``scipy.stats.false_discovery_control(p, method='bh')`` on the non-NaN values.

    References
    ----------
    .. [1] Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery
       rate. JRSS B 57, 289–300.

    Examples
    --------
    >>> res = benjamini_hochberg([0.001, 0.008, 0.039, 0.041, float("nan"), 0.6], q=0.05)
    >>> res.rejected
    array([ True,  True, False, False, False, False])
    >>> res.adjusted.round(4)
    array([0.005 , 0.02  , 0.0512, 0.0512,    nan, 0.6   ])
    """
    level = check_probability(q, "q")
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ravel()
    valid = ~np.isnan(flat)
    if ((flat[valid] < 0) | (flat[valid] > 1)).any():
        raise ValueError("p-values must lie in [0, 1] (or be NaN)")
    adjusted = np.full(flat.shape, np.nan)
    m = int(valid.sum())
    if m:
        vals = flat[valid]
        order = np.argsort(vals, kind="stable")
        ranked = vals[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.minimum(ranked, 1.0)
        adjusted[valid] = adj
    rejected = np.zeros(flat.shape, dtype=bool)
    rejected[valid] = adjusted[valid] <= level
    return FDRResult(rejected=rejected.reshape(p.shape), adjusted=adjusted.reshape(p.shape))
