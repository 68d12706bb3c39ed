"""The incident keys of many rule alerts read together equal those read one by one."""

from __future__ import annotations

import datetime as dt
import json

from driftwatch.alerts.incidents import rule_signature
from driftwatch.alerts.signatures import SignatureRequest, rule_signatures
from driftwatch.events import ScoredTransaction, parse_scored
from driftwatch.store.client import Store

T0 = dt.datetime(2026, 3, 18, 9, 0, tzinfo=dt.UTC)


def _event(i: int, mcc: str, cents: int, name: str, country: str) -> ScoredTransaction:
    ev = parse_scored(json.dumps({
        "event_id": f"e{i}", "txn_id": f"t{i}",
        "event_time": (T0 + dt.timedelta(seconds=10 * i)).isoformat(),
        "amount": f"{50 + i}.{cents:02d}", "currency": "USD", "mcc": mcc,
        "merchant_id": f"m{i % 3}", "merchant_country": country, "card_id": f"c{i % 4}",
        "customer_id": "u1", "beneficiary_name": name, "channel": "ecom",
        "features": {}, "model": {"name": "m", "version": "v1", "score": 0.2,
                                  "threshold": 0.7},
    }).encode())
    assert isinstance(ev, ScoredTransaction), ev
    return ev


def test_batched_signatures_equal_single_queries(store: Store) -> None:
    events = []
    for i in range(60):
        if i % 3 == 0:  # the trigger shape in 5967
            events.append(_event(i, "5967", 37, f"INTL-PAY-{i}", "LT"))
        elif i % 3 == 1:
            events.append(_event(i, "5411", i % 7, f"SHOP {i}", "US"))
        else:
            events.append(_event(i, "5967", 0, "ACME", "US"))
    store.insert_scored(events, "test")
    hits: dict[str, list[object]] = {c: [] for c in (
        "event_id", "event_time", "rule_id", "mcc", "merchant_country", "channel",
        "merchant_id", "card_id", "hit_time")}
    for e in events:
        rules = ["r_all"] + (["r_odd"] if int(e.event_id[1:]) % 2 else [])
        for rule in rules:
            for col, value in (("event_id", e.event_id), ("event_time", e.event_time),
                               ("rule_id", rule), ("mcc", e.mcc),
                               ("merchant_country", e.merchant_country),
                               ("channel", e.channel), ("merchant_id", e.merchant_id),
                               ("card_id", e.card_id), ("hit_time", T0)):
                hits[col].append(value)
    store.insert_columns("rule_hits", hits)
    end = T0 + dt.timedelta(seconds=600)
    requests = [
        SignatureRequest("r_all", "mcc=5967,merchant_country=LT", T0, end),
        SignatureRequest("r_all", "mcc=5967", T0, end),
        SignatureRequest("r_odd", "mcc=5967,merchant_country=LT", T0, end),
        SignatureRequest("r_all", "mcc=5411", T0, end),
        SignatureRequest("r_all", "mcc=5967,merchant_country=LT",
                         T0 + dt.timedelta(seconds=200), T0 + dt.timedelta(seconds=290)),
        SignatureRequest("r_all", "card_id=c0", T0, end),
        SignatureRequest("r_all", "model_version=v1", T0, end),  # not a hit column
        SignatureRequest("r_none", "mcc=5967", T0, end),
    ]
    single = [rule_signature(store, *r) for r in requests]
    assert rule_signatures(store, requests) == single
    # worked cases: in 5967/LT every hit is a trigger row (.37, INTL-PAY-<i>); between
    # 200 s and 290 s those are i = 21, 24, 27, whose names share "INTL-PAY-2"
    assert single[0] == "amount_cents=37 & beneficiary_prefix=INTL-PAY-"
    assert single[4] == "amount_cents=37 & beneficiary_prefix=INTL-PAY-2"
    assert single[7] == ""
    assert rule_signatures(store, []) == []
