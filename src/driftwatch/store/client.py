"""One ClickHouse client behind a small, thread-safe facade.

``chdb:///abs/path`` runs the ClickHouse engine in this process (chdb); ``http(s)://``
talks to a server. Both speak the same SQL through clickhouse-connect. chdb allows
one data path per process, so embedded clients are shared per path.

All SQL is written with ``{db}`` standing for the database (a validated identifier,
never user input) and server-side parameters ``{name:Type}`` for values.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import msgspec
import pandas as pd

from driftwatch.errors import ConfigError, StoreError
from driftwatch.events import UTC, Label, Rejection, ScoredTransaction, epoch_ms
from driftwatch.store import labels as labels_store
from driftwatch.store import schema
from driftwatch.store.connect import IDENT, connect, parse_dsn

log = logging.getLogger(__name__)

_SYSTEM_DATABASES = frozenset({"system", "information_schema", "INFORMATION_SCHEMA", "default"})


class Store:
    """Thread-safe access to the driftwatch tables in one database.

    Parameters
    ----------
    client : clickhouse_connect client
        From :func:`open_store`, or any clickhouse-connect client.
    database : str
        A plain identifier; created by :meth:`init`.
    """

    def __init__(self, client: Any, database: str) -> None:
        if not IDENT.fullmatch(database):
            raise ConfigError(f"database {database!r} is not a plain identifier")
        self.client = client
        self.database = database
        self._lock = threading.RLock()
        self._types: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.embedded = "chdb" in type(getattr(client, "_backend", None)).__module__
        """True for an in-process chdb engine (events are then inserted as JSON lines)."""

    # -- plumbing ----------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        """Held around every call on the client (chdb runs one query at a time)."""
        return self._lock

    def sql(self, text: str) -> str:
        """Put the database name into SQL written with ``{db}``."""
        return text.replace("{db}", self.database)

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(f"{what}: {exc}") from exc

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows."""
        with self._call("command"):
            return self.client.command(self.sql(sql), parameters=dict(parameters or {}))

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples."""
        with self._call("query"):
            result = self.client.query(self.sql(sql), parameters=dict(parameters or {}))
            return list(result.result_rows)

    def query_df(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a query and return a DataFrame."""
        with self._call("query"):
            df: pd.DataFrame = self.client.query_df(
                self.sql(sql), parameters=dict(parameters or {})
            )
            return df

    def query_columns(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> dict[str, list[Any]]:
        """Run a query and return its result column by column."""
        with self._call("query"):
            result = self.client.query(self.sql(sql), parameters=dict(parameters or {}))
            return dict(zip(result.column_names, result.result_columns, strict=True))

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        """Insert one columnar batch into ``table``; returns the row count.

        The column types are looked up once per table and column list (clickhouse-connect
        would otherwise ask the server before every insert) and again after a failure.
        """
        if not IDENT.fullmatch(table):
            raise StoreError(f"table {table!r} is not a plain identifier")
        names = list(columns)
        n = len(columns[names[0]]) if names else 0
        if n == 0:
            return 0
        shape = (table, tuple(names))
        with self._call(f"insert into {table}"):
            types = self._types.get(shape)
            if types is None:  # asks the server once per table and column list
                context = self.client.create_insert_context(
                    table, names, database=self.database, column_oriented=True
                )
                types = self._types[shape] = context.column_types
            try:
                self.client.insert(
                    table,
                    [columns[c] for c in names],
                    column_names=names,
                    database=self.database,
                    column_types=types,
                    column_oriented=True,
                )
            except Exception:
                self._types.pop(shape, None)  # the table may have changed: look again
                raise
        return n

    def ping(self) -> bool:
        """True when ClickHouse answers a trivial query."""
        try:
            self.query("SELECT 1")
        except StoreError:
            return False
        return True

    # -- schema ------------------------------------------------------------------------
    def require_database(self) -> None:
        """Raise :class:`StoreError` unless the database exists (never creates it)."""
        names = [r[0] for r in self.query("SELECT name FROM system.databases ORDER BY name")]
        if self.database not in names:
            own = [n for n in names if n not in _SYSTEM_DATABASES]
            raise StoreError(
                f"no database {self.database!r} in this store; databases: "
                f"{', '.join(own) or '(none)'} (choose one with --database)"
            )

    def init(self) -> list[str]:
        """Create the database and apply pending migrations in order (idempotent)."""
        with self._lock:
            return schema.migrate(self)

    def drop(self) -> None:
        """Drop the whole database (tests and demos only)."""
        self.command("DROP DATABASE IF EXISTS {db}")

    # -- inserts -----------------------------------------------------------------------
    def insert_scored(self, events: Sequence[ScoredTransaction], source: str = "") -> int:
        """Insert validated events in one insert; duplicates collapse on event_id.

        Embedded (chdb): the events are serialised to JSON arrays by msgspec and ClickHouse
        parses and converts them itself (:data:`INSERT_SCORED_JSON`): about 0.6 us of
        Python per row instead of ~10 us to build a columnar block client-side. A server gets the
        columnar block (:func:`scored_columns`). Both give the same rows under ``FINAL``.
        """
        if not events:
            return 0
        if not self.embedded:
            return self.insert_columns("scored_transactions", scored_columns(events, source))
        return self.insert_scored_json(events, source)

    def insert_scored_json(self, events: Sequence[ScoredTransaction], source: str = "") -> int:
        """Insert validated events through a JSON-lines file read by the embedded engine."""
        if not events:
            return 0
        if not self.embedded:
            raise StoreError("insert_scored_json needs the embedded (chdb) store")
        fd, path = tempfile.mkstemp(prefix="dw-scored-", suffix=".jsonl")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_JSON_LINES.encode_lines(events))
            if not _SAFE_PATH.fullmatch(path):
                raise StoreError(f"temporary file path {path!r} is not a plain path")
            with self._call("insert into scored_transactions"):
                self.client.command(
                    self.sql(INSERT_SCORED_JSON.replace("{path}", path)),
                    parameters={"source": source, "ingest_ms": epoch_ms(dt.datetime.now(UTC))},
                )
        finally:
            with suppress(OSError):
                os.unlink(path)
        return len(events)

    def insert_labels(self, labels: Sequence[Label]) -> int:
        """Insert labels; the latest ``label_time`` per ``txn_id`` wins in ``labels``,
        every version stays in ``label_history`` (:mod:`driftwatch.store.labels`)."""
        return labels_store.write_labels(self, labels)

    def insert_rejected(self, rejected: Sequence[Rejection], source: str = "") -> int:
        """Insert rejected payloads with their reasons."""
        if not rejected:
            return 0
        now = dt.datetime.now(UTC)
        return self.insert_columns(
            "rejected_events",
            {
                "received_at": [now] * len(rejected),
                "kind": [r.kind for r in rejected],
                "reason": [r.reason for r in rejected],
                "detail": [r.detail[:1000] for r in rejected],
                "event_id": [r.event_id for r in rejected],
                "raw": [r.raw.decode("utf-8", "replace") for r in rejected],
                "source": [source] * len(rejected),
            },
        )

    # -- simple reads ------------------------------------------------------------------
    def count(self, table: str, final: bool = True) -> int:
        """Row count of a driftwatch table (deduplicated with FINAL by default)."""
        if not IDENT.fullmatch(table):
            raise StoreError(f"table {table!r} is not a plain identifier")
        rows = self.query(f"SELECT count() FROM {{db}}.{table}{' FINAL' if final else ''}")
        return int(rows[0][0])

    def max_event_time(self) -> dt.datetime | None:
        """The newest stored event time, or None for an empty store."""
        rows = self.query("SELECT count(), max(event_time) FROM {db}.scored_transactions")
        if not rows or rows[0][0] == 0:
            return None
        value: dt.datetime = rows[0][1]
        return value if value.tzinfo else value.replace(tzinfo=UTC)


