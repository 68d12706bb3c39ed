"""Adversarial scenarios: perturb high-risk fixtures, assert the direction of the score.

A scenario is YAML (``gate/scenarios/*.yaml``) in a closed vocabulary — no code:

.. code-block:: yaml

    name: velocity_burst
    description: twelve more transactions on the card in the last 24 hours
    change:
      features.transactions_24h: {add: 12}
    expect: not_lower          # or prefer_review
    tolerance: 0.05

``change`` maps a field (top level, or ``features.<name>``) to one operation:
``set: VALUE``, ``add: NUMBER``, ``mul: NUMBER`` (amounts stay exact),
``append: TEXT`` (to a text field), ``drop: true`` (remove the field),
``shift_hours: NUMBER`` (``event_time`` only).
``expect: not_lower`` — clearly worse behaviour must not lower the score by more
than ``tolerance``; ``prefer_review`` — missing information must not turn a held
transaction into an approved one. Each scenario reports the mean score change of
both models; it *blocks* when the challenger breaks the assertion on at least
``share`` of the fixtures and on ``share`` more of them than the champion does (a
regression of the challenger; a weakness both models share is a warning).

>>> s = parse({"name": "x", "change": {"features.n": {"add": 2}, "amount": {"mul": 0.5}},
...            "expect": "not_lower"}, "x.yaml")
>>> e = s.perturb({"amount": "10.37", "features": {"n": 1}})
>>> e["amount"], e["features"]["n"]
('5.18', 3)
>>> parse({"name": "x", "change": {"mcc": {"eval": "1"}}, "expect": "not_lower"},
...       "y.yaml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
driftwatch.gate.errors.GateError: y.yaml: change of mcc: unknown operation 'eval'; valid: ...
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from driftwatch.gate.errors import GateError
from driftwatch.gate.findings import Finding
from driftwatch.gate.probe import minor_units

OPS = ("add", "append", "drop", "mul", "set", "shift_hours")
EXPECT = ("not_lower", "prefer_review")
SCENARIO_DIR = Path(__file__).parent / "scenarios"
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scenario:
    """One parsed scenario."""

    name: str
    description: str
    change: tuple[tuple[str, str, Any], ...]
    expect: str
    tolerance: float

    def perturb(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A perturbed copy of ``event`` (``model``/``shadow`` dropped)."""
        out = {k: v for k, v in event.items() if k not in ("model", "shadow")}
        out["features"] = dict(out.get("features") or {})
        for field, op, arg in self.change:
            head, _, sub = field.partition(".")
            target = out["features"] if head == "features" and sub else out
            key = sub if head == "features" and sub else field
            if op == "drop":
                target.pop(key, None)
            elif op == "set":
                target[key] = arg
            elif op == "append":
                target[key] = str(target.get(key, "")) + str(arg)
            elif op == "shift_hours":
                t = dt.datetime.fromisoformat(str(out["event_time"]).replace("Z", "+00:00"))
                t = t + dt.timedelta(hours=float(arg))
                out["event_time"] = t.isoformat().replace("+00:00", "Z")
            elif key == "amount":
                minor = Decimal(minor_units(out))
                new = minor + Decimal(str(arg)) * 100 if op == "add" else minor * Decimal(str(arg))
                m = max(1, int(new.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)))
                out["amount"] = f"{m // 100}.{m % 100:02d}"
            else:
                cur = target.get(key, 0)
                cur = cur if isinstance(cur, int | float) and not isinstance(cur, bool) else 0
                val = cur + arg if op == "add" else cur * arg
                whole = isinstance(cur, int) and float(val).is_integer()
                target[key] = round(val) if whole else val
        return out


