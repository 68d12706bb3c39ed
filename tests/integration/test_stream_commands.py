"""``driftwatch topics create`` against the real (tansu) broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.streaming.testbroker import Broker

pytestmark = pytest.mark.integration


async def _partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        return {t: len(consumer.partitions_for_topic(t) or ()) for t in topics}
    finally:
        await consumer.stop()


def test_topics_create_makes_the_four_topics_once(kafka_broker: Broker) -> None:
    uid = uuid.uuid4().hex[:8]
    env = {
        "DRIFTWATCH_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "DRIFTWATCH_TOPIC_SCORED": f"{uid}.scored",
        "DRIFTWATCH_TOPIC_LABELS": f"{uid}.labels",
        "DRIFTWATCH_TOPIC_DEADLETTER": f"{uid}.deadletter",
        "DRIFTWATCH_TOPIC_RULE_HITS": f"{uid}.rule_hits",
        "DRIFTWATCH_LOG_FORMAT": "text",
    }
    names = [env[k] for k in sorted(env) if k.startswith("DRIFTWATCH_TOPIC_")]
    runner = CliRunner()
    first = runner.invoke(main, ["topics", "create", "--partitions", "6"], env=env)
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == 4
    assert asyncio.run(_partitions(kafka_broker.bootstrap, names)) == dict.fromkeys(names, 6)
    again = runner.invoke(main, ["topics", "create"], env=env)
    assert again.exit_code == 0, again.output
    assert again.output.count("exists") == 4


def test_topics_create_reports_an_unreachable_cluster() -> None:
    from driftwatch.streaming.testbroker import free_port

    env = {"DRIFTWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
           "DRIFTWATCH_LOG_FORMAT": "text"}
    result = CliRunner().invoke(main, ["topics", "create"], env=env)
    assert result.exit_code == 2
    assert "error: Kafka at 127.0.0.1" in result.output
