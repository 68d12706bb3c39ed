"""Running a rule's examples: the events that must hit and must not hit.

Each example is parsed with the real contract parser (an invalid example event is a
failure naming the reason), evaluated as one batch by a fresh
:class:`~driftwatch.rules.live.LiveEvaluator` holding only that rule, and judged
on its last event. A failure shows the values of the rule's aggregates at that
event, which is usually what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgspec

from driftwatch.events import parse_scored_batch
from driftwatch.rules import typed as t
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.model import Example, Rule
from driftwatch.rules.typed import Ty


@dataclass(frozen=True)
class ExampleResult:
    """The outcome of one example."""

    rule_id: str
    name: str
    expect: str
    got: str
    detail: str = ""
    evidence: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the rule did what the example expects."""
        return self.expect == self.got


def _probe(rule: Rule) -> Rule:
    """The rule made to hit always, so its aggregates are reported for any event."""
    always = t.Or(Ty.BOOL, False, (t.Const(Ty.BOOL, False, True), rule.expr))
    return replace(rule, expr=always)


def run_example(rule: Rule, example: Example, horizon_ms: int) -> ExampleResult:
    """Evaluate one example of ``rule``."""
    raws = [msgspec.json.encode(e) for e in example.events]
    batch = parse_scored_batch(raws)
    if batch.rejected:
        bad = batch.rejected[0]
        return ExampleResult(rule.id, example.name, example.expect, "invalid",
                             f"event {bad.event_id or '?'} is not a valid event: "
                             f"{bad.reason} ({bad.detail})")
    last = batch.events[-1].event_id
    hits = LiveEvaluator([rule], horizon_ms=horizon_ms).process(batch.events)
    got = "hit" if any(h.event.event_id == last for h in hits) else "miss"
    evidence = None
    if got != example.expect:
        probe = LiveEvaluator([_probe(rule)], horizon_ms=horizon_ms).process(batch.events)
        evidence = next((h.evidence for h in probe if h.event.event_id == last), None)
    return ExampleResult(rule.id, example.name, example.expect, got, evidence=evidence)


def run_examples(rule: Rule, horizon_ms: int) -> list[ExampleResult]:
    """Evaluate every example of ``rule``."""
    return [run_example(rule, ex, horizon_ms) for ex in rule.examples]
