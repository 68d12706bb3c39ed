"""Errors of the pre-promotion gate (all :class:`~driftwatch.errors.DriftwatchError`)."""

from __future__ import annotations

from driftwatch.errors import DriftwatchError


class GateError(DriftwatchError):
    """The gate was misused: a bad spec, input file or scenario."""


class ScorerError(GateError):
    """A scorer misbehaved: wrong length, NaN, out of [0, 1], failed or over budget."""


class ArtifactError(GateError):
    """A model artifact is missing, unrecorded or does not match its recorded SHA-256."""
