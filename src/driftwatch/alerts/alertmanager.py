"""Delivery to Prometheus Alertmanager through its v2 API (``POST /api/v2/alerts``).

Labels and annotations map one to one from the alert contract (plus a ``fingerprint``
annotation with driftwatch's own id); ``starts_at``/``ends_at`` become
``startsAt``/``endsAt``.

Times. Alert records carry *event* time; Alertmanager works on its own wall clock and
flushes an aggregation group at once, without ``group_wait``, for any alert whose
``startsAt`` is older than ``group_wait`` (measured with 0.25: four alerts of one group
with an hour-old ``startsAt`` gave two notifications, fresh ones gave one). Monitor
alerts are raised minutes after their event time and replays are days behind, so
posting event time would defeat grouping. Hence, by default (``starts_at="wall"``):

- ``startsAt`` is the wall time of the post. Alertmanager keeps the earliest
  ``startsAt`` when it merges re-posts of the same alert, so it shows when driftwatch
  first raised the alert; the event-time start and end travel in the annotations
  ``event_starts_at`` and ``event_ends_at`` (and in ClickHouse, unchanged).
- A firing alert is posted with ``endsAt = now + 4 × resend_s`` (the Prometheus
  convention) and re-posted every ``resend_s`` by :meth:`OutboxSink.tick`, so it
  stays active exactly as long as driftwatch keeps saying so and expires by itself a
  few intervals after every worker is gone.
- A resolved alert is posted with ``endsAt = now``: Alertmanager treats an ``endsAt``
  in the past as resolved and sends the resolved notification (``send_resolved``) at
  the group's next interval.

``starts_at="event"`` posts the event-time start instead (clamped to now, so a replay
of future-dated traffic never starts in the future) and the event-time end (clamped
to ``[startsAt, now]``); use it when Alertmanager should show data time and grouping
does not matter.

Alertmanager keeps no alerts across its own restarts; the periodic re-post restores
every firing alert within ``resend_s`` after it comes back, and states posted while
it was down are pending in ClickHouse until it answers (see :mod:`outbox`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import httpx

from driftwatch.alerts.model import Alert, iso
from driftwatch.alerts.outbox import DeliveryFailed, OutboxSink
from driftwatch.settings import Settings, mask_url
from driftwatch.store.client import Store

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# The payload itself was refused: retrying the same alerts cannot help. Anything else
# (auth, routing, outages) is retried, so fixing the receiver's config recovers them.
_PERMANENT = {400, 413, 422}


def to_alertmanager(
    alert: Alert,
    now: dt.datetime,
    resend_s: float,
    generator_url: str = "",
    starts_at: str = "wall",
) -> dict[str, Any]:
    """The Alertmanager v2 ``postableAlert`` for one alert state at wall time ``now``.

    Parameters
    ----------
    alert : Alert
        The alert state (event-time ``starts_at``/``ends_at``).
    now : datetime
        Wall time of the post.
    resend_s : float
        Re-post interval; a firing alert's ``endsAt`` is ``4 * resend_s`` ahead.
    generator_url : str
        Link template; ``{fingerprint}`` is replaced.
    starts_at : {'wall', 'event'}
        Which clock ``startsAt``/``endsAt`` follow (see the module notes).

    Examples
    --------
    >>> import datetime as dt
    >>> t0 = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
    >>> a = Alert("ab12", "firing", t0, {"alertname": "RuleHit", "severity": "critical",
    ...     "source": "rule", "rule_id": "R1", "segment": "mcc=5967"}, {"summary": "s"})
    >>> now = t0 + dt.timedelta(hours=1)
    >>> p = to_alertmanager(a, now, resend_s=60)
    >>> p["startsAt"], p["endsAt"], p["annotations"]["event_starts_at"]
    ('2026-03-18T15:00:00Z', '2026-03-18T15:04:00Z', '2026-03-18T14:00:00Z')
    >>> to_alertmanager(a, now, 60, starts_at="event")["startsAt"]
    '2026-03-18T14:00:00Z'
    >>> r = to_alertmanager(a.resolved(t0 + dt.timedelta(days=1)), now, 60, starts_at="event")
    >>> r["endsAt"]  # an event-time end in the future is clamped to now
    '2026-03-18T15:00:00Z'
    """
    if starts_at not in ("wall", "event"):
        raise ValueError(f"starts_at {starts_at!r}; valid: wall, event")
    if starts_at == "wall":
        starts = now
        ends = now if alert.status == "resolved" else now + dt.timedelta(seconds=4 * resend_s)
    else:
        starts = min(alert.starts_at, now)
        if alert.status == "firing":
            ends = now + dt.timedelta(seconds=4 * resend_s)
        else:
            ends = max(starts, min(alert.ends_at or now, now))
    labels = {k: v for k, v in alert.labels.items() if v and _LABEL_NAME.fullmatch(k)}
    annotations = {k: v for k, v in alert.annotations.items() if v}
    annotations["fingerprint"] = alert.fingerprint
    annotations["event_starts_at"] = iso(alert.starts_at)
    if alert.status == "resolved" and alert.ends_at is not None:
        annotations["event_ends_at"] = iso(alert.ends_at)
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(starts),
        "endsAt": iso(ends),
    }
    if generator_url:
        out["generatorURL"] = generator_url.replace("{fingerprint}", alert.fingerprint)
    return out


class AlertmanagerClient:
    """A small synchronous client of the Alertmanager v2 API (httpx).

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://alertmanager:9093`` (basic-auth credentials in the URL
        are used and never logged).
    timeout_s : float
        Connect and read timeout of every request.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"alertmanager url {mask_url(url)!r}: must start with http(s)://")
        self.url = url.rstrip("/")
        self.shown = mask_url(self.url)
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout_s, transport=transport,
            headers={"User-Agent": "driftwatch"},
        )

    def post_alerts(self, payload: Sequence[dict[str, Any]]) -> None:
        """POST postable alerts; raise :class:`DeliveryFailed` on any failure."""
        try:
            resp = self._http.post("/api/v2/alerts", json=list(payload))
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{self.shown}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 300:
            permanent = resp.status_code in _PERMANENT
            raise DeliveryFailed(
                f"{self.shown}: HTTP {resp.status_code}: {resp.text[:300]}", permanent=permanent
            )

    def alerts(
        self,
        *,
        filters: Sequence[str] = (),
        active: bool = True,
        silenced: bool = True,
        inhibited: bool = True,
        receiver: str = "",
    ) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` with label matchers such as ``alertname="RuleHit"``."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("active", str(active).lower()),
            ("silenced", str(silenced).lower()),
            ("inhibited", str(inhibited).lower()),
        ]
        params += [("filter", f) for f in filters]
        if receiver:
            params.append(("receiver", receiver))
        try:
            resp = self._http.get("/api/v2/alerts", params=params)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{self.shown}: {type(exc).__name__}: {exc}") from exc
        data: list[dict[str, Any]] = resp.json()
        return data

    def ready(self) -> bool:
        """True when Alertmanager answers ``/-/ready``."""
        try:
            return self._http.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class AlertmanagerSink(OutboxSink):
    """Alert sink that posts to Alertmanager, with the outbox's retry and re-post.

    Parameters
    ----------
    url : str
        Alertmanager base URL.
    store : Store, optional
        Enables the ClickHouse outbox (recommended; see :mod:`driftwatch.alerts.outbox`).
    resend_s : float
        Re-post firing alerts this often; keep it well below Alertmanager's
        ``resolve_timeout`` (default 5 min). The posted ``endsAt`` is ``4 × resend_s``
        ahead.
    generator_url : str
        Optional link per alert; ``{fingerprint}`` is replaced, e.g.
        ``https://driftwatch.example/alerts/{fingerprint}``.
    starts_at : {'wall', 'event'}
        Which clock ``startsAt``/``endsAt`` follow (see the module notes).
    **kwargs
        Passed to :class:`~driftwatch.alerts.outbox.OutboxSink`.

    Examples
    --------
    >>> sink = AlertmanagerSink("http://127.0.0.1:9093", resend_s=60)
    >>> sink.name, sink.resend_s
    ('alertmanager', 60)
    >>> sink.close()
    """

    def __init__(
        self,
        url: str,
        *,
        store: Store | None = None,
        resend_s: float = 60.0,
        timeout_s: float = 5.0,
        generator_url: str = "",
        starts_at: str = "wall",
        transport: httpx.BaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        if starts_at not in ("wall", "event"):
            raise ValueError(f"starts_at {starts_at!r}; valid: wall, event")
        super().__init__("alertmanager", store=store, resend_s=resend_s, **kwargs)
        self.client = AlertmanagerClient(url, timeout_s=timeout_s, transport=transport)
        self.generator_url = generator_url
        self.starts_at = starts_at

    @classmethod
    def from_settings(cls, settings: Settings, store: Store | None) -> AlertmanagerSink:
        """The sink configured by ``alertmanager_url`` and the ``alert_*`` settings."""
        return cls(
            settings.alertmanager_url,
            store=store,
            resend_s=settings.alert_resend_s,
            retry_max_s=settings.alert_retry_max_s,
            horizon_s=settings.alert_outbox_horizon_s,
        )

    def post(self, alerts: Sequence[Alert], now: dt.datetime) -> None:
        """POST the alerts to ``/api/v2/alerts``."""
        resend = self.resend_s or 60.0
        self.client.post_alerts(
            [to_alertmanager(a, now, resend, self.generator_url, self.starts_at) for a in alerts]
        )

    def close(self) -> None:
        """Deliver what is pending if possible, then close the HTTP client."""
        super().close()
        self.client.close()
