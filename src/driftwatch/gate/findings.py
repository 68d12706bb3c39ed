"""The gate's result types: one finding per check, and the verdict of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """One finding, as in the scorer contract's JSON (plus ``details`` for reports)."""

    check: str
    severity: str
    blocking: bool
    summary: str
    conjunction: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    champion_mean: float = float("nan")
    challenger_mean: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity={self.severity!r}; allowed: {', '.join(SEVERITIES)}")

    def to_json(self) -> dict[str, Any]:
        """The contract's finding object (NaN means are written as null)."""

        def num(x: float) -> float | None:
            return None if x != x else round(float(x), 6)

        return {
            "check": self.check,
            "severity": self.severity,
            "blocking": self.blocking,
            "conjunction": self.conjunction,
            "n": int(self.n),
            "champion_mean": num(self.champion_mean),
            "challenger_mean": num(self.challenger_mean),
            "summary": self.summary,
        }


@dataclass(frozen=True)
class GateResult:
    """The outcome of one ``driftwatch gate`` run."""

    champion: str
    challenger: str
    probes: int
    seconds: float
    findings: tuple[Finding, ...]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``block`` when any finding blocks, else ``pass``."""
        return "block" if any(f.blocking for f in self.findings) else "pass"

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON document."""
        return {
            "verdict": self.verdict,
            "champion": self.champion,
            "challenger": self.challenger,
            "probes": int(self.probes),
            "seconds": round(self.seconds, 3),
            "findings": [f.to_json() for f in self.findings],
        }
