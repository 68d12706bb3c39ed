"""ADWIN adaptive windowing, river's implementation behind the house interface."""

from __future__ import annotations

import math

from river import drift

__all__ = ["ADWIN"]


class ADWIN:
    """ADaptive WINdowing change detector (Bifet & Gavaldà 2007) via river.

    Parameters
    ----------
    delta : float, optional
        Confidence of a cut, ``0 < delta < 1`` (default 0.002); smaller means
        fewer false alarms and slower detection.
    clock : int, optional
        How often (in values) cuts are checked (>= 1; default 32).
    max_buckets : int, optional
        Buckets of each size kept by the exponential histogram (default 5).
    min_window_length : int, optional
        Minimum length of each sub-window compared (default 5).
    grace_period : int, optional
        Values seen before a drift may be signalled (default 10).

    Notes
    -----
    ADWIN keeps a window of recent values whose size adapts: whenever two
    sub-windows have means that differ by more than a Hoeffding-style bound at
    confidence ``delta``, the older part is dropped and a drift is signalled.
    Null hypothesis: the mean is constant over the window. Thin wrapper around
    ``river.drift.ADWIN`` (same detections) with ``update(x) -> self``; NaN
    values are skipped. Best for long streams (event-level rates); for a few
    dozen windows use :class:`~driftwatch.stats.cusum.CUSUM`.

    References
    ----------
    .. [1] Bifet, A., & Gavaldà, R. (2007). Learning from time-changing data
       with adaptive windowing. SIAM SDM, 443–448.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> stream = np.concatenate([rng.binomial(1, 0.05, 2000), rng.binomial(1, 0.30, 500)])
    >>> adwin = ADWIN()
    >>> [i for i, x in enumerate(stream) if adwin.update(x).drift_detected][:1]
    [2111]
    """

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta={delta!r}; allowed: 0 < delta < 1")
        for name, value in (
            ("clock", clock),
            ("max_buckets", max_buckets),
            ("min_window_length", min_window_length),
            ("grace_period", grace_period),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name}={value!r}; allowed: an integer >= 1")
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._adwin = drift.ADWIN(  # type: ignore[no-untyped-call]
            delta=delta,
            clock=clock,
            max_buckets=max_buckets,
            min_window_length=min_window_length,
            grace_period=grace_period,
        )

    @property
    def drift_detected(self) -> bool:
        """Whether the last update signalled a drift."""
        return bool(self._adwin.drift_detected)

    @property
    def width(self) -> int:
        """Current window length."""
        return int(self._adwin.width)

    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return float(self._adwin.estimation)

    def update(self, x: float) -> ADWIN:
        """Feed one value; returns ``self``."""
        xf = float(x)
        if not math.isnan(xf):
            self._adwin.update(xf)  # type: ignore[no-untyped-call]
        return self
