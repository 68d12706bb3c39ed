"""The detection bench's stored history: a scenario's files split where the monitors
start (``bench/support/replay.split_at``), events by event time and labels by label time,
nothing lost or repeated."""

from __future__ import annotations

import json
from pathlib import Path

from bench.support.replay import split_at


def test_split_at_keeps_every_line_once_on_its_side(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    labels = tmp_path / "labels.jsonl"
    times = ["2026-03-16T00:00:00Z", "2026-03-16T00:30:00Z", "2026-03-16T00:59:59.999Z",
             "2026-03-16T01:00:00Z", "2026-03-16T02:00:00Z"]
    events.write_text("".join(json.dumps({"event_id": f"e{i}", "event_time": t}) + "\n"
                              for i, t in enumerate(times)) + "\n")
    label_times = ["2026-03-16T03:00:00Z", "2026-03-16T00:10:00Z", "2026-03-16T01:00:00Z"]
    # the last line without its newline: it must not run into the next file's first
    labels.write_text("\n".join(json.dumps({"event_id": f"e{i}", "label_time": t})
                                for i, t in enumerate(label_times)))
    (ev0, lab0), (ev1, lab1) = split_at(events, labels, 3600)
    ids = [[json.loads(x)["event_id"] for x in p.read_text().splitlines()]
           for p in (ev0, ev1, lab0, lab1)]
    assert ids == [["e0", "e1", "e2"], ["e3", "e4"], ["e1"], ["e0", "e2"]]
    assert split_at(events, labels, 10 * 3600)[1][0].read_text() == ""
