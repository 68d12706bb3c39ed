"""Analysts on the embedded default (issue 28): while a worker holds the chdb data path,
``driftwatch sql``, ``segments`` and ``alerts list`` from another process are answered
through the worker's web port; its SQL endpoint refuses writes and calls without the
token."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from driftwatch.settings import Settings
from driftwatch.streaming.testbroker import free_port
from tests.integration.kafka_tools import (
    DRIFTWATCH,
    WorkerProcess,
    make_events,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

TOKEN = "analyst-token-0123456789"


def _cli(s: Settings, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRIFTWATCH_API_TOKEN": token,
           "DRIFTWATCH_WORKER_WEB_PORT": str(s.worker_web_port), "DRIFTWATCH_LOG_FORMAT": "text"}
    return subprocess.run(
        [str(DRIFTWATCH), "--store", s.store_dsn, "--database", s.database, *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )


def test_live_embedded_store_answers_other_processes(
    stream_settings: Settings, tmp_path: Path
) -> None:
    s = stream_settings.replace(
        store_dsn=f"chdb://{tmp_path / 'chdb'}", database="dw", worker_web_port=free_port(),
        api_token=TOKEN,
    )
    events = make_events(600, seed=7)
    produce(s.kafka_bootstrap, s.topic_scored, events)
    worker = WorkerProcess("analyst", s, tmp_path / "w").start()
    try:
        def stored() -> bool:
            worker.check_alive()
            out = _cli(s, "sql", "SELECT count() AS n FROM {db}.scored_transactions",
                       "--format", "json")
            return out.returncode == 0 and json.loads(out.stdout)["rows"] == [[600]]

        wait_for(stored, 120, step=1.0, what="600 events through the worker")
        seg = _cli(s, "segments", "--by", "mcc", "--since", "30d", "--format", "json")
        assert seg.returncode == 0, seg.stderr
        assert sum(r["n"] for r in json.loads(seg.stdout)) == 600
        listed = _cli(s, "alerts", "list", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        assert isinstance(json.loads(listed.stdout), list)
        table = _cli(s, "sql", "SELECT mcc, count() AS n FROM {db}.scored_transactions "
                     "GROUP BY mcc ORDER BY n DESC, mcc LIMIT 3")
        assert table.returncode == 0 and table.stdout.splitlines()[0].split() == ["mcc", "n"]

        # writes and settings are refused, and nothing changed
        for bad in ("DROP TABLE {db}.labels", "INSERT INTO {db}.labels (txn_id) VALUES ('x')",
                    "SELECT 1 SETTINGS readonly = 0"):
            out = _cli(s, "sql", bad)
            assert out.returncode == 2 and "HTTP 422" in out.stderr, (bad, out.stderr)
        refused = _cli(s, "sql", "SELECT * FROM file('/etc/passwd', 'LineAsString')")
        assert refused.returncode == 2 and "readonly" in refused.stderr.lower()
        # no token, a wrong token: nothing is served
        sql_url = worker.url + "/sql"
        assert httpx.post(sql_url, json={"sql": "SELECT 1"}, timeout=10).status_code == 401
        assert httpx.get(worker.url + "/alerts", timeout=10).status_code == 401
        wrong = _cli(s, "sql", "SELECT 1", token="not-the-token")
        assert wrong.returncode == 2 and "refused the token" in wrong.stderr
        # the worker still writes (analyst queries never leave its session read-only)
        more = make_events(50, seed=8)
        produce(s.kafka_bootstrap, s.topic_scored, more)

        def all_stored() -> bool:
            out = _cli(s, "sql", "SELECT count() FROM {db}.scored_transactions",
                       "--format", "json")
            return out.returncode == 0 and json.loads(out.stdout)["rows"] == [[650]]

        wait_for(all_stored, 90, step=1.0, what="50 more events after the analyst queries")
        labels = _cli(s, "sql", "EXISTS TABLE {db}.labels", "--format", "json")
        assert json.loads(labels.stdout)["rows"] == [[1]]
    finally:
        code = worker.terminate()
    assert code == 0, worker.tail()
