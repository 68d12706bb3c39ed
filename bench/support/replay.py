"""Replay one simulated scenario through the workers' pipeline into a throwaway store.

Shared by the benches that score whole-pipeline behaviour (``bench/detection.py``,
``bench/calibration_monitor.py``): generate the scenario, write its files, open a fresh
database in the embedded ClickHouse (one path per process: a chdb rule), replay events
and labels in event time with the monitors' warm-up scaled to the scenario's schedule,
and collect every alert state change in a memory sink.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from driftwatch.alerts.model import Alert
from driftwatch.alerts.sinks import MemorySink
from driftwatch.assemble import build_pipeline
from driftwatch.settings import Settings
from driftwatch.simulate import Simulation, generate, load_scenario, write
from driftwatch.sources.replay import replay
from driftwatch.store.client import Store, open_store


@dataclass(frozen=True)
class Replayed:
    """One replayed scenario.

    Attributes
    ----------
    sim : Simulation
        The generated scenario (its ``truth``, ``n_events``).
    events_path : Path
        The events file that was replayed.
    store : Store
        The store it was replayed into; dropped when the context exits.
    alerts : list of Alert
        Every alert state change the pipeline sent, in order.
    seconds : float
        Wall time of the replay alone (not generation).
    """

    sim: Simulation
    events_path: Path
    store: Store
    alerts: list[Alert]
    seconds: float


def split_at(events: Path, labels: Path, quiet_s: float) -> list[tuple[Path, Path]]:
    """The events (sorted by event time) and labels of a scenario as two pairs of files:
    before and from ``quiet_s`` seconds after the first event (labels by label time)."""
    def when(line: bytes, key: str) -> dt.datetime:
        return dt.datetime.fromisoformat(json.loads(line)[key].replace("Z", "+00:00"))

    with events.open("rb") as fh:
        lines = [x if x.endswith(b"\n") else x + b"\n" for x in fh if x.strip()]
    if not lines:
        return [(events, labels)]
    cut = when(lines[0], "event_time") + dt.timedelta(seconds=quiet_s)
    i = bisect.bisect_left([when(x, "event_time") for x in lines], cut)
    with labels.open("rb") as fh:
        label_lines = [x if x.endswith(b"\n") else x + b"\n" for x in fh if x.strip()]
    early = [when(x, "label_time") < cut for x in label_lines]
    out = []
    for part, (ev, lab) in enumerate(((lines[:i], [x for x, e in zip(label_lines, early,
                                                                       strict=True) if e]),
                                      (lines[i:], [x for x, e in zip(label_lines, early,
                                                                     strict=True) if not e]))):
        ev_path = events.with_name(f"{events.stem}.part{part}.jsonl")
        lab_path = labels.with_name(f"{labels.stem}.part{part}.jsonl")
        ev_path.write_bytes(b"".join(ev))
        lab_path.write_bytes(b"".join(lab))
        out.append((ev_path, lab_path))
    return out


@contextmanager
def replayed(
    root: Path, name: str, seed: int, days: float | None, rate: float | None, *,
    out: str | None = None, warmup_s: int | None = None, db_prefix: str = "b",
    quiet_s: float = 0.0,
) -> Iterator[Replayed]:
    """Generate scenario ``name`` (``seed``, ``days``, ``rate``) and replay it.

    Parameters
    ----------
    root : Path
        Working folder: the scenario's files go to ``root / out`` and the embedded
        ClickHouse to ``root / chdb-<pid>``.
    out : str, optional
        Folder name for the files; default ``<name with ':' as '-'>-<seed>``.
    warmup_s : int, optional
        Monitor warm-up; default the configured one scaled by the scenario's time scale
        (a shortened scenario has its schedule compressed: so is the warm-up), at
        least an hour.
    db_prefix : str
        Prefix of the throwaway database's name.
    quiet_s : float
        Seconds of event time from the first event stored with the monitors off
        (``monitor_detectors=none``: stored history, ingest cost only); the monitors
        start on the rest, catching up ``monitor_max_catchup`` passes. Default 0.

    Yields
    ------
    Replayed
        The replay; its store is dropped when the ``with`` block exits.
    """
    sim = generate(load_scenario(name), seed=seed, days=days, rate=rate)
    paths = write(sim, root / (out or f"{name.replace(':', '-')}-{seed}"))
    if warmup_s is None:
        warmup_s = max(3600, round(
            Settings.load(config_file=None).monitor_warmup_s * sim.time_scale))
    settings = Settings.load(
        config_file=None,
        overrides={"store_dsn": f"chdb://{root}/chdb-{os.getpid()}",
                   "database": f"{db_prefix}_{uuid.uuid4().hex[:10]}",
                   "monitor_warmup_s": warmup_s},
    )
    store = open_store(settings.store_dsn, settings.database, init=True)
    try:
        sink = MemorySink()
        started = time.perf_counter()
        files = [(paths["events.jsonl"], paths["labels.jsonl"])]
        if quiet_s > 0:
            files = split_at(paths["events.jsonl"], paths["labels.jsonl"], quiet_s)
        for i, (events, labels) in enumerate(files):
            quiet = i == 0 and len(files) == 2
            stage = settings.replace(monitor_detectors="none") if quiet else settings
            pipeline = build_pipeline(stage, store, extra_sinks=[sink])
            try:
                replay(pipeline, events, labels, batch_size=settings.batch_size)
            finally:
                pipeline.close()
        seconds = time.perf_counter() - started
        yield Replayed(sim, paths["events.jsonl"], store, sink.alerts, seconds)
    finally:
        store.drop()
