"""Pages on the worker's web port: Prometheus ``/metrics``, ``/healthz``, and the analyst
API (``/alerts``, ``/alerts/{fingerprint}``, ``/segments``, ``POST /sql``; bearer token
``DRIFTWATCH_API_TOKEN``, not served when it is empty): the worker holds the embedded
store, so ``driftwatch sql``, ``segments`` and ``alerts`` reach it through here."""

from __future__ import annotations

import logging
from typing import Any

from driftwatch.api.app import mount_analyst_api
from driftwatch.streaming.metrics import CONTENT_TYPE
from streams.app import app, runtime, settings


@app.page("/metrics")
async def metrics(web: Any, request: Any) -> Any:
    """Prometheus text exposition of the worker's metrics."""
    return web.bytes(runtime.metrics_text(), content_type=CONTENT_TYPE)


@app.page("/healthz")
async def healthz(web: Any, request: Any) -> Any:
    """``ok``/``degraded`` (200) or ``down`` (503), with store and consumer state."""
    status, body = await runtime.health()
    return web.json(body, status=status)


if not mount_analyst_api(app.web.web_app, runtime.store, settings):
    logging.getLogger(__name__).warning(
        "analyst API not served on the worker's web port: DRIFTWATCH_API_TOKEN is empty"
    )
