"""Pages on the worker's web port: Prometheus ``/metrics`` and ``/healthz``."""

from __future__ import annotations

from typing import Any

from driftwatch.streaming.metrics import CONTENT_TYPE
from streams.app import app, runtime


@app.page("/metrics")
async def metrics(web: Any, request: Any) -> Any:
    """Prometheus text exposition of the worker's metrics."""
    return web.bytes(runtime.metrics_text(), content_type=CONTENT_TYPE)


@app.page("/healthz")
async def healthz(web: Any, request: Any) -> Any:
    """``ok``/``degraded`` (200) or ``down`` (503), with store and consumer state."""
    status, body = await runtime.health()
    return web.json(body, status=status)
