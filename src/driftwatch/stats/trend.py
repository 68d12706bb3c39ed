"""Runs of consecutive declines: small drops that each pass a tolerance check.

Recall 94.5 % -> 94.2 % -> 93.8 % over three model versions is three values in
steady decline, each step inside a ±1 % tolerance; together they are a finding.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["DeclineRun", "consecutive_declines"]


def _check(n: int, tolerance: float) -> None:
    if int(n) != n or n < 2:
        raise ValueError(f"n={n!r}; allowed: an integer >= 2 (values in the run)")
    if not tolerance >= 0:
        raise ValueError(f"tolerance={tolerance!r}; allowed: tolerance >= 0")


def consecutive_declines(values: ArrayLike, n: int = 3, tolerance: float = 0.0) -> bool:
    """Whether the last ``n`` values each fall below the one before.

    Parameters
    ----------
    values : array_like
        A series in time order (e.g. recall per model version or per window).
        NaN entries (windows without enough data) are skipped.
    n : int, optional
        Length of the run in values (>= 2; default 3): ``n`` values, i.e.
        ``n - 1`` successive declines.
    tolerance : float, optional
        A step counts as a decline only if it drops by more than ``tolerance``
        (>= 0; default 0.0: any strict drop).

    Returns
    -------
    bool
        True if the series ends with such a run.

    Notes
    -----
    No statistical model: a run of declines is reported as a finding for a
    human (or combined with a rate test, :func:`~driftwatch.stats.recall.two_proportion_test`).
    Under a null of exchangeable values without ties, the chance that ``n``
    given consecutive values are strictly decreasing is ``1 / n!`` (1/6 for
    ``n = 3``), so use it as a corroborating signal, not alone.

    Examples
    --------
    >>> consecutive_declines([94.5, 94.2, 93.8])
    True
    >>> consecutive_declines([94.5, 94.2, 93.8], n=4)
    False
    >>> consecutive_declines([94.5, 94.2, 93.8], tolerance=0.35)
    False
    >>> consecutive_declines([95.0, 94.5, float("nan"), 94.2, 93.8], n=4)
    True
    """
    _check(n, tolerance)
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size < n:
        return False
    tail = v[-int(n) :]
    return bool((np.diff(tail) < -tolerance).all())


class DeclineRun:
    """Streaming form of :func:`consecutive_declines`.

    Parameters
    ----------
    n : int, optional
        Run length in values that counts as a finding (>= 2; default 3).
    tolerance : float, optional
        Minimum drop for a step to count (>= 0; default 0.0).

    Notes
    -----
    ``drift_detected`` is True while the current run of declining values is at
    least ``n`` long; a step that does not decline starts a new run at that
    value. NaN values are skipped.

    Examples
    --------
    >>> run = DeclineRun(n=3)
    >>> [run.update(x).drift_detected for x in [94.0, 94.5, 94.2, 93.8, 93.1, 93.5]]
    [False, False, False, True, True, False]
    >>> run.length
    1
    """

    def __init__(self, n: int = 3, tolerance: float = 0.0) -> None:
        _check(n, tolerance)
        self.n = int(n)
        self.tolerance = tolerance
        self._last: float | None = None
        self._length = 0

    @property
    def length(self) -> int:
        """Values in the current declining run (1 after a non-declining step)."""
        return self._length

    @property
    def drift_detected(self) -> bool:
        """Whether the current run is at least ``n`` values long."""
        return self._length >= self.n

    def update(self, x: float) -> DeclineRun:
        """Feed the next value; returns ``self``."""
        xf = float(x)
        if math.isnan(xf):
            return self
        if self._last is not None and self._last - xf > self.tolerance:
            self._length += 1
        else:
            self._length = 1
        self._last = xf
        return self
