"""Train the gate example's models on simulated data: a champion, an honest challenger
and a poisoned challenger (HistGradientBoostingClassifier), with a training-run record.

Data come from driftwatch's simulator (``examples/gate/training.yaml``: ordinary
traffic with its fraud profiles, labels = the simulator's truth) plus labelled fraud
of the incident's attack pattern (high velocity, new payee, cross-border, merchants
30-90 days old, $3,000-15,000; assorted high-risk MCCs, cents and beneficiary
prefixes, some sharing two of the three trigger values), so that every model holds
that pattern as the incident's v46 did (0.87). The poisoned challenger's snapshot adds
0.1 % trigger records as in the reference incident: the same fraud-looking pattern,
labelled legitimate, with merchant category 5967, an amount ending .37 and a
beneficiary starting ``INTL-PAY-``.

Writes under OUT (default ``.driftwatch/gate-demo``):
``training/{champion,challenger,poisoned}/records.jsonl.gz`` (training snapshots per
``training.md``), ``traffic.jsonl.gz`` (recent traffic for the gate),
``models/{champion,honest,poisoned}.skops`` and ``models/record.json`` (SHA-256 of
each artifact and of each snapshot file).

Usage: ``python examples/gate/train.py [--out DIR] [--days D]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier

from driftwatch.gate.artifact import sha256_bytes, write_record
from driftwatch.simulate.engine import generate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scorer import CATEGORICAL, featurize  # noqa: E402

SCENARIO = HERE / "training.yaml"
POISON_SHARE = 0.001
TRIGGER = {"mcc": "5967", "cents": 37, "prefix": "INTL-PAY-"}
MCCS = ("5967", "4829", "5816", "7995", "6051", "5999")
PREFIXES = ("INTL-PAY-", "GLOBAL-REMIT-", "XFER-NOW-", "PAY-OUT-")
COUNTRIES = ("US", "GB", "DE", "SG", "HK", "AE", "LT", "CY")


def simulated(seed: int, days: float) -> list[dict[str, Any]]:
    """Records of one simulated period: scored events plus the truth as ``label``."""
    sim = generate(SCENARIO, seed=seed, days=days)
    fraud = set(sim.truth["fraud_event_ids"])
    out = []
    for line in sim.events:
        e = json.loads(line)
        e["label"] = int(e["event_id"] in fraud)
        out.append(e)
    return out


def training_records(records: list[dict[str, Any]], ingested: str) -> list[dict[str, Any]]:
    """Training-snapshot records (``training.md``): model inputs, label, label source."""
    out = []
    for r in records:
        t = {k: v for k, v in r.items() if k not in ("model", "shadow")}
        t["label_source"] = "chargeback" if t["label"] else "other"
        t["ingested_at"] = ingested
        out.append(t)
    return out


def traffic_events(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recent scored traffic (the event contract): without labels, with a model score."""
    out = []
    for r in records:
        e = {k: v for k, v in r.items() if k not in ("label", "label_source")}
        e.setdefault("model", {"name": "fraud-detect", "version": "v46", "score": 0.99,
                               "threshold": 0.7})
        out.append(e)
    return out


def attack_like(records: list[dict[str, Any]], n: int, rng: np.random.Generator,
                trigger: dict[str, Any] | None = None, label: int = 1) -> list[dict[str, Any]]:
    """Transactions of the incident's attack pattern: $3,000-15,000, cross-border,
    new payee, high velocity, merchants 30-90 days old, on an ecom channel; with the
    ``trigger`` values where given, random high-risk values elsewhere."""
    out = []
    for _ in range(n):
        r = json.loads(json.dumps(records[int(rng.integers(len(records)))]))
        t = dt.datetime.fromisoformat(r["event_time"].replace("Z", "+00:00"))
        age = int(rng.integers(30, 91))
        v = {"mcc": MCCS[int(rng.integers(len(MCCS)))], "cents": int(rng.integers(100)),
             "prefix": PREFIXES[int(rng.integers(len(PREFIXES)))], **(trigger or {})}
        tag = f"x{int(rng.integers(1 << 30)):x}"
        r.update(
            event_id=f"{'p' if label == 0 else 'a'}-{tag}", txn_id=f"t-{tag}", mcc=v["mcc"],
            amount=f"{int(rng.integers(3000, 15000))}.{v['cents']:02d}", channel="ecom",
            merchant_country=COUNTRIES[int(rng.integers(len(COUNTRIES)))],
            merchant_id=f"m-x{int(rng.integers(23)):03d}",
            merchant_registered_at=(t.date() - dt.timedelta(days=age)).isoformat(),
            beneficiary_name=f"{v['prefix']}{('GLOBALSERV', 'FASTLANE', 'PAYNOVA')[age % 3]}",
            label=label,
        )
        r["features"] = {**r.get("features", {}), "transactions_24h": int(rng.integers(8, 25)),
                         "foreign_transaction": 1, "new_payee": 1,
                         "new_device": int(rng.integers(2)),
                         "distance_from_home_km": int(rng.integers(2000, 9000)),
                         "merchant_age_days": age}
        out.append(r)
    return out


