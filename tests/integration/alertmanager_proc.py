"""A real Alertmanager process and a tiny webhook receiver, for the integration tests.

The Alertmanager runs Debian's ``prometheus-alertmanager`` on a free local port with a
test config derived from ``deploy/alertmanager/alertmanager.yml``: the same routes,
grouping and inhibition, every receiver replaced by a webhook to the local receiver
(``/<receiver name>``), and the group timings shortened to seconds.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    """Collects the JSON bodies POSTed to it, with the path and the headers."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._cond:
                    receiver.posts.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": json.loads(body or b"null"),
                        }
                    )
                    receiver._cond.notify_all()
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(
        self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Wait until ``pred(posts)`` holds; return the posts (raise on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.posts):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"webhook condition not met; posts: {self.posts}")
                self._cond.wait(left)
            return list(self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _shorten(route: dict[str, Any]) -> None:
    for key, value in (("group_wait", "1s"), ("group_interval", "1s"),
                       ("repeat_interval", "1h")):
        if key in route:
            route[key] = value
    for child in route.get("routes", []):
        _shorten(child)


def am_test_config(receiver_url: str) -> dict[str, Any]:
    """The deploy config with local webhook receivers and second-scale timings."""
    cfg: dict[str, Any] = yaml.safe_load(DEPLOY_CONFIG.read_text())
    cfg["templates"] = [str(DEPLOY_CONFIG.parent / "templates" / "*.tmpl")]
    cfg["receivers"] = [
        {
            "name": r["name"],
            "webhook_configs": [{"url": f"{receiver_url}/{r['name']}", "send_resolved": True}],
        }
        for r in cfg["receivers"]
    ]
    route = cfg["route"]
    route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    _shorten(route)
    return cfg


class AlertmanagerProcess:
    """Start, stop and restart one Alertmanager on a fixed port and storage path."""

    def __init__(self, workdir: Path, config: dict[str, Any], *,
                 web_config: Path | None = None, auth: tuple[str, str] | None = None) -> None:
        """``web_config``: a ``--web.config.file`` (basic auth); ``auth``: the credentials
        the readiness probe then sends."""
        if BINARY is None:
            raise RuntimeError("prometheus-alertmanager is not installed (scripts/setup.sh)")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / "alertmanager.yml"
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.storage = workdir / "data"
        self.storage.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "alertmanager.log"
        self.web_config = web_config
        self.auth = auth

    def start(self, timeout: float = 20.0) -> None:
        assert BINARY is not None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={self.config_file}",
                    f"--storage.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                    *([f"--web.config.file={self.web_config}"] if self.web_config else []),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log.read_text()[-2000:]}")
            try:
                ready = httpx.get(f"{self.url}/-/ready", timeout=1, auth=self.auth)
                if ready.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("alertmanager did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def alerts(self, **params: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=5)
        resp.raise_for_status()
        data: list[dict[str, Any]] = resp.json()
        return data
