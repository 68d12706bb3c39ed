"""The ClickHouse store: clients (embedded chdb or a server), migrations, inserts, queries."""

from __future__ import annotations

from driftwatch.store.client import Store, StoreConfig, open_store, parse_dsn

__all__ = ["Store", "StoreConfig", "open_store", "parse_dsn"]
