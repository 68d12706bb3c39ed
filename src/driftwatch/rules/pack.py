"""Loading rule packs: YAML files -> type-checked :class:`~driftwatch.rules.model.Rule` s.

A pack is one ``.yaml`` file::

    pack: card_testing                 # optional, default: the file name
    description: Small test charges at high velocity.
    rules:
      - id: card_testing_velocity      # [a-z][a-z0-9_]*, unique over all loaded packs
        version: 1
        severity: high                 # low | medium | high | critical
        reason_code: CARD_TESTING      # [A-Z][A-Z0-9_]*
        mode: enforce                  # enforce | shadow
        description: ...
        alert_segment: [mcc]           # alerts aggregate per rule x these fields
        alert_min_hits: 1              # hits in a segment (alert window) before the alert fires
        alert_min_cards: 1             # ... and distinct cards among those hits
        alert_window: 24h              # the alert window (default: the stage's, 24 h)
        case_alert: true               # each card hit is also an info alert naming the card
        when: count(by=card_id, within=10m, where=amount_minor <= 500) >= 4
        examples:
          - name: four small charges
            expect: hit                # judged on the last event
            events:
              - {card_id: c-1, amount: "1.01", repeat: 4, every: 1m}

Example events (:mod:`~driftwatch.rules.examples`) are partial contract events laid
over :data:`~driftwatch.rules.examples.BASE_EVENT`; ``t``
(seconds or a duration such as ``90s``) is the offset from the base time,
``repeat: N`` copies an event N times (``every`` apart, ``{i}`` in strings
replaced by the copy number) and ids are generated; ``base: required`` lays an
event over the contract's required fields only (``REQUIRED_BASE``: no channel,
no merchant country), as a client sending nothing optional would.

Safety: files are read with the YAML *safe* loader after a scan
(:mod:`~driftwatch.rules.yaml_source`) that rejects aliases (no "billion laughs"),
nesting deeper than ``MAX_YAML_DEPTH`` and files
larger than :data:`MAX_FILE_BYTES`; rule text is only ever tokenized and parsed.
The live service loads packs only from its configured directories and refuses
files that resolve outside them (symlinks); each pack's SHA-256 is logged and
stored with its hits.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from driftwatch.errors import RuleError
from driftwatch.rules.checker import RuleTypeError, check_condition
from driftwatch.rules.examples import duration_ms, expand_events
from driftwatch.rules.lexer import RuleSyntaxError
from driftwatch.rules.model import MODES, SEGMENT_FIELDS, SEVERITIES, Example, Pack, Rule
from driftwatch.rules.parser import parse
from driftwatch.rules.yaml_source import RuleLoadError as RuleLoadError  # re-exported
from driftwatch.rules.yaml_source import (
    locate,
    scan_yaml,
    yaml_mapping,
    yaml_message,
    yaml_value,
)

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000
MAX_RULES_PER_PACK = 200
DEFAULT_HORIZON_MS = 86_400_000
MAX_ALERT_WINDOW_MS = 7 * 86_400_000
_ID = re.compile(r"[a-z][a-z0-9_]{1,63}")
_REASON = re.compile(r"[A-Z][A-Z0-9_]{1,63}")
_LABEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LABEL_VALUE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
RESERVED_LABELS = frozenset({"alertname", "severity", "source", "segment", "detector", "rule_id",
                             "model_version", "reason_code", "rule_version", "scope", "campaign"})
PACK_KEYS = ("pack", "description", "rules")
RULE_KEYS = ("id", "version", "severity", "reason_code", "mode", "description", "when",
             "alert_segment", "alert_min_hits", "alert_min_cards", "alert_window", "alert_labels",
             "case_alert", "examples")
REQUIRED_RULE_KEYS = ("id", "version", "severity", "reason_code", "mode", "when")
EXAMPLE_KEYS = ("name", "expect", "events", "event")

@dataclass(frozen=True)
class RuleSet:
    """The rules of every loaded pack, in load order."""

    packs: tuple[Pack, ...]
    horizon_ms: int = DEFAULT_HORIZON_MS

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule of every pack."""
        return tuple(r for p in self.packs for r in p.rules)

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise RuleError(f"no rule {rule_id!r}; loaded: {', '.join(r.id for r in self.rules)}")


