"""Scoring detection against a simulator's ground truth (the demo and the bench).

Given the alert state changes of a run and the run's ``truth.json``, say for each
detector or rule whether it named the attacked segment, when it first did (event
time), and how many attack transactions and dollars had passed by then.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from driftwatch.alerts.model import Alert


@dataclass(frozen=True)
class FirstAlert:
    """The first alert of one detector or rule that named the attacked segment."""

    origin: str
    source: str
    alertname: str
    severity: str
    segment: str
    at: dt.datetime
    attack_txns_before: int
    attack_minor_before: int


class _Probe(msgspec.Struct):
    event_id: str = ""
    event_time: str = ""
    amount: str | float = "0"


_probe = msgspec.json.Decoder(_Probe)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def attack_ids(truth: dict[str, Any]) -> set[str]:
    """Ids of the attack transactions: the trigger rows if any, else every attack row."""
    if truth.get("trigger_event_ids"):
        return set(truth["trigger_event_ids"])
    ids: set[str] = set()
    for rows in (truth.get("attack_event_ids") or {}).values():
        ids.update(rows)
    return ids


def attack_timeline(
    events: Iterable[bytes], ids: set[str]
) -> tuple[list[dt.datetime], list[int]]:
    """Event times (sorted) and amounts in minor units of the attack transactions."""
    from driftwatch.amounts import parse_amount

    rows = []
    for line in events:
        if not ids:
            break
        p = _probe.decode(line)
        if p.event_id in ids:
            rows.append((_utc(p.event_time), parse_amount(str(p.amount))))
    rows.sort()
    return [t for t, _ in rows], [a for _, a in rows]


def segment_tokens(truth: dict[str, Any]) -> set[str]:
    """``key=value`` tokens that name the attacked segment or its entities."""
    tokens: set[str] = set()
    for exp in truth.get("expected") or []:
        for k, v in (exp.get("segment") or {}).items():
            tokens.add(f"{k}={v}")
        entities = exp.get("entities") or {}
        for card in entities.get("card_ids") or []:
            tokens.add(f"card_id={card}")
        if isinstance(entities.get("card_id"), str):
            tokens.add(f"card_id={entities['card_id']}")
        if isinstance(entities.get("ip"), str):
            tokens.add(f"ip={entities['ip']}")
        for merchant in entities.get("merchant_ids") or []:
            tokens.add(f"merchant_id={merchant}")
        for mcc in exp.get("attacked_mccs") or []:  # randomised variants (issue 21)
            tokens.add(f"mcc={mcc}")
    return tokens


def names_segment(alert: Alert, tokens: set[str]) -> bool:
    """True when the alert's segment (or a label) names one of ``tokens``."""
    parts = set(alert.labels.get("segment", "").split(","))
    parts.update(f"{k}={v}" for k, v in alert.labels.items())
    return bool(parts & tokens)


def names_slice(alert: Alert, tokens: set[str], trigger: dict[str, Any]) -> bool:
    """True when the alert names the attacked segment (:func:`names_segment`) or, with a
    ``conjunction`` label, the trigger itself (:func:`names_conjunction`): a spread
    trigger's alert on all traffic names no attacked MCC but the pattern.

    >>> a = Alert("f", "firing", dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    ...           {"segment": "", "conjunction": "amount_cents=91 & channel=ecom"}, {})
    >>> names_slice(a, {"mcc=5967"}, {"cents": 91, "channel": "ecom"})
    True
    >>> names_slice(a, {"mcc=5967"}, {"cents": 12, "channel": "ecom"})
    False
    """
    if names_segment(alert, tokens):
        return True
    return bool(alert.labels.get("conjunction")) and names_conjunction(alert, trigger)


