"""Store-side rules: the rules not keyed by the card, evaluated in ClickHouse by the leader.

The scored topic is keyed by card, so with N workers each worker's rule windows see
1/N of the events of an IP, a merchant, an (MCC, cents) pair, a beneficiary prefix or
a place: a rule keyed by one of them weakens or goes blind as workers are added.
Rules whose every aggregate is keyed by the card (alone or with other fields: all
events of such a key are in one partition) stay in-stream, in every worker; the
others (:func:`split_rules`) are evaluated here instead, on the leader, with the SQL
the backtests compile (:func:`~driftwatch.rules.sql.compile_rule`), over the events
*every* worker stored:

- :class:`StoreSideRules` is a clock stage: at each monitor tick the leader passes it
  the group's low watermark (the slowest partition's progress minus the allowed
  lateness, see :mod:`driftwatch.streaming.monitoring`), and it evaluates each rule
  over the events from where it left off up to that watermark (inclusive), reading
  the rule's longest window of history before them;
- hits go to ``rule_hits`` (which collapses a hit stored twice on ``(rule_id,
  event_id)``), then the rule's mark to ``rule_progress`` (it only moves forward):
  a new leader resumes at the marks, so every (rule, event) hits once across leader
  changes, and a span evaluated twice (a leader that stopped between the two writes)
  stores the same hits again;
- the hits become findings through the same alert mapping as in-stream hits (a
  :class:`~driftwatch.rules.stage.RuleStage` over these rules: same rule x segment
  fingerprints, floors, cases and rate limits); at the start of a term
  (:meth:`StoreSideRules.take_over`) its tallies are rebuilt from the stored hits of
  the alert window, so an alert grows on from where the previous leader left it.

Why the store and not keyed internal topics: the SQL exists and is checked against
the live evaluator on every shipped rule (``tests/integration/test_rules_parity.py``),
so the hits are the backtest's; it needs no extra topic, projection or consumer, and
no state that must move on a rebalance. What it costs: a rule's hits come once the
group's low watermark has passed the event -- ``watermark_delay_s`` plus up to one
``worker_tick_s`` and the progress reports' delay (measured in ``bench/scaleout.py``);
when traffic stops, the last events are evaluated once every partition has been idle
for ``progress_idle_s`` -- and every evaluation reads the rule's window of history
again (one query per store-side rule per tick; a 24 h window at 20k events/s is a large scan: widen
``worker_tick_s`` or keep such rules in-stream with ``rule_placement = stream`` on a
single worker). An event stored after the watermark passed its event time is not
evaluated by these rules (it is counted as late, like in the monitors).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from driftwatch.errors import RuleError
from driftwatch.events import UTC, ScoredTransaction
from driftwatch.pipeline import StageOutput
from driftwatch.rules import typed as t
from driftwatch.rules.history import stored_events
from driftwatch.rules.model import Hit, Rule
from driftwatch.rules.pack import RuleSet
from driftwatch.rules.sql import CompiledRule, compile_rule
from driftwatch.rules.stage import HIT_TABLE, RuleStage, hit_row
from driftwatch.settings import Settings
from driftwatch.store.client import Store

log = logging.getLogger(__name__)

MS = dt.timedelta(milliseconds=1)
PROGRESS_TABLE = "rule_progress"
PLACEMENTS = ("auto", "stream")
"""``rule_placement`` values: ``auto`` evaluates the rules not keyed by the card
store-side; ``stream`` keeps every rule in-stream (right for a single worker only)."""


def card_local(rule: Rule) -> bool:
    """True when every window of ``rule`` is keyed by the card (with or without other
    fields), so one worker sees all events of each key: the scored topic is keyed by
    ``card_id``. ``received_max`` looks at other keys' events (their payee): not local.

    >>> from driftwatch.rules.pack import rule_from_text
    >>> card_local(rule_from_text("a", "count(by=[card_id, ip], within=1h) >= 3"))
    True
    >>> card_local(rule_from_text("b", "count_distinct(card_id, by=ip, within=1h) >= 3"))
    False
    >>> card_local(rule_from_text("c", 'mcc == "5967"'))
    True
    """
    for agg in t.aggregates(rule.expr):
        if agg.kind == "received_max":
            return False
        if not any(isinstance(k, t.Field) and k.name == "card_id" for k in agg.keys):
            return False
    return True


def _compiles(rule: Rule) -> bool:
    """Whether ``rule`` compiles to SQL (one that does not stays in-stream, warned)."""
    try:
        compile_rule(rule)
    except RuleError as exc:
        log.warning("rule %s cannot run store-side (%s): kept in-stream, where it sees "
                    "only its worker's partitions", rule.id, exc, extra={"rule_id": rule.id})
        return False
    return True


def _only(ruleset: RuleSet, in_stream: set[str], keep: bool) -> RuleSet:
    packs = []
    for pack in ruleset.packs:
        rules = tuple(r for r in pack.rules if (r.id in in_stream) is keep)
        if rules:
            packs.append(type(pack)(pack.name, pack.path, pack.sha256, rules))
    return RuleSet(tuple(packs), ruleset.horizon_ms)


def split_rules(ruleset: RuleSet, placement: str = "auto") -> tuple[RuleSet, RuleSet]:
    """``(in_stream, store_side)``: the rules a worker evaluates on its own partitions
    and the ones the leader evaluates in ClickHouse (see ``PLACEMENTS``)."""
    if placement not in PLACEMENTS:
        raise ValueError(f"rule_placement must be one of {PLACEMENTS}, got {placement!r}")
    if placement == "stream":
        return ruleset, RuleSet((), ruleset.horizon_ms)
    local = {r.id for r in ruleset.rules if card_local(r) or not _compiles(r)}
    return _only(ruleset, local, True), _only(ruleset, local, False)


class StoreSideRules:
    """Evaluate ``ruleset`` in ClickHouse, incrementally, as the watermark advances.

    Parameters
    ----------
    ruleset : RuleSet
        The store-side rules (:func:`split_rules`).
    store : Store
        The store every worker writes the events to.
    max_span_s : float
        Longest stretch of event time one query evaluates (a leader that is far
        behind catches up over several ticks; :meth:`behind` says so).
    alert_window_s, case_alerts, case_alerts_per_hour : int, bool, int
        As for :class:`~driftwatch.rules.stage.RuleStage` (the same alert mapping).
    start : datetime, optional
        Where a rule without a stored mark starts (default: the oldest stored event
        within the rule horizon before the first watermark: what a worker's warm-up
        would read; older events are not evaluated by these rules).
    """

    name = "store_rules"

    def __init__(
        self,
        ruleset: RuleSet,
        store: Store,
        *,
        max_span_s: float = 21600.0,
        alert_window_s: int = 86_400,
        case_alerts: bool = True,
        case_alerts_per_hour: int = 30,
        start: dt.datetime | None = None,
    ) -> None:
        if max_span_s <= 0:
            raise ValueError(f"max_span_s must be > 0, got {max_span_s}")
        self.ruleset = ruleset
        self.store = store
        self.max_span = dt.timedelta(seconds=max_span_s)
        self.start = None if start is None else _utc(start)
        self.mapping = RuleStage(ruleset, None, alert_window_s=alert_window_s,
                                 case_alerts=case_alerts,
                                 case_alerts_per_hour=case_alerts_per_hour)
        """Used only for its hits -> findings mapping (it never evaluates)."""
        self.queries: dict[str, CompiledRule] = {r.id: compile_rule(r) for r in ruleset.rules}
        self.rules = {r.id: r for r in ruleset.rules}
        self.marks: dict[str, dt.datetime] | None = None
        """Per rule, the event time up to which (exclusive) it was evaluated."""
        self.evaluations = 0
        self.queries_run = 0
        self.query_seconds = 0.0
        self.hits_total = 0
        self.idle_until: dt.datetime | None = None
        """Set by the leader while every partition is idle: evaluate up to this event
        time (the newest stored) rather than the watermark, which trails it by the
        allowed lateness (nothing is arriving that the lateness would wait for)."""
        self.pending_hits: list[dict[str, Any]] = []
        """Hit rows not yet taken by :meth:`take_hits` (for the rule-hits topic)."""

    @classmethod
    def from_settings(cls, ruleset: RuleSet, store: Store,
                      settings: Settings) -> StoreSideRules:
        """The store-side stage over ``ruleset`` with ``rule_store_max_span_s`` and the
        case-alert settings of ``settings`` (those of the in-stream stage)."""
        return cls(ruleset, store, max_span_s=settings.rule_store_max_span_s,
                   case_alerts=settings.rule_case_alerts,
                   case_alerts_per_hour=settings.rule_case_alerts_per_hour)

    # -- leadership --------------------------------------------------------------------
    def take_over(self) -> int:
        """Start a term: reload the marks from the store and rebuild the alert tallies
        from the stored hits of the alert window before them; returns the hits read."""
        self.marks = self._load_marks()
        self.mapping = RuleStage(
            self.ruleset, None, alert_window_s=self.mapping.alert_window_s,
            case_alerts=self.mapping.case_alerts,
            case_alerts_per_hour=self.mapping.case_alerts_per_hour)
        if not self.marks:
            return 0
        rows = self.store.query(
            f"SELECT rule_id, event_id, event_time, evidence FROM {{db}}.{HIT_TABLE} FINAL "
            "WHERE rule_id IN {rules:Array(String)} "
            "AND event_time >= {since:DateTime64(3, 'UTC')} ORDER BY event_time, event_id",
            {"rules": sorted(self.marks),
             "since": min(self.marks.values()) - self._alert_window()},
        )
        kept = [(str(r), str(e), _utc(at), _evidence(ev)) for r, e, at, ev in rows
                if r in self.rules and _utc(at) < self.marks.get(str(r), _utc(at))]
        hits = self._hits(kept)
        self.mapping.findings(hits)  # the tallies only: these alerts were raised before
        return len(hits)

    def _alert_window(self) -> dt.timedelta:
        return max((self.mapping.alert_window(r) for r in self.ruleset.rules),
                   default=dt.timedelta(0))

    def _load_marks(self) -> dict[str, dt.datetime]:
        rows = self.store.query(
            f"SELECT rule_id, max(evaluated_until) FROM {{db}}.{PROGRESS_TABLE} "
            "WHERE rule_id IN {rules:Array(String)} GROUP BY rule_id",
            {"rules": sorted(self.rules)},
        )
        return {str(r): _utc(u) for r, u in rows}

    # -- evaluation --------------------------------------------------------------------
    def on_watermark(self, watermark: dt.datetime) -> StageOutput:
        """Evaluate every rule over the events up to ``watermark`` (inclusive) not yet
        evaluated (at most ``max_span`` of event time each); store the hits, then the
        marks; return the findings."""
        if not self.rules:
            return StageOutput()
        if self.marks is None:
            self.take_over()
        assert self.marks is not None
        until = self._until(watermark)
        found: list[tuple[str, str, dt.datetime, dict[str, Any]]] = []
        moved: dict[str, dt.datetime] = {}
        for rule_id, query in self.queries.items():
            since = self.marks.get(rule_id) or self._first(until)
            if since is None or since >= until:
                continue
            end = min(until, since + self.max_span)
            found.extend(self._evaluate(rule_id, query, since, end))
            moved[rule_id] = end
        if not moved:
            return StageOutput()
        hits = self._hits(found)
        rows = [hit_row(h, dt.datetime.now(UTC)) for h in hits]
        if rows:  # the hits first, then the marks: a crash between re-evaluates the span
            self.store.insert_columns(HIT_TABLE, {k: [r[k] for r in rows] for k in rows[0]})
        now = dt.datetime.now(UTC)
        self.store.insert_columns(PROGRESS_TABLE, {
            "rule_id": list(moved), "evaluated_until": list(moved.values()),
            "updated_at": [now] * len(moved)})
        self.marks.update(moved)
        self.evaluations += 1
        self.hits_total += len(hits)
        self.pending_hits.extend(rows)
        return StageOutput(findings=self.mapping.findings(hits), rule_hits=rows)

    def behind(self, watermark: dt.datetime) -> int:
        """Rules not yet evaluated up to ``watermark`` (a tick ran out of span)."""
        if self.marks is None:
            return 0
        until = self._until(watermark)
        return sum(1 for r in self.rules if (m := self.marks.get(r)) is not None and m < until)

    def _until(self, watermark: dt.datetime) -> dt.datetime:
        """The end (exclusive) of what may be evaluated at ``watermark``."""
        at = _utc(watermark)
        if self.idle_until is not None:
            at = max(at, _utc(self.idle_until))
        return at + MS

    def take_hits(self) -> list[dict[str, Any]]:
        """The hit rows stored since the last call (to publish)."""
        out, self.pending_hits = self.pending_hits, []
        return out

    def _first(self, until: dt.datetime) -> dt.datetime | None:
        """Where a rule without a mark starts: the oldest stored event within the rule
        horizon before ``until``, or ``start`` (None: nothing stored)."""
        if self.start is not None:
            return self.start
        floor = until - dt.timedelta(milliseconds=self.ruleset.horizon_ms)
        rows = self.store.query(
            "SELECT min(event_time), count() FROM {db}.scored_transactions "
            "WHERE event_time >= {floor:DateTime64(3, 'UTC')} "
            "AND event_time < {until:DateTime64(3, 'UTC')}",
            {"floor": floor, "until": until},
        )
        if not rows or not rows[0][1]:
            return None
        return _utc(rows[0][0])

    def _evaluate(self, rule_id: str, query: CompiledRule, since: dt.datetime,
                  until: dt.datetime) -> list[tuple[str, str, dt.datetime, dict[str, Any]]]:
        started = time.perf_counter()
        cols = self.store.query_columns(query.sql, query.bind(since, until))
        self.queries_run += 1
        self.query_seconds += time.perf_counter() - started
        ids = cols.get("event_id", [])
        return [
            (rule_id, str(eid), _utc(cols["event_time"][i]),
             {label: cols[f"_e{j}"][i] for j, label in enumerate(query.evidence)})
            for i, eid in enumerate(ids)
        ]

    def _hits(self, found: Sequence[tuple[str, str, dt.datetime, dict[str, Any]]]
              ) -> list[Hit]:
        """Hits with their full stored events, in event-time order."""
        if not found:
            return []
        start = min(f[2] for f in found)
        end = max(f[2] for f in found) + MS
        wanted = {f[1] for f in found}
        events: dict[str, ScoredTransaction] = {}
        for batch in stored_events(self.store, start, end):
            events.update((e.event_id, e) for e in batch if e.event_id in wanted)
        hits = [Hit(self.rules[r], events[eid], evidence)
                for r, eid, _, evidence in found if eid in events]
        hits.sort(key=lambda h: (h.event.event_time, h.event.event_id, h.rule.id))
        return hits


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _evidence(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
