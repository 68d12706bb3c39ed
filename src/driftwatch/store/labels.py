"""Labels as they were known: the current table and the append-only history beside it.

``labels`` is a ``ReplacingMergeTree``: the newest ``label_time`` per transaction wins,
and once its parts merge the earlier versions are gone. ``label_history`` (migration
0010) receives every label too and keeps every version, so a pass replayed at time
``t`` reads the label that was known at ``t`` (:mod:`driftwatch.monitors.recall`) however
the label changed later. Both are written by :func:`write_labels`, which
:meth:`driftwatch.store.client.Store.insert_labels` calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from driftwatch.events import UTC, Label

TABLES = ("labels", "label_history")
"""Where every label is written: the newest-wins table, then the history."""


class ColumnWriter(Protocol):
    """What :func:`write_labels` needs of a store."""

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int: ...


def label_columns(labels: Sequence[Label], now: dt.datetime) -> dict[str, list[Any]]:
    """The column batch of ``labels``, ingested at ``now``.

    >>> t = dt.datetime(2026, 3, 8, tzinfo=UTC)
    >>> label_columns([Label("t1", 1, t, "analyst")], t)["txn_id"]
    ['t1']
    """
    return {
        "txn_id": [x.txn_id for x in labels],
        "label": [x.label for x in labels],
        "label_time": [x.label_time for x in labels],
        "source": [x.source for x in labels],
        "ingest_time": [now] * len(labels),
    }


def write_labels(store: ColumnWriter, labels: Sequence[Label]) -> int:
    """Insert ``labels`` into ``labels`` and ``label_history``; returns the label count.

    The history is written first: a label in ``labels`` is always in the history too
    (a failure between the two inserts leaves at most a history row whose current
    version is missing, and the batch is retried as a whole).
    """
    if not labels:
        return 0
    cols = label_columns(labels, dt.datetime.now(UTC))
    store.insert_columns("label_history", cols)
    return store.insert_columns("labels", cols)
