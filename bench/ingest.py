"""Ingest benchmark: JSONL replay into embedded ClickHouse.

Generates N valid scored events as JSON lines, then measures in one run:

* ``json.loads`` per line (the baseline a plain consumer pays),
* parse + validate (``driftwatch.events.parse_scored_batch``),
* columnar insert into ClickHouse (``Store.insert_scored``),
* end to end: ``driftwatch replay``'s code path (read file, parse, validate, store).

Each figure is the median of ``--repeat`` runs. Targets (issue 2): >= 100k events/s end
to end on one core, and parse+validate no slower than 2x plain ``json.loads``.

    python bench/ingest.py            # 1,000,000 events
    python bench/ingest.py --quick    # 200,000 events
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from driftwatch.events import parse_scored_batch
from driftwatch.pipeline import Pipeline
from driftwatch.sources.replay import iter_batches, replay
from driftwatch.store.client import open_store

BATCH = 5000


def make_events(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    mccs = [f"{5000 + i * 7:04d}" for i in range(160)]
    countries = ["US", "GB", "DE", "FR", "LT", "SG", "HK", "AE", "CY", "NL"]
    channels = ["card_present", "ecom", "upi", "transfer"]
    t0 = 1_773_900_000
    out = []
    for i in range(n):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + i // 50))
        score = round(rng.random() ** 3, 4)
        ev = {
            "event_id": f"e-{i}",
            "txn_id": f"t-{i}",
            "event_time": f"{ts}.{i % 1000:03d}Z",
            "amount": f"{rng.randint(1, 20000)}.{rng.randint(0, 99):02d}",
            "currency": "USD",
            "mcc": rng.choice(mccs),
            "merchant_id": f"m-{rng.randint(1, 5000)}",
            "merchant_country": rng.choice(countries),
            "merchant_registered_at": "2024-05-01",
            "card_id": f"c-{rng.randint(1, 200000)}",
            "customer_id": f"u-{rng.randint(1, 150000)}",
            "beneficiary_name": "ACME STORE",
            "channel": rng.choice(channels),
            "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "device_id": f"d-{rng.randint(1, 100000)}",
            "geo": {"lat": round(rng.uniform(-60, 60), 4), "lon": round(rng.uniform(-150, 150), 4)},
            "features": {"transactions_24h": rng.randint(0, 30), "foreign_transaction": 0},
            "model": {"name": "fraud-detect", "version": "v46", "score": score,
                      "threshold": 0.7, "decision": "review" if score >= 0.7 else "approve"},
            "shadow": [{"version": "v45", "score": score}],
        }
        out.append(json.dumps(ev).encode())
    return out


def timed(fn: object, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="200k events, 1 repeat")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = 200_000 if args.quick else args.events
    repeat = 1 if args.quick else args.repeat

    lines = make_events(n)
    batches = [lines[i : i + BATCH] for i in range(0, n, BATCH)]
    tmp = Path(tempfile.mkdtemp(prefix="dw-bench-"))
    path = tmp / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    t_json = timed(lambda: [json.loads(x) for x in lines], repeat)
    t_parse = timed(lambda: [parse_scored_batch(b) for b in batches], repeat)
    parsed = [parse_scored_batch(b).events for b in batches]
    assert sum(len(p) for p in parsed) == n, "generator produced invalid events"

    store = open_store(f"chdb://{tmp}/chdb", "bench", init=True)
    t_insert = []
    t_e2e = []
    for _ in range(repeat):
        store.command("TRUNCATE TABLE {db}.scored_transactions")
        t = time.perf_counter()
        for p in parsed:
            store.insert_scored(p, "bench")
        t_insert.append(time.perf_counter() - t)
        store.command("TRUNCATE TABLE {db}.scored_transactions")
        pipeline = Pipeline(store)
        t = time.perf_counter()
        result = replay(pipeline, path, batch_size=BATCH)
        t_e2e.append(time.perf_counter() - t)
        assert result.events == n
    assert store.count("scored_transactions") == n
    ins = statistics.median(t_insert)
    e2e = statistics.median(t_e2e)
    with path.open("rb") as fh:  # file read + split alone, for context
        t_read = timed(lambda: sum(len(b) for b in iter_batches(fh, BATCH)), 1)

    figures = {
        "bench": "ingest",
        "events": n,
        "json_loads_per_s": round(n / t_json),
        "parse_validate_per_s": round(n / t_parse),
        "parse_vs_json_loads": round(t_parse / t_json, 2),
        "insert_rows_per_s": round(n / ins),
        "end_to_end_per_s": round(n / e2e),
        "read_split_s": round(t_read, 3),
        "target_end_to_end_per_s": 100_000,
        "target_parse_vs_json_loads_max": 2.0,
    }
    figures["met"] = bool(
        figures["end_to_end_per_s"] >= 100_000 and figures["parse_vs_json_loads"] <= 2.0
    )
    print(f"events                    {n:>12,}")
    print(f"json.loads                {figures['json_loads_per_s']:>12,} events/s")
    print(f"parse + validate          {figures['parse_validate_per_s']:>12,} events/s"
          f"  ({figures['parse_vs_json_loads']}x the json.loads time)")
    print(f"insert (columnar)         {figures['insert_rows_per_s']:>12,} rows/s")
    print(f"end to end (replay)       {figures['end_to_end_per_s']:>12,} events/s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
