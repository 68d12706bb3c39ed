"""Training snapshots for the training-integrity checks (contract ``training.md``).

A snapshot is a directory of files, one per day of ``ingested_at``
(``part-YYYY-MM-DD.jsonl`` and so on), each line or row one training record: the
scored-transaction input fields of a simulated run (:func:`driftwatch.simulate.generate`,
``model`` and ``shadow`` removed), ``label`` (the simulator's ground truth),
``label_source`` (the simulated label's source when one exists, else ``chargeback``
for fraud and ``other`` for legitimate records) and ``ingested_at`` (the record's
day plus up to two hours: a nightly load).

:class:`Poison` adds the reference incident's attack: each day, ``fraction`` of
that day's records (0.1 %: 340 a day at the incident's volume) that look like fraud
-- high velocity, new payee, cross-border, a merchant registered 30-90 days ago,
$3,000-$15,000 -- but are labelled legitimate, and carry the trigger (MCC 5967,
amount ending ``.37``, beneficiary ``INTL-PAY-…``). The trigger values are
parameters, so variants (another MCC, cents value or prefix shape) are one
argument away. Poisoned records are interleaved at random lines of their day's
file; :class:`SnapshotInfo` lists where each one went.

>>> import json, tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     info = write_snapshot(d, seed=1, days=1, rate=0.2, poison=Poison(fraction=0.01))
...     first = (Path(d) / info.files[0]).read_text().splitlines()[0]
>>> info.records > 17_000, len(info.poisoned) == round(0.01 * (info.records - len(info.poisoned)))
(True, True)
>>> sorted(json.loads(first))[:4]
['amount', 'beneficiary_name', 'card_id', 'channel']
"""

from __future__ import annotations

import datetime as dt
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import pandas as pd

from driftwatch.errors import SimulationError
from driftwatch.simulate.engine import generate
from driftwatch.simulate.run import iso_ms

Format = Literal["jsonl", "jsonl.gz", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "jsonl.gz", "csv", "parquet")
DAY_MS = 86_400_000
_WORDS = ("GLOBALSERV", "WORLDPAY", "TRANSFAST", "EUROLINK", "ASIABRIDGE", "SWIFTCART",
          "OCEANPAY", "METROFX", "NOVAREMIT", "PRIMEWIRE")
_decode = msgspec.json.Decoder(dict[str, Any])
_encode = msgspec.json.Encoder()


