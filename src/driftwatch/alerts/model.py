"""The alert record of ``contracts/alert.schema.json`` and the findings that raise it.

A :class:`Finding` is one piece of evidence from a detector or a rule at one event
time ("MCC 5967: 6 of 9 transactions end in .37"). The alert lifecycle turns
findings into :class:`Alert` records: one per fingerprint, firing while the
evidence lasts and resolved after it stops.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
Source = Literal["detector", "rule"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")


def fingerprint(alertname: str, origin: str, segment: str, model_version: str = "") -> str:
    """Stable id of (alertname, detector or rule, segment, model_version).

    >>> fingerprint("CentsDigitAnomaly", "cents", "mcc=5967")
    'ecda0a91846f5466'
    """
    key = "\x1f".join((alertname, origin, segment, model_version))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def iso(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Finding:
    """One detector or rule result that crosses its threshold.

    Parameters
    ----------
    alertname : str
        e.g. ``CentsDigitAnomaly``, ``ScoreDriftPSI``, ``RuleHit``.
    severity : {'info', 'warning', 'critical'}
    source : {'detector', 'rule'}
    origin : str
        The detector name or the rule id.
    segment : str
        Canonical segment string, e.g. ``mcc=5967,merchant_country=LT``.
    event_time : datetime
        Event time at which the evidence crossed the threshold.
    summary : str
        One human sentence with the numbers.
    """

    alertname: str
    severity: Severity
    source: Source
    origin: str
    segment: str
    event_time: dt.datetime
    summary: str
    model_version: str = ""
    value: str = ""
    threshold: str = ""
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    evidence_sql: str = ""
    description: str = ""
    runbook: str = ""
    extra_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r}; valid: {', '.join(SEVERITIES)}")
        if self.source not in ("detector", "rule"):
            raise ValueError(f"source {self.source!r}; valid: detector, rule")

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the alert this finding raises or feeds."""
        return fingerprint(self.alertname, self.origin, self.segment, self.model_version)

    def labels(self) -> dict[str, str]:
        """Alert labels per the contract."""
        out = {
            "alertname": self.alertname,
            "severity": self.severity,
            "source": self.source,
            "segment": self.segment,
        }
        out["detector" if self.source == "detector" else "rule_id"] = self.origin
        if self.model_version:
            out["model_version"] = self.model_version
        out.update(self.extra_labels)
        return out

    def annotations(self, runbook_base_url: str = "") -> dict[str, str]:
        """Alert annotations per the contract (empty values left out), with the
        runbook of the alert name (:mod:`driftwatch.alerts.runbook`) when the finding
        names none, and its first step as ``next_steps``."""
        from driftwatch.alerts.runbook import runbook_annotations

        book = runbook_annotations(self.alertname, runbook_base_url)
        out = {
            "summary": self.summary,
            "description": self.description,
            "value": self.value,
            "threshold": self.threshold,
            "window_start": iso(self.window_start) if self.window_start else "",
            "window_end": iso(self.window_end) if self.window_end else "",
            "evidence_sql": self.evidence_sql,
            "runbook": self.runbook or book["runbook"],
            "next_steps": book.get("next_steps", ""),
        }
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class Alert:
    """One alert record, exactly the shape of ``alert.schema.json``."""

    fingerprint: str
    status: Literal["firing", "resolved"]
    starts_at: dt.datetime
    labels: dict[str, str]
    annotations: dict[str, str]
    ends_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @classmethod
    def from_finding(cls, finding: Finding, runbook_base_url: str = "") -> Alert:
        """A new firing alert from its first finding."""
        return cls(
            fingerprint=finding.fingerprint,
            status="firing",
            starts_at=finding.event_time,
            labels=finding.labels(),
            annotations=finding.annotations(runbook_base_url),
            updated_at=finding.event_time,
        )

    def resolved(self, at: dt.datetime) -> Alert:
        """This alert resolved at event time ``at``."""
        return replace(self, status="resolved", ends_at=at, updated_at=at)

    def to_dict(self) -> dict[str, Any]:
        """The contract form (JSON-ready)."""
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at) if self.ends_at else None,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }
