"""Reading a training snapshot in each format of training.md, and labels."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from driftwatch.gate.errors import GateError
from driftwatch.gate.inputs import read_labels, read_training


def test_training_snapshot_in_every_format(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("mcc,amount,features.n,label\n5967,10.37,3,0\n")
    pd.DataFrame([{"mcc": "1234", "amount": "1.00", "features.n": 1, "label": 1}]).to_parquet(
        tmp_path / "b.parquet")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"mcc": "1111", "features": {"n": 2}, "label": 0}) + "\n")
    (tmp_path / "notes.txt").write_text("ignored")
    recs = read_training(tmp_path, 10)
    assert [r["mcc"] for r in recs] == ["5967", "1234", "1111"]
    assert [r["features"]["n"] for r in recs] == [3, 1, 2]
    assert read_training(tmp_path, 2) == recs[:2]
    with pytest.raises(GateError, match="not a directory"):
        read_training(tmp_path / "a.csv", 10)


def test_labels(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text('{"txn_id": "t1", "label": 1}\n{"txn_id": "t1", "label": 0}\n')
    assert read_labels(path, 10) == {"t1": 0}
    path.write_text('{"txn_id": "t1", "label": true}\n')
    with pytest.raises(GateError, match=r"l\.jsonl:1: a label needs"):
        read_labels(path, 10)
