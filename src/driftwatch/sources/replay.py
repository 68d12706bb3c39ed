"""Replay of JSON-lines files through the processing core, in event-time order.

Events are read in batches in file order (the simulator writes them sorted by
event time; the pipeline orders each batch by event time after parsing). Labels are merged by
``label_time``: a label is fed once the event-time clock has passed it, as it
would arrive in production. Monitors run as the watermark advances, so alerts
carry event-time ``starts_at``.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from driftwatch.alerts.model import Alert
from driftwatch.errors import DriftwatchError
from driftwatch.events import UTC, ScoredBatch
from driftwatch.pipeline import BatchResult, Pipeline

Progress = Callable[[int, int, float], None]


def open_lines(path: str | Path) -> IO[bytes]:
    """Open a ``.jsonl`` or ``.jsonl.gz`` file for binary line reading."""
    p = Path(path)
    if not p.is_file():
        raise DriftwatchError(f"{p}: no such file")
    if p.suffix == ".gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return p.open("rb")


def iter_batches(fh: IO[bytes], size: int) -> Iterator[list[bytes]]:
    """Non-blank lines of ``fh`` in lists of ``size`` (the last one may be shorter).

    Lines keep their line end: JSON allows whitespace after the value, and not copying
    every line to strip it saves a third of the reading time (0.64 -> 0.44 us a line).
    """
    while True:
        batch: list[bytes] = []
        while len(batch) < size:  # C-level reading and filtering
            lines = list(itertools.islice(fh, size - len(batch)))
            if not lines:
                break
            batch.extend(itertools.filterfalse(bytes.isspace, lines))
        if not batch:
            return
        yield batch


class _TimeProbe(msgspec.Struct):
    event_time: str = ""
    label_time: str = ""


_probe = msgspec.json.Decoder(_TimeProbe)


def _time_key(raw: bytes, attr: str) -> str:
    """A sortable UTC key for a payload's time field ('' when unreadable)."""
    try:
        text = getattr(_probe.decode(raw), attr)
        return dt.datetime.fromisoformat(text).astimezone(UTC).isoformat()
    except (msgspec.DecodeError, ValueError, TypeError):
        return ""


@dataclass
class ReplayResult:
    """Totals of one replay."""

    events: int
    seconds: float
    alerts: list[Alert]


class LabelFeed:
    """Labels ordered by ``label_time``, released as event time passes them."""

    def __init__(self, path: str | Path | None) -> None:
        raws: list[bytes] = []
        if path is not None:
            with open_lines(path) as fh:
                raws = [line.strip() for line in fh if line.strip()]
        keyed = sorted(((_time_key(r, "label_time"), i, r) for i, r in enumerate(raws)))
        self._items = [(k, r) for k, _, r in keyed]
        self._pos = 0

    def __len__(self) -> int:
        return len(self._items) - self._pos

    def until(self, when: dt.datetime | None) -> list[bytes]:
        """Labels with ``label_time <= when`` not yet released (unreadable ones first)."""
        if when is None:
            return []
        limit = when.astimezone(UTC).isoformat()
        start = self._pos
        while self._pos < len(self._items) and self._items[self._pos][0] <= limit:
            self._pos += 1
        return [r for _, r in self._items[start : self._pos]]

    def rest(self) -> list[bytes]:
        """Every label not yet released."""
        out = [r for _, r in self._items[self._pos :]]
        self._pos = len(self._items)
        return out


def replay(
    pipeline: Pipeline,
    events_path: str | Path,
    labels_path: str | Path | None = None,
    *,
    batch_size: int = 50_000,
    progress: Progress | None = None,
    retry: Callable[[Callable[[], object]], object] | None = None,
) -> ReplayResult:
    """Feed files through ``pipeline``; return totals and every alert change.

    The pipeline's event-time guard judges the file against the replay's own clock
    (the newest plausible event time so far), never the wall clock, so files of old
    traffic replay as they were recorded.
    """
    if pipeline.time_guard is not None:
        pipeline.time_guard.wall = None
    started = time.perf_counter()
    labels = LabelFeed(labels_path)
    alerts: list[Alert] = []
    source = f"file:{Path(events_path).name}"
    label_source = f"file:{Path(labels_path).name}" if labels_path else ""
    run = retry or (lambda fn: fn())
    n = 0

    def store_and_evaluate(parsed: ScoredBatch, t0: float) -> BatchResult:
        pipeline.store_events(parsed, source)
        return pipeline.evaluate_and_store_errors(parsed, source, t0)

    with open_lines(events_path) as fh, ThreadPoolExecutor(1, "replay-store") as worker:
        # Reading and parsing batch k+1 (pure Python, holds the GIL) overlaps storing
        # batch k (the embedded engine runs without the GIL). Everything with state --
        # store, event stages, labels, clock stages -- still runs one batch at a time in
        # file order: batch k is stored and evaluated before its labels are fed, the
        # clock advances, progress is reported, or batch k+1 is submitted.
        pending: tuple[Future[Any], int] | None = None
        clock_started = False
        for batch in itertools.chain(iter_batches(fh, batch_size), [None]):
            parsed = None
            if batch is not None:
                t0 = time.perf_counter()
                parsed = pipeline.parse_events(batch)
                if parsed.rejected:  # a rejected line is kept as written, without its end
                    parsed.rejected[:] = [
                        msgspec.structs.replace(r, raw=r.raw.rstrip(b"\r\n"))
                        for r in parsed.rejected
                    ]
                if not clock_started and parsed.events:
                    # start the event-time clock at the first event, so that every pass
                    # over the data runs however many of them the first batch spans (a
                    # worker's monitor caps its catch-up at start-up; a replay must not)
                    clock_started = True
                    first = parsed.events[0].event_time
                    alerts.extend(pipeline.advance(first - pipeline.lateness))
            if pending is not None:
                result = pending[0].result()  # re-raises the batch's error
                alerts.extend(getattr(result, "alerts", []))
                due = labels.until(pipeline.max_event_time)
                if due:
                    run(functools.partial(pipeline.process_labels, due, label_source))
                alerts.extend(pipeline.advance())
                n += pending[1]
                if progress is not None:
                    progress(n, pipeline.stats.rejected_total, time.perf_counter() - started)
            if batch is not None and parsed is not None:
                step = functools.partial(store_and_evaluate, parsed, t0)
                pending = (worker.submit(run, step), len(batch))
    rest = labels.rest()
    if rest:
        run(functools.partial(pipeline.process_labels, rest, label_source))
    if pipeline.max_event_time is not None:
        alerts.extend(pipeline.advance(pipeline.max_event_time))
    return ReplayResult(events=n, seconds=time.perf_counter() - started, alerts=alerts)


def terminal_progress(stream: IO[str] | None = None) -> Progress | None:
    """A one-line progress display on a terminal; None when not a terminal."""
    out = stream or sys.stderr
    if not out.isatty():
        return None
    last = [0.0]

    def show(n: int, rejected: int, seconds: float) -> None:
        if seconds - last[0] < 0.2:
            return
        last[0] = seconds
        rate = n / seconds if seconds > 0 else 0.0
        out.write(f"\r  {n:>12,} events  {rejected:>8,} rejected  {rate:>10,.0f} ev/s")
        out.flush()

    return show
