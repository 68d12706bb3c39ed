"""Shared fixtures.

chdb allows one data path per process: the whole test session shares one path and
each test gets its own database on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftwatch.store.client import Store, open_store

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONTRACTS = SHARED / "contracts"


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one embedded ClickHouse data path of this test process."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def chdb_dsn(chdb_path: Path) -> str:
    """DSN of the session's embedded ClickHouse."""
    return f"chdb://{chdb_path}"


@pytest.fixture
def store(chdb_dsn: str) -> Iterator[Store]:
    """An initialised store in a database of its own, dropped afterwards."""
    s = open_store(chdb_dsn, f"t_{uuid.uuid4().hex[:12]}", init=True)
    try:
        yield s
    finally:
        s.drop()
