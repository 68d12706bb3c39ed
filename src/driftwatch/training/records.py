"""Reading a training snapshot into one columnar frame, every bad record reported.

Formats (contract ``training.md``): JSON lines (``.jsonl``, ``.jsonl.gz``), CSV
(``.csv``, features as ``features.<name>`` columns) and Parquet (``.parquet``). Each
record is validated against the contract: the scored-transaction input fields
(``event_id``, ``event_time`` with a UTC offset, ``amount`` as an exact decimal,
``currency``, ``mcc``, ``merchant_id``, ``card_id`` required; optional fields checked
when present), ``label`` 0 or 1, optional ``label_source`` and ``ingested_at``. A
record that fails goes to :attr:`Snapshot.bad` with its file, line (JSON lines, CSV:
the file's line number) or row (Parquet, from 1), and a reason; duplicated
``event_id`` values are reported there too (the first occurrence is kept). Nothing
is dropped silently.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     _ = (Path(d) / "a.jsonl").write_bytes(GOOD + b"\\n" + b'{"label": 1}\\n')
...     snap = read_snapshot(d)
>>> len(snap.frame), [(b.file, b.line, b.reason) for b in snap.bad]
(1, [('a.jsonl', 2, 'missing_field:event_id')])
>>> int(snap.frame["amount_minor"][0]), snap.frame["mcc"][0]
(489237, '5967')
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from driftwatch.amounts import AmountError, parse_amount
from driftwatch.decoding import reason_for
from driftwatch.errors import DriftwatchError
from driftwatch.events import CHANNELS, LABEL_SOURCES, MAX_PAYLOAD_BYTES

SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".parquet")
REQUIRED = ("event_id", "event_time", "amount", "currency", "mcc", "merchant_id", "card_id",
            "label")
MAX_BAD_KEPT = 100_000
"""At most this many bad records are kept with their detail (all are counted)."""
GOOD = (
    b'{"event_id": "e-1", "event_time": "2026-03-18T14:00:03Z", "amount": "4892.37",'
    b' "currency": "USD", "mcc": "5967", "merchant_id": "m-417", "card_id": "c-1",'
    b' "merchant_country": "LT", "beneficiary_name": "INTL-PAY-GLOBALSERV",'
    b' "channel": "ecom", "features": {"transactions_24h": 14}, "label": 0}'
)
"""A valid training record (docs and tests)."""


class SnapshotError(DriftwatchError):
    """A training snapshot could not be read (missing directory, no data files)."""


Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class _Wire(msgspec.Struct, gc=False):
    event_id: Id
    event_time: dt.datetime
    amount: msgspec.Raw
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
    mcc: Annotated[str, msgspec.Meta(pattern="^[0-9]{4}$")]
    merchant_id: Id
    card_id: Id
    label: Literal[0, 1]
    merchant_country: Annotated[str, msgspec.Meta(pattern="^([A-Z]{2})?$")] = ""
    merchant_registered_at: dt.date | None = None
    beneficiary_name: Annotated[str, msgspec.Meta(max_length=256)] = ""
    channel: Literal["card_present", "ecom", "upi", "transfer", "atm", "other", ""] = ""
    features: dict[str, float | str | bool | None] = msgspec.field(default_factory=dict)
    label_source: Literal["chargeback", "analyst", "customer_report", "other", ""] = ""
    ingested_at: dt.datetime | None = None


_decoder = msgspec.json.Decoder(_Wire)


@dataclass(frozen=True)
class BadRecord:
    """One record that broke the contract: where it is and why."""

    file: str
    line: int
    reason: str
    detail: str
    unit: str = "line"  # "line" (JSON lines, CSV) or "row" (Parquet)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, self.unit: self.line, "reason": self.reason,
                "detail": self.detail[:200]}


@dataclass
class Snapshot:
    """A read snapshot: valid records as columns, and the bad ones.

    ``frame`` columns: ``file`` (name), ``line`` (line or row), ``event_id``,
    ``event_time`` and ``ingested_at`` (UTC, ``NaT`` when absent), ``amount_minor``,
    ``currency``, ``mcc``, ``merchant_id``, ``merchant_country``,
    ``merchant_registered_at`` (datetime, ``NaT`` when absent), ``card_id``,
    ``beneficiary_name``, ``channel``, ``label``, ``label_source``, and one column
    ``features.<name>`` per feature seen (float when every value is numeric).
    """

    directory: Path
    files: tuple[str, ...]
    frame: pd.DataFrame
    bad: list[BadRecord]
    bad_total: int


def data_files(directory: str | Path) -> list[Path]:
    """The snapshot's data files (by suffix), sorted by name; others are ignored."""
    root = Path(directory)
    if not root.is_dir():
        raise SnapshotError(f"{root}: not a directory")
    return sorted(p for p in root.iterdir()
                  if p.is_file() and any(p.name.endswith(s) for s in SUFFIXES))


