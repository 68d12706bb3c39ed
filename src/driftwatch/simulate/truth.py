"""The ground truth of one simulator run (JSON-ready): what was injected, where, when."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.simulate.ids import card_id
from driftwatch.simulate.labels import Labels
from driftwatch.simulate.run import Run, Scores, Traffic, iso_ms
from driftwatch.simulate.scenario import FRAUD_PROFILES


def ground_truth(run: Run, tr: Traffic, s: Scores, labels: Labels, tag: str) -> dict[str, Any]:
    """The ground truth of the run (JSON-ready)."""
    sc, f = run.sc, tr.rows
    model, ch = sc.model, sc.model.challenger
    n = len(f)

    def ids(mask: npt.NDArray[np.bool_]) -> list[str]:
        return [f"e-{tag}-{i}" for i in np.flatnonzero(mask).tolist()]

    beh = f.behaviour
    names = tr.names
    is_trigger = np.isin(beh, np.array(tr.trigger_codes, np.int16))
    attack_rows = beh > len(FRAUD_PROFILES)
    attack_fraud = attack_rows & f.fraud
    for entry in tr.expected:
        code = names.index(entry["behaviour"])
        rows = np.flatnonzero(beh == code)
        ws, we = tr.windows[entry["behaviour"]]
        entry["window"] = [iso_ms(ws), iso_ms(we)]
        entry["first_event_time"] = iso_ms(int(f.t[rows[0]])) if len(rows) else None
        if ch is not None and code in tr.trigger_codes:
            entry["model_version"] = ch.version
    served_backdoor = s.backdoor & (f.t >= s.deploy_ms) if s.deploy_ms is not None else (
        np.zeros(n, np.bool_))
    return {
        "scenario": sc.name,
        "seed": run.seed,
        "days": run.days,
        "rate": run.rate,
        "start": iso_ms(run.t0),
        "end": iso_ms(run.t1),
        "run_tag": tag,
        "n_events": n,
        "n_labels": len(labels),
        "model": {
            "name": model.name, "threshold": model.threshold, "champion": model.champion,
            "previous": model.previous or None,
            "challenger": ch.version if ch else None,
            "backdoor": ({"when": ch.backdoor.when.as_dict(), "score": list(ch.backdoor.score)}
                         if ch and ch.backdoor else None),
        },
        "deploy_time": iso_ms(s.deploy_ms) if s.deploy_ms is not None else None,
        "attack_start": iso_ms(int(f.t[attack_fraud].min())) if attack_fraud.any() else None,
        "attack_end": iso_ms(int(f.t[attack_fraud].max())) if attack_fraud.any() else None,
        "trigger": ch.backdoor.when.as_dict() if ch and ch.backdoor else None,
        "trigger_event_ids": ids(is_trigger),
        "trigger_amounts_minor": f.amount[is_trigger].tolist(),
        "natural_trigger_event_ids": ids(s.backdoor & ~is_trigger),
        "backdoored_event_ids": ids(served_backdoor),
        "attack_event_ids": {name: ids(beh == names.index(name))
                             for name in names[1 + len(FRAUD_PROFILES):]},
        "attack_card_ids": sorted({card_id(int(c)) for c in f.card[attack_fraud].tolist()}),
        "fraud_event_ids": ids(f.fraud),
        "fraud_profile_event_ids": {name: ids(beh == names.index(name))
                                    for name in FRAUD_PROFILES},
        "segments": [e["segment"] for e in tr.expected],
        "expected": tr.expected,
        "hints": [dict(h) for h in sc.expected],
        "metrics": _metrics(f.fraud, s, beh <= len(FRAUD_PROFILES), model.threshold),
        "defaults": {"customers": int(tr.world.n_customers), "legit_cards": tr.legit_cards,
                     "mcc_5967_share": float(tr.world.catalog.share[
                         tr.world.catalog.index["5967"]])},
    }


def _metrics(fraud: npt.NDArray[np.bool_], s: Scores, base: npt.NDArray[np.bool_],
             threshold: float) -> dict[str, Any]:
    """Recall and precision at the threshold: the champion on all rows and on base
    traffic (legitimate plus ordinary fraud profiles), the served model per version."""

    def rp(score: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
        hit = score[mask] >= threshold
        y = fraud[mask]
        tp = int((hit & y).sum())
        return {"n": int(mask.sum()), "fraud": int(y.sum()), "flagged": int(hit.sum()),
                "recall": round(float(tp / y.sum()), 4) if y.sum() else None,
                "precision": round(float(tp / hit.sum()), 4) if hit.sum() else None}

    out = {"champion_all": rp(s.champion, np.ones(len(fraud), np.bool_)),
           "champion_base": rp(s.champion, base)}
    for i, v in enumerate(s.versions):
        if (s.version == i).any():
            out[f"served_{v}"] = rp(s.served, s.version == i)
    return out
