"""Fixtures of the integration tests: real services on free local ports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftwatch.settings import Settings
from driftwatch.store.client import Store
from driftwatch.streaming.testbroker import Broker
from tests.integration.alertmanager_proc import AlertmanagerProcess, WebhookReceiver, am_test_config


# --- Alertmanager ------------------------------------------------------------------------
@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A local HTTP server that records every JSON body POSTed to it."""
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def alertmanager(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> Iterator[AlertmanagerProcess]:
    """Debian's Alertmanager with the deploy routes and inhibition, receivers pointed at
    ``webhook_receiver`` and group timings of one second."""
    am = AlertmanagerProcess(tmp_path / "alertmanager", am_test_config(webhook_receiver.url))
    am.start()
    try:
        yield am
    finally:
        am.stop()


# --- Kafka (tansu) -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One tansu broker (in-memory) for the session on a free port; tests isolate
    themselves by topic names and consumer groups (see ``stream_settings``)."""
    from driftwatch.streaming.testbroker import launch

    broker = launch(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def stream_settings(kafka_broker: Broker, store: Store, chdb_dsn: str) -> Settings:
    """Settings of one streaming test: its own four topics (4 partitions each), consumer
    group and database; short session timeout (group joins wait about half of it)."""
    uid = uuid.uuid4().hex[:8]
    settings = Settings.load(env={}, config_file=None).replace(
        kafka_bootstrap=kafka_broker.bootstrap,
        consumer_group=f"g-{uid}",
        topic_scored=f"{uid}.scored",
        topic_labels=f"{uid}.labels",
        topic_deadletter=f"{uid}.deadletter",
        topic_rule_hits=f"{uid}.rule_hits",
        topic_partitions=4,
        kafka_session_timeout_s=6.0,
        store_dsn=chdb_dsn,
        database=store.database,
        batch_size=2000,
        store_retry_max_s=1.0,
        worker_tick_s=1.0,
        worker_stop_timeout_s=15.0,
        log_format="text",
        http_rate_per_s=0.0,  # tests poll the worker's web port many times a second
        # every rule in-stream: these tests compare a worker with a replay, tick by hand
        # (the store-side path: test_rules_storeside.py and bench/scaleout.py)
        rule_placement="stream",
    )
    for name in (settings.topic_scored, settings.topic_labels,
                 settings.topic_deadletter, settings.topic_rule_hits):
        kafka_broker.create_topic(name, partitions=4)
    return settings
