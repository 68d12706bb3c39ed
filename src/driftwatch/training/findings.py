"""Scan findings (contract ``training.md``) and the exact two-sided count test they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike
from scipy import stats

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class ScanFinding:
    """One finding of ``driftwatch training scan``.

    The first six fields are the contract's; ``records`` (``{"file", "line"|"row"}``
    of the records involved, at most the configured number) and ``details``
    (figures of the test) are extensions.
    """

    check: str
    severity: Severity
    blocking: bool
    conjunction: dict[str, Any]
    n: int
    summary: str
    records: tuple[dict[str, Any], ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check, "severity": self.severity, "blocking": self.blocking,
            "conjunction": self.conjunction, "n": self.n, "summary": self.summary,
        }
        if self.records:
            out["records"] = list(self.records)
        if self.details:
            out["details"] = self.details
        return out


def two_sided_binomial(x: ArrayLike, total: ArrayLike, p: ArrayLike) -> npt.NDArray[np.float64]:
    """Exact two-sided p-value ``min(1, 2 * min(P(X <= x), P(X >= x)))``, ``X ~ Binom(total, p)``.

    The doubled smaller tail (conservative next to scipy's ``binomtest``, which sums
    the outcomes no more likely than ``x``); vectorised.

    >>> round(float(two_sided_binomial(9, 10, 0.5)[()]), 4)
    0.0215
    >>> from scipy.stats import binomtest
    >>> bool(two_sided_binomial(30, 100, 0.4) >= binomtest(30, 100, 0.4).pvalue)
    True
    """
    xx = np.asarray(x, dtype=np.float64)
    upper = stats.binom.sf(xx - 1, total, p)
    lower = stats.binom.cdf(xx, total, p)
    return np.asarray(np.minimum(1.0, 2.0 * np.minimum(upper, lower)), dtype=np.float64)
