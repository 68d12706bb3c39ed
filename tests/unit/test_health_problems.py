"""``/healthz`` problems by hand: each degraded state and its bound."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from driftwatch.settings import Settings
from driftwatch.streaming.runtime import WorkerRuntime

SETTINGS = Settings.load(env={}, config_file=None).replace(
    consumer_stall_s=60.0, monitor_behind_passes=10, outbox_backlog=100
)


def problems(consumer: dict[str, Any], *, behind: int = 0, pending: int = 0,
             consuming_for: float | None = 5.0) -> list[str]:
    fake = SimpleNamespace(
        settings=SETTINGS,
        monitor_behind=behind,
        outbox_pending=lambda: pending,
        _consuming_since=None if consuming_for is None else time.monotonic() - consuming_for,
    )
    return WorkerRuntime.problems(fake, consumer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("consumer", "kwargs", "expected"),
    [
        ({"lag": 0, "seconds_since_batch": 999.0}, {}, []),  # idle, nothing to do
        ({"lag": 5, "seconds_since_batch": 59.0}, {}, []),
        ({"lag": 5, "seconds_since_batch": 61.0}, {}, ["consumer_stalled"]),
        # no batch ever finished: counted from when consuming started
        ({"lag": 5, "seconds_since_batch": None}, {"consuming_for": 61.0}, ["consumer_stalled"]),
        ({"lag": 5, "seconds_since_batch": None}, {"consuming_for": 1.0}, []),
        ({"lag": 0}, {"behind": 10}, []),
        ({"lag": 0}, {"behind": 11}, ["monitor_behind"]),
        ({"lag": 0}, {"pending": 101}, ["outbox_backlog"]),
        ({"lag": 1, "seconds_since_batch": 70.0}, {"behind": 50, "pending": 500},
         ["consumer_stalled", "monitor_behind", "outbox_backlog"]),
    ],
)
def test_problems(consumer: dict[str, Any], kwargs: dict[str, Any], expected: list[str]) -> None:
    assert problems(consumer, **kwargs) == expected
