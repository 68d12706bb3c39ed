"""The README's first command, in a shortened mode: the whole streaming path end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(720)  # the demo's own bound is 600 s; pytest's default is 300
def test_demo_short_run_detects_the_backdoor(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    # its own process: the worker and then the demo open an embedded store of their own
    result = subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", "demo", "--days", "1.2", "--rate", "0.4",
         "--workdir", str(tmp_path / "demo"), "--json", str(summary_path), "--timeout", "520"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "detector/rule" in out and "First alert per detector and rule" in out
    summary = json.loads(summary_path.read_text())
    assert summary["rows"] > 10_000
    firsts = {f["origin"]: f for f in summary["first_alerts"]}
    assert "trigger_signature" in firsts, out[-3000:]
    assert firsts["trigger_signature"]["segment"] == "mcc=5967"
    assert firsts["trigger_signature"]["trigger_txns"] <= 5
    report = Path(summary["report"])
    assert report.is_file() and "<svg" in report.read_text()
