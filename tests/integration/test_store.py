"""The ClickHouse store against real embedded ClickHouse (chdb)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from driftwatch.errors import ConfigError, StoreError
from driftwatch.events import EXAMPLE_EVENT, parse_label_batch, parse_scored_batch
from driftwatch.pipeline import Pipeline
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store, open_store, scored_columns
from driftwatch.store.connect import parse_dsn
from driftwatch.store.schema import applied_versions, migrations

pytestmark = pytest.mark.integration

BASE: dict[str, Any] = json.loads(EXAMPLE_EVENT)


def events(n: int, prefix: str = "e") -> list[bytes]:
    out = []
    for i in range(n):
        d = copy.deepcopy(BASE)
        d["event_id"] = f"{prefix}-{i}"
        d["txn_id"] = f"t-{i}"
        d["event_time"] = f"2026-03-18T14:{i // 60 % 60:02d}:{i % 60:02d}Z"
        d["amount"] = f"{10 + i}.{i % 100:02d}"
        out.append(json.dumps(d).encode())
    return out


def test_init_is_idempotent(store: Store) -> None:
    assert store.init() == []
    assert store.init() == []
    assert applied_versions(store) == {m.version for m in migrations()}
    tables = {r[0] for r in store.query("SHOW TABLES FROM {db}")}
    assert {"scored_transactions", "labels", "rejected_events", "schema_migrations"} <= tables


def test_insert_roundtrip_exact(store: Store) -> None:
    batch = parse_scored_batch([EXAMPLE_EVENT.replace(b'"4892.37"', b"1234.37")])
    assert store.insert_scored(batch.events, "test") == 1
    rows = store.query(
        "SELECT event_id, amount_minor, amount_cents, mcc, merchant_country, features_num,"
        " shadow_versions, shadow_scores, score, decision, event_time, merchant_registered_at"
        " FROM {db}.scored_transactions FINAL"
    )
    assert len(rows) == 1
    r = rows[0]
    assert r[:5] == ("e-0001", 123437, 37, "5967", "LT")
    assert r[5] == {"transactions_24h": 14.0, "foreign_transaction": 1.0}
    assert (r[6], r[7], r[8], r[9]) == (["v46"], [0.88], 0.21, "approve")
    assert r[10].replace(tzinfo=dt.UTC) == dt.datetime(2026, 3, 18, 14, 0, 3, tzinfo=dt.UTC)
    assert r[11] == dt.date(2026, 1, 20)


def _tricky_events() -> list[bytes]:
    """Events that stress the JSON path: escapes, unicode, extreme floats, empty optionals."""
    out = events(300)
    d = copy.deepcopy(BASE)
    for key in ("merchant_country", "merchant_registered_at", "channel", "ip", "features",
                "shadow", "beneficiary_name"):
        d.pop(key)
    d["model"].pop("decision")
    out.append(json.dumps(dict(d, event_id="bare")).encode())
    d.update(event_id="tricky", event_time="2026-03-18T14:00:03.123456+05:30",
             geo={"lat": -89.99999999999999, "lon": 5e-324},
             features={"s": 'a"b\\c\u2603\n', "e": "", "n": None, "t": True, "f": False,
                       "num_str": "1.5", "bool_str": "true", "null_str": "null",
                       "big": 1.7976931348623157e308, "neg0": -0.0, 'k"\u00fc': 0.1},
             shadow=[{"version": "v1", "score": 0.1 + 0.2}, {"version": "v\"2", "score": 1.0}],
             beneficiary_name="ÄÖÜ \t tab")
    d["model"]["score"] = 0.30000000000000004
    out.append(json.dumps(d).encode())
    return out


def test_json_insert_path_stores_the_same_rows_as_columnar(store: Store) -> None:
    """The embedded JSON-lines insert and the client-side columnar block agree exactly."""
    assert store.embedded
    batch = parse_scored_batch(_tricky_events())
    assert not batch.rejected
    cols = [c for c in scored_columns(batch.events, "s") if c != "ingest_time"]
    sql = f"SELECT {', '.join(cols)} FROM {{db}}.scored_transactions ORDER BY event_id"
    store.insert_columns("scored_transactions", scored_columns(batch.events, "s"))
    columnar = store.query(sql)
    store.command("TRUNCATE TABLE {db}.scored_transactions")
    assert store.insert_scored_json(batch.events, "s") == len(batch.events)
    assert store.query(sql) == columnar
    tricky = {r[0]: dict(zip(cols, r, strict=True)) for r in columnar}["tricky"]
    assert tricky["features_num"] == {"t": 1.0, "f": 0.0, "big": 1.7976931348623157e308,
                                      "neg0": -0.0, "k\"ü": 0.1}
    assert tricky["features_str"] == {"s": 'a"b\\c☃\n', "e": "", "num_str": "1.5",
                                      "bool_str": "true", "null_str": "null"}
    assert tricky["score"] == 0.30000000000000004
    assert tricky["shadow_scores"] == [0.1 + 0.2, 1.0]
    assert tricky["event_time"] == dt.datetime(2026, 3, 18, 8, 30, 3, 123000)


def test_replay_reports_a_batch_only_once_stored(store: Store, tmp_path: Any) -> None:
    """Replay overlaps parsing with storing, but progress never runs ahead of the store."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\r\n".join([*events(1000), b" not json", b"  "]) + b"\r\n")
    seen: list[tuple[int, int]] = []

    def progress(n: int, rejected: int, seconds: float) -> None:
        stored = store.count("scored_transactions", final=False)
        stored += store.count("rejected_events", final=False)
        seen.append((n, stored))

    result = replay(Pipeline(store), path, batch_size=150, progress=progress)
    assert result.events == 1001
    assert [n for n, _ in seen] == [150 * k for k in range(1, 7)] + [1001]
    assert all(stored >= n for n, stored in seen)
    assert store.count("scored_transactions") == 1000
    # the blank line is skipped; the rejected one is stored as written, without its end
    assert store.query("SELECT raw FROM {db}.rejected_events") == [(" not json",)]


