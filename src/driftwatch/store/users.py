"""The read-only ClickHouse user for Grafana, the API and analysts' SQL.

``driftwatch secure reader`` (run by the docker-compose init job, after ``db init``) makes
sure the user exists with the current password, may only ``SELECT`` from the driftwatch
database, and runs with ``readonly = 2`` (no writes, no DDL; settings such as
``max_execution_time`` may still be changed per query, which Grafana's plugin needs).
Running it again with a new password rotates the password.

The password never travels in the SQL: only its SHA-256 (``sha256_hash``) does, and the
user and database names are checked to be plain identifiers before they are quoted.
ClickHouse cannot take query parameters in access-management statements, so these are
the only values that reach them.

>>> for sql in reader_statements("dw_reader", "correct horse battery", "driftwatch"):
...     print(sql)  # doctest: +NORMALIZE_WHITESPACE
CREATE USER IF NOT EXISTS `dw_reader`
  IDENTIFIED WITH sha256_hash BY '9028ea0d15decaa35b2da21c0290af3b1a5ba0a30a591906f89b5074e209ea72'
  DEFAULT DATABASE `driftwatch` SETTINGS readonly = 2
ALTER USER `dw_reader`
  IDENTIFIED WITH sha256_hash BY '9028ea0d15decaa35b2da21c0290af3b1a5ba0a30a591906f89b5074e209ea72'
  DEFAULT DATABASE `driftwatch` SETTINGS readonly = 2
REVOKE ALL ON *.* FROM `dw_reader`
GRANT SELECT ON `driftwatch`.* TO `dw_reader`
"""

from __future__ import annotations

import hashlib
import re

from driftwatch.errors import ConfigError
from driftwatch.store.client import Store

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MIN_PASSWORD_LENGTH = 16


def reader_statements(user: str, password: str, database: str) -> list[str]:
    """The statements that create (or update) the read-only ``user`` on ``database``.

    Raises
    ------
    ConfigError
        ``user`` or ``database`` is not a plain identifier, or the password is shorter
        than :data:`MIN_PASSWORD_LENGTH` characters.
    """
    for what, name in (("user", user), ("database", database)):
        if not IDENTIFIER.fullmatch(name):
            raise ConfigError(f"reader {what} {name!r} is not a plain identifier")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(
            f"reader password: at least {MIN_PASSWORD_LENGTH} characters, got {len(password)}"
        )
    digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
    identity = (
        f"IDENTIFIED WITH sha256_hash BY '{digest}' "
        f"DEFAULT DATABASE `{database}` SETTINGS readonly = 2"
    )
    return [
        f"CREATE USER IF NOT EXISTS `{user}` {identity}",
        f"ALTER USER `{user}` {identity}",
        f"REVOKE ALL ON *.* FROM `{user}`",
        f"GRANT SELECT ON `{database}`.* TO `{user}`",
    ]


def ensure_reader(store: Store, user: str, password: str) -> None:
    """Create or update the read-only ``user`` on the store's database (needs a ClickHouse
    user with access management, e.g. the compose ``driftwatch`` user)."""
    for sql in reader_statements(user, password, store.database):
        store.command(sql)
