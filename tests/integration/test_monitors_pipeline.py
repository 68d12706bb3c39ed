"""The monitor as the pipeline's clock stage, the persisted alert lifecycle, the
``driftwatch monitor`` command and a short scenario replay."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
from click.testing import CliRunner

from driftwatch.alerts.lifecycle import StoreAlertBook
from driftwatch.alerts.model import Alert, Finding
from driftwatch.assemble import build_pipeline
from driftwatch.cli import main
from driftwatch.monitors.cents import CentsDetector
from driftwatch.monitors.monitor import Monitor
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.store.client import Store
from tests.conftest import CONTRACTS
from tests.integration.monitor_data import HOUR, T0, background, event, insert, settings_for

AT = T0 + 49 * HOUR
SCHEMA = json.loads((CONTRACTS / "alert.schema.json").read_text())


def _attack(store: Store, hours: float = 49) -> None:
    rng = np.random.default_rng(21)
    insert(store, background(rng, hours, 25, mccs=("5967", "5411")))
    insert(
        store,
        [event(f"a{j}", AT - HOUR + j * dt.timedelta(minutes=8), mcc="5967", country="LT",
               amount=f"{5000 + j}.37", card=f"atk-{j % 3}") for j in range(6)],
    )


class CheckingSink:
    """Records alerts and checks they are already in ClickHouse when sent."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.alerts: list[Alert] = []

    def send(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            rows = self.store.query(
                "SELECT status FROM {db}.alerts FINAL WHERE fingerprint = {f:String}",
                {"f": a.fingerprint},
            )
            assert rows == [(a.status,)]
        self.alerts.extend(alerts)

    def close(self) -> None:
        return None


def test_passes_follow_the_event_time_grid(store: Store) -> None:
    _attack(store)
    s = settings_for(store, monitor_detectors="cents")
    mon = Monitor(store, s)
    assert mon.due(T0 + 49 * HOUR + dt.timedelta(minutes=3)) == [AT]
    mon.on_watermark(AT + dt.timedelta(minutes=3))
    assert mon.due(AT + dt.timedelta(minutes=16)) == [
        AT + dt.timedelta(minutes=5), AT + dt.timedelta(minutes=10),
        AT + dt.timedelta(minutes=15),
    ]
    mon.on_watermark(AT + dt.timedelta(minutes=16))
    rows = store.query(
        "SELECT evaluated_at, uniqExact(written_at), count() FROM {db}.drift_results "
        "GROUP BY evaluated_at ORDER BY evaluated_at"
    )
    assert [r[0].replace(tzinfo=dt.UTC) for r in rows] == [
        AT + dt.timedelta(minutes=m) for m in (0, 5, 10, 15)
    ]
    assert all(r[1] == 1 and r[2] > 0 for r in rows)  # one columnar insert per pass


def test_pipeline_alerts_follow_the_contract_and_are_persisted_first(
    store: Store, tmp_path: Path
) -> None:
    _attack(store)
    # one pass at AT (no catch-up of earlier passes), so every alert starts at AT
    s = settings_for(store, rules_dirs=str(tmp_path / "none"), monitor_max_catchup=1)
    sink = CheckingSink(store)
    pipeline = build_pipeline(s, store, alerts_out=tmp_path / "a.jsonl", extra_sinks=[sink])
    alerts = pipeline.advance(AT)
    pipeline.close()
    cents = [a for a in alerts if a.labels["alertname"] == "CentsDigitAnomaly"]
    assert {a.labels["segment"] for a in cents} >= {"mcc=5967"}
    for a in alerts:
        jsonschema.validate(a.to_dict(), SCHEMA)
        assert a.starts_at == AT and a.labels["severity"] in ("warning", "critical")
        assert a.annotations["evidence_sql"].startswith("SELECT ")
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(lines) == len(alerts) == len(sink.alerts)
    log = store.query("SELECT count() FROM {db}.alert_log WHERE status = 'firing'")
    assert log[0][0] == len(alerts)
    decided = dict(store.query(
        "SELECT decision, count() FROM {db}.drift_results GROUP BY decision"
    ))
    assert decided["alert"] >= len(alerts)


def test_restarted_book_reloads_firing_alerts_and_does_not_refire(store: Store) -> None:
    _attack(store)
    s = settings_for(store, monitor_detectors="cents")
    book = StoreAlertBook(store, interval_s=300, resolve_after=3)
    mon = Monitor(store, s, on_pass=book.passed)
    first = book.update(mon.on_watermark(AT).findings, AT)
    assert first
    again = StoreAlertBook(store, interval_s=300, resolve_after=3)
    assert set(again.firing) == {a.fingerprint for a in first}
    mon2 = Monitor(store, s, on_pass=again.passed)
    nxt = AT + dt.timedelta(minutes=5)
    assert again.update(mon2.on_watermark(nxt).findings, nxt) == []
    # after the attack has left the window for resolve_after passes, they resolve
    later = AT + dt.timedelta(hours=2)
    again.passed(later)
    resolved = again.update([], later)
    assert {a.status for a in resolved} == {"resolved"}
    states = store.query("SELECT status, count() FROM {db}.alerts FINAL GROUP BY status")
    assert dict(states) == {"resolved": len(first)}


def test_no_findings_while_history_is_short(store: Store) -> None:
    _attack(store, hours=49)
    s = settings_for(store)
    spec = SegmentSpec.parse(s.segment_dimensions)
    mon = Monitor(store, s, [CentsDetector(s, spec)], warmup_s=60 * 86400)
    result = mon.run_pass(AT)
    assert result.findings == [] and result.decisions.get("warmup", 0) > 0


def test_monitor_command_once(store: Store, chdb_dsn: str, tmp_path: Path) -> None:
    _attack(store)
    out = tmp_path / "alerts.jsonl"
    res = CliRunner().invoke(
        main,
        ["--store", chdb_dsn, "--database", store.database, "monitor", "--once",
         "--at", AT.isoformat(), "--alerts-out", str(out), "-v"],
        env={"DRIFTWATCH_REFERENCE_WINDOW_S": "172800", "DRIFTWATCH_RULES_DIRS": "none",
             "DRIFTWATCH_MONITOR_DETECTORS": "cents,shadow"},
    )
    assert res.exit_code == 0, res.output
    assert f"pass {AT.isoformat()}" in res.output
    assert "CentsDigitAnomaly" in res.output and "mcc=5967" in res.output
    assert out.read_text().count('"firing"') >= 1
    loop = CliRunner().invoke(
        main,
        ["--store", chdb_dsn, "--database", store.database, "monitor", "--interval", "0.01",
         "--iterations", "2"],
        env={"DRIFTWATCH_REFERENCE_WINDOW_S": "172800", "DRIFTWATCH_RULES_DIRS": "none",
             "DRIFTWATCH_MONITOR_DETECTORS": "cents"},
    )
    assert loop.exit_code == 0, loop.output
    # the watermark (newest event - 60 s) has reached the pass after the --once pass
    assert loop.output.count("pass ") == 1
    bad = CliRunner().invoke(main, ["--store", chdb_dsn, "--database", store.database,
                                    "monitor"])
    assert bad.exit_code == 2 and "exactly one of --once and --interval" in bad.output


def test_book_writes_material_changes_at_once_and_coalesces_repeats(store: Store) -> None:
    book = StoreAlertBook(store, interval_s=300, resolve_after=3, flush_s=3600)
    f = Finding("RuleHit", "warning", "rule", "r1", "mcc=5967", AT, "hit 1")

    def stored() -> tuple[str, str, int]:
        rows = store.query("SELECT status, severity, findings FROM {db}.alerts FINAL")
        assert len(rows) == 1
        return rows[0]

    assert [a.status for a in book.update([f], AT)] == ["firing"]
    assert stored() == ("firing", "warning", 1)  # new: written before update returned
    for i in range(1, 4):  # repeats of the same alert wait (flush_s)
        at = AT + dt.timedelta(minutes=i)
        assert book.update([replace(f, event_time=at)], at) == []
    assert stored() == ("firing", "warning", 1)
    book.flush()
    assert stored() == ("firing", "warning", 4)
    # one more repeat, then a material change: both written by that update
    book.update([replace(f, event_time=AT + dt.timedelta(minutes=5))], AT)
    up = replace(f, severity="critical", event_time=AT + dt.timedelta(minutes=6))
    assert [a.labels["severity"] for a in book.update([up], AT)] == ["critical"]
    assert stored() == ("firing", "critical", 6)
