"""The output of one simulator run (:class:`Simulation`) and its files (:func:`write`)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.errors import SimulationError
from driftwatch.simulate.encode import EventEncoder, LabelEncoder
from driftwatch.simulate.ids import CARD
from driftwatch.simulate.labels import Labels
from driftwatch.simulate.run import I64
from driftwatch.simulate.scenario import Scenario

CHUNK = 100_000
_IOV_MAX = min(1024, os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024)


@dataclass(frozen=True, eq=False)
class Simulation:
    """The output of :func:`generate`.

    ``events`` (sorted by event time) and ``labels`` (sorted by label time) are
    JSON lines without the newline, built on first access; :meth:`iter_events`
    streams the events in chunks instead. ``truth`` is JSON-ready.
    """

    scenario: Scenario
    seed: int
    start: dt.datetime
    end: dt.datetime
    truth: dict[str, Any]
    event_time_ms: I64
    label_time_ms: I64
    event_card: npt.NDArray[np.int32]  # card number of each event (Kafka key)
    _events: EventEncoder = field(repr=False)
    _labels: Labels = field(repr=False)
    _label_encoder: LabelEncoder = field(repr=False)

    @property
    def n_events(self) -> int:
        return int(self.event_time_ms.shape[0])

    @property
    def time_scale(self) -> float:
        """Factor applied to the scenario's schedule (< 1 when ``days`` was shortened).

        Settings measured in event time that assume the scenario's own length (the
        monitors' warm-up) should be scaled by it too.
        """
        days = (self.end - self.start).total_seconds() / 86400
        return min(1.0, days / self.scenario.traffic.days)

    @functools.cached_property
    def events(self) -> list[bytes]:
        out: list[bytes] = []
        for chunk in self.iter_events():
            out.extend(chunk)
        return out

    @functools.cached_property
    def labels(self) -> list[bytes]:
        lab = self._labels
        return self._label_encoder.lines(lab.row, lab.label, lab.time, lab.source)

    def iter_events(self, chunk: int = CHUNK, *, newline: bool = False) -> Iterator[list[bytes]]:
        """Event lines in chunks of ``chunk`` rows (memory stays bounded);
        ``newline=True`` ends each line with ``\\n`` (file and socket writers)."""
        for lo in range(0, self.n_events, chunk):
            yield self._events.lines(lo, min(self.n_events, lo + chunk), newline=newline)

    def card_keys(self, lo: int, hi: int) -> list[bytes]:
        """Kafka keys (card ids) of events ``lo..hi``."""
        return [(CARD % c).encode() for c in self.event_card[lo:hi].tolist()]

    def label_cards(self) -> list[int]:
        """Card number of the transaction behind each label (in label order)."""
        return [int(c) for c in self.event_card[self._labels.row].tolist()]


def write(sim: Simulation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``events.jsonl``, ``labels.jsonl`` and ``truth.json`` into ``out_dir``.

    Events are formatted chunk by chunk while a writer thread hands the previous
    chunk to the kernel (``os.writev`` releases the GIL), so disk time overlaps
    formatting time.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("events.jsonl", "labels.jsonl", "truth.json")}
    _write_lines(paths["events.jsonl"], sim.iter_events(newline=True))
    _write_lines(paths["labels.jsonl"], iter([[line + b"\n" for line in sim.labels]]))
    paths["truth.json"].write_text(json.dumps(sim.truth, indent=1) + "\n", encoding="utf-8")
    return paths


def _write_lines(path: Path, chunks: Iterator[list[bytes]]) -> None:
    """Write chunks of newline-terminated lines to ``path`` from a background thread."""
    todo: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def drain() -> None:
        try:
            while (chunk := todo.get()) is not None:
                for i in range(0, len(chunk), _IOV_MAX):
                    part = chunk[i : i + _IOV_MAX]
                    done, want = os.writev(fd, part), sum(map(len, part))
                    if done < want:  # short write: finish it the slow way
                        rest = b"".join(part)[done:]
                        while rest:
                            rest = rest[os.write(fd, rest):]
        except BaseException as exc:  # re-raised in the caller
            failure.append(exc)
            while todo.get() is not None:
                pass

    worker = threading.Thread(target=drain, name="simulate-writer", daemon=True)
    worker.start()
    try:
        for chunk in chunks:
            if failure:
                break
            todo.put(chunk)
    finally:
        todo.put(None)
        worker.join()
        os.close(fd)
    if failure:
        raise SimulationError(f"{path}: write failed: {failure[0]}") from failure[0]
