"""The ClickHouse store: clients (embedded chdb or a server), migrations, inserts, queries.

Import what you need from its modules (:mod:`driftwatch.store.client` for ``Store`` and
``open_store``, :mod:`driftwatch.store.connect` for ``parse_dsn``); the package itself
imports nothing, so that its modules can import each other without a cycle through it.
"""
