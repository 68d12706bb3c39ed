"""Declared, validated query parameters shared by the HTTP API and the CLI.

Each endpoint declares its parameters once (:class:`Param`); the same declarations
validate API requests (a bad value is a 422 with a message naming the parameter),
validate the CLI's options, and generate the OpenAPI description. Values only ever
reach SQL as server-side parameters; names (dimensions, sort keys) only from the
closed lists below.

>>> parse(SEGMENT_PARAMS, {"mcc": ["5967,5999"], "limit": ["10"]})["mcc"]
('5967', '5999')
>>> parse(SEGMENT_PARAMS, {"mcc": ["59x7"]})
Traceback (most recent call last):
...
driftwatch.api.params.ParamError: mcc: '59x7' does not match ^[0-9]{4}$
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftwatch.errors import DriftwatchError
from driftwatch.events import CHANNELS

MAX_VALUES = 50
MAX_TEXT = 256
DIMENSIONS: tuple[str, ...] = ("mcc", "merchant_country", "channel", "model_version", "currency")
SEGMENT_SORTS: tuple[str, ...] = (
    "n", "amount", "score_mean", "fraud_rate", "recall", "precision", "decline_rate",
)
_RELATIVE = re.compile(r"([0-9]{1,6})([mhd])")


class ParamError(DriftwatchError, ValueError):
    """A query parameter or command option has a bad value (HTTP 422)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``kind`` is one of ``str``, ``int``, ``time`` (RFC 3339, a date, or a duration such
    as ``6h`` counted back from the newest stored event), ``enum``.
    """

    name: str
    kind: str
    doc: str
    pattern: str = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    multi: bool = False
    default: Any = None


_MODEL = r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}$"
_SEGMENT = r"^[a-z_]+=[^,=]{1,64}(,[a-z_]+=[^,=]{1,64}){0,5}$"
_TIME_DOC = (
    "RFC 3339 time (2026-03-18T14:00:00Z), a date (2026-03-18), or a duration "
    "(90m, 6h, 7d) counted back from the newest stored event time"
)

SEGMENT_PARAMS: tuple[Param, ...] = (
    Param("by", "enum", "Dimensions to break down by (comma separated or repeated)",
          choices=DIMENSIONS, multi=True, default=("mcc",)),
    Param("mcc", "str", "Only these merchant category codes", pattern=r"^[0-9]{4}$",
          multi=True, default=()),
    Param("merchant_country", "str", "Only these merchant countries (ISO 3166 alpha-2)",
          pattern=r"^[A-Z]{2}$", multi=True, default=()),
    Param("channel", "enum", "Only these channels", choices=CHANNELS, multi=True, default=()),
    Param("model_version", "str", "Only these model versions", pattern=_MODEL, multi=True,
          default=()),
    Param("currency", "str", "Only these currencies", pattern=r"^[A-Z]{3}$", multi=True,
          default=()),
    Param("since", "time", "Start of the event-time range (inclusive); default 24h. "
          + _TIME_DOC, default="24h"),
    Param("until", "time", "End of the event-time range (exclusive); default: open. "
          + _TIME_DOC),
    Param("bucket", "enum", "Time buckets: none (whole range), hour or day",
          choices=("none", "hour", "day"), default="none"),
    Param("min_count", "int", "Leave out rows with fewer transactions", minimum=1,
          maximum=10**9, default=1),
    Param("sort", "enum", "Sort key (within each time bucket when bucketed)",
          choices=SEGMENT_SORTS, default="n"),
    Param("order", "enum", "Sort direction", choices=("desc", "asc"), default="desc"),
    Param("limit", "int", "Most rows returned", minimum=1, maximum=10_000, default=100),
)

ALERT_PARAMS: tuple[Param, ...] = (
    Param("status", "enum", "Current status", choices=("firing", "resolved", "all"),
          default="all"),
    Param("severity", "enum", "Only these severities", choices=("info", "warning", "critical"),
          multi=True, default=()),
    Param("source", "enum", "Only alerts from detectors or rules",
          choices=("detector", "rule"), multi=True, default=()),
    Param("alertname", "str", "Only these alert names", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
          multi=True, default=()),
    Param("segment", "str", "Only this segment, canonical form (mcc=5967,merchant_country=LT)",
          pattern=_SEGMENT),
    Param("model_version", "str", "Only these model versions", pattern=_MODEL, multi=True,
          default=()),
    Param("since", "time", "Alerts updated at or after this event time. " + _TIME_DOC),
    Param("until", "time", "Alerts updated before this event time. " + _TIME_DOC),
    Param("limit", "int", "Most alerts returned", minimum=1, maximum=1000, default=100),
    Param("offset", "int", "Skip this many alerts (paging)", minimum=0, maximum=100_000,
          default=0),
)

SHOW_PARAMS: tuple[Param, ...] = (
    Param("evidence_limit", "int", "Most evidence rows returned", minimum=0, maximum=1000,
          default=20),
)

FINGERPRINT = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class RelativeTime:
    """A duration counted back from the newest stored event time (``6h``)."""

    seconds: int


def parse_time(name: str, text: str) -> dt.datetime | RelativeTime:
    """Parse an RFC 3339 time, a date or a relative duration.

    >>> parse_time("since", "2026-03-18T14:00:00+01:00").isoformat()
    '2026-03-18T13:00:00+00:00'
    >>> parse_time("since", "6h")
    RelativeTime(seconds=21600)
    >>> parse_time("since", "yesterday")
    Traceback (most recent call last):
    ...
    driftwatch.api.params.ParamError: since: 'yesterday' is not an RFC 3339 time, a date \
