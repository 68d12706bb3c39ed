"""A generic webhook sink: alert state changes as JSON to any HTTP endpoint.

Each post is one JSON object::

    {"version": "1", "sender": "driftwatch", "sent_at": "...Z",
     "alerts": [<alert records exactly as contracts/alert.schema.json>]}

with ``Authorization: Bearer <webhook_token>`` when a token is set (never logged).
Unlike Alertmanager, a webhook receives each state change once: there is no periodic
re-post of firing alerts. Failed posts are retried with back-off and survive a
restart through the ClickHouse outbox (:mod:`driftwatch.alerts.outbox`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import httpx

from driftwatch.alerts.model import Alert, iso
from driftwatch.alerts.outbox import DeliveryFailed, OutboxSink
from driftwatch.settings import Settings, mask_url
from driftwatch.store.client import Store

# The payload itself was refused: retrying the same alerts cannot help. Anything else
# (auth, routing, outages) is retried, so fixing the receiver's config recovers them.
_PERMANENT = {400, 413, 422}


def webhook_body(alerts: Sequence[Alert], now: dt.datetime) -> dict[str, Any]:
    """The JSON body of one webhook post.

    >>> import datetime as dt
    >>> t = dt.datetime(2026, 3, 18, tzinfo=dt.UTC)
    >>> body = webhook_body([Alert("f1", "firing", t, {"alertname": "RuleHit"}, {})], t)
    >>> body["version"], body["alerts"][0]["fingerprint"], body["sent_at"]
    ('1', 'f1', '2026-03-18T00:00:00Z')
    """
    return {
        "version": "1",
        "sender": "driftwatch",
        "sent_at": iso(now),
        "alerts": [a.to_dict() for a in alerts],
    }


class WebhookSink(OutboxSink):
    """Posts alert state changes to a generic webhook.

    Parameters
    ----------
    url : str
        The endpoint (``http://`` or ``https://``).
    token : str
        Bearer token sent in ``Authorization``; empty sends none.
    store : Store, optional
        Enables the ClickHouse outbox.
    **kwargs
        Passed to :class:`~driftwatch.alerts.outbox.OutboxSink`.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        store: Store | None = None,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {mask_url(url)!r}: must start with http(s)://")
        super().__init__("webhook", store=store, resend_s=None, **kwargs)
        self.url = url
        self.shown = mask_url(url)
        headers = {"User-Agent": "driftwatch", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings, store: Store | None) -> WebhookSink:
        """The sink configured by ``webhook_url``/``webhook_token``."""
        return cls(
            settings.webhook_url,
            token=settings.webhook_token,
            store=store,
            retry_max_s=settings.alert_retry_max_s,
            horizon_s=settings.alert_outbox_horizon_s,
        )

    def post(self, alerts: Sequence[Alert], now: dt.datetime) -> None:
        """POST one body with these alerts."""
        try:
            resp = self._http.post(self.url, json=webhook_body(alerts, now))
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{self.shown}: {type(exc).__name__}") from exc
        if resp.status_code >= 300:
            permanent = resp.status_code in _PERMANENT
            raise DeliveryFailed(f"{self.shown}: HTTP {resp.status_code}", permanent=permanent)

    def close(self) -> None:
        """Deliver what is pending if possible, then close the HTTP client."""
        super().close()
        self._http.close()