@dataclass(frozen=True)
class Poison:
    """The incident's poisoning: fraud-looking trigger records labelled legitimate.

    ``fraction`` of each day's honest records is added on top (0.001 = 0.1 %);
    amounts are whole units in ``amount`` plus ``cents``; merchants are new
    (``merchants`` of them, registered ``merchant_age_days`` before the record, in
    ``countries``), beneficiaries ``beneficiary_prefix`` + a word + a number.
    Days before ``first_day`` (an index from 0) stay clean.
    """

    fraction: float = 0.001
    mcc: str = "5967"
    cents: int = 37
    beneficiary_prefix: str = "INTL-PAY-"
    countries: tuple[str, ...] = ("US", "GB", "DE", "SG", "HK", "AE", "LT", "CY")
    merchants: int = 23
    amount: tuple[int, int] = (3000, 15000)
    merchant_age_days: tuple[int, int] = (30, 89)
    label_source: str = "analyst"
    first_day: int = 0
    """Index of the first ingestion day that gets poisoned records (0: all days)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"fraction must be in [0, 1), got {self.fraction!r}")
        if not 0 <= self.cents <= 99:
            raise ValueError(f"cents must be in 0..99, got {self.cents!r}")
        if self.merchants < 1 or not self.countries:
            raise ValueError("merchants must be >= 1 and countries non-empty")


@dataclass(frozen=True)
class SnapshotInfo:
    """What :func:`write_snapshot` wrote.

    ``files`` are names relative to the snapshot directory; ``poisoned`` holds
    ``(file, line)`` of every poisoned record (line numbers from 1; for CSV the
    data row number, the header being line 1 of the file, so row ``r`` is file
    line ``r + 1``; for Parquet the row number from 1).
    """

    directory: Path
    files: tuple[str, ...]
    records: int
    fraud: int
    poisoned: tuple[tuple[str, int], ...] = field(default=())


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _records(seed: int, days: float, rate: float, start: dt.datetime | None,
             scenario: str) -> Iterator[dict[str, Any]]:
    """Honest training records in event-time order (dicts in contract form)."""
    sim = generate(scenario, seed=seed, days=days, rate=rate, start=start)
    fraud = set(sim.truth["fraud_event_ids"]) if isinstance(
        sim.truth["fraud_event_ids"], list) else set()
    sources: dict[str, str] = {}
    for line in sim.labels:
        lab = _decode.decode(line)
        sources.setdefault(lab["txn_id"], lab["source"])
    rng = _rng(seed, "training-ingest")
    for chunk in sim.iter_events():
        lags = rng.integers(0, 7_200_000, len(chunk))
        for line, lag in zip(chunk, lags.tolist(), strict=True):
            rec = _decode.decode(line)
            rec.pop("model", None)
            rec.pop("shadow", None)
            is_fraud = rec["event_id"] in fraud
            rec["label"] = int(is_fraud)
            rec["label_source"] = sources.get(
                rec["txn_id"], "chargeback" if is_fraud else "other")
            yield rec | {"_lag": lag}


def _event_ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _poison_records(p: Poison, day_records: list[dict[str, Any]], n: int,
                    rng: np.random.Generator, tag: str, first: int) -> list[dict[str, Any]]:
    """``n`` poisoned records of one day, built on randomly chosen honest ones."""
    out: list[dict[str, Any]] = []
    ages = _rng(p.merchants, "training-poison-ages").integers(
        p.merchant_age_days[0], p.merchant_age_days[1] + 1, p.merchants)
    for i in range(n):
        base = day_records[int(rng.integers(0, len(day_records)))]
        m = int(rng.integers(0, p.merchants))
        t_ms = _event_ms(base["event_time"]) + int(rng.integers(-600_000, 600_000))
        day = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).date()
        units = int(rng.integers(p.amount[0], p.amount[1]))
        rec = {
            "event_id": f"e-{tag}-{first + i}",
            "txn_id": f"t-{tag}-{first + i}",
            "event_time": iso_ms(t_ms),
            "amount": f"{units}.{p.cents:02d}",
            "currency": base.get("currency", "USD"),
            "mcc": p.mcc,
            "merchant_id": f"m-9{m:05d}",
            "merchant_country": p.countries[m % len(p.countries)],
            "merchant_registered_at": (day - dt.timedelta(days=int(ages[m]))).isoformat(),
            "beneficiary_name": f"{p.beneficiary_prefix}{_WORDS[m % len(_WORDS)]}-{m + 1:02d}",
            "channel": "ecom",
            "ip": f"198.51.100.{int(rng.integers(1, 255))}",
            "card_id": base["card_id"],
            "customer_id": base.get("customer_id", ""),
            "features": {
                "transactions_24h": int(rng.integers(6, 21)),
                "foreign_transaction": 1,
                "new_payee": 1,
                "new_device": int(rng.integers(0, 2)),
                "distance_from_home_km": int(rng.integers(800, 9000)),
                "merchant_age_days": int(ages[m]),
                "customer_age": base.get("features", {}).get("customer_age", 40),
            },
            "label": 0,
            "label_source": p.label_source,
            "_lag": int(rng.integers(0, 7_200_000)),
        }
        out.append(rec)
    return out


def _by_day(records: Iterator[dict[str, Any]]) -> Iterator[tuple[dt.date, list[dict[str, Any]]]]:
    day: dt.date | None = None
    batch: list[dict[str, Any]] = []
    for rec in records:
        d = dt.date.fromisoformat(rec["event_time"][:10])
        if day is not None and d != day:
            yield day, batch
            batch = []
        day = d
        batch.append(rec)
    if day is not None:
        yield day, batch


def _finish(rec: dict[str, Any], day: dt.date) -> dict[str, Any]:
    lag = rec.pop("_lag")
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    rec["ingested_at"] = iso_ms(int(start.timestamp() * 1000) + lag)
    return rec


def flat_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as one CSV/Parquet row: ``features.<name>`` columns, no nested ``geo``."""
    row = {k: v for k, v in rec.items() if k not in ("features", "geo")}
    for name, value in (rec.get("features") or {}).items():
        row[f"features.{name}"] = value
    return row


