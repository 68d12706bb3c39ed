"""One monitor pass over millions of stored events and thousands of segments.

Fills an embedded ClickHouse (chdb) with synthetic scored transactions generated
by ClickHouse itself (``INSERT ... SELECT FROM numbers()``): eight days of traffic
over 400 merchant categories and 20 countries with skewed volumes (thousands of
``mcc x merchant_country`` segments), two model versions with shadow scores,
beneficiary names, merchant registration dates, a feature with a valid range, 1 %
labels and rule hits. Then it runs the monitor with every detector at the end of
the data: a *cold* pass (every trailing reference built from scratch, seven days
of rows per detector), then *warm* passes every five minutes of event time (the
steady state of a worker; one of them crosses an hour, so the references slide).
It prints the time per detector and, last, one JSON line with the figures.

    .venv/bin/python bench/monitor.py            # 10M events
    .venv/bin/python bench/monitor.py --quick    # 1M events
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from driftwatch.monitors.monitor import Monitor
from driftwatch.settings import Settings
from driftwatch.store.client import open_store

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAYS = 8
TARGET_S = 5.0

COUNTRIES = "['US','GB','DE','FR','LT','SG','HK','AE','CY','NL','ES','IT','PL','SE','NO','DK'," \
    "'FI','IE','PT','BE']"
CHANNELS = "['card_present','ecom','upi','transfer','atm','other']"
ADJ = "['GREEN','SILVER','PRIME','URBAN','NORTH','BRIGHT','GOLDEN','RIVER']"
NOUN = "['CENTER','MART','HOUSE','DEPOT','WORKS','SUPPLY','OUTLET','GOODS','SHOP']"


def fill(store: object, n: int) -> float:
    """Insert ``n`` synthetic events (plus labels and rule hits); returns seconds."""
    span_ms = DAYS * 86_400_000
    started = time.perf_counter()
    sql = f"""
    INSERT INTO {{db}}.scored_transactions
    SELECT
      concat('e-', toString(number)) AS event_id,
      concat('t-', toString(number)) AS txn_id,
      toDateTime64('{T0:%Y-%m-%d %H:%M:%S}', 3, 'UTC')
        + toIntervalMillisecond(intDiv(number * {span_ms}, {n})) AS event_time,
      toUInt64(1000 + cityHash64(number, 1) % 500000) AS amount_minor,
      toUInt8(amount_minor % 100) AS amount_cents,
      'USD' AS currency,
      toString(5000 + toUInt32(pow((cityHash64(number, 2) % 1000000) / 1e6, 2.5) * 400)) AS mcc,
      concat('m-', toString(cityHash64(number, 3) % 20000)) AS merchant_id,
      {COUNTRIES}[1 + toUInt32(pow((cityHash64(number, 4) % 1000000) / 1e6, 2) * 20)]
        AS merchant_country,
      toDate('2020-01-01') + toIntervalDay(cityHash64(merchant_id) % 2300)
        AS merchant_registered_at,
      concat('c-', toString(cityHash64(number, 5) % 500000)) AS card_id,
      '' AS customer_id,
      concat({ADJ}[1 + cityHash64(merchant_id, 1) % 8], ' ',
             {NOUN}[1 + cityHash64(merchant_id, 2) % 9], ' ', merchant_id) AS beneficiary_name,
      {CHANNELS}[1 + cityHash64(number, 7) % 6] AS channel,
      '' AS ip, '' AS device_id, NULL AS geo_lat, NULL AS geo_lon,
      map('customer_age', toFloat64(18 + cityHash64(number, 8) % 70)) AS features_num,
      map() AS features_str,
      'fraud-detect' AS model_name,
      if(cityHash64(number, 9) % 2 = 0, 'v46', 'v47') AS model_version,
      pow((cityHash64(number, 10) % 1000000) / 1e6, 4) AS score,
      0.7 AS threshold,
      if(score >= 0.7, 'review', 'approve') AS decision,
      if(model_version = 'v47', ['v46'], []) AS shadow_versions,
      if(model_version = 'v47', [score], []) AS shadow_scores,
      now64(3) AS ingest_time,
      'bench' AS source
    FROM numbers({n})
    """
    store.command(sql)  # type: ignore[attr-defined]
    store.command(  # type: ignore[attr-defined]
        "INSERT INTO {db}.labels SELECT txn_id, toUInt8(score > 0.5), "
        "event_time + toIntervalHour(6), 'chargeback', now64(3) "
        "FROM {db}.scored_transactions WHERE cityHash64(event_id) % 100 = 0"
    )
    store.command(  # type: ignore[attr-defined]
        "INSERT INTO {db}.rule_hits SELECT event_id, txn_id, event_time, 'R001', 1, "
        "'high', 'enforce', 'bench', 1, 'bench', '0', mcc, merchant_country, channel, "
        "merchant_id, card_id, model_version, score, decision, amount_minor, '{}', now64(3) "
        "FROM {db}.scored_transactions WHERE cityHash64(event_id) % 200 = 0"
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M events instead of 10M")
    parser.add_argument("--events", type=int, default=0, help="number of events")
    parser.add_argument("--warm", type=int, default=12, help="warm passes to time")
    parser.add_argument("--path", default="", help="chdb data path (default: a temp dir)")
    args = parser.parse_args(argv)
    n = args.events or (1_000_000 if args.quick else 10_000_000)
    path = Path(args.path or tempfile.mkdtemp(prefix="dw-bench-monitor-"))
    store = open_store(f"chdb://{path}", "bench_monitor", init=False)
    store.drop()
    store.init()
    fill_s = fill(store, n)
    segments = store.query(
        "SELECT uniqExact(mcc) + uniqExact(merchant_country) + uniqExact(channel) "
        "+ uniqExact(model_version) + uniqExact(mcc, merchant_country) "
        "FROM {db}.scored_transactions"
    )[0][0]
    print(f"filled {n:,} events in {fill_s:.1f}s ({n / fill_s:,.0f}/s); {segments:,} segments")

    settings = Settings.load(
        config_file=None, env={}, overrides={"database": store.database, "store_dsn": str(path)}
    )
    mon = Monitor(store, settings)
    # on the hour, so the hourly detectors (benford, recall) run in the cold pass too
    end = T0 + dt.timedelta(days=DAYS) - dt.timedelta(hours=2)
    cold = mon.run_pass(end)
    warm = [mon.run_pass(end + dt.timedelta(minutes=5 * (k + 1))) for k in range(args.warm)]
    names = sorted(cold.seconds)
    print(f"{'detector':<16} {'cold s':>8} {'warm median s':>14} {'warm max s':>11}")
    def ran(name: str) -> list[float]:
        return [p.seconds[name] for p in warm if name in p.seconds] or [0.0]

    for name in names:
        w = ran(name)
        print(f"{name:<16} {cold.seconds[name]:8.3f} {statistics.median(w):14.3f} {max(w):11.3f}")
    warm_totals = [p.total_seconds for p in warm]
    warm_median = statistics.median(warm_totals)
    print(
        f"{'total':<16} {cold.total_seconds:8.3f} {warm_median:14.3f} {max(warm_totals):11.3f}"
    )
    print(
        f"pass at {end.isoformat()}: {cold.tested:,} tests, family {cold.family_size:,}, "
        f"decisions {cold.decisions}"
    )
    figures = {
        "bench": "monitor",
        "events": n,
        "segments": int(segments),
        "detectors": len(mon.detectors),
        "fill_s": round(fill_s, 1),
        "cold_pass_s": round(cold.total_seconds, 3),
        "warm_pass_median_s": round(warm_median, 3),
        "warm_pass_max_s": round(max(warm_totals), 3),
        "tests_per_pass": cold.tested,
        "per_detector_cold_s": {k: round(v, 3) for k, v in cold.seconds.items()},
        "per_detector_warm_median_s": {k: round(statistics.median(ran(k)), 3) for k in names},
        "target_s": TARGET_S,
        "cold_met": cold.total_seconds < TARGET_S,
        "met": warm_median < TARGET_S,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
