"""The driftwatch faust app: settings from the environment, logic from the library.

``driftwatch worker`` exports its effective settings as ``DRIFTWATCH_*`` variables and
imports this module; ``faust -A streams.app worker`` works the same way.
"""

from __future__ import annotations

from driftwatch.settings import Settings
from driftwatch.streaming.app import make_app
from driftwatch.streaming.runtime import WorkerRuntime

settings = Settings.load()
app = make_app(settings)
runtime = WorkerRuntime(settings)
runtime.is_leader = app.is_leader

# The modules below add agents, services, timers and pages to `app`.
from streams import ingest, labels, monitor, web  # noqa: E402

__all__ = ["app", "ingest", "labels", "monitor", "runtime", "settings", "web"]
