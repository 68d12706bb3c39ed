"""Reading snapshots: every bad record named with file, line/row and reason; formats agree."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from driftwatch.simulate.training_data import flat_row, write_records
from driftwatch.training.records import GOOD, SnapshotError, read_snapshot

BASE = json.loads(GOOD)


def rec(**changes: object) -> dict[str, object]:
    out = dict(BASE)
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def test_jsonl_bad_records_are_named_never_dropped(tmp_path: Path) -> None:
    lines = [
        json.dumps(rec(event_id="e-1")),
        "{not json",
        json.dumps(rec(event_id="e-3", amount="10.375")),
        json.dumps(rec(event_id="e-4", label=None)),
        json.dumps(rec(event_id="e-5", event_time="2026-03-18T14:00:03")),
        "",
        json.dumps(rec(event_id="e-1")),
        json.dumps(rec(event_id="e-8", mcc="59A7")),
        json.dumps(rec(event_id="e-9", label=2)),
        json.dumps(rec(event_id="e-10", amount=4892.37)),
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    snap = read_snapshot(tmp_path)
    got = {(b.file, b.line): b.reason for b in snap.bad}
    assert got == {
        ("a.jsonl", 2): "invalid_json",
        ("a.jsonl", 3): "amount:too_many_decimals",
        ("a.jsonl", 4): "missing_field:label",
        ("a.jsonl", 5): "no_timezone:event_time",
        ("a.jsonl", 6): "blank_line",
        ("a.jsonl", 7): "duplicate:event_id",
        ("a.jsonl", 8): "bad_format:mcc",
        ("a.jsonl", 9): "bad_enum:label",
    }
    assert snap.bad_total == 8
    assert snap.frame["event_id"].tolist() == ["e-1", "e-10"]
    assert snap.frame["line"].tolist() == [1, 10]
    assert snap.frame["amount_minor"].tolist() == [489237, 489237]


def test_csv_rows_are_reported_by_file_line(tmp_path: Path) -> None:
    rows = [rec(event_id=f"e-{i}") for i in range(3)]
    rows[1]["mcc"] = "12"
    write_records(tmp_path / "s.csv", rows, "csv")
    snap = read_snapshot(tmp_path)
    assert [(b.file, b.line, b.reason) for b in snap.bad] == [("s.csv", 3, "bad_format:mcc")]
    assert snap.frame["line"].tolist() == [2, 4]  # line 1 is the header
    assert snap.frame["features.transactions_24h"].tolist() == [14.0, 14.0]


def test_formats_read_the_same_records(tmp_path: Path) -> None:
    rows = [rec(event_id=f"e-{i}", amount=f"{i + 1}.{i:02d}", label=i % 2) for i in range(20)]
    frames = {}
    for fmt in ("jsonl", "jsonl.gz", "csv", "parquet"):
        d = tmp_path / fmt
        d.mkdir()
        write_records(d / f"x.{fmt}", rows, fmt)  # type: ignore[arg-type]
        snap = read_snapshot(d)
        assert not snap.bad, (fmt, snap.bad[:3])
        frames[fmt] = snap.frame
    cols = ["event_id", "amount_minor", "mcc", "label", "merchant_country", "channel",
            "features.transactions_24h"]
    for fmt, frame in frames.items():
        pd.testing.assert_frame_equal(
            frame[cols].astype(str).reset_index(drop=True),
            frames["jsonl"][cols].astype(str).reset_index(drop=True), obj=fmt)
    assert frames["jsonl"]["amount_minor"].tolist()[:3] == [100, 201, 302]


def test_parquet_bad_rows_and_broken_gzip(tmp_path: Path) -> None:
    rows = [flat_row(rec(event_id=f"e-{i}")) for i in range(3)]
    rows[2]["amount"] = "-5"
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet", index=False)
    (tmp_path / "z.jsonl.gz").write_bytes(gzip.compress(GOOD + b"\n")[:20])
    snap = read_snapshot(tmp_path)
    reasons = sorted((b.file, b.line, b.reason, b.unit) for b in snap.bad)
    assert ("p.parquet", 3, "amount:negative", "row") in reasons
    assert any(r[0] == "z.jsonl.gz" and r[2] == "unreadable_file" for r in reasons)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="not a directory"):
        read_snapshot(tmp_path / "nope")
    with pytest.raises(SnapshotError, match="no data files"):
        read_snapshot(tmp_path)