# ------------------------------------------------------------------------------------------
# rules
# ------------------------------------------------------------------------------------------
class _Problems:
    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, node: yaml.Node | None, message: str, rule: str = "") -> None:
        pos = ""
        if node is not None:
            pos = f":{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        who = f" rule {rule}:" if rule else ""
        self.items.append(f"{self.where}{pos}:{who} {message}")

    def at(self, line: int, col: int, message: str, rule: str) -> None:
        self.items.append(f"{self.where}:{line}:{col}: rule {rule}: {message}")


def _labels_ok(labels: Any) -> bool:
    """Constant labels a rule adds to its alerts (e.g. ``feature: customer_age``)."""
    return (
        isinstance(labels, dict)
        and len(labels) <= 8
        and all(
            isinstance(k, str) and _LABEL_NAME.fullmatch(k) is not None
            and k not in RESERVED_LABELS
            and isinstance(v, str) and _LABEL_VALUE.fullmatch(v) is not None
            for k, v in labels.items()
        )
    )


def _examples(node: yaml.Node, rule_id: str, problems: _Problems) -> list[Example]:
    out: list[Example] = []
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node, "examples must be a list", rule_id)
        return out
    for index, ex_node in enumerate(node.value):
        raw = yaml_value(ex_node, problems.where)
        if not isinstance(raw, dict):
            problems.add(ex_node, f"example #{index + 1} must be a mapping", rule_id)
            continue
        unknown = sorted(map(str, set(raw) - set(EXAMPLE_KEYS)))  # (a key may be null)
        if unknown:
            problems.add(ex_node, f"example #{index + 1}: unknown key(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(EXAMPLE_KEYS)}", rule_id)
            continue
        name = str(raw.get("name") or f"#{index + 1}")
        expect = raw.get("expect")
        if expect not in ("hit", "miss"):
            problems.add(ex_node, f"example {name!r}: expect must be hit or miss", rule_id)
            continue
        events = raw.get("events", [raw["event"]] if "event" in raw else None)
        if not isinstance(events, list) or not events:
            problems.add(ex_node, f"example {name!r}: needs event: or events: [...]", rule_id)
            continue
        try:
            expanded = expand_events(events, f"{rule_id}-ex{index + 1}")
        except RuleError as exc:
            problems.add(ex_node, f"example {name!r}: {exc}", rule_id)
            continue
        out.append(Example(name, expect, tuple(expanded), ex_node.start_mark.line + 1))
    return out


