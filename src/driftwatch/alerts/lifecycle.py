"""The alert lifecycle: findings in, alert state changes out, persisted first.

One alert per fingerprint (alertname, detector or rule, segment, model version).
The first finding opens it (``firing``, ``starts_at`` = the finding's event time);
later findings *grow* it — newer numbers in the annotations, a count of findings —
without re-firing. It is returned to the sinks again only when something material
changes: it opens, its severity goes up, or it resolves. Severity never goes down
while an alert fires.

Resolution (hysteresis against flapping):

* a detector alert resolves after ``resolve_after`` monitor passes in a row without
  a finding (``resolve_after * interval_s`` of event time after the last finding,
  counted on the monitor's pass clock, see :meth:`StoreAlertBook.passed`); the
  monitor itself keeps a firing segment alive with weaker evidence than it took to
  open the alert, so an alert does not resolve just because one pass fell under the
  opening bar;
* a rule alert resolves after ``rule_quiet_s`` of event time without a new hit.

Every change is written to ``{db}.alerts`` (current state, newest ``version`` wins)
and every material change to ``{db}.alert_log`` *inside* :meth:`update`, before
the pipeline hands the returned alerts to the sinks. At start the book reloads the
firing alerts from ``{db}.alerts``, so a restarted worker neither re-fires nor
forgets them.

Several workers, one store (issue 23):

* detector alerts have one writer, the leader (``leads()`` true): a book that does not
  lead never resolves or rewrites a detector alert it reloaded; the worker that becomes
  leader calls :meth:`StoreAlertBook.take_over`, which reloads the detector alerts the
  previous leader left in the store (and forgets its own pass clock);
* rule alerts are merged through the store: before a book opens a rule alert it reads
  the alert's current row; one still firing (another worker opened it) is adopted --
  no second "firing", its findings counted on from the stored count -- and a new
  version is ``max(version) + 1`` of the stored versions, never a per-process count.
  Before a book resolves a rule alert on quiet it re-reads the row: a later hit stored
  by another worker keeps it firing. Two workers opening the same alert in the same
  instant write the same version of the same fingerprint; the table keeps one row.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from driftwatch.alerts import incidents
from driftwatch.alerts.incident_merges import store_merges
from driftwatch.alerts.incidents import INCIDENT_LABEL, KEYS_ANNOTATION, IncidentIndex
from driftwatch.alerts.model import Alert, Finding
from driftwatch.alerts.signatures import SignatureRequest, rule_signatures
from driftwatch.events import UTC
from driftwatch.store.client import Store

RANK = {"info": 1, "warning": 2, "critical": 3}

_COLUMNS = (
    "fingerprint", "status", "starts_at", "ends_at", "updated_at", "alertname", "severity",
    "source", "segment", "origin", "model_version", "labels", "annotations", "version",
    "written_at", "last_seen_at", "findings",
)


@dataclass
class _State:
    alert: Alert
    last_seen: dt.datetime
    version: int
    findings: int

    @property
    def severity(self) -> str:
        return self.alert.labels.get("severity", "info")

    @property
    def source(self) -> str:
        return self.alert.labels.get("source", "detector")


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class StoreAlertBook:
    """Alert lifecycle persisted in ClickHouse (implements the pipeline's AlertBook).

    Parameters
    ----------
    store : Store
        An initialised store (tables ``alerts`` and ``alert_log``).
    interval_s : int
        Seconds of event time between monitor passes (``monitor_interval_s``).
    resolve_after : int
        Clean monitor passes before a detector alert resolves (>= 1).
    rule_quiet_s : int
        Event-time seconds without a hit before a rule alert resolves (> 0).
    load : bool
        Rebuild the state from ``{db}.alerts`` at start (default True).
    flush_s : float
        Wall-clock seconds an alert's non-material update (another finding: its last
        seen time, count and annotations) may wait before it is written, so that a
        worker does not write every firing alert after every batch (0: write at once).
        Material changes (new, severity raised, resolved) are always written before
        :meth:`update` returns, with every update waiting at that moment.

    Examples
    --------
    >>> book = StoreAlertBook(None, interval_s=300, resolve_after=2, load=False)
    >>> t = dt.datetime(2026, 3, 18, 14, 0, tzinfo=UTC)
    >>> f = Finding("CentsDigitAnomaly", "warning", "detector", "cents", "mcc=5967", t, "6 of 9")
    >>> [a.status for a in book.update([f], t)]
    ['firing']
    >>> book.update([replace(f, event_time=t + dt.timedelta(minutes=5))], t)
    []
    >>> book.passed(t + dt.timedelta(minutes=15))
    >>> [(a.status, a.ends_at.strftime("%H:%M")) for a in book.update([], t)]
    [('resolved', '14:15')]
    """

    def __init__(
        self,
        store: Store | None,
        *,
        interval_s: int,
        resolve_after: int = 3,
        rule_quiet_s: int = 3600,
        load: bool = True,
        flush_s: float = 5.0,
        runbook_base_url: str = "",
        incident_gap_s: int = 3600,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s={interval_s!r}; allowed: > 0")
        if resolve_after < 1:
            raise ValueError(f"resolve_after={resolve_after!r}; allowed: >= 1")
        if rule_quiet_s <= 0:
            raise ValueError(f"rule_quiet_s={rule_quiet_s!r}; allowed: > 0")
        self.store = store
        self.interval_s = interval_s
        self.resolve_after = resolve_after
        self.rule_quiet_s = rule_quiet_s
        self.flush_s = flush_s
        self.runbook_base_url = runbook_base_url
        self.incidents = IncidentIndex(incident_gap_s)
        """The open incidents (:mod:`driftwatch.alerts.incidents`): this book is the
        alert writer, so it assigns every new alert's ``incident`` label."""
        self._incidents_fresh = False
        self._keys: dict[SignatureRequest, str] = {}
        """``incident_keys`` of the rule alerts an update may open, read together."""
        self._dirty: dict[str, dict[str, Any]] = {}
        self._flushed_at = time.monotonic()
        self._state: dict[str, _State] = {}
        self._versions: dict[str, int] = {}
        self._pass_clock: dt.datetime | None = None
        self._lock = threading.RLock()  # the ingest lane and the monitor share the book
        self.leads: Callable[[], bool] = lambda: True
        """Whether this book writes detector alerts (a worker: whether it leads)."""
        if load and store is not None:
            self.reload()

    # -- state ---------------------------------------------------------------------
    @property
    def firing(self) -> dict[str, Alert]:
        """The firing alerts by fingerprint."""
        return {fp: s.alert for fp, s in self._state.items() if s.alert.status == "firing"}

    def passed(self, at: dt.datetime) -> None:
        """The monitor finished its pass at event time ``at`` (detector evidence is
        complete up to ``at``); detector alerts resolve on this clock."""
        at = _utc(at)
        if self._pass_clock is None or at > self._pass_clock:
            self._pass_clock = at

    def take_over(self) -> int:
        """This book's worker became the leader: reload every firing alert from the
        store (the previous leader's detector alerts included) and forget the pass
        clock of an earlier term; returns the number of firing alerts."""
        with self._lock:
            self.flush()
            self._pass_clock = None
            return self.reload()

    def reload(self) -> int:
        """Rebuild the state from ``{db}.alerts``; returns the number of firing alerts."""
        if self.store is None:
            return 0
        with self._lock:
            return self._reload()

    def _reload(self) -> int:
        assert self.store is not None
        self._dirty.clear()
        self._state.clear()
        self._versions = {
            str(fp): int(v)
            for fp, v in self.store.query(
                "SELECT fingerprint, max(version) FROM {db}.alerts GROUP BY fingerprint"
            )
        }
        rows = self.store.query(
            "SELECT fingerprint, starts_at, updated_at, labels, annotations, version, "
            "last_seen_at, findings FROM {db}.alerts FINAL WHERE status = 'firing'"
        )
        for fp, *rest in rows:
            self._state[str(fp)] = _stored_state(str(fp), *rest)
        self.incidents = IncidentIndex(self.incidents.gap_s)
        incidents.load_recent(self.store, self.incidents)
        return len(self._state)

    def _stored(self, fp: str) -> tuple[_State | None, int]:
        """The store's current firing state of ``fp`` (None if resolved or absent) and
        its highest stored version (0: never stored)."""
        return self._stored_many([fp]).get(fp, (None, self._versions.get(fp, 0)))

    def _stored_many(self, fps: Sequence[str]) -> dict[str, tuple[_State | None, int]]:
        """:meth:`_stored` of several fingerprints in one query."""
        out: dict[str, tuple[_State | None, int]] = {}
        if self.store is None or not fps:
            return out
        rows = self.store.query(
            "SELECT fingerprint, status, starts_at, updated_at, labels, annotations, "
            "version, last_seen_at, findings FROM {db}.alerts FINAL "
            "WHERE fingerprint IN {fps:Array(String)}",
            {"fps": list(fps)},
        )
        for fp, status, *rest in rows:
            fp = str(fp)
            version = max(int(rest[4]), self._versions.get(fp, 0))
            self._versions[fp] = version
            out[fp] = (_stored_state(fp, *rest) if status == "firing" else None), version
        return out

    # -- the AlertBook protocol ----------------------------------------------------
    def update(self, findings: Sequence[Finding], now: dt.datetime) -> list[Alert]:
        """Feed findings observed up to event time ``now``; return material changes.

        Every change is written to ``alerts`` (and material ones to ``alert_log``)
        before this returns.
        """
        with self._lock:
            return self._update(findings, _utc(now))

    def _update(self, findings: Sequence[Finding], now: dt.datetime) -> list[Alert]:
        leads = self.leads()
        self._incidents_fresh = False
        written = dt.datetime.now(UTC)
        changed: list[Alert] = []
        # rule alerts this book does not hold: their stored rows, in one query
        stored = self._stored_many(sorted({
            f.fingerprint for f in findings
            if f.source == "rule" and f.fingerprint not in self._state}))
        self._keys = self._rule_keys(findings, stored)
        rows: list[dict[str, Any]] = []
        log: list[dict[str, Any]] = []
        for f in sorted(findings, key=lambda x: (x.event_time, x.fingerprint)):
            fp = f.fingerprint
            at = _utc(f.event_time)
            if f.source != "rule" and not leads:
                continue  # detector alerts have one writer: the leader
            st = self._state.get(fp)
            if st is not None and at - st.last_seen >= self._quiet(st):
                self._resolve(st, st.last_seen + self._quiet(st), changed, rows, log, written)
                st = None
            if st is None and f.source == "rule":
                st = self._adopt(fp, at, stored.pop(fp, None))
            if st is None:
                version = self._versions.get(fp, 0) + 1
                st = _State(self._open(f, at), at, version, 1)
                self._state[fp] = st
                self._versions[fp] = version
                changed.append(st.alert)
                rows.append(_row(st, written))
                log.append(rows[-1])
                continue
            material = RANK.get(f.severity, 0) > RANK.get(st.severity, 0)
            labels = dict(st.alert.labels)
            if material:
                labels["severity"] = f.severity
                st.version = self._versions[fp] = self._versions.get(fp, st.version) + 1
            st.alert = replace(
                st.alert,
                labels=labels,
                annotations={**st.alert.annotations, **f.annotations(self.runbook_base_url)},
                updated_at=max(at, st.alert.updated_at or at),
            )
            st.last_seen = max(st.last_seen, at)
            st.findings += 1
            self.incidents.seen(fp, at)
            if material:
                rows.append(_row(st, written))
                changed.append(st.alert)
                log.append(rows[-1])
            else:
                self._dirty[fp] = _row(st, written)
        for st in list(self._state.values()):
            clock = now
            if st.source != "rule":
                if not leads or self._pass_clock is None:
                    continue  # only the leader's pass clock resolves detector alerts
                clock = self._pass_clock
            quiet = self._quiet(st)
            if clock - st.last_seen < quiet:
                continue
            if st.source == "rule" and self.store is not None:
                fp = st.alert.fingerprint
                self._flush_one(fp)
                current, _ = self._stored(fp)
                if current is None:  # another worker resolved it: drop it quietly
                    del self._state[fp]
                    continue
                if clock - current.last_seen < quiet:  # another worker saw it later
                    self._state[fp] = current
                    continue
            self._resolve(st, st.last_seen + quiet, changed, rows, log, written)
        self._persist(rows, log)
        if self.store is not None and self.incidents.new_merges:
            store_merges(self.store, self.incidents.new_merges, written)
            self.incidents.new_merges.clear()
        self.incidents.expire(now)
        return changed

    # -- helpers -------------------------------------------------------------------
    def _open(self, f: Finding, at: dt.datetime) -> Alert:
        """A new alert from its first finding, in its incident (joined or opened).

        Before the first new alert of an update the book re-reads the open incidents
        from the store, so a rule alert another worker opened meanwhile is known; a rule
        alert's pattern (the cents value and beneficiary prefix its hits share) is read
        from its hits and kept as the ``incident_keys`` annotation."""
        alert = Alert.from_finding(f, self.runbook_base_url)
        notes = dict(alert.annotations)
        if self.store is not None:
            if not self._incidents_fresh:
                incidents.load_recent(self.store, self.incidents)
                self._incidents_fresh = True
            if f.source == "rule" and KEYS_ANNOTATION not in notes:
                asked = SignatureRequest(f.origin, f.segment, f.window_start or at,
                                         f.window_end or at)
                seen = self._keys.get(asked)
                if seen is None:
                    seen = incidents.rule_signature(self.store, *asked)
                if seen:
                    notes[KEYS_ANNOTATION] = seen
        labels = dict(alert.labels)
        labels[INCIDENT_LABEL] = self.incidents.assign(alert.fingerprint, labels, notes, at)
        return replace(alert, labels=labels, annotations=notes)

    def _rule_keys(
        self, findings: Sequence[Finding], stored: dict[str, tuple[_State | None, int]]
    ) -> dict[SignatureRequest, str]:
        """The ``incident_keys`` of the rule alerts this update may open (first finding
        of each fingerprint neither held nor firing in the store), in two queries."""
        if self.store is None:
            return {}
        asked: dict[str, SignatureRequest] = {}
        for f in sorted(findings, key=lambda x: (x.event_time, x.fingerprint)):
            fp = f.fingerprint
            if (f.source != "rule" or fp in asked or fp in self._state
                    or (stored.get(fp) or (None, 0))[0] is not None):
                continue
            at = _utc(f.event_time)
            asked[fp] = SignatureRequest(f.origin, f.segment, f.window_start or at,
                                         f.window_end or at)
        if len(asked) < 2:  # one alert: its own query (as before)
            return {}
        requests = list(asked.values())
        return dict(zip(requests, rule_signatures(self.store, requests), strict=True))

    def _adopt(
        self, fp: str, at: dt.datetime, row: tuple[_State | None, int] | None
    ) -> _State | None:
        """A rule alert another worker opened and that still fires at ``at`` (``row``:
        its stored state, read before this update): taken over from the store (not
        opened again); None otherwise."""
        stored = row[0] if row is not None else None
        if stored is None or at - stored.last_seen >= self._quiet(stored):
            return None
        self._state[fp] = stored
        labels = stored.alert.labels
        if labels.get(INCIDENT_LABEL) and self.incidents.incident_of(fp) is None:
            self.incidents.assign(fp, labels, stored.alert.annotations, stored.alert.starts_at,
                                  incident=labels[INCIDENT_LABEL])
        self.incidents.seen(fp, at)
        return stored

    def _flush_one(self, fp: str) -> None:
        """Write ``fp``'s waiting non-material update, if any, before reading it back."""
        row = self._dirty.pop(fp, None)
        if row is not None and self.store is not None:
            self.store.insert_columns("alerts", _columns([row]))

    def _quiet(self, st: _State) -> dt.timedelta:
        if st.source == "rule":
            return dt.timedelta(seconds=self.rule_quiet_s)
        return dt.timedelta(seconds=self.interval_s * self.resolve_after)

    def _resolve(
        self,
        st: _State,
        at: dt.datetime,
        changed: list[Alert],
        rows: list[dict[str, Any]],
        log: list[dict[str, Any]],
        written: dt.datetime,
    ) -> None:
        fp = st.alert.fingerprint
        st.alert = st.alert.resolved(at)
        self.incidents.ended(fp, at)
        st.version = self._versions[fp] = self._versions.get(fp, st.version) + 1
        changed.append(st.alert)
        rows.append(_row(st, written))
        log.append(rows[-1])
        del self._state[fp]

    def flush(self) -> None:
        """Write the non-material updates still waiting (see ``flush_s``)."""
        with self._lock:
            self._persist([], [], force=True)

    def _persist(
        self, rows: list[dict[str, Any]], log: list[dict[str, Any]], force: bool = False
    ) -> None:
        if self.store is None:
            self._dirty.clear()
            return
        due = force or time.monotonic() - self._flushed_at >= self.flush_s
        if not rows and not (due and self._dirty):
            return
        latest: dict[str, dict[str, Any]] = dict(self._dirty)  # older than ``rows``
        for row in rows:
            latest[row["fingerprint"]] = row
        self.store.insert_columns("alerts", _columns(list(latest.values())))
        self._dirty.clear()
        self._flushed_at = time.monotonic()
        if log:
            self.store.insert_columns("alert_log", _columns(log))


