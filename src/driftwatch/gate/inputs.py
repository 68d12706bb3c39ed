"""Reading the gate's inputs: traffic JSON lines and a training snapshot."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from driftwatch.gate.errors import GateError

MAX_LINE = 1 << 20


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                if len(line) > MAX_LINE:
                    raise GateError(f"{path}:{no}: line longer than {MAX_LINE} bytes")
                try:
                    doc = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    raise GateError(f"{path}:{no}: not JSON ({exc})") from None
                if not isinstance(doc, dict):
                    raise GateError(f"{path}:{no}: not a JSON object")
                yield doc
    except OSError as exc:
        raise GateError(f"{path}: {exc.strerror or exc}") from None


def _csv(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            yield _nest({k: _number(v) if k.startswith("features.") else v
                         for k, v in row.items()})


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def read_events(path: str | Path, limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Valid scored-transaction records of a JSON-lines file (``.gz`` too), at most
    ``limit``, and one ``"line N: reason"`` per line the event contract rejects."""
    from driftwatch.events import Rejection, parse_scored

    p = Path(path)
    out: list[dict[str, Any]] = []
    rejected: list[str] = []
    opener = gzip.open if p.name.endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            for no, line in enumerate(fh, 1):
                if len(out) >= limit:
                    break
                if not line.strip():
                    continue
                result = parse_scored(line.strip())
                if isinstance(result, Rejection):
                    rejected.append(f"line {no}: {result.reason}")
                    continue
                out.append(json.loads(line))
    except (OSError, EOFError) as exc:
        raise GateError(f"{p}: {getattr(exc, 'strerror', None) or exc}") from None
    if not out:
        first = f" ({rejected[0]})" if rejected else ""
        raise GateError(f"{p}: no valid events{first}")
    return out, rejected


def read_training(path: str | Path, limit: int) -> list[dict[str, Any]]:
    """Records of a training snapshot directory (JSON lines, CSV, Parquet), at most
    ``limit`` in all (file name order)."""
    d = Path(path)
    if not d.is_dir():
        raise GateError(f"--training {d}: not a directory")
    out: list[dict[str, Any]] = []
    for f in sorted(d.iterdir()):
        name = f.name
        if name.endswith((".jsonl", ".jsonl.gz")):
            it: Iterator[dict[str, Any]] = _jsonl(f)
        elif name.endswith(".csv"):
            it = _csv(f)
        elif name.endswith(".parquet"):
            import pandas as pd

            frame = pd.read_parquet(f)
            it = (_nest(r) for r in frame.to_dict(orient="records"))
        else:
            continue
        for rec in it:
            if len(out) >= limit:
                return out
            out.append(rec)
    return out


def _nest(row: dict[Any, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for k, v in row.items():
        key = str(k)
        if key.startswith("features."):
            rec.setdefault("features", {})[key[9:]] = v
        else:
            rec[key] = v
    return rec


def read_labels(path: str | Path, limit: int) -> dict[str, int]:
    """``txn_id -> label`` from a labels JSON-lines file (the latest line wins)."""
    out: dict[str, int] = {}
    for no, doc in enumerate(_jsonl(Path(path)), 1):
        if no > limit:
            break
        txn, label = doc.get("txn_id"), doc.get("label")
        if not isinstance(txn, str) or label not in (0, 1) or isinstance(label, bool):
            raise GateError(f"{path}:{no}: a label needs txn_id (string) and label (0 or 1)")
        out[txn] = int(label)
    return out
