"""Conformity of digit counts with their expected shares: chi-square, z and MAD.

Per row (segment) of digit counts (:mod:`driftwatch.stats.digits`): Pearson's
chi-square against Benford or uniform cents, per-cell z-scores, and Nigrini's mean
absolute deviation (MAD) with its conformity ranges (:func:`digit_test`); and the
smoothed reference shares a segment's own expectation is built from
(:func:`smoothed_shares`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from driftwatch.stats._arrays import FloatArray, IntArray, as_counts, out_float, out_int
from driftwatch.stats.digits import DigitKind, check_kind, expected_proportions

__all__ = [
    "CONFORMITY_LEVELS",
    "MAD_RANGES",
    "DigitTestResult",
    "digit_test",
    "mad_conformity",
    "smoothed_shares",
]

#: Upper bounds of MAD for close / acceptable / marginally acceptable conformity.
#: ``first`` and ``first_two`` are Nigrini's (2012, table 7.1); Nigrini gives no
#: range for the last two digits, whose values here are this project's convention.
MAD_RANGES: dict[str, tuple[float, float, float]] = {
    "first": (0.006, 0.012, 0.015),
    "first_two": (0.0012, 0.0018, 0.0022),
    "last_two": (0.0016, 0.0018, 0.0020),
}
CONFORMITY_LEVELS: tuple[str, ...] = ("close", "acceptable", "marginal", "nonconformity")



def smoothed_shares(counts: ArrayLike, pseudocount: float = 0.5) -> FloatArray:
    """Reference shares with a pseudocount, for per-segment expectations.

    Parameters
    ----------
    counts : array_like
        Reference counts, last axis = cells (e.g. a segment's cents counts over
        a trailing baseline).
    pseudocount : float, optional
        Added to every cell before normalising (default 0.5, Jeffreys), so that
        no cell has probability 0.

    Returns
    -------
    ndarray
        ``(counts + a) / (n + cells * a)``, rows summing to 1.

    Examples
    --------
    >>> smoothed_shares([3, 1, 0, 0], pseudocount=0.5)
    array([0.58333333, 0.25      , 0.08333333, 0.08333333])
    """
    if not pseudocount > 0:
        raise ValueError(f"pseudocount={pseudocount!r}; allowed: pseudocount > 0")
    c = as_counts(counts)
    total = c.sum(axis=-1, keepdims=True) + c.shape[-1] * pseudocount
    return np.asarray((c + pseudocount) / total)


def mad_conformity(mad: ArrayLike, kind: DigitKind) -> str | NDArray[np.str_]:
    """Nigrini's conformity level for a mean absolute deviation.

    Parameters
    ----------
    mad : float or array_like
        Mean absolute deviation(s) between found and expected proportions.
    kind : {'first', 'first_two', 'last_two'}
        Which ranges of :data:`MAD_RANGES` apply.

    Returns
    -------
    str or ndarray of str
        ``'close'`` (MAD <= first bound), ``'acceptable'``, ``'marginal'`` or
        ``'nonconformity'`` (MAD > third bound); ``''`` for a NaN MAD (no data).

    Notes
    -----
    The ranges (upper bounds inclusive, as in benford_py) are Nigrini's for the
    first digit (0.006 / 0.012 / 0.015) and the first two digits (0.0012 /
    0.0018 / 0.0022). Nigrini publishes none for the last two digits; 0.0016 /
    0.0018 / 0.0020 is this project's convention. MAD ignores the sample size
    on purpose (it is a large-sample conformity measure): with few records it is
    large by chance (about ``sqrt(2 p (1 - p) / (pi n))`` per cell), so use the
    chi-square and :func:`max_cell_test` p-values for small segments.

    References
    ----------
    .. [1] Nigrini, M. J. (2012). Benford's Law: Applications for Forensic
       Accounting, Auditing, and Fraud Detection. Wiley. Table 7.1.

    Examples
    --------
    >>> mad_conformity(0.004, "first")
    'close'
    >>> mad_conformity([0.006, 0.0061, 0.02, float("nan")], "first")
    array(['close', 'acceptable', 'nonconformity', ''], dtype='<U13')
    """
    k = check_kind(kind)
    m = np.asarray(mad, dtype=np.float64)
    lo, mid, hi = MAD_RANGES[k]
    out = np.select(
        [np.isnan(m), m <= lo, m <= mid, m <= hi],
        ["", "close", "acceptable", "marginal"],
        default="nonconformity",
    ).astype("<U13")
    return str(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class DigitTestResult:
    """Result of :func:`digit_test` (one entry per row when vectorised).

    Attributes
    ----------
    chi2 : float or ndarray
        Pearson's chi-square statistic against the expected proportions.
    pvalue : float or ndarray
        ``chi2(cells - 1)`` upper tail of ``chi2``.
    z : ndarray
        Per-cell z-scores (last axis = cells), signed: positive where the cell
        is over-represented.
    mad : float or ndarray
        Mean absolute deviation of found from expected proportions.
    conformity : str or ndarray of str
        :func:`mad_conformity` of ``mad``.
    n : int or ndarray
        Number of records counted.
    """

    chi2: float | FloatArray
    pvalue: float | FloatArray
    z: FloatArray
    mad: float | FloatArray
    conformity: str | NDArray[np.str_]
    n: int | IntArray


def digit_test(
    counts: ArrayLike, kind: DigitKind, expected: ArrayLike | None = None
) -> DigitTestResult:
    """Chi-square, per-cell z, MAD and conformity of digit counts.

    Parameters
    ----------
    counts : array_like of int
        Cell counts from :func:`digit_counts` (9, 90 or 100 cells on the last
        axis); leading axes are rows (segments).
    kind : {'first', 'first_two', 'last_two'}
        Selects the cells, the default expectation and the MAD ranges.
    expected : array_like, optional
        Expected proportions per cell (1-D shared, or one row per count row),
        default :func:`expected_proportions`.

    Returns
    -------
    DigitTestResult
        NaN statistics and conformity ``''`` for rows with no record.

    Notes
    -----
    Null hypothesis: the digits are independent draws from ``expected``
    (Benford's law for first digits, uniform cents for the last two digits).

    * ``chi2 = sum((O - n p)**2 / (n p))``, p-value from ``chi2(cells - 1)``:
      asymptotic, accurate when every cell expects about 5 or more records; with
      fewer (100 cents cells and tens of rows) it floods with small p-values and
      :func:`max_cell_test` is the test to use. It treats ``expected`` as exact:
      shares *estimated* from a reference make it anti-conservative (compare two
      samples with :func:`driftwatch.stats.psi.psi_test` instead).
      Needs about 5 expected records per cell (45, 450 and 500 records), which
      small segments never reach; use :func:`max_cell_test` there.
    * ``z_i = (|f_i - p_i| - 1/(2n)) / sqrt(p_i (1 - p_i) / n)`` with the found
      proportion ``f_i``; Nigrini's continuity correction ``1/(2n)`` is applied
      only when it is smaller than ``|f_i - p_i|``. The sign of ``f_i - p_i`` is
      then attached. ``|z| > 1.96`` is significant at 5 % for one cell taken
      alone, not for the largest of 100.
    * ``mad = mean(|f_i - p_i|)``, rated by :func:`mad_conformity`.

    References
    ----------
    .. [1] Nigrini, M. J. (2012). Benford's Law. Wiley. Chapters 4–7.

    Examples
    --------
    >>> import numpy as np
    >>> from driftwatch.stats.digits import digit_counts, first_digit
    >>> rng = np.random.default_rng(3)
    >>> amounts = np.floor(10 ** rng.uniform(3, 7, size=5000)).astype(np.int64)
    >>> res = digit_test(digit_counts(first_digit(amounts), "first"), "first")
    >>> res.n, res.conformity, bool(res.pvalue > 0.01)
    (5000, 'close', True)
    >>> cents = np.zeros(100, dtype=np.int64); cents[[0, 37, 99]] = [20, 30, 50]
    >>> res = digit_test(cents, "last_two")
    >>> f"{res.pvalue:.1e}", res.conformity, int(np.argmax(res.z))
    ('0.0e+00', 'nonconformity', 99)
    """
    k = check_kind(kind)
    c = as_counts(counts, "counts")
    cells = len(expected_proportions(k))
    if c.shape[-1] != cells:
        raise ValueError(f"counts for kind={k!r} need {cells} cells, got {c.shape[-1]}")
    p = expected_proportions(k) if expected is None else np.asarray(expected, dtype=np.float64)
    if p.shape[-1] != cells or (p <= 0).any() or (p >= 1).any():
        raise ValueError(f"expected must hold {cells} proportions strictly between 0 and 1")
    n = c.sum(axis=-1)
    nn = n[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        found = c / nn
        chi2 = np.sum((c - nn * p) ** 2 / (nn * p), axis=-1)
        diff = found - p
        absdiff = np.abs(diff)
        half = 0.5 / nn
        numer = np.where(half < absdiff, absdiff - half, absdiff)
        z = np.sign(diff) * numer / np.sqrt(p * (1.0 - p) / nn)
        mad = absdiff.mean(axis=-1)
    empty = n <= 0
    chi2 = np.where(empty, np.nan, chi2)
    pval = np.where(empty, np.nan, special.chdtrc(cells - 1, chi2))
    mad = np.where(empty, np.nan, mad)
    return DigitTestResult(
        chi2=out_float(chi2),
        pvalue=out_float(pval),
        z=np.asarray(z, dtype=np.float64),
        mad=out_float(mad),
        conformity=mad_conformity(mad, k),
        n=out_int(np.rint(n)),
    )