_JSON_LINES = msgspec.json.Encoder()
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_./-]+")
_JSON_TYPES = {
    "event_id": "String", "txn_id": "String", "event_time": "String", "amount_minor": "UInt64",
    "currency": "String", "mcc": "String", "merchant_id": "String",
    "merchant_country": "String", "merchant_registered_at": "Nullable(Date)",
    "card_id": "String", "customer_id": "String", "beneficiary_name": "String",
    "channel": "String", "ip": "String", "device_id": "String",
    "geo_lat": "Nullable(Float64)", "geo_lon": "Nullable(Float64)", "features": "String",
    "model_name": "String", "model_version": "String", "score": "Float64",
    "threshold": "Float64", "decision": "String", "shadow_versions": "Array(String)",
    "shadow_scores": "Array(Float64)", "event_ms": "Int64",
}
"""How the engine reads each field of a :class:`ScoredTransaction` array (``event_time``
is read and unused: ``event_ms`` carries the same instant)."""
_JSON_STRUCTURE = ", ".join(f"{f} {_JSON_TYPES[f]}" for f in ScoredTransaction.__struct_fields__)
INSERT_SCORED_JSON = f"""INSERT INTO {{db}}.scored_transactions (event_id, txn_id, event_time,
    amount_minor, amount_cents, currency, mcc, merchant_id, merchant_country,
    merchant_registered_at, card_id, customer_id, beneficiary_name, channel, ip, device_id,
    geo_lat, geo_lon, features_num, features_str, model_name, model_version, score, threshold,
    decision, shadow_versions, shadow_scores, ingest_time, source)
SELECT event_id, txn_id, fromUnixTimestamp64Milli(event_ms, 'UTC'), amount_minor,
    amount_minor % 100, currency, mcc, merchant_id, merchant_country, merchant_registered_at,
    card_id, customer_id, beneficiary_name, channel, ip, device_id, geo_lat, geo_lon,
    CAST(arrayMap(kv -> (kv.1, multiIf(kv.2 = 'true', 1., kv.2 = 'false', 0., toFloat64(kv.2))),
        arrayFilter(kv -> kv.2 != 'null' AND NOT startsWith(kv.2, '"'),
            JSONExtractKeysAndValuesRaw(features))), 'Map(String, Float64)'),
    CAST(arrayMap(kv -> (kv.1, JSONExtractString(kv.2)),
        arrayFilter(kv -> startsWith(kv.2, '"'), JSONExtractKeysAndValuesRaw(features))),
        'Map(String, String)'),
    model_name, model_version, score, threshold, decision, shadow_versions, shadow_scores,
    fromUnixTimestamp64Milli({{ingest_ms:Int64}}, 'UTC'), {{source:String}}
FROM file('{{path}}', 'JSONCompactEachRow', '{_JSON_STRUCTURE}')
SETTINGS input_format_json_read_objects_as_strings = 1,
    input_format_allow_errors_num = 0, input_format_allow_errors_ratio = 0,
    input_format_parallel_parsing = 0, optimize_on_insert = 0"""
