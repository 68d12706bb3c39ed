"""False-alert rates from counts over an exposure, with exact Poisson bounds.

The whole-monitor part of the calibration bench counts detector alerts on clean
traffic over several simulated spans. Alerts on clean traffic are rare events, so the
figure to quote is the count, the exposure and an exact (Garwood) confidence bound on
the rate, not the point estimate alone: zero alerts in four weeks bounds the rate at
about 3.3 a month (95 %), not at zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

DAYS_PER_MONTH = 30.0
DAYS_PER_WEEK = 7.0


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """One-sided exact upper confidence bound on a Poisson mean after ``k`` events.

    Parameters
    ----------
    k : int
        Events observed, ``k >= 0``.
    confidence : float
        Confidence level, in (0, 1).

    Returns
    -------
    float
        The mean ``mu`` with ``P(X <= k; mu) = 1 - confidence`` (Garwood 1936): the
        ``confidence`` quantile of Gamma(k + 1, 1), i.e. chi2(2k + 2) / 2.

    Examples
    --------
    >>> round(poisson_upper(0), 4)  # -ln(0.05)
    2.9957
    >>> round(poisson_upper(3), 3)
    7.754
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.gamma.ppf(confidence, k + 1))


def poisson_lower(k: int, confidence: float = 0.95) -> float:
    """One-sided exact lower confidence bound on a Poisson mean (0 when ``k == 0``)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return 0.0 if k == 0 else float(stats.gamma.ppf(1.0 - confidence, k))


@dataclass(frozen=True)
class AlertRate:
    """Alerts over an exposure: the rate per month and per week per 1,000 segments.

    Attributes
    ----------
    alerts : int
        Warning/critical detector alerts opened on clean traffic (all spans).
    days : float
        Simulated days evaluated (all spans).
    segment_days : float
        Sum over spans of segments evaluated x days evaluated.
    per_month, per_month_upper : float
        Alerts per 30 simulated days of the whole monitor (at the spans' mean segment
        count), point estimate and exact one-sided 95 % upper bound.
    per_week_per_1000, per_week_per_1000_upper : float
        Alerts per 7 days per 1,000 segments, point and 95 % upper bound.
    """

    alerts: int
    days: float
    segment_days: float
    per_month: float
    per_month_upper: float
    per_week_per_1000: float
    per_week_per_1000_upper: float


def alert_rate(alerts: int, days: float, segment_days: float,
               confidence: float = 0.95) -> AlertRate:
    """Rates of ``alerts`` over ``days`` (and ``segment_days``) with exact bounds.

    Examples
    --------
    >>> r = alert_rate(0, 30.0, 30.0 * 500)
    >>> round(r.per_month_upper, 3), round(r.per_week_per_1000_upper, 3)
    (2.996, 1.398)
    """
    if days <= 0 or segment_days <= 0:
        nan = math.nan
        return AlertRate(alerts, days, segment_days, nan, nan, nan, nan)
    up = poisson_upper(alerts, confidence)
    month = DAYS_PER_MONTH / days
    week_1000 = DAYS_PER_WEEK * 1000.0 / segment_days
    return AlertRate(alerts, days, segment_days, alerts * month, up * month,
                     alerts * week_1000, up * week_1000)
