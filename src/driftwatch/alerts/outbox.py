"""The delivery outbox: alert states are persisted first, delivered after, retried until done.

The alert book writes every alert state change to ``{db}.alerts`` (current state,
one row per fingerprint, highest ``version`` wins) and ``{db}.alert_log`` before any
sink sees it. A sink built on :class:`OutboxSink` then

1. posts the states it is handed (:meth:`OutboxSink.send`) and, on success, writes one
   ``{db}.alert_deliveries`` row per (sink, fingerprint, version);
2. on failure keeps them pending in a bounded map and backs off exponentially;
3. on every :meth:`OutboxSink.tick` (called by the worker's timer) retries what is
   due: the pending states it remembers plus every state ClickHouse holds without a
   delivery row for this sink (so a restarted worker delivers what its predecessor
   could not), and, for Alertmanager, re-posts every firing alert every
   ``resend_s`` seconds so that Alertmanager never times them out.

ClickHouse is the source of truth; the in-memory map is only a cache and a fallback
for sinks used without a store (replay to a file, unit tests).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter, Gauge

from driftwatch.alerts.model import Alert
from driftwatch.errors import AlertError, StoreError
from driftwatch.store.client import Store

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "driftwatch_alert_posts_total",
    "Alert posts to a delivery sink, by sink and result (ok, error, rejected).",
    ["sink", "result"],
)
PENDING = Gauge(
    "driftwatch_alert_pending",
    "Alert states a sink has not delivered yet (known in memory).",
    ["sink"],
)

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


def tick_all(sinks: Iterable[object], now: dt.datetime | None = None) -> list[TickResult]:
    """Call :meth:`OutboxSink.tick` on every sink that has it (the worker's timer).

    Blocking: from async code run it in a thread, e.g.
    ``await asyncio.to_thread(tick_all, pipeline.sinks)`` every few seconds.
    """
    return [s.tick(now) for s in sinks if isinstance(s, OutboxSink)]


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


class Backoff:
    """Exponential back-off with jitter: ``base_s * factor**failures``, capped at ``max_s``.

    Parameters
    ----------
    base_s : float
        Delay after the first failure, seconds (> 0).
    max_s : float
        Longest delay, seconds (>= base_s).
    factor : float
        Growth per failure (>= 1).
    jitter : float
        Fraction of the delay drawn at random, in [0, 1), so many workers do not retry
        in step.
    seed : int, optional
        Seed of the jitter's random generator.

    Examples
    --------
    >>> b = Backoff(base_s=1, max_s=8, jitter=0.0)
    >>> [b.failure() for _ in range(5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    >>> b.reset(); b.failures
    0
    """

    def __init__(self, base_s: float = 1.0, max_s: float = 60.0, factor: float = 2.0,
                 jitter: float = 0.2, seed: int | None = None) -> None:
        if base_s <= 0:
            raise ValueError(f"base_s must be > 0, got {base_s!r}")
        if max_s < base_s:
            raise ValueError(f"max_s must be >= base_s ({base_s}), got {max_s!r}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
        self.base_s = base_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self.failures = 0
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not cryptography

    def failure(self) -> float:
        """Count one failure and return the delay before the next attempt."""
        delay = min(self.max_s, self.base_s * self.factor**self.failures)
        self.failures += 1
        if self.jitter:
            delay *= 1 - self.jitter * self._rng.random()
        return float(delay)

    def reset(self) -> None:
        """Forget the failures (after a success)."""
        self.failures = 0


class DeliveryFailed(AlertError):
    """A post to an alert receiver failed; ``permanent`` if retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class TickResult:
    """What one :meth:`OutboxSink.tick` did."""

    posted: int = 0
    delivered: int = 0
    pending: int = 0
    error: str = ""


@dataclass
class _Entry:
    alert: Alert
    version: int | None = None  # None: not looked up in the store yet
    attempts: int = 0
    error: str = ""
    pending: bool = True


class OutboxSink:
    """Base of the delivering sinks: persist-then-send, bounded retry, periodic re-post.

    Subclasses implement :meth:`post`. ``send`` never raises on a receiver outage and
    never blocks longer than one post (it does not post at all while backing off);
    ``tick`` does the retries and re-posts and is meant to be called by a timer every
    few seconds. Both are thread-safe and blocking (call them from a thread in async
    code).

    Parameters
    ----------
    name : str
        Sink name recorded in ``alert_deliveries.sink``.
    store : Store, optional
        Where the alert states and deliveries live. Without it the sink only retries
        what it holds in memory.
    resend_s : float, optional
        Re-post every firing alert this often (Alertmanager); ``None`` never re-posts.
    retry_max_s : float
        Longest back-off between retries, seconds.
    max_pending : int
        Most states kept in memory; beyond it the oldest are dropped from memory (they
        stay pending in ClickHouse and are re-read from there).
    horizon_s : float
        See :class:`Outbox`.
    chunk : int
        Most alerts per post.
    grace_s : float
        States another worker wrote are picked up from ClickHouse only once they are
        this old, so the worker that raised an alert normally delivers it alone (two
        deliveries are harmless for Alertmanager, noisy for a webhook).
    """

    def __init__(
        self,
        name: str,
        *,
        store: Store | None = None,
        resend_s: float | None = None,
        retry_max_s: float = 60.0,
        max_pending: int = 10_000,
        horizon_s: float = 86400.0,
        chunk: int = 500,
        grace_s: float = 15.0,
    ) -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
        if resend_s is not None and resend_s <= 0:
            raise ValueError(f"resend_s must be > 0 or None, got {resend_s!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending!r}")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk!r}")
        self.name = name
        self.store = store
        self.resend_s = resend_s
        self.retry_max_s = retry_max_s
        self.max_pending = max_pending
        self.chunk = chunk
        self.grace_s = grace_s
        self.outbox = Outbox(store, name, horizon_s=horizon_s) if store is not None else None
        self.backoff = Backoff(base_s=min(1.0, retry_max_s), max_s=retry_max_s)
        self.posted = 0
        self.delivered = 0
        self.failures = 0
        self._lock = threading.Lock()
        # per fingerprint, its states in order: the pending ones (each delivered, oldest
        # first) and, without a store, the last delivered firing one (for re-posts)
        self._entries: dict[str, list[_Entry]] = {}
        self._next_attempt: dt.datetime | None = None
        self._last_resend: dt.datetime | None = None
        self._check_store = store is not None  # a restart may have left pending states
        self.deferred = False
        """When True, :meth:`send` only queues; :meth:`tick` (a delivery thread) posts."""
        self.wake = threading.Event()
        """Set by a deferred :meth:`send`: something waits to be posted."""
        self._inbox: deque[Alert] = deque()

    # -- to implement ----------------------------------------------------------------
    def post(self, alerts: Sequence[Alert], now: dt.datetime) -> None:
        """Deliver ``alerts`` in one request; raise :class:`DeliveryFailed` on failure."""
        raise NotImplementedError

    # -- the sink protocol -------------------------------------------------------------
    @property
    def pending_count(self) -> int:
        """Alert states held in memory and not delivered yet (never waits for a post)."""
        states = list(self._entries.values())  # a snapshot; no lock: a post may hold it
        return len(self._inbox) + sum(1 for lst in states for e in list(lst) if e.pending)

    def send(self, alerts: Sequence[Alert]) -> None:
        """Post these alert states now (unless backing off); keep them pending on failure.

        A deferred sink (``deferred = True``) only queues them and sets :attr:`wake`:
        the caller (the ingest path) never waits for the receiver or for a post in
        flight; the thread calling :meth:`tick` posts them.
        """
        if not alerts:
            return
        if self.deferred:
            self._inbox.extend(alerts)  # deque appends are atomic: no lock needed
            self.wake.set()
            return
        now = utcnow()
        with self._lock:
            for alert in alerts:
                self._remember(alert)
            if self._backing_off(now):
                self._gauge()
                return
            fps = {a.fingerprint for a in alerts}
            self._deliver(self._rounds(fps, resend=False), now)

    def tick(self, now: dt.datetime | None = None) -> TickResult:
        """Retry pending states that are due and re-post firing alerts when due.

        This is the method a worker's timer calls (every few seconds is fine: it only
        does work when something is due).
        """
        now = now or utcnow()
        with self._lock:
            self.wake.clear()
            while self._inbox:
                self._remember(self._inbox.popleft())
            resend = self.resend_s is not None and (
                self._last_resend is None
                or (now - self._last_resend).total_seconds() >= self.resend_s
            )
            has_pending = self._check_store or self._n_pending() > 0
            if self._backing_off(now) or not (resend or has_pending):
                return TickResult(pending=self._n_pending())
            try:
                batch = self._collect(now, resend)
            except StoreError as exc:
                log.warning("alert outbox: store unavailable: %s", exc, extra={"sink": self.name})
                self._fail(now, str(exc))
                return TickResult(pending=self._n_pending(), error=str(exc))
            self._check_store = False
            if not batch:
                if resend:
                    self._last_resend = now
                return TickResult(pending=self._n_pending())
            ok, delivered, error = self._deliver(batch, now)
            if ok and resend:
                self._last_resend = now
            return TickResult(
                posted=sum(map(len, batch)), delivered=delivered, pending=self._n_pending(),
                error=error,
            )

    flush = tick

    def close(self) -> None:
        """Try once more to deliver what is pending (unless backing off), then stop.

        Subclasses close their HTTP clients after calling this. Whatever is still
        undelivered stays pending in ClickHouse for the next worker.
        """
        self.deferred = False
        if not self._lock.acquire(blocking=False):
            # a post is in flight on the delivery thread (a receiver that does not
            # answer): do not wait for it; what is pending stays pending in ClickHouse
            log.info("alert sink %s: delivery in flight at close; not retried now", self.name)
            return
        self._lock.release()
        if self.pending_count:
            self.tick()

    # -- internals (called with the lock held) ---------------------------------------
    def _n_pending(self) -> int:
        return sum(1 for states in self._entries.values() for e in states if e.pending)

    def _gauge(self) -> None:
        PENDING.labels(self.name).set(self._n_pending())

    def _backing_off(self, now: dt.datetime) -> bool:
        return self._next_attempt is not None and now < self._next_attempt

    def _remember(self, alert: Alert, version: int | None = None) -> _Entry:
        """Hold ``alert`` as a pending state of its fingerprint, after the states still
        pending for it (a repeat of the newest state, or a stored version already held,
        only refreshes its entry); delivered states of the fingerprint are obsolete from
        now on."""
        states = [e for e in self._entries.pop(alert.fingerprint, []) if e.pending]
        if version is None:  # from the alert book: a repeat of the newest state, or new
            entry = states[-1] if states and same_state(states[-1].alert, alert) else None
        else:  # from the store: that version, or the first unversioned entry of that state
            entry = next((e for e in states if e.version == version), None) or next(
                (e for e in states if e.version is None and same_state(e.alert, alert)), None)
        if entry is None:
            entry = _Entry(alert, version)
            states.append(entry)
        else:
            entry.alert = alert
            entry.version = version if version is not None else entry.version
        self._entries[alert.fingerprint] = states  # re-inserted: newest last
        while sum(map(len, self._entries.values())) > self.max_pending:
            oldest = next(iter(self._entries))
            dropped = self._entries.pop(oldest)
            if any(e.pending for e in dropped) and self.outbox is not None:
                self._check_store = True  # still pending in ClickHouse
        return entry

    def _collect(self, now: dt.datetime, resend: bool) -> list[list[_Entry]]:
        if self.outbox is not None:
            for stored in self.outbox.pending(now, self.grace_s):
                self._remember(stored.alert, stored.version).pending = True
        rounds = self._rounds(set(self._entries), resend)
        if resend and self.outbox is not None:
            for stored in self.outbox.firing():
                if stored.alert.fingerprint not in self._entries:
                    if not rounds:
                        rounds.append([])
                    rounds[0].append(_Entry(stored.alert, stored.version, pending=False))
        return rounds

    def _rounds(self, fingerprints: set[str], resend: bool) -> list[list[_Entry]]:
        """What to post, in rounds: round ``k`` holds the ``k``-th pending state of each
        fingerprint (known versions first, in version order; then states not yet looked
        up, which are the newest), so that every state reaches the receiver, in order,
        never two states of one alert in one post. With ``resend``, round 0 also re-posts
        each firing alert that has nothing pending."""
        rounds: list[list[_Entry]] = []
        for fp, states in self._entries.items():
            if fp not in fingerprints:
                continue
            pending = sorted(
                (e for e in states if e.pending),
                key=lambda e: (e.version is None, e.version or 0),
            )
            if not pending and resend and states and states[-1].alert.status == "firing":
                pending = [states[-1]]
            for k, entry in enumerate(pending):
                if k == len(rounds):
                    rounds.append([])
                rounds[k].append(entry)
        return rounds

    def _deliver(self, rounds: list[list[_Entry]], now: dt.datetime) -> tuple[bool, int, str]:
        """Post round after round, each in chunks; record deliveries. Returns (all ok,
        delivered, last error); a failure leaves this and the later rounds pending."""
        delivered = 0
        for entries in rounds:
            for i in range(0, len(entries), self.chunk):
                part = entries[i : i + self.chunk]
                for e in part:
                    e.attempts += 1 if e.pending else 0
                try:
                    self.post([e.alert for e in part], now)
                except DeliveryFailed as exc:
                    if exc.permanent:
                        DELIVERIES.labels(self.name, "rejected").inc()
                        log.error(
                            "alert sink %s rejected %d alerts permanently: %s",
                            self.name, len(part), exc, extra={"sink": self.name},
                        )
                        for e in part:
                            e.error = f"rejected: {exc}"
                        delivered += self._done(part, now)
                        continue
                    DELIVERIES.labels(self.name, "error").inc()
                    for e in part:
                        e.error = str(exc)
                    self._fail(now, str(exc))
                    self._gauge()
                    return False, delivered, str(exc)
                DELIVERIES.labels(self.name, "ok").inc()
                self.posted += len(part)
                delivered += self._done(part, now)
        self.backoff.reset()
        self._next_attempt = None
        self._gauge()
        return True, delivered, ""

    def _fail(self, now: dt.datetime, error: str) -> None:
        self.failures += 1
        delay = self.backoff.failure()
        self._next_attempt = now + dt.timedelta(seconds=delay)
        log.warning(
            "alert sink %s: delivery failed (%s); retry in %.1fs, %d pending",
            self.name, error, delay, self._n_pending(), extra={"sink": self.name},
        )

    def _done(self, part: list[_Entry], now: dt.datetime) -> int:
        """Record the pending entries of a posted chunk (one state per fingerprint) as
        delivered."""
        pending = [e for e in part if e.pending]
        if not pending:
            return 0
        if self.outbox is not None:
            unknown = [e.alert.fingerprint for e in pending if e.version is None]
            try:
                logged = self.outbox.logged(unknown) if unknown else {}
                for e in pending:
                    if e.version is None:  # the newest logged version of this state
                        same = [x.version for x in logged.get(e.alert.fingerprint, [])
                                if same_state(x.alert, e.alert)]
                        e.version = max(same) if same else None
                self.outbox.mark_delivered(
                    [StoredAlert(e.alert, e.version) for e in pending if e.version is not None],
                    now,
                    {e.alert.fingerprint: e.attempts for e in pending},
                    {e.alert.fingerprint: e.error for e in pending},
                )
            except StoreError as exc:
                # Delivered but not recorded: it stays pending in ClickHouse and is
                # posted again later, which Alertmanager deduplicates.
                log.warning("alert outbox: cannot record deliveries: %s", exc)
                self._check_store = True
        for e in pending:
            e.pending = False
            e.attempts = 0
            e.error = ""
            fp = e.alert.fingerprint
            if self.outbox is not None or e.alert.status == "resolved":
                states = [x for x in self._entries.get(fp, []) if x is not e]
                if states:
                    self._entries[fp] = states
                else:
                    self._entries.pop(fp, None)
        self.delivered += len(pending)
        return len(pending)
