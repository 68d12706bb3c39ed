"""The exception hierarchy: one root, small subclasses.

Every error driftwatch raises on purpose is a :class:`DriftwatchError`, so callers
can catch the family with one clause and the CLI can print it without a traceback.
"""

from __future__ import annotations


class DriftwatchError(Exception):
    """Root of every error raised by driftwatch on purpose."""


class ConfigError(DriftwatchError):
    """A setting, DSN or configuration file is missing or invalid."""


class EventError(DriftwatchError):
    """An input event could not be parsed or failed validation."""


class StoreError(DriftwatchError):
    """ClickHouse could not be reached, or a query or insert failed."""


class StoreBusyError(StoreError):
    """The embedded store's data path is held by another process (a running worker)."""


class RuleError(DriftwatchError):
    """A rule file failed to parse, type-check or evaluate."""


class SimulationError(DriftwatchError):
    """A simulator scenario is invalid or generation failed."""


class MonitorError(DriftwatchError):
    """A detector or monitor pass failed or is misconfigured."""


class AlertError(DriftwatchError):
    """An alert could not be built, stored or delivered."""


class StreamError(DriftwatchError):
    """The Kafka/faust streaming layer failed or is misconfigured."""
