"""Topic creation for ``driftwatch topics create``: the four driftwatch topics.

Creating a topic that already exists is reported, not an error, so the command is safe
to run again (partition counts of existing topics are left alone).
"""

from __future__ import annotations

from dataclasses import dataclass

from driftwatch.errors import StreamError
from driftwatch.settings import Settings
from driftwatch.streaming.kafka import client_options

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create."""

    name: str
    partitions: int
    replication: int


def topic_specs(
    settings: Settings, partitions: int | None = None, replication: int | None = None
) -> list[TopicSpec]:
    """The driftwatch topics with the configured (or given) partitions and replication.

    >>> s = Settings.load(env={}, config_file=None)
    >>> [(t.name, t.partitions) for t in topic_specs(s, partitions=8)][:2]
    [('transactions.scored', 8), ('transactions.labels', 8)]
    """
    n = settings.topic_partitions if partitions is None else partitions
    r = settings.topic_replication if replication is None else replication
    if n < 1:
        raise ValueError(f"partitions must be >= 1, got {n}")
    if r < 1:
        raise ValueError(f"replication must be >= 1, got {r}")
    names = (
        settings.topic_scored,
        settings.topic_labels,
        settings.topic_deadletter,
        settings.topic_rule_hits,
    )
    return [TopicSpec(name, n, r) for name in names]


async def create_topics(settings: Settings, specs: list[TopicSpec]) -> dict[str, str]:
    """Create ``specs`` on the configured cluster; map each name to created/exists.

    Raises
    ------
    StreamError
        When the cluster cannot be reached or refuses a topic.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=15000)
    outcome: dict[str, str] = {}
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        todo = [s for s in specs if s.name not in existing]
        outcome = {s.name: "exists" for s in specs if s.name in existing}
        if todo:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, s.replication) for s in todo],
                timeout_ms=15000,
            )
            for topic, code, *rest in response.topic_errors:
                if code == 0:
                    outcome[topic] = "created"
                elif code == TOPIC_ALREADY_EXISTS:
                    outcome[topic] = "exists"
                else:
                    message = rest[0] if rest else ""
                    raise StreamError(f"creating topic {topic}: error {code} {message or ''}")
    except KafkaError as exc:
        raise StreamError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await admin.close()
    return {s.name: outcome.get(s.name, "unknown") for s in specs}
