"""Alert sinks: where alert state changes go (a JSON-lines file here; Alertmanager and
webhooks in their own modules). Every sink takes the same call: ``send(alerts)``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

from driftwatch.alerts.model import Alert


class AlertSink(Protocol):
    """Anything that accepts alert state changes."""

    def send(self, alerts: Sequence[Alert]) -> None:
        """Deliver these alert records (firing or resolved)."""

    def close(self) -> None:
        """Flush and release resources."""


class JsonlSink:
    """Writes one JSON line per alert state change, per ``alert.schema.json``.

    The file is created (empty) when the sink opens, so a run with no alerts still
    leaves a valid, empty file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = self.path.open("w", encoding="utf-8")
        self.count = 0

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            self._fh.write(json.dumps(alert.to_dict(), sort_keys=True) + "\n")
            self.count += 1
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class MemorySink:
    """Keeps alert state changes in a list (the demo's live table, tests)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alerts: Sequence[Alert]) -> None:
        self.alerts.extend(alerts)

    def close(self) -> None:
        return None
