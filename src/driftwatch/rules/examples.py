"""Example events of a rule: partial contract events laid over a plain base event.

``t`` (seconds or a duration such as ``90s``) is the offset from :data:`BASE_TIME`,
``repeat: N`` copies an event N times (``every`` apart, ``{i}`` in strings replaced
by the copy number) and ids are generated; ``base: required`` lays an event over the
contract's required fields only (:data:`REQUIRED_BASE`).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from driftwatch.errors import RuleError

MAX_EXAMPLE_EVENTS = 2000
_DURATION = re.compile(r"([0-9]{1,9})(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
BASE_TIME = dt.datetime(2026, 3, 18, 14, 0, 0, tzinfo=dt.UTC)
BASE_EVENT: dict[str, Any] = {
    "event_time": "2026-03-18T14:00:00Z",
    "amount": "25.00",
    "currency": "USD",
    "mcc": "5411",
    "merchant_id": "m-example",
    "merchant_country": "US",
    "card_id": "c-example",
    "channel": "ecom",
    "model": {"name": "fraud-detect", "version": "v1", "score": 0.1, "threshold": 0.7},
}
"""What an example event is laid over: a valid, unremarkable transaction."""
REQUIRED_BASE: tuple[str, ...] = ("event_time", "amount", "currency", "mcc", "merchant_id",
                                  "card_id", "model")
"""The fields of :data:`BASE_EVENT` an example event with ``base: required`` keeps (the
contract's required fields; ids are generated): no channel, no merchant country."""


def duration_ms(value: Any) -> int | None:
    """Milliseconds of seconds (a number) or a duration such as ``90s``; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return round(float(value) * 1000)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value.strip())
        if m:
            return int(m.group(1)) * _UNIT_MS[m.group(2)]
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _fill(value: Any, i: int) -> Any:
    if isinstance(value, str):
        return value.replace("{i}", str(i))
    if isinstance(value, dict):
        return {k: _fill(v, i) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, i) for v in value]
    return value


def expand_events(raw: Sequence[Any], prefix: str) -> list[dict[str, Any]]:
    """Example events laid over :data:`BASE_EVENT`, with ``t``/``repeat`` expanded.

    >>> evs = expand_events([{"card_id": "c-{i}", "repeat": 2, "every": "1m", "t": 30}], "x")
    >>> [(e["event_id"], e["card_id"], e["event_time"]) for e in evs]
    [('x-0', 'c-0', '2026-03-18T14:00:30.000Z'), ('x-1', 'c-1', '2026-03-18T14:01:30.000Z')]
    >>> sorted(expand_events([{"base": "required", "ip": "192.0.2.1"}], "x")[0])[:4]
    ['amount', 'card_id', 'currency', 'event_id']
    """
    out: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise RuleError("each example event must be a mapping of contract fields")
        spec = dict(item)
        repeat = spec.pop("repeat", 1)
        every = duration_ms(spec.pop("every", 0))
        offset = duration_ms(spec.pop("t", 0))
        base = spec.pop("base", "full")
        if base not in ("full", "required"):
            raise RuleError("base must be full (the default) or required (contract-required "
                            "fields only)")
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 1000:
            raise RuleError("repeat must be an integer 1..1000")
        if every is None or offset is None:
            raise RuleError("t and every must be seconds or durations like 90s, 5m, 2h")
        for i in range(repeat):
            event = copy.deepcopy(BASE_EVENT)
            if base == "required":
                event = {k: event[k] for k in REQUIRED_BASE}
            event.update(_jsonable(_fill(spec, i)))
            if "event_time" not in spec:
                when = BASE_TIME + dt.timedelta(milliseconds=offset + i * every)
                event["event_time"] = when.isoformat(timespec="milliseconds").replace(
                    "+00:00", "Z")
            n = len(out)
            event.setdefault("event_id", f"{prefix}-{n}")
            event.setdefault("txn_id", f"{prefix}-t{n}")
            out.append(event)
            if len(out) > MAX_EXAMPLE_EVENTS:
                raise RuleError(f"an example may have at most {MAX_EXAMPLE_EVENTS} events")
    return out