def test_reinsert_same_batch_never_counts_twice(store: Store) -> None:
    batch = parse_scored_batch(events(500))
    store.insert_scored(batch.events, "a")
    store.insert_scored(batch.events, "a")
    store.insert_scored(batch.events[100:300], "b")  # partial overlap, other batch shape
    assert store.count("scored_transactions") == 500
    distinct = store.query("SELECT uniqExact(event_id) FROM {db}.scored_transactions FINAL")
    assert distinct[0][0] == 500
    total = store.query("SELECT sum(amount_minor) FROM {db}.scored_transactions FINAL")
    assert total[0][0] == sum(e.amount_minor for e in batch.events)


def test_latest_label_wins(store: Store) -> None:
    labels = parse_label_batch(
        [
            b'{"txn_id": "t-1", "label": 0, "label_time": "2026-03-19T10:00:00Z"}',
            b'{"txn_id": "t-2", "label": 1, "label_time": "2026-03-19T10:00:00Z"}',
        ]
    ).labels
    store.insert_labels(labels)
    later = parse_label_batch(
        [
            b'{"txn_id": "t-1", "label": 1, "label_time": "2026-03-25T10:00:00Z",'
            b' "source": "chargeback"}',
            b'{"txn_id": "t-2", "label": 0, "label_time": "2026-03-18T10:00:00Z"}',
        ]
    ).labels
    store.insert_labels(later)
    rows = dict(store.query("SELECT txn_id, label FROM {db}.labels FINAL ORDER BY txn_id"))
    assert rows == {"t-1": 1, "t-2": 1}  # t-2's second label is older, so it loses


def test_rejections_stored_with_reason_and_raw(store: Store) -> None:
    batch = parse_scored_batch([b"{oops", b'{"event_id": "x"}'])
    store.insert_rejected(batch.rejected, "file:x.jsonl")
    store.insert_rejected(batch.rejected, "file:x.jsonl")  # re-delivery
    rows = store.query(
        "SELECT reason, raw, source FROM {db}.rejected_events FINAL ORDER BY reason"
    )
    assert rows == [
        ("invalid_json", "{oops", "file:x.jsonl"),
        ("missing_field:txn_id", '{"event_id": "x"}', "file:x.jsonl"),
    ]


def test_parameters_are_bound_not_formatted(store: Store) -> None:
    store.insert_scored(parse_scored_batch(events(3)).events)
    hostile = "e-0' OR 1=1 --"
    rows = store.query(
        "SELECT count() FROM {db}.scored_transactions FINAL WHERE event_id = {id:String}",
        {"id": hostile},
    )
    assert rows[0][0] == 0


def test_second_chdb_path_is_a_clear_error(chdb_dsn: str, tmp_path: Any) -> None:
    open_store(chdb_dsn, "t_probe")  # the session's path: fine
    with pytest.raises(StoreError, match="one data path per process"):
        open_store(f"chdb://{tmp_path}/other", "x")


def test_dsn_parsing() -> None:
    assert parse_dsn("chdb://./rel/path").path.endswith("/rel/path")
    cfg = parse_dsn("http://user:p%40ss@clickhouse:8123")
    assert (cfg.username, cfg.password, cfg.port, cfg.database) == ("user", "p@ss", 8123, "")
    with pytest.raises(ConfigError):
        parse_dsn("http://h:8123/bad-name")
    with pytest.raises(ConfigError):
        parse_dsn("chdb://")