def _amount(value: msgspec.Raw) -> int:
    raw = bytes(value)
    if raw[:1] == b'"' and raw[-1:] == b'"' and b"\\" not in raw:
        return parse_amount(raw[1:-1])
    if raw[:1] in (b"{", b"[", b"t", b"f", b"n"):
        raise AmountError("wrong_type:amount", f"amount must be a string or number: {raw[:20]!r}")
    return parse_amount(raw)


def _utc(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise AmountError(f"no_timezone:{field}", f"{field} has no UTC offset")
    return value.astimezone(dt.UTC)


_COLS = ("event_id", "event_time", "amount_minor", "currency", "mcc", "merchant_id",
         "merchant_country", "merchant_registered_at", "card_id", "beneficiary_name",
         "channel", "label", "label_source", "ingested_at")


def _json_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        yield from fh


_list_decoder = msgspec.json.Decoder(list[_Wire])
_CHUNK_LINES = 50_000


def _decode_lines(lines: list[bytes], first: int, name: str,
                  bad: list[BadRecord]) -> tuple[list[_Wire], list[int]]:
    """Decode a chunk of lines: as one JSON array when every line is a good record (the
    fast path), else line by line with a reason for each bad one."""
    if all(0 < len(x) <= MAX_PAYLOAD_BYTES and not x.isspace() for x in lines):
        try:
            ws = _list_decoder.decode(b"[" + b",".join(lines) + b"]")
        except (msgspec.DecodeError, ValueError, TypeError, UnicodeDecodeError):
            ws = []
        if len(ws) == len(lines):  # each non-blank line gave exactly one record
            return ws, list(range(first, first + len(lines)))
    out: list[_Wire] = []
    nums: list[int] = []
    for lineno, data in enumerate(lines, start=first):
        if not data.strip():
            bad.append(BadRecord(name, lineno, "blank_line", "empty line"))
            continue
        if len(data) > MAX_PAYLOAD_BYTES:
            bad.append(BadRecord(name, lineno, "payload_too_large", f"{len(data)} bytes"))
            continue
        try:
            out.append(_decoder.decode(data))
        except (msgspec.DecodeError, ValueError, TypeError, UnicodeDecodeError) as exc:
            bad.append(BadRecord(name, lineno, reason_for(exc), str(exc)))
            continue
        nums.append(lineno)
    return out, nums


def _columns(ws: list[_Wire], nums: list[int], name: str,
             bad: list[BadRecord]) -> pd.DataFrame:
    """Check amounts and time zones, then the chunk's columns."""
    keep: list[_Wire] = []
    lines: list[int] = []
    amounts: list[int] = []
    utc = dt.UTC
    for w, lineno in zip(ws, nums, strict=True):
        try:
            amounts.append(_amount(w.amount))
            if w.event_time.tzinfo is not utc:
                w.event_time = _utc(w.event_time, "event_time")  # type: ignore[assignment]
            if w.ingested_at is not None and w.ingested_at.tzinfo is not utc:
                w.ingested_at = _utc(w.ingested_at, "ingested_at")
        except AmountError as exc:
            if len(amounts) > len(keep):
                amounts.pop()
            bad.append(BadRecord(name, lineno, exc.reason, str(exc)))
            continue
        keep.append(w)
        lines.append(lineno)
    frame = pd.DataFrame({
        "line": np.asarray(lines, dtype=np.int64),
        "event_id": [w.event_id for w in keep],
        "event_time": [w.event_time for w in keep],
        "amount_minor": np.asarray(amounts, dtype=np.int64),
        "currency": [w.currency for w in keep],
        "mcc": [w.mcc for w in keep],
        "merchant_id": [w.merchant_id for w in keep],
        "merchant_country": [w.merchant_country for w in keep],
        "merchant_registered_at": [w.merchant_registered_at for w in keep],
        "card_id": [w.card_id for w in keep],
        "beneficiary_name": [w.beneficiary_name for w in keep],
        "channel": [w.channel for w in keep],
        "label": np.asarray([w.label for w in keep], dtype=np.int64),
        "label_source": [w.label_source for w in keep],
        "ingested_at": [w.ingested_at for w in keep],
    })
    feats = [w.features for w in keep]
    if any(feats):
        f = pd.DataFrame.from_records(feats)
        f.columns = [f"features.{c}" for c in f.columns]
        frame = pd.concat([frame, f], axis=1)
    return frame


def _read_jsonl(path: Path, name: str, bad: list[BadRecord]) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    chunk: list[bytes] = []
    first = 1
    for lineno, raw in enumerate(_json_lines(path), start=1):
        chunk.append(raw.rstrip(b"\r\n"))
        if len(chunk) >= _CHUNK_LINES:
            parts.append(_columns(*_decode_lines(chunk, first, name, bad), name, bad))
            chunk, first = [], lineno + 1
    if chunk:
        parts.append(_columns(*_decode_lines(chunk, first, name, bad), name, bad))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True, sort=False)


