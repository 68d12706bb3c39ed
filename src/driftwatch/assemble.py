"""Builds a ready pipeline from settings: the store, the stages and the alert sinks.

The replay command, the streaming workers and the demo all assemble their pipeline
here, which is what makes replay and streaming give the same results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from driftwatch.alerts.sinks import AlertSink, JsonlSink
from driftwatch.pipeline import Pipeline
from driftwatch.settings import Settings
from driftwatch.store.client import Store, open_store


def store_from(settings: Settings, *, init: bool = True) -> Store:
    """Open (and by default initialise) the configured store."""
    return open_store(settings.store_dsn, settings.database, init=init)


def build_pipeline(
    settings: Settings,
    store: Store,
    *,
    alerts_out: str | Path | None = None,
    extra_sinks: Sequence[AlertSink] = (),
) -> Pipeline:
    """The processing core with every stage that is configured."""
    sinks: list[AlertSink] = list(extra_sinks)
    if alerts_out is not None:
        sinks.append(JsonlSink(alerts_out))
    return Pipeline(
        store,
        sinks=sinks,
        lateness=dt.timedelta(seconds=settings.watermark_delay_s),
    )
