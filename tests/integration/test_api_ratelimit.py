"""The API's per-client rate limit and access log, on a real local port with real
requests (issue 30): a burst past the bucket gets 429 with ``Retry-After``, the limit
counts unauthenticated requests too, another client address is not affected, and every
request is one access-log line without the token."""

from __future__ import annotations

import concurrent.futures
import logging
import math
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from driftwatch.api.app import create_app
from driftwatch.settings import Settings
from driftwatch.store.client import open_store
from tests.integration.test_api import _Server as Server

pytestmark = pytest.mark.integration

TOKEN = "tok-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RATE, BURST = 0.5, 6


@pytest.fixture
def url(chdb_dsn: str) -> Iterator[str]:
    store = open_store(chdb_dsn, f"t_rl_{uuid.uuid4().hex[:8]}", init=True)
    settings = Settings.load(env={}, config_file=None).replace(
        api_token=TOKEN, http_rate_per_s=RATE, http_rate_burst=BURST
    )
    server = Server(create_app(store, settings))
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()
        store.drop()


def _burst(url: str, n: int, headers: dict[str, str],
           local_address: str | None = None) -> list[httpx.Response]:
    """``n`` concurrent GETs of /alerts, each on its own connection."""
    def one(_: int) -> httpx.Response:
        transport = httpx.HTTPTransport(local_address=local_address)
        with httpx.Client(transport=transport, timeout=30) as client:
            return client.get(url + "/alerts", headers=headers)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_burst_past_the_bucket_is_429_with_retry_after(url: str) -> None:
    started = time.monotonic()
    responses = _burst(url, 3 * BURST, AUTH)
    elapsed = time.monotonic() - started
    codes = [r.status_code for r in responses]
    ok = codes.count(200)
    # the bucket holds BURST; at most RATE * elapsed more came back during the burst
    assert BURST <= ok <= BURST + math.floor(RATE * elapsed) + 1, codes
    limited = [r for r in responses if r.status_code == 429]
    assert len(limited) == len(responses) - ok > 0
    for r in limited:
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= math.ceil(1 / RATE)
        assert r.json() == {"error": "rate limit exceeded", "retry_after_s": retry}
    # /healthz counts too; after Retry-After seconds a request goes through again
    assert httpx.get(url + "/healthz").status_code == 429
    time.sleep(max(int(r.headers["Retry-After"]) for r in limited))
    assert httpx.get(url + "/alerts", headers=AUTH).status_code == 200


def test_token_guessing_is_limited_and_other_clients_are_not(url: str) -> None:
    guesses = _burst(url, 2 * BURST, {"Authorization": "Bearer guess"})
    codes = [r.status_code for r in guesses]
    assert codes.count(401) >= BURST and codes.count(429) > 0, codes
    assert set(codes) == {401, 429}
    # the guesser's own bucket is empty, even for the right token ...
    assert httpx.get(url + "/alerts", headers=AUTH).status_code == 429
    # ... while a client on another address (127.0.0.2, same loopback) is served
    other = _burst(url, 2, AUTH, local_address="127.0.0.2")
    assert [r.status_code for r in other] == [200, 200]


def test_every_request_is_one_access_log_line_without_the_token(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="driftwatch.api")
    responses = [*_burst(url, BURST + 3, AUTH),
                 httpx.get(url + "/alerts/0123456789abcdef", headers=AUTH)]
    time.sleep(0.2)  # the server thread logs after the response is sent
    lines = [r for r in caplog.records if r.name == "driftwatch.api"]
    assert len(lines) == len(responses)
    assert sorted(r.status for r in lines) == sorted(  # type: ignore[attr-defined]
        r.status_code for r in responses)
    for rec in lines:
        fields = rec.__dict__
        assert fields["client"] == "127.0.0.1"
        assert fields["route"] in {"/alerts", "/alerts/{fingerprint}"}
        assert fields["ms"] >= 0
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(rec.__dict__) for rec in caplog.records)
