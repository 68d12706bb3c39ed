"""Digits of amounts in minor units: extraction, counts, and their expected shares.

Amounts arrive as integers in minor units (cents), parsed exactly from their
decimal form, so digit extraction is integer arithmetic and never touches a
float: first digit (Benford, 9 cells), first two digits (Benford, 90 cells) and
last two digits, i.e. the cents value (uniform, 100 cells), on amounts >= 10.00
only (below that the cents are too entangled with the leading digits). The tests
on these counts live beside it: Pearson's chi-square, z-scores and Nigrini's MAD
in :mod:`driftwatch.stats.digit_test`, the exact scan for one over-represented
cell (amounts ending in ``.37`` after a handful of transactions) in
:mod:`driftwatch.stats.maxcell`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from driftwatch.stats._arrays import FloatArray, IntArray

__all__ = [
    "DIGIT_KINDS",
    "LAST_TWO_MIN_MINOR",
    "DigitKind",
    "amounts_for_last_two",
    "check_kind",
    "digit_counts",
    "digits_of",
    "expected_proportions",
    "first_digit",
    "first_two_digits",
    "grouped_digit_counts",
    "last_two_digits",
    "last_two_eligible",
]

DigitKind = Literal["first", "first_two", "last_two"]
DIGIT_KINDS: tuple[str, ...] = ("first", "first_two", "last_two")
_FIRST_VALUE = {"first": 1, "first_two": 10, "last_two": 0}
_N_CELLS = {"first": 9, "first_two": 90, "last_two": 100}

#: Smallest amount (minor units) that takes part in the last-two-digits test: 10.00.
LAST_TWO_MIN_MINOR = 1000



_POW10 = 10 ** np.arange(19, dtype=np.int64)


def check_kind(kind: str) -> DigitKind:
    if kind not in DIGIT_KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(DIGIT_KINDS)}")
    return kind  # type: ignore[return-value]


def _as_minor(amount_minor: ArrayLike) -> IntArray:
    """Absolute amounts as int64; floats must hold whole numbers."""
    arr = np.asarray(amount_minor)
    if arr.dtype.kind not in "iu":
        f = arr.astype(np.float64)
        if not np.isfinite(f).all() or (f != np.floor(f)).any():
            raise ValueError("amount_minor must be whole numbers of minor units (e.g. cents)")
        arr = f
    return np.abs(arr.astype(np.int64))


def _leading(amount_minor: ArrayLike, digits: int) -> IntArray:
    a = _as_minor(amount_minor)
    ndig = np.searchsorted(_POW10, a, side="right")  # number of decimal digits (0 for 0)
    shift = np.maximum(ndig - digits, 0)
    lead = a // _POW10[shift]
    return np.where(ndig >= digits, lead, -1).astype(np.int64)


def first_digit(amount_minor: ArrayLike) -> IntArray:
    """First significant digit of each amount (sign ignored).

    Parameters
    ----------
    amount_minor : array_like of int
        Amounts in minor units (e.g. 1234.37 -> 123437).

    Returns
    -------
    ndarray of int64
        1–9, or -1 for a zero amount (no significant digit).

    Examples
    --------
    >>> first_digit([123437, 9, -5000, 0])
    array([ 1,  9,  5, -1])
    """
    return _leading(amount_minor, 1)


def first_two_digits(amount_minor: ArrayLike) -> IntArray:
    """First two significant digits of each amount (sign ignored).

    Parameters
    ----------
    amount_minor : array_like of int
        Amounts in minor units.

    Returns
    -------
    ndarray of int64
        10–99, or -1 for amounts below 10 minor units.

    Examples
    --------
    >>> first_two_digits([123437, 10, 9, 99999])
    array([12, 10, -1, 99])
    """
    return _leading(amount_minor, 2)


def last_two_digits(amount_minor: ArrayLike) -> IntArray:
    """Last two digits of each amount: the cents value, ``|amount_minor| % 100``.

    Parameters
    ----------
    amount_minor : array_like of int
        Amounts in minor units. No filtering: combine with
        :func:`last_two_eligible` for the test population (amounts >= 10.00).

    Returns
    -------
    ndarray of int64
        0–99.

    Examples
    --------
    >>> last_two_digits([123437, 1000, 5, -1999])
    array([37,  0,  5, 99])
    """
    return _as_minor(amount_minor) % 100


def last_two_eligible(amount_minor: ArrayLike) -> NDArray[np.bool_]:
    """Mask of amounts that take part in the last-two-digits test (>= 10.00).

    Parameters
    ----------
    amount_minor : array_like of int
        Amounts in minor units; the sign is ignored.

    Returns
    -------
    ndarray of bool
        ``|amount_minor| >= LAST_TWO_MIN_MINOR``.

    Examples
    --------
    >>> a = [123437, 999, 1000, -2537]
    >>> last_two_eligible(a)
    array([ True, False,  True,  True])
    >>> last_two_digits(a)[last_two_eligible(a)]
    array([37,  0, 37])
    """
    return _as_minor(amount_minor) >= LAST_TWO_MIN_MINOR


def amounts_for_last_two(amount_minor: ArrayLike) -> IntArray:
    """The amounts that take part in the last-two-digits test (>= 10.00), as int64.

    Parameters
    ----------
    amount_minor : array_like of int
        Amounts in minor units; the sign is ignored for the cut and kept in the output.

    Returns
    -------
    ndarray of int64

    Examples
    --------
    >>> amounts_for_last_two([123437, 999, 1000, -2537])
    array([123437,   1000,  -2537])
    """
    a = np.asarray(amount_minor)
    signed = a.astype(np.int64) if a.dtype.kind in "iu" else np.asarray(a, dtype=np.float64)
    return np.asarray(signed[last_two_eligible(a)], dtype=np.int64)


def digits_of(amount_minor: ArrayLike, kind: DigitKind) -> IntArray:
    """The digits a test of ``kind`` looks at, -1 where the amount does not take part.

    Parameters
    ----------
    amount_minor : array_like of int
        Amounts in minor units.
    kind : {'first', 'first_two', 'last_two'}
        For ``'last_two'``, amounts below 10.00 get -1.

    Returns
    -------
    ndarray of int64

    Examples
    --------
    >>> digits_of([123437, 999, 5], "last_two")
    array([37, -1, -1])
    """
    k = check_kind(kind)
    if k == "first":
        return first_digit(amount_minor)
    if k == "first_two":
        return first_two_digits(amount_minor)
    return np.where(last_two_eligible(amount_minor), last_two_digits(amount_minor), -1)


def digit_counts(digits: ArrayLike, kind: DigitKind) -> IntArray:
    """Counts of each digit value over the cells of a test.

    Parameters
    ----------
    digits : array_like of int
        Digit values, e.g. from :func:`first_digit`. Values outside the test's
        range (such as the -1 marker) are ignored.
    kind : {'first', 'first_two', 'last_two'}
        9 cells for digits 1–9, 90 for 10–99, 100 for 00–99.

    Returns
    -------
    ndarray of int64
        Cell ``i`` counts digit value ``i + 1`` (first), ``i + 10``
        (first_two) or ``i`` (last_two).

    Examples
    --------
    >>> digit_counts([1, 1, 2, 9, -1], "first")
    array([2, 1, 0, 0, 0, 0, 0, 0, 1])
    """
    k = check_kind(kind)
    d = np.asarray(digits, dtype=np.int64).ravel() - _FIRST_VALUE[k]
    cells = _N_CELLS[k]
    d = d[(d >= 0) & (d < cells)]
    return np.bincount(d, minlength=cells).astype(np.int64)


def grouped_digit_counts(
    digits: ArrayLike, groups: ArrayLike, kind: DigitKind, n_groups: int | None = None
) -> IntArray:
    """Counts per group in one pass: a ``(n_groups, cells)`` array.

    Parameters
    ----------
    digits : array_like of int
        Digit values (out-of-range values are ignored, as in :func:`digit_counts`).
    groups : array_like of int
        Group (segment) index of each digit, 0 <= group < n_groups.
    kind : {'first', 'first_two', 'last_two'}
    n_groups : int, optional
        Number of groups; default ``max(groups) + 1``.

    Returns
    -------
    ndarray of int64, shape ``(n_groups, cells)``

    Examples
    --------
    >>> grouped_digit_counts([1, 2, 2, 9], [0, 1, 1, 1], "first")
    array([[1, 0, 0, 0, 0, 0, 0, 0, 0],
           [0, 2, 0, 0, 0, 0, 0, 0, 1]])
    """
    k = check_kind(kind)
    d = np.asarray(digits, dtype=np.int64).ravel() - _FIRST_VALUE[k]
    g = np.asarray(groups, dtype=np.int64).ravel()
    if d.shape != g.shape:
        raise ValueError("digits and groups must have the same length")
    if (g < 0).any():
        raise ValueError("groups must be >= 0")
    cells = _N_CELLS[k]
    rows = int(g.max()) + 1 if n_groups is None and g.size else int(n_groups or 0)
    keep = (d >= 0) & (d < cells) & (g < rows)
    flat = np.bincount(g[keep] * cells + d[keep], minlength=rows * cells)
    return flat.reshape(rows, cells).astype(np.int64)


def expected_proportions(kind: DigitKind) -> FloatArray:
    """Expected cell proportions: Benford for first digits, uniform for the last two.

    Parameters
    ----------
    kind : {'first', 'first_two', 'last_two'}

    Returns
    -------
    ndarray
        ``log10(1 + 1/d)`` for ``d`` in 1–9 or 10–99; ``0.01`` for each of the
        100 cents values.

    Examples
    --------
    >>> expected_proportions("first").round(3)
    array([0.301, 0.176, 0.125, 0.097, 0.079, 0.067, 0.058, 0.051, 0.046])
    >>> expected_proportions("last_two")[:3]
    array([0.01, 0.01, 0.01])
    """
    k = check_kind(kind)
    if k == "last_two":
        return np.full(100, 0.01)
    d = np.arange(_FIRST_VALUE[k], _FIRST_VALUE[k] + _N_CELLS[k], dtype=np.float64)
    return np.log10(1.0 + 1.0 / d)