def first_alerts(
    alerts: Sequence[Alert],
    truth: dict[str, Any],
    times: Sequence[dt.datetime],
    amounts: Sequence[int],
    *,
    severities: tuple[str, ...] = ("warning", "critical"),
) -> list[FirstAlert]:
    """Per detector or rule, its first alert that named the attacked slice
    (:func:`names_slice`).

    Resolved records count too: a sink may only see an alert's latest state (an outbox
    coalesces a firing and its resolution), and ``starts_at`` is when it fired.
    """
    tokens = segment_tokens(truth)
    trigger = truth.get("trigger") or {}
    cumulative = [0]
    for a in amounts:
        cumulative.append(cumulative[-1] + a)
    seen: dict[str, FirstAlert] = {}
    for alert in sorted(alerts, key=lambda a: a.starts_at):
        labels = alert.labels
        if labels.get("severity") not in severities:
            continue
        if not names_slice(alert, tokens, trigger):
            continue
        origin = labels.get("detector") or labels.get("rule_id") or labels.get("alertname", "")
        if origin in seen:
            continue
        at = alert.starts_at if alert.starts_at.tzinfo else alert.starts_at.replace(tzinfo=dt.UTC)
        n = bisect.bisect_right(list(times), at)
        seen[origin] = FirstAlert(
            origin=origin,
            source=labels.get("source", ""),
            alertname=labels.get("alertname", ""),
            severity=labels.get("severity", ""),
            segment=labels.get("segment", ""),
            at=at,
            attack_txns_before=n,
            attack_minor_before=cumulative[n],
        )
    return sorted(seen.values(), key=lambda f: (f.at, f.origin))


def names_conjunction(alert: Alert, trigger: dict[str, Any]) -> bool:
    """True when the alert names at least two of the trigger's conditions other than
    the category, e.g. ``amount_cents=91 & beneficiary_prefix=GLX-TRD`` (a pattern,
    not only one MCC). Labels and annotations are searched.

    >>> a = Alert("f", "firing", dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    ...           {"conjunction": "amount_cents=91 & beneficiary_prefix=GLX-TRD"}, {})
    >>> names_conjunction(a, {"cents": 91, "beneficiary_prefix": "GLX-TRD-", "mcc": "5967"})
    True
    >>> names_conjunction(a, {"cents": 91, "mcc": "5967"})
    False
    """
    text = " ".join([*alert.labels.values(), *alert.annotations.values()])
    hits = 0
    if "cents" in trigger:
        c = int(trigger["cents"])
        hits += f"cents={c:02d}" in text or f"cents={c}" in text
    prefix = str(trigger.get("beneficiary_prefix", ""))
    if prefix:
        stem = prefix.rstrip("-_/ ")
        hits += f"beneficiary_prefix={stem[:3]}" in text or f"beneficiary_prefix={prefix}" in text
    if "feature" in trigger:
        hits += "merchant_age" in text
    if "amount" in trigger:
        hits += any(t in text for t in ("amount_band", "amount>=", "amount<", "amount in"))
    if "merchant_country" in trigger:
        hits += any(f"merchant_country={c}" in text for c in trigger["merchant_country"])
    if "channel" in trigger:
        hits += "channel=ecom" in text
    return hits >= 2


def coverage_gap(alerts: Sequence[Alert], start: dt.datetime, end: dt.datetime) -> float:
    """The longest stretch of ``[start, end]`` in seconds during which none of
    ``alerts`` was firing (state changes: a firing record opens an interval at its
    ``starts_at``, a resolved one closes it at ``ends_at``; still open: to ``end``).

    >>> t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    >>> m = lambda x: t + dt.timedelta(minutes=x)
    >>> a = Alert("a", "firing", m(0), {}, {})
    >>> b = Alert("b", "firing", m(30), {}, {})
    >>> coverage_gap([a, a.resolved(m(10)), b], m(0), m(60))
    1200.0
    """
    spans: dict[tuple[str, dt.datetime], dt.datetime] = {}
    for alert in alerts:
        key = (alert.fingerprint, alert.starts_at)
        if alert.status == "resolved" and alert.ends_at is not None:
            spans[key] = min(spans.get(key, alert.ends_at), alert.ends_at)
        else:
            spans.setdefault(key, end)
    covered = sorted((max(s, start), min(e, end)) for (_, s), e in spans.items()
                     if e > start and s < end)
    longest = 0.0
    cursor = start
    for lo, hi in covered:
        if lo > cursor:
            longest = max(longest, (lo - cursor).total_seconds())
        cursor = max(cursor, hi)
    return max(longest, (end - cursor).total_seconds()) if end > cursor else longest
