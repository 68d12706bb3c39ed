"""What every driftwatch HTTP surface does to a request before its handler: a per-client
rate limit (429 with ``Retry-After``) and one access-log line.

Both the read-only API (:mod:`driftwatch.api.app`) and the worker's web port (faust's
aiohttp server, see :mod:`driftwatch.streaming.app`) install these aiohttp middlewares.

The limit is a token bucket per client address: ``burst`` requests at once, refilled at
``rate_per_s``. A client is the peer address of the connection (``request.remote``);
``X-Forwarded-For`` is not trusted, since any client can write it. At most
``max_clients`` buckets are kept (least recently seen dropped first), so a flood of
source addresses cannot grow memory without bound; a dropped client starts again with a
full bucket.

The access-log line names the client, method, route (the route pattern, not the raw
path, so that log volume does not grow with the parameters), status and duration. It
never contains a header value, so no token reaches a log.

>>> clock = iter([0.0, 0.0, 0.0, 0.5]).__next__
>>> limiter = RateLimiter(rate_per_s=2.0, burst=2, clock=clock)
>>> [limiter.wait_s("10.0.0.1") for _ in range(3)]
[0.0, 0.0, 0.5]
>>> limiter.wait_s("10.0.0.1")  # half a second later: one token back
0.0
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from driftwatch.errors import ConfigError
from driftwatch.settings import Settings

Observer = Callable[[web.Request, str, int, float], None]

UNKNOWN_CLIENT = "unknown"


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets per client: ``burst`` requests at once, ``rate_per_s`` sustained.

    Parameters
    ----------
    rate_per_s : float
        Tokens added per second (> 0).
    burst : int
        Bucket size: the most requests a client may make at once (>= 1).
    max_clients : int
        Most buckets kept (>= 1); the least recently seen client is dropped first.
    clock : callable, optional
        Monotonic seconds (default :func:`time.monotonic`).
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError(f"rate_per_s must be a finite number > 0, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def clients(self) -> int:
        """Number of buckets held."""
        return len(self._buckets)

    def wait_s(self, client: str) -> float:
        """Take a token for ``client``: 0.0 if it had one, else the seconds until it will
        (the request is refused and nothing is taken)."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[client] = bucket
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate_per_s)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_s


def limiter_from_settings(settings: Settings) -> RateLimiter | None:
    """The limiter the ``http_rate_*`` settings describe (None when the rate is 0)."""
    if settings.http_rate_per_s == 0:
        return None
    try:
        return RateLimiter(
            settings.http_rate_per_s, settings.http_rate_burst, settings.http_rate_clients
        )
    except ValueError as exc:
        raise ConfigError(f"http_rate_*: {exc}") from exc


def client_of(request: web.Request) -> str:
    """The client a request is counted against: its peer address."""
    return request.remote or UNKNOWN_CLIENT


def route_of(request: web.Request) -> str:
    """The route pattern that matched (``/alerts/{fingerprint}``), or ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def rate_limit(limiter: RateLimiter) -> Middleware:
    """Middleware: 429 with ``Retry-After`` (whole seconds, >= 1) once a client's bucket is
    empty; every path counts, ``/healthz`` too (it queries ClickHouse)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = limiter.wait_s(client_of(request))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            return web.json_response(
                {"error": "rate limit exceeded", "retry_after_s": retry_after},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        return await handler(request)

    return middleware


def access_log(logger: logging.Logger, observe: Observer | None = None) -> Middleware:
    """Middleware: one INFO line per request (client, method, route, status, duration in
    ms), never a header value; ``observe(request, route, status, seconds)`` is called
    too (e.g. for metrics)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            seconds = time.perf_counter() - started
            route = route_of(request)
            if observe is not None:
                observe(request, route, status, seconds)
            logger.info(
                "%s %s %d", request.method, route, status,
                extra={
                    "client": client_of(request),
                    "method": request.method,
                    "route": route,
                    "path": request.path[:200],
                    "params": sorted({k[:40] for k in request.query})[:20],
                    "status": status,
                    "ms": round(seconds * 1000, 1),
                },
            )

    return middleware


def guards(
    settings: Settings, logger: logging.Logger, observe: Observer | None = None
) -> list[Middleware]:
    """The middlewares of a driftwatch HTTP surface, outermost first: the access log, then
    the rate limit the ``http_rate_*`` settings describe (none when the rate is 0)."""
    out = [access_log(logger, observe)]
    limiter = limiter_from_settings(settings)
    if limiter is not None:
        out.append(rate_limit(limiter))
    return out
