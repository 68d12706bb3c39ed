"""Probe attributes: what the gate varies on a baseline fixture, and how.

An *assignment* maps contract field names to a value: ``mcc`` ("5967"),
``amount_cents`` (37), ``beneficiary_prefix`` ("INTL-PAY-"), ``merchant_country``
("LT"), ``channel`` ("ecom"), ``merchant_age_days`` and ``amount`` (closed ranges
``(lo, hi)``). :func:`apply` returns a copy of an event with the assignment in force,
keeping the event consistent (the cents stay when the amount band changes, the
merchant's registration date follows its age, ``model``/``shadow`` are dropped).

>>> e = {"event_time": "2026-03-18T14:00:03Z", "amount": "4892.37", "mcc": "5812",
...      "beneficiary_name": "PRIME CENTER 7", "features": {"merchant_age_days": 900},
...      "model": {"score": 0.1}}
>>> p = apply(e, {"amount_cents": 5, "mcc": "5967", "beneficiary_prefix": "INTL-PAY-",
...               "merchant_age_days": (30, 89)})
>>> p["amount"], p["mcc"], p["beneficiary_name"], p["features"]["merchant_age_days"]
('4892.05', '5967', 'INTL-PAY-CENTER 7', 59)
>>> p["merchant_registered_at"], "model" in p
('2026-01-18', False)
>>> beneficiary_prefix("INTL-PAY-GLOBALSERV"), beneficiary_prefix("UPI-PAY-005@OKBANK")
('INTL-PAY-', 'UPI-PAY-')
>>> beneficiary_prefix("PRIME CENTER 7"), beneficiary_prefix("")
('PRIME ', '')
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from driftwatch.amounts import AmountError, parse_amount

#: Probe attributes, in the order the gate reports them.
ATTRIBUTES: tuple[str, ...] = (
    "mcc",
    "amount_cents",
    "beneficiary_prefix",
    "merchant_country",
    "channel",
    "merchant_age_days",
    "amount",
)
CHANNELS: tuple[str, ...] = ("card_present", "ecom", "upi", "transfer", "atm", "other")
#: Merchant age buckets in days (closed ranges) and amount bands in whole units.
AGE_BUCKETS: tuple[tuple[int, int], ...] = ((0, 29), (30, 89), (90, 364), (365, 3650))
AMOUNT_BANDS: tuple[tuple[int, int], ...] = (
    (1, 99), (100, 999), (1000, 4999), (5000, 14999), (15000, 50000)
)
_PREFIX = re.compile(r"^[A-Za-z0-9]+-(?:[A-Za-z0-9]+-)?")

Value = Any
Assignment = Mapping[str, Value]


def beneficiary_prefix(name: str) -> str:
    """The prefix of a beneficiary name: up to two leading ``WORD-`` groups, else the
    first word and its space."""
    m = _PREFIX.match(name)
    if m:
        return m.group(0)
    head, sep, _ = name.partition(" ")
    return head + sep if sep else ""


def minor_units(event: Mapping[str, Any]) -> int:
    """The event's amount in minor units (0 when missing or invalid)."""
    try:
        return parse_amount(str(event.get("amount", "0")))
    except AmountError:
        return 0


def _fmt(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def _mid(r: tuple[int, int]) -> int:
    return (r[0] + r[1]) // 2


def _event_date(event: Mapping[str, Any]) -> dt.date:
    text = str(event.get("event_time", ""))
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return dt.date(2026, 1, 1)


def attribute_of(event: Mapping[str, Any], attr: str) -> Value:
    """The value of one probe attribute on an event (ranges: the bucket holding it)."""
    raw = event.get("features")
    feats = raw if isinstance(raw, dict) else {}
    if attr == "amount_cents":
        return minor_units(event) % 100
    if attr == "amount":
        units = minor_units(event) // 100
        return next((b for b in AMOUNT_BANDS if b[0] <= units <= b[1]), None)
    if attr == "merchant_age_days":
        age = feats.get("merchant_age_days")
        if not isinstance(age, int | float) or isinstance(age, bool):
            return None
        return next((b for b in AGE_BUCKETS if b[0] <= age <= b[1]), None)
    if attr == "beneficiary_prefix":
        return beneficiary_prefix(str(event.get("beneficiary_name", "")))
    return event.get(attr)


def apply(event: Mapping[str, Any], assignment: Assignment) -> dict[str, Any]:
    """A copy of ``event`` (without ``model``/``shadow``) with ``assignment`` in force."""
    out = {k: v for k, v in event.items() if k not in ("model", "shadow")}
    raw = out.get("features")
    feats = dict(raw) if isinstance(raw, dict) else {}
    minor = minor_units(out)
    for attr, value in assignment.items():
        if attr == "amount_cents":
            minor = minor - minor % 100 + int(value)
        elif attr == "amount":
            minor = _mid(value) * 100 + minor % 100
        elif attr == "beneficiary_prefix":
            name = str(out.get("beneficiary_name", ""))
            out["beneficiary_name"] = str(value) + name[len(beneficiary_prefix(name)):]
        elif attr == "merchant_age_days":
            age = _mid(value)
            feats["merchant_age_days"] = age
            out["merchant_registered_at"] = (_event_date(out) - dt.timedelta(days=age)).isoformat()
        elif attr in ("mcc", "merchant_country", "channel"):
            out[attr] = value
        else:
            raise ValueError(f"attribute={attr!r}; allowed: {', '.join(ATTRIBUTES)}")
    out["amount"] = _fmt(max(minor, 1))
    if feats or "features" in out:
        out["features"] = feats
    return out


def describe(assignment: Assignment) -> dict[str, Any]:
    """The assignment as contract JSON (ranges as ``[lo, hi]``), in attribute order."""
    return {
        a: list(assignment[a]) if isinstance(assignment[a], tuple) else assignment[a]
        for a in ATTRIBUTES
        if a in assignment
    }


def label(assignment: Assignment) -> str:
    """One-line text of an assignment: ``mcc=5967 ∧ amount_cents=37``."""
    parts = []
    for a, v in describe(assignment).items():
        shown = f"{v[0]}..{v[1]}" if isinstance(v, list) else (f"{v:02d}" if a ==
                                                                "amount_cents" else v)
        parts.append(f"{a}={shown}")
    return " ∧ ".join(parts) if parts else "(all)"
