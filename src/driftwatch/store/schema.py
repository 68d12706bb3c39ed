"""Schema migrations: numbered ``NNNN_name.sql`` files applied in order, once each.

The files live in ``deploy/clickhouse/migrations/`` (shipped inside the package as
``driftwatch/store/ddl``). Applied versions are recorded in ``{db}.schema_migrations``
with the file's SHA-256, so ``driftwatch db init`` is idempotent and a later
migration applies on top of an older database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from driftwatch.errors import StoreError

if TYPE_CHECKING:
    from driftwatch.store.client import Store

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The statements of the file, split on ``;`` at line ends, comments dropped."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def migrations() -> list[Migration]:
    """All shipped migrations, ordered by version."""
    found = []
    root = resources.files("driftwatch.store").joinpath("ddl")
    for entry in root.iterdir():
        m = _NAME.fullmatch(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda x: x.version)
    versions = [x.version for x in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions: {versions}")
    return found


def applied_versions(store: Store) -> set[int]:
    """Versions already applied to the store's database."""
    rows = store.query("SELECT version FROM {db}.schema_migrations")
    return {int(r[0]) for r in rows}


def migrate(store: Store) -> list[str]:
    """Apply every pending migration; return the names applied now."""
    store.command("CREATE DATABASE IF NOT EXISTS {db}")
    store.command(
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String,"
        " checksum String, applied_at DateTime64(3, 'UTC'))"
        " ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = applied_versions(store)
    applied = []
    for mig in migrations():
        if mig.version in done:
            continue
        for statement in mig.statements():
            store.command(statement)
        store.insert_columns(
            "schema_migrations",
            {
                "version": [mig.version],
                "name": [mig.name],
                "checksum": [mig.checksum],
                "applied_at": [dt.datetime.now(dt.UTC)],
            },
        )
        applied.append(f"{mig.version:04d}_{mig.name}")
    return applied
