"""The worker's web port (a real ``driftwatch worker`` on the tansu broker): it serves
driftwatch's own pages only, faust's built-in pages answer 404, a burst past a client's
bucket is a 429 with ``Retry-After``, and each request is one access-log line
(issue 30)."""

from __future__ import annotations

import concurrent.futures
import re
from pathlib import Path

import httpx
import pytest

from driftwatch.settings import Settings
from driftwatch.streaming.testbroker import free_port
from tests.integration.kafka_tools import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

BURST = 24
# Every page faust-streaming mounts by default or behind a setting (faust/web/apps):
# the index or statistics at "/", the router, the tables, the graph and the JSON metrics.
FAUST_PAGES = ["/", "/router/", "/router/t/get/", "/table/", "/table/t/", "/table/t/k/",
               "/assignment/", "/graph/", "/performance/", "/stats/"]


def _up(worker: WorkerProcess) -> bool:
    worker.check_alive()
    try:
        httpx.get(worker.url + "/healthz", timeout=2.0)
    except httpx.HTTPError:
        return False
    return True


def test_worker_serves_only_its_own_pages_and_limits_bursts(
    stream_settings: Settings, tmp_path: Path
) -> None:
    s = stream_settings.replace(
        store_dsn=f"chdb://{tmp_path / 'chdb'}", database="dw", worker_web_port=free_port(),
        http_rate_per_s=0.5, http_rate_burst=BURST,
    )
    worker = WorkerProcess("web", s, tmp_path / "web").start()
    try:
        wait_for(lambda: _up(worker), 90, step=0.5, what="worker web port")
        for path in FAUST_PAGES:
            r = httpx.get(worker.url + path, timeout=5.0)
            assert r.status_code == 404, (path, r.status_code, r.text[:200])
        metrics = httpx.get(worker.url + "/metrics", timeout=5.0)
        assert metrics.status_code == 200 and "driftwatch_" in metrics.text
        health = httpx.get(worker.url + "/healthz", timeout=5.0)
        assert health.status_code in (200, 503) and "status" in health.json()

        def one(_: int) -> httpx.Response:
            with httpx.Client(timeout=10.0) as client:
                return client.get(worker.url + "/metrics")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(one, range(BURST)))
        codes = [r.status_code for r in burst]
        # 1 + len(FAUST_PAGES) + 2 requests came before: the bucket ran dry in the burst
        assert codes.count(429) >= len(FAUST_PAGES) and set(codes) == {200, 429}, codes
        limited = next(r for r in burst if r.status_code == 429)
        assert 1 <= int(limited.headers["Retry-After"]) <= 2
        # another client address has its own bucket
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=5.0) as other:
            assert other.get(worker.url + "/metrics").status_code == 200
    finally:
        code = worker.terminate()
    log = worker.log_path.read_text(errors="replace")
    assert code == 0, worker.tail()
    access = re.findall(r"driftwatch\.worker\.web: GET (\S+) (\d{3})", log)
    assert ("/metrics", "429") in access and ("/metrics", "200") in access
    assert ("unmatched", "404") in access
    assert len(access) >= 1 + len(FAUST_PAGES) + 2 + BURST + 1
