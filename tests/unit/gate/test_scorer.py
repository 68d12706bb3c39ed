"""Scorer adapters: module/file/HTTP specs, batching, budget, and misbehaving scorers."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from driftwatch.gate.errors import GateError, ScorerError
from driftwatch.gate.scorer import MAX_BATCH, Scorer, open_scorer, resolve
from tests.unit.gate import scorers

FILE = "tests/unit/gate/scorers.py"


def _open(spec: str, **kw: Any) -> Scorer:
    opts: dict[str, Any] = {"batch_size": MAX_BATCH, "max_calls": 0}
    opts.update(kw)
    return open_scorer(spec, **opts)


def test_module_and_file_specs_resolve_to_the_same_function() -> None:
    events = scorers.traffic(20)
    by_module = _open("tests.unit.gate.scorers:champion").score(events)
    by_file = _open(f"{FILE}:champion").score(events)
    assert by_module.tolist() == by_file.tolist() == scorers.champion(events)


@pytest.mark.parametrize("spec", ["nocolon", "a.b:", "tests/unit/gate/missing.py:x",
                                  "tests.unit.gate.scorers:absent", "json:__doc__"])
def test_bad_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(GateError):
        resolve(spec)


@pytest.mark.parametrize(("name", "message"), [
    ("nan", "NaN or infinite score(s), first at event 0"),
    ("short", "returned 19 scores for 20 events"),
    ("above_one", "score 1.5 at event 0 is outside [0, 1]"),
    ("boom", "failed: RuntimeError: model server on fire"),
])
def test_misbehaving_scorers_are_scorer_errors(name: str, message: str) -> None:
    with pytest.raises(ScorerError, match=re.escape(message)):
        _open(f"{FILE}:{name}").score(scorers.traffic(20))


def test_batches_never_exceed_the_limit_and_the_budget_is_enforced() -> None:
    sizes: list[int] = []

    def fn(events: list[dict[str, Any]]) -> list[float]:
        sizes.append(len(events))
        return [0.5] * len(events)

    s = Scorer("x", fn, batch_size=MAX_BATCH)
    assert len(s.score([{}] * 25_001)) == 25_001
    assert sizes == [10_000, 10_000, 5_001] and s.calls == 3
    with pytest.raises(ValueError, match="batch_size=10001"):
        Scorer("x", fn, batch_size=MAX_BATCH + 1)
    budget = Scorer("x", fn, batch_size=10, max_calls=2)
    with pytest.raises(ScorerError, match="request budget of 2 calls"):
        budget.score([{}] * 21)


def test_sha256_for_a_scorer_without_artifact_is_a_usage_error() -> None:
    with pytest.raises(GateError, match="loads no artifact"):
        _open(f"{FILE}:champion", sha256="0" * 64)


class _Handler(BaseHTTPRequestHandler):
    fail_first = 0
    seen: list[tuple[str | None, int]] = []  # noqa: RUF012 - test server state

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.headers.get("Authorization"), len(body["events"])))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        if self.headers.get("Authorization") != "Bearer s3cret":
            self.send_response(401)
            self.end_headers()
            return
        out = json.dumps({"scores": scorers.champion(body["events"])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    _Handler.seen = []
    _Handler.fail_first = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/score"
    finally:
        server.shutdown()
        server.server_close()


def test_http_scorer_sends_the_token_batches_and_retries_5xx(http_url: str) -> None:
    _Handler.fail_first = 1
    s = _open(http_url, token="s3cret", batch_size=7, retries=2)
    events = scorers.traffic(20)
    assert s.score(events).tolist() == pytest.approx(scorers.champion(events))
    assert [n for _, n in _Handler.seen] == [7, 7, 7, 6]  # one 503 retried
    assert {a for a, _ in _Handler.seen} == {"Bearer s3cret"}


def test_http_scorer_without_token_is_refused_and_reported(http_url: str) -> None:
    with pytest.raises(ScorerError, match="HTTP 401"):
        _open(http_url, token="").score(scorers.traffic(3))


def test_http_scorer_gives_up_after_its_retries(http_url: str) -> None:
    _Handler.fail_first = 5
    with pytest.raises(ScorerError, match="gave up after 2 attempts"):
        _open(http_url, token="s3cret", retries=1).score(scorers.traffic(3))
