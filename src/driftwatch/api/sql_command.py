"""``driftwatch sql``: one read-only query, on the store or through a running worker.

The embedded store (chdb) is held by the worker that writes it: no other process can
open its data path while the worker runs. ``driftwatch sql`` therefore opens the store
itself when it is free and otherwise sends the query to the worker's web port
(``POST /sql`` with the API token), which runs it read-only with the same limits
(:mod:`driftwatch.store.readsql`). ``--url`` sends it to a given worker or API.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from driftwatch.errors import StoreBusyError, StoreError

if TYPE_CHECKING:
    from driftwatch.context import Ctx
    from driftwatch.settings import Settings


def _local(settings: Settings, sql: str, max_rows: int) -> dict[str, Any]:
    from driftwatch.api.queries import clean
    from driftwatch.assemble import read_store_from
    from driftwatch.store.readsql import run_read_only

    store = read_store_from(settings)
    r = run_read_only(store, sql, max_rows=max_rows, max_seconds=settings.sql_max_seconds)
    return {"columns": list(r.columns), "types": list(r.types),
            "rows": [[clean(v) for v in row] for row in r.rows], "truncated": r.truncated}


def worker_url(settings: Settings) -> str:
    """The base URL of the local worker's web port, from the settings."""
    host = settings.worker_web_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a listen address, not a bind
        host = "127.0.0.1"
    return f"http://{host}:{settings.worker_web_port}"


def remote(settings: Settings, base: str, path: str, *, body: dict[str, Any] | None = None,
           params: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body`` to) ``base + path`` with the API token; JSON back.

    Raises :class:`StoreError` with the server's own error message on any failure.
    """
    import httpx

    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    try:
        with httpx.Client(timeout=settings.sql_max_seconds + 10) as client:
            if body is not None:
                resp = client.post(base.rstrip("/") + path, json=body, headers=headers)
            else:
                resp = client.get(base.rstrip("/") + path, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise StoreError(
            f"no answer from {base} (a worker's web port: check DRIFTWATCH_WORKER_WEB_PORT"
            f" or pass --url): {exc}"
        ) from exc
    if resp.status_code == 401:
        raise StoreError(f"{base} refused the token: set DRIFTWATCH_API_TOKEN to the "
                         f"worker's API token")
    try:
        data = resp.json()
    except ValueError:
        raise StoreError(f"{base}{path}: HTTP {resp.status_code}, not JSON") from None
    if resp.status_code >= 400:
        message = data.get("error", "") if isinstance(data, dict) else ""
        raise StoreError(f"{base}{path}: HTTP {resp.status_code}: {message}")
    return data


@click.command("sql")
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--max-rows", type=int, default=None, help="Rows at most [sql_max_rows].")
@click.option("--url", default=None, help="Send the query to this worker or API "
              "(http://host:port) instead of opening the store.")
@click.pass_obj
def sql(c: Ctx, query: str, fmt: str, max_rows: int | None, url: str | None) -> None:
    """Run one read-only SQL query (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) and print the
    rows. When a worker holds the embedded store, the query goes through the worker's
    web port (token: DRIFTWATCH_API_TOKEN)."""
    from driftwatch.api.commands import emit

    settings = c.settings
    limit = max_rows or settings.sql_max_rows
    if url is None:
        try:
            data = _local(settings, query, limit)
        except StoreBusyError:
            url = worker_url(settings)
    if url is not None:
        data = remote(settings, url, "/sql", body={"sql": query, "max_rows": limit})
    columns = [str(name) for name in data["columns"]]
    rows = [dict(zip(columns, row, strict=True)) for row in data["rows"]]
    if fmt == "json":
        click.echo(json.dumps({"columns": columns, "types": data.get("types", []),
                               "rows": data["rows"], "truncated": data["truncated"]},
                              indent=2, default=str))
        return
    emit(rows, fmt, [(name, name, "") for name in columns])
    if data["truncated"] and fmt == "table":
        click.echo(f"(first {limit:,} rows; raise --max-rows or narrow the query)", err=True)
