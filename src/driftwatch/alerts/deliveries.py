"""What ClickHouse knows about alert deliveries: each alert state (``alert_log``), the
current ones (``alerts``) and what each sink has delivered (``alert_deliveries``).

The delivering sinks (:mod:`driftwatch.alerts.outbox`) read their pending states here
and record their deliveries here; ClickHouse is the source of truth, so a restarted
worker delivers what its predecessor could not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from driftwatch.alerts.model import Alert
from driftwatch.store.client import Store

_ALERT_COLUMNS = (
    "fingerprint, version, status, starts_at, ends_at, updated_at, labels, annotations"
)

PENDING_SQL = f"""
SELECT {_ALERT_COLUMNS}
FROM {{db}}.alert_log AS a
LEFT JOIN (
    SELECT fingerprint, max(version) AS done FROM {{db}}.alert_deliveries
    WHERE sink = {{sink:String}} GROUP BY fingerprint
) AS d ON d.fingerprint = a.fingerprint
WHERE a.written_at >= {{since:DateTime64(3, 'UTC')}}
  AND a.written_at < {{before:DateTime64(3, 'UTC')}}
  AND a.version > d.done
ORDER BY a.fingerprint, a.version
LIMIT 1 BY a.fingerprint, a.version
LIMIT {{limit:UInt32}}
"""

FIRING_SQL = f"""
SELECT {_ALERT_COLUMNS}
FROM {{db}}.alerts FINAL
WHERE status = 'firing'
ORDER BY updated_at, fingerprint
LIMIT {{limit:UInt32}}
"""

LOGGED_SQL = f"""
SELECT {_ALERT_COLUMNS}
FROM {{db}}.alert_log
WHERE fingerprint IN {{fingerprints:Array(String)}}
ORDER BY fingerprint, version
LIMIT 1 BY fingerprint, version
"""


def as_utc(value: dt.datetime) -> dt.datetime:
    """The same instant in UTC (naive values are taken as UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The wall clock in UTC (delivery works on wall time, alerts carry event time)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class StoredAlert:
    """One alert state as stored in ``{db}.alerts``: the record and its version."""

    alert: Alert
    version: int


def alert_from_row(row: Sequence[Any]) -> StoredAlert:
    """Build a :class:`StoredAlert` from a row of ``_ALERT_COLUMNS``."""
    fp, version, status, starts, ends, updated, labels, annotations = row
    status_: Literal["firing", "resolved"] = "resolved" if status == "resolved" else "firing"
    return StoredAlert(
        Alert(
            fingerprint=str(fp),
            status=status_,
            starts_at=as_utc(starts),
            labels={str(k): str(v) for k, v in dict(labels).items()},
            annotations={str(k): str(v) for k, v in dict(annotations).items()},
            ends_at=as_utc(ends) if ends is not None and status_ == "resolved" else None,
            updated_at=as_utc(updated) if updated is not None else None,
        ),
        int(version),
    )


def same_state(a: Alert, b: Alert) -> bool:
    """True when two records describe the same alert state (status, start to the ms,
    severity): the alert book bumps the version exactly on such changes.

    >>> t = dt.datetime(2026, 3, 18, 14, 0, 3, 123456, tzinfo=dt.UTC)
    >>> x = Alert("f", "firing", t, {}, {})
    >>> same_state(x, Alert("f", "firing", t.replace(microsecond=123000), {}, {}))
    True
    >>> same_state(x, x.resolved(t))
    False
    """

    def ms(t: dt.datetime) -> int:
        return int(as_utc(t).timestamp() * 1000)

    return (
        a.fingerprint == b.fingerprint
        and a.status == b.status
        and ms(a.starts_at) == ms(b.starts_at)
        and a.labels.get("severity") == b.labels.get("severity")
    )


class Outbox:
    """What ClickHouse knows about one sink's deliveries.

    Parameters
    ----------
    store : Store
        The store holding ``alerts`` (migration 0002) and ``alert_deliveries`` (0004).
    sink : str
        The sink's name, e.g. ``alertmanager``.
    horizon_s : float
        States written longer ago than this are never picked up as pending (a sink
        configured on an old database does not replay its whole history).
    limit : int
        At most this many states per read.
    """

    def __init__(self, store: Store, sink: str, *, horizon_s: float = 86400.0,
                 limit: int = 5000) -> None:
        if horizon_s <= 0:
            raise ValueError(f"horizon_s must be > 0, got {horizon_s!r}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        self.store = store
        self.sink = sink
        self.horizon_s = horizon_s
        self.limit = limit

    def pending(self, now: dt.datetime, grace_s: float = 0.0) -> list[StoredAlert]:
        """Every alert state (each version in ``alert_log``) written within the horizon,
        at least ``grace_s`` ago, newer than the newest state this sink has delivered
        for its alert; in (fingerprint, version) order. States older than a delivered
        one are obsolete: posting them late would turn a resolved alert back on."""
        rows = self.store.query(
            PENDING_SQL,
            {
                "since": now - dt.timedelta(seconds=self.horizon_s),
                "before": now - dt.timedelta(seconds=grace_s),
                "sink": self.sink,
                "limit": self.limit,
            },
        )
        return [alert_from_row(r) for r in rows]

    def firing(self) -> list[StoredAlert]:
        """Every alert whose current state is firing."""
        return [alert_from_row(r) for r in self.store.query(FIRING_SQL, {"limit": self.limit})]

    def logged(self, fingerprints: Iterable[str]) -> dict[str, list[StoredAlert]]:
        """Every logged state of these fingerprints, oldest version first."""
        fps = sorted(set(fingerprints))
        if not fps:
            return {}
        out: dict[str, list[StoredAlert]] = {}
        for stored in map(alert_from_row, self.store.query(LOGGED_SQL, {"fingerprints": fps})):
            out.setdefault(stored.alert.fingerprint, []).append(stored)
        return out

    def mark_delivered(
        self,
        states: Sequence[StoredAlert],
        at: dt.datetime,
        attempts: dict[str, int] | None = None,
        errors: dict[str, str] | None = None,
    ) -> int:
        """Record that these states reached the sink; returns the rows written."""
        if not states:
            return 0
        attempts = attempts or {}
        errors = errors or {}
        return self.store.insert_columns(
            "alert_deliveries",
            {
                "sink": [self.sink] * len(states),
                "fingerprint": [s.alert.fingerprint for s in states],
                "version": [s.version for s in states],
                "status": [s.alert.status for s in states],
                "delivered_at": [at] * len(states),
                "attempts": [max(1, attempts.get(s.alert.fingerprint, 1)) for s in states],
                "last_error": [errors.get(s.alert.fingerprint, "")[:500] for s in states],
            },
        )
