"""Alerts: the record (per the alert contract), its lifecycle, and delivery sinks."""

from __future__ import annotations

from driftwatch.alerts.model import Alert, Finding, fingerprint

__all__ = ["Alert", "Finding", "fingerprint"]
