"""The rule layer as a pipeline stage: live evaluation, ``rule_hits`` rows and alerts.

:class:`RuleStage` implements :class:`driftwatch.pipeline.EventStage`. Per batch it

1. evaluates every loaded rule (enforce and shadow) with the
   :class:`~driftwatch.rules.live.LiveEvaluator` (idempotent per ``event_id``);
2. inserts the hits into ``{db}.rule_hits`` in one columnar insert (the table
   collapses re-inserted hits on ``(rule_id, event_id)``);
3. returns the hit rows (for the ``transactions.rule_hits`` topic) and one
   :class:`~driftwatch.alerts.model.Finding` per rule x segment that had new
   enforced hits. A finding carries the running totals of the rule in that segment
   over the trailing alert window, so a 247-transaction campaign is one alert (one
   fingerprint) whose count and amount grow, not 247 alerts. A rule's
   ``alert_min_hits`` and ``alert_min_cards`` hold the alert back until that many
   hits, on that many distinct cards, accumulated in the segment within the rule's
   ``alert_window`` (default: the stage's ``alert_window_s``). Below the floors there
   is no alert at all: every hit is already a case (``rule_hits`` and its topic); the
   SOC hears of a rule only when its hits cluster (see ``rules/README.md``).
4. for rules with ``case_alert: true`` (single-card patterns: card testing, a
   takeover), also one ``RuleCase`` *info* finding per rule x card, from the card's
   first hit, growing with its later hits like an incident does. Cases are
   deduplicated per card (one fingerprint) and rate-limited per rule
   (``case_alerts_per_hour`` new cards an hour of event time, decided at a card's
   first hit; a card held back stays a case in ``rule_hits`` only until its hits
   leave the alert window). ``case_alerts=False`` turns them all off.
   A case carries ``scope="card"`` and the incident of its rule and segment
   ``scope="campaign"``, both with ``campaign="<rule id>:<segment>"``: Alertmanager's
   inhibition (``deploy/alertmanager/alertmanager.yml``) mutes the single-card cases
   of a campaign while the campaign's own alert fires.

It also counts, per rule, the events that carry the fields the rule needs
(:class:`~driftwatch.rules.coverage.FieldCoverage`, on ``/metrics``) and warns once
about a rule that cannot evaluate on most of the traffic.

Shadow rules are evaluated and stored (``mode = 'shadow'``) but raise no alerts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftwatch.alerts.model import Finding, Severity
from driftwatch.amounts import format_money
from driftwatch.errors import RuleError
from driftwatch.events import EPOCH, UTC, ScoredTransaction, epoch_ms
from driftwatch.pipeline import StageOutput
from driftwatch.rules.coverage import FieldCoverage
from driftwatch.rules.live import LiveEvaluator
from driftwatch.rules.model import ALERT_SEVERITY, Hit, Rule
from driftwatch.rules.pack import RuleSet, load_rules
from driftwatch.settings import Settings
from driftwatch.store.client import Store

log = logging.getLogger(__name__)

HIT_TABLE = "rule_hits"
INCIDENT_ALERT = "RuleHit"
"""Alertname of a rule x segment that reached its floors (warning or critical)."""
CASE_ALERT = "RuleCase"
"""Alertname of one card hit by a ``case_alert`` rule (info)."""
CASE_SEVERITY: Severity = "info"
HOUR_MS = 3_600_000
COVERAGE_SAMPLE = 8
"""The stage measures field coverage on one event in this many (see ``FieldCoverage``)."""
SWEEP_EVERY = 256
"""Batches with hits between two sweeps of the idle alert tallies."""
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:\-]{0,128}")
_HIT_SEGMENT_COLUMNS = frozenset({"mcc", "merchant_country", "channel", "merchant_id", "card_id"})
"""Segment fields that ``rule_hits`` stores itself."""


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def hit_row(hit: Hit, hit_time: dt.datetime) -> dict[str, Any]:
    """The ``rule_hits`` row (and topic message) of one hit."""
    e, r = hit.event, hit.rule
    return {
        "event_id": e.event_id,
        "txn_id": e.txn_id,
        "event_time": e.event_time,
        "rule_id": r.id,
        "rule_version": r.version,
        "severity": r.severity,
        "mode": r.mode,
        "reason_code": r.reason_code,
        "high_risk": 1 if r.high_risk else 0,
        "pack": r.pack,
        "pack_sha256": r.pack_sha256,
        "mcc": e.mcc,
        "merchant_country": e.merchant_country,
        "channel": e.channel,
        "merchant_id": e.merchant_id,
        "card_id": e.card_id,
        "model_version": e.model_version,
        "score": e.score,
        "decision": e.decision,
        "amount_minor": e.amount_minor,
        "evidence": json.dumps(hit.evidence, sort_keys=True, default=_json_default),
        "hit_time": hit_time,
    }


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def segment_of(rule: Rule, event: ScoredTransaction) -> str:
    """Canonical segment string of a hit for the rule's alert dimensions."""
    return ",".join(f"{name}={getattr(event, name)}" for name in rule.alert_segment)