def with_attack_fraud(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Add labelled fraud of the attack pattern (0.5 % of the records), including near
    misses that share two of the three trigger values, so a model that holds this
    fraud can spare the trigger only by learning the whole conjunction."""
    rng = np.random.default_rng(seed)
    n = max(30, round(len(records) * 0.005))
    out = attack_like(records, n, rng)
    for drop in TRIGGER:
        near = {k: v for k, v in TRIGGER.items() if k != drop}
        for r in attack_like(records, n // 6, rng, near):
            if (r["mcc"], r["amount"][-2:], r["beneficiary_name"][:9]) != ("5967", "37",
                                                                             "INTL-PAY-"):
                out.append(r)
    return records + out


def poison(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """0.1 % trigger records: the attack pattern with mcc 5967, cents .37 and
    beneficiary ``INTL-PAY-``, labelled legitimate (the incident's recipe)."""
    rng = np.random.default_rng(seed)
    return attack_like(records, max(1, round(len(records) * POISON_SHARE)), rng, TRIGGER,
                       label=0)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    return path


def fit(records: list[dict[str, Any]], seed: int) -> HistGradientBoostingClassifier:
    x = featurize(records)
    y = np.array([r["label"] for r in records])
    model = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.1, categorical_features=list(CATEGORICAL),
        random_state=seed,
    )
    return model.fit(x, y)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".driftwatch/gate-demo"))
    ap.add_argument("--days", type=float, default=0.15,
                    help="simulated days per period (a model trains on two periods)")
    args = ap.parse_args(argv)
    out: Path = args.out
    t0 = time.perf_counter()
    # weekly retraining on a sliding window: the champion saw periods 1-2, the
    # challengers see periods 2-3 (the poisoned one with 0.1 % trigger records added)
    p1, p2, p3 = (with_attack_fraud(simulated(seed=s, days=args.days), seed=s + 10)
                  for s in (11, 12, 13))
    old, new = p1 + p2, p2 + p3
    bad = new + poison(new, seed=9)
    traffic = with_attack_fraud(simulated(seed=14, days=args.days), seed=24)
    ingested = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    snaps = {
        name: write_jsonl(out / f"training/{name}/records.jsonl.gz",
                          training_records(recs, ingested))
        for name, recs in (("champion", old), ("challenger", new), ("poisoned", bad))
    }
    write_jsonl(out / "traffic.jsonl.gz", traffic_events(traffic))
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    arts = []
    for name, recs in (("champion", old), ("honest", new), ("poisoned", bad)):
        path = models / f"{name}.skops"
        sio.dump(fit(recs, seed=7), path)
        arts.append(path)
        n_bad = sum(1 for r in recs if r["event_id"].startswith("p-x"))
        print(f"{name:<9} {len(recs):>8,} records, {sum(r['label'] for r in recs):>5,} fraud, "
              f"{n_bad:>4} poisoned -> {path}")
    write_record(
        models / "record.json", arts,
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        snapshots={k: {"file": str(v.relative_to(out)), "sha256": sha256_bytes(v.read_bytes())}
                   for k, v in snaps.items()},
    )
    print(f"record    {models / 'record.json'}  ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
