"""Building crafted events for rule tests (contract dicts -> parsed events)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from driftwatch.events import ScoredTransaction, parse_scored_batch
from driftwatch.rules.examples import BASE_EVENT
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.model import Hit, Rule
from driftwatch.rules.pack import rule_from_text

T0 = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
DAY_MS = 86_400_000


def event(i: int, ms: int = 0, **fields: Any) -> dict[str, Any]:
    """A valid contract event ``i`` at ``T0 + ms`` with ``fields`` laid over the base."""
    out: dict[str, Any] = json.loads(json.dumps(BASE_EVENT))
    out["event_id"] = fields.pop("event_id", f"e{i:06d}")
    out["txn_id"] = fields.pop("txn_id", f"t{i:06d}")
    when = T0 + dt.timedelta(milliseconds=ms)
    out["event_time"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out.update(fields)
    return out


def parse(dicts: Sequence[dict[str, Any]]) -> list[ScoredTransaction]:
    """Parse contract dicts; every one must be valid."""
    batch = parse_scored_batch([json.dumps(d) for d in dicts])
    assert not batch.rejected, batch.rejected[:3]
    return batch.events


def hits_of(when: str, dicts: Sequence[dict[str, Any]], horizon_ms: int = DAY_MS) -> list[str]:
    """Event ids the rule ``when`` hits when the events arrive as one batch."""
    rule = rule_from_text("r", when, horizon_ms=horizon_ms)
    return [h.event.event_id for h in LiveEvaluator([rule], horizon_ms=horizon_ms).process(
        parse(dicts))]


def probe(rules: Sequence[Rule], events: Sequence[ScoredTransaction],
          horizon_ms: int = DAY_MS) -> list[Hit]:
    """Hits of ``rules`` over ``events`` in one batch."""
    return LiveEvaluator(list(rules), horizon_ms=horizon_ms).process(list(events))