def parse(doc: Any, where: str) -> Scenario:
    """Validate one scenario document; raise :class:`GateError` naming the problem."""
    if not isinstance(doc, dict):
        raise GateError(f"{where}: a scenario is a mapping")
    unknown = set(doc) - {"name", "description", "change", "expect", "tolerance"}
    if unknown:
        raise GateError(f"{where}: unknown keys {sorted(unknown)}; valid: name, description, "
                        "change, expect, tolerance")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise GateError(f"{where}: name must be a non-empty string")
    if doc.get("expect") not in EXPECT:
        raise GateError(f"{where}: expect={doc.get('expect')!r}; valid: {', '.join(EXPECT)}")
    change = doc.get("change")
    if not isinstance(change, dict) or not change:
        raise GateError(f"{where}: change must be a non-empty mapping of field -> operation")
    ops = []
    for field, spec in change.items():
        if not isinstance(spec, dict) or len(spec) != 1:
            raise GateError(f"{where}: change of {field}: one operation, e.g. {{add: 1}}")
        ((op, arg),) = spec.items()
        if op not in OPS:
            raise GateError(f"{where}: change of {field}: unknown operation {op!r}; "
                            f"valid: {', '.join(OPS)}")
        if op in ("add", "mul", "shift_hours") and (
            not isinstance(arg, int | float) or isinstance(arg, bool)
        ):
            raise GateError(f"{where}: change of {field}: {op} needs a number, got {arg!r}")
        if op == "append" and not isinstance(arg, str):
            raise GateError(f"{where}: change of {field}: append needs text, got {arg!r}")
        if op == "shift_hours" and field != "event_time":
            raise GateError(f"{where}: shift_hours applies to event_time only, not {field}")
        if field == "amount" and op in ("add", "mul"):
            try:
                Decimal(str(arg))
            except InvalidOperation:
                raise GateError(f"{where}: amount {op} {arg!r} is not a number") from None
        ops.append((str(field), op, arg))
    tol = doc.get("tolerance", 0.05)
    if not isinstance(tol, int | float) or not 0 <= tol < 1:
        raise GateError(f"{where}: tolerance must be in [0, 1), got {tol!r}")
    return Scenario(name, str(doc.get("description", "")).strip(), tuple(ops),
                    str(doc["expect"]), float(tol))


def load(paths: Sequence[Path] | None = None) -> list[Scenario]:
    """Scenarios from files (default: every shipped ``scenarios/*.yaml``)."""
    files = list(paths) if paths else sorted(SCENARIO_DIR.glob("*.yaml"))
    out = []
    for p in files:
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise GateError(f"{p}: {exc}") from None
        out.append(parse(doc, str(p)))
    return out


def _violations(base: F64, new: F64, s: Scenario, threshold: float) -> npt.NDArray[np.bool_]:
    if s.expect == "prefer_review":
        return (base >= threshold) & (new < threshold)
    return new - base < -s.tolerance


def run(
    scenarios: Sequence[Scenario],
    fixtures: Sequence[Mapping[str, Any]],
    score: Any,
    *,
    threshold: float,
    share: float = 0.25,
) -> tuple[list[Finding], list[dict[str, Any]], int]:
    """Run every scenario; ``score(events) -> (champion, challenger)`` arrays.

    Returns findings, one summary row per scenario, and the number of probes scored.
    """
    if not fixtures:
        return [], [], 0
    base_c, base_h = score([dict(f) for f in fixtures])
    findings, rows, probes = [], [], len(fixtures)
    n = len(fixtures)
    for s in scenarios:
        new_c, new_h = score([s.perturb(f) for f in fixtures])
        probes += n
        vc = float(_violations(base_c, new_c, s, threshold).mean())
        vh = float(_violations(base_h, new_h, s, threshold).mean())
        dc, dh = float((new_c - base_c).mean()), float((new_h - base_h).mean())
        rows.append({"scenario": s.name, "expect": s.expect, "n": n,
                     "champion_delta": dc, "challenger_delta": dh,
                     "champion_violations": vc, "challenger_violations": vh})
        if vh >= share and vh - vc >= share:
            sev, block = "critical", True
        elif vh >= share:
            sev, block = "warning", False
        else:
            continue
        findings.append(Finding(
            check=f"scenario:{s.name}", severity=sev, blocking=block, n=n,
            champion_mean=float(new_c.mean()), challenger_mean=float(new_h.mean()),
            summary=(f"{s.name} ({s.expect}): challenger breaks it on {vh:.0%} of fixtures "
                     f"(champion {vc:.0%}); mean change {dh:+.3f} vs {dc:+.3f}"),
        ))
    return findings, rows, probes
