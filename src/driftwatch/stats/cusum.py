"""Tabular CUSUM for a shift in the mean of a per-segment series.

Feeds on one value per window (recall per window, volume, disagreement rate)
and raises ``drift_detected`` when the cumulative standardised deviation from a
target exceeds ``h``. Target and scale are given, or learned from a warm-up.
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["CUSUM"]

Direction = Literal["both", "up", "down"]
_DIRECTIONS: tuple[str, ...] = ("both", "up", "down")


class CUSUM:
    """One- or two-sided tabular CUSUM (Page 1954) on standardised values.

    Parameters
    ----------
    target : float, optional
        In-control mean. Learned from the first ``warmup`` values if omitted.
    sigma : float, optional
        In-control standard deviation (> 0). Learned from the warm-up if omitted.
    k : float, optional
        Allowance (slack) in units of ``sigma``, >= 0; about half the shift to
        detect (default 0.5, i.e. tuned for a 1-sigma shift).
    h : float, optional
        Decision threshold in units of ``sigma``, > 0 (default 5.0).
    warmup : int, optional
        Values used to learn ``target`` and/or ``sigma`` (>= 2; default 30).
        Ignored when both are given. Nothing is detected during the warm-up.
    direction : {'both', 'up', 'down'}, optional
        Which shifts to detect (default ``'both'``). Recall drops: ``'down'``.
    min_sigma : float, optional
        Floor for a learned ``sigma`` (default 1e-9) so that a constant warm-up
        does not divide by zero.

    Notes
    -----
    With ``z_t = (x_t - target) / sigma`` the two statistics are
    ``S+_t = max(0, S+_{t-1} + z_t - k)`` and ``S-_t = max(0, S-_{t-1} - z_t - k)``;
    a drift is signalled when a monitored statistic exceeds ``h``. Null
    hypothesis: the values are independent with mean ``target`` and standard
    deviation ``sigma``. With ``k = 0.5`` and ``h = 5`` the in-control average
    run length of a one-sided chart is about 930 values for normal data and a
    1-sigma shift is detected after about 10 values (Montgomery, table 9.3).
    After a detection the next :meth:`update` restarts both sums at 0 (the
    learned target and sigma are kept), as river's detectors do. NaN values are
    skipped (no data in that window).

    References
    ----------
    .. [1] Page, E. S. (1954). Continuous inspection schemes. Biometrika 41,
       100–115.
    .. [2] Montgomery, D. C. (2009). Introduction to Statistical Quality
       Control, 6th ed., section 9.1.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> stream = np.concatenate([rng.normal(0.94, 0.01, 60), rng.normal(0.91, 0.01, 40)])
    >>> detector = CUSUM(warmup=30, direction="down")
    >>> for i, x in enumerate(stream):
    ...     if detector.update(x).drift_detected:
    ...         print(f"drift at {i}")
    ...         break
    drift at 62
    """

    def __init__(
        self,
        target: float | None = None,
        sigma: float | None = None,
        k: float = 0.5,
        h: float = 5.0,
        warmup: int = 30,
        direction: Direction = "both",
        min_sigma: float = 1e-9,
    ) -> None:
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction={direction!r}; allowed: {', '.join(_DIRECTIONS)}")
        if sigma is not None and not sigma > 0:
            raise ValueError(f"sigma={sigma!r}; allowed: sigma > 0 or None (learned)")
        if target is not None and not math.isfinite(target):
            raise ValueError(f"target={target!r}; allowed: a finite number or None (learned)")
        if not k >= 0:
            raise ValueError(f"k={k!r}; allowed: k >= 0")
        if not h > 0:
            raise ValueError(f"h={h!r}; allowed: h > 0")
        if (target is None or sigma is None) and warmup < 2:
            raise ValueError(f"warmup={warmup!r}; allowed: warmup >= 2 when learning")
        if not min_sigma > 0:
            raise ValueError(f"min_sigma={min_sigma!r}; allowed: min_sigma > 0")
        self.target = target
        self.sigma = sigma
        self.k = k
        self.h = h
        self.warmup = warmup
        self.direction = direction
        self.min_sigma = min_sigma
        self._mu: float | None = target if sigma is not None else None
        self._sd: float | None = sigma if target is not None else None
        self._n_warm = 0
        self._warm_mean = 0.0
        self._warm_m2 = 0.0
        self._upper = 0.0
        self._lower = 0.0
        self._n = 0
        self._drift = False

    @property
    def drift_detected(self) -> bool:
        """Whether the last update signalled a drift."""
        return self._drift

    @property
    def statistic(self) -> float:
        """The larger of the monitored sums ``S+`` / ``S-`` (sigma units)."""
        if self.direction == "up":
            return self._upper
        if self.direction == "down":
            return self._lower
        return max(self._upper, self._lower)

    @property
    def upper(self) -> float:
        """``S+``: evidence of an upward shift."""
        return self._upper

    @property
    def lower(self) -> float:
        """``S-``: evidence of a downward shift."""
        return self._lower

    @property
    def n(self) -> int:
        """Number of (non-NaN) values seen, warm-up included."""
        return self._n

    @property
    def warmed_up(self) -> bool:
        """Whether target and sigma are known (given or learned)."""
        return self._mu is not None and self._sd is not None

    @property
    def reference_mean(self) -> float | None:
        """The target in use (given or learned), None during the warm-up."""
        return self._mu if self.warmed_up else None

    @property
    def reference_sigma(self) -> float | None:
        """The sigma in use (given or learned), None during the warm-up."""
        return self._sd if self.warmed_up else None

    def update(self, x: float) -> CUSUM:
        """Feed one value; returns ``self`` so calls can be chained."""
        xf = float(x)
        if math.isnan(xf):
            return self
        if self._drift:
            self._upper = self._lower = 0.0
            self._drift = False
        self._n += 1
        if not self.warmed_up:
            self._n_warm += 1
            delta = xf - self._warm_mean
            self._warm_mean += delta / self._n_warm
            self._warm_m2 += delta * (xf - self._warm_mean)
            if self._n_warm >= self.warmup:
                mu = self.target if self.target is not None else self._warm_mean
                sd = math.sqrt(self._warm_m2 / (self._n_warm - 1))
                self._mu = mu
                self._sd = self.sigma if self.sigma is not None else max(sd, self.min_sigma)
            return self
        assert self._mu is not None and self._sd is not None
        z = (xf - self._mu) / self._sd
        self._upper = max(0.0, self._upper + z - self.k)
        self._lower = max(0.0, self._lower - z - self.k)
        up = self.direction in ("both", "up") and self._upper > self.h
        down = self.direction in ("both", "down") and self._lower > self.h
        self._drift = up or down
        return self
