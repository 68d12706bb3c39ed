"""Read-only SQL for analysts: one query, a row limit, a time limit, ClickHouse's
``readonly`` mode.

The analyst endpoint of a worker (``POST /sql``), ``driftwatch sql`` and ``alerts show``
run arbitrary analyst SQL through :func:`run_read_only`. Three guards, each enough on
its own for writes, together for resources:

1. the text is one statement: no ``;`` and no ``SETTINGS`` clause of its own, at most
   :data:`MAX_SQL_CHARS` characters;
2. a ``SELECT``/``WITH`` query is wrapped as ``SELECT * FROM (<query>) LIMIT n`` and
   every query runs with a query-level ``SETTINGS readonly = 1, max_execution_time =
   s``: ClickHouse refuses any write, DDL, setting change or table function (``file``,
   ``url``, ``remote``) inside it; ``SHOW``/``DESCRIBE``/``EXPLAIN`` run as they are;
3. the settings are a clause of the query, not of the session: on the embedded engine
   (chdb) session settings would stick to the worker's own connection.

On the embedded engine, analyst queries share the engine with the worker's inserts
(chdb runs one query at a time): keep the time limit short; heavy analytics belong on a
ClickHouse server with a read-only user (see ``deploy/README.md``).

>>> check_sql("SELECT 1")
'SELECT 1'
>>> check_sql("DROP TABLE t")
Traceback (most recent call last):
...
driftwatch.store.readsql.ReadOnlySqlError: only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN \
queries are allowed, got 'DROP'
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftwatch.errors import StoreError
from driftwatch.store.client import Store

MAX_SQL_CHARS = 20_000
_FIRST_WORD = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", re.S)
_WRAPPED = frozenset({"SELECT", "WITH"})
_AS_IS = frozenset({"SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})


class ReadOnlySqlError(StoreError):
    """Analyst SQL that is refused before it reaches ClickHouse (not one read query)."""


@dataclass(frozen=True)
class ReadResult:
    """The rows of one read-only query.

    Attributes
    ----------
    columns, types : tuple of str
        Column names and ClickHouse type names.
    rows : list of tuple
        At most ``max_rows`` rows.
    truncated : bool
        True when the query had more rows than were returned.
    seconds : float
        Wall time of the query.
    """

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool
    seconds: float


def check_sql(sql: str) -> str:
    """Return ``sql`` stripped (and without a trailing ``;``) if it may run, else raise
    :class:`ReadOnlySqlError` with the reason."""
    return _statement(sql)[0]


def _statement(sql: str) -> tuple[str, str]:
    """The checked text and its first keyword (upper case)."""
    text = sql.strip()
    if text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ReadOnlySqlError("empty query")
    if len(text) > MAX_SQL_CHARS:
        raise ReadOnlySqlError(f"query longer than {MAX_SQL_CHARS} characters")
    if ";" in text:
        raise ReadOnlySqlError("one statement only (no ';')")
    if re.search(r"\bSETTINGS\b", text, re.I):
        raise ReadOnlySqlError("a SETTINGS clause is not allowed (limits are set by driftwatch)")
    m = _FIRST_WORD.match(text)
    word = m.group(1).upper() if m else ""
    if word not in _WRAPPED | _AS_IS:
        raise ReadOnlySqlError(
            f"only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN queries are allowed, got {word!r}"
        )
    return text, word


def run_read_only(
    store: Store,
    sql: str,
    *,
    max_rows: int = 10_000,
    max_seconds: float = 10.0,
    parameters: Mapping[str, Any] | None = None,
) -> ReadResult:
    """Run one analyst query read-only with a row and a time limit.

    Parameters
    ----------
    store : Store
        Any store; ``{db}`` in the query stands for its database (``{db}.alerts``),
        other databases are named as they are.
    sql : str
        One ``SELECT``/``WITH``/``SHOW``/``DESCRIBE``/``EXPLAIN`` statement.
    max_rows : int
        Rows returned at most (>= 1); ``truncated`` tells whether more existed.
    max_seconds : float
        ClickHouse's ``max_execution_time`` for the query (> 0).
    parameters : mapping, optional
        Server-side parameters for ``{name:Type}`` placeholders.

    Raises
    ------
    ReadOnlySqlError
        The text is refused before it runs (see :func:`check_sql`).
    StoreError
        ClickHouse refused or failed the query (its first line is the message).
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    text, word = _statement(sql)
    text = store.sql(text)
    limits = f"readonly = 1, max_execution_time = {float(max_seconds):g}"
    if word in _WRAPPED:
        text = f"SELECT * FROM (\n{text}\n) LIMIT {int(max_rows) + 1} SETTINGS {limits}"
    else:
        text = f"{text}\nSETTINGS {limits}"
    started = time.monotonic()
    try:
        with store.lock:
            result = store.client.query(text, parameters=dict(parameters or {}))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(first[:500]) from exc
    rows = list(result.result_rows)
    truncated = len(rows) > max_rows
    return ReadResult(
        columns=tuple(result.column_names),
        types=tuple(t.name for t in result.column_types),
        rows=rows[:max_rows],
        truncated=truncated,
        seconds=time.monotonic() - started,
    )