_TZ = re.compile(r".*(Z|z|[+-]\d\d:?\d\d)$")
_PATTERNS = {"currency": r"[A-Z]{3}", "mcc": r"[0-9]{4}", "merchant_country": r"([A-Z]{2})?"}


def _check_table(raw: pd.DataFrame, name: str, first: int, unit: str,
                 bad: list[BadRecord]) -> pd.DataFrame:
    """Validate a CSV/Parquet table (all columns as text) row by row, vectorised."""
    lines = np.arange(first, first + len(raw), dtype=np.int64)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        bad.extend(BadRecord(name, int(i), f"missing_field:{missing[0]}",
                             f"no column {missing[0]!r}", unit) for i in lines)
        return pd.DataFrame()
    txt = raw.astype(object).where(raw.notna(), "").astype(str)
    reason = pd.Series("", index=raw.index, dtype=object)

    def fail(mask: pd.Series[bool] | np.ndarray[Any, Any], why: str) -> None:
        mask = np.asarray(mask) & (reason == "").to_numpy()
        reason[mask] = why

    for c in REQUIRED:
        fail(txt[c].str.len() == 0, f"missing_field:{c}")
    for c in ("event_id", "merchant_id", "card_id"):
        fail(txt[c].str.len() > 128, f"too_long:{c}")
    for c, pat in _PATTERNS.items():
        if c in txt:
            fail(~txt[c].str.fullmatch(pat), f"bad_format:{c}")
    fail(~txt["label"].isin(["0", "1", "0.0", "1.0", "True", "False"]), "bad_enum:label")
    if "channel" in txt:
        fail(~txt["channel"].isin(["", *CHANNELS]), "bad_enum:channel")
    if "label_source" in txt:
        fail(~txt["label_source"].isin(["", *LABEL_SOURCES]), "bad_enum:label_source")
    times: dict[str, pd.Series[Any]] = {}
    for c in ("event_time", "ingested_at"):
        if c not in txt:
            times[c] = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ms, UTC]")
            continue
        present = txt[c].str.len() > 0
        fail(present & ~txt[c].str.fullmatch(_TZ), f"no_timezone:{c}")
        parsed = pd.to_datetime(txt[c].where(present, None), utc=True, errors="coerce",
                                format="ISO8601")
        fail(present & parsed.isna(), f"bad_timestamp:{c}")
        times[c] = parsed
    reg = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ms]")
    if "merchant_registered_at" in txt:
        present = txt["merchant_registered_at"].str.len() > 0
        reg = pd.to_datetime(txt["merchant_registered_at"].where(present, None),
                             errors="coerce", format="%Y-%m-%d")
        fail(present & reg.isna(), "bad_date:merchant_registered_at")
    amounts = np.zeros(len(raw), dtype=np.int64)
    memo: dict[str, int | str] = {}
    for i, text in enumerate(txt["amount"].tolist()):
        got = memo.get(text)
        if got is None:
            try:
                got = parse_amount(text)
            except AmountError as exc:
                got = exc.reason
            memo[text] = got
        if isinstance(got, str):
            if reason.iat[i] == "":
                reason.iat[i] = got
        else:
            amounts[i] = got
    bad_rows = (reason != "").to_numpy()
    for i in np.flatnonzero(bad_rows)[:MAX_BAD_KEPT]:
        bad.append(BadRecord(name, int(lines[i]), str(reason.iat[i]),
                             f"{reason.iat[i]} in {unit} {lines[i]}", unit))
    if bad_rows.sum() > MAX_BAD_KEPT:
        bad.append(BadRecord(name, 0, "more_bad_records",
                             f"{int(bad_rows.sum()) - MAX_BAD_KEPT} more", unit))
    ok = ~bad_rows

    def col(c: str) -> pd.Series[Any]:
        return txt[c][ok] if c in txt else pd.Series("", index=raw.index[ok])

    frame = pd.DataFrame({
        "line": lines[ok],
        "event_id": col("event_id").to_numpy(),
        "event_time": times["event_time"][ok].to_numpy(),
        "amount_minor": amounts[ok],
        "currency": col("currency").to_numpy(),
        "mcc": col("mcc").to_numpy(),
        "merchant_id": col("merchant_id").to_numpy(),
        "merchant_country": col("merchant_country").to_numpy(),
        "merchant_registered_at": reg[ok].to_numpy(),
        "card_id": col("card_id").to_numpy(),
        "beneficiary_name": col("beneficiary_name").to_numpy(),
        "channel": col("channel").to_numpy(),
        "label": txt["label"][ok].isin(["1", "1.0", "True"]).astype(np.int64).to_numpy(),
        "label_source": col("label_source").to_numpy(),
        "ingested_at": times["ingested_at"][ok].to_numpy(),
    })
    for c in raw.columns:
        if str(c).startswith("features."):
            values = raw[c][ok].replace("", None)
            num = pd.to_numeric(values, errors="coerce")
            frame[str(c)] = (num.astype(np.float64) if num.notna().sum() == values.notna().sum()
                             else values.astype(object)).to_numpy()
    return frame


