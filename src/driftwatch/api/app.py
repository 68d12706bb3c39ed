"""The read-only HTTP API (aiohttp): ``/healthz``, ``/metrics``, ``/alerts``,
``/alerts/{fingerprint}``, ``/segments``, ``/openapi.json`` and ``POST /sql`` (one
read-only analyst query, :mod:`driftwatch.store.readsql`).

Security, in the order a request meets it:

1. every request is logged once (client address, method, route, path, parameter
   *names*, status, duration) — never header values, so no token reaches a log;
2. a client (peer address) over its rate limit gets a 429 with ``Retry-After``
   (:mod:`driftwatch.httpguard`; ``http_rate_*`` settings), before its token is checked,
   so the limit also slows down token guessing (``/healthz`` counts too);
3. every path except ``/healthz`` needs ``Authorization: Bearer <api_token>``, compared
   in constant time; a missing or wrong token is a 401 with no detail;
4. only ``GET`` is routed, and ``POST`` for ``/sql`` (anything else is a 405); unknown
   or malformed parameters are a 422 naming the parameter (:mod:`driftwatch.api.params`);
5. values reach ClickHouse only as server-side parameters (:mod:`driftwatch.api.queries`);
   a ClickHouse failure is a 503 without the error text.

Blocking ClickHouse calls run in a thread (the chdb client is synchronous).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST as METRICS_CONTENT_TYPE
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from driftwatch.api import queries
from driftwatch.api.openapi import spec
from driftwatch.api.params import (
    ALERT_PARAMS,
    FINGERPRINT,
    SEGMENT_PARAMS,
    SHOW_PARAMS,
    ParamError,
    parse,
)
from driftwatch.errors import ConfigError, StoreError
from driftwatch.httpguard import guards
from driftwatch.settings import Settings
from driftwatch.store.client import Store

log = logging.getLogger("driftwatch.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthz"})

class ApiMetrics:
    """Request metrics of one app (its own registry; ``/metrics`` also shows the global
    registry, which holds the alert-delivery metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "driftwatch_api_requests", "API requests by route and status",
            ["route", "status"], registry=self.registry,
        )
        self.seconds = Histogram(
            "driftwatch_api_request_seconds", "API request duration by route", ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Exposition text of this app's and the global registry."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)


STORE_KEY = web.AppKey("store", Store)
TOKEN_KEY = web.AppKey("token", bytes)
METRICS_KEY = web.AppKey("metrics", ApiMetrics)
SETTINGS_KEY = web.AppKey("settings", Settings)


def _error(status: int, message: str, **extra: str) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)


def _observe(request: web.Request, route: str, status: int, seconds: float) -> None:
    metrics = request.app[METRICS_KEY]
    metrics.requests.labels(route, str(status)).inc()
    metrics.seconds.labels(route).observe(seconds)


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 unless ``Authorization: Bearer <token>`` matches (constant-time)."""
    if request.path in OPEN_PATHS:
        return await handler(request)
    token = request.app[TOKEN_KEY]
    if token:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return _unauthorized("missing bearer token")
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), token):
            return _unauthorized("invalid token")
    return await handler(request)


def _unauthorized(message: str) -> web.Response:
    resp = _error(401, message)
    resp.headers["WWW-Authenticate"] = 'Bearer realm="driftwatch"'
    return resp


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """422 for bad parameters, 503 for ClickHouse failures, JSON for the rest."""
    try:
        return await handler(request)
    except ParamError as exc:
        return _error(422, str(exc), parameter=exc.name)
    except StoreError as exc:
        log.warning("store error serving %s: %s", request.path, exc)
        return _error(503, "store unavailable")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _error(exc.status, exc.reason)
        raise


def _params(request: web.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query.items():
        out.setdefault(key, []).append(value)
    return out


async def healthz(request: web.Request) -> web.Response:
    """Liveness plus whether ClickHouse answers."""
    ok = await asyncio.to_thread(request.app[STORE_KEY].ping)
    return web.json_response(
        {"status": "ok" if ok else "degraded", "clickhouse": ok}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


async def list_alerts(request: web.Request) -> web.Response:
    """Current alert states."""
    p = parse(ALERT_PARAMS, _params(request))
    rows = await asyncio.to_thread(queries.alerts, request.app[STORE_KEY], p)
    return web.json_response({"count": len(rows), "alerts": rows}, dumps=_dumps)


async def show_alert(request: web.Request) -> web.Response:
    """One alert with history, deliveries and evidence rows."""
    fp = request.match_info["fingerprint"]
    if not FINGERPRINT.fullmatch(fp):
        raise ParamError("fingerprint", "must be 16 lowercase hex digits")
    p = parse(SHOW_PARAMS, _params(request))
    detail = await asyncio.to_thread(
        queries.alert_detail, request.app[STORE_KEY], fp, p["evidence_limit"]
    )
    if detail is None:
        return _error(404, "no such alert")
    return web.json_response(detail, dumps=_dumps)


async def list_segments(request: web.Request) -> web.Response:
    """Per-segment breakdown."""
    p = parse(SEGMENT_PARAMS, _params(request))
    store = request.app[STORE_KEY]

    def run() -> dict[str, Any]:
        since = queries.resolve_time(store, p["since"])
        until = queries.resolve_time(store, p["until"])
        if since is not None and until is not None and since >= until:
            raise ParamError("until", "must be after since")
        built = queries.segment_sql(p, since, until)
        rows = queries.records(store.query_columns(built.sql, built.parameters))
        return {
            "count": len(rows),
            "since": queries.clean(since),
            "until": queries.clean(until),
            "segments": rows,
        }

    return web.json_response(await asyncio.to_thread(run), dumps=_dumps)


async def run_sql(request: web.Request) -> web.Response:
    """``POST /sql`` with ``{"sql": "...", "max_rows": n}``: one read-only query.

    422 for a refused text (not one read query) or a bad body, 400 with ClickHouse's
    first error line for a query ClickHouse refuses (syntax, readonly, time limit).
    """
    from driftwatch.store.readsql import ReadOnlySqlError, run_read_only

    settings = request.app[SETTINGS_KEY]
    try:
        body = await request.json()
    except ValueError:
        raise ParamError("body", 'expected JSON {"sql": "SELECT ..."}') from None
    if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
        raise ParamError("sql", 'expected JSON {"sql": "SELECT ..."}')
    max_rows = body.get("max_rows", settings.sql_max_rows)
    if not isinstance(max_rows, int) or not 1 <= max_rows <= settings.sql_max_rows:
        raise ParamError("max_rows", f"must be an integer in 1..{settings.sql_max_rows}")
    try:
        result = await asyncio.to_thread(
            run_read_only, request.app[STORE_KEY], body["sql"],
            max_rows=max_rows, max_seconds=settings.sql_max_seconds,
        )
    except ReadOnlySqlError as exc:
        return _error(422, str(exc), parameter="sql")
    except StoreError as exc:
        return _error(400, str(exc))
    return web.json_response({
        "columns": list(result.columns), "types": list(result.types),
        "rows": [[queries.clean(v) for v in row] for row in result.rows],
        "truncated": result.truncated, "seconds": round(result.seconds, 3),
    }, dumps=_dumps)


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI description."""
    return web.json_response(spec(), dumps=_dumps)