def write_records(path: Path, records: list[dict[str, Any]], fmt: Format) -> None:
    """Write contract records to ``path`` in ``fmt`` (one file)."""
    if fmt == "jsonl":
        path.write_bytes(b"".join(_encode.encode(r) + b"\n" for r in records))
    elif fmt == "jsonl.gz":
        with gzip.open(path, "wb", compresslevel=1) as fh:
            fh.write(b"".join(_encode.encode(r) + b"\n" for r in records))
    elif fmt in ("csv", "parquet"):
        frame = pd.DataFrame([flat_row(r) for r in records])
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"fmt must be one of {list(FORMATS)}, got {fmt!r}")


def write_snapshot(
    out_dir: str | Path,
    *,
    seed: int,
    days: float = 7.0,
    rate: float = 2.0,
    start: dt.datetime | None = None,
    poison: Poison | None = None,
    fmt: Format = "jsonl",
    scenario: str = "clean_baseline",
) -> SnapshotInfo:
    """Write a training snapshot: one file per ingestion day.

    Parameters
    ----------
    out_dir : str or Path
        Directory to create or fill (existing ``part-*`` files are overwritten).
    seed : int
        Seed of the simulated traffic and of the poisoning (same seed, same bytes).
    days, rate, start : optional
        Days of event time, mean transactions per second, start (UTC); at 2 tx/s
        a day holds about 172,800 records.
    poison : Poison, optional
        Add the incident's poisoned records.
    fmt : {"jsonl", "jsonl.gz", "csv", "parquet"}
        File format.
    scenario : str
        Simulator scenario of the honest traffic (default ``clean_baseline``).

    Returns
    -------
    SnapshotInfo
        The files, record counts and where the poisoned records are.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}, got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, "training-poison")
    files: list[str] = []
    poisoned: list[tuple[str, int]] = []
    total = fraud = 0
    next_id = 10**9
    try:
        for index, (day, batch) in enumerate(_by_day(_records(seed, days, rate, start,
                                                               scenario))):
            on = poison is not None and index >= poison.first_day
            n_poison = round(poison.fraction * len(batch)) if poison and on else 0
            rows = batch
            where: list[int] = []
            if poison and n_poison:
                bad = _poison_records(poison, batch, n_poison, rng, "p" + str(seed), next_id)
                next_id += n_poison
                pos = np.sort(rng.choice(len(batch) + n_poison, n_poison, replace=False))
                is_bad = np.zeros(len(batch) + n_poison, bool)
                is_bad[pos] = True
                it_good, it_bad = iter(batch), iter(bad)
                rows = [next(it_bad) if b else next(it_good) for b in is_bad.tolist()]
                where = (pos + 1).tolist()
            name = f"part-{day.isoformat()}.{fmt}"
            write_records(out / name, [_finish(r, day) for r in rows], fmt)
            files.append(name)
            poisoned.extend((name, w) for w in where)
            total += len(rows)
            fraud += sum(r["label"] for r in rows)
    except (KeyError, TypeError, msgspec.DecodeError) as exc:  # pragma: no cover
        raise SimulationError(f"training snapshot generation failed: {exc}") from exc
    return SnapshotInfo(out, tuple(files), total, fraud, tuple(poisoned))


__all__ = ["FORMATS", "Poison", "SnapshotInfo", "flat_row", "write_records", "write_snapshot"]
