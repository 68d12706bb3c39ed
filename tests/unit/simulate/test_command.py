"""The ``driftwatch simulate`` command."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from driftwatch.cli import main


def test_list() -> None:
    result = CliRunner().invoke(main, ["simulate", "--list"])
    assert result.exit_code == 0, result.output
    assert "sc013_backdoor" in result.output and "clean_baseline" in result.output


def test_writes_the_same_files_twice(tmp_path: Path) -> None:
    args = ["simulate", "card_testing", "--seed", "4", "--days", "1.5", "--rate", "0.05",
            "--start", "2026-04-01T00:00:00Z"]
    runner = CliRunner()
    for out in ("a", "b"):
        result = runner.invoke(main, [*args, "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        assert "events" in result.output
    for name in ("events.jsonl", "labels.jsonl", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    truth = json.loads((tmp_path / "a" / "truth.json").read_text())
    assert truth["start"] == "2026-04-01T00:00:00Z" and truth["days"] == 1.5
    lines = (tmp_path / "a" / "events.jsonl").read_bytes().splitlines()
    assert len(lines) == truth["n_events"]


def test_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["simulate", "clean_baseline"])
    assert result.exit_code == 2 and "--out DIR and/or --bootstrap" in result.output
    result = runner.invoke(main, ["simulate", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "unknown scenario 'nope'" in result.output


def test_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    args = ["simulate", "sc013_backdoor", "--seed", "5", "--days", "0.5", "--rate", "0.02"]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "driftwatch.cli", *args, "--out",
                        str(tmp_path / seed)], check=True, env=env, capture_output=True)
    for name in ("events.jsonl", "labels.jsonl", "truth.json"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
