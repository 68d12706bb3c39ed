"""The group watermark waits for partitions that never reported (issue 23): at start-up
or in a rebalance a partition whose owner has not fetched it yet has no progress row,
and the watermark must not run past events it is about to deliver -- but only for
``progress_idle_s`` from when the leader first saw it missing (a partition with no
data at all would otherwise hold it forever)."""

from __future__ import annotations

from typing import Any

from driftwatch.settings import Settings
from driftwatch.streaming.monitoring import MonitorDuties


class _Metadata:
    """The partitions of the scored topic, as the aiokafka consumer's metadata has them."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}


class _Consumer:
    consumer = _Metadata()


def _leader(consumer: Any) -> MonitorDuties:
    duties = MonitorDuties()
    duties.settings = Settings.load(env={}, config_file=None).replace(progress_idle_s=30.0)
    duties.consumer = consumer
    duties._missing_since = {}
    return duties


def test_a_partition_without_a_row_holds_the_watermark_for_idle_s_at_most() -> None:
    leader = _leader(_Consumer())
    assert leader._unreported({0, 1, 2, 3}, now=100.0) is False
    assert leader._unreported({0, 1}, now=100.0) is True       # 2 and 3 missing since 100
    assert leader._unreported({0, 1, 2}, now=120.0) is True    # 3 still, for 20 s
    assert leader._unreported({0, 1, 2}, now=130.0) is False   # 3 missing 30 s: let go
    assert leader._unreported({0, 1, 2, 3}, now=131.0) is False
    assert leader._unreported({0, 1, 2}, now=140.0) is True    # missing again: a new clock


def test_without_topic_metadata_nothing_is_missing() -> None:
    assert _leader(None)._unreported(set(), now=0.0) is False
