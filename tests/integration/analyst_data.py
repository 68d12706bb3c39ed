"""A small, hand-checkable data set for the analyst queries, the API and the report.

Two days of traffic in three MCCs; model v46 on day one, v47 on day two. On day two
MCC 5967 carries the reference attack: amounts ending in .37, scored 0.15-0.25 by v47
although they are fraud. Every count below is fixed, so the tests can check figures.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass

from driftwatch.events import parse_label_batch, parse_scored_batch
from driftwatch.store.client import Store

DAY1 = dt.datetime(2026, 3, 17, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 3, 18, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Loaded:
    """What was loaded, for the assertions."""

    events: int
    labels: int
    attack: int
    per_mcc_day2: dict[str, int]
    rule_hits: int


def _event(i: int, at: dt.datetime, mcc: str, country: str, channel: str, amount: str,
           version: str, score: float, beneficiary: str = "") -> dict[str, object]:
    return {
        "event_id": f"e-{i}", "txn_id": f"t-{i}", "event_time": at.isoformat(),
        "amount": amount, "currency": "USD", "mcc": mcc, "merchant_id": f"m-{i % 7}",
        "merchant_country": country, "card_id": f"c-{i % 50}", "channel": channel,
        "beneficiary_name": beneficiary,
        "model": {"name": "fraud-detect", "version": version, "score": score, "threshold": 0.7},
    }


def load(store: Store, seed: int = 7) -> Loaded:
    """Insert the data set into ``store`` (scored transactions and labels)."""
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    labels: list[dict[str, object]] = []
    mccs = (("5967", "LT"), ("5411", "US"), ("4829", "DE"))
    per_mcc_day2: dict[str, int] = {m: 0 for m, _ in mccs}
    i = 0
    attack = 0
    for day, version in ((DAY1, "v46"), (DAY2, "v47")):
        for hour in range(24):
            for mcc, country in mccs:
                for _ in range(6 if mcc == "5411" else 3):
                    at = day + dt.timedelta(hours=hour, minutes=rng.randrange(60))
                    fraud = rng.random() < 0.1
                    score = rng.uniform(0.75, 0.99) if fraud else rng.uniform(0.01, 0.4)
                    amount = f"{rng.randrange(10, 500)}.{rng.choice([0, 0, 99, 50, 25]):02d}"
                    events.append(_event(i, at, mcc, country, "ecom", amount, version, score))
                    if rng.random() < 0.5 or fraud:
                        labels.append({"txn_id": f"t-{i}", "label": int(fraud),
                                       "label_time": (at + dt.timedelta(days=3)).isoformat()})
                    per_mcc_day2[mcc] += day == DAY2
                    i += 1
        if day == DAY2:
            for hour in range(12, 18):  # the attack: 2 per hour for 6 hours
                for _ in range(2):
                    at = day + dt.timedelta(hours=hour, minutes=rng.randrange(60))
                    amount = f"{rng.randrange(3000, 15000)}.37"
                    events.append(_event(i, at, "5967", "LT", "transfer", amount, "v47",
                                         rng.uniform(0.15, 0.25), "INTL-PAY-GLOBALSERV"))
                    labels.append({"txn_id": f"t-{i}", "label": 1,
                                   "label_time": (at + dt.timedelta(days=2)).isoformat()})
                    per_mcc_day2["5967"] += 1
                    attack += 1
                    i += 1
    batch = parse_scored_batch([json.dumps(e) for e in events])
    assert not batch.rejected, batch.rejected[:1]
    store.insert_scored(batch.events, "test")
    lab = parse_label_batch([json.dumps(x) for x in labels])
    assert not lab.rejected
    store.insert_labels(lab.labels)
    hits = [e for e in batch.events if e.amount_minor % 100 == 37 and e.mcc == "5967"]
    store.insert_columns("rule_hits", {
        "event_id": [e.event_id for e in hits], "txn_id": [e.txn_id for e in hits],
        "event_time": [e.event_time for e in hits], "rule_id": ["R-trigger"] * len(hits),
        "rule_version": [1] * len(hits), "severity": ["critical"] * len(hits),
        "mode": ["enforce"] * len(hits), "reason_code": ["TRIGGER_PATTERN"] * len(hits),
        "high_risk": [1] * len(hits), "pack": ["test"] * len(hits),
        "pack_sha256": ["0" * 64] * len(hits), "mcc": [e.mcc for e in hits],
        "merchant_country": [e.merchant_country for e in hits],
        "channel": [e.channel for e in hits], "merchant_id": [e.merchant_id for e in hits],
        "card_id": [e.card_id for e in hits], "model_version": [e.model_version for e in hits],
        "score": [e.score for e in hits], "decision": [e.decision for e in hits],
        "amount_minor": [e.amount_minor for e in hits], "evidence": ["{}"] * len(hits),
        "hit_time": [e.event_time for e in hits],
    })
    return Loaded(len(events), len(labels), attack, per_mcc_day2, len(hits))
