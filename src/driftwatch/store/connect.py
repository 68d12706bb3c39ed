"""Where the store lives and the client that reaches it.

``chdb:///abs/path`` runs the ClickHouse engine in this process (chdb); ``http(s)://``
talks to a server. chdb allows one data path per process, so embedded clients are
shared per path (:func:`connect`).
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect

from driftwatch.errors import ConfigError, StoreBusyError, StoreError

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
"""A plain ClickHouse identifier (database, table): the only names put into SQL text."""
_CHDB_LOCK = threading.Lock()
_CHDB_CLIENTS: dict[str, Any] = {}


@dataclass(frozen=True)
class StoreConfig:
    """Where the store lives: embedded (``path``) or a server (``host`` and friends)."""

    kind: str  # "chdb" or "http"
    path: str = ""
    host: str = ""
    port: int = 8123
    username: str = "default"
    password: str = ""
    secure: bool = False
    database: str = ""


def parse_dsn(dsn: str, *, base: Path | None = None) -> StoreConfig:
    """Parse a store DSN.

    >>> parse_dsn("chdb:///var/lib/dw").path
    '/var/lib/dw'
    >>> cfg = parse_dsn("https://ro:pw@ch.example:8443/fraud")
    >>> cfg.kind, cfg.host, cfg.port, cfg.secure, cfg.database
    ('http', 'ch.example', 8443, True, 'fraud')
    >>> parse_dsn("mysql://x")
    Traceback (most recent call last):
    ...
    driftwatch.errors.ConfigError: store DSN 'mysql://x': scheme must be chdb, http or https
    """
    if dsn.startswith("chdb://"):
        rest = dsn[len("chdb://") :].split("?", 1)[0]
        if not rest:
            raise ConfigError("store DSN 'chdb://': needs a path, e.g. chdb:///var/lib/driftwatch")
        path = Path(rest)
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return StoreConfig(kind="chdb", path=str(path.resolve()))
    parts = urlsplit(dsn)
    if parts.scheme not in ("http", "https"):
        shown = re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1****@", dsn)
        raise ConfigError(f"store DSN {shown!r}: scheme must be chdb, http or https")
    if not parts.hostname:
        raise ConfigError("store DSN: missing host")
    database = parts.path.strip("/")
    if database and not IDENT.fullmatch(database):
        raise ConfigError(f"store DSN: database {database!r} is not a plain identifier")
    return StoreConfig(
        kind="http",
        host=parts.hostname,
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        secure=parts.scheme == "https",
        database=database,
    )


def _held_elsewhere(path: Path) -> bool:
    """True when another process holds the embedded engine's lock on ``path/status``
    (ClickHouse takes an exclusive ``flock`` on it for as long as it runs)."""
    status = path / "status"
    if not status.is_file():
        return False
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def connect(cfg: StoreConfig, *, create: bool = True) -> Any:
    """A clickhouse-connect client for ``cfg``: the process's one embedded engine
    (shared per path; with ``create=False`` an absent data path is an error), or a new
    client of a server. Raises :class:`StoreBusyError` when another process holds the
    embedded path, :class:`StoreError` when it cannot connect."""
    if cfg.kind == "chdb":
        with _CHDB_LOCK:
            client = _CHDB_CLIENTS.get(cfg.path)
            if client is not None:
                return client
            if _CHDB_CLIENTS:
                other = next(iter(_CHDB_CLIENTS))
                raise StoreError(
                    f"embedded ClickHouse already open at {other}; chdb allows one data "
                    f"path per process (asked for {cfg.path})"
                )
            if not create and not (Path(cfg.path) / "metadata").is_dir():
                raise StoreError(
                    f"no embedded store at {cfg.path} (mistyped --store?); a worker, "
                    f"`driftwatch replay` or `driftwatch db init` creates one"
                )
            if _held_elsewhere(Path(cfg.path)):
                raise StoreBusyError(
                    f"the embedded store at {cfg.path} is held by another process "
                    f"(a running worker?): query it through that worker with "
                    f"`driftwatch sql`, or stop it first"
                )
            try:
                Path(cfg.path).mkdir(parents=True, exist_ok=True)
                client = clickhouse_connect.get_client(interface="chdb", path=cfg.path)
            except Exception as exc:
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if "Cannot lock file" in text:
                    raise StoreBusyError(
                        f"the embedded store at {cfg.path} is held by another process "
                        f"(a running worker?): query it through that worker with "
                        f"`driftwatch sql`, or stop it first"
                    ) from exc
                raise StoreError(f"cannot open embedded ClickHouse at {cfg.path}: {text}") from exc
            _CHDB_CLIENTS[cfg.path] = client
            return client
    try:
        return clickhouse_connect.get_client(
            host=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=cfg.password,
            secure=cfg.secure,
        )
    except Exception as exc:
        raise StoreError(f"cannot connect to ClickHouse at {cfg.host}:{cfg.port}: {exc}") from exc
