"""Validated events and labels back in their contract form (simulator, dead-letter, round trips).

>>> from driftwatch.events import EXAMPLE_EVENT, parse_scored_batch
>>> ev = parse_scored_batch([EXAMPLE_EVENT]).events[0]
>>> scored_to_dict(ev)["amount"], scored_to_dict(ev)["shadow"]
('4892.37', [{'version': 'v46', 'score': 0.88}])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from driftwatch.amounts import format_amount
from driftwatch.events import Label, ScoredTransaction


def scored_to_dict(ev: ScoredTransaction) -> dict[str, Any]:
    """The contract form of a validated event (amount as a decimal string)."""
    out: dict[str, Any] = {
        "event_id": ev.event_id,
        "txn_id": ev.txn_id,
        "event_time": ev.event_time.isoformat().replace("+00:00", "Z"),
        "amount": format_amount(ev.amount_minor),
        "currency": ev.currency,
        "mcc": ev.mcc,
        "merchant_id": ev.merchant_id,
        "card_id": ev.card_id,
        "model": {
            "name": ev.model_name,
            "version": ev.model_version,
            "score": ev.score,
            "threshold": ev.threshold,
            "decision": ev.decision,
        },
    }
    optional: Sequence[tuple[str, Any]] = (
        ("merchant_country", ev.merchant_country),
        ("merchant_registered_at", ev.merchant_registered_at.isoformat()
         if ev.merchant_registered_at else ""),
        ("customer_id", ev.customer_id),
        ("beneficiary_name", ev.beneficiary_name),
        ("channel", ev.channel),
        ("ip", ev.ip),
        ("device_id", ev.device_id),
    )
    for key, value in optional:
        if value:
            out[key] = value
    if ev.geo_lat is not None and ev.geo_lon is not None:
        out["geo"] = {"lat": ev.geo_lat, "lon": ev.geo_lon}
    if ev.features:
        out["features"] = dict(ev.features)
    if ev.shadow_versions:
        out["shadow"] = [
            {"version": v, "score": s}
            for v, s in zip(ev.shadow_versions, ev.shadow_scores, strict=True)
        ]
    return out


def label_to_dict(label: Label) -> dict[str, Any]:
    """The contract form of a validated label."""
    return {
        "txn_id": label.txn_id,
        "label": label.label,
        "label_time": label.label_time.isoformat().replace("+00:00", "Z"),
        "source": label.source,
    }
