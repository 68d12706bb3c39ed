"""The driftwatch faust app object: settings from the environment, logic from the library.

The modules that add agents, services, timers and pages import ``app`` from here;
:mod:`streams.main` imports them all (``driftwatch worker`` loads ``streams.main:app``),
so no module imports another that imports it back.
"""

from __future__ import annotations

from driftwatch.settings import Settings
from driftwatch.streaming.app import make_app
from driftwatch.streaming.runtime import WorkerRuntime

settings = Settings.load()
app = make_app(settings)
runtime = WorkerRuntime(settings)
runtime.is_leader = app.is_leader

__all__ = ["app", "runtime", "settings"]
