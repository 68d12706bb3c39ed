"""Builds a ready pipeline from settings: the store, the stages and the alert sinks.

The replay command, the streaming workers and the demo all assemble their pipeline
here, which is what makes replay and streaming give the same results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftwatch.alerts.sinks import AlertSink, JsonlSink
from driftwatch.pipeline import Pipeline
from driftwatch.settings import Settings
from driftwatch.store.client import Store, open_store
from driftwatch.timeguard import EventTimeGuard

if TYPE_CHECKING:
    from driftwatch.rules.stage import RuleStage


def store_from(settings: Settings, *, init: bool = True) -> Store:
    """Open (and by default initialise) the configured store."""
    return open_store(settings.store_dsn, settings.database, init=init)


def read_store_from(settings: Settings) -> Store:
    """Open the configured store for reading: never creates a data path or a database
    (a typo in ``--store`` or ``--database`` is an error naming what exists)."""
    return open_store(settings.store_dsn, settings.database, must_exist=True)


def build_pipeline(
    settings: Settings,
    store: Store,
    *,
    alerts_out: str | Path | None = None,
    extra_sinks: Sequence[AlertSink] = (),
    workers: bool = False,
) -> Pipeline:
    """The processing core with every stage that is configured.

    ``workers``: the pipeline of a streaming worker, one of a consumer group sharing
    the scored topic's partitions (keyed by card): the rules not keyed by the card are
    then evaluated store-side by the leader (``rule_placement``, see
    :mod:`driftwatch.rules.storeside`); a replay or a single process keeps every rule
    in-stream.
    """
    sinks: list[AlertSink] = list(extra_sinks)
    if alerts_out is not None:
        sinks.append(JsonlSink(alerts_out))
    sinks.extend(delivery_sinks(settings, store))
    from driftwatch.alerts.lifecycle import StoreAlertBook
    from driftwatch.monitors.monitor import Monitor
    from driftwatch.rules.stage import rule_stage_from_settings

    book = StoreAlertBook(
        store,
        interval_s=settings.monitor_interval_s,
        resolve_after=settings.alert_resolve_after,
        rule_quiet_s=settings.rule_alert_quiet_s,
        runbook_base_url=settings.runbook_base_url,
        incident_gap_s=settings.incident_gap_s,
    )
    rule_stages: list[Any] = rule_stage_from_settings(settings, store)
    clock_stages: list[Any] = []
    if workers:
        rule_stages, clock_stages = place_rules(settings, store, rule_stages)
    if not monitors_off(settings):
        clock_stages.append(Monitor(store, settings, on_pass=book.passed,
                                    max_catchup=settings.monitor_max_catchup))
    return Pipeline(
        store,
        event_stages=rule_stages,
        clock_stages=clock_stages,
        alert_book=book,
        sinks=sinks,
        lateness=dt.timedelta(seconds=settings.watermark_delay_s),
        time_guard=EventTimeGuard(settings.max_future_s, settings.max_event_age_s),
    )


def place_rules(
    settings: Settings, store: Store, stages: Sequence[RuleStage]
) -> tuple[list[Any], list[Any]]:
    """``(event_stages, clock_stages)`` of a worker's rules: the in-stream rule stage
    with the rules keyed by the card, and the store-side stage (run by the leader at
    each monitor tick, before the monitors) with the others; ``rule_placement =
    stream`` keeps them all in-stream."""
    from driftwatch.rules.stage import RuleStage
    from driftwatch.rules.storeside import StoreSideRules, split_rules

    if not stages:
        return [], []
    in_stream, store_side = split_rules(stages[0].ruleset, settings.rule_placement)
    if not store_side.rules:
        return list(stages), []
    event_stages = [RuleStage.from_settings(in_stream, store, settings)] if in_stream.rules else []
    return event_stages, [StoreSideRules.from_settings(store_side, store, settings)]


def monitors_off(settings: Settings) -> bool:
    """True when ``monitor_detectors`` is ``none``: no monitor stage at all (a replay that
    only loads and runs the rules, at ingest speed).

    >>> monitors_off(Settings.load(env={"DRIFTWATCH_MONITOR_DETECTORS": "none"}, config_file=None))
    True
    """
    return settings.list_setting("monitor_detectors") == ["none"]


def delivery_sinks(settings: Settings, store: Store | None) -> list[AlertSink]:
    """The Alertmanager and webhook sinks configured by their URLs (none when empty).

    They are outboxes on ``store``: a worker must call ``tick()`` on each every few
    seconds (retries and Alertmanager re-posts); see :mod:`driftwatch.alerts.outbox`.
    """
    from driftwatch.alerts.alertmanager import AlertmanagerSink
    from driftwatch.alerts.webhook import WebhookSink

    sinks: list[AlertSink] = []
    if settings.alertmanager_url:
        sinks.append(AlertmanagerSink.from_settings(settings, store))
    if settings.webhook_url:
        sinks.append(WebhookSink.from_settings(settings, store))
    return sinks
