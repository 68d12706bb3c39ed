"""The Kafka side of driftwatch: the worker runtime behind the faust apps in ``streams/``.

The faust app modules in ``streams/`` only wire these pieces to topics, timers and web
pages; everything with logic lives here:

- :mod:`~driftwatch.streaming.kafka` — client options (TLS/SASL) and faust settings;
- :mod:`~driftwatch.streaming.consumer` — the batch consumer of ``transactions.scored``
  (commit after store, pause and retry while ClickHouse is down);
- :mod:`~driftwatch.streaming.runtime` — the processing core, metrics and health of one
  worker process;
- :mod:`~driftwatch.streaming.topics` — topic creation;
- :mod:`~driftwatch.streaming.testbroker` — the tansu test/demo broker;
- :mod:`~driftwatch.streaming.command` — ``driftwatch worker`` and ``driftwatch topics``.

Nothing here imports ``streams/``.
"""
