"""The rule records: a loaded, type-checked rule, its examples, its pack, and a hit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from driftwatch.events import ScoredTransaction
from driftwatch.rules.typed import T

SEVERITIES = ("low", "medium", "high", "critical")
"""Rule severities, lowest first. ``high`` and ``critical`` are high-risk."""
HIGH_RISK = frozenset({"high", "critical"})
MODES = ("enforce", "shadow")
"""``enforce``: hits are stored, published and alerted. ``shadow``: stored only."""
ALERT_SEVERITY = {"low": "info", "medium": "warning", "high": "warning", "critical": "critical"}
"""Rule severity -> alert severity (``contracts/alert.schema.json``)."""
SEGMENT_FIELDS = ("mcc", "merchant_country", "channel", "currency", "merchant_id", "ip",
                  "card_id")
"""Fields a rule may name in ``alert_segment`` (its alerts aggregate per segment)."""


@dataclass(frozen=True)
class Example:
    """Events that must (``expect='hit'``) or must not hit; judged on the last event."""

    name: str
    expect: str
    events: tuple[dict[str, Any], ...]
    line: int = 0


@dataclass(frozen=True)
class Rule:
    """One loaded and type-checked rule."""

    id: str
    version: int
    severity: str
    reason_code: str
    description: str
    mode: str
    when: str
    expr: T
    alert_segment: tuple[str, ...] = ("mcc",)
    alert_min_hits: int = 1
    alert_min_cards: int = 1
    alert_window_ms: int | None = None
    alert_labels: tuple[tuple[str, str], ...] = ()
    case_alert: bool = False
    """Each card the rule hits is also a ``RuleCase`` info alert naming the card."""
    pack: str = ""
    pack_sha256: str = ""
    path: str = ""
    line: int = 0
    examples: tuple[Example, ...] = ()

    @property
    def high_risk(self) -> bool:
        """True for an enforced rule of severity high or critical."""
        return self.mode == "enforce" and self.severity in HIGH_RISK


@dataclass(frozen=True)
class Pack:
    """One rule file: its name, path, SHA-256 of its bytes, and rules."""

    name: str
    path: str
    sha256: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Hit:
    """A rule hit on one event, with the values of the rule's aggregates as evidence."""

    rule: Rule
    event: ScoredTransaction
    evidence: dict[str, Any] = field(default_factory=dict)
    hit_time: dt.datetime | None = None
