"""Write alert states the way the alert book does (``alerts`` + ``alert_log``), for tests
of the delivery sinks, the API and the report that must not depend on a detector."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from driftwatch.alerts.model import Alert, Finding
from driftwatch.store.client import Store


def persist(store: Store, alerts: Sequence[Alert], *, version: int | None = None) -> list[int]:
    """Insert alert states; each gets a version one higher than the stored maximum."""
    if not alerts:
        return []
    if version is None:
        rows = store.query("SELECT max(version) FROM {db}.alert_log")
        version = int(rows[0][0] or 0) + 1
    now = dt.datetime.now(dt.UTC)
    versions = [version + i for i in range(len(alerts))]
    cols = {
        "fingerprint": [a.fingerprint for a in alerts],
        "status": [a.status for a in alerts],
        "starts_at": [a.starts_at for a in alerts],
        "ends_at": [a.ends_at for a in alerts],
        "updated_at": [a.updated_at or a.starts_at for a in alerts],
        "alertname": [a.labels.get("alertname", "") for a in alerts],
        "severity": [a.labels.get("severity", "") for a in alerts],
        "source": [a.labels.get("source", "") for a in alerts],
        "segment": [a.labels.get("segment", "") for a in alerts],
        "origin": [a.labels.get("detector") or a.labels.get("rule_id", "") for a in alerts],
        "model_version": [a.labels.get("model_version", "") for a in alerts],
        "labels": [dict(a.labels) for a in alerts],
        "annotations": [dict(a.annotations) for a in alerts],
        "version": versions,
        "written_at": [now] * len(alerts),
        "last_seen_at": [a.updated_at or a.starts_at for a in alerts],
        "findings": [1] * len(alerts),
    }
    store.insert_columns("alerts", cols)
    store.insert_columns("alert_log", cols)
    return versions


def finding(
    alertname: str = "CentsDigitAnomaly",
    *,
    segment: str = "mcc=5967",
    severity: str = "critical",
    source: str = "detector",
    origin: str = "cents",
    model_version: str = "v47",
    at: dt.datetime | None = None,
    **extra: str,
) -> Finding:
    """A finding with the reference scenario's numbers."""
    at = at or dt.datetime.now(dt.UTC)
    return Finding(
        alertname=alertname,
        severity=severity,  # type: ignore[arg-type]
        source=source,  # type: ignore[arg-type]
        origin=origin,
        segment=segment,
        event_time=at,
        summary=f"{segment}: 6 of 9 amounts end in .37",
        model_version=model_version,
        value="6/9 (p=2.1e-09)",
        threshold="p_adj < 0.01",
        window_start=at - dt.timedelta(hours=1),
        window_end=at,
        evidence_sql=(
            "SELECT * FROM driftwatch.scored_transactions FINAL "
            "WHERE mcc = '5967' AND amount_cents = 37"
        ),
        extra_labels=dict(extra),
    )