or a duration like 6h
    """
    m = _RELATIVE.fullmatch(text)
    if m:
        unit = {"m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return RelativeTime(int(m.group(1)) * unit)
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            value = dt.datetime.fromisoformat(text)
        elif re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})?",
                          text):
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            raise ValueError(text)
    except ValueError:
        raise ParamError(
            name, f"{text[:40]!r} is not an RFC 3339 time, a date or a duration like 6h"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    if not dt.datetime(2000, 1, 1, tzinfo=dt.UTC) <= value < dt.datetime(2100, 1, 1,
                                                                          tzinfo=dt.UTC):
        raise ParamError(name, f"{text!r} is outside 2000-01-01 .. 2100-01-01")
    return value


def _one(p: Param, raw: str) -> Any:
    if len(raw) > MAX_TEXT:
        raise ParamError(p.name, f"longer than {MAX_TEXT} characters")
    if p.kind == "int":
        if not re.fullmatch(r"-?[0-9]{1,12}", raw):
            raise ParamError(p.name, f"{raw[:40]!r} is not an integer")
        value = int(raw)
        if p.minimum is not None and value < p.minimum:
            raise ParamError(p.name, f"must be >= {p.minimum}, got {value}")
        if p.maximum is not None and value > p.maximum:
            raise ParamError(p.name, f"must be <= {p.maximum}, got {value}")
        return value
    if p.kind == "enum":
        if raw not in p.choices:
            raise ParamError(p.name, f"{raw[:40]!r}; valid: {', '.join(p.choices)}")
        return raw
    if p.kind == "time":
        return parse_time(p.name, raw)
    if p.pattern and not re.fullmatch(p.pattern.strip("^$"), raw):
        raise ParamError(p.name, f"{raw[:40]!r} does not match {p.pattern}")
    return raw


def parse(declared: Sequence[Param], given: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Validate raw parameters (name -> list of strings) against their declarations.

    Unknown names, repeated single-valued parameters and bad values raise
    :class:`ParamError`; absent ones take their defaults. Multi-valued parameters
    accept repetition and comma-separated lists.
    """
    by_name = {p.name: p for p in declared}
    for name in given:
        if name not in by_name:
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise ParamError(shown, f"unknown parameter; valid: {', '.join(by_name)}")
    out: dict[str, Any] = {}
    for p in declared:
        raws = [r for r in given.get(p.name, ()) if r is not None]
        if not raws:
            default = p.default
            out[p.name] = parse_time(p.name, default) if p.kind == "time" and default else default
            continue
        if p.multi:
            items = [item.strip() for raw in raws for item in raw.split(",") if item.strip()]
            if len(items) > MAX_VALUES:
                raise ParamError(p.name, f"at most {MAX_VALUES} values")
            if not items:
                raise ParamError(p.name, "empty value")
            out[p.name] = tuple(dict.fromkeys(_one(p, item) for item in items))
        else:
            if len(raws) > 1:
                raise ParamError(p.name, "given more than once")
            out[p.name] = _one(p, raws[0])
    return out
