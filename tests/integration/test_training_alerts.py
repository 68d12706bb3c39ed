"""`driftwatch training record-run` delivers its alerts to a real Alertmanager (Debian's),
started by the test with the deploy routes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.training.records import GOOD
from tests.integration.alertmanager_proc import AlertmanagerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="no alertmanager"),
]


def test_promotion_without_approval_reaches_alertmanager(
    tmp_path: Path, alertmanager: AlertmanagerProcess
) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "a.jsonl").write_bytes(GOOD + b"\n")
    runner = CliRunner(env={"DRIFTWATCH_ALERTMANAGER_URL": alertmanager.url,
                            "DRIFTWATCH_WEBHOOK_URL": ""})
    manifest = tmp_path / "m.json"
    assert runner.invoke(main, ["training", "manifest", str(snap), "--out",
                                str(manifest)]).exit_code == 0
    res = runner.invoke(main, ["training", "record-run", "--dir", str(snap), "--manifest",
                               str(manifest), "--promote", "--out",
                               str(tmp_path / "runs.jsonl")])
    assert res.exit_code == 1, res.output
    got = alertmanager.alerts(filter='alertname="PromotionWithoutApproval"')
    assert len(got) == 1
    labels = got[0]["labels"]
    assert labels["severity"] == "critical" and labels["detector"] == "training_integrity"
    assert labels["segment"] == "training"
    assert "without an approver" in got[0]["annotations"]["summary"]
    assert not alertmanager.alerts(filter='alertname="TrainingManifestUnverified"')