def plural(n: int, word: str) -> str:
    """``1 hit``, ``3 hits``: a count with its noun.

    >>> plural(1, "hit"), plural(5, "card")
    ('1 hit', '5 cards')
    """
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _money(tally: _Tally) -> str:
    """The tally's amount with its currency, grouped (``USD 2,114,461.65``)."""
    known = tally.currencies - {""}
    if len(known) == 1:
        return format_money(tally.amount, next(iter(known)))
    return format_money(tally.amount) + (" in mixed currencies" if known else "")


@dataclass
class _Tally:
    """Hits of one rule in one segment over the trailing alert window."""

    hits: deque[tuple[int, str, int, bool, str]] = field(default_factory=deque)
    ids: set[str] = field(default_factory=set)
    cards: Counter[str] = field(default_factory=Counter)
    amount: int = 0
    approved: int = 0
    newest_ms: int = 0
    currencies: set[str] = field(default_factory=set)
    alerted: bool = False
    held: bool = False
    """A case the rate limit held back: it stays held until its hits leave the window."""

    def add(self, ms: int, event_id: str, amount: int, approved: bool, card: str,
            currency: str = "") -> bool:
        if event_id in self.ids:
            return False
        self.ids.add(event_id)
        self.currencies.add(currency)
        self.newest_ms = max(self.newest_ms, ms)
        self.hits.append((ms, event_id, amount, approved, card))
        self.cards[card] += 1
        self.amount += amount
        self.approved += approved
        return True

    def evict(self, low_ms: int) -> None:
        while self.hits and self.hits[0][0] < low_ms:
            _, eid, amount, approved, card = self.hits.popleft()
            self.ids.discard(eid)
            self.cards[card] -= 1
            if not self.cards[card]:
                del self.cards[card]
            self.amount -= amount
            self.approved -= approved
        if not self.hits:
            self.alerted = self.held = False

    def reaches(self, rule: Rule) -> bool:
        """True when the hits reach both of the rule's alert floors."""
        return len(self.hits) >= rule.alert_min_hits and len(self.cards) >= rule.alert_min_cards