def _rule(
    node: yaml.Node, source: str, problems: _Problems, horizon_ms: int, pack: str, sha: str,
    path: str,
) -> Rule | None:
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, "each rule must be a mapping")
        return None
    fields = yaml_mapping(node)
    id_node = fields.get("id", (None, None))[1]
    rule_id = str(id_node.value) if isinstance(id_node, yaml.ScalarNode) else "?"
    before = len(problems.items)
    for key, (k_node, _) in fields.items():
        if key not in RULE_KEYS:
            problems.add(k_node, f"unknown key {key!r}; valid: {', '.join(RULE_KEYS)}", rule_id)
    for key in REQUIRED_RULE_KEYS:
        if key not in fields:
            problems.add(node, f"missing required key {key!r}", rule_id)
    if len(problems.items) > before:
        return None
    values = {k: yaml_value(v, problems.where) for k, (_, v) in fields.items() if k != "examples"}
    checks = (
        ("id", isinstance(values["id"], str) and _ID.fullmatch(values["id"]) is not None,
         "id must match [a-z][a-z0-9_]{1,63}"),
        ("version", isinstance(values["version"], int) and not isinstance(values["version"], bool)
         and values["version"] >= 1, "version must be a positive integer"),
        ("severity", values["severity"] in SEVERITIES,
         f"severity must be one of {', '.join(SEVERITIES)}"),
        ("reason_code", isinstance(values["reason_code"], str)
         and _REASON.fullmatch(values["reason_code"]) is not None,
         "reason_code must match [A-Z][A-Z0-9_]{1,63}"),
        ("mode", values["mode"] in MODES, f"mode must be one of {', '.join(MODES)}"),
        ("when", isinstance(values["when"], str), "when must be a string expression"),
        ("description", isinstance(values.get("description", ""), str),
         "description must be a string"),
        ("alert_min_hits", isinstance(values.get("alert_min_hits", 1), int)
         and not isinstance(values.get("alert_min_hits", 1), bool)
         and 1 <= values.get("alert_min_hits", 1) <= 1_000_000,
         "alert_min_hits must be an integer 1..1000000"),
        ("alert_min_cards", isinstance(values.get("alert_min_cards", 1), int)
         and not isinstance(values.get("alert_min_cards", 1), bool)
         and 1 <= values.get("alert_min_cards", 1) <= 1_000_000,
         "alert_min_cards must be an integer 1..1000000"),
        ("alert_window", "alert_window" not in values
         or (isinstance(values["alert_window"], str)
             and 1000 <= (duration_ms(values["alert_window"]) or 0) <= MAX_ALERT_WINDOW_MS),
         "alert_window must be a duration from 1s to 7d such as 30m, 2h or 1d"),
        ("case_alert", isinstance(values.get("case_alert", False), bool),
         "case_alert must be true or false"),
        ("alert_labels", _labels_ok(values.get("alert_labels", {})),
         "alert_labels must map up to 8 names [a-z][a-z0-9_]* (not "
         f"{', '.join(sorted(RESERVED_LABELS))}) to values [A-Za-z0-9_.:-]{{1,128}}"),
    )
    for key, ok, message in checks:
        if not ok:
            problems.add(fields[key][1], f"{message}, got {values[key]!r}", rule_id)
    segment = values.get("alert_segment", ["mcc"])
    if isinstance(segment, str):
        segment = [segment]
    if not isinstance(segment, list) or not all(s in SEGMENT_FIELDS for s in segment):
        problems.add(fields["alert_segment"][1],
                     f"alert_segment must list fields from {', '.join(SEGMENT_FIELDS)}", rule_id)
    if len(problems.items) > before:
        return None
    when_node = fields["when"][1]
    text = values["when"]
    try:
        expr = check_condition(parse(text), horizon_ms, text)
    except (RuleSyntaxError, RuleTypeError) as exc:
        line, col = locate(when_node, source, exc.pos)
        problems.at(line, col, f"when: {exc.message}", rule_id)
        return None
    examples = _examples(fields["examples"][1], rule_id, problems) if "examples" in fields else []
    return Rule(
        id=values["id"],
        version=values["version"],
        severity=values["severity"],
        reason_code=values["reason_code"],
        description=" ".join(str(values.get("description", "")).split()),
        mode=values["mode"],
        when=" ".join(text.split()),
        expr=expr,
        alert_segment=tuple(segment),
        alert_min_hits=values.get("alert_min_hits", 1),
        alert_min_cards=values.get("alert_min_cards", 1),
        alert_window_ms=duration_ms(values["alert_window"]) if "alert_window" in values else None,
        alert_labels=tuple(sorted((str(k), str(v))
                                  for k, v in values.get("alert_labels", {}).items())),
        case_alert=values.get("case_alert", False),
        pack=pack,
        pack_sha256=sha,
        path=path,
        line=node.start_mark.line + 1,
        examples=tuple(examples),
    )


