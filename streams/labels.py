"""The label agent: delayed ground-truth labels from ``transactions.labels``.

Raw bytes in batches; each batch is stored (retrying while ClickHouse is down) before
its events are acknowledged, so faust never commits an offset past unwritten labels.
"""

from __future__ import annotations

from typing import Any

from streams.app import app, runtime, settings

labels_topic = app.topic(
    settings.topic_labels, value_type=bytes, value_serializer="raw", key_serializer="raw"
)


@app.agent(labels_topic)
async def labels(stream: Any) -> None:
    """Store label batches; acknowledge only what is stored."""
    async for events in stream.noack_take(settings.batch_size, within=1.0):
        await runtime.process_labels([e.value or b"" for e in events])
        for event in events:
            await stream.ack(event)
