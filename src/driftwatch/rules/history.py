"""Stored transactions read back as :class:`~driftwatch.events.ScoredTransaction` s.

Used to warm the live windows after a restart and to run the live evaluator over
history (the live-versus-SQL parity check). Reads ``scored_transactions FINAL`` in
``(event_time, event_id)`` order with keyset pagination (no ``OFFSET`` scans).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from driftwatch.events import UTC, ScoredTransaction
from driftwatch.store.client import Store

_COLUMNS = (
    "event_id", "txn_id", "event_time", "amount_minor", "currency", "mcc", "merchant_id",
    "merchant_country", "merchant_registered_at", "card_id", "customer_id", "beneficiary_name",
    "channel", "ip", "device_id", "geo_lat", "geo_lon", "features_num", "features_str",
    "model_name", "model_version", "score", "threshold", "decision", "shadow_versions",
    "shadow_scores",
)
_SQL = f"""SELECT {", ".join(_COLUMNS)}
FROM {{db}}.scored_transactions FINAL
WHERE event_time >= {{start:DateTime64(3, 'UTC')}} AND event_time < {{end:DateTime64(3, 'UTC')}}
  AND (event_time, event_id) > ({{after_t:DateTime64(3, 'UTC')}}, {{after_id:String}})
ORDER BY event_time, event_id
LIMIT {{limit:UInt32}}"""


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _event(row: dict[str, Any]) -> ScoredTransaction:
    features: dict[str, float | str | bool | None] = dict(row["features_num"])
    features.update(row["features_str"])
    return ScoredTransaction(
        event_id=row["event_id"],
        txn_id=row["txn_id"],
        event_time=_utc(row["event_time"]),
        amount_minor=int(row["amount_minor"]),
        currency=row["currency"],
        mcc=row["mcc"],
        merchant_id=row["merchant_id"],
        merchant_country=row["merchant_country"],
        merchant_registered_at=row["merchant_registered_at"],
        card_id=row["card_id"],
        customer_id=row["customer_id"],
        beneficiary_name=row["beneficiary_name"],
        channel=row["channel"],
        ip=row["ip"],
        device_id=row["device_id"],
        geo_lat=row["geo_lat"],
        geo_lon=row["geo_lon"],
        features=features,
        model_name=row["model_name"],
        model_version=row["model_version"],
        score=float(row["score"]),
        threshold=float(row["threshold"]),
        decision=row["decision"],
        shadow_versions=tuple(row["shadow_versions"]),
        shadow_scores=tuple(float(x) for x in row["shadow_scores"]),
    )


def stored_events(
    store: Store, start: dt.datetime, end: dt.datetime, batch_size: int = 50_000
) -> Iterator[list[ScoredTransaction]]:
    """Stored events with ``start <= event_time < end``, in batches, oldest first."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    after_t, after_id = start - dt.timedelta(milliseconds=1), ""
    while True:
        cols = store.query_columns(
            _SQL,
            {"start": start, "end": end, "after_t": after_t, "after_id": after_id,
             "limit": batch_size},
        )
        n = len(cols.get("event_id", ()))  # an empty result may come without columns
        if n == 0:
            return
        rows = [{c: cols[c][i] for c in _COLUMNS} for i in range(n)]
        events = [_event(r) for r in rows]
        yield events
        if n < batch_size:
            return
        after_t, after_id = events[-1].event_time, events[-1].event_id
