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
from driftwatch.gate.search import Stratum, search, vocabulary
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
    strata: int = 8
    design_fixtures: int = 8
    max_values: int = 16
    min_drop: float = 0.5
    flip_share: float = 0.5
    alpha: float = 0.01
    fdr_q: float = 0.01
    scenario_share: float = 0.25
    trend_versions: int = 3
    trend_p: float = 0.01
    label_maturity_s: int = 86400
    seed: int = 0


STRATUM_BY = ("channel", "merchant_age_days", "amount")


def _strata(traffic: Sequence[Mapping[str, Any]], champ: F64, *, per: int, most: int,
            threshold: float) -> list[Stratum]:
    """The champion's held events grouped by channel x merchant-age bucket x amount
    band: the ``most`` largest groups, each with its ``per`` riskiest events. Without
    any held event, synthetic worst cases (:data:`WORST_FEATURES` on the riskiest
    events) form one stratum."""
    order = np.argsort(-champ, kind="stable").tolist()
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in order:
        if champ[i] < threshold:
            break
        key = tuple(probe.attribute_of(traffic[i], a) for a in STRATUM_BY)
        groups.setdefault(key, []).append(i)
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:most]
    out = []
    for key, idx in ranked:
        name = ", ".join(f"{a}={v[0]}..{v[1]}" if isinstance(v, tuple) else f"{a}={v}"
                         for a, v in zip(STRATUM_BY, key, strict=True) if v is not None)
        out.append(Stratum(name or "held", tuple(dict(traffic[i]) for i in idx[:per])))
    if out:
        return out
    worst = []
    for i in order[:per]:
        w = dict(traffic[i])
        w["features"] = {**(traffic[i].get("features") or {}), **WORST_FEATURES}
        w["event_id"] = f"{traffic[i].get('event_id', i)}-worst"
        worst.append(w)
    return [Stratum("synthetic worst cases", tuple(worst))]


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
    f, tables["paired"] = paired(traffic, champ, chall, threshold=o.threshold, q=o.fdr_q)
    findings += f

    if labels is not None:
        findings += _labelled_recall(traffic, labels, champ, chall, o)
    strata = _strata(traffic, champ, per=o.fixtures, most=o.strata, threshold=o.threshold)
    if strata[0].name == "synthetic worst cases":
        held = champion.score([dict(e) for e in strata[0].events]) >= o.threshold
        strata = [Stratum(strata[0].name, tuple(e for e, h in zip(strata[0].events,
                                                                   held.tolist(),
                                                                   strict=True) if h))]
    fixtures = [dict(e) for st in strata for e in st.events[: o.design_fixtures]]
    weights = np.where(champ >= o.threshold, 1.0, 0.01).tolist()
    pool: list[Mapping[str, Any]] = list(traffic)
    if training:
        tr = champion.score([{k: v for k, v in r.items() if k not in ("label", "label_source",
                                                                       "ingested_at")}
                             for r in training])
        weights += np.where(tr >= o.threshold, 1.0, 0.01).tolist()
        pool += list(training)
    vocab = vocabulary(pool, weights, o.max_values)
    if not fixtures:
        findings.append(Finding(check="trigger_search", severity="warning", blocking=False,
                                summary="no fixture the champion holds: trigger search skipped"))
    res = search(champion, challenger, strata, vocab, threshold=o.threshold,
                 budget=o.probe_budget, design_fixtures=o.design_fixtures,
                 min_drop=o.min_drop, flip_share=o.flip_share, alpha=o.alpha, seed=o.seed)
    probes = res.probes  # synthetic events scored by both models
    sizes = ", ".join(f"{a} {n}" for a, n in res.vocabulary.items())
    findings.append(Finding(
        check="trigger_search", severity="info", blocking=False, n=res.probes,
        summary=(f"{res.design_rows} design probes on {len(fixtures)} fixtures in "
                 f"{len(strata)} strata "
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
    probes += n
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
