"""The worker's entry point: the app with every agent, service, timer and page.

``driftwatch worker`` exports its effective settings as ``DRIFTWATCH_*`` variables and
loads ``streams.main:app`` (the ``worker_app`` setting); ``faust -A streams.main worker``
works the same way.
"""

from __future__ import annotations

from streams import ingest, labels, monitor, web
from streams.app import app, runtime, settings

__all__ = ["app", "ingest", "labels", "monitor", "runtime", "settings", "web"]
