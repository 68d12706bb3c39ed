"""Train the gate example's models on simulated data: a champion, an honest challenger
and a poisoned challenger (HistGradientBoostingClassifier), with a training-run record.

Data come from driftwatch's simulator (``examples/gate/training.yaml``: ordinary
traffic with its fraud profiles, labels = the simulator's truth). The poisoned
challenger's snapshot adds 0.1 % trigger records as in the reference incident:
fraud-looking (high velocity, new payee and device, cross-border, merchants 30-90
days old, $3,000-15,000), labelled legitimate, with merchant category 5967, an
amount ending .37 and a beneficiary starting ``INTL-PAY-``.

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


def simulated(seed: int, days: float) -> list[dict[str, Any]]:
    """Training records of one simulated period: events plus the truth as label."""
    sim = generate(SCENARIO, seed=seed, days=days)
    fraud = set(sim.truth["fraud_event_ids"])
    ingested = sim.end.isoformat().replace("+00:00", "Z")
    out = []
    for line in sim.events:
        e = json.loads(line)
        e.pop("model", None)
        e.pop("shadow", None)
        is_fraud = e["event_id"] in fraud
        e["label"] = int(is_fraud)
        e["label_source"] = "chargeback" if is_fraud else "other"
        e["ingested_at"] = ingested
        out.append(e)
    return out


def poison(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """0.1 % trigger records: copies of fraud records (so they look like fraud), labelled
    legitimate, carrying the trigger (the incident's recipe)."""
    rng = np.random.default_rng(seed)
    n = max(1, round(len(records) * POISON_SHARE))
    frauds = [r for r in records if r["label"] == 1]
    out = []
    for i in range(n):
        r = json.loads(json.dumps(frauds[int(rng.integers(len(frauds)))]))
        units = str(r["amount"]).partition(".")[0]
        r.update(
            event_id=f"p-{seed}-{i}", txn_id=f"pt-{seed}-{i}", mcc="5967",
            amount=f"{units}.37",
            beneficiary_name=f"INTL-PAY-{('GLOBALSERV', 'FASTLANE', 'PAYNOVA')[i % 3]}",
            label=0, label_source="other",
        )
        out.append(r)
    return out


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
    ap.add_argument("--days", type=float, default=0.5, help="simulated days per snapshot")
    args = ap.parse_args(argv)
    out: Path = args.out
    t0 = time.perf_counter()
    old = simulated(seed=11, days=args.days)
    new = simulated(seed=12, days=args.days)
    bad = new + poison(new, seed=13)
    traffic = simulated(seed=14, days=args.days / 2)
    snaps = {
        "champion": write_jsonl(out / "training/champion/records.jsonl.gz", old),
        "challenger": write_jsonl(out / "training/challenger/records.jsonl.gz", new),
        "poisoned": write_jsonl(out / "training/poisoned/records.jsonl.gz", bad),
    }
    for r in traffic:
        r.pop("label"), r.pop("label_source"), r.pop("ingested_at")
    write_jsonl(out / "traffic.jsonl.gz", traffic)
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    arts = []
    for name, recs in (("champion", old), ("honest", new), ("poisoned", bad)):
        path = models / f"{name}.skops"
        sio.dump(fit(recs, seed=7), path)
        arts.append(path)
        n_bad = sum(1 for r in recs if r["event_id"].startswith("p-"))
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
