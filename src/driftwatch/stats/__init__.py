"""Pure statistics behind the detectors: no I/O, nothing else of driftwatch imported.

One module per method: :mod:`~driftwatch.stats.psi`, :mod:`~driftwatch.stats.ks`,
:mod:`~driftwatch.stats.digits`, :mod:`~driftwatch.stats.digit_test`,
:mod:`~driftwatch.stats.maxcell`, :mod:`~driftwatch.stats.rates`, :mod:`~driftwatch.stats.recall`,
:mod:`~driftwatch.stats.fdr`, :mod:`~driftwatch.stats.dispersion` (functions
over numpy arrays, vectorised over segments) and
:mod:`~driftwatch.stats.trend` (a small class with ``update(x) -> self`` and a
read-only ``drift_detected``).
"""

from __future__ import annotations

from driftwatch.stats.betabinom import betabinom_sf
from driftwatch.stats.digit_test import (
    CONFORMITY_LEVELS,
    MAD_RANGES,
    DigitTestResult,
    digit_test,
    mad_conformity,
    smoothed_shares,
)
from driftwatch.stats.digits import (
    DIGIT_KINDS,
    LAST_TWO_MIN_MINOR,
    amounts_for_last_two,
    digit_counts,
    digits_of,
    expected_proportions,
    first_digit,
    first_two_digits,
    grouped_digit_counts,
    last_two_digits,
    last_two_eligible,
)
from driftwatch.stats.dispersion import (
    cell_concentration,
    chi2_inflation,
    predictive_concentration,
    rate_concentration,
)
from driftwatch.stats.fdr import FDRResult, benjamini_hochberg
from driftwatch.stats.ks import (
    EXACT_AUTO_MAX_PRODUCT,
    KSResult,
    ks_2samp,
    ks_from_counts,
    ks_pvalue,
)
from driftwatch.stats.maxcell import CellTest, MaxCellResult, max_cell_test
from driftwatch.stats.psi import (
    PSIResult,
    bin_counts,
    psi,
    psi_critical,
    psi_test,
    quantile_edges,
)
from driftwatch.stats.rates import binom_sf, shrunk_rate, upper_rate
from driftwatch.stats.recall import (
    RateResult,
    TwoProportionResult,
    precision,
    rate,
    recall,
    two_proportion_test,
    wilson_interval,
)
from driftwatch.stats.trend import DeclineRun, consecutive_declines

__all__ = [
    "CONFORMITY_LEVELS",
    "DIGIT_KINDS",
    "EXACT_AUTO_MAX_PRODUCT",
    "LAST_TWO_MIN_MINOR",
    "MAD_RANGES",
    "CellTest",
    "DeclineRun",
    "DigitTestResult",
    "FDRResult",
    "KSResult",
    "MaxCellResult",
    "PSIResult",
    "RateResult",
    "TwoProportionResult",
    "amounts_for_last_two",
    "benjamini_hochberg",
    "betabinom_sf",
    "bin_counts",
    "binom_sf",
    "cell_concentration",
    "chi2_inflation",
    "consecutive_declines",
    "digit_counts",
    "digit_test",
    "digits_of",
    "expected_proportions",
    "first_digit",
    "first_two_digits",
    "grouped_digit_counts",
    "ks_2samp",
    "ks_from_counts",
    "ks_pvalue",
    "last_two_digits",
    "last_two_eligible",
    "mad_conformity",
    "max_cell_test",
    "precision",
    "predictive_concentration",
    "psi",
    "psi_critical",
    "psi_test",
    "quantile_edges",
    "rate",
    "rate_concentration",
    "recall",
    "shrunk_rate",
    "smoothed_shares",
    "two_proportion_test",
    "upper_rate",
    "wilson_interval",
]
