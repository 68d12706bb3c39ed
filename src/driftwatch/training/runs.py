"""Training-run and promotion records, and the alerts they raise.

A record (one JSON line) holds: ``kind`` (``training_run`` or ``promotion``),
``run_id`` (the first 16 hex digits of the SHA-256 of manifest hash + artifact hash
+ kind + time), ``recorded_at``, the manifest's SHA-256 and whether the snapshot
still matches it, record count and label share from the manifest, the artifact's
SHA-256 (computed) and the trained one (given), the scan verdict when a scan JSON
was given, and ``approved_by``. Alerts go through the configured sinks
(Alertmanager, webhook) and optionally a JSON-lines file, with these alert names:

- ``TrainingManifestUnverified``: the snapshot differs from its manifest;
- ``TrainingSnapshotBlocked``: the scan of the snapshot blocked (counts, label share,
  poisoning);
- ``ModelArtifactMismatch``: the artifact's SHA-256 is not the trained one;
- ``PromotionWithoutApproval``: a promotion with no approver.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

from driftwatch.alerts.model import Alert, Finding
from driftwatch.settings import Settings
from driftwatch.training.manifest import sha256_file, verify
from driftwatch.training.records import SnapshotError


def _finding(name: str, summary: str, now: dt.datetime, value: str = "") -> Finding:
    return Finding(alertname=name, severity="critical", source="detector",
                   origin="training_integrity", segment="training", event_time=now,
                   summary=summary, value=value)


def run_record(directory: str | Path, manifest: dict[str, Any], *, artifact: str | None,
               trained_sha256: str | None, scan: dict[str, Any] | None, promote: bool,
               approved_by: str,
               now: dt.datetime | None = None) -> tuple[dict[str, Any], list[Finding]]:
    """The run record and the alert findings it raises (see the module doc)."""
    at = now or dt.datetime.now(dt.UTC)
    findings: list[Finding] = []
    try:
        check = verify(directory, manifest)
        problems = [f"{p.change} {p.file}" for p in check.problems]
    except (SnapshotError, ValueError) as exc:
        problems = [str(exc)]
    if problems:
        findings.append(_finding("TrainingManifestUnverified",
                                 f"training snapshot {directory} does not match its manifest: "
                                 + "; ".join(problems[:10]), at, str(len(problems))))
    verdict = scan.get("verdict") if scan else None
    if verdict == "block":
        checks = sorted({str(f.get("check")) for f in scan.get("findings", [])  # type: ignore[union-attr]
                         if f.get("blocking")})
        findings.append(_finding("TrainingSnapshotBlocked",
                                 f"the scan of {directory} blocked: {', '.join(checks)}", at))
    artifact_sha = sha256_file(Path(artifact)) if artifact else ""
    if artifact and trained_sha256 and artifact_sha != trained_sha256.lower():
        findings.append(_finding("ModelArtifactMismatch",
                                 f"artifact {artifact} has SHA-256 {artifact_sha[:16]}…, "
                                 f"the training run wrote {trained_sha256[:16]}…", at))
    if promote and not approved_by.strip():
        findings.append(_finding("PromotionWithoutApproval",
                                 "a model promotion was recorded without an approver", at))
    kind = "promotion" if promote else "training_run"
    seed = f"{manifest.get('manifest_sha256', '')}{artifact_sha}{kind}{at.isoformat()}"
    record = {
        "kind": kind,
        "run_id": hashlib.sha256(seed.encode()).hexdigest()[:16],
        "recorded_at": at.isoformat().replace("+00:00", "Z"),
        "snapshot": str(directory),
        "manifest_sha256": manifest.get("manifest_sha256", ""),
        "manifest_verified": not problems,
        "records": manifest.get("records"),
        "label_share": manifest.get("label_share"),
        "artifact_sha256": artifact_sha,
        "trained_artifact_sha256": trained_sha256 or "",
        "scan_verdict": verdict,
        "approved_by": approved_by,
        "alerts": [f.alertname for f in findings],
    }
    return record, findings


def deliver(settings: Settings, findings: list[Finding], alerts_out: str | None) -> int:
    """Send the findings as firing alerts through the configured sinks; the count sent."""
    if not findings:
        return 0
    from driftwatch.alerts.outbox import tick_all
    from driftwatch.alerts.sinks import AlertSink, JsonlSink
    from driftwatch.assemble import delivery_sinks

    alerts = [Alert.from_finding(f) for f in findings]
    sinks: list[AlertSink] = list(delivery_sinks(settings, None))
    if alerts_out:
        sinks.append(JsonlSink(alerts_out))
    try:
        for sink in sinks:
            sink.send(alerts)
        tick_all(sinks)
    finally:
        for sink in sinks:
            sink.close()
    return len(alerts)
