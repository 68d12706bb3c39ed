"""Merged incidents in the store: ``{db}.incident_merges`` (migration 0011).

An alert's ``incident`` label cannot change once it was sent, so when two incidents
turn out to be one attack (:class:`~driftwatch.alerts.incidents.IncidentIndex` merges
them) the merge is a row here: ``incident`` is part of ``merged_into``. Writers that
derive the same merge insert the same row; it collapses on ``incident``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from driftwatch.store.client import Store

TABLE = "incident_merges"


def canonical(merges: Mapping[str, str], incident: str) -> str:
    """The incident ``incident`` ends up in, following merges of merged incidents
    (a cycle, which the writers never make, stops where it closes).

    >>> canonical({"inc-c": "inc-b", "inc-b": "inc-a"}, "inc-c")
    'inc-a'
    >>> canonical({}, "inc-x"), canonical({"a": "b", "b": "a"}, "a")
    ('inc-x', 'b')
    """
    seen = {incident}
    while incident in merges and merges[incident] not in seen:
        incident = merges[incident]
        seen.add(incident)
    return incident


def load_merges(store: Store) -> dict[str, str]:
    """Every stored merge: incident -> the incident it was merged into."""
    rows = store.query(f"SELECT incident, merged_into FROM {{db}}.{TABLE} FINAL")
    return {str(a): str(b) for a, b in rows}


def store_merges(store: Store, merges: Sequence[tuple[str, str]], at: dt.datetime) -> None:
    """Insert ``(incident, merged_into)`` pairs, merged at ``at`` (wall time)."""
    if merges:
        store.insert_columns(TABLE, {
            "incident": [a for a, _ in merges], "merged_into": [b for _, b in merges],
            "merged_at": [at] * len(merges)})
