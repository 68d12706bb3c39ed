"""The read-only user's statements go through ClickHouse's own parser (chdb; the embedded
engine has no access management, so they cannot run here) and mean what they say."""

from __future__ import annotations

import pytest

from driftwatch.store.client import Store
from driftwatch.store.users import reader_statements

pytestmark = pytest.mark.integration


def test_clickhouse_parses_the_reader_statements(store: Store) -> None:
    statements = reader_statements("driftwatch_reader", "p" * 24, store.database)
    formatted = [store.query("SELECT formatQuery({q:String})", {"q": sql})[0][0]
                 for sql in statements]
    create, alter, revoke, grant = formatted
    assert create.startswith("CREATE USER IF NOT EXISTS driftwatch_reader IDENTIFIED WITH "
                             "sha256_hash BY '")
    assert create.endswith(f"DEFAULT DATABASE {store.database} SETTINGS readonly = 2")
    # ALTER ... SETTINGS replaces every setting and profile: exactly readonly = 2 is left
    assert alter.endswith("DROP ALL SETTINGS, DROP ALL PROFILES, ADD SETTING readonly = 2")
    assert revoke == "REVOKE ALL ON *.* FROM driftwatch_reader"
    assert grant == f"GRANT SELECT ON {store.database}.* TO driftwatch_reader"