def _read_table(path: Path, name: str, bad: list[BadRecord]) -> pd.DataFrame:
    try:
        if path.name.endswith(".csv"):
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
            return _check_table(raw, name, 2, "line", bad)
        raw = pq.read_table(path).to_pandas()
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        bad.append(BadRecord(name, 0, "unreadable_file", str(exc)[:200]))
        return pd.DataFrame()
    return _check_table(raw, name, 1, "row", bad)


def _normalise(frames: Iterable[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    parts = []
    for name, f in frames:
        if f.empty:
            continue
        f = f.copy()
        f.insert(0, "file", name)
        parts.append(f)
    if not parts:
        return pd.DataFrame(columns=["file", "line", *_COLS])
    out = pd.concat(parts, ignore_index=True, sort=False)
    for c in ("event_time", "ingested_at"):
        out[c] = pd.to_datetime(out[c], utc=True)
    out["merchant_registered_at"] = pd.to_datetime(out["merchant_registered_at"])
    out["label"] = out["label"].astype(np.int64)
    out["amount_minor"] = out["amount_minor"].astype(np.int64)
    for c in ("file", "currency", "mcc", "merchant_country", "channel", "label_source"):
        out[c] = out[c].fillna("").astype("category")
    for c in ("merchant_id", "card_id", "beneficiary_name", "event_id"):
        out[c] = out[c].fillna("").astype(object)
    return out


def read_file(path: Path, bad: list[BadRecord]) -> pd.DataFrame:
    """One data file's valid records (``line`` column, no ``file``); bad ones to ``bad``."""
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        try:
            return _read_jsonl(path, name, bad)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            bad.append(BadRecord(name, 0, "unreadable_file", str(exc)[:200]))
            return pd.DataFrame()
    return _read_table(path, name, bad)


def read_snapshot(directory: str | Path) -> Snapshot:
    """Read every data file of ``directory`` (see the module doc).

    Raises
    ------
    SnapshotError
        When ``directory`` is not a directory or holds no data file.
    """
    paths = data_files(directory)
    if not paths:
        raise SnapshotError(f"{directory}: no data files ({', '.join(SUFFIXES)})")
    bad: list[BadRecord] = []
    frame = _normalise((p.name, read_file(p, bad)) for p in paths)
    dup = frame["event_id"].duplicated(keep="first")
    if dup.any():
        d = frame.loc[dup]
        for file, line, eid in zip(d["file"].tolist(), d["line"].tolist(),
                                   d["event_id"].tolist(), strict=True):
            bad.append(BadRecord(str(file), int(line), "duplicate:event_id",
                                 f"event_id {str(eid)[:64]!r} seen before"))
        frame = frame[~dup].reset_index(drop=True)
    total = len(bad)
    return Snapshot(Path(directory), tuple(p.name for p in paths), frame, bad[:MAX_BAD_KEPT],
                    total)
