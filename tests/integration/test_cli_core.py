"""The foundation's commands end to end: config, db init, replay."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.events import EXAMPLE_EVENT
from driftwatch.store.client import open_store

pytestmark = pytest.mark.integration


def test_config_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_API_TOKEN", "s3cret-token")
    monkeypatch.setenv("DRIFTWATCH_STORE_DSN", "https://u:hunter2@ch.example:8443/db")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 0, result.output
    assert "s3cret-token" not in result.output and "hunter2" not in result.output
    assert "DRIFTWATCH_API_TOKEN" in result.output and "****" in result.output
    as_json = json.loads(CliRunner().invoke(main, ["config", "--json"]).output)
    assert as_json["api_token"] == "****"


def test_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_BATCH_SIZE", "lots")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code != 0
    assert "DRIFTWATCH_BATCH_SIZE" in result.output


def test_toml_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "dw.toml"
    cfg.write_text('[driftwatch]\nbatch_size = 123\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "config", "--json"])
    assert json.loads(result.output)["batch_size"] == 123
    cfg.write_text('[driftwatch]\nbatch_sise = 123\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "config"])
    assert result.exit_code != 0 and "batch_size" in result.output


def test_every_command_has_help() -> None:
    runner = CliRunner()
    stack: list[tuple[list[str], object]] = [([], main)]
    seen = 0
    while stack:
        path, cmd = stack.pop()
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        seen += 1
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append(([*path, name], sub))
    assert seen >= 5


def test_db_init_twice_and_replay(chdb_dsn: str, tmp_path: Path) -> None:
    db = f"t_{uuid.uuid4().hex[:10]}"
    runner = CliRunner()
    first = runner.invoke(main, ["--store", chdb_dsn, "--database", db, "db", "init"])
    assert first.exit_code == 0, first.output
    assert "applied 0001_core" in first.output
    second = runner.invoke(main, ["--store", chdb_dsn, "--database", db, "db", "init"])
    assert second.exit_code == 0 and "applied" not in second.output.split("schema")[0]

    events = tmp_path / "events.jsonl"
    lines = [EXAMPLE_EVENT.decode(), "{broken", EXAMPLE_EVENT.decode().replace("e-0001", "e-2")]
    events.write_text("\n".join(lines) + "\n\n")
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"txn_id": "t-0001", "label": 1, "label_time": "2026-03-20T00:00:00Z"}\n')
    alerts = tmp_path / "alerts.jsonl"
    result = runner.invoke(
        main,
        ["--store", chdb_dsn, "--database", db, "replay", str(events), "--labels", str(labels),
         "--alerts-out", str(alerts)],
    )
    assert result.exit_code == 0, result.output
    assert "accepted                   2" in result.output
    assert "invalid_json" in result.output
    assert alerts.exists()
    store = open_store(chdb_dsn, db)
    assert store.count("scored_transactions") == 2
    assert store.count("labels") == 1
    assert store.count("rejected_events") == 1
    store.drop()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "nope.jsonl")])
    assert result.exit_code != 0
    assert "nope.jsonl" in result.output


def test_replay_with_monitors_off_runs_no_pass(chdb_dsn: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """DRIFTWATCH_MONITOR_DETECTORS=none: a replay stores and runs the rules only."""
    from driftwatch.assemble import build_pipeline, monitors_off
    from driftwatch.settings import Settings

    db = f"t_{uuid.uuid4().hex[:10]}"
    sample = Path(__file__).resolve().parents[2] / "examples" / "sample_events.jsonl"
    monkeypatch.setenv("DRIFTWATCH_MONITOR_DETECTORS", "none")
    result = CliRunner().invoke(main, ["--store", chdb_dsn, "--database", db, "replay",
                                       str(sample)])
    assert result.exit_code == 0, result.output
    store = open_store(chdb_dsn, db)
    try:
        assert store.count("scored_transactions") > 1000
        settings = Settings.load(config_file=None)
        assert monitors_off(settings)
        assert build_pipeline(settings, store).clock_stages == []
    finally:
        store.drop()
