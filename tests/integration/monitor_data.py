"""Crafted scored transactions for the monitor tests (JSON contract dicts → store)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from driftwatch.events import ScoredTransaction, parse_scored_batch
from driftwatch.settings import Settings
from driftwatch.store.client import Store

T0 = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def settings_for(store: Store, **overrides: Any) -> Settings:
    """Test settings: the store's database, a two-day reference, one-day warm-up."""
    base: dict[str, Any] = {"database": store.database, "reference_window_s": 2 * 86400}
    base.update(overrides)
    return Settings.load(config_file=None, env={}, overrides=base)


def event(
    i: int | str,
    t: dt.datetime,
    *,
    mcc: str = "5411",
    country: str = "US",
    channel: str = "ecom",
    amount: str = "25.00",
    score: float = 0.05,
    version: str = "v46",
    shadow: Sequence[tuple[str, float]] = (),
    card: str | None = None,
    merchant: str | None = None,
    beneficiary: str = "",
    registered: str | None = None,
    features: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One scored-transaction contract dict."""
    ev: dict[str, Any] = {
        "event_id": f"e-{i}",
        "txn_id": f"t-{i}",
        "event_time": t.isoformat().replace("+00:00", "Z"),
        "amount": amount,
        "currency": "USD",
        "mcc": mcc,
        "merchant_id": merchant or f"m-{mcc}-{country}",
        "card_id": card or f"c-{i}",
        "channel": channel,
        "model": {"name": "fraud", "version": version, "score": round(score, 6),
                  "threshold": 0.7},
    }
    if country:
        ev["merchant_country"] = country
    if shadow:
        ev["shadow"] = [{"version": v, "score": round(s, 6)} for v, s in shadow]
    if beneficiary:
        ev["beneficiary_name"] = beneficiary
    if registered:
        ev["merchant_registered_at"] = registered
    if features:
        ev["features"] = features
    return ev


def insert(store: Store, events: Iterable[dict[str, Any]]) -> list[ScoredTransaction]:
    """Parse and store events; every one must be valid."""
    batch = parse_scored_batch([json.dumps(e) for e in events])
    assert not batch.rejected, batch.rejected[:1]
    store.insert_scored(batch.events)
    return batch.events


def background(
    rng: np.random.Generator,
    hours: float,
    per_hour: float,
    *,
    start: dt.datetime = T0,
    prefix: str = "b",
    mccs: Sequence[str] = ("5967", "5411"),
    countries: Sequence[str] = ("US", "LT"),
    cents_profile: dict[int, float] | None = None,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Poisson-ish background traffic: uniform times, random amounts and cents."""
    n = int(hours * per_hour)
    secs = np.sort(rng.uniform(0, hours * 3600, n))
    profile = cents_profile or {0: 0.2, 99: 0.2}
    rest = (1 - sum(profile.values())) / (100 - len(profile))
    probs = np.array([profile.get(c, rest) for c in range(100)])
    cents = rng.choice(100, n, p=probs / probs.sum())
    whole = np.exp(rng.uniform(np.log(10), np.log(900), n)).astype(int)
    out = []
    for j in range(n):
        out.append(
            event(
                f"{prefix}{j}",
                start + dt.timedelta(seconds=float(secs[j])),
                mcc=str(rng.choice(list(mccs))),
                country=str(rng.choice(list(countries))),
                amount=f"{whole[j]}.{cents[j]:02d}",
                score=float(rng.beta(1, 40)),
                card=f"c-{rng.integers(0, 5000)}",
                merchant=f"m-{rng.integers(0, 300)}",
                **kw,
            )
        )
    return out


def in_window(events: Iterable[ScoredTransaction], lo: dt.datetime, hi: dt.datetime,
              **eq: str) -> list[ScoredTransaction]:
    """Events with ``lo <= event_time < hi`` and the given field values."""
    return [
        e for e in events
        if lo <= e.event_time < hi and all(getattr(e, k) == v for k, v in eq.items())
    ]
