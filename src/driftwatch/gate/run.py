"""One gate run: paired scoring, trigger search, scenarios, recall trend -> verdict."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftwatch.gate import probe
from driftwatch.gate import scenarios as scen
from driftwatch.gate.findings import Finding, GateResult
from driftwatch.gate.paired import paired
from driftwatch.gate.scorer import Scorer
from driftwatch.gate.search import search, vocabulary
from driftwatch.gate.trend import recall_by_version, trend_findings
from driftwatch.stats.recall import two_proportion_test

F64 = npt.NDArray[np.float64]
#: Feature values of a synthetic worst case (added when traffic has too few held events).
WORST_FEATURES: Mapping[str, Any] = {
    "transactions_24h": 20, "foreign_transaction": 1, "new_payee": 1, "new_device": 1,
    "distance_from_home_km": 9000, "merchant_age_days": 45,
}


@dataclass(frozen=True)
class GateOptions:
    """Knobs of a run (from the gate settings)."""

    threshold: float = 0.7
    probe_budget: int = 200_000
    fixtures: int = 32
    max_values: int = 32
    min_drop: float = 0.3
    flip_share: float = 0.5
    alpha: float = 0.01
    fdr_q: float = 0.01
    scenario_share: float = 0.25
    trend_versions: int = 3
    trend_p: float = 0.01
    label_maturity_s: int = 86400
    seed: int = 0


def _fixtures(traffic: Sequence[Mapping[str, Any]], champ: F64, n: int,
              threshold: float) -> list[dict[str, Any]]:
    """The champion's riskiest held events, spread over regions of the input space
    (round-robin over channel x merchant-age bucket x amount band, riskiest first);
    synthetic worst cases (:data:`WORST_FEATURES`) fill up to ``n``."""
    order = np.argsort(-champ, kind="stable").tolist()
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in order:
        if champ[i] < threshold:
            break
        key = tuple(probe.attribute_of(traffic[i], a)
                    for a in ("channel", "merchant_age_days", "amount"))
        groups.setdefault(key, []).append(i)
    picked: list[int] = []
    queues = list(groups.values())
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0))
    held = [dict(traffic[i]) for i in picked]
    for i in order[: n - len(held)]:
        worst = dict(traffic[i])
        worst["features"] = {**(traffic[i].get("features") or {}), **WORST_FEATURES}
        worst["event_id"] = f"{traffic[i].get('event_id', i)}-worst"
        held.append(worst)
    return held


def _labelled_recall(traffic: Sequence[Mapping[str, Any]], labels: Mapping[str, int],
                     champ: F64, chall: F64, o: GateOptions) -> list[Finding]:
    """Recall of both models on the traffic's labelled fraud (``--labels``): blocking
    when the challenger holds significantly less of it (one-sided two-proportion test
    at ``alpha``) and at least ``min_drop / 3`` less (10 points by default)."""
    fraud = np.array([labels.get(str(e.get("txn_id", ""))) == 1 for e in traffic], dtype=bool)
    n = int(fraud.sum())
    if n == 0:
        return [Finding(check="labelled_recall", severity="info", blocking=False,
                        summary="no labelled fraud among the traffic events (--labels)")]
    kc = int((champ[fraud] >= o.threshold).sum())
    kh = int((chall[fraud] >= o.threshold).sum())
    p = float(two_proportion_test(kh, n, kc, n, alternative="less").pvalue)
    block = p < o.alpha and (kc - kh) / n >= o.min_drop / 3
    return [Finding(
        check="labelled_recall", severity="critical" if block else "info", blocking=block,
        n=n, champion_mean=float(champ[fraud].mean()), challenger_mean=float(chall[fraud].mean()),
        summary=(f"recall on {n} labelled frauds in the traffic: challenger {kh / n:.1%} vs "
                 f"champion {kc / n:.1%} (p={p:.1e})"),
    )]


def run_gate(
    champion: Scorer,
    challenger: Scorer,
    traffic: Sequence[Mapping[str, Any]],
    *,
    training: Sequence[Mapping[str, Any]] = (),
    scenario_list: Sequence[scen.Scenario] | None = None,
    store: Any = None,
    labels: Mapping[str, int] | None = None,
    rejected: Sequence[str] = (),
    options: GateOptions | None = None,
) -> GateResult:
    """Run every check and return the verdict with its findings.

    ``rejected`` are the traffic lines the event contract refused (reported, never
    silently dropped).
    """
    o = options or GateOptions()
    t0 = time.perf_counter()
    findings: list[Finding] = []
    if rejected:
        findings.append(Finding(
            check="traffic_input", severity="warning", blocking=False, n=len(rejected),
            summary=f"{len(rejected)} traffic line(s) rejected by the event contract "
                    f"(first: {rejected[0]})"))
    tables: dict[str, list[dict[str, Any]]] = {}
    events = [dict(e) for e in traffic]
    champ, chall = champion.score(events), challenger.score(events)
    probes = 2 * len(traffic)
    f, tables["paired"] = paired(traffic, champ, chall, threshold=o.threshold, q=o.fdr_q)
    findings += f

    if labels is not None:
        findings += _labelled_recall(traffic, labels, champ, chall, o)
    fixtures = _fixtures(traffic, champ, o.fixtures, o.threshold)
    fx_c = champion.score(fixtures)
    fixtures = [fx for fx, s in zip(fixtures, fx_c.tolist(), strict=True) if s >= o.threshold]
    probes += len(fx_c)
    weights = np.where(champ >= o.threshold, 1.0, 0.01).tolist()
    pool: list[Mapping[str, Any]] = list(traffic)
    if training:
        tr = champion.score([{k: v for k, v in r.items() if k not in ("label", "label_source",
                                                                       "ingested_at")}
                             for r in training])
        probes += len(tr)
        weights += np.where(tr >= o.threshold, 1.0, 0.01).tolist()
        pool += list(training)
    vocab = vocabulary(pool, weights, o.max_values)
    if not fixtures:
        findings.append(Finding(check="trigger_search", severity="warning", blocking=False,
                                summary="no fixture the champion holds: trigger search skipped"))
    res = search(champion, challenger, fixtures, vocab, threshold=o.threshold,
                 budget=o.probe_budget, min_drop=o.min_drop, flip_share=o.flip_share,
                 alpha=o.alpha, seed=o.seed)
    probes += res.probes
    sizes = ", ".join(f"{a} {n}" for a, n in res.vocabulary.items())
    findings.append(Finding(
        check="trigger_search", severity="info", blocking=False, n=res.probes,
        summary=(f"{res.design_rows} design probes on {len(fixtures)} fixtures "
                 f"(coverage of the largest triple product {res.coverage:.0%}; values: "
                 f"{sizes}); {res.positives} positive, {len(res.findings)} trigger(s)"),
    ))
    findings += res.findings
    tables["triggers"] = list(res.candidates)

    def both(events: list[dict[str, Any]]) -> tuple[F64, F64]:
        return champion.score(events), challenger.score(events)

    f, tables["scenarios"], n = scen.run(
        scenario_list if scenario_list is not None else scen.load(), fixtures, both,
        threshold=o.threshold, share=o.scenario_share)
    probes += 2 * n
    findings += f

    if store is None:
        findings.append(Finding(check="recall_trend", severity="info", blocking=False,
                                summary="no store given (--store-trend): recall trend skipped"))
    else:
        rows = recall_by_version(store, o.label_maturity_s)
        tables["recall"] = rows
        findings += trend_findings(rows, k=o.trend_versions, p=o.trend_p)
    order = {"critical": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda x: (not x.blocking, order[x.severity]))
    return GateResult(champion=champion.spec, challenger=challenger.spec, probes=probes,
                      seconds=time.perf_counter() - t0, findings=tuple(findings),
                      tables=tables)
