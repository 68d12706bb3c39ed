"""The command context every ``driftwatch`` subcommand receives.

It lives apart from :mod:`driftwatch.cli` so that subcommand modules can name it
without importing the command line (which registers them: an import cycle).
"""

from __future__ import annotations

import click

from driftwatch.settings import Settings


class Ctx:
    """What every subcommand receives: the effective settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings


pass_ctx = click.make_pass_decorator(Ctx)
