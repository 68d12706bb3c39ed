"""Page–Hinkley test for a change in the mean of a stream.

Same recursion as ``river.drift.PageHinkley`` (and the same detection points on
the same stream), with ``update(x) -> self``.
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["PageHinkley"]

Mode = Literal["both", "up", "down"]
_MODES: tuple[str, ...] = ("both", "up", "down")


class PageHinkley:
    """Page–Hinkley change detector (two-sided by default).

    Parameters
    ----------
    min_instances : int, optional
        Values seen before a drift may be signalled (>= 1; default 30).
    delta : float, optional
        Magnitude of change tolerated (>= 0; default 0.005).
    threshold : float, optional
        Detection threshold lambda (> 0; default 50.0), in the units of ``x``
        accumulated over time.
    alpha : float, optional
        Forgetting factor of the cumulative sums, ``0 < alpha <= 1``
        (default ``1 - 0.0001``).
    mode : {'both', 'up', 'down'}, optional
        Detect increases, decreases or both (default ``'both'``).

    Notes
    -----
    With the running mean ``m_t`` of all values since the last reset,
    ``U_t = alpha U_{t-1} + (x_t - m_t) - delta`` and
    ``L_t = alpha L_{t-1} + (x_t - m_t) + delta``. An increase is signalled when
    ``U_t - min(U) > threshold``, a decrease when ``max(L) - L_t > threshold``
    (only after ``min_instances`` values). Null hypothesis: the mean is constant.
    After a detection the next :meth:`update` restarts from scratch (mean
    included), as river does. NaN values are skipped.

    References
    ----------
    .. [1] Page, E. S. (1954). Continuous inspection schemes. Biometrika 41,
       100–115.
    .. [2] Hinkley, D. V. (1971). Inference about the change-point from
       cumulative sum tests. Biometrika 58, 509–523.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> stream = np.concatenate([rng.integers(0, 2, 1000), rng.integers(4, 8, 1000)])
    >>> ph = PageHinkley()
    >>> [i for i, x in enumerate(stream) if ph.update(x).drift_detected]
    [1008]
    """

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: Mode = "both",
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}; allowed: {', '.join(_MODES)}")
        if min_instances < 1:
            raise ValueError(f"min_instances={min_instances!r}; allowed: >= 1")
        if not delta >= 0:
            raise ValueError(f"delta={delta!r}; allowed: delta >= 0")
        if not threshold > 0:
            raise ValueError(f"threshold={threshold!r}; allowed: threshold > 0")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha={alpha!r}; allowed: 0 < alpha <= 1")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        self._drift = False
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = math.inf
        self._max_decrease = -math.inf
        self._test_increase = 0.0
        self._test_decrease = 0.0
        self._drift = False

    @property
    def drift_detected(self) -> bool:
        """Whether the last update signalled a drift."""
        return self._drift

    @property
    def statistic(self) -> float:
        """The monitored test value(s): ``U - min(U)`` and/or ``max(L) - L``."""
        if self.mode == "up":
            return self._test_increase
        if self.mode == "down":
            return self._test_decrease
        return max(self._test_increase, self._test_decrease)

    @property
    def n(self) -> int:
        """Values seen since the last reset."""
        return self._n

    @property
    def mean(self) -> float:
        """Running mean since the last reset."""
        return self._mean

    def update(self, x: float) -> PageHinkley:
        """Feed one value; returns ``self`` so calls can be chained."""
        xf = float(x)
        if math.isnan(xf):
            return self
        if self._drift:
            self._reset()
        self._n += 1
        self._mean += (1.0 / self._n) * (xf - self._mean)
        dev = xf - self._mean
        self._sum_increase = self.alpha * self._sum_increase + dev - self.delta
        self._sum_decrease = self.alpha * self._sum_decrease + dev + self.delta
        self._min_increase = min(self._min_increase, self._sum_increase)
        self._max_decrease = max(self._max_decrease, self._sum_decrease)
        self._test_increase = self._sum_increase - self._min_increase
        self._test_decrease = self._max_decrease - self._sum_decrease
        if self._n >= self.min_instances:
            up = self.mode in ("both", "up") and self._test_increase > self.threshold
            down = self.mode in ("both", "down") and self._test_decrease > self.threshold
            self._drift = up or down
        return self
