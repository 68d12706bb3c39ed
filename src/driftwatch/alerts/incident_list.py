"""The incidents as ``driftwatch alerts list --incidents`` shows them.

Built from alert records in the contract form (what ``/alerts`` and ``driftwatch
alerts list --format json`` return), grouped by their ``incident`` label
(:mod:`driftwatch.alerts.incidents`), merged incidents as one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from driftwatch.alerts.deliveries import as_utc
from driftwatch.alerts.incident_merges import canonical
from driftwatch.alerts.incidents import INCIDENT_LABEL
from driftwatch.alerts.model import iso


@dataclass(frozen=True)
class IncidentSummary:
    """One incident as ``driftwatch alerts list --incidents`` shows it."""

    incident: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    status: str
    severity: str
    alerts: int
    members: tuple[str, ...]
    keys: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "incident": self.incident, "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen), "status": self.status,
            "severity": self.severity, "alerts": self.alerts,
            "members": list(self.members), "keys": list(self.keys),
        }


_RANK = {"info": 1, "warning": 2, "critical": 3}


def _time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return as_utc(value)
    return as_utc(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def summarise(records: Iterable[Mapping[str, Any]],
              merges: Mapping[str, str] | None = None) -> list[IncidentSummary]:
    """Incidents from alert records in the contract form (``fingerprint``, ``status``,
    ``starts_at``, ``updated_at``, ``labels``: what ``/alerts`` and
    ``driftwatch alerts list --format json`` return), newest last-seen first. A member
    is shown as ``detector:<name>@<segment>`` or ``rule:<id>@<segment>``; keys are the
    distinct segments and conjunctions of the members. Alerts without an ``incident``
    label are left out; an incident in ``merges`` (stored merges: incident -> the one
    it was merged into) is shown as part of the one it was merged into."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        iid = dict(rec.get("labels") or {}).get(INCIDENT_LABEL, "")
        if iid:
            groups.setdefault(canonical(merges or {}, str(iid)), []).append(rec)
    out = []
    for iid, members in groups.items():
        names: list[str] = []
        keys: list[str] = []
        starts = [_time(m["starts_at"]) for m in members]
        lasts = [_time(m.get("updated_at") or m["starts_at"]) for m in members]
        for _, rec in sorted(zip(starts, members, strict=True),
                             key=lambda x: (x[0], str(x[1]["fingerprint"]))):
            labels = dict(rec["labels"])
            origin = (f"rule:{labels.get('rule_id', '')}" if labels.get("source") == "rule"
                      else f"detector:{labels.get('detector', '')}")
            names.append(f"{origin}@{labels.get('segment', '')}")
            for key in (labels.get("segment", ""), labels.get("conjunction", "")):
                if key and key not in keys:
                    keys.append(key)
        sev = max((str(dict(m["labels"]).get("severity", "info")) for m in members),
                  key=lambda x: _RANK.get(x, 0))
        out.append(IncidentSummary(
            incident=iid, first_seen=min(starts), last_seen=max(lasts),
            status="firing" if any(m["status"] == "firing" for m in members) else "resolved",
            severity=sev, alerts=len(members), members=tuple(names), keys=tuple(keys),
        ))
    return sorted(out, key=lambda x: (x.last_seen, x.incident), reverse=True)
