"""Rule-stage inserts held back and written with their batch's events.

The rule stage writes its own rows (``rule_hits``); a worker holds them back while it
evaluates a batch (:class:`HeldInserts`) and the group writer writes them together
with the batch's events (:func:`merge_held`), before the batch's offsets are committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from driftwatch.events import ScoredBatch
from driftwatch.store.client import Store

T = TypeVar("T")

Held = list[tuple[str, Mapping[str, Sequence[Any]]]]
Written = tuple[ScoredBatch, str, Held]
"""What the writer writes for one batch: its parsed events, their source, held rows."""


def written_rows(item: Written) -> int:
    batch, _, held = item
    return len(batch.events) + len(batch.rejected) + sum(
        len(next(iter(columns.values()), ())) for _, columns in held
    )


def merge_held(helds: Iterable[Held]) -> Held:
    """Held inserts of several batches as one insert per table and column list.

    >>> a = [("rule_hits", {"id": [1], "rule": ["x"]})]
    >>> b = [("rule_hits", {"id": [2, 3], "rule": ["y", "z"]}), ("t", {"v": [0]})]
    >>> merge_held([a, b])
    [('rule_hits', {'id': [1, 2, 3], 'rule': ['x', 'y', 'z']}), ('t', {'v': [0]})]
    """
    merged: dict[tuple[str, tuple[str, ...]], dict[str, list[Any]]] = {}
    for held in helds:
        for table, columns in held:
            into = merged.setdefault((table, tuple(columns)), {c: [] for c in columns})
            for name, values in columns.items():
                into[name].extend(values)
    return [(table, columns) for (table, _), columns in merged.items()]


class HeldInserts(Store):
    """The same store, except that inserts into ``tables`` made inside :meth:`hold`
    are held back and returned instead of run.

    Given to the rule stage, so that evaluating a batch never waits for ClickHouse:
    the held rows are written with the batch's events by the group writer, before the
    batch's offsets are committed (the inserts are idempotent, so a retried batch may
    insert them again).
    """

    def __init__(self, store: Store, tables: Sequence[str]) -> None:
        super().__init__(store.client, store.database)
        self._lock = store._lock
        self.inner = store
        self.tables = frozenset(tables)
        self._held: Held | None = None

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
        if self._held is None or table not in self.tables:
            return self.inner.insert_columns(table, columns)
        names = list(columns)
        n = len(columns[names[0]]) if names else 0
        if n:
            self._held.append((table, columns))
        return n

    def hold(self, fn: Callable[..., T], *args: Any) -> tuple[T, Held]:
        """``fn(*args)`` and the inserts it made into ``tables`` (not run)."""
        self._held = []
        try:
            out = fn(*args)
            return out, self._held
        finally:
            self._held = None
