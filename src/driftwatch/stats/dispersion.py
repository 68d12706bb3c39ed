"""Over-dispersion: counts that vary between windows more than sampling alone explains.

Real traffic is not a fixed multinomial: the share of scores just under the
threshold, of amounts ending in ``.00`` or of first digit 1 moves from hour to hour
(merchant mix, time of day, campaigns). A binomial or multinomial null then calls
ordinary hour-to-hour variation significant, and nothing but effect floors keeps
the alerts down. The models here give each window its own share, drawn around the
reference share:

* a rate ``k`` of ``n``: ``k ~ BetaBinomial(n, p c, (1 - p) c)``;
* cell counts: ``counts ~ DirichletMultinomial(n, p c)``;

with the *concentration* ``c`` estimated from the reference itself, split into
chunks as long as the current window (:func:`rate_concentration`,
:func:`cell_concentration`; method of moments). ``c = inf`` is the plain binomial.
A segment with a few sparse chunks cannot estimate its own dispersion:
:func:`rate_moments` / :func:`cell_moments` give each segment's estimate with its
sampling variance, and :func:`pooled_rho` shrinks each toward the dispersion
pooled over all segments (empirical Bayes), so a sparse segment borrows the pool's
instead of its own noise.
:func:`predictive_concentration` folds in the reference's own sampling noise (a
share estimated from ``m`` rows) (exact tails: :mod:`~driftwatch.stats.betabinom`), and
:func:`chi2_inflation` the factor by which a Pearson chi-square of homogeneity is
inflated under the Dirichlet-multinomial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from driftwatch.stats._arrays import FloatArray, as_counts

__all__ = [
    "DispersionMoments",
    "cell_concentration",
    "cell_moments",
    "chi2_inflation",
    "pooled_rho",
    "predictive_concentration",
    "rate_concentration",
    "rate_moments",
]


@dataclass(frozen=True)
class DispersionMoments:
    """Moment estimates of the intra-chunk correlation, one per segment.

    Attributes
    ----------
    rho : ndarray
        Unclipped moment estimate of ``rho = 1 / (c + 1)`` (may be negative by
        chance); ``nan`` where there is nothing to estimate from (fewer than two
        non-empty chunks, one occupied cell).
    variance : ndarray
        Its sampling variance if the counts were multinomial (exact for known
        shares); ``inf`` where ``rho`` is ``nan``.
    """

    rho: FloatArray
    variance: FloatArray


def _moments(s: FloatArray, n: FloatArray, cells: FloatArray, var_s: FloatArray
             ) -> DispersionMoments:
    """Intra-chunk correlation from the Pearson sum ``s`` over chunks of sizes ``n``.

    ``E[s] = cells * sum_i n_i w_i (1 + (n_i - 1) rho)`` with
    ``w_i = 1 - 2 n_i / N + sum_j n_j**2 / N**2`` (exact for known shares; ``cells``
    is 1 for a rate and the occupied cells less one for cell counts); ``var_s`` is
    the variance of ``s`` when ``rho = 0``.
    """
    total = n.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = n / total
        w = 1.0 - 2.0 * frac + (frac**2).sum(axis=-1, keepdims=True)
        base = (n * w).sum(axis=-1)
        slope = (n * (n - 1.0) * w).sum(axis=-1)
        rho = (s / cells - base) / slope
        var = var_s / (cells * slope) ** 2
    ok = (slope > 0) & (cells > 0) & np.isfinite(rho) & np.isfinite(var) & (var > 0)
    return DispersionMoments(
        rho=np.asarray(np.where(ok, rho, np.nan), dtype=np.float64),
        variance=np.asarray(np.where(ok, var, np.inf), dtype=np.float64),
    )


def _clipped(m: DispersionMoments) -> FloatArray:
    return np.asarray(np.where(np.isnan(m.rho), 0.0, np.clip(m.rho, 0.0, 1.0)), dtype=np.float64)


def _pearson_var(n: FloatArray, cells: FloatArray, inv_p: FloatArray) -> FloatArray:
    """``Var(n X**2)`` of a multinomial chunk of ``n`` rows over ``cells`` occupied
    cells with ``inv_p = sum_j 1 / p_j`` (the exact Pearson variance, times ``n**2``)."""
    j = cells[..., None]
    return np.asarray(
        2.0 * (j - 1.0) * n * np.maximum(n - 1.0, 0.0) + n * (inv_p[..., None] - j**2 - 2 * j + 2),
        dtype=np.float64,
    )


def rate_moments(k: ArrayLike, n: ArrayLike) -> DispersionMoments:
    """Moment estimate of a rate's intra-chunk correlation and its variance.

    Parameters
    ----------
    k, n : array_like
        Marked rows and rows per chunk, last axis = chunks.

    Returns
    -------
    DispersionMoments
        See :func:`rate_concentration` for the estimator; the variance is that of
        the Pearson sum under the binomial, divided as the estimate is.

    Examples
    --------
    >>> m = rate_moments([[0, 20, 0, 20]], [[100, 100, 100, 100]])
    >>> round(float(m.rho[0]), 3), bool(m.variance[0] > 0)
    (0.14, True)
    """
    kk = as_counts(k, "k")
    nn = as_counts(n, "n")
    kk, nn = np.broadcast_arrays(kk, nn)
    if (kk > nn).any():
        raise ValueError("need k <= n in every chunk")
    p = kk.sum(axis=-1, keepdims=True) / np.maximum(nn.sum(axis=-1, keepdims=True), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = ((kk - nn * p) ** 2 / (p * (1.0 - p))).sum(axis=-1)
        inv_p = 1.0 / (p[..., 0] * (1.0 - p[..., 0]))
    inner = ((p > 0) & (p < 1))[..., 0] & ((nn > 0).sum(axis=-1) >= 2)
    cells = np.where(inner, 1.0, 0.0)
    var_s = _pearson_var(nn, np.full(cells.shape, 2.0), np.where(inner, inv_p, 0.0)).sum(axis=-1)
    return _moments(np.where(inner, s, 0.0), nn, cells, var_s)


def _rho_to_concentration(rho: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore"):
        c = np.where(rho > 0, 1.0 / rho - 1.0, np.inf)
    return np.asarray(c, dtype=np.float64)


def rate_concentration(k: ArrayLike, n: ArrayLike) -> FloatArray:
    """Beta-binomial concentration of a rate across chunks (method of moments).

    Parameters
    ----------
    k, n : array_like
        Marked rows and rows per chunk, last axis = chunks (e.g. the reference's
        hours), leading axes = segments. ``0 <= k <= n``.

    Returns
    -------
    ndarray
        Concentration ``c`` per row: chunk shares vary as ``Beta(p c, (1 - p) c)``,
        so the intra-chunk correlation is ``rho = 1 / (c + 1)``. ``inf`` where the
        chunks vary no more than binomially (or there is too little to tell:
        fewer than two non-empty chunks, or a share of 0 or 1).

    Notes
    -----
    Moment estimator (Kleinman 1973): with ``p`` the pooled share and
    ``S = sum_i (k_i - n_i p)**2 / (p (1 - p))``, under the beta-binomial
    ``E[S] = sum_i n_i w_i (1 + (n_i - 1) rho)``, ``w_i = 1 - 2 n_i / N +
    sum_j n_j**2 / N**2``; solved for ``rho`` and clipped to [0, 1]. It is unbiased
    for ``S`` but ``rho`` from a handful of chunks is noisy: use tens of chunks.

    References
    ----------
    .. [1] Kleinman, J. C. (1973). Proportions with extraneous variance: single and
       independent samples. JASA 68, 46–54.

    Examples
    --------
    >>> rate_concentration([[10, 10, 10, 10]], [[100, 100, 100, 100]])
    array([inf])
    >>> c = rate_concentration([[0, 20, 0, 20]], [[100, 100, 100, 100]])
    >>> round(float(c[0]), 2)
    6.17
    """
    return _rho_to_concentration(_clipped(rate_moments(k, n)))


def cell_concentration(counts: ArrayLike) -> FloatArray:
    """Dirichlet-multinomial concentration of cell counts across chunks.

    Parameters
    ----------
    counts : array_like
        Shape ``(..., chunks, cells)``: counts per chunk and cell, leading axes =
        segments.

    Returns
    -------
    ndarray
        Concentration ``c`` per segment (chunk shares ~ ``Dirichlet(p c)``); ``inf``
        where the chunks vary no more than multinomially.

    Notes
    -----
    As :func:`rate_concentration`, with the Pearson sum over every occupied cell,
    ``S = sum_i sum_j (O_ij - n_i p_j)**2 / p_j``, whose expectation is
    ``(J - 1) sum_i n_i w_i (1 + (n_i - 1) rho)`` for ``J`` occupied cells
    (Mosimann 1962; the moment form of Brier's 1980 inflation factor).

    References
    ----------
    .. [1] Brier, S. S. (1980). Analysis of contingency tables under cluster
       sampling. Biometrika 67, 591–596.

    Examples
    --------
    >>> even = [[[25, 25, 50]] * 6]
    >>> cell_concentration(even)
    array([inf])
    >>> mixed = [[[50, 0, 50], [0, 50, 50]] * 3]
    >>> bool(cell_concentration(mixed)[0] < 5)
    True
    """
    return _rho_to_concentration(_clipped(cell_moments(counts)))


def cell_moments(counts: ArrayLike) -> DispersionMoments:
    """Moment estimate of cell counts' intra-chunk correlation and its variance.

    Parameters
    ----------
    counts : array_like
        Shape ``(..., chunks, cells)``.

    Returns
    -------
    DispersionMoments
        See :func:`cell_concentration`; the variance is the exact multinomial
        variance of the Pearson sum at the pooled shares, divided as the estimate is.

    Examples
    --------
    >>> m = cell_moments([[[50, 0, 50], [0, 50, 50]] * 3])
    >>> bool(m.rho[0] > 0.1), bool(np.isfinite(m.variance[0]))
    (True, True)
    """
    c = as_counts(counts, "counts")
    if c.ndim < 2:
        raise ValueError("counts need a chunks axis and a cells axis")
    n = c.sum(axis=-1)
    tot = c.sum(axis=-2, keepdims=True)
    p = tot / np.maximum(tot.sum(axis=-1, keepdims=True), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(p > 0, 1.0 / p, 0.0)[..., 0, :]
    inv_p = inv.sum(axis=-1)
    # sum_j (c_ij - n_i p_j)**2 / p_j = sum_j c_ij**2 / p_j - n_i**2 over occupied cells
    # (an empty cell has no count in any chunk): one pass, no table-sized temporaries
    s = np.einsum("...ij,...ij,...j->...", c, c, inv) - (n**2).sum(axis=-1)
    occupied = (p > 0).sum(axis=(-1, -2)).astype(np.float64)
    cells = np.maximum(occupied - 1.0, 0.0)
    enough = (n > 0).sum(axis=-1) >= 2
    var_s = _pearson_var(n, occupied, inv_p).sum(axis=-1)
    return _moments(np.where(enough, s, 0.0), n, np.where(enough, cells, 0.0), var_s)


def pooled_rho(moments: DispersionMoments) -> tuple[FloatArray, float]:
    """Each segment's dispersion shrunk toward the pool of all (empirical Bayes).

    Parameters
    ----------
    moments : DispersionMoments
        Per-segment estimates (:func:`rate_moments`, :func:`cell_moments`).

    Returns
    -------
    rho : ndarray
        Per segment ``pool + B (rho_i - pool)`` with ``B = tau2 / (tau2 + v_i)``,
        clipped to [0, 1]: a segment whose chunks say much about its dispersion
        (small ``v_i``) keeps its own, a sparse one gets the pool's; the pool where
        ``rho_i`` is ``nan``.
    pool : float
        The random-effects mean of the estimates, clipped to [0, 1] (0 with none).

    Notes
    -----
    DerSimonian–Laird: ``tau2``, the variance of the segments' true ``rho`` around
    their mean, from Cochran's ``Q`` of the inverse-variance weighted estimates;
    the pool is their mean weighted by ``1 / (v_i + tau2)``. The ``v_i`` are the
    multinomial (``rho = 0``) variances, so the weights are approximate where
    dispersion is large; what matters is that a segment with two sparse chunks,
    whose moment estimate can be anything in [0, 1], carries almost no weight.

    References
    ----------
    .. [1] DerSimonian, R., Laird, N. (1986). Meta-analysis in clinical trials.
       Controlled Clinical Trials 7, 177–188.

    Examples
    --------
    >>> m = DispersionMoments(np.array([0.01, 0.012, 0.9, np.nan]),
    ...                       np.array([1e-6, 1e-6, 1.0, np.inf]))
    >>> rho, pool = pooled_rho(m)
    >>> [round(float(x), 4) for x in rho], round(pool, 4)
    ([0.0106, 0.0114, 0.011, 0.011], 0.011)
    """
    r = np.asarray(moments.rho, dtype=np.float64)
    v = np.asarray(moments.variance, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(v) & (v > 0)
    if not ok.any():
        return np.zeros(r.shape), 0.0
    ro, vo = r[ok], v[ok]
    w = 1.0 / vo
    fixed = float((w * ro).sum() / w.sum())
    q = float((w * (ro - fixed) ** 2).sum())
    denom = float(w.sum() - (w**2).sum() / w.sum())
    tau2 = max(0.0, (q - (ro.size - 1)) / denom) if denom > 0 else 0.0
    wr = 1.0 / (vo + tau2)
    pool = float(np.clip((wr * ro).sum() / wr.sum(), 0.0, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(ok, tau2 / (tau2 + v), 0.0)
    shrunk = np.where(ok, pool + b * (np.where(ok, r, pool) - pool), pool)
    return np.asarray(np.clip(shrunk, 0.0, 1.0), dtype=np.float64), pool


def predictive_concentration(
    ref_n: ArrayLike, concentration: ArrayLike, chunk_n: ArrayLike = 1.0
) -> FloatArray:
    """Concentration of a window's share given the reference, noise and dispersion.

    Parameters
    ----------
    ref_n : array_like
        Rows (pseudo-rows included) the reference share was estimated from.
    concentration : array_like
        Between-window concentration (:func:`rate_concentration`; ``inf`` for
        none).
    chunk_n : array_like
        Rows of one reference chunk (a window as long as the current one; default 1:
        the reference's rows independent). The reference is a sum of about
        ``ref_n / chunk_n`` chunks, each drawing its own share, so its share carries
        the design effect ``1 + (chunk_n - 1) rho``: negligible for a week of hourly
        chunks, but a young reference of a few hours (or one partial day) is one or
        a few chunks, and its share wanders as much as the window's.

    Returns
    -------
    ndarray
        ``c`` with ``1 / (c + 1) = (1 + (m - 1) rho) / (ref_n + 1) + rho``,
        ``rho = 1 / (concentration + 1)``, ``m = chunk_n`` clipped to ``[1, ref_n]``:
        the variances of the two sources of uncertainty about the window's share add
        (estimation of the mean from ``ref_n`` rows in chunks of ``m``, and the
        window's own draw around it). With no dispersion this is the beta-binomial
        predictive of :func:`driftwatch.stats.maxcell.max_cell_test` (``ref_n``).

    Examples
    --------
    >>> predictive_concentration([100.0, 100.0], [np.inf, 100.0]).round(2).tolist()
    [100.0, 49.5]
    >>> predictive_concentration([1.0], [0.0]).tolist() == [MIN_CONCENTRATION]
    True
    >>> # a reference that is one chunk of 100 rows: its share wanders as the window does
    >>> predictive_concentration([100.0], [100.0], [100.0]).round(2).tolist()
    [32.89]
    """
    rn = np.asarray(ref_n, dtype=np.float64)
    kc = np.asarray(concentration, dtype=np.float64)
    if np.isnan(rn).any() or (rn <= 0).any() or np.isnan(kc).any() or (kc < 0).any():
        raise ValueError("ref_n must be > 0 and concentration >= 0 (it may be inf)")
    rho = 1.0 / (kc + 1.0)
    m = np.clip(np.nan_to_num(np.asarray(chunk_n, dtype=np.float64), nan=1.0), 1.0, rn)
    inv = (1.0 + (m - 1.0) * rho) / (rn + 1.0) + rho
    # a reference whose chunks are all-or-nothing (concentration near 0) leaves no
    # room for a share at all: the floor makes the window's share almost anything,
    # so such a segment never alerts on this evidence (conservative, never a crash)
    return np.asarray(np.maximum(1.0 / inv - 1.0, MIN_CONCENTRATION), dtype=np.float64)


MIN_CONCENTRATION = 1e-6
"""Smallest predictive concentration (a reference with all-or-nothing chunks)."""


def chi2_inflation(
    n_cur: ArrayLike, n_ref: ArrayLike, chunk_n: ArrayLike, concentration: ArrayLike
) -> FloatArray:
    """Factor a Pearson chi-square of homogeneity is inflated by under over-dispersion.

    Parameters
    ----------
    n_cur, n_ref : array_like
        Rows in the current window and in the reference.
    chunk_n : array_like
        Typical rows of one reference chunk of the current window's length (the
        reference is the sum of ``n_ref / chunk_n`` independent chunks). Taken as at
        least ``n_cur`` (a chunk is as long as the current window): a caller that
        divides ``n_ref`` by the nominal number of chunks of a full reference would
        otherwise count a young reference (hours of history, one partial chunk) as a
        week of independent chunks and under-state its spread.
    concentration : array_like
        Dirichlet-multinomial concentration ``c`` (``inf``: none).

    Returns
    -------
    ndarray
        ``phi = (n_ref phi_cur + n_cur phi_ref) / (n_ref + n_cur)`` with
        ``phi_x = 1 + (m_x - 1) rho``, ``rho = 1 / (c + 1)``, ``m_cur = n_cur`` and
        ``m_ref = min(max(chunk_n, n_cur), n_ref)``: the variance of the difference of
        the two windows' shares, relative to the multinomial one. ``X**2 / phi`` is approximately
        ``chi2(cells - 1)`` again (Rao–Scott first-order correction).

    Examples
    --------
    >>> chi2_inflation(1000, 7000, 1000, np.inf).tolist()
    1.0
    >>> round(float(chi2_inflation(1000, 7000, 1000, 999.0)), 3)
    1.999
    >>> # a young reference (1,000 rows: one chunk) said to be 1/168 of a week
    >>> round(float(chi2_inflation(1000, 1000, 1000 / 168, 999.0)), 3)
    1.999
    """
    nc = np.asarray(n_cur, dtype=np.float64)
    nr = np.asarray(n_ref, dtype=np.float64)
    m = np.maximum(np.asarray(chunk_n, dtype=np.float64), nc)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 / (np.asarray(concentration, dtype=np.float64) + 1.0)
        phi_cur = 1.0 + np.maximum(nc - 1.0, 0.0) * rho
        phi_ref = 1.0 + np.maximum(np.minimum(m, nr) - 1.0, 0.0) * rho
        phi = (nr * phi_cur + nc * phi_ref) / (nr + nc)
    return np.asarray(np.where(np.isfinite(phi), np.maximum(phi, 1.0), 1.0), dtype=np.float64)