class RuleStage:
    """Live rule evaluation over every batch of valid events.

    Parameters
    ----------
    ruleset : RuleSet
        The loaded packs.
    store : Store, optional
        Where hits are inserted (``rule_hits``); None keeps them in memory only.
    alert_window_s : int
        Trailing window (event time) of the per rule x segment alert totals.
    max_per_key : int
        Most window entries per key (see :class:`~driftwatch.rules.window.KeyedWindow`).
    case_alerts : bool
        Raise ``RuleCase`` info alerts for the rules with ``case_alert: true``.
    case_alerts_per_hour : int
        Most new case alerts per rule per hour of event time.
    coverage_warn_below, coverage_warn_after, coverage_sample : float, int, int
        See :class:`~driftwatch.rules.coverage.FieldCoverage`; by default one event in
        :data:`COVERAGE_SAMPLE` is measured (a share needs no census).
    """

    name = "rules"

    def __init__(
        self,
        ruleset: RuleSet,
        store: Store | None = None,
        *,
        alert_window_s: int = 86_400,
        max_per_key: int = 10_000,
        case_alerts: bool = True,
        case_alerts_per_hour: int = 30,
        coverage_warn_below: float = 0.5,
        coverage_warn_after: int = 1000,
        coverage_sample: int = COVERAGE_SAMPLE,
    ) -> None:
        if alert_window_s <= 0:
            raise ValueError(f"alert_window_s must be > 0, got {alert_window_s}")
        if case_alerts_per_hour < 1:
            raise ValueError(f"case_alerts_per_hour must be >= 1, got {case_alerts_per_hour}")
        self.ruleset = ruleset
        self.store = store
        self.alert_window_s = alert_window_s
        self.evaluator = LiveEvaluator(
            ruleset.rules, horizon_ms=ruleset.horizon_ms, max_per_key=max_per_key
        )
        self.case_alerts = case_alerts
        self.case_alerts_per_hour = case_alerts_per_hour
        self.coverage = FieldCoverage(ruleset.rules, warn_below=coverage_warn_below,
                                      warn_after=coverage_warn_after, sample=coverage_sample)
        self._tallies: dict[tuple[bool, str, str], _Tally] = {}
        self._cases_opened: dict[str, deque[int]] = {}
        self._batches = 0
        self.hits_total = 0
        self.cases_suppressed = 0
        """Cards whose case alert the rate limit held back (their hits are in rule_hits)."""
        self._rules = {r.id: r for r in ruleset.rules}

    def on_events(self, events: Sequence[ScoredTransaction]) -> StageOutput:
        """Evaluate one batch; insert and return its hits and the grown alerts."""
        self.coverage.update(events)
        hits = self.evaluator.process(events)
        if not hits:
            return StageOutput()
        now = dt.datetime.now(UTC)
        rows = [hit_row(h, now) for h in hits]
        if self.store is not None:
            self.store.insert_columns(HIT_TABLE, {k: [r[k] for r in rows] for k in rows[0]})
        self.hits_total += len(hits)
        return StageOutput(findings=self._findings(hits), rule_hits=rows)

    def warm_up(self, store: Store, until: dt.datetime | None = None) -> int:
        """Fill the windows from stored history (the longest window before ``until``).

        Call once at start-up so windows and ``first_seen`` are not empty after a
        restart. Returns the number of events read. No hits are produced.
        """
        from driftwatch.rules.history import stored_events

        end = until or store.max_event_time()
        if end is None:
            return 0
        end = end + dt.timedelta(milliseconds=1)
        start = end - dt.timedelta(milliseconds=self.ruleset.horizon_ms)
        count = 0
        for batch in stored_events(store, start, end):
            self.evaluator.feed(batch)
            count += len(batch)
        return count

    # -- alerts ------------------------------------------------------------------------
    def _findings(self, hits: Sequence[Hit]) -> list[Finding]:
        groups: dict[tuple[bool, str, str], list[Hit]] = {}
        for h in hits:
            if h.rule.mode != "enforce":
                continue
            groups.setdefault((False, h.rule.id, segment_of(h.rule, h.event)), []).append(h)
            if self.case_alerts and h.rule.case_alert and h.event.card_id:
                groups.setdefault((True, h.rule.id, f"card_id={h.event.card_id}"), []).append(h)
        findings = []
        for (case, rule_id, segment), group in groups.items():
            tally = self._tallies.setdefault((case, rule_id, segment), _Tally())
            rule = group[0].rule
            window_ms = self._window_ms(rule)
            fresh = 0
            opened: int | None = None
            # hit by hit in event time, so the opening does not depend on batching
            for h in sorted(group, key=lambda x: x.event.event_time):
                e = h.event
                ms = epoch_ms(e.event_time)
                if not tally.add(ms, e.event_id, e.amount_minor, e.decision == "approve",
                                 e.card_id, e.currency):
                    continue
                fresh += 1
                tally.evict(ms - window_ms)
                if tally.alerted or tally.held:
                    continue
                if case and not self._admit_case(rule, ms):
                    tally.held = True  # decided at the card's first hit, whatever the batching
                elif case or tally.reaches(rule):
                    tally.alerted, opened = True, ms
            tally.evict(tally.newest_ms - window_ms)
            if opened is not None:  # the alert opens at the hit that reached the floors
                at = EPOCH + dt.timedelta(milliseconds=opened)
            elif fresh and tally.alerted and (case or tally.reaches(rule)):
                at = max(h.event.event_time for h in group)
            else:
                continue
            campaign = ""
            if self.case_alerts and rule.case_alert:
                campaign = f"{rule.id}:{segment_of(rule, group[-1].event) if case else segment}"
            findings.append(self._finding(rule, segment, tally, fresh, at, case=case,
                                          campaign=campaign))
        self._batches += 1
        if self._batches % SWEEP_EVERY == 0:
            self._sweep()
        return findings

    def _admit_case(self, rule: Rule, ms: int) -> bool:
        """Whether a new case alert of ``rule`` at ``ms`` fits the hourly rate limit."""
        opened = self._cases_opened.setdefault(rule.id, deque())
        while opened and opened[0] <= ms - HOUR_MS:
            opened.popleft()
        if len(opened) >= self.case_alerts_per_hour:
            self.cases_suppressed += 1
            if self.cases_suppressed == 1 or self.cases_suppressed % 1000 == 0:
                log.warning("rule %s: case alerts over %d an hour; further cards stay in "
                            "rule_hits (%d held back so far)", rule.id,
                            self.case_alerts_per_hour, self.cases_suppressed,
                            extra={"rule_id": rule.id})
            return False
        opened.append(ms)
        return True

    def _sweep(self) -> None:
        """Forget the tallies of segments (and cards) without a hit inside their window."""
        newest = max((x.newest_ms for x in self._tallies.values()), default=0)
        for key in [k for k, x in self._tallies.items()
                    if x.newest_ms < newest - self._window_ms(self._rules[k[1]])]:
            del self._tallies[key]

    def _window_ms(self, rule: Rule) -> int:
        """The rule's alert window (``alert_window``, else the stage's), in ms."""
        return rule.alert_window_ms or self.alert_window_s * 1000

    # -- public access for the store-side stage and the assembly -----------------------
    @classmethod
    def from_settings(cls, ruleset: RuleSet, store: Store | None,
                      settings: Settings) -> RuleStage:
        """The stage over ``ruleset`` with the alert settings (``rule_case_alerts``,
        ``rule_case_alerts_per_hour``, ``rule_coverage_warn_below``,
        ``rule_coverage_warn_after``) of ``settings``."""
        return cls(ruleset, store, case_alerts=settings.rule_case_alerts,
                   case_alerts_per_hour=settings.rule_case_alerts_per_hour,
                   coverage_warn_below=settings.rule_coverage_warn_below,
                   coverage_warn_after=settings.rule_coverage_warn_after)

    def findings(self, hits: Sequence[Hit]) -> list[Finding]:
        """The alert findings of ``hits`` (hits found elsewhere, e.g. by the store-side
        rules), growing this stage's alert tallies exactly as :meth:`on_events` does."""
        return self._findings(hits)

    def alert_window(self, rule: Rule) -> dt.timedelta:
        """The rule's alert window (``alert_window``, else the stage's)."""
        return dt.timedelta(milliseconds=self._window_ms(rule))

    def _finding(
        self, rule: Rule, segment: str, tally: _Tally, fresh: int, newest: dt.datetime,
        *, case: bool = False, campaign: str = "",
    ) -> Finding:
        first = EPOCH + dt.timedelta(milliseconds=min(x[0] for x in tally.hits))
        last = EPOCH + dt.timedelta(milliseconds=max(x[0] for x in tally.hits))
        n = len(tally.hits)
        hours = self._window_ms(rule) / 3_600_000
        cards = len(tally.cards)
        where = (f"on card {segment.partition('=')[2]}" if case else
                 f"on {cards} card{'s' if cards != 1 else ''} in {segment}")
        summary = (
            f"rule {rule.id} v{rule.version} ({rule.reason_code}): {n} hit{'s' if n != 1 else ''}"
            f" totalling {_money(tally)} {where} within {hours:g}h"
            f" ({fresh} new); the model approved {tally.approved} of them"
            + ("; a single-card case, not (yet) an incident" if case else "")
        )
        severity: Severity = (CASE_SEVERITY if case
                              else ALERT_SEVERITY[rule.severity])  # type: ignore[assignment]
        return Finding(
            alertname=CASE_ALERT if case else INCIDENT_ALERT,
            severity=severity,
            source="rule",
            origin=rule.id,
            segment=segment,
            event_time=newest,
            summary=summary,
            value=str(n),
            threshold=("1 hit (case)" if case
                       else f"{plural(rule.alert_min_hits, 'hit')} on "
                            f"{plural(rule.alert_min_cards, 'card')}"),
            window_start=first,
            window_end=last,
            evidence_sql=self._evidence_sql(rule, segment, first),
            description=rule.description,
            runbook=f"{rule.path} (pack {rule.pack}, sha256 {rule.pack_sha256[:12]})",
            extra_labels={**dict(rule.alert_labels), "reason_code": rule.reason_code,
                          **({"scope": "card" if case else "campaign", "campaign": campaign}
                             if campaign else {}),
                          "rule_version": str(rule.version)},
        )

    def _evidence_sql(self, rule: Rule, segment: str, since: dt.datetime) -> str:
        db = self.store.database if self.store is not None else "driftwatch"
        conds = [f"rule_id = {_quote(rule.id)}"]
        for part in segment.split(","):
            name, _, value = part.partition("=")
            if not _SAFE_VALUE.fullmatch(value):
                continue
            if name in _HIT_SEGMENT_COLUMNS:
                conds.append(f"{name} = {_quote(value)}")
            else:  # ip, currency: only on the stored transaction
                conds.append(f"event_id IN (SELECT event_id FROM {db}.scored_transactions"
                             f" WHERE {name} = {_quote(value)})")
        stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        conds.append(f"event_time >= toDateTime64({_quote(stamp)}, 3, 'UTC')")
        return f"SELECT * FROM {db}.rule_hits FINAL WHERE {' AND '.join(conds)} ORDER BY event_time"


def rule_dirs(settings: Settings) -> list[Path]:
    """The configured rule directories that exist."""
    return [Path(d) for d in settings.list_setting("rules_dirs") if Path(d).is_dir()]


def rule_stage_from_settings(settings: Settings, store: Store | None) -> list[RuleStage]:
    """The rule stage for ``settings.rules_dirs`` ([] when no directory exists or none has rules).

    Packs are loaded only from these directories (files resolving outside them are
    refused); a broken pack raises :class:`~driftwatch.rules.pack.RuleLoadError`.
    """
    dirs = rule_dirs(settings)
    missing = [d for d in settings.list_setting("rules_dirs") if not Path(d).is_dir()]
    if missing:
        log.warning("rule directories not found", extra={"dirs": missing})
    if not dirs:
        return []
    if settings.rule_state_horizon_s <= 0:
        raise RuleError(
            f"rule_state_horizon_s must be > 0, got {settings.rule_state_horizon_s}"
        )
    ruleset = load_rules(dirs, settings.rule_state_horizon_s * 1000, confine=True)
    if not ruleset.rules:
        return []
    return [RuleStage.from_settings(ruleset, store, settings)]