def _stored_state(
    fp: str, starts: dt.datetime, updated: dt.datetime, labels: Any, notes: Any,
    version: int, seen: dt.datetime, count: int,
) -> _State:
    """A firing alert's state from its row in ``{db}.alerts``."""
    alert = Alert(
        fingerprint=fp,
        status="firing",
        starts_at=_utc(starts),
        labels=dict(labels),
        annotations=dict(notes),
        updated_at=_utc(updated),
    )
    return _State(alert, _utc(seen), int(version), int(count))


def _row(st: _State, written: dt.datetime) -> dict[str, Any]:
    """A snapshot of an alert's state as a row of ``alerts`` / ``alert_log``."""
    a = st.alert
    labels = a.labels
    return {
        "fingerprint": a.fingerprint,
        "status": a.status,
        "starts_at": a.starts_at,
        "ends_at": a.ends_at,
        "updated_at": a.updated_at or a.starts_at,
        "alertname": labels.get("alertname", ""),
        "severity": labels.get("severity", ""),
        "source": labels.get("source", ""),
        "segment": labels.get("segment", ""),
        "origin": labels.get("detector") or labels.get("rule_id", ""),
        "model_version": labels.get("model_version", ""),
        "labels": dict(labels),
        "annotations": dict(a.annotations),
        "version": st.version,
        "written_at": written,
        "last_seen_at": st.last_seen,
        "findings": st.findings,
    }


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {c: [r[c] for r in rows] for c in _COLUMNS}