def load_pack(path: str | Path, horizon_ms: int = DEFAULT_HORIZON_MS) -> Pack:
    """Load, parse and type-check one rule file.

    Raises
    ------
    RuleLoadError
        Listing every problem found, each as ``file:line:col: rule <id>: message``.
    """
    p = Path(path)
    where = str(p)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RuleLoadError([f"{where}: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise RuleLoadError([f"{where}: file larger than {MAX_FILE_BYTES} bytes"])
    sha = hashlib.sha256(data).hexdigest()
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleLoadError([f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})"]) from None
    scan_yaml(source, where)
    try:
        root = yaml.compose(source, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:  # pragma: no cover - _scan saw the same text
        raise RuleLoadError([f"{where}: invalid YAML: {yaml_message(exc)}"]) from None
    problems = _Problems(where)
    if not isinstance(root, yaml.MappingNode):
        raise RuleLoadError([f"{where}: a rule pack is a mapping with a 'rules' list"])
    top = yaml_mapping(root)
    for key, (k_node, _) in top.items():
        if key not in PACK_KEYS:
            problems.add(k_node, f"unknown key {key!r}; valid: {', '.join(PACK_KEYS)}")
    name = p.stem
    if "pack" in top:
        raw_name = yaml_value(top["pack"][1], where)
        if not isinstance(raw_name, str) or not _ID.fullmatch(raw_name):
            problems.add(top["pack"][1], "pack must match [a-z][a-z0-9_]{1,63}")
        else:
            name = raw_name
    rules_node = top.get("rules", (None, None))[1]
    rules: list[Rule] = []
    if not isinstance(rules_node, yaml.SequenceNode) or not rules_node.value:
        problems.add(rules_node or root, "'rules' must be a non-empty list")
    elif len(rules_node.value) > MAX_RULES_PER_PACK:
        problems.add(rules_node, f"more than {MAX_RULES_PER_PACK} rules in one pack")
    else:
        for rule_node in rules_node.value:
            rule = _rule(rule_node, source, problems, horizon_ms, name, sha, where)
            if rule is not None:
                rules.append(rule)
    ids = [r.id for r in rules]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.add(None, f"rule id {dup!r} is defined more than once", dup)
    if problems.items:
        raise RuleLoadError(problems.items)
    return Pack(name=name, path=where, sha256=sha, rules=tuple(rules))


def pack_files(paths: Iterable[str | Path], *, confine: bool = False) -> Iterator[Path]:
    """The ``.yaml``/``.yml`` files named by ``paths`` (files, or directories, sorted).

    With ``confine``, a file that resolves outside its directory (a symlink) is an error.
    """
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            yield p
            continue
        if not p.is_dir():
            raise RuleLoadError([f"{p}: no such rule file or directory"])
        root = p.resolve()
        for f in sorted(p.iterdir()):
            if f.suffix not in (".yaml", ".yml") or not f.is_file():
                continue
            if confine and not f.resolve().is_relative_to(root):
                raise RuleLoadError([f"{f}: resolves outside the rule directory {p}; refused"])
            yield f


def load_rules(
    paths: Iterable[str | Path], horizon_ms: int = DEFAULT_HORIZON_MS, *, confine: bool = False
) -> RuleSet:
    """Load every pack named by ``paths``; all problems of all files are reported together.

    Each loaded pack is logged with its path, SHA-256 and rule count.
    """
    packs: list[Pack] = []
    problems: list[str] = []
    for f in pack_files(paths, confine=confine):
        try:
            packs.append(load_pack(f, horizon_ms))
        except RuleLoadError as exc:
            problems.extend(exc.problems)
    owner: dict[str, str] = {}
    for pack in packs:
        for rule in pack.rules:
            if rule.id in owner:
                problems.append(
                    f"{pack.path}:{rule.line}: rule {rule.id}: id already used in {owner[rule.id]}"
                )
            owner.setdefault(rule.id, pack.path)
    if problems:
        raise RuleLoadError(problems)
    for pack in packs:
        log.info(
            "loaded rule pack",
            extra={"pack": pack.name, "path": pack.path, "sha256": pack.sha256,
                   "rules": len(pack.rules)},
        )
    return RuleSet(tuple(packs), horizon_ms)


def rule_from_text(
    rule_id: str, when: str, *, horizon_ms: int = DEFAULT_HORIZON_MS, severity: str = "high",
    mode: str = "enforce", version: int = 1, reason_code: str = "TEST",
    alert_segment: tuple[str, ...] = ("mcc",),
) -> Rule:
    """A rule built from an expression (tests, docs and the REPL).

    >>> rule_from_text("cents", "amount_cents == 37").expr.ty.value
    'bool'
    """
    expr = check_condition(parse(when), horizon_ms, when)
    return Rule(rule_id, version, severity, reason_code, "", mode, " ".join(when.split()), expr,
                alert_segment=alert_segment, pack="inline")
