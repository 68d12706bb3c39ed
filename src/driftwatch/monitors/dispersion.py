"""Null models with the traffic's own dispersion, estimated from each detector's reference.

A detector's reference is one sum over a trailing week; it says what share to
expect but not how much that share moves from one window to the next. This module
reads the reference again split into chunks as long as the current window (a sample
of at most ``max_chunks`` of them, spread over the week so every time of day
appears), once per ``refresh_s`` of event time on a fixed grid (so a pass gets the
same estimate whether its process started a week or a second earlier), and turns their spread into a
concentration per segment (:mod:`driftwatch.stats.dispersion`). The detectors then
test against the beta-binomial / Dirichlet-multinomial predictive with that
concentration instead of a binomial with a cautious plug-in rate, so a segment whose
share wanders from hour to hour is judged against its own wandering, and effect
floors are left to say how large an excess is worth an alert.

Each segment's own over-dispersion (intra-chunk correlation, a moment estimate
with its sampling variance) is shrunk toward the dispersion pooled over all
segments (empirical Bayes, :func:`driftwatch.stats.dispersion.pooled_rho`): a busy
segment keeps its own, a sparse one whose few chunks of a handful of rows say
nothing borrows the pool's (its own estimate, anything from 0 to 1, once left such
a segment with no power at all). Each segment then gets the larger of its shrunk
estimate and the pool's: an estimate from a few dozen chunks is noisy, and a
segment whose spread was under-estimated by chance would otherwise be judged too
leniently.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from driftwatch.monitors.base import FloatArray
from driftwatch.monitors.reference import Fetch, FetchMany
from driftwatch.stats.betabinom import betabinom_sf
from driftwatch.stats.dispersion import (
    DispersionMoments,
    cell_moments,
    chi2_inflation,
    pooled_rho,
    predictive_concentration,
    rate_moments,
)
from driftwatch.stats.maxcell import CellTest, max_cell_test
from driftwatch.stats.psi import psi_test

Estimator = Callable[[FloatArray], DispersionMoments]
"""Dispersion moments per key from counts shaped (keys, chunks, cells)."""


def rate_estimator(stack: FloatArray) -> DispersionMoments:
    """Dispersion of a ``(n, k)`` rate table: cells are [rows, marked rows]."""
    return rate_moments(stack[..., 1], stack[..., 0])


def cells_estimator(stack: FloatArray) -> DispersionMoments:
    """Dispersion of a cell-count table (Dirichlet-multinomial)."""
    return cell_moments(stack)


class ReferenceDispersion:
    """Per-key concentration of a detector's counts across reference chunks.

    Parameters
    ----------
    fetch : callable
        ``fetch(start, end)`` returns the :class:`SegmentTable` of ``[start, end)``
        (the detector's own reference query).
    estimator : callable
        :func:`rate_estimator` or :func:`cells_estimator`.
    chunk_s : int
        Chunk length: the detector's current window.
    max_chunks : int
        Most chunks read per refresh (default 24: every 7th hour of a week).
    refresh_s : int
        Grid of the refreshes, from the epoch (default one day; :meth:`anchor`).
    many : callable, optional
        ``many(spans)`` reads the tables of many chunks in one query (then a refresh
        is one query instead of ``max_chunks``).
    """

    def __init__(
        self,
        fetch: Fetch,
        estimator: Estimator,
        *,
        chunk_s: int,
        max_chunks: int = 24,
        refresh_s: int = 86400,
        many: FetchMany | None = None,
    ) -> None:
        if chunk_s <= 0 or max_chunks < 2 or refresh_s <= 0:
            raise ValueError(
                f"chunk_s={chunk_s!r}, max_chunks={max_chunks!r}, refresh_s={refresh_s!r}; "
                "allowed: chunk_s > 0, max_chunks >= 2, refresh_s > 0"
            )
        self.fetch = fetch
        self.many = many
        self.estimator = estimator
        self.chunk_s = chunk_s
        self.max_chunks = max_chunks
        self.refresh_s = refresh_s
        self.fetches = 0
        self.reads = 0
        """Chunks read, and ``fetch``/``many`` calls made (store queries)."""
        self._cache: dict[tuple[dt.datetime, dt.timedelta], _Estimate] = {}

    def chunks(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        """The chunk windows read for the reference ``[start, end)``, newest first.

        >>> t = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
        >>> d = ReferenceDispersion(lambda a, b: SegmentTable.empty(2), rate_estimator,
        ...                         chunk_s=3600, max_chunks=24)
        >>> spans = d.chunks(t - dt.timedelta(days=7), t)
        >>> len(spans), sorted({a.hour for a, _ in spans}) == list(range(24))
        (24, True)
        """
        total = int((end - start).total_seconds() // self.chunk_s)
        if total <= 0:
            return []
        take = min(total, self.max_chunks)
        picks = sorted({int(j * total / take) for j in range(take)})
        step = dt.timedelta(seconds=self.chunk_s)
        return [(end - (i + 1) * step, end - i * step) for i in picks]

    def concentration(
        self, keys: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> FloatArray:
        """Concentration per key (``inf``: no over-dispersion) for the reference
        ``[start, end)``.

        The estimate is a function of the pass alone, never of when the process
        started: it is read from the reference ending at an anchor on a fixed grid
        (:meth:`anchor`), the same for a cold first pass after a start, a warm pass,
        live or backfill. Each anchor's estimate is read once and kept."""
        return self._estimate(self.anchor(start, end), end - start).lookup(keys)

    def anchor(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        """The end of the reference the estimate for ``[start, end)`` is read from.

        The start of ``end``'s day (``refresh_s`` grid from the epoch) if the chunks
        read there all held rows; otherwise (a young store: the estimate must not
        stay at "no dispersion" for a day) the latest of that day's start plus one
        chunk, two, four ... (a handful of reads a day while the store fills, not
        one per chunk).

        >>> from driftwatch.monitors.reference import SegmentTable
        >>> t = dt.datetime(2026, 3, 8, 13, 20, tzinfo=dt.UTC)
        >>> young = ReferenceDispersion(lambda a, b: SegmentTable.empty(2),
        ...                             rate_estimator, chunk_s=3600)
        >>> young.anchor(t - dt.timedelta(days=7), t).hour
        8
        """
        length = end - start
        day = _floor(end, self.refresh_s)
        if self._estimate(day, length).complete:
            return day
        chunks = int((end - day).total_seconds() // self.chunk_s)
        if chunks < 1:
            return day
        return day + dt.timedelta(seconds=self.chunk_s * (1 << (chunks.bit_length() - 1)))

    def _estimate(self, anchor: dt.datetime, length: dt.timedelta) -> _Estimate:
        key = (anchor, length)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._read(anchor - length, anchor)
            self._cache[key] = hit
            while len(self._cache) > 4:  # a day's anchor and the latest young one
                del self._cache[next(iter(self._cache))]
        return hit

    def _read(self, start: dt.datetime, end: dt.datetime) -> _Estimate:
        spans = self.chunks(start, end)
        self.fetches += len(spans)
        if self.many is not None and spans:
            self.reads += 1
            tables = self.many(spans)
        else:
            self.reads += len(spans)
            tables = [self.fetch(lo, hi) for lo, hi in spans]
        complete = bool(tables) and all(t.keys for t in tables)
        names = sorted({k for t in tables for k in t.keys})
        if not tables or not names:
            return _Estimate({}, math.inf, complete)
        stack = np.stack([t.rows(names) for t in tables], axis=1)
        conc, fallback = combine_concentrations(stack, self.estimator)
        return _Estimate(dict(zip(names, conc.tolist(), strict=True)), fallback, complete)


@dataclass(frozen=True)
class _Estimate:
    """One reading of the reference chunks: concentration per key, the pool's (for
    keys the chunks never held), and whether every chunk read held rows."""

    keys: dict[str, float]
    fallback: float
    complete: bool

    def lookup(self, keys: Sequence[str]) -> FloatArray:
        return np.array([self.keys.get(k, self.fallback) for k in keys], dtype=np.float64)


def _floor(t: dt.datetime, step_s: int) -> dt.datetime:
    """``t`` rounded down to a multiple of ``step_s`` seconds since the epoch."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=t.tzinfo)
    sec = (t - epoch) // dt.timedelta(seconds=1)
    return epoch + dt.timedelta(seconds=sec - sec % step_s)


def combine_concentrations(stack: FloatArray, estimator: Estimator) -> tuple[FloatArray, float]:
    """Concentration per key from chunk counts ``(keys, chunks, cells)``, and the pool's.

    Each key's moment estimate is shrunk toward the pool of all keys by its
    sampling variance (:func:`driftwatch.stats.dispersion.pooled_rho`); each key
    gets the smaller concentration (larger dispersion) of its shrunk estimate and
    the pool's; keys with nothing to estimate from get the pool's.

    >>> chunks = np.array([[[90, 10], [90, 10]], [[50, 5], [50, 20]], [[0, 0], [3, 0]]])
    >>> conc, pool = combine_concentrations(chunks.astype(float), rate_estimator)
    >>> conc.round(1).tolist(), round(pool, 1)
    ([8.6, 3.6, 8.6], 8.6)
    """
    rho, pool = pooled_rho(estimator(stack))
    out = np.array([_from_rho(float(x)) for x in np.maximum(rho, pool)], dtype=np.float64)
    return out, _from_rho(pool)


def _from_rho(rho: float) -> float:
    return math.inf if rho <= 0 else 1.0 / rho - 1.0


def rate_pvalue(
    k: FloatArray,
    n: FloatArray,
    k_ref: FloatArray,
    n_ref: FloatArray,
    prior: float | FloatArray,
    strength: float,
    concentration: FloatArray | float = math.inf,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Upper tail of ``k`` marked of ``n`` given the reference, noise and dispersion.

    The reference share is ``(k_ref + strength * prior) / (n_ref + strength)`` (a Beta
    prior of mean ``prior`` worth ``strength`` rows); the window's share is drawn
    around it with the predictive concentration
    (:func:`driftwatch.stats.dispersion.predictive_concentration` of
    ``n_ref + strength`` and ``concentration``), and the p-value is the exact
    beta-binomial tail ``P(X >= k)``.

    Returns
    -------
    pvalue, rate, pmin : ndarray
        The p-values, the reference share, and the p-value if every row were marked.

    >>> p, r, pmin = rate_pvalue(np.array([5.0]), np.array([50.0]), np.array([10.0]),
    ...                          np.array([1000.0]), 0.01, 100.0)
    >>> round(float(r[0]), 4), f"{float(p[0]):.2e}"
    (0.01, '2.76e-04')
    """
    rate = (k_ref + strength * np.asarray(prior)) / (n_ref + strength)
    # a reference chunk holds about a window's rows (n): a young reference is few chunks
    conc = predictive_concentration(n_ref + strength, concentration, n)
    pvalue = betabinom_sf(k, n, rate, conc)
    pmin = betabinom_sf(n, n, rate, conc)
    return pvalue, np.asarray(rate, dtype=np.float64), pmin


def pooled_prior(k_ref: FloatArray, n_ref: FloatArray, prior: float, strength: float) -> float:
    """The prior share of a rate detector's segments: all segments' reference pooled,
    shrunk toward the configured ``prior`` worth ``strength`` rows (empirical Bayes).

    A fixed prior of "almost never" (out-of-domain: 1e-4) makes every segment whose
    own share is ordinary but higher look raised while its reference is young (hours
    of rows, mostly prior): 4x nominal false positives at 6 h. The pooled share says
    what is ordinary for these segments; with no reference at all it is ``prior``.

    >>> pooled_prior(np.array([2.0, 0.0]), np.array([1000.0, 1000.0]), 1e-4, 1000.0)
    0.0007
    >>> pooled_prior(np.zeros(2), np.zeros(2), 1e-4, 1000.0)
    0.0001
    """
    total = float(np.sum(n_ref))
    return (float(np.sum(k_ref)) + strength * prior) / (total + strength)


def between_concentration(ref: FloatArray) -> float:
    """How closely segments' cell shares follow all traffic's (empirical Bayes).

    ``ref`` holds one reference row of cell counts per segment; the segments are
    read as draws of a Dirichlet-multinomial around the all-traffic shares and the
    concentration is the moment estimate of :func:`driftwatch.stats.dispersion.cell_moments`
    (``inf`` where segments differ no more than multinomially, or fewer than two).

    >>> same = np.array([[50.0, 50.0], [52.0, 48.0], [49.0, 51.0]])
    >>> between_concentration(same)
    inf
    >>> apart = np.array([[90.0, 10.0], [10.0, 90.0], [50.0, 50.0]])
    >>> round(between_concentration(apart), 1)
    0.6
    """
    if ref.ndim != 2 or ref.shape[0] < 2:
        return math.inf
    m = cell_moments(ref[None, :, :])
    rho = float(m.rho[0])
    return math.inf if not math.isfinite(rho) else _from_rho(min(max(rho, 0.0), 1.0))


def cells_vs_reference(
    cur: FloatArray,
    ref: FloatArray,
    overall: FloatArray,
    strength: float,
    concentration: FloatArray | float = math.inf,
    between: float = math.inf,
) -> CellTest:
    """Most over-represented cell of each row of ``cur`` against the row's reference.

    Null share of each cell: the segment's history shrunk toward all traffic,
    ``(ref + s * overall) / (n_ref + s)`` with ``s = min(strength, between, n_ref)``
    pseudo-rows (``between``: how closely segments follow all traffic,
    :func:`between_concentration`; a small segment borrows all traffic's shares as
    far as segments are alike, and never more rows of them than it has of its own:
    the estimate is dominated by the busy segments, which make up all traffic),
    worth ``n_ref + s`` rows; or, for a cell the
    segment's own reference has seen more often than that, its own share with a
    Jeffreys prior, ``(ref + 0.5) / (n_ref + 1)``, worth ``n_ref + 1`` rows (cash
    machines: every amount ends in .00; shrinking alone made a young store's ATM
    segments "anomalous"). A cell the segment never showed is not given the
    Jeffreys share: with twenty reference rows that would be 1/42, and a sparse
    segment could never alert. Each cell's count is beta-binomial with the
    predictive concentration of its rows and the segment's ``concentration``;
    :func:`driftwatch.stats.maxcell.max_cell_test` with a Bonferroni correction over
    the cells. ``pmin`` (every row in the rarest cell) uses the binomial, which only
    widens the testing family.

    >>> cur = np.zeros((1, 100)); cur[0, 37] = 6; cur[0, 0] = 3
    >>> ref = np.full((1, 100), 20.0); ref[0, 0] = 600
    >>> t = cells_vs_reference(cur, ref, np.full(100, 0.01), 100.0)
    >>> int(t.cell[0]), f"{float(t.pvalue[0]):.0e}"
    (37, '4e-09')
    """
    rows = cur.shape[0]
    if rows == 0:
        z = np.zeros(0)
        return CellTest(np.zeros(0, dtype=np.int64), z, z, z, z, z)
    n_ref = ref.sum(axis=1)
    s = np.minimum(min(float(strength), float(between)), np.maximum(n_ref, 1.0))[:, None]
    own = (ref + 0.5) / (n_ref[:, None] + 1.0)
    shrunk = (ref + s * overall[None, :]) / (n_ref[:, None] + s)
    use_own = (ref > 0) & (own > shrunk)
    probs = np.where(use_own, own, shrunk)
    rows_of = np.where(use_own, n_ref[:, None] + 1.0, n_ref[:, None] + s)
    conc_arr = np.broadcast_to(np.asarray(concentration, dtype=np.float64), (rows,))
    # a reference chunk holds about a window's rows: a young reference is few chunks
    conc = predictive_concentration(rows_of, conc_arr[:, None], cur.sum(axis=1)[:, None])
    res = max_cell_test(cur, probs, ref_n_cells=conc)
    cell = np.atleast_1d(np.asarray(res.cell, dtype=np.int64))
    n = cur.sum(axis=1)
    return CellTest(
        cell=cell,
        count=np.atleast_1d(np.asarray(res.count, dtype=np.float64)),
        expected=np.atleast_1d(np.asarray(res.expected, dtype=np.float64)),
        pvalue=np.atleast_1d(np.asarray(res.pvalue, dtype=np.float64)),
        share=probs[np.arange(rows), np.maximum(cell, 0)],
        pmin=probs.min(axis=1) ** n,
    )


_CELL_FIELDS = ("cell", "count", "expected", "pvalue", "share", "pmin")


class CellsMemo:
    """:func:`cells_vs_reference` for one detector pass after pass, recomputing only
    the rows whose inputs changed since the previous pass.

    Within an hour the reference and the dispersion estimates stand still and most
    segments' current rows did not move in five minutes; a row's result depends only
    on its own inputs and the pass-wide ``overall``, ``strength`` and ``between``, so
    an unchanged row keeps the previous result (bit for bit what recomputing gives:
    the test runs row by row). Live and backfill run the same passes, so both reuse
    the same rows. ``reused`` counts the rows taken over (tests, benchmarks).
    """

    def __init__(self) -> None:
        self._prev: tuple[pd.Index, FloatArray, FloatArray, FloatArray, tuple[Any, ...],
                          CellTest] | None = None
        self.reused = 0

    def __call__(
        self, keys: Sequence[str], cur: FloatArray, ref: FloatArray, overall: FloatArray,
        strength: float, concentration: FloatArray | float, between: float,
    ) -> CellTest:
        conc = np.array(np.broadcast_to(np.asarray(concentration, dtype=np.float64),
                                        (len(keys),)))
        same = np.zeros(len(keys), dtype=bool)
        idx = np.full(len(keys), -1, dtype=np.int64)
        common = (float(strength), float(between), np.asarray(overall).tobytes())
        prev = self._prev
        if prev is not None and prev[4] == common and len(keys):
            index, p_cur, p_ref, p_conc, _, _ = prev
            idx = np.asarray(index.get_indexer(pd.Index(list(keys))), dtype=np.int64)
            hit = np.flatnonzero(idx >= 0)
            j = idx[hit]
            same[hit] = (
                (p_cur[j] == cur[hit]).all(axis=1) & (p_ref[j] == ref[hit]).all(axis=1)
                & (p_conc[j] == conc[hit])
            )
        todo = ~same
        fresh = cells_vs_reference(cur[todo], ref[todo], overall, strength, conc[todo], between)
        parts = {}
        for name in _CELL_FIELDS:
            new = np.asarray(getattr(fresh, name))
            col = np.empty(len(keys), dtype=new.dtype)
            col[todo] = new
            if same.any() and prev is not None:
                col[same] = np.asarray(getattr(prev[5], name))[idx[same]]
            parts[name] = col
        result = CellTest(**parts)
        self.reused += int(same.sum())
        self._prev = (pd.Index(list(keys)), cur.copy(), ref.copy(), conc, common, result)
        return result


def homogeneity_pvalue(
    ref: FloatArray, cur: FloatArray, chunk_n: FloatArray, concentration: FloatArray,
    chunks: float = math.inf,
) -> tuple[FloatArray, FloatArray]:
    """Two-sample chi-square of homogeneity corrected for over-dispersion, per row.

    Pearson's statistic on the 2 x cells table (:func:`driftwatch.stats.psi.psi_test`)
    divided by :func:`driftwatch.stats.dispersion.chi2_inflation` (reference chunks of
    ``chunk_n`` rows, Dirichlet-multinomial ``concentration``). Where there is no
    over-dispersion (inflation 1) it is judged against ``chi2(occupied cells - 1)``;
    where the inflation was estimated from ``chunks`` reference chunks, against
    ``F(cells - 1, (chunks - 1) (cells - 1))`` of the statistic over its degrees of
    freedom: the estimate is itself noisy, and the chi-square tail alone was up to
    2.4x nominal at 1e-4 on dispersed null counts (``bench/calibration.py``); with
    the F tail 0.7-1.3x. ``chunks = inf`` keeps the chi-square. Returns the
    corrected statistic and the p-value.

    >>> ref = np.array([[300.0, 176, 125, 97, 79, 67, 58, 51, 46]] * 2) * 7
    >>> cur = np.array([[330.0, 160, 120, 100, 80, 60, 60, 50, 40]] * 2)
    >>> stat, p = homogeneity_pvalue(ref, cur, np.array([1000.0] * 2), np.array([np.inf, 500]))
    >>> p.round(3).tolist()
    [0.696, 0.985]
    >>> big = cur * np.array([[1.3, 1, 1, 1, 1, 1, 1, 1, 0.5]])
    >>> _, p = homogeneity_pvalue(ref, big, np.array([1000.0] * 2), np.array([np.inf, 500]))
    >>> _, pf = homogeneity_pvalue(ref, big, np.array([1000.0] * 2), np.array([np.inf, 500]), 24)
    >>> bool(pf[0] == p[0] and pf[1] > p[1])
    True
    """
    res = psi_test(ref, cur)
    raw = np.atleast_1d(np.asarray(res.statistic, dtype=np.float64))
    df = np.maximum(np.atleast_1d(np.asarray(res.bins, dtype=np.float64)) - 1.0, 1.0)
    phi = chi2_inflation(cur.sum(axis=1), ref.sum(axis=1), chunk_n, concentration)
    stat = raw / phi
    pvalue = special.chdtrc(df, stat)
    if math.isfinite(chunks):
        with np.errstate(invalid="ignore"):
            f_tail = special.fdtrc(df, max(chunks - 1.0, 1.0) * df, stat / df)
        pvalue = np.where(phi > 1.0, f_tail, pvalue)
    pvalue = np.where(np.isnan(stat), np.nan, pvalue)
    return stat, np.asarray(pvalue, dtype=np.float64)


def ks_dispersed_pvalue(
    statistic: FloatArray,
    n_cur: FloatArray,
    n_ref: FloatArray,
    exact_p: FloatArray,
    phi: FloatArray,
) -> FloatArray:
    """Two-sample KS p-value with the samples' effective sizes shrunk by ``phi``.

    Over-dispersion inflates the variance of the difference of the two empirical
    CDFs by ``phi`` (:func:`driftwatch.stats.dispersion.chi2_inflation`), as if the
    samples had ``n / phi`` rows. Where ``phi`` is 1 the p-value of
    :func:`driftwatch.stats.ks.ks_from_counts` (``exact_p``) is kept; elsewhere the
    Kolmogorov limit at ``n_eff / phi`` (Stephens' correction) is used, the larger
    of the two being returned (never more significant than without dispersion).

    >>> p = ks_dispersed_pvalue(np.array([0.1, 0.1]), np.array([1000.0] * 2),
    ...                         np.array([7000.0] * 2), np.array([2e-8] * 2),
    ...                         np.array([1.0, 4.0]))
    >>> [f"{x:.1e}" for x in p]
    ['2.0e-08', '2.3e-02']
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = n_cur * n_ref / (n_cur + n_ref) / phi
        en = np.sqrt(n_eff)
        approx = special.kolmogorov((en + 0.12 + 0.11 / en) * statistic)
    out = np.where(phi > 1.0, np.maximum(approx, exact_p), exact_p)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)
