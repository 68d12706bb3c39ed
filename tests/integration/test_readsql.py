"""Read-only analyst SQL on the real embedded engine: reads pass, writes never do."""

from __future__ import annotations

import pytest

from driftwatch.store.client import Store
from driftwatch.store.readsql import ReadOnlySqlError, run_read_only

pytestmark = pytest.mark.integration


def test_select_with_row_limit(store: Store) -> None:
    r = run_read_only(store, "SELECT number AS n FROM numbers(50) ORDER BY n", max_rows=7)
    assert r.columns == ("n",) and r.types == ("UInt64",)
    assert [row[0] for row in r.rows] == list(range(7)) and r.truncated
    whole = run_read_only(store, "SELECT number FROM numbers(7);", max_rows=7)
    assert len(whole.rows) == 7 and not whole.truncated


def test_parameters_and_show(store: Store) -> None:
    r = run_read_only(store, "SELECT {x:UInt8} + 1 AS y", parameters={"x": 41})
    assert r.rows == [(42,)]
    tables = run_read_only(store, f"SHOW TABLES FROM {store.database}")
    assert ("scored_transactions",) in tables.rows


@pytest.mark.parametrize("sql", [
    "INSERT INTO {db}.labels (txn_id) VALUES ('x')",
    "DROP TABLE {db}.labels",
    "SELECT 1; DROP TABLE {db}.labels",
    "SELECT 1 SETTINGS readonly = 0",
    "",
])
def test_refused_before_running(store: Store, sql: str) -> None:
    with pytest.raises(ReadOnlySqlError):
        run_read_only(store, sql.replace("{db}", store.database))
    assert store.count("labels") == 0 and store.query("EXISTS TABLE {db}.labels") == [(1,)]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "WITH x AS (SELECT * FROM file('/etc/hostname', 'LineAsString')) SELECT * FROM x",
])
def test_clickhouse_readonly_refuses_table_functions(store: Store, sql: str) -> None:
    from driftwatch.errors import StoreError

    with pytest.raises(StoreError, match="readonly"):
        run_read_only(store, sql)


def test_session_stays_writable(store: Store) -> None:
    run_read_only(store, "SELECT 1")
    store.command("INSERT INTO {db}.labels (txn_id, label) VALUES ('t1', 1)")
    assert store.count("labels") == 1


def test_time_limit(store: Store) -> None:
    from driftwatch.errors import StoreError

    with pytest.raises(StoreError, match=r"(?i)timeout|time limit|TIMEOUT_EXCEEDED"):
        run_read_only(store, "SELECT count() FROM numbers(10000000000) WHERE sleepEachRow(0)"
                      " = 0 AND number % 7 = 3", max_seconds=0.5)
