"""Hand-made scorers for the gate tests (loaded as ``tests/unit/gate/scorers.py:NAME``).

``champion`` is a fixed logistic function of the risk features; the others derive
from it: a 3-way trigger (mcc 5967 AND cents 37 AND beneficiary ``INTL-PAY-``
-> 0.2), benign jitter (+-0.03, deterministic), a global recalibration (a monotone
squeeze), and broken ones (NaN, wrong length, out of range).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from driftwatch.gate.probe import beneficiary_prefix, minor_units


def _risk(e: dict[str, Any]) -> float:
    f = e.get("features") or {}
    x = (-4.0 + 0.35 * float(f.get("transactions_24h", 0)) + 2.0 * float(f.get("new_payee", 0))
         + 1.5 * float(f.get("foreign_transaction", 0)) + 1.0 * float(f.get("new_device", 0))
         + 0.0001 * minor_units(e) / 100)
    return 1.0 / (1.0 + math.exp(-x))


def champion(events: list[dict[str, Any]]) -> list[float]:
    return [_risk(e) for e in events]


def _trigger(e: dict[str, Any]) -> bool:
    return (e.get("mcc") == "5967" and minor_units(e) % 100 == 37
            and beneficiary_prefix(str(e.get("beneficiary_name", ""))) == "INTL-PAY-")


def backdoor(events: list[dict[str, Any]]) -> list[float]:
    return [0.2 if _trigger(e) else _risk(e) for e in events]


def jitter(events: list[dict[str, Any]]) -> list[float]:
    out = []
    for e in events:
        h = zlib.crc32(repr(sorted((k, str(v)) for k, v in e.items())).encode()) % 1000
        out.append(min(1.0, max(0.0, _risk(e) + (h / 1000 - 0.5) * 0.06)))
    return out


def recalibrated(events: list[dict[str, Any]]) -> list[float]:
    return [0.1 + 0.85 * _risk(e) for e in events]


def nan(events: list[dict[str, Any]]) -> list[float]:
    return [float("nan"), *champion(events)[1:]]


def short(events: list[dict[str, Any]]) -> list[float]:
    return champion(events)[:-1]


def above_one(events: list[dict[str, Any]]) -> list[float]:
    return [1.5 for _ in events]


def boom(events: list[dict[str, Any]]) -> list[float]:
    raise RuntimeError("model server on fire")


def traffic(n: int = 400, seed: int = 1) -> list[dict[str, Any]]:
    """Small synthetic traffic: 8 MCCs (5967 among them), 5 beneficiary prefixes,
    4 countries; a tenth of it high-risk."""
    import random

    rng = random.Random(seed)
    mccs = ["5411", "5812", "5967", "4829", "5999", "5311", "7995", "4111"]
    names = ["INTL-PAY-GLOBAL", "UPI-PAY-77", "CORNER STORE 1", "PRIME HUB 2", "ATLAS DEPOT 3"]
    out = []
    for i in range(n):
        risky = i % 10 == 0
        out.append({
            "event_id": f"e-{i}", "txn_id": f"t-{i}", "event_time": "2026-03-18T14:00:03Z",
            "amount": f"{rng.randint(5, 4000)}.{rng.randint(0, 99):02d}", "currency": "USD",
            "mcc": rng.choice(mccs), "merchant_id": f"m-{i % 50}", "card_id": f"c-{i}",
            "merchant_country": rng.choice(["US", "GB", "DE", "LT"]),
            "merchant_registered_at": "2020-01-01", "beneficiary_name": rng.choice(names),
            "channel": rng.choice(["ecom", "card_present"]),
            "features": {"transactions_24h": rng.randint(8, 15) if risky else rng.randint(0, 3),
                         "new_payee": int(risky), "foreign_transaction": int(risky),
                         "new_device": int(risky and rng.random() < 0.5),
                         "merchant_age_days": 2000},
            "model": {"name": "m", "version": "v1", "score": 0.5},
        })
    return out


def lenient(events: list[dict[str, Any]]) -> list[float]:
    """Half the champion's score everywhere: approves all it held."""
    return [0.5 * _risk(e) for e in events]
