"""Ingest of ``transactions.scored``: validate, insert, rule layer, dead letters.

The hot topic is read in batches by :class:`driftwatch.streaming.consumer.BatchConsumer`
(aiokafka ``getmany``) running as a service of the app, not by a per-event faust
agent: a faust agent tops out near 10k events/s here, the target is 20k per worker.

The rule layer is not a second consumer of the topic: it is an event stage of the same
pipeline and runs on each batch right after the insert — the same code path as
``driftwatch replay`` — and its hits go to ``transactions.rule_hits``. It still never
uses the model's score to decide a hit.
"""

from __future__ import annotations

from driftwatch.streaming.service import IngestService
from streams.app import app, runtime

ingest = IngestService(runtime)
app.add_dependency(ingest)
