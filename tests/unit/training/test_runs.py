"""`driftwatch training record-run`: run records and the alerts they raise."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.training.records import GOOD


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner(env={"DRIFTWATCH_ALERTMANAGER_URL": "", "DRIFTWATCH_WEBHOOK_URL": ""}
                    ).invoke(main, list(args))
    return res.exit_code, res.output


def _setup(tmp_path: Path) -> tuple[Path, Path, Path, str]:
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "a.jsonl").write_bytes(GOOD + b"\n")
    manifest = tmp_path / "m.json"
    assert _run("training", "manifest", str(snap), "--out", str(manifest))[0] == 0
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    return snap, manifest, model, hashlib.sha256(b"weights").hexdigest()


def test_clean_run_records_and_raises_nothing(tmp_path: Path) -> None:
    snap, manifest, model, sha = _setup(tmp_path)
    runs, alerts = tmp_path / "runs.jsonl", tmp_path / "alerts.jsonl"
    code, out = _run("training", "record-run", "--dir", str(snap), "--manifest", str(manifest),
                     "--artifact", str(model), "--trained-sha256", sha, "--promote",
                     "--approved-by", "alice", "--out", str(runs), "--alerts-out", str(alerts))
    assert code == 0, out
    rec = json.loads(runs.read_text())
    assert rec["kind"] == "promotion" and rec["manifest_verified"] is True
    assert rec["artifact_sha256"] == sha and rec["approved_by"] == "alice"
    assert rec["records"] == 1 and rec["alerts"] == []
    assert not alerts.exists()


def test_every_integrity_failure_alerts(tmp_path: Path) -> None:
    snap, manifest, model, sha = _setup(tmp_path)
    (snap / "a.jsonl").write_bytes(GOOD.replace(b"5967", b"5968") + b"\n")
    model.write_bytes(b"weights, swapped")
    scan_json = tmp_path / "scan.json"
    scan_json.write_text(json.dumps({"verdict": "block", "records": {}, "findings": [
        {"check": "poisoning", "blocking": True}]}))
    runs, alerts = tmp_path / "runs.jsonl", tmp_path / "alerts.jsonl"
    code, out = _run("training", "record-run", "--dir", str(snap), "--manifest", str(manifest),
                     "--artifact", str(model), "--trained-sha256", sha, "--promote",
                     "--scan-json", str(scan_json), "--out", str(runs),
                     "--alerts-out", str(alerts))
    assert code == 1, out
    sent = [json.loads(line) for line in alerts.read_text().splitlines()]
    names = sorted(a["labels"]["alertname"] for a in sent)
    assert names == ["ModelArtifactMismatch", "PromotionWithoutApproval",
                     "TrainingManifestUnverified", "TrainingSnapshotBlocked"]
    assert all(a["status"] == "firing" and a["labels"]["severity"] == "critical" for a in sent)
    unverified = next(a for a in sent
                      if a["labels"]["alertname"] == "TrainingManifestUnverified")
    assert "changed a.jsonl" in unverified["annotations"]["summary"]
    assert json.loads(runs.read_text())["manifest_verified"] is False
