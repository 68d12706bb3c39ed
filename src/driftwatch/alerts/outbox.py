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
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from driftwatch.alerts.deliveries import Outbox, StoredAlert, same_state, utcnow
from driftwatch.alerts.model import Alert
from driftwatch.backoff import Backoff
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

def tick_all(sinks: Iterable[object], now: dt.datetime | None = None) -> list[TickResult]:
    """Call :meth:`OutboxSink.tick` on every sink that has it (the worker's timer).

    Blocking: from async code run it in a thread, e.g.
    ``await asyncio.to_thread(tick_all, pipeline.sinks)`` every few seconds.
    """
    return [s.tick(now) for s in sinks if isinstance(s, OutboxSink)]


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
        self.backoff = Backoff(initial_s=min(1.0, retry_max_s), max_s=retry_max_s, jitter=0.2)
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
        delay = self.backoff.next()
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
