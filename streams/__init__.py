"""faust-streaming app modules of driftwatch: thin wiring of library pieces to topics.

``streams.app`` builds the app (settings from the environment, a
:class:`driftwatch.streaming.runtime.WorkerRuntime`); ``streams.main`` imports it with
the modules that add:

- :mod:`streams.ingest` — the batch consumer of ``transactions.scored`` (validate,
  insert, rule layer, dead letters, rule hits), a service of the app;
- :mod:`streams.labels` — the label agent over ``transactions.labels``;
- :mod:`streams.monitor` — the monitors as a leader-only timer, and alert delivery;
- :mod:`streams.web` — ``/metrics`` and ``/healthz`` on the worker's web port.

Run with ``driftwatch worker`` (or ``faust -A streams.main worker``).
"""