"""Validated events (msgspec JSON arrays of :class:`ScoredTransaction`, one per line) into
``scored_transactions``, converted by ClickHouse: ``event_ms`` to ``event_time``, the cents,
and the mixed ``features`` object split into its numeric (bools as 1/0) and string maps.
Floats round-trip exactly (shortest repr out, correctly rounded parse in); amounts are
integers throughout.

``optimize_on_insert = 0`` skips the ReplacingMergeTree collapse inside the inserted block
(it cost more than half of the engine's time per row): an event_id repeated *within* one
batch is collapsed by ``FINAL`` and background merges, exactly like one repeated across
batches -- readers use ``FINAL`` for both already. ``input_format_parallel_parsing = 0``:
one parsing thread costs a third less CPU than two on a 5,000-row block."""

_STRUCT_FIELDS = ScoredTransaction.__struct_fields__
_STORED_AS_IS = (
    "event_id", "txn_id", "amount_minor", "currency", "mcc", "merchant_id", "merchant_country",
    "merchant_registered_at", "card_id", "customer_id", "beneficiary_name", "channel", "ip",
    "device_id", "geo_lat", "geo_lon", "model_name", "model_version", "score", "threshold",
    "decision", "shadow_versions", "shadow_scores",
)


def _split_features(
    features: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, float]], list[dict[str, str]]]:
    nums_col: list[dict[str, float]] = []
    strs_col: list[dict[str, str]] = []
    for feats in features:
        nums: dict[str, float] = {}
        strs: dict[str, str] = {}
        for k, v in feats.items():
            if v.__class__ is str:
                strs[k] = v
            elif v is not None:
                nums[k] = float(v)  # bools become 1.0 / 0.0
        nums_col.append(nums)
        strs_col.append(strs)
    return nums_col, strs_col


def scored_columns(events: Sequence[ScoredTransaction], source: str) -> dict[str, Sequence[Any]]:
    """Column lists for ``scored_transactions`` from validated events.

    One transposition of the event tuples (C speed) instead of a loop per column;
    times go to ClickHouse as integer milliseconds (no datetime conversion).
    """
    n = len(events)
    if n == 0:
        return {}
    rows = map(msgspec.structs.astuple, events)
    by_field = dict(zip(_STRUCT_FIELDS, zip(*rows, strict=True), strict=True))
    nums, strs = _split_features(by_field["features"])
    now_ms = epoch_ms(dt.datetime.now(UTC))
    cols: dict[str, Sequence[Any]] = {name: by_field[name] for name in _STORED_AS_IS}
    cols["event_time"] = by_field["event_ms"]
    cols["amount_cents"] = [m % 100 for m in by_field["amount_minor"]]
    cols["features_num"] = nums
    cols["features_str"] = strs
    cols["ingest_time"] = [now_ms] * n
    cols["source"] = [source] * n
    return cols


def open_store(
    dsn: str, database: str = "driftwatch", *, init: bool = False, must_exist: bool = False
) -> Store:
    """Open the store named by ``dsn``; with ``init=True`` apply migrations first.

    A database named in an ``http(s)://`` DSN overrides ``database``. With
    ``must_exist=True`` (the read-only commands) nothing is created: a missing embedded
    data path or database raises :class:`StoreError` naming what exists instead.
    """
    if init and must_exist:
        raise ValueError("open_store: init and must_exist exclude each other")
    cfg = parse_dsn(dsn)
    store = Store(connect(cfg, create=not must_exist), cfg.database or database)
    if must_exist:
        store.require_database()
    if init:
        store.init()
    return store


def wait_until_available(store: Store, timeout_s: float = 30.0) -> None:
    """Block until the store answers, or raise StoreError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while not store.ping():
        if time.monotonic() > deadline:
            raise StoreError(f"ClickHouse did not answer within {timeout_s:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
