"""The messages a scored batch publishes before it is committed: dead letters for its
rejected records, and its rule hits."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import msgspec

from driftwatch.pipeline import BatchResult
from driftwatch.streaming.messages import OutMessage

_MESSAGE = msgspec.json.Encoder(enc_hook=str, order="sorted")
"""Dead letters and rule hits as JSON objects with sorted keys (times in RFC 3339)."""


def deadletter_messages(
    records: list[Any], result: BatchResult, *, source_topic: str, topic: str
) -> list[OutMessage]:
    """One dead letter on ``topic`` per rejected record of ``records`` (aiokafka
    ``ConsumerRecord`` s of ``source_topic``), keyed like the record it rejects."""
    if not result.rejected:
        return []
    where: dict[bytes, list[Any]] = defaultdict(list)
    for r in records:
        where[r.value if r.value is not None else b""].append(r)
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    out = []
    for rej in result.rejected:
        found = where.get(rej.raw)
        rec = found.pop(0) if found else None
        body = {
            "reason": rej.reason,
            "detail": rej.detail,
            "kind": rej.kind,
            "event_id": rej.event_id,
            "raw": rej.raw.decode("utf-8", "replace"),
            "topic": rec.topic if rec else source_topic,
            "partition": rec.partition if rec else None,
            "offset": rec.offset if rec else None,
            "rejected_at": now,
        }
        out.append(OutMessage(topic, _MESSAGE.encode(body), rec.key if rec else None))
    return out


def rule_hit_messages(hits: list[dict[str, Any]], topic: str) -> list[OutMessage]:
    """One message on ``topic`` per rule hit, keyed by its event id."""
    out = []
    for hit in hits:
        key = hit.get("event_id")
        out.append(OutMessage(topic, _MESSAGE.encode(hit), str(key).encode() if key else None))
    return out