def create_app(
    store: Store,
    settings: Settings,
    *,
    insecure_no_auth: bool = False,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The API application over ``store``.

    Parameters
    ----------
    store : Store
        An initialised store.
    settings : Settings
        ``api_token`` is the bearer token every path but ``/healthz`` requires;
        ``http_rate_*`` the per-client rate limit.
    insecure_no_auth : bool
        Serve without a token. Refused unless given explicitly: without it an empty
        ``api_token`` raises :class:`~driftwatch.errors.ConfigError`.
    registry : CollectorRegistry, optional
        Registry for the request metrics (default: a new one per app).
    """
    if not settings.api_token and not insecure_no_auth:
        raise ConfigError(
            "api_token is empty: set DRIFTWATCH_API_TOKEN (or pass --insecure-no-auth to"
            " serve without authentication)"
        )
    app = web.Application(middlewares=[*guards(settings, log, _observe), require_token, errors],
                          client_max_size=64 * 1024)
    app[STORE_KEY] = store
    app[TOKEN_KEY] = b"" if insecure_no_auth else settings.api_token.encode()
    app[METRICS_KEY] = ApiMetrics(registry)
    app[SETTINGS_KEY] = settings
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/alerts", list_alerts)
    app.router.add_get("/alerts/{fingerprint}", show_alert)
    app.router.add_get("/segments", list_segments)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_post("/sql", run_sql)
    return app


#: The analyst routes a worker serves on its own web port (beside /metrics, /healthz).
ANALYST_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/alerts", list_alerts),
    ("GET", "/alerts/{fingerprint}", show_alert),
    ("GET", "/segments", list_segments),
    ("POST", "/sql", run_sql),
)


def mount_analyst_api(app: web.Application, store: Store, settings: Settings) -> bool:
    """Serve the analyst routes (:data:`ANALYST_ROUTES`) on another aiohttp application,
    the worker's web port: the worker holds the embedded store, so analysts query it
    through the worker while it runs.

    Each route checks the bearer token (``api_token``) and maps errors as the API does;
    the application's own middlewares (the worker's rate limit and access log) run
    first. Nothing is mounted when ``api_token`` is empty (returns False): data is never
    served without a token.
    """
    if not settings.api_token:
        return False
    app[STORE_KEY] = store
    app[TOKEN_KEY] = settings.api_token.encode()
    app[SETTINGS_KEY] = settings

    def protected(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            return await require_token(request, lambda r: errors(r, handler))

        return run

    for method, path, handler in ANALYST_ROUTES:
        app.router.add_route(method, path, protected(handler))
    return True
