"""Detectors registered by name.

A detector module decorates its class with :func:`register`; the monitor builds the
configured detectors with :func:`create`. Every built-in detector module is
imported by :func:`load_builtin`, so ``names()`` lists them all.

>>> load_builtin()
>>> "cents" in names() and "shadow" in names()
True
>>> get("sharks")
Traceback (most recent call last):
...
driftwatch.errors.ConfigError: unknown detector 'sharks'; valid: beneficiary, benford, \
cents, disagreement, novel_prefix, out_of_domain, pileup, recall, score_drift, \
score_drift_predeploy, shadow, trigger_mining, volume
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from driftwatch.errors import ConfigError
from driftwatch.monitors.base import Detector
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.settings import Settings

BUILTIN_MODULES = (
    "score_drift",
    "shadow",
    "cents",
    "benford",
    "recall",
    "disagreement",
    "volume",
    "beneficiary",
    "pileup",
    "out_of_domain",
    "score_drift_predeploy",
    "trigger_mining",
    "novel_prefix",
)

_REGISTRY: dict[str, type[Detector]] = {}

D = TypeVar("D", bound=type[Detector])


def register(cls: D) -> D:
    """Class decorator: register a detector under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    other = _REGISTRY.get(cls.name)
    if other is not None and other is not cls and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"detector name {cls.name!r} already used by {other.__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def load_builtin() -> None:
    """Import every built-in detector module (registering them)."""
    for mod in BUILTIN_MODULES:
        importlib.import_module(f"driftwatch.monitors.{mod}")


def names() -> list[str]:
    """Registered detector names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> type[Detector]:
    """The detector class registered as ``name``; ConfigError listing valid names."""
    load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown detector {name!r}; valid: {', '.join(names())}") from None


def create(
    settings: Settings,
    spec: SegmentSpec,
    selected: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Detector]:
    """Build detectors: ``selected`` names (default: all; ``["none"]``: none), with
    per-name ``options``."""
    load_builtin()
    if list(selected or ()) == ["none"]:
        return []
    chosen = list(selected) if selected else names()
    opts = dict(options or {})
    for key in opts:
        get(key)
    out: list[Detector] = []
    for name in chosen:
        cls = get(name)
        try:
            out.append(cls(settings, spec, **dict(opts.get(name, {}))))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    return out
