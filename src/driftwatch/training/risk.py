"""Model-independent risk of training records, and the attributes the miner combines.

A record is *fraud-like* when at least ``min_flags`` of five flags hold, each read
from the record alone (never from a model):

- ``velocity``: ``features.transactions_24h >= 5``;
- ``new_payee``: ``features.new_payee == 1``;
- ``cross_border``: ``features.foreign_transaction == 1``;
- ``new_merchant``: the merchant is younger than 180 days
  (``features.merchant_age_days``, else ``event_time - merchant_registered_at``);
- ``high_amount``: at least 1,000.00.

A flag whose input is missing is false. A fraud-like record labelled legitimate
contradicts its risk: that is the *suspicious* record of the poisoning scan.

>>> import pandas as pd
>>> f = pd.DataFrame({"amount_minor": [300000, 500], "label": [0, 0],
...     "features.transactions_24h": [9, 1], "features.new_payee": [1, 0],
...     "features.foreign_transaction": [1, 0]})
>>> fraud_like(f).tolist(), merchant_age_bucket(pd.Series([45.0, None, 4000.0])).tolist()
([True, False], ['30..89', '', '730..'])
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftwatch.mining import assign_prefixes, select_prefixes

AGE_EDGES = (0, 30, 90, 180, 365, 730)
"""Merchant-age buckets in days: ``0..29``, ``30..89``, ..., ``730..``."""
ATTRIBUTES = ("mcc", "amount_cents", "beneficiary_prefix", "merchant_age_days",
              "merchant_country", "channel")
"""Mined attributes, in the gate's field names (the search combines them in this order)."""


@dataclass(frozen=True)
class RiskRule:
    """Thresholds of the five flags and how many make a record fraud-like."""

    min_flags: int = 3
    velocity_24h: float = 5
    new_merchant_days: float = 180
    high_amount_minor: int = 100_000

    def __post_init__(self) -> None:
        if not 1 <= self.min_flags <= 5:
            raise ValueError(f"min_flags must be in 1..5, got {self.min_flags!r}")


DEFAULT_RULE = RiskRule()


def _feature(frame: pd.DataFrame, name: str) -> pd.Series:
    col = f"features.{name}"
    if col not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[col], errors="coerce")


def merchant_age_days(frame: pd.DataFrame) -> pd.Series:
    """Merchant age in days: the feature when present, else from the registration date."""
    age = _feature(frame, "merchant_age_days")
    if "merchant_registered_at" in frame and "event_time" in frame:
        reg = pd.to_datetime(frame["merchant_registered_at"]).dt.tz_localize("UTC")
        derived = (frame["event_time"] - reg).dt.days
        age = age.fillna(derived.astype(float))
    return age


def flags(frame: pd.DataFrame, rule: RiskRule = DEFAULT_RULE) -> pd.DataFrame:
    """The five flags per record (booleans)."""
    return pd.DataFrame({
        "velocity": (_feature(frame, "transactions_24h") >= rule.velocity_24h).to_numpy(),
        "new_payee": (_feature(frame, "new_payee") == 1).to_numpy(),
        "cross_border": (_feature(frame, "foreign_transaction") == 1).to_numpy(),
        "new_merchant": (merchant_age_days(frame) < rule.new_merchant_days).to_numpy(),
        "high_amount": (frame["amount_minor"] >= rule.high_amount_minor).to_numpy(),
    }, index=frame.index)


def fraud_like(frame: pd.DataFrame, rule: RiskRule = DEFAULT_RULE) -> pd.Series:
    """Whether each record is fraud-like (at least ``rule.min_flags`` flags)."""
    return flags(frame, rule).sum(axis=1) >= rule.min_flags


def merchant_age_bucket(age: pd.Series) -> pd.Series:
    """Age in days to its bucket label (``"30..89"``, ``"730.."``; ``""`` when missing)."""
    edges = np.asarray(AGE_EDGES, dtype=np.float64)
    labels = [f"{lo}..{hi - 1}" for lo, hi in itertools.pairwise(AGE_EDGES)]
    labels.append(f"{AGE_EDGES[-1]}..")
    values = age.to_numpy(dtype=np.float64)
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, None)
    out = np.asarray(labels, dtype=object)[idx]
    out[np.isnan(values) | (values < 0)] = ""
    return pd.Series(out, index=age.index)


def bucket_range(label: str) -> list[int | None]:
    """A bucket label as the contract's range ``[lo, hi]`` (``hi`` None: open).

    >>> bucket_range("30..89"), bucket_range("730..")
    ([30, 89], [730, None])
    """
    lo, _, hi = label.partition("..")
    return [int(lo), int(hi) if hi else None]


def attributes(new: pd.DataFrame, old: pd.DataFrame, min_support: int, total: int,
               total_ref: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mined attribute columns of the suspicious records of both snapshots.

    ``total`` and ``total_ref`` are the snapshots' record counts; beneficiary
    prefixes are chosen from the suspicious names (:func:`select_prefixes`).
    """
    prefixes = select_prefixes(
        new["beneficiary_name"].tolist(), [True] * len(new),
        old["beneficiary_name"].tolist(), [True] * len(old), min_support=min_support,
        total=total, total_ref=total_ref)

    def one(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({
            "mcc": frame["mcc"].astype(str).to_numpy(),
            "amount_cents": (frame["amount_minor"] % 100).to_numpy(),
            "beneficiary_prefix": assign_prefixes(frame["beneficiary_name"].tolist(), prefixes),
            "merchant_age_days": merchant_age_bucket(merchant_age_days(frame)).to_numpy(),
            "merchant_country": frame["merchant_country"].astype(str).to_numpy(),
            "channel": frame["channel"].astype(str).to_numpy(),
        }, index=frame.index)

    return one(new), one(old)
